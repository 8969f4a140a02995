/*
 * diag.h - diagnostics on stderr, one line each: "LEVEL message" (not the
 * event log: that is logfile.h).
 * esbankd prefixes each line with the program's name, so programs do not.
 */
#ifndef ESBANK_DIAG_H
#define ESBANK_DIAG_H

typedef enum { DIAG_DEBUG, DIAG_INFO, DIAG_WARN, DIAG_ERROR } diag_level_t;

/* Lines below level are dropped. Starts at DIAG_INFO; ESBANK_LOG=debug lowers it. */
void diag_set_level(diag_level_t level);
void diag_msg(diag_level_t level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define diag_debug(...) diag_msg(DIAG_DEBUG, __VA_ARGS__)
#define diag_info(...) diag_msg(DIAG_INFO, __VA_ARGS__)
#define diag_warn(...) diag_msg(DIAG_WARN, __VA_ARGS__)
#define diag_error(...) diag_msg(DIAG_ERROR, __VA_ARGS__)

/* Exit codes with fixed meanings for every program (STYLE.md). */
#define EXIT_USAGE 100
#define EXIT_TEMPORARY 111
#define EXIT_BUG 101

#endif
