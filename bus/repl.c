/*
 * repl.c - the replicator's column (docs/replication.md; the messages:
 * docs/peers.md). Runs only when the bus has a role other than single.
 *
 * Primary: each live event goes to the logger and, in the same loop
 * iteration, into the replicator's "append" (repl_live); a reply is released
 * once its event is durable in both (repl_bound: the durable seq is the
 * smaller of the logger's and "replicated"). A replicator behind the log
 * (its hello's hwm below the logger's) is caught up from the logger's read
 * pipeline, BUS_READ_EVENTS_MAX at a time, each read forwarded as one
 * "append" with the log's "prev"; the first read's "prev" must equal the
 * stream's head, else the stream holds another history and nothing is
 * replicated (a fault until the group is rejoined). Then the events not yet
 * durable (routes' pending) follow and live streaming resumes. A stream
 * ahead of this group's log is a fault too: commands get unavailable.
 *
 * Standby: once the bus is live it says "from" (the seq after its newest
 * event); "follow" events that continue its log are handed to routes.c
 * (repl_follow), a gap asks "from" again. Promotion: "promote" out, then
 * "promoted" names the takeover record S; it arrives as a follow event, and
 * once the resolver has applied it the client gets {"ok":true,"seq":S} and
 * the bus is primary (peers.c switches the role).
 */
#include "hub.h"

#include "diag.h"
#include "protocol.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

static uint64_t repl_cid_next = 1; /* correlation ids of "promote" */

static void repl_copy_str(const msgpack_object *msg, const char *key, char *dst, size_t size)
{
	const char *s;
	size_t n;
	if (msg_get_str(msg, key, &s, &n) < 0)
		return;
	if (n >= size)
		n = size - 1;
	memcpy(dst, s, n);
	dst[n] = '\0';
}

static void repl_set_fault(repl_t *r, const char *why, size_t n)
{
	r->fault = true;
	if (n >= sizeof(r->why))
		n = sizeof(r->why) - 1;
	memcpy(r->why, why, n);
	r->why[n] = '\0';
}

void repl_judge(hub_t *h)
{
	repl_t *r = &h->repl;
	if (r->judged || !peer_up(h, PEER_LOGGER) || !peer_up(h, PEER_REPLICATOR))
		return;
	r->judged = true;
	uint64_t mine = h->routes.last_seq > h->peers.logger_hwm ? h->routes.last_seq
	                                                          : h->peers.logger_hwm;
	if (h->peers.logger_end > mine) /* the logger checks its log still */
		mine = h->peers.logger_end;
	if (r->stream_hwm > mine) {
		static const char why[] = "the stream is ahead of this group's log: another "
		                          "primary wrote; restart this group with --follow";
		diag_error("%s (stream %llu, log %llu)", why, (unsigned long long)r->stream_hwm,
		          (unsigned long long)mine);
		repl_set_fault(r, why, sizeof(why) - 1);
		return;
	}
	if (r->stream_hwm > r->replicated)
		r->replicated = r->stream_hwm;
	r->verify = r->stream_hwm > 0 && r->head[0];
}

void repl_up(hub_t *h, const msgpack_object *msg)
{
	repl_t *r = &h->repl;
	r->stream_hwm = 0;
	msg_get_u64(msg, PEER_F_HWM, &r->stream_hwm);
	msg_get_u64(msg, PEER_F_STREAM_SEQ, &r->stream_seq);
	msg_get_u64(msg, PEER_F_REPLICAS, &r->replicas);
	repl_copy_str(msg, PEER_F_STREAM, r->stream, sizeof(r->stream));
	repl_copy_str(msg, PEER_F_NODE, r->node, sizeof(r->node));
	r->head[0] = '\0';
	repl_copy_str(msg, PEER_F_HEAD, r->head, sizeof(r->head));
	r->fault = false;
	r->next = 0;
	r->from = 0;
	r->sent = r->stream_hwm;
	if (h->recovery.role != BUS_ROLE_PRIMARY)
		return;
	const char *fault;
	size_t fault_n;
	if (msg_get_str(msg, PEER_F_FAULT, &fault, &fault_n) == 0) { /* it cannot publish now */
		diag_warn("the replicator cannot publish: %.*s; commands get unavailable until it "
		         "replicates again", (int)fault_n, fault);
		repl_set_fault(r, fault, fault_n);
	}
	r->judged = false;
	repl_judge(h);
}

