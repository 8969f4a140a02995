/*
 * routes.c - the routing table of DESIGN.md, written once:
 *
 *   origin            | resolver          | logger | snapshotter          | mailer
 *   ------------------+-------------------+--------+----------------------+----------------------
 *   live command      | resolve           | append | apply, after durable | notify, after durable
 *                     |                   |        |                      | (types that send mail)
 *   replay (recovery) | apply only        | -      | apply, if behind     | -
 *   follow (standby)  | apply, after      | append | apply, after durable | -
 *                     | durable (replay)  |        |                      |
 *   dry run           | check, answer;    | -      | -                    | -
 *                     | apply nothing     |        |                      |
 *
 * A dry run ("dry_run": true, resolver/dryrun.c) needs no code of its own
 * here: its result item has a reply and no "ev", so route_results() holds
 * the reply until its "w" (the seq of the state it saw) is durable, as for
 * a query, and nothing reaches the logger or the other peers.
 *
 * And the replicator's column (repl.c): a primary's live events go to it in
 * the same iteration as to the logger, and "durable" means durable in both
 * (peers.c passes route_durable the smaller seq); a standby's followed
 * events come from it.
 *
 * A "transfers" request's events come as "evs" lists, in items of which
 * only the last carries the reply (docs/peers.md): each event is queued as
 * a single transfer's is; the reply is held until the last is durable.
 *
 * Live: route_to_resolver() -> resolver ("req"); route_results() -> logger
 * ("append") and the hold queue; route_durable() -> client replies,
 * snapshotter ("events"), mailer ("mail"), subscribers. Replay rows are
 * driven by recovery.c and snapfeed.c. Every message to a peer is batched
 * per loop iteration (batches.c).
 *
 * The resolver's events must come in seq order, each last_seq + 1. Any
 * other (a gap: events resolved that never reached this bus; or a repeat)
 * means the link lost or mixed up results: the event is not logged, the rest
 * of the batch is dropped and peers.c resets the link (route_results says -EPROTO), which
 * makes the bus RECOVERING (route_resolver_lost: the dropped requests get `unavailable`);
 * on reconnect the resolver is rebuilt from the log (recovery.c).
 */
#include "hub.h"

#include "diag.h"
#include "protocol.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

void routes_init(hub_t *h)
{
	routes_t *r = &h->routes;
	r->next_cid = 1;
	r->out_base = 1;
	bus_fifo_init(&r->pending, sizeof(pending_event_t));
	bus_fifo_init(&r->held_replies, sizeof(held_reply_t));
}

static outstanding_t *route_out_slot(routes_t *r, uint64_t cid)
{
	return &r->out[cid & (r->out_cap - 1)];
}

/* Doubles the ring of outstanding requests, keeping each at cid % cap. */
static int route_out_grow(routes_t *r)
{
	size_t cap = r->out_cap ? r->out_cap * 2 : 1024;
	outstanding_t *ring = calloc(cap, sizeof(*ring));
	if (!ring)
		return -1;
	for (uint64_t cid = r->out_base; cid < r->next_cid && r->out_cap; cid++) {
		outstanding_t *o = route_out_slot(r, cid);
		if (o->cid)
			ring[cid & (cap - 1)] = *o;
	}
	free(r->out);
	r->out = ring;
	r->out_cap = cap;
	return 0;
}

