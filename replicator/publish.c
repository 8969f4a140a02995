/*
 * publish.c - primary mode: the bus's events become stream messages.
 *
 * Each append's new events are encoded as log records (logfile_encode, the
 * chain going on from accepted_chain) into the message being filled; a
 * message is sealed at REPL_MSG_BYTES_MAX. Messages are published
 * asynchronously, at most REPL_INFLIGHT_MAX at a time (while the window is
 * full, events gather into the next message: group commit), each with the
 * expected last stream sequence predicted from the message before it (the
 * fence: only this writer appends to NAME.log, so message k+1 lands at
 * stream sequence expect(k) + 2) and a msg id "<first>-<last>".
 *
 * An ack that lands where predicted makes its message acknowledged; the
 * acknowledged prefix advances acked_seq and is reported `replicated`. Any
 * other outcome - a publish error, an ack at another sequence, a duplicate
 * (the msg id was in the stream already: our own earlier attempt, or
 * another primary's message with the same seqs), no ack within
 * 2 * REPL_PUBLISH_WAIT_MS, a reconnection - starts a resync: nothing more
 * is sent, the stream's tail is read (off the loop) and compared by seq and
 * hash with what we sent:
 *   - the tail is our acked head, or the last record of one of our
 *     messages with the same hash: everything up to it is in the stream
 *     (the chain proves it); the rest is published again, fenced from the
 *     tail's sequence, with the same msg ids;
 *   - anything else: another primary wrote. `fenced`, for good.
 * So a wrong-last-sequence error (10071) is fenced only when the tail says
 * so: a message lost before it makes the ones after it fail the same way.
 * An error other than the fence is reported `fault` (once) until a later
 * `replicated`; the resync is retried every REPL_RETRY_MS.
 *
 * Keys (keys.c): a message whose events open or erase accounts is not
 * published before NAME_KEYS acknowledged their keys' puts and purges (a
 * job, one message at a time, in order; a failure is a `fault` and tried
 * again every REPL_RETRY_MS). Messages after it wait behind it.
 */
#include "replicator.h"

#include "diag.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int publish_init(repl_t *r, const repl_tail_t *tail)
{
	r->accepted_seq = r->acked_seq = tail->last;
	memcpy(r->accepted_chain, tail->head, LOGFILE_HASH_BYTES);
	memcpy(r->acked_chain, tail->head, LOGFILE_HASH_BYTES);
	r->stream_seq = r->next_expect = tail->stream_seq;
	return 0;
}

static void publish_msg_free(repl_msg_t *m)
{
	free(m->buf);
	free(m->keys.v);
	free(m);
}

void publish_free(repl_t *r)
{
	for (repl_msg_t *m = r->msgs, *next; m; m = next) {
		next = m->next;
		publish_msg_free(m);
	}
	r->msgs = r->msgs_tail = NULL;
	diag_info("published %" PRIu64 " messages, %" PRIu64 " events", r->stat_msgs,
	         r->stat_events);
}

static void publish_fault(repl_t *r, const char *message)
{
	if (r->fault_sent || r->fenced)
		return;
	diag_warn("replication fault: %s", message);
	out_fault(r, message);
}

/* The message to add a record of rec_len bytes to (a new one when needed). */
static repl_msg_t *publish_filling(repl_t *r, size_t rec_len)
{
	repl_msg_t *m = r->msgs_tail;
	if (m && !m->sent && m->len + rec_len <= REPL_MSG_BYTES_MAX)
		return m;
	m = calloc(1, sizeof(*m));
	if (!m)
		return NULL;
	if (r->msgs_tail)
		r->msgs_tail->next = m;
	else
		r->msgs = m;
	r->msgs_tail = m;
	return m;
}

static int publish_add(repl_t *r, uint64_t seq, const char *body, size_t len)
{
	repl_msg_t *m = publish_filling(r, len + LOGFILE_HASH_BYTES + 12);
	if (!m)
		return -ENOMEM;
	size_t before = m->len;
	uint8_t chain[LOGFILE_HASH_BYTES];
	memcpy(chain, r->accepted_chain, LOGFILE_HASH_BYTES);
	int rc = logfile_encode(seq, body, len, chain, &m->buf, &m->len, &m->cap);
	if (rc == 0)
		rc = keys_note_event(m, body, len);
	if (rc < 0)
		return rc;
	if (m->first == 0)
		m->first = seq;
	m->last = seq;
	memcpy(m->head, chain, LOGFILE_HASH_BYTES);
	memcpy(r->accepted_chain, chain, LOGFILE_HASH_BYTES);
	r->accepted_seq = seq;
	r->pending_bytes += m->len - before;
	return 0;
}

