/*
 * restore.c - esbank restore --from BACKUP --data DATA: puts a backup (see
 * backup.c) into a data directory.
 *
 * The backup is audited first (nothing is written when it fails). DATA is
 * created if needed and its esbankd.lock taken (common/lock.h, the lock
 * esbankd holds for its whole life), so a running group makes restore
 * refuse, and no group can start on a half-restored directory. A DATA that
 * already holds events.log is refused unless --force, which first moves its
 * log, snapshots/, mail/, http.secret and keys into DATA/before-restore-<unix
 * time>/ (nothing is deleted). The files are copied and fsync'd, the log
 * last (to events.log.restoring, then renamed), and DATA is audited again:
 * it must end with the backup's head hash.
 */
#include "backup.h"
#include "copy.h"

#include "diag.h"
#include "fileio.h"
#include "history.h"
#include "keystore.h"
#include "lock.h"
#include "logfile.h"
#include "output.h"
#include "reading.h"
#include "snapfile.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define RESTORE_ASIDE_PREFIX "before-restore-"
#define RESTORE_LOG_TMP LOGFILE_NAME ".restoring"

const config_opt_t restore_opts[] = {
	{ .name = "from", .help = "the backup directory (made by esbank backup)" },
	{ .name = "data", .env = "ESBANK_DATA", .def = HISTORY_DATA_DEFAULT,
	  .help = "the data directory to restore into (no group may run on it)" },
	{ .name = "force", .is_flag = true,
	  .help = "move an existing bank in DATA aside into DATA/before-restore-<time>/" },
	{ 0 },
};

/* Moves DATA's bank files into DATA/before-restore-<time>/. 0 or an exit code. */
static int restore_move_aside(const char *data)
{
	const char *names[] = { LOGFILE_NAME, SNAPFILE_DIR, "mail", "http.secret", KEYSTORE_FILE };
	char aside[COPY_PATH_MAX], from[COPY_PATH_MAX], to[COPY_PATH_MAX];

	int n = snprintf(aside, sizeof(aside), "%s/%s%lld", data, RESTORE_ASIDE_PREFIX,
			 (long long)time(NULL));
	if (n < 0 || (size_t)n >= sizeof(aside) || mkdir(aside, 0700) < 0) {
		fprintf(stderr, "esbank: cannot create %s: %s\n", aside, strerror(errno));
		return EXIT_TEMPORARY;
	}
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		if (copy_join(from, data, names[i]) || copy_join(to, aside, names[i]) ||
		    (rename(from, to) < 0 && errno != ENOENT)) {
			fprintf(stderr, "esbank: cannot move %s aside: %s\n", from, strerror(errno));
			return EXIT_TEMPORARY;
		}
	}
	if (fileio_fsync_dir(aside) < 0 || fileio_fsync_dir(data) < 0)
		return EXIT_TEMPORARY;
	fprintf(stderr, "esbank: the bank that was in %s is now in %s\n", data, aside);
	return 0;
}

/* Copies the backup's files into DATA, the log last. 0 or an exit code. */
static int restore_copy(const char *from, const char *data)
{
	char path[COPY_PATH_MAX] = "", a[COPY_PATH_MAX], b[COPY_PATH_MAX], tmp[COPY_PATH_MAX];
	copy_count_t count = { 0 };
	size_t n = 0;

	int rc = copy_join(a, from, SNAPFILE_DIR) || copy_join(b, data, SNAPFILE_DIR) ||
		 copy_join(tmp, data, RESTORE_LOG_TMP) ? -ENAMETOOLONG : 0;
	if (rc == 0)
		rc = copy_dir_files(a, b, &n, path);
	if (rc == 0)
		rc = copy_plain(from, data, &count, path);
	if (rc == 0)
		rc = copy_keys(from, data, path);
	if (rc == 0 && (copy_join(a, from, LOGFILE_NAME) || copy_join(b, data, LOGFILE_NAME)))
		rc = -ENAMETOOLONG;
	if (rc == 0) {
		memcpy(path, tmp, sizeof(path));
		unlink(tmp); /* a crashed restore's */
		rc = copy_file(a, tmp);
	}
	if (rc == 0 && rename(tmp, b) < 0)
		rc = -errno;
	if (rc == 0)
		rc = fileio_fsync_dir(data);
	if (rc < 0)
		fprintf(stderr, "esbank: restoring %s: %s\n", path, strerror(-rc));
	return rc < 0 ? EXIT_TEMPORARY : 0;
}

