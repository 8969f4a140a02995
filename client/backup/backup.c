/*
 * backup.c - esbank backup --data DATA --to DEST: a consistent copy of a
 * running bank.
 *
 * Order, so that the copy is a state the bank really passed through: first
 * the mail spool (mail/hwm first) and http.secret (copy.c); then the log:
 * a first scan finds the last whole record K (a torn batch at the end, one
 * a logger is still writing, is left out whole: K is the seq before it),
 * the source log is fdatasync'd (so that K is durable in DATA too), and a
 * second scan re-encodes records 1..K into DEST/events.log with the log's
 * own code (logfile_encode, logfile_write: a version 2 file whose records
 * chain to the same head hash, whatever the source's version and batches);
 * then DATA/keys (copy.c: after the log, so that every key the copied log
 * needs is in it); then the newest snapshot at or before K whose chain hash
 * is the log's at its seq. The mailer's hwm is never past the durable seq, so the copied
 * spool never claims mail for events the copied log lacks.
 *
 * DEST/backup.json (written last, one JSON object):
 *   {"version":1, "source": DATA, "created": RFC 3339 UTC, "last_seq": K,
 *    "head_hash": hex, "snapshot": seq or 0, "mails": n, "secret": bool}
 * restore does not copy it.
 *
 * Everything is built in DEST.partial-XXXXXX, each file fsync'd, audited
 * (audit_data: it must pass and end at K with the source's hash), and only
 * then renamed to DEST (and DEST's parent fsync'd). On failure the partial
 * directory is removed.
 */
#include "backup.h"
#include "copy.h"

#include "diag.h"
#include "fileio.h"
#include "history.h"
#include "logfile.h"
#include "output.h"
#include "progress.h"
#include "reading.h"
#include "snapfile.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

const config_opt_t backup_opts[] = {
	{ .name = "data", .env = "ESBANK_DATA", .def = HISTORY_DATA_DEFAULT,
	  .help = "the data directory to copy (only read)" },
	{ .name = "to", .help = "the new directory to create (must not exist)" },
	{ 0 },
};

typedef struct {
	const char *data, *dest;
	char stage[COPY_PATH_MAX];
	uint64_t last;                       /* K: the last seq copied */
	uint8_t head[LOGFILE_HASH_BYTES];    /* the source's hash at K */
	logfile_t lf;                        /* the copy's log, open for writing */
	uint8_t chain[LOGFILE_HASH_BYTES];
	char *buf;
	size_t len, cap;
	snapfile_t snap;                     /* the snapshot to copy; body NULL: none */
	uint8_t snap_hash[LOGFILE_HASH_BYTES];
	bool snap_hash_seen;
	copy_count_t count;
	progress_t prog;
	int err;                             /* the first write error */
} backup_t;

/* --- the log ---------------------------------------------------------------- */

static int backup_count_cb(const logfile_record_t *r, void *arg)
{
	progress_update(arg, r->offset);
	return 0;
}

/* The first scan: K, the last record before any torn tail. 0 or an exit code. */
static int backup_find_end(backup_t *b)
{
	logfile_scan_report_t rep;

	progress_start(&b->prog, "backup: scan", 0);
	int rc = logfile_scan(b->data, &rep, backup_count_cb, &b->prog);
	progress_end(&b->prog);
	if (rc == -ENOENT) {
		fprintf(stderr, "esbank: %s holds no %s\n", b->data, LOGFILE_NAME);
		return EXIT_USAGE;
	}
	if (rc == -EBADMSG && rep.problem != LOGFILE_PROBLEM_TRUNCATED) {
		history_say_problem(&rep);
		fprintf(stderr, "esbank: the log is damaged: no backup made (see esbank audit, "
			"esbank log-repair)\n");
		return EXIT_USAGE;
	}
	if (rc < 0 && rc != -EBADMSG) {
		fprintf(stderr, "esbank: cannot read %s/%s: %s\n", b->data, LOGFILE_NAME,
			strerror(-rc));
		return EXIT_TEMPORARY;
	}
	b->last = rep.last_seq;
	if (rc == -EBADMSG && rep.batch_seq > 0 && rep.batch_seq - 1 < b->last)
		b->last = rep.batch_seq - 1; /* a batch still being written: leave it whole */
	return 0;
}

/* Makes the source's records durable (the logger may not have synced the last). */
static int backup_sync_source(const backup_t *b)
{
	char path[COPY_PATH_MAX];

	if (copy_join(path, b->data, LOGFILE_NAME))
		return -ENAMETOOLONG;
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	int rc = fdatasync(fd) < 0 ? -errno : 0;
	close(fd);
	return rc;
}

static int backup_flush(backup_t *b, uint64_t last_seq)
{
	if (b->len == 0)
		return 0;
	int rc = logfile_write(&b->lf, b->lf.size_bytes, b->buf, b->len);
	if (rc == 0)
		rc = logfile_commit(&b->lf, b->buf, b->len, last_seq, b->chain);
	b->len = 0;
	return rc;
}