void repl_down(hub_t *h)
{
	repl_t *r = &h->repl;
	r->next = 0;
	r->from = 0;
	if (r->promote_client && r->promote_cid) {
		clients_send_error(h, r->promote_to, r->promote_id, PROTO_E_UNAVAILABLE,
		                   "the replicator went away before the promotion was done");
		clients_done(h, r->promote_to);
		r->promote_client = false;
	}
	if (!r->takeover_seq)
		r->promoting = false;
	repl_assert(r);
}

/* Sends {"t":"append","first","prev"?,"events"} of a log read (msg) at once. */
static void repl_forward(hub_t *h, uint64_t first, const msgpack_object *msg)
{
	conn_t *c = &h->peers.peer[PEER_REPLICATOR].link.conn;
	const msgpack_object *evs = msg_get(msg, PEER_F_EVENTS);
	const char *prev;
	size_t prev_n;
	bool with_prev = msg_get_str(msg, PEER_F_PREV, &prev, &prev_n) == 0;
	msgpack_packer *pk = conn_pack_begin(c);
	msgpack_pack_map(pk, 3 + with_prev);
	msg_pack_kv_str(pk, PEER_T, PEER_MSG_APPEND);
	msg_pack_kv_u64(pk, PEER_F_FIRST, first);
	if (with_prev)
		msg_pack_kv_strn(pk, PEER_F_PREV, prev, prev_n);
	batches_pack_events(pk, evs);
	conn_pack_end(c);
}

/* The events not yet durable (routes' pending) after sent, then live. */
static void repl_stream_pending(hub_t *h)
{
	repl_t *r = &h->repl;
	const bus_fifo_t *pending = &h->routes.pending;
	for (size_t i = 0; i < pending->count; i++) {
		const pending_event_t *p = bus_fifo_peek(pending, i);
		if (p->seq == r->sent + 1) {
			batches_add_repl(h, p->seq, p->ev.p, p->ev.n);
			r->sent = p->seq;
		}
	}
}

static void repl_on_read(hub_t *h, const bus_read_t *rd, const msgpack_object *msg);

static void repl_read(hub_t *h)
{
	bus_read_t rd = { .on_result = repl_on_read };
	if (reads_send(h, h->repl.next, BUS_READ_EVENTS_MAX, &rd) < 0)
		h->repl.next = 0;
}

/* One batch of the replicator's catch-up read: forwarded, then the next. */
static void repl_on_read(hub_t *h, const bus_read_t *rd, const msgpack_object *msg)
{
	(void)rd;
	repl_t *r = &h->repl;
	if (!msg || !r->next || !peer_up(h, PEER_REPLICATOR) || r->fault) {
		r->next = 0;
		return;
	}
	uint64_t first;
	const msgpack_object *evs = reads_events(msg, &first);
	uint32_t n = evs->via.array.size;
	if (r->verify && first == r->stream_hwm + 1) {
		r->verify = false;
		if (!reads_prev_is(msg, r->head)) {
			static const char why[] = "the stream holds another history than this "
			                          "group's log; restart this group with --follow";
			diag_error("%s (they differ at %llu)", why, (unsigned long long)r->stream_hwm);
			repl_set_fault(r, why, sizeof(why) - 1);
			r->next = 0;
			return;
		}
	}
	if (n == 0 || first != r->next) {
		r->next = 0;
		return;
	}
	repl_forward(h, first, msg);
	r->sent = first + n - 1;
	r->next = r->sent + 1;
	if (r->sent < h->peers.logger_hwm) {
		repl_read(h);
		return;
	}
	r->next = 0;
	repl_stream_pending(h);
}

/* Standby: asks for the events after the bus's newest one. */
static void repl_send_from(hub_t *h, uint64_t seq)
{
	conn_t *c = &h->peers.peer[PEER_REPLICATOR].link.conn;
	msgpack_packer *pk = conn_pack_begin(c);
	msgpack_pack_map(pk, 2);
	msg_pack_kv_str(pk, PEER_T, PEER_MSG_FROM);
	msg_pack_kv_u64(pk, PEER_F_SEQ, seq);
	conn_pack_end(c);
	h->repl.from = seq;
}