/* Audits dir; 0 with *sum when it passes, else an exit code after saying why. */
static int restore_audit(const char *dir, const char *what, audit_summary_t *sum)
{
	int rc = audit_data(dir, sum);
	if (rc)
		return rc;
	if (!sum->ok) {
		fprintf(stderr, "esbank: %s %s fails the audit at seq %" PRIu64 ": %s\n", what,
			dir, sum->problem_seq, sum->what);
		return EXIT_USAGE;
	}
	return 0;
}

/* With DATA locked: refuse or move aside an existing bank, copy, audit. */
static int restore_locked(const char *from, const char *data, bool force,
			  const audit_summary_t *want, audit_summary_t *got)
{
	char path[COPY_PATH_MAX];
	int rc;

	if (copy_join(path, data, LOGFILE_NAME) == 0 && access(path, F_OK) == 0) {
		if (!force) {
			fprintf(stderr, "esbank: %s already holds a bank (%s): not overwritten; "
				"--force moves it aside first\n", data, LOGFILE_NAME);
			return EXIT_USAGE;
		}
		if ((rc = restore_move_aside(data)) != 0)
			return rc;
	}
	if ((rc = restore_copy(from, data)) != 0 || (rc = restore_audit(data, "the restored",
									got)) != 0)
		return rc;
	if (got->last_seq != want->last_seq ||
	    memcmp(got->head_hash, want->head_hash, LOGFILE_HASH_BYTES) != 0) {
		fprintf(stderr, "esbank: bug: the restored log is not the backup's\n");
		return EXIT_BUG;
	}
	return 0;
}

int restore_run(const config_opt_t *opts, bool json)
{
	const char *from = config_get(opts, "from"), *data = config_get(opts, "data");
	audit_summary_t want, got;
	char hex[HISTORY_HASH_HEX_MAX];
	int fd = -1;

	if (!from || !*from) {
		fprintf(stderr, "esbank: restore needs --from BACKUP\n");
		return EXIT_USAGE;
	}
	int rc = restore_audit(from, "the backup", &want);
	if (rc)
		return rc;
	if ((rc = config_mkdirs(data, 0700)) < 0) {
		fprintf(stderr, "esbank: cannot create %s: %s\n", data, strerror(-rc));
		return EXIT_TEMPORARY;
	}
	rc = lock_take(data, "data", &fd);
	if (rc < 0) {
		fprintf(stderr, "esbank: not restoring into %s: %s\n", data, rc == -EAGAIN ?
			"a group is running on it (stop it first)" : strerror(-rc));
		return EXIT_TEMPORARY;
	}
	rc = restore_locked(from, data, config_flag(opts, "force"), &want, &got);
	close(fd);
	if (rc)
		return rc;
	if (json)
	{
		printf("{\"data\":");
		output_json_string(stdout, data, strlen(data));
		printf(",\"last_seq\":%" PRIu64 ",\"head_hash\":\"%s\",\"accounts\":%zu,"
		       "\"balance\":%" PRId64 "}\n", got.last_seq,
		       history_hash_hex(got.head_hash, hex), got.accounts, got.balance);
	} else
		printf("restored %s into %s: events 1..%" PRIu64 ", head hash %s; audit passed\n",
		       from, data, got.last_seq, history_hash_hex(got.head_hash, hex));
	return 0;
}
