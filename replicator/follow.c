/*
 * follow.c - standby mode: the stream read into `follow` events.
 *
 * The bus says where to start ({"t":"from","seq":S}, after each hello); the
 * stream message holding event S is found by its msg id (a binary search of
 * the stream, off the loop) and an ordered consumer delivers from there.
 * Each message is checked as batch.c says - its records chained to the ones
 * before (the first message's first record is taken on trust: the bus
 * checks it against its own log) - and its events from S on go to the bus
 * in order, one `follow` per stream message. A message that is not valid,
 * or that does not go on from the last event sent, stops the following
 * (`fault`): the standby keeps what it has and serves it.
 *
 * Takeover records name the new primary (`primary`), as do heartbeats on
 * NAME.hb. With --auto-promote, a standby that has followed all of the
 * stream it knows of, with a bus session, and has seen no heartbeat for that
 * long, promotes itself (promote.c, with c = 0).
 */
#include "replicator.h"

#include "diag.h"

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

void follow_init(repl_t *r, const repl_tail_t *tail)
{
	r->tail = *tail;
	r->stream_last_seen = tail->stream_seq;
	r->last_hb_ms = uv_now(r->loop);
	if (*tail->primary)
		memcpy(r->primary, tail->primary, sizeof(r->primary));
}

static void follow_work(uv_work_t *w)
{
	repl_job_t *j = w->data;
	repl_t *r = j->r;
	uint64_t q = 0;
	j->result = js_read_tail(r, &j->tail);
	if (j->result == 0 && j->arg > j->tail.last + 1)
		j->result = -ERANGE;
	if (j->result == 0)
		j->result = js_find(r, j->arg, j->tail.stream_seq, &q);
	if (j->result == 0)
		j->result = js_follow_start(r, q, j->out);
}

static void follow_retry_timer(uv_timer_t *t);

static void follow_done(uv_work_t *w, int status)
{
	repl_job_t *j = w->data;
	repl_t *r = j->r;
	j->busy = false;
	if (r->stopping || j->out != r->follow_gen)
		return;
	if (j->result == -ERANGE) {
		char why[REPL_TEXT_BYTES_MAX];
		snprintf(why, sizeof(why), "the local log (event %" PRIu64 " next) is ahead of the "
		         "stream (%" PRIu64 " events): rejoin (esbankd --follow cuts it)", j->arg,
		         j->tail.last);
		diag_error("%s", why);
		out_fault(r, why);
		return;
	}
	if (status < 0 || j->result < 0) {
		diag_warn("cannot follow the stream yet; retrying");
		uv_timer_start(&r->retry_timer, follow_retry_timer, REPL_RETRY_MS, 0);
		return;
	}
	if (j->tail.stream_seq > r->stream_last_seen)
		r->stream_last_seen = j->tail.stream_seq;
	diag_info("following the stream from event %" PRIu64, j->arg);
}

static void follow_start_job(repl_t *r)
{
	r->follow_job.arg = r->follow_from;
	r->follow_job.out = r->follow_gen;
	if (!repl_job_start(r, &r->follow_job, follow_work, follow_done))
		uv_timer_start(&r->retry_timer, follow_retry_timer, REPL_RETRY_MS, 0);
}

static void follow_retry_timer(uv_timer_t *t)
{
	repl_t *r = t->data;
	if (!r->stopping && r->follow_from)
		follow_start_job(r);
}

void follow_from(repl_t *r, uint64_t seq)
{
	if (r->mode != REPL_MODE_STANDBY || seq == 0)
		return;
	r->follow_from = seq;
	r->follow_gen++;
	r->followed_seq = seq - 1;
	r->followed_chain_known = false;
	follow_start_job(r);
}

/* The records of one followed message, collected for one `follow`. */
typedef struct {
	repl_t *r;
	const char **bodies;
	size_t *lens;
	uint32_t n, cap;
	uint64_t first;
	int gap;
} follow_batch_t;

