/*
 * promote.c - a standby takes over: the takeover record.
 *
 * Off the loop: the stream's tail (last sequence Q, last event L, chain
 * hash H) is read; the event {"seq":L+1,"ts":now,"type":"primary_changed",
 * "node":NAME} is encoded as a record chained to H and published alone,
 * fenced by Q (Nats-Expected-Last-Sequence: Q) with msg id "L+1-L+1". If
 * another primary wrote after Q the fence refuses it (wrong last sequence):
 * `promoted` with error "unavailable"; so of two standbys promoting at once
 * one wins. On success the replicator is primary from L+1 on (publish.c),
 * the record reaches the bus as a `follow` event like every record before
 * it, and `promoted` {"c":cid,"seq":L+1} is sent. The events before L+1 are
 * delivered by the follow subscription before the takeover record, in order.
 *
 * Mail: before the takeover record, every receipt in NAME_MAIL is read (the
 * seqs whose mail the old primary delivered); on success they go to the bus
 * as `receipts` messages just before `promoted`, and the bus's mail feed
 * skips them (docs/replication.md, "Mail across failover"). A promotion that
 * cannot read them fails ("unavailable"): without them every mail would go
 * out again.
 *
 * Keys: before the takeover record, NAME_KEYS is read to its end into
 * DATA/keys (keys.c); once the record is in, the replicator writes no more
 * keys, and the resolver, the primary's only appender, catches up with
 * the slots appended (keystore_reserve).
 */
#include "replicator.h"

#include "diag.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define PROMOTE_EVENT_BYTES_MAX 512
#define PROMOTE_READ_DEADLINE_MS 20000 /* reading the tail and receipts: tried again until then */

static uint64_t promote_now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* Reads the stream's tail and every mail receipt. Right after a node of the
 * cluster died or came back, a stream may have no leader for a few seconds and
 * its API calls time out: both reads change nothing, so they are tried again
 * until PROMOTE_READ_DEADLINE_MS has passed. */
static int promote_read(repl_t *r, repl_job_t *j)
{
	uint64_t deadline = promote_now_ms() + PROMOTE_READ_DEADLINE_MS;
	for (;;) {
		j->seqs.n = 0;
		j->result = js_read_tail(r, &j->tail);
		const char *what = "the tail of", *stream = r->cfg.stream;
		if (j->result == 0) {
			j->result = js_read_receipts(r, &j->seqs);
			what = "the mail receipts in";
			stream = r->mail_stream;
		}
		if (j->result == 0) {
			j->result = keys_follow_all(r);
			what = "the keys in";
			stream = r->keys_stream;
		}
		if (j->result == 0 || j->result == -ENOMEM || promote_now_ms() >= deadline) {
			if (j->result < 0)
				snprintf(j->text, sizeof(j->text), "cannot read %s %s: %s", what, stream,
				         nats_GetLastError(NULL));
			return j->result;
		}
		diag_warn("promote: cannot read %s %s yet (%s): trying again", what, stream,
		          nats_GetLastError(NULL));
		uv_sleep(REPL_RETRY_MS);
	}
}

static void promote_work(uv_work_t *w)
{
	repl_job_t *j = w->data;
	repl_t *r = j->r;
	char body[PROMOTE_EVENT_BYTES_MAX];
	if (promote_read(r, j) < 0)
		return;
	uint64_t seq = j->tail.last + 1;
	int len = batch_takeover_event(seq, promote_now_ms(), r->cfg.node, body, sizeof(body));
	repl_msg_t m = { .first = seq, .last = seq, .expect = j->tail.stream_seq };
	memcpy(m.head, j->tail.head, LOGFILE_HASH_BYTES);
	j->result = len < 0 ? len : logfile_encode(seq, body, (size_t)len, m.head, &m.buf, &m.len,
	                                          &m.cap);
	if (j->result == 0)
		j->result = js_publish_sync(r, &m, &j->out, j->text, sizeof(j->text));
	if (j->result == 0)
		keys_stop_writing(r); /* the resolver appends from now on */
	free(m.buf);
	j->arg = seq;
	memcpy(j->tail.head, m.head, LOGFILE_HASH_BYTES);
}

static void promote_free_seqs(repl_job_t *j)
{
	free(j->seqs.v);
	j->seqs = (repl_seqs_t){ 0 };
}

static void promote_done(uv_work_t *w, int status)
{
	repl_job_t *j = w->data;
	repl_t *r = j->r;
	j->busy = false;
	if (r->stopping) {
		promote_free_seqs(j);
		return;
	}
	if (status < 0 || j->result < 0 || r->mode != REPL_MODE_STANDBY) {
		const char *why = j->result == -EEXIST ? "another group wrote to the stream first"
		                                       : j->text;
		diag_warn("promote: failed: %s", why);
		out_promoted(r, r->promote_cid, 0, "unavailable", why);
		promote_free_seqs(j);
		return;
	}
	diag_info("promoted: takeover record %" PRIu64 " at stream sequence %" PRIu64 "; primary",
	         j->arg, j->out);
	r->takeover_seq = j->arg;
	snprintf(r->primary, sizeof(r->primary), "%s", r->cfg.node);
	publish_take_over(r, j->arg, j->tail.head, j->out);
	out_receipts(r, &j->seqs);
	out_promoted(r, r->promote_cid, j->arg, NULL, NULL);
	promote_free_seqs(j);
}

void promote_start(repl_t *r, uint64_t cid)
{
	if (r->mode != REPL_MODE_STANDBY || r->fenced) {
		out_promoted(r, cid, 0, "not_standby", "this group is not a standby");
		return;
	}
	if (!r->ready || r->promote_job.busy) {
		out_promoted(r, cid, 0, "unavailable",
		             r->ready ? "a promotion is running" : "not connected to the stream");
		return;
	}
	r->promote_cid = cid;
	r->promote_job.text[0] = 0;
	repl_job_start(r, &r->promote_job, promote_work, promote_done);
}
