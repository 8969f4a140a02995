/*
 * history.h - the offline history tools of esbank: replay, audit and whatif
 * read a data directory directly (DATA/events.log and DATA/snapshots), never
 * write to it and take no lock, so they are safe while the server runs. They
 * use the same file-format code (logfile_scan, snapfile_read) and the same
 * rules (ledger_check_event, ledger_apply) as the server.
 *
 * This file holds their entry points, option tables and help, and the
 * dispatch (history.c); what the tools share is in reading.h. History
 * calls run one way: history.c -> {replay,audit,whatif}.c -> reading.c.
 */
#ifndef ESBANK_CLIENT_HISTORY_H
#define ESBANK_CLIENT_HISTORY_H

#include "config.h"
#include "logfile.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Further help of the subcommands. */
#define HISTORY_REPLAY_HELP                                                            \
	"Reads DATA/events.log and DATA/snapshots directly (read-only, safe while the\n" \
	"server runs), starting from the newest snapshot at or before the point.\n"     \
	"TIME is UTC: 2024-05-01, 2024-05-01T12:34:56Z, or milliseconds since 1970."
#define HISTORY_AUDIT_HELP                                                             \
	"Checks the hash chain, the sequence, the times, every event under the rules,\n" \
	"the money invariant and every snapshot. Prints the head hash; exits 100\n"      \
	"naming the first problem's seq and byte offset."
#define HISTORY_WHATIF_HELP                                                            \
	"Rebuilds the state after seq --at, applies the commands in FILE (JSON lines,\n" \
	"as in the protocol) with the real rules and, with --then-rest, re-checks the\n" \
	"later real events as commands. Reports rejections and balance differences.\n"  \
	"Never writes to DATA. See docs/history.md."

/* The option tables of the subcommands (each ends with {0}). */
extern const config_opt_t history_replay_opts[];
extern const config_opt_t history_audit_opts[];
extern const config_opt_t history_whatif_opts[];

/* Runs "replay", "audit" or "whatif" with its parsed options; returns the exit code. */
int history_run(const char *name, const config_opt_t *opts);

int replay_run(const config_opt_t *opts, bool json);
int audit_run(const config_opt_t *opts, bool json);

#define AUDIT_WHAT_MAX 256

/* What audit_data() found: the audit as a library (esbank backup, restore). */
typedef struct {
	bool ok;                                /* every check passed */
	uint64_t last_seq;                      /* the last record that passed */
	uint8_t head_hash[LOGFILE_HASH_BYTES];  /* its chain hash */
	uint64_t problem_seq;                   /* when not ok */
	char what[AUDIT_WHAT_MAX];              /* when not ok: the first problem */
	size_t accounts;
	int64_t balance;                        /* the sum of every balance */
} audit_summary_t;

/*
 * Runs every check of esbank audit on data_dir without printing (but a
 * progress bar). Returns 0 with *out filled (out->ok says whether it
 * passed), or an exit code after saying on stderr why the log cannot be read.
 */
int audit_data(const char *data_dir, audit_summary_t *out);
int whatif_run(const config_opt_t *opts, bool json);

#endif