void route_to_resolver(hub_t *h, client_ref_t from, uint64_t id, const char *req, size_t n)
{
	routes_t *r = &h->routes;
	assert(h->recovery.state == BUS_LIVE); /* no request reaches it while recovering */
	if (n + BUS_BATCH_ITEM_OVERHEAD > BUS_BATCH_BYTES_MAX) {
		/* it would not fit in a frame to the resolver with its wrapping;
		 * no valid command or query is anywhere near this size */
		clients_send_error(
			h, from, id, PROTO_E_BAD_REQUEST,
			"request too large to forward (frame within 288 bytes of the limit)");
		clients_done(h, from);
		return;
	}
	if (r->next_cid - r->out_base >= r->out_cap && route_out_grow(r) < 0) {
		clients_send_error(h, from, id, PROTO_E_OVERLOADED, "out of memory");
		clients_done(h, from);
		return;
	}
	uint64_t cid = r->next_cid++;
	*route_out_slot(r, cid) = (outstanding_t){ .cid = cid, .from = from, .req_id = id };
	msgpack_packer *pk = batches_add(h, PEER_RESOLVER, n + BUS_BATCH_ITEM_OVERHEAD);
	msgpack_pack_map(pk, 2);
	msg_pack_kv_u64(pk, PEER_F_CID, cid);
	msg_pack_kv_bin(pk, PEER_F_REQUEST, req, n);
}

/* Takes the outstanding entry of cid; false when unknown. */
static bool route_out_take(routes_t *r, uint64_t cid, outstanding_t *out)
{
	if (cid < r->out_base || cid >= r->next_cid)
		return false;
	outstanding_t *o = route_out_slot(r, cid);
	if (o->cid != cid)
		return false;
	*out = *o;
	o->cid = 0;
	while (r->out_base < r->next_cid && route_out_slot(r, r->out_base)->cid == 0)
		r->out_base++;
	return true;
}

/* The request id of a reply (p, n); 0 if it has none. */
static uint64_t route_reply_id(const char *p, size_t n)
{
	msgpack_zone zone;
	msgpack_zone_init(&zone, 256);
	msgpack_object reply;
	uint64_t id = 0;
	if (msg_decode_map(p, n, &zone, &reply) == 0)
		msg_get_u64(&reply, "id", &id);
	msgpack_zone_destroy(&zone);
	return id;
}

/* A held reply (p, n) whose event will not be replicated: not_primary instead. */
static void route_refuse_reply(hub_t *h, client_ref_t to, const char *p, size_t n)
{
	repl_send_not_primary(h, to, route_reply_id(p, n));
	clients_done(h, to);
}

/* A query's reply (p, n) that shows events the stream does not hold while
 * replication is down: unavailable instead. */
static void route_refuse_query(hub_t *h, client_ref_t to, const char *p, size_t n)
{
	clients_send_error(h, to, route_reply_id(p, n), PROTO_E_UNAVAILABLE,
	                   "the answer includes events not yet replicated, and the stream "
	                   "takes none now; retry later");
	clients_done(h, to);
}

/* query: a reply without an event (a query, a dry run). */
static void route_hold_reply(hub_t *h, client_ref_t to, uint64_t wait_seq, bool query,
                             const char *p, size_t n)
{
	routes_t *r = &h->routes;
	if (wait_seq <= r->durable_seq && r->held_replies.count == 0) {
		clients_send(h, to, p, n);
		clients_done(h, to);
		return;
	}
	if (h->recovery.role == BUS_ROLE_FENCED) { /* it will never be durable here */
		route_refuse_reply(h, to, p, n);
		return;
	}
	if (query && wait_seq > r->durable_seq && repl_stalled(h)) {
		route_refuse_query(h, to, p, n);
		return;
	}
	held_reply_t *hr = bus_fifo_push(&r->held_replies);
	if (!hr) {
		diag_error("out of memory holding a reply");
		abort(); /* a reply that cannot be held would be lost: crash and recover */
	}
	hr->to = to;
	hr->wait_seq = wait_seq;
	hr->query = query;
	bus_bytes_copy(&hr->reply, p, n);
}

/* Queues the resolver's event seq; false (nothing queued) after a gap. */
static bool route_event(hub_t *h, uint64_t seq, const char *ev, size_t evn,
                        const char *mail, size_t mailn)
{
	routes_t *r = &h->routes;
	if (seq != r->last_seq + 1) {
		diag_error("resolver sent event %llu after %llu: resetting its link to recover",
		          (unsigned long long)seq, (unsigned long long)r->last_seq);
		return false;
	}
	r->last_seq = seq;
	r->resolver_hwm = seq;
	pending_event_t *p = bus_fifo_push(&r->pending);
	if (!p) {
		diag_error("out of memory holding an event");
		abort();
	}
	p->seq = seq;
	bus_bytes_copy(&p->ev, ev, evn);
	if (mail)
		bus_bytes_copy(&p->mail, mail, mailn);
	batches_add_append(h, seq, ev, evn);
	if (h->recovery.role != BUS_ROLE_SINGLE)
		repl_live(h, seq, ev, evn);
	return true;
}