static void publish_kick(repl_t *r);

static void publish_keys_timer(uv_timer_t *t)
{
	publish_kick(t->data);
}

static void publish_keys_done(uv_work_t *w, int status)
{
	repl_job_t *j = w->data;
	repl_t *r = j->r;
	j->busy = false;
	free(j->seqs.v);
	j->seqs = (repl_seqs_t){ 0 };
	if (r->stopping)
		return;
	for (repl_msg_t *m = r->msgs; m; m = m->next)
		if (m->first == j->arg && !m->sent) {
			m->keys_done += (size_t)j->out;
			if (m->keys_done > m->keys.n)
				m->keys_done = m->keys.n; /* a message made again after a new session */
		}
	if (j->result == -EEXIST) { /* DATA/keys is of another bank than the stream */
		diag_error("%s; stopping", j->text);
		exit(EXIT_USAGE);
	}
	if (status < 0 || j->result < 0) {
		publish_fault(r, *j->text ? j->text : "cannot publish keys to NATS");
		uv_timer_start(&r->keys_timer, publish_keys_timer, REPL_RETRY_MS, 0);
		return;
	}
	publish_kick(r);
}

/* Starts the job putting m's keys not yet acknowledged (if none runs). */
static void publish_keys_start(repl_t *r, repl_msg_t *m)
{
	repl_job_t *j = &r->keys_job;
	if (j->busy || uv_is_active((uv_handle_t *)&r->keys_timer))
		return;
	j->seqs = (repl_seqs_t){ 0 };
	for (size_t i = m->keys_done; i < m->keys.n; i++)
		if (repl_seqs_add(&j->seqs, m->keys.v[i]) < 0) {
			free(j->seqs.v);
			j->seqs = (repl_seqs_t){ 0 };
			return; /* the next kick tries again */
		}
	j->arg = m->first;
	j->text[0] = 0;
	if (!repl_job_start(r, j, keys_publish_work, publish_keys_done)) {
		free(j->seqs.v);
		j->seqs = (repl_seqs_t){ 0 };
	}
}

/* Publishes unsent messages while the window has room (a message's keys first). */
static void publish_kick(repl_t *r)
{
	if (r->resyncing || r->fenced || !r->js)
		return;
	for (repl_msg_t *m = r->msgs; m && r->inflight < REPL_INFLIGHT_MAX; m = m->next) {
		if (m->sent)
			continue;
		if (m->keys_done < m->keys.n) {
			publish_keys_start(r, m);
			break;
		}
		m->expect = r->next_expect;
		if (js_publish_async(r, m) < 0) {
			publish_fault(r, "a publish could not be sent to NATS");
			break; /* the watchdog or the reconnection resyncs */
		}
		m->sent = true;
		m->sent_ms = uv_now(r->loop);
		r->inflight++;
		r->next_expect++;
		r->stat_msgs++;
		r->stat_events += m->last - m->first + 1;
	}
}

static bool publish_hex_eq(const char *hex, const uint8_t h[LOGFILE_HASH_BYTES])
{
	char mine[REPL_HEX_BYTES];
	out_hex(h, mine);
	return strcmp(hex, mine) == 0;
}

int publish_append(repl_t *r, uint64_t first, const msgpack_object *evs, const char *prev)
{
	if (r->fenced || r->mode != REPL_MODE_PRIMARY)
		return 0;
	for (uint32_t i = 0; i < evs->via.array.size; i++) {
		uint64_t seq = first + i;
		if (seq <= r->accepted_seq)
			continue;
		if (seq != r->accepted_seq + 1)
			return -EPIPE;
		if (i == 0 && prev && !publish_hex_eq(prev, r->accepted_chain)) {
			char why[REPL_TEXT_BYTES_MAX];
			snprintf(why, sizeof(why), "the local log and the stream differ before event %"
			         PRIu64 " (another history is in the stream)", seq);
			diag_error("%s", why);
			out_fault(r, why);
			return 0;
		}
		const msgpack_object_bin *b = &evs->via.array.ptr[i].via.bin;
		int rc = publish_add(r, seq, b->ptr, b->size);
		if (rc < 0) {
			diag_error("append: event %" PRIu64 " refused (%s); the rest dropped", seq,
			          strerror(-rc));
			return -EPIPE;
		}
	}
	publish_kick(r);
	return 0;
}

