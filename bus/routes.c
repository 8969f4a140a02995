/*
 * routes.c - the routing table of DESIGN.md, written once:
 *
 *   origin            | resolver          | logger | snapshotter          | mailer
 *   ------------------+-------------------+--------+----------------------+----------------------
 *   live command      | resolve           | append | apply, after durable | notify, after durable
 *                     |                   |        |                      | (types that send mail)
 *   replay (recovery) | apply only        | -      | apply, if behind     | -
 *
 * Live: route_request() -> resolver ("req"); route_results() -> logger
 * ("append") and the hold queue; route_durable() -> client replies,
 * snapshotter ("events"), mailer ("mail"), subscribers. Replay rows are
 * driven by recovery.c. Every message to a peer is batched per loop
 * iteration and sent by route_flush_batches().
 *
 * The resolver's events must come in seq order, each last_seq + 1. Any
 * other (a gap: events resolved that never reached this bus; or a repeat)
 * means the link lost or mixed up results: the event is not logged, the rest
 * of the batch is dropped and the link is reset, which makes the bus
 * RECOVERING (route_resolver_lost: the dropped requests get `unavailable`);
 * on reconnect the resolver is rebuilt from the log (recovery.c).
 */
#include "hub.h"

#include "log.h"
#include "request.h"

#include <stdlib.h>
#include <string.h>

static outstanding_t *route_out_slot(hub_t *h, uint64_t cid)
{
	return &h->out[cid & (h->out_cap - 1)];
}

/* Doubles the ring of outstanding requests, keeping each at cid % cap. */
static int route_out_grow(hub_t *h)
{
	size_t cap = h->out_cap ? h->out_cap * 2 : 1024;
	outstanding_t *ring = calloc(cap, sizeof(*ring));
	if (!ring)
		return -1;
	for (uint64_t cid = h->out_base; cid < h->next_cid && h->out_cap; cid++) {
		outstanding_t *o = route_out_slot(h, cid);
		if (o->cid)
			ring[cid & (cap - 1)] = *o;
	}
	free(h->out);
	h->out = ring;
	h->out_cap = cap;
	return 0;
}

void route_to_resolver(hub_t *h, client_ref_t from, uint64_t id, const char *req, size_t n)
{
	if (n + BUS_BATCH_ITEM_OVERHEAD > BUS_BATCH_BYTES_MAX) {
		/* it would not fit in a frame to the resolver with its wrapping;
		 * no valid command or query is anywhere near this size */
		hub_send_error(h, from, id, PROTO_E_BAD_REQUEST,
		               "request too large to forward (frame within 288 bytes of the limit)");
		hub_request_done(h, from);
		return;
	}
	if (h->next_cid - h->out_base >= h->out_cap && route_out_grow(h) < 0) {
		hub_send_error(h, from, id, PROTO_E_OVERLOADED, "out of memory");
		hub_request_done(h, from);
		return;
	}
	uint64_t cid = h->next_cid++;
	*route_out_slot(h, cid) = (outstanding_t){ .cid = cid, .from = from, .req_id = id };
	msgpack_packer *pk = route_batch_add(h, PEER_RESOLVER, n + BUS_BATCH_ITEM_OVERHEAD);
	msgpack_pack_map(pk, 2);
	msg_pack_kv_u64(pk, "c", cid);
	msg_pack_kv_bin(pk, "r", req, n);
}

/* Takes the outstanding entry of cid; false when unknown. */
static bool route_out_take(hub_t *h, uint64_t cid, outstanding_t *out)
{
	if (cid < h->out_base || cid >= h->next_cid)
		return false;
	outstanding_t *o = route_out_slot(h, cid);
	if (o->cid != cid)
		return false;
	*out = *o;
	o->cid = 0;
	while (h->out_base < h->next_cid && route_out_slot(h, h->out_base)->cid == 0)
		h->out_base++;
	return true;
}

static void route_hold_request(hub_t *h, client_t *c, uint64_t id, int op, const char *req,
                               size_t n)
{
	held_request_t *r = h->held_requests.count < BUS_HELD_MAX ? fifo_push(&h->held_requests)
	                                                          : NULL;
	if (!r) {
		hub_send_error(h, hub_client_ref(c), id, PROTO_E_UNAVAILABLE,
		               "the server is recovering; retry later");
		hub_request_done(h, hub_client_ref(c));
		return;
	}
	r->from = hub_client_ref(c);
	r->req_id = id;
	r->since_ms = hub_now_ms();
	r->command = proto_op_is_command((proto_op_t)op);
	bytes_copy(&r->req, req, n);
}