static int follow_record_cb(uint64_t seq, const char *body, size_t len,
                            const uint8_t hash[LOGFILE_HASH_BYTES], void *arg)
{
	follow_batch_t *b = arg;
	repl_t *r = b->r;
	if (seq <= r->followed_seq && r->followed_chain_known)
		return 0; /* sent before (a consumer reset delivers it again) */
	if (seq < r->follow_from) {
		r->followed_seq = seq;
	} else if (seq != r->followed_seq + 1) {
		b->gap = 1;
		return 1;
	} else {
		if (b->n == b->cap) {
			uint32_t cap = b->cap ? 2 * b->cap : 64;
			const char **nb = realloc(b->bodies, cap * sizeof(*nb));
			size_t *nl = nb ? realloc(b->lens, cap * sizeof(*nl)) : NULL;
			if (nb)
				b->bodies = nb;
			if (!nl)
				return -ENOMEM;
			b->lens = nl;
			b->cap = cap;
		}
		if (b->n == 0)
			b->first = seq;
		b->bodies[b->n] = body;
		b->lens[b->n++] = len;
		r->followed_seq = seq;
		char node[REPL_NODE_BYTES_MAX];
		if (batch_takeover_node(body, len, node, sizeof(node))) {
			memcpy(r->primary, node, sizeof(node));
			r->primary_seq = seq;
		}
	}
	memcpy(r->followed_chain, hash, LOGFILE_HASH_BYTES);
	r->followed_chain_known = true;
	return 0;
}

void follow_message(repl_t *r, js_note_t *n)
{
	if (n->gen != r->follow_gen || r->follow_from == 0)
		return;
	follow_batch_t b = { .r = r };
	uint64_t before = r->primary_seq;
	int rc = batch_decode(natsMsg_GetData(n->msg), (size_t)natsMsg_GetDataLength(n->msg),
	                      r->followed_chain_known ? r->followed_chain : NULL,
	                      follow_record_cb, &b);
	if (rc < 0 || b.gap) {
		diag_error("stream message %" PRIu64 " %s: following stopped", n->stream_seq,
		          b.gap ? "does not go on from the last event followed" : "is not valid");
		out_fault(r, "the stream does not go on from the standby's log");
		r->follow_from = 0;
	}
	out_follow(r, b.first, b.bodies, b.lens, b.n, n->stream_seq);
	free(b.bodies);
	free(b.lens);
	if (r->primary_seq != before)
		out_primary(r, r->primary, r->primary_seq);
	r->followed_stream_seq = n->stream_seq;
	if (n->stream_seq + n->pending > r->stream_last_seen)
		r->stream_last_seen = n->stream_seq + n->pending;
	if (r->followed_seq > r->tail.last) {
		r->tail.last = r->followed_seq;
		memcpy(r->tail.head, r->followed_chain, LOGFILE_HASH_BYTES);
		r->tail.stream_seq = n->stream_seq;
	}
	if (r->takeover_seq && r->followed_seq >= r->takeover_seq)
		follow_stop(r);
}

void follow_heartbeat(repl_t *r, const js_note_t *n)
{
	if (r->mode != REPL_MODE_STANDBY || strcmp(n->text, r->cfg.node) == 0)
		return;
	r->last_hb_ms = uv_now(r->loop);
	if (strcmp(n->text, r->primary) != 0)
		snprintf(r->primary, sizeof(r->primary), "%.*s", (int)sizeof(r->primary) - 1, n->text);
	out_heartbeat(r, r->primary, n->last); /* every one: the bus measures its lag by them */
}

void follow_tick(repl_t *r)
{
	uint64_t now = uv_now(r->loop);
	if (r->mode != REPL_MODE_STANDBY || r->cfg.auto_promote_ms == 0 || !r->greeted ||
	    r->follow_from == 0 || r->follow_job.busy || r->promote_job.busy)
		return;
	if (r->followed_stream_seq < r->stream_last_seen || now - r->last_hb_ms < r->cfg.auto_promote_ms)
		return;
	diag_warn("no heartbeat from a primary for %llu ms and the stream followed to its end: "
	         "promoting", (unsigned long long)(now - r->last_hb_ms));
	r->last_hb_ms = now; /* one try per period */
	promote_start(r, 0);
}

static void follow_stop_work(uv_work_t *w)
{
	repl_job_t *j = w->data;
	js_follow_stop(j->r);
}

static void follow_stop_done(uv_work_t *w, int status)
{
	repl_job_t *j = w->data;
	j->busy = false;
}

void follow_stop(repl_t *r)
{
	r->follow_from = 0;
	r->follow_gen++;
	repl_job_start(r, &r->follow_job, follow_stop_work, follow_stop_done);
}
