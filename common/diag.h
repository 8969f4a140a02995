/*
 * diag.h - diagnostics on stderr, one line each (not the event log: that is
 * logfile.h):
 *
 *     [PREFIX]LEVEL: message
 *
 * LEVEL is debug, info, warn or error. PREFIX is empty, except:
 * - stderr is the systemd journal (JOURNAL_STREAM names stderr's device and
 *   inode): "<N>", the syslog priority the journal reads and strips (error
 *   3, warn 4, info 6, debug 7), so `journalctl -p err` finds the errors;
 * - else, when diag_set_timestamps() was called (esbankd): the UTC time,
 *   "2026-01-31T12:00:00.123Z ".
 * Under esbankd a program's stderr is a pipe, so its lines carry no prefix:
 * esbankd adds its own and the program's name (supervisor/output.h).
 */
#ifndef ESBANK_DIAG_H
#define ESBANK_DIAG_H

#include <stdbool.h>
#include <stddef.h>

typedef enum { DIAG_DEBUG, DIAG_INFO, DIAG_WARN, DIAG_ERROR } diag_level_t;

/* Room for the longest prefix diag_prefix() writes, with its NUL. */
#define DIAG_PREFIX_BYTES_MAX 32

/*
 * Reads ESBANK_LOG (debug, info, warn or error; unset or empty: info) and
 * whether stderr is the journal. An unknown ESBANK_LOG prints an error and
 * returns -EINVAL (main exits 100). config_parse() calls it; diag_msg()
 * calls it once too when nobody did (then an unknown value means info).
 */
int diag_init(void);

/* Lines below level are dropped. Overrides ESBANK_LOG. */
void diag_set_level(diag_level_t level);
/* Prefixes lines with the UTC time when stderr is not the journal. */
void diag_set_timestamps(bool on);
void diag_msg(diag_level_t level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/*
 * Writes the prefix of a line of level (see above) into buf (at least
 * DIAG_PREFIX_BYTES_MAX bytes): "", "<N>" or the time and a space.
 */
void diag_prefix(diag_level_t level, char *buf, size_t size);

/* The level a line written by diag_msg() starts with; DIAG_INFO for others. */
diag_level_t diag_level_of_line(const char *line, size_t n);

#define diag_debug(...) diag_msg(DIAG_DEBUG, __VA_ARGS__)
#define diag_info(...) diag_msg(DIAG_INFO, __VA_ARGS__)
#define diag_warn(...) diag_msg(DIAG_WARN, __VA_ARGS__)
#define diag_error(...) diag_msg(DIAG_ERROR, __VA_ARGS__)

/* Exit codes with fixed meanings for every program (STYLE.md). */
#define EXIT_USAGE 100
#define EXIT_TEMPORARY 111
#define EXIT_BUG 101

#endif