void repl_check(hub_t *h)
{
	repl_t *r = &h->repl;
	if (!peer_up(h, PEER_REPLICATOR))
		return;
	if (h->recovery.role == BUS_ROLE_STANDBY) {
		if (h->recovery.state == BUS_LIVE && r->from == 0)
			repl_send_from(h, h->routes.last_seq + 1);
		return;
	}
	if (h->recovery.role != BUS_ROLE_PRIMARY || r->next || r->fault ||
	    !peer_up(h, PEER_LOGGER) || !r->judged)
		return;
	if (r->sent < h->peers.logger_hwm) {
		r->next = r->sent + 1;
		repl_read(h);
	} else {
		repl_stream_pending(h);
	}
	repl_assert(r);
}

void repl_live(hub_t *h, uint64_t seq, const char *ev, size_t n)
{
	repl_t *r = &h->repl;
	if (h->recovery.role != BUS_ROLE_PRIMARY || r->next || seq != r->sent + 1 ||
	    !peer_up(h, PEER_REPLICATOR) || r->fault)
		return; /* repl_check catches it up from the log and pending */
	batches_add_repl(h, seq, ev, n);
	r->sent = seq;
}

void repl_replicated(hub_t *h, const msgpack_object *msg)
{
	repl_t *r = &h->repl;
	uint64_t seq = 0;
	msg_get_u64(msg, PEER_F_SEQ, &seq);
	msg_get_u64(msg, PEER_F_STREAM_SEQ, &r->stream_seq);
	if (seq > r->sent) {
		diag_error("the replicator says %llu replicated, but only %llu was sent: ignored",
		          (unsigned long long)seq, (unsigned long long)r->sent);
		return;
	}
	if (r->fault && !r->verify)
		diag_info("the stream takes events again (replicated %llu)", (unsigned long long)seq);
	r->fault = false;
	if (seq > r->replicated)
		r->replicated = seq;
}

void repl_fault(hub_t *h, const msgpack_object *msg)
{
	const char *m = "";
	size_t n = 0;
	msg_get_str(msg, PEER_F_MESSAGE, &m, &n);
	if (!h->repl.fault)
		diag_warn("replicator fault: %.*s; commands get unavailable until it replicates "
		         "again", (int)n, m);
	repl_set_fault(&h->repl, m, n);
}

void repl_fenced(hub_t *h, const msgpack_object *msg)
{
	repl_t *r = &h->repl;
	const char *m = "";
	size_t n = 0;
	msg_get_str(msg, PEER_F_MESSAGE, &m, &n);
	r->primary[0] = '\0';
	repl_copy_str(msg, PEER_F_PRIMARY, r->primary, sizeof(r->primary));
	diag_error("fenced: %.*s; this group acknowledges nothing more (primary now: %s)", (int)n,
	          m, r->primary[0] ? r->primary : "unknown");
	repl_set_fault(r, m, n);
}

/* A heartbeat of the primary: it had replicated seq when it sent it. */
static void repl_heard(hub_t *h, uint64_t seq)
{
	repl_t *r = &h->repl;
	uint64_t now = bus_now_ms(), applied = h->routes.resolver_hwm;
	if (applied >= seq)
		r->held_ms = now;
	else if (r->heard_ms && applied >= r->heard_seq && r->heard_ms > r->held_ms)
		r->held_ms = r->heard_ms;
	r->heard_seq = seq;
	r->heard_ms = now;
}

void repl_primary(hub_t *h, const msgpack_object *msg)
{
	uint64_t seq;
	repl_copy_str(msg, PEER_F_NODE, h->repl.primary, sizeof(h->repl.primary));
	msg_get_u64(msg, PEER_F_STREAM_SEQ, &h->repl.stream_seq);
	if (msg_get_u64(msg, PEER_F_HWM, &seq) == 0)
		repl_heard(h, seq);
}

bool repl_standby_lag(const hub_t *h, uint64_t applied, uint64_t *events, uint64_t *ms)
{
	const repl_t *r = &h->repl;
	if (!r->heard_ms)
		return false;
	uint64_t now = bus_now_ms();
	uint64_t held = applied >= r->heard_seq ? r->heard_ms : r->held_ms;
	*events = r->heard_seq > applied ? r->heard_seq - applied : 0;
	*ms = held && now - held <= REPL_LAG_FRESH_MS ? 0 : now - (held ? held : r->heard_ms);
	return true;
}

