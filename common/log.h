/*
 * log.h - diagnostics on stderr, one line each: "LEVEL message".
 * esbankd prefixes each line with the program's name, so programs do not.
 */
#ifndef ESBANK_LOG_H
#define ESBANK_LOG_H

typedef enum { LOG_DEBUG, LOG_INFO, LOG_WARN, LOG_ERROR } log_level_t;

/* Lines below level are dropped. Starts at LOG_INFO; ESBANK_LOG=debug lowers it. */
void log_set_level(log_level_t level);
void log_msg(log_level_t level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define log_debug(...) log_msg(LOG_DEBUG, __VA_ARGS__)
#define log_info(...) log_msg(LOG_INFO, __VA_ARGS__)
#define log_warn(...) log_msg(LOG_WARN, __VA_ARGS__)
#define log_error(...) log_msg(LOG_ERROR, __VA_ARGS__)

/* Exit codes with fixed meanings for every program (STYLE.md). */
#define EXIT_USAGE 100
#define EXIT_TEMPORARY 111
#define EXIT_BUG 101

#endif