/* Decodes the fields of events / subscribe (bad_request checks included). */
static bool route_decode(hub_t *h, client_t *c, uint64_t id, const char *req, size_t n,
                         ledger_cmd_t *cmd)
{
	msgpack_zone zone;
	msgpack_zone_init(&zone, 1024);
	msgpack_object map;
	const char *why = NULL;
	proto_err_t e = PROTO_E_BAD_REQUEST;
	if (msg_decode_map(req, n, &zone, &map) == 0)
		e = request_decode(&map, cmd, &why);
	msgpack_zone_destroy(&zone);
	if (e == PROTO_OK)
		return true;
	hub_send_error(h, hub_client_ref(c), id, e, why ? why : "invalid request");
	hub_request_done(h, hub_client_ref(c));
	return false;
}

void route_request(hub_t *h, client_t *c, uint64_t id, int op, const char *req, size_t n)
{
	ledger_cmd_t cmd;
	switch ((proto_op_t)op) {
	case PROTO_OP_PING: {
		msg_buf_t b;
		msg_buf_init(&b);
		proto_pack_ok(&b.pk, id, 0);
		hub_send_raw(h, hub_client_ref(c), b.sb.data, b.sb.size);
		msg_buf_free(&b);
		hub_request_done(h, hub_client_ref(c));
		return;
	}
	case PROTO_OP_STATUS:
		status_reply(h, c, id);
		hub_request_done(h, hub_client_ref(c));
		return;
	case PROTO_OP_EVENTS:
		if (route_decode(h, c, id, req, n, &cmd))
			events_request(h, c, id, cmd.has_from ? cmd.from_seq : 1, cmd.limit);
		return;
	case PROTO_OP_SUBSCRIBE:
		if (route_decode(h, c, id, req, n, &cmd))
			events_subscribe(h, c, id, cmd.has_from, cmd.from_seq);
		return;
	default:
		break;
	}
	if (h->log_fault && proto_op_is_command((proto_op_t)op)) {
		/* the log cannot be written: nothing new may be acknowledged */
		hub_send_error(h, hub_client_ref(c), id, PROTO_E_UNAVAILABLE,
		               "the event log cannot be written just now; retry later");
		hub_request_done(h, hub_client_ref(c));
		return;
	}
	if (h->state != BUS_LIVE || !peer_up(h, PEER_RESOLVER))
		route_hold_request(h, c, id, op, req, n);
	else
		route_to_resolver(h, hub_client_ref(c), id, req, n);
}

static void route_hold_reply(hub_t *h, client_ref_t to, uint64_t wait_seq, const char *p,
                             size_t n)
{
	if (wait_seq <= h->durable_seq && h->held_replies.count == 0) {
		hub_send_raw(h, to, p, n);
		hub_request_done(h, to);
		return;
	}
	held_reply_t *r = fifo_push(&h->held_replies);
	if (!r) {
		log_error("out of memory holding a reply");
		abort(); /* a reply that cannot be held would be lost: crash and recover */
	}
	r->to = to;
	r->wait_seq = wait_seq;
	bytes_copy(&r->reply, p, n);
}

/* Queues the resolver's event seq; false (nothing queued) after a gap. */
static bool route_event(hub_t *h, uint64_t seq, const char *ev, size_t evn,
                        const char *mail, size_t mailn)
{
	if (seq != h->last_seq + 1) {
		log_error("resolver sent event %llu after %llu: resetting its link to recover",
		          (unsigned long long)seq, (unsigned long long)h->last_seq);
		link_reset(&h->peers[PEER_RESOLVER].link);
		return false;
	}
	h->last_seq = seq;
	h->peers[PEER_RESOLVER].hwm = seq;
	pending_event_t *p = fifo_push(&h->pending);
	if (!p) {
		log_error("out of memory holding an event");
		abort();
	}
	p->seq = seq;
	bytes_copy(&p->ev, ev, evn);
	if (mail)
		bytes_copy(&p->mail, mail, mailn);
	route_append_event(h, seq, ev, evn);
	return true;
}

void route_results(hub_t *h, const msgpack_object *items)
{
	for (uint32_t i = 0; items && i < items->via.array.size; i++) {
		const msgpack_object *it = &items->via.array.ptr[i];
		uint64_t cid, w;
		const char *reply, *ev = NULL, *mail = NULL;
		size_t reply_n, ev_n = 0, mail_n = 0;
		if (msg_get_u64(it, "c", &cid) < 0 || msg_get_u64(it, "w", &w) < 0 ||
		    msg_get_bin(it, "reply", &reply, &reply_n) < 0) {
			log_error("malformed result item from the resolver");
			continue;
		}
		if (msg_get_bin(it, "ev", &ev, &ev_n) == 0) {
			msg_get_bin(it, "mail", &mail, &mail_n);
			if (!route_event(h, w, ev, ev_n, mail, mail_n))
				return; /* its request and the rest get unavailable */
		}
		outstanding_t o;
		if (route_out_take(h, cid, &o))
			route_hold_reply(h, o.from, w, reply, reply_n);
	}
}