int repl_follow(hub_t *h, const msgpack_object *msg, uint64_t last, uint32_t *skip,
                const msgpack_object **evs)
{
	repl_t *r = &h->repl;
	uint64_t first = 0;
	msg_get_u64(msg, PEER_F_FIRST, &first);
	msg_get_u64(msg, PEER_F_STREAM_SEQ, &r->stream_seq);
	if (h->recovery.role != BUS_ROLE_STANDBY || h->recovery.state != BUS_LIVE) {
		r->from = 0; /* asked again once live (repl_check) */
		return -EAGAIN;
	}
	const msgpack_object *a = msg_get(msg, PEER_F_EVENTS);
	if (!a || a->type != MSGPACK_OBJECT_ARRAY || first == 0) {
		diag_error("malformed follow from the replicator: ignored");
		return -EAGAIN;
	}
	for (uint32_t i = 0; i < a->via.array.size; i++)
		if (a->via.array.ptr[i].type != MSGPACK_OBJECT_BIN)
			return -EAGAIN;
	uint32_t n = a->via.array.size;
	if (n == 0 || first + n - 1 <= last)
		return -EAGAIN; /* nothing new: a repeat after a "from" */
	if (first > last + 1) {
		if (r->from != last + 1) {
			diag_warn("follow: events from %llu after %llu: asking from %llu again",
			         (unsigned long long)first, (unsigned long long)last,
			         (unsigned long long)(last + 1));
			repl_send_from(h, last + 1);
		}
		return -EAGAIN;
	}
	*skip = (uint32_t)(last + 1 - first);
	*evs = a;
	return 0;
}

void repl_promote(hub_t *h, client_ref_t to, uint64_t id)
{
	repl_t *r = &h->repl;
	if (h->recovery.role != BUS_ROLE_STANDBY) {
		clients_send_error(h, to, id, PROTO_E_NOT_STANDBY, NULL);
	} else if (!peer_up(h, PEER_REPLICATOR) || r->promoting) {
		clients_send_error(h, to, id, PROTO_E_UNAVAILABLE,
		                   r->promoting ? "a promotion is under way; retry later"
		                                : "the replicator is not connected; retry later");
	} else {
		r->promoting = true;
		r->promote_client = true;
		r->promote_to = to;
		r->promote_id = id;
		r->promote_cid = repl_cid_next++;
		r->takeover_seq = 0;
		conn_t *c = &h->peers.peer[PEER_REPLICATOR].link.conn;
		msgpack_packer *pk = conn_pack_begin(c);
		msgpack_pack_map(pk, 2);
		msg_pack_kv_str(pk, PEER_T, PEER_MSG_PROMOTE);
		msg_pack_kv_u64(pk, PEER_F_CID, r->promote_cid);
		conn_pack_end(c);
		diag_info("promote: asking the replicator to take over");
		return; /* answered when the takeover record is applied */
	}
	clients_done(h, to);
}

/* "promoted" with an error: the client (if it is the one asking) hears why. */
static void repl_promote_failed(hub_t *h, uint64_t cid, const msgpack_object *msg)
{
	repl_t *r = &h->repl;
	char err[32] = "", why[REPL_WHY_BYTES] = "the promotion failed";
	repl_copy_str(msg, PEER_F_ERROR, err, sizeof(err));
	repl_copy_str(msg, PEER_F_MESSAGE, why, sizeof(why));
	diag_warn("promote failed: %s: %s", err, why);
	if (r->promote_client && cid == r->promote_cid) {
		proto_err_t e = strcmp(err, "not_standby") == 0 ? PROTO_E_NOT_STANDBY
		                                               : PROTO_E_UNAVAILABLE;
		clients_send_error(h, r->promote_to, r->promote_id, e, why);
		clients_done(h, r->promote_to);
		r->promote_client = false;
	}
	r->promoting = false;
}