/* The acknowledged prefix leaves the list; reports replicated if it moved, or
 * after a fault (a resync that found nothing to resend: the bus refuses
 * commands until it hears `replicated`, so none would ever come). */
static void publish_advance(repl_t *r)
{
	bool moved = false;
	while (r->msgs && r->msgs->acked) {
		repl_msg_t *m = r->msgs;
		r->acked_seq = m->last;
		memcpy(r->acked_chain, m->head, LOGFILE_HASH_BYTES);
		r->stream_seq = m->stream_seq;
		r->pending_bytes -= m->len;
		r->msgs = m->next;
		if (!r->msgs)
			r->msgs_tail = NULL;
		publish_msg_free(m);
		moved = true;
	}
	if ((moved || r->fault_sent) && !r->fenced) {
		r->fault_sent = false;
		out_replicated(r);
	}
	conn_t *bus = peer_bus(&r->bus);
	if (bus && r->paused && r->pending_bytes <= REPL_PENDING_BYTES_MAX / 2) {
		conn_resume(bus);
		r->paused = false;
	}
	out_maybe_hello(r);
}

static repl_msg_t *publish_find(repl_t *r, uint64_t first, uint64_t last)
{
	for (repl_msg_t *m = r->msgs; m; m = m->next)
		if (m->first == first && m->last == last && m->sent && !m->acked)
			return m;
	return NULL;
}

static void publish_resync(repl_t *r, const char *why);
static void publish_resync_timer(uv_timer_t *t);

void publish_ack(repl_t *r, const js_note_t *n)
{
	repl_msg_t *m = publish_find(r, n->first, n->last);
	if (!m || r->fenced)
		return; /* an attempt from before a resync */
	if (n->duplicate || n->stream_seq != m->expect + 1) {
		publish_resync(r, n->duplicate ? "the stream already had a message id we sent"
		                               : "a message landed at another stream sequence");
		return;
	}
	m->acked = true;
	m->stream_seq = n->stream_seq;
	r->inflight--;
	publish_advance(r);
	publish_kick(r);
}

void publish_error(repl_t *r, const js_note_t *n)
{
	if (!publish_find(r, n->first, n->last) || r->fenced)
		return;
	if (n->err_code != JSStreamWrongLastSequenceErr) {
		char why[REPL_TEXT_BYTES_MAX + 64];
		snprintf(why, sizeof(why), "publishing events %" PRIu64 "-%" PRIu64 ": %s",
		         n->first, n->last, n->text);
		publish_fault(r, why);
		/* The stream refused it (a limit, an outage): sent again at once it
		 * would be refused again, in a loop that only burns CPU. The resync,
		 * and so the next attempt, waits REPL_RETRY_MS. */
		if (!r->resync_job.busy && !uv_is_active((uv_handle_t *)&r->retry_timer))
			uv_timer_start(&r->retry_timer, publish_resync_timer, REPL_RETRY_MS, 0);
	}
	publish_resync(r, n->text);
}

void publish_reconnected(repl_t *r)
{
	if (r->mode == REPL_MODE_PRIMARY && r->ready && !r->fenced)
		publish_resync(r, "reconnected to NATS");
}

/* --- resync ------------------------------------------------------------- */

static void publish_resync_work(uv_work_t *w)
{
	repl_job_t *j = w->data;
	j->result = js_read_tail(j->r, &j->tail);
	if (j->result == 0 && j->tail.last != j->r->acked_seq)
		js_last_primary(j->r, &j->tail, REPL_PRIMARY_LOOKBACK_MAX); /* for `fenced` */
}

static void publish_fence(repl_t *r, const repl_tail_t *t)
{
	char why[REPL_TEXT_BYTES_MAX];
	snprintf(why, sizeof(why), "another primary%s%s wrote to the stream: its last event is %"
	         PRIu64 " at stream sequence %" PRIu64, *t->primary ? " " : "", t->primary, t->last,
	         t->stream_seq);
	diag_error("fenced: %s", why);
	r->fenced = true;
	r->resyncing = false;
	out_fenced(r, t->primary, why);
	out_maybe_hello(r);
}

/* Everything up to the tail is ours: mark it acknowledged. False if not ours.
 * (A resync marked every unacknowledged message unsent; the chain hash, not
 * the flag, says whether the stream holds it.) */
