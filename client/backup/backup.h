/*
 * backup.h - esbank backup, restore and export: the operator's copies of a
 * data directory. backup.c makes a consistent, audited copy of a running
 * bank; restore.c puts one back into a data directory no group holds;
 * export.c prints the events or the accounts as JSON lines or CSV. All three
 * read DATA directly (no bus) with the formats' own code (common/logfile.h,
 * snapfile.h) and check copies with the audit (audit_data, history.h).
 * Calls run one way: {backup,restore,export}.c -> copy.c, client/history.
 */
#ifndef ESBANK_CLIENT_BACKUP_H
#define ESBANK_CLIENT_BACKUP_H

#include "config.h"

#include <stdbool.h>

#define BACKUP_MANIFEST "backup.json"
#define BACKUP_BATCH_BYTES_MAX (1024 * 1024) /* records per batch of the copy's log */

#define BACKUP_HELP                                                                      \
	"Copies DATA (safe while the group runs) into the new directory DEST: the log\n" \
	"up to its last whole batch (made durable first), the newest snapshot at or\n"   \
	"before it, the mail spool and address book, and http.secret. The copy is\n"     \
	"built in DEST.partial-*, checked with the audit, and only then renamed to\n"    \
	"DEST. Exits 0, 100 (DEST exists, DATA has no log or a damaged one), 111 (I/O).\n" \
	"See docs/operations.md."
#define RESTORE_HELP                                                                     \
	"Audits the backup FROM, then copies it into DATA while holding DATA's\n"        \
	"esbankd.lock: refuses while a group runs on DATA (exit 111), and when DATA\n"   \
	"already holds a log unless --force, which first moves DATA's log, snapshots,\n" \
	"mail and http.secret into DATA/before-restore-<time>/. The restored copy is\n"  \
	"audited again; its head hash is printed. See docs/operations.md."
#define EXPORT_HELP                                                                      \
	"Prints DATA's events (one per event, ts in RFC 3339 UTC) or its accounts\n"     \
	"(the state at the end of the log: number, email, verified, balance) as JSON\n"  \
	"lines or CSV with a header line. Read-only, safe while the server runs.\n"      \
	"Password and code hashes are left out unless --with-secrets."

extern const config_opt_t backup_opts[];
extern const config_opt_t restore_opts[];
extern const config_opt_t export_opts[];

/* Each runs its subcommand with its parsed options; returns the exit code. */
int backup_run(const config_opt_t *opts, bool json);
int restore_run(const config_opt_t *opts, bool json);
int export_run(const config_opt_t *opts, const char *what);

#endif