static int backup_copy_cb(const logfile_record_t *r, void *arg)
{
	backup_t *b = arg;

	if (r->seq > b->last)
		return 1;
	progress_update(&b->prog, r->seq);
	int rc = logfile_encode(r->seq, r->body, r->len, b->chain, &b->buf, &b->len, &b->cap);
	if (rc == 0 && memcmp(b->chain, r->hash, LOGFILE_HASH_BYTES) != 0)
		rc = -EPROTO; /* the copy's chain is not the source's: a bug */
	if (b->snap.body && r->seq == b->snap.seq) {
		memcpy(b->snap_hash, r->hash, LOGFILE_HASH_BYTES);
		b->snap_hash_seen = true;
	}
	if (rc == 0 && (b->len >= BACKUP_BATCH_BYTES_MAX || r->seq == b->last))
		rc = backup_flush(b, r->seq);
	if (rc < 0) {
		b->err = rc;
		return 1;
	}
	if (r->seq == b->last)
		memcpy(b->head, r->hash, LOGFILE_HASH_BYTES);
	return r->seq == b->last;
}

/* The second scan: records 1..K into the copy's log. 0 or an exit code. */
static int backup_copy_log(backup_t *b)
{
	logfile_report_t orep;
	logfile_scan_report_t rep;

	int rc = logfile_open(&b->lf, b->stage, false, &orep);
	if (rc < 0) {
		fprintf(stderr, "esbank: cannot create %s/%s: %s\n", b->stage, LOGFILE_NAME,
			strerror(-rc));
		return EXIT_TEMPORARY;
	}
	progress_start(&b->prog, "backup: log", b->last);
	rc = b->last ? logfile_scan(b->data, &rep, backup_copy_cb, b) : 0;
	progress_end(&b->prog);
	logfile_close(&b->lf);
	free(b->buf);
	b->buf = NULL;
	if (rc == 0 && b->err)
		rc = b->err;
	if (rc == -EPROTO) {
		fprintf(stderr, "esbank: bug: the copy's hash chain differs from the log's\n");
		return EXIT_BUG;
	}
	if (rc < 0) {
		fprintf(stderr, "esbank: copying the log: %s\n", strerror(-rc));
		return EXIT_TEMPORARY;
	}
	return 0;
}

/* --- the snapshot ------------------------------------------------------------ */

/* Reads the newest readable snapshot at or before K (none is fine). */
static void backup_pick_snapshot(backup_t *b)
{
	uint64_t seqs[SNAPFILE_LIST_MAX];
	int n = snapfile_list(b->data, seqs, SNAPFILE_LIST_MAX);

	for (int i = 0; i < n; i++) {
		if (seqs[i] > b->last)
			continue;
		if (snapfile_read(b->data, seqs[i], &b->snap) == 0)
			return;
		b->snap.body = NULL;
	}
}

static int backup_write_snapshot(backup_t *b)
{
	if (!b->snap.body)
		return 0;
	int rc = 0;
	if (b->snap_hash_seen && memcmp(b->snap_hash, b->snap.chain, LOGFILE_HASH_BYTES) == 0)
		rc = snapfile_write(b->stage, b->snap.seq, b->snap.chain, b->snap.body,
				    b->snap.body_len);
	else
		diag_warn("snapshot %" PRIu64 " is not of this log: not copied", b->snap.seq);
	if (rc < 0)
		fprintf(stderr, "esbank: writing the snapshot: %s\n", strerror(-rc));
	if (rc < 0 || !b->snap_hash_seen ||
	    memcmp(b->snap_hash, b->snap.chain, LOGFILE_HASH_BYTES) != 0) {
		snapfile_free(&b->snap);
		b->snap.body = NULL;
	}
	return rc < 0 ? EXIT_TEMPORARY : 0;
}

/* --- checking and finishing ------------------------------------------------- */

static int backup_verify(const backup_t *b)
{
	audit_summary_t sum;
	int rc = audit_data(b->stage, &sum);

	if (rc)
		return rc;
	if (!sum.ok) {
		fprintf(stderr, "esbank: the copy fails the audit at seq %" PRIu64 ": %s\n"
			"esbank: no backup made (run esbank audit --data %s)\n", sum.problem_seq,
			sum.what, b->data);
		return EXIT_USAGE;
	}
	if (sum.last_seq != b->last || memcmp(sum.head_hash, b->head, LOGFILE_HASH_BYTES)) {
		fprintf(stderr, "esbank: bug: the copy ends at seq %" PRIu64 ", not %" PRIu64
			" with the log's hash\n", sum.last_seq, b->last);
		return EXIT_BUG;
	}
	return 0;
}