static bool publish_tail_is_ours(repl_t *r, const repl_tail_t *t)
{
	if (t->last == r->acked_seq)
		return memcmp(t->head, r->acked_chain, LOGFILE_HASH_BYTES) == 0;
	repl_msg_t *hit = NULL;
	for (repl_msg_t *m = r->msgs; m && !hit; m = m->next)
		if (m->last == t->last && memcmp(m->head, t->head, LOGFILE_HASH_BYTES) == 0)
			hit = m;
	if (!hit)
		return false;
	for (repl_msg_t *m = r->msgs; m; m = m->next) {
		m->acked = true;
		m->stream_seq = t->stream_seq;
		if (m == hit)
			break;
	}
	return true;
}

static void publish_resync_done(uv_work_t *w, int status)
{
	repl_job_t *j = w->data;
	repl_t *r = j->r;
	j->busy = false;
	if (r->stopping || r->fenced)
		return;
	if (status < 0 || j->result < 0) {
		publish_fault(r, "cannot read the stream's tail from NATS");
		uv_timer_start(&r->retry_timer, publish_resync_timer, REPL_RETRY_MS, 0);
		return;
	}
	if (!publish_tail_is_ours(r, &j->tail)) {
		publish_fence(r, &j->tail);
		return;
	}
	diag_info("resync: the stream holds events up to %" PRIu64 " (stream sequence %" PRIu64
	         "); publishing again from there", j->tail.last, j->tail.stream_seq);
	r->resyncing = false;
	r->next_expect = j->tail.stream_seq;
	publish_advance(r);
	publish_kick(r);
}

static void publish_resync_start(repl_t *r)
{
	if (!repl_job_start(r, &r->resync_job, publish_resync_work, publish_resync_done))
		diag_warn("resync: a tail read is already running");
}

static void publish_resync_timer(uv_timer_t *t)
{
	repl_t *r = t->data;
	if (r->resyncing && !r->resync_job.busy && !r->stopping)
		publish_resync_start(r);
}

static void publish_resync(repl_t *r, const char *why)
{
	if (!r->resyncing)
		diag_warn("resync (%s): reading the stream's tail", why);
	r->resyncing = true;
	for (repl_msg_t *m = r->msgs; m; m = m->next)
		if (m->sent && !m->acked)
			m->sent = false;
	r->inflight = 0;
	if (!r->resync_job.busy && !uv_is_active((uv_handle_t *)&r->retry_timer))
		publish_resync_start(r);
}

/* --- the bus session, the heartbeat, a takeover ------------------------- */

void publish_session_closed(repl_t *r)
{
	/* Events not yet sent may not be in the bus's log after it restarts. */
	repl_msg_t *keep = NULL;
	for (repl_msg_t *m = r->msgs; m; m = m->next)
		if (m->sent || m->acked)
			keep = m;
	repl_msg_t *drop = keep ? keep->next : r->msgs;
	if (keep) {
		keep->next = NULL;
		r->msgs_tail = keep;
	} else {
		r->msgs = r->msgs_tail = NULL;
	}
	for (repl_msg_t *next; drop; drop = next) {
		next = drop->next;
		r->pending_bytes -= drop->len;
		publish_msg_free(drop);
	}
	r->accepted_seq = keep ? keep->last : r->acked_seq;
	memcpy(r->accepted_chain, keep ? keep->head : r->acked_chain, LOGFILE_HASH_BYTES);
	r->paused = false;
}

bool publish_busy(const repl_t *r)
{
	return r->inflight > 0 || r->resyncing;
}

void publish_heartbeat(repl_t *r)
{
	if (r->mode != REPL_MODE_PRIMARY || r->fenced || !r->ready)
		return;
	js_heartbeat(r, r->acked_seq);
	uint64_t now = uv_now(r->loop);
	for (repl_msg_t *m = r->msgs; m; m = m->next)
		if (m->sent && !m->acked && now - m->sent_ms > 2 * REPL_PUBLISH_WAIT_MS) {
			publish_fault(r, "no acknowledgement from the stream");
			publish_resync(r, "no acknowledgement in time");
			break;
		}
}

void publish_take_over(repl_t *r, uint64_t seq, const uint8_t chain[LOGFILE_HASH_BYTES],
                       uint64_t q)
{
	r->mode = REPL_MODE_PRIMARY;
	r->fault_sent = false; /* a standby's fault is not the primary's */
	r->accepted_seq = r->acked_seq = seq;
	memcpy(r->accepted_chain, chain, LOGFILE_HASH_BYTES);
	memcpy(r->acked_chain, chain, LOGFILE_HASH_BYTES);
	r->stream_seq = r->next_expect = q;
}