void repl_promoted(hub_t *h, const msgpack_object *msg)
{
	repl_t *r = &h->repl;
	uint64_t cid = 0, seq = 0;
	msg_get_u64(msg, PEER_F_CID, &cid);
	if (msg_get_u64(msg, PEER_F_SEQ, &seq) < 0 || seq == 0) {
		repl_promote_failed(h, cid, msg);
		return;
	}
	if (!r->promote_client || cid != r->promote_cid)
		diag_info("the replicator promoted this group on its own (takeover at %llu)",
		         (unsigned long long)seq);
	r->promoting = true; /* also an --auto-promote of the replicator's own */
	r->takeover_seq = seq;
	repl_assert(r);
}

bool repl_promotion_applied(hub_t *h, uint64_t hwm)
{
	repl_t *r = &h->repl;
	if (!r->promoting || !r->takeover_seq || hwm < r->takeover_seq ||
	    h->recovery.role != BUS_ROLE_STANDBY)
		return false;
	diag_info("promoted: the takeover record %llu is applied; this group is the primary",
	         (unsigned long long)r->takeover_seq);
	if (r->promote_client) {
		msg_buf_t b;
		msg_buf_init(&b);
		proto_pack_ok(&b.pk, r->promote_id, 1);
		msg_pack_kv_u64(&b.pk, PEER_F_SEQ, r->takeover_seq);
		clients_send(h, r->promote_to, b.sb.data, b.sb.size);
		msg_buf_free(&b);
		clients_done(h, r->promote_to);
		r->promote_client = false;
	}
	return true;
}

void repl_now_primary(hub_t *h, uint64_t seq)
{
	repl_t *r = &h->repl;
	(void)h;
	r->promoting = false;
	r->takeover_seq = 0;
	r->sent = seq;
	r->next = 0;
	if (seq > r->replicated)
		r->replicated = seq;
	r->fault = false;
	memcpy(r->primary, r->node, sizeof(r->primary));
	repl_assert(r);
}

uint64_t repl_bound(const hub_t *h, uint64_t logger_seq)
{
	bus_role_t role = h->recovery.role;
	if (role != BUS_ROLE_PRIMARY && role != BUS_ROLE_FENCED)
		return logger_seq;
	return logger_seq < h->repl.replicated ? logger_seq : h->repl.replicated;
}

bool repl_stalled(const hub_t *h)
{
	return h->recovery.role == BUS_ROLE_PRIMARY && h->repl.fault;
}

bool repl_caught_up(const hub_t *h)
{
	/* a fault says nothing more can be replicated now, not that the stream
	 * lacks what it acknowledged: a bus restarted during an outage recovers */
	return peer_up(h, PEER_REPLICATOR) && h->repl.judged &&
	       h->repl.replicated >= h->peers.logger_hwm;
}

void repl_send_not_primary(hub_t *h, client_ref_t to, uint64_t id)
{
	const char *primary = h->repl.primary;
	const char *text = proto_err_text(PROTO_E_NOT_PRIMARY);
	msg_buf_t b;
	msg_buf_init(&b);
	msgpack_pack_map(&b.pk, 5);
	msg_pack_kv_u64(&b.pk, "id", id);
	msg_pack_kv_bool(&b.pk, "ok", false);
	msg_pack_kv_str(&b.pk, "error", proto_err_name(PROTO_E_NOT_PRIMARY));
	msg_pack_kv_str(&b.pk, "message", text);
	if (primary[0])
		msg_pack_kv_str(&b.pk, PEER_F_PRIMARY, primary);
	else
		msg_pack_kv_nil(&b.pk, PEER_F_PRIMARY);
	clients_send(h, to, b.sb.data, b.sb.size);
	msg_buf_free(&b);
}

bool repl_refuse(hub_t *h, client_ref_t to, uint64_t id)
{
	bus_role_t role = h->recovery.role;
	if (role == BUS_ROLE_STANDBY || role == BUS_ROLE_FENCED) {
		repl_send_not_primary(h, to, id);
		return true;
	}
	if (role != BUS_ROLE_PRIMARY || (peer_up(h, PEER_REPLICATOR) && !h->repl.fault))
		return false;
	char why[REPL_WHY_BYTES + 64];
	snprintf(why, sizeof(why), "the event log cannot be replicated just now (%s); retry later",
	         h->repl.fault ? h->repl.why : "the replicator is not connected");
	clients_send_error(h, to, id, PROTO_E_UNAVAILABLE, why);
	return true;
}
