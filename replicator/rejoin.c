/*
 * rejoin.c - esbank-replicator --rejoin: an old primary's data directory
 * made a prefix of the stream before its group follows it.
 *
 * Run while the group is down (the logger's lock is taken for the cut).
 * The local log's last record L and the stream are compared by seq and
 * hash: the stream message holding the local record at seq s is found by
 * its msg id, and s walks back from min(L, the stream's last event) one
 * stream message at a time until the local hash at s equals the stream's;
 * since both are hash chains, every record before s is then the same. The
 * local log is cut after s (common/logfile.c, logfile_cut_after: every cut
 * byte is first copied to DATA/events.log.cut-<seq>-<time>, fsync'd), and
 * the snapshots after s are removed (they hold state the stream never had).
 * Those local events were never acknowledged: an acknowledgement waits for
 * the stream. Nothing differs: nothing is cut.
 */
#include "replicator.h"

#include "diag.h"
#include "snapfile.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define REJOIN_WALK_MAX 100000 /* stream messages looked at going back */

typedef struct {
	const logfile_t *lf;
	uint64_t match;  /* the highest seq whose hashes agree, in this message */
	uint64_t first;  /* the message's first seq */
} rejoin_cmp_t;

static int rejoin_cmp_cb(uint64_t seq, const char *body, size_t len,
                         const uint8_t hash[LOGFILE_HASH_BYTES], void *arg)
{
	rejoin_cmp_t *c = arg;
	uint8_t mine[LOGFILE_HASH_BYTES];
	if (c->first == 0)
		c->first = seq;
	if (seq > c->lf->last_seq)
		return 1;
	if (logfile_hash_at(c->lf, seq, mine) && memcmp(mine, hash, LOGFILE_HASH_BYTES) == 0)
		c->match = seq;
	return 0;
}

/* The last seq the local log and the stream agree on: 0 or a negative errno. */
static int rejoin_common(repl_t *r, const logfile_t *lf, uint64_t *keep)
{
	repl_tail_t t;
	int rc = js_read_tail(r, &t);
	uint64_t s = lf->last_seq < t.last ? lf->last_seq : t.last, q = 0;
	*keep = 0;
	if (rc == 0 && t.last == 0) {
		*keep = lf->last_seq; /* an empty stream: nothing to compare with, nothing cut */
		return 0;
	}
	if (rc < 0 || s == 0)
		return rc;
	rc = js_find(r, s, t.stream_seq, &q);
	for (int walked = 0; rc == 0 && q >= 1 && walked < REJOIN_WALK_MAX; walked++, q--) {
		natsMsg *m = NULL;
		rejoin_cmp_t c = { .lf = lf };
		rc = js_get(r, q, &m);
		if (rc == 0)
			rc = batch_decode(natsMsg_GetData(m), (size_t)natsMsg_GetDataLength(m), NULL,
			                  rejoin_cmp_cb, &c);
		natsMsg_Destroy(m);
		if (rc == 0 && c.match) {
			*keep = c.match;
			return 0;
		}
	}
	return rc == 0 && q >= 1 ? -E2BIG : rc;
}

/* Removes the snapshots after seq. */
static void rejoin_snapshots(const char *data_dir, uint64_t keep)
{
	uint64_t seqs[SNAPFILE_LIST_MAX];
	int n = snapfile_list(data_dir, seqs, SNAPFILE_LIST_MAX);
	for (int i = 0; i < n; i++)
		if (seqs[i] > keep) {
			int rc = snapfile_remove(data_dir, seqs[i]);
			diag_info("rejoin: snapshot %" PRIu64 " removed%s", seqs[i],
			         rc < 0 ? " (failed)" : "");
		}
}

static int rejoin_cut(const char *data_dir, uint64_t keep)
{
	logfile_repair_t out;
	int rc = logfile_cut_after(data_dir, keep, &out);
	if (rc < 0) {
		diag_error("rejoin: cutting %s/%s after %" PRIu64 ": %s", data_dir, LOGFILE_NAME, keep,
		          strerror(-rc));
		return rc;
	}
	if (out.cut)
		diag_warn("rejoin: cut %" PRIu64 " bytes (events %" PRIu64 "..%" PRIu64 ", never "
		         "acknowledged) from %s/%s; a copy is in %s", out.cut_bytes, out.first_cut_seq,
		         out.scan.last_seq, data_dir, LOGFILE_NAME, out.copy_path);
	else
		diag_info("rejoin: the local log (up to %" PRIu64 ") is a prefix of the stream", keep);
	rejoin_snapshots(data_dir, keep);
	return 0;
}

/* DATA/keys takes the stream's secret: 0 or the exit code. */
static int rejoin_keys(repl_t *r)
{
	char text[REPL_TEXT_BYTES_MAX] = "";
	int rc = js_connect(r, text, sizeof(text));
	if (rc < 0) {
		diag_error("rejoin: %s", text);
		nats_Close();
		return EXIT_TEMPORARY;
	}
	rc = keys_rejoin(r);
	js_close(r);
	if (rc == -EEXIST || rc == -EINVAL)
		return EXIT_USAGE;
	return rc < 0 ? EXIT_TEMPORARY : 0;
}

int rejoin_run(const repl_config_t *cfg)
{
	static repl_t r;
	char text[REPL_TEXT_BYTES_MAX] = "";
	logfile_t lf;
	logfile_report_t rep;
	r.cfg = *cfg;
	r.cfg.mode = REPL_MODE_PRIMARY; /* no heartbeat subscription */
	pthread_mutex_init(&r.inbox.lock, NULL);
	r.inbox.closing = true; /* no loop: what nats.c's threads report is dropped */
	snprintf(r.log_subject, sizeof(r.log_subject), "%s.log", cfg->stream);
	snprintf(r.hb_subject, sizeof(r.hb_subject), "%s.hb", cfg->stream);
	snprintf(r.mail_stream, sizeof(r.mail_stream), "%s_MAIL", cfg->stream);
	snprintf(r.receipts_subject, sizeof(r.receipts_subject), "%s.receipts", cfg->stream);
	snprintf(r.keys_stream, sizeof(r.keys_stream), "%s_KEYS", cfg->stream);
	int rc = rejoin_keys(&r);
	if (rc != 0)
		return rc;
	rc = logfile_open(&lf, cfg->data_dir, true, &rep);
	if (rc == -ENOENT)
		return 0; /* nothing local: nothing to cut */
	if (rc < 0) {
		diag_error("rejoin: cannot read %s/%s: %s", cfg->data_dir, LOGFILE_NAME, strerror(-rc));
		return rc == -EBADMSG ? EXIT_USAGE : EXIT_TEMPORARY;
	}
	uint64_t keep = 0, last = lf.last_seq;
	rc = js_connect(&r, text, sizeof(text));
	if (rc == 0)
		rc = rejoin_common(&r, &lf, &keep);
	logfile_close(&lf);
	js_close(&r);
	nats_Close();
	if (rc < 0) {
		diag_error("rejoin: %s", *text ? text : "cannot compare the log with the stream");
		return EXIT_TEMPORARY;
	}
	if (keep < last)
		diag_warn("rejoin: the stream has the local log's records only up to %" PRIu64
		         " of %" PRIu64, keep, last);
	return rejoin_cut(cfg->data_dir, keep) < 0 ? EXIT_TEMPORARY : 0;
}