void route_followed(hub_t *h, const msgpack_object *evs, uint32_t skip)
{
	routes_t *r = &h->routes;
	assert(h->recovery.role == BUS_ROLE_STANDBY);
	for (uint32_t i = skip; i < evs->via.array.size; i++) {
		const msgpack_object_bin *ev = &evs->via.array.ptr[i].via.bin;
		pending_event_t *p = bus_fifo_push(&r->pending);
		if (!p) {
			diag_error("out of memory holding a followed event");
			abort(); /* restarted, it follows from its log's end */
		}
		p->seq = ++r->last_seq;
		bus_bytes_copy(&p->ev, ev->ptr, ev->size);
		batches_add_append(h, p->seq, ev->ptr, ev->size);
	}
	routes_assert(r);
}

/* A "transfers" item's events: "first":S,"evs":[bin,...]; false after a gap. */
static bool route_events(hub_t *h, const msgpack_object *it)
{
	const msgpack_object *evs = msg_get(it, PEER_F_EVS);
	uint64_t first;
	if (!evs)
		return true;
	if (evs->type != MSGPACK_OBJECT_ARRAY || msg_get_u64(it, PEER_F_FIRST, &first) < 0) {
		diag_error("malformed evs in a result item from the resolver");
		return false;
	}
	for (uint32_t k = 0; k < evs->via.array.size; k++) {
		const msgpack_object *ev = &evs->via.array.ptr[k];
		if (ev->type != MSGPACK_OBJECT_BIN ||
		    !route_event(h, first + k, ev->via.bin.ptr, ev->via.bin.size, NULL, 0))
			return false;
	}
	return true;
}

int route_results(hub_t *h, const msgpack_object *items)
{
	for (uint32_t i = 0; items && i < items->via.array.size; i++) {
		const msgpack_object *it = &items->via.array.ptr[i];
		uint64_t cid, w;
		const char *reply, *ev = NULL, *mail = NULL;
		size_t reply_n, ev_n = 0, mail_n = 0;
		if (msg_get_u64(it, PEER_F_CID, &cid) < 0 ||
		    msg_get_u64(it, PEER_F_WAIT_SEQ, &w) < 0) {
			diag_error("malformed result item from the resolver");
			continue;
		}
		if (!route_events(h, it))
			return -EPROTO; /* its request and the rest get unavailable */
		if (msg_get_bin(it, PEER_F_REPLY, &reply, &reply_n) < 0) {
			if (!msg_get(it, PEER_F_EVS))
				diag_error("result item from the resolver without a reply");
			continue; /* a "transfers" item whose reply comes later */
		}
		if (msg_get_bin(it, PEER_F_EV, &ev, &ev_n) == 0) {
			msg_get_bin(it, PEER_F_MAIL, &mail, &mail_n);
			if (!route_event(h, w, ev, ev_n, mail, mail_n))
				return -EPROTO; /* its request and the rest get unavailable */
		}
		outstanding_t o;
		bool query = !ev && !msg_get(it, PEER_F_EVS);
		if (route_out_take(&h->routes, cid, &o))
			route_hold_reply(h, o.from, w, query, reply, reply_n);
	}
	routes_assert(&h->routes);
	return 0;
}

static void route_durable_event(hub_t *h, pending_event_t *p)
{
	if (h->recovery.role == BUS_ROLE_STANDBY && h->recovery.state == BUS_LIVE &&
	    p->seq > h->routes.resolver_hwm) {
		batches_add_replay(h, p->ev.p, p->ev.n);
		h->routes.resolver_hwm = p->seq;
	}
	snapfeed_durable(h, p);
	clientreads_live(h, p->seq, &p->ev);
	if (p->mail.p)
		mail_durable(h, p); /* takes p->ev and p->mail */
}