static void backup_print(FILE *f, const backup_t *b, bool manifest)
{
	char hex[HISTORY_HASH_HEX_MAX], now[OUTPUT_TIME_MAX];

	fprintf(f, "{\"version\":1,\"source\":");
	output_json_string(f, b->data, strlen(b->data));
	if (manifest)
		fprintf(f, ",\"created\":\"%s\"", output_time((int64_t)time(NULL) * 1000, false,
							      now));
	else {
		fprintf(f, ",\"dest\":");
		output_json_string(f, b->dest, strlen(b->dest));
	}
	fprintf(f, ",\"last_seq\":%" PRIu64 ",\"head_hash\":\"%s\",\"snapshot\":%" PRIu64
		",\"mails\":%zu,\"secret\":%s}\n", b->last, history_hash_hex(b->head, hex),
		b->snap.body ? b->snap.seq : 0, b->count.mails, b->count.secret ? "true" : "false");
}

static int backup_manifest(const backup_t *b)
{
	char path[COPY_PATH_MAX];

	if (copy_join(path, b->stage, BACKUP_MANIFEST))
		return -ENAMETOOLONG;
	FILE *f = fopen(path, "wx");
	if (!f)
		return -errno;
	backup_print(f, b, true);
	int rc = fflush(f) || fsync(fileno(f)) < 0 ? -errno : 0;
	if (fclose(f) && rc == 0)
		rc = -errno;
	if (rc == 0)
		rc = fileio_fsync_dir(b->stage);
	return rc;
}

/* Renames the checked copy to DEST and makes the name durable. */
static int backup_publish(const backup_t *b)
{
	char parent[COPY_PATH_MAX];

	int rc = backup_manifest(b);
	if (rc == 0 && rename(b->stage, b->dest) < 0)
		rc = -errno;
	snprintf(parent, sizeof(parent), "%s", b->dest);
	if (rc == 0)
		rc = fileio_fsync_dir(dirname(parent));
	if (rc < 0)
		fprintf(stderr, "esbank: finishing %s: %s\n", b->dest, strerror(-rc));
	return rc < 0 ? EXIT_TEMPORARY : 0;
}

/* DEST must be new; its staging directory is made beside it. 0 or an exit code. */
static int backup_stage(backup_t *b)
{
	struct stat st;

	if (!b->dest || !*b->dest) {
		fprintf(stderr, "esbank: backup needs --to DEST\n");
		return EXIT_USAGE;
	}
	if (lstat(b->dest, &st) == 0) {
		fprintf(stderr, "esbank: %s exists: a backup goes into a new directory\n",
			b->dest);
		return EXIT_USAGE;
	}
	int n = snprintf(b->stage, sizeof(b->stage), "%s.partial-XXXXXX", b->dest);
	if (n < 0 || (size_t)n >= sizeof(b->stage) || !mkdtemp(b->stage)) {
		fprintf(stderr, "esbank: cannot create %s.partial-*: %s\n", b->dest,
			strerror(errno ? errno : ENAMETOOLONG));
		return errno == ENOENT || errno == ENOTDIR ? EXIT_USAGE : EXIT_TEMPORARY;
	}
	return 0;
}

static int backup_steps(backup_t *b)
{
	char path[COPY_PATH_MAX] = "";
	int rc = copy_plain(b->data, b->stage, &b->count, path);

	if (rc < 0) {
		fprintf(stderr, "esbank: copying %s: %s\n", path, strerror(-rc));
		return EXIT_TEMPORARY;
	}
	if ((rc = backup_find_end(b)) != 0)
		return rc;
	if ((rc = backup_sync_source(b)) < 0) {
		fprintf(stderr, "esbank: fdatasync of %s/%s: %s\n", b->data, LOGFILE_NAME,
			strerror(-rc));
		return EXIT_TEMPORARY;
	}
	backup_pick_snapshot(b);
	if ((rc = backup_copy_log(b)) != 0)
		return rc;
	if ((rc = copy_keys(b->data, b->stage, path)) < 0) {
		fprintf(stderr, "esbank: copying %s: %s\n", path, strerror(-rc));
		return EXIT_TEMPORARY;
	}
	if ((rc = backup_write_snapshot(b)) != 0 || (rc = backup_verify(b)) != 0)
		return rc;
	return backup_publish(b);
}

int backup_run(const config_opt_t *opts, bool json)
{
	backup_t b = { .data = config_get(opts, "data"), .dest = config_get(opts, "to") };
	char hex[HISTORY_HASH_HEX_MAX];

	int rc = backup_stage(&b);
	if (rc)
		return rc;
	rc = backup_steps(&b);
	if (rc)
		copy_remove_tree(b.stage);
	else if (json)
		backup_print(stdout, &b, false);
	else
		printf("backup of %s in %s: events 1..%" PRIu64 ", head hash %s, snapshot %"
		       PRIu64 ", %zu mails%s; audit passed\n", b.data, b.dest, b.last,
		       history_hash_hex(b.head, hex), b.snap.body ? b.snap.seq : 0,
		       b.count.mails, b.count.secret ? ", http.secret" : "");
	if (b.snap.body)
		snapfile_free(&b.snap);
	return rc;
}