static void route_durable_event(hub_t *h, pending_event_t *p)
{
	peer_t *snap = &h->peers[PEER_SNAPSHOTTER];
	if (snap->hello && h->snap_next == 0 && p->seq > snap->hwm) {
		msgpack_packer *pk =
			route_batch_add(h, PEER_SNAPSHOTTER, p->ev.n + BUS_BATCH_ITEM_OVERHEAD);
		msg_pack_binn(pk, p->ev.p, p->ev.n);
	}
	events_live(h, p->seq, &p->ev);
	if (p->mail.p)
		mail_durable(h, p); /* takes p->ev and p->mail */
}

void route_durable(hub_t *h, uint64_t seq)
{
	if (seq > h->durable_seq)
		h->durable_seq = seq;
	while (h->pending.count) {
		pending_event_t *p = fifo_peek(&h->pending, 0);
		if (p->seq > h->durable_seq)
			break;
		route_durable_event(h, p);
		bytes_free(&p->ev);
		bytes_free(&p->mail);
		fifo_pop(&h->pending);
	}
	while (h->held_replies.count) {
		held_reply_t *r = fifo_peek(&h->held_replies, 0);
		if (r->wait_seq > h->durable_seq)
			break;
		hub_send_raw(h, r->to, r->reply.p, r->reply.n);
		hub_request_done(h, r->to);
		bytes_free(&r->reply);
		fifo_pop(&h->held_replies);
	}
	if (h->state != BUS_LIVE)
		recovery_check(h);
}

void route_logger_lost(hub_t *h)
{
	/* durable_seq cannot advance without the logger: not live until it is
	 * back and every pending event is durable (recovery_check) */
	if (h->state == BUS_LIVE) {
		h->state = BUS_RECOVERING;
		h->rec_phase = REC_IDLE;
	}
}

void route_resolver_lost(hub_t *h)
{
	for (uint64_t cid = h->out_base; cid < h->next_cid; cid++) {
		outstanding_t o;
		if (!route_out_take(h, cid, &o))
			continue;
		hub_send_error(h, o.from, o.req_id, PROTO_E_UNAVAILABLE,
		               "the resolver restarted before answering; retry");
		hub_request_done(h, o.from);
	}
	msg_buf_reset(&h->batch[PEER_RESOLVER].items);
	h->batch[PEER_RESOLVER].n = 0;
	h->state = BUS_RECOVERING;
	h->rec_phase = REC_IDLE;
}

/* Each peer's batch message: {"t": type, field: [items...]}. */
static const struct {
	const char *type;
	const char *field;
} route_batch_names[PEER_COUNT] = {
	[PEER_RESOLVER] = { "req", "items" },
	[PEER_LOGGER] = { "append", "events" },
	[PEER_SNAPSHOTTER] = { "events", "events" },
	[PEER_MAILER] = { "mail", "items" },
};

/*
 * Sends role's batch as one frame and empties it (dropped when the peer is
 * not up: see docs/peers.md for who catches up how). partial: sent early
 * because it is full; the snapshotter's batch then carries no "head" (that
 * hash belongs to durable_seq, not to its last event).
 */
static void route_send_batch(hub_t *h, peer_role_t role, bool partial)
{
	batch_t *b = &h->batch[role];
	if (b->n == 0)
		return;
	peer_t *p = &h->peers[role];
	if (p->link.up && p->hello) {
		msgpack_packer *pk = conn_pack_begin(&p->link.conn);
		bool head = role == PEER_SNAPSHOTTER && h->peers[PEER_LOGGER].head[0] && !partial;
		msgpack_pack_map(pk, 2 + (role == PEER_LOGGER) + head);
		msg_pack_kv_str(pk, "t", route_batch_names[role].type);
		if (role == PEER_LOGGER)
			msg_pack_kv_u64(pk, "first", h->to_logger_first);
		if (head) /* the log's hash at the batch's last event: durable_seq */
			msg_pack_kv_str(pk, "head", h->peers[PEER_LOGGER].head);
		msg_pack_str(pk, route_batch_names[role].field);
		msgpack_pack_array(pk, b->n);
		msg_buf_append(&p->link.conn.out, b->items.sb.data, b->items.sb.size);
		conn_pack_end(&p->link.conn);
	}
	msg_buf_reset(&b->items);
	b->n = 0;
}

msgpack_packer *route_batch_add(hub_t *h, peer_role_t role, size_t item_bytes)
{
	batch_t *b = &h->batch[role];
	if (b->items.sb.size + item_bytes > BUS_BATCH_BYTES_MAX)
		route_send_batch(h, role, true);
	b->n++;
	return &b->items.pk;
}

void route_append_event(hub_t *h, uint64_t seq, const char *ev, size_t n)
{
	msgpack_packer *pk = route_batch_add(h, PEER_LOGGER, n + BUS_BATCH_ITEM_OVERHEAD);
	if (h->batch[PEER_LOGGER].n == 1)
		h->to_logger_first = seq;
	msg_pack_binn(pk, ev, n);
}

void route_flush_batches(hub_t *h)
{
	for (int r = 0; r < PEER_COUNT; r++)
		route_send_batch(h, (peer_role_t)r, false);
}