void route_durable(hub_t *h, uint64_t seq)
{
	routes_t *r = &h->routes;
	if (seq > r->durable_seq)
		r->durable_seq = seq;
	while (r->pending.count) {
		pending_event_t *p = bus_fifo_peek(&r->pending, 0);
		if (p->seq > r->durable_seq)
			break;
		route_durable_event(h, p);
		bus_bytes_free(&p->ev);
		bus_bytes_free(&p->mail);
		bus_fifo_pop(&r->pending);
	}
	while (r->held_replies.count) {
		held_reply_t *hr = bus_fifo_peek(&r->held_replies, 0);
		if (hr->wait_seq > r->durable_seq)
			break;
		clients_send(h, hr->to, hr->reply.p, hr->reply.n);
		clients_done(h, hr->to);
		bus_bytes_free(&hr->reply);
		bus_fifo_pop(&r->held_replies);
	}
	assert(!r->pending.count ||
	       ((pending_event_t *)bus_fifo_peek(&r->pending, 0))->seq > r->durable_seq);
	routes_assert(r);
}

void route_logger_up(hub_t *h, uint64_t hwm)
{
	const routes_t *r = &h->routes;
	for (size_t i = 0; i < r->pending.count; i++) {
		const pending_event_t *p = bus_fifo_peek(&r->pending, i);
		if (p->seq > hwm)
			batches_add_append(h, p->seq, p->ev.p, p->ev.n);
	}
}

void route_resolver_lost(hub_t *h)
{
	routes_t *r = &h->routes;
	for (uint64_t cid = r->out_base; cid < r->next_cid; cid++) {
		outstanding_t o;
		if (!route_out_take(r, cid, &o))
			continue;
		clients_send_error(h, o.from, o.req_id, PROTO_E_UNAVAILABLE,
		                   "the resolver restarted before answering; retry");
		clients_done(h, o.from);
	}
	batches_discard(h, PEER_RESOLVER);
	routes_assert(r);
}

void route_refuse_held(hub_t *h)
{
	routes_t *r = &h->routes;
	while (r->held_replies.count) {
		held_reply_t *hr = bus_fifo_peek(&r->held_replies, 0);
		route_refuse_reply(h, hr->to, hr->reply.p, hr->reply.n);
		bus_bytes_free(&hr->reply);
		bus_fifo_pop(&r->held_replies);
	}
	routes_assert(r);
}

void route_refuse_held_queries(hub_t *h)
{
	routes_t *r = &h->routes;
	for (size_t n = r->held_replies.count; n > 0; n--) { /* each once, order kept */
		held_reply_t hr = *(held_reply_t *)bus_fifo_peek(&r->held_replies, 0);
		bus_fifo_pop(&r->held_replies);
		if (hr.query) {
			route_refuse_query(h, hr.to, hr.reply.p, hr.reply.n);
			bus_bytes_free(&hr.reply);
			continue;
		}
		held_reply_t *back = bus_fifo_push(&r->held_replies);
		if (!back) {
			diag_error("out of memory holding a reply");
			abort();
		}
		*back = hr;
	}
	routes_assert(r);
}

void route_drop_pending(hub_t *h)
{
	routes_t *r = &h->routes;
	while (r->pending.count) {
		pending_event_t *p = bus_fifo_peek(&r->pending, 0);
		bus_bytes_free(&p->ev);
		bus_bytes_free(&p->mail);
		bus_fifo_pop(&r->pending);
	}
	r->last_seq = r->durable_seq;
	routes_assert(r);
}

void route_resolver_at(hub_t *h, uint64_t hwm)
{
	h->routes.resolver_hwm = hwm;
}

void route_go_live(hub_t *h)
{
	h->routes.last_seq = h->routes.resolver_hwm;
	routes_assert(&h->routes);
}
