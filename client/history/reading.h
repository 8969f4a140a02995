/*
 * reading.h - what the offline history tools (replay, audit, whatif; see
 * history.h) share: rebuilding the state at a point of history (from the
 * newest usable snapshot at or before it, then the log), time and account
 * arguments, account and hash printing. `esbank log` uses the argument
 * readers too.
 */
#ifndef ESBANK_CLIENT_HISTORY_READING_H
#define ESBANK_CLIENT_HISTORY_READING_H

#include "config.h"
#include "ledger.h"
#include "logfile.h"
#include "progress.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#define HISTORY_DATA_DEFAULT "./var/data"
#define HISTORY_HASH_HEX_MAX (2 * LOGFILE_HASH_BYTES + 1)

/* A point of history: the state after event seq, or after the last event at or before ts. */
typedef struct {
	uint64_t seq;   /* UINT64_MAX: the end of the log */
	bool by_time;
	int64_t ts_ms;
} history_point_t;

/* The state rebuilt at a point. */
typedef struct {
	ledger_t *ledger;                   /* owned; free with history_state_free() */
	uint64_t snapshot_seq;              /* the snapshot it started from; 0: none */
	uint64_t events;                    /* events applied after the snapshot */
	uint8_t hash[LOGFILE_HASH_BYTES];   /* the log's chain hash at its last seq */
	uint64_t log_last_seq;              /* the last valid record seen in the log */
	bool log_torn;                      /* the log ended inside a record */
} history_state_t;

/*
 * Rebuilds the state at *at from DATA: the newest snapshot at or before the
 * point whose checksum is right and whose chain hash equals the log's at its
 * seq (others are skipped with a warning), then the events after it, each
 * checked with ledger_check_event(). The chain of the whole log up to the
 * point is checked. Prints why on stderr and returns the exit code on
 * failure: EXIT_USAGE when the point is past the end of the log or the log
 * is damaged before it, EXIT_TEMPORARY for a system error.
 */
int history_rebuild(const char *data_dir, const history_point_t *at, history_state_t *out);
void history_state_free(history_state_t *s);

/*
 * Parses a time: milliseconds since the epoch ("1714566896789"), or UTC
 * ISO-8601 "2024-05-01", "2024-05-01T12:34", "2024-05-01T12:34:56",
 * "2024-05-01T12:34:56.789" with an optional "Z". A date alone means its
 * start when end is false and its last millisecond when end is true (so
 * --until 2024-05-01 takes the whole day); likewise for a minute or second
 * given without the finer fields. Returns 0 or -EINVAL.
 */
int history_parse_time(const char *s, bool end, int64_t *ts_ms);

/* Reads a time option (see above); 0 when absent or good, else EXIT_USAGE after saying why. */
int history_opt_time(const config_opt_t *opts, const char *name, bool end, bool *given,
		     int64_t *ts_ms);

/* Reads an account-number option; 0 when absent or good, else EXIT_USAGE. */
int history_opt_account(const config_opt_t *opts, const char *name, bool *given,
			uint64_t *number);

/*
 * Opens data_dir/keys read-only for the emails below (once per process; a
 * missing or unreadable key store leaves sealed emails unreadable).
 * history_rebuild() calls it.
 */
void history_keys_open(const char *data_dir);
/*
 * An account's email into buf: its sealed email opened with its key, or
 * the plain email of an account opened before sealing; NULL when it is
 * erased or its key is gone (no key store).
 */
const char *history_account_email(const ledger_account_t *a, char buf[LEDGER_EMAIL_BYTES_MAX + 1]);
/* The same for an account_opened event. */
const char *history_event_email(const ledger_event_t *ev, char buf[LEDGER_EMAIL_BYTES_MAX + 1]);
/* Sets an open_account command's email_id (its keyed hash, in id) when the key store is open. */
void history_email_id(ledger_cmd_t *cmd, char id[LEDGER_EMAIL_ID_CHARS + 1]);

/* Prints an account as get_account's reply fields, as one JSON object (no newline):
 * an erased account (or one whose key is gone) has "erased": true and no email. */
void history_account_json(FILE *f, const ledger_account_t *a);

/* Prints an account as one aligned table line for people; NULL a prints the header. */
void history_account_line(const ledger_account_t *a);

/* Lower-case hex of a chain hash; returns buf. */
char *history_hash_hex(const uint8_t hash[LOGFILE_HASH_BYTES], char buf[HISTORY_HASH_HEX_MAX]);

/* Says on stderr what logfile_scan() found wrong. */
void history_say_problem(const logfile_scan_report_t *rep);

#endif
