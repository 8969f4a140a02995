/*
 * recovery.c - rebuilding the resolver's state from the log, and catching
 * the snapshotter up (DESIGN.md, "Recovery: restart and replay").
 *
 * Whenever the bus starts or the resolver reconnects the bus is RECOVERING:
 * requests are held (BUS_HELD_MAX, each at most BUS_HOLD_MS_MAX) until
 *   1. both the resolver and the logger said hello;
 *   2. every event the bus still holds is durable (a resolver restart must
 *      not reuse sequence numbers that are on their way to the log);
 *   3. the resolver's hwm equals the durable seq D: when it is ahead, it is
 *      told to reset (its extra events were never acknowledged); when it
 *      is behind, the events after its hwm are read from the logger in
 *      large batches and replayed to it (reads are pipelined: the next read
 *      goes out as soon as a batch arrives, not when it is applied).
 * Then the bus is LIVE and the held requests go through in order.
 */
#include "hub.h"

#include "log.h"
#include "request.h"

static void recovery_go_live(hub_t *h)
{
	h->state = BUS_LIVE;
	h->last_seq = h->peers[PEER_RESOLVER].hwm;
	log_info("live at seq %llu", (unsigned long long)h->last_seq);
	recovery_release_held(h);
}

static void recovery_read_more(hub_t *h)
{
	pending_read_t rd = { 0 };
	if (events_read(h, READ_REPLAY, h->replay_next, BUS_READ_EVENTS_MAX, &rd) < 0)
		h->replaying = false;
}

static void recovery_send_reset(hub_t *h)
{
	conn_t *c = &h->peers[PEER_RESOLVER].link.conn;
	msgpack_packer *pk = conn_pack_begin(c);
	msgpack_pack_map(pk, 1);
	msg_pack_kv_str(pk, "t", "reset");
	conn_pack_end(c);
}

static void recovery_snapshotter_catch_up(hub_t *h)
{
	peer_t *s = &h->peers[PEER_SNAPSHOTTER];
	if (!peer_up(h, PEER_SNAPSHOTTER) || h->snap_next || s->hwm >= h->durable_seq)
		return;
	if (!peer_up(h, PEER_LOGGER))
		return;
	h->snap_next = s->hwm + 1;
	pending_read_t rd = { 0 };
	if (events_read(h, READ_SNAPSHOTTER, h->snap_next, BUS_READ_EVENTS_MAX, &rd) < 0)
		h->snap_next = 0;
}

void recovery_check(hub_t *h)
{
	recovery_snapshotter_catch_up(h);
	if (h->state == BUS_LIVE || h->replaying)
		return;
	peer_t *res = &h->peers[PEER_RESOLVER];
	if (!peer_up(h, PEER_RESOLVER) || !peer_up(h, PEER_LOGGER) || h->pending.count)
		return;
	uint64_t d = h->durable_seq;
	if (res->hwm == d) {
		recovery_go_live(h);
		return;
	}
	h->replaying = true;
	if (res->hwm > d) {
		log_warn("resolver is at %llu, the log at %llu: resetting it",
		         (unsigned long long)res->hwm, (unsigned long long)d);
		h->replay_next = 0;
		recovery_send_reset(h);
		return;
	}
	log_info("replaying events %llu..%llu to the resolver",
	         (unsigned long long)res->hwm + 1, (unsigned long long)d);
	h->replay_next = res->hwm + 1;
	recovery_read_more(h);
}

void recovery_replayed(hub_t *h, uint64_t hwm)
{
	h->peers[PEER_RESOLVER].hwm = hwm;
	if (h->replay_next == 0 || hwm >= h->durable_seq) {
		h->replaying = false;
		recovery_check(h);
	}
}

/* Packs {"t":type,"events":[bin...]} for a peer from a logger read result. */
static void recovery_forward(peer_t *p, const char *type, const msgpack_object *evs)
{
	msgpack_packer *pk = conn_pack_begin(&p->link.conn);
	msgpack_pack_map(pk, 2);
	msg_pack_kv_str(pk, "t", type);
	msg_pack_str(pk, "events");
	msgpack_pack_array(pk, evs->via.array.size);
	for (uint32_t i = 0; i < evs->via.array.size; i++)
		msg_pack_binn(pk, evs->via.array.ptr[i].via.bin.ptr, evs->via.array.ptr[i].via.bin.size);
	conn_pack_end(&p->link.conn);
}

void recovery_read_result(hub_t *h, uint64_t first, const msgpack_object *evs, uint64_t last)
{
	if (!h->replaying || !peer_up(h, PEER_RESOLVER))
		return;
	uint32_t n = evs->via.array.size;
	if (n == 0 || first != h->replay_next) {
		log_error("replay read from %llu returned nothing usable (log at %llu)",
		          (unsigned long long)h->replay_next, (unsigned long long)last);
		h->replaying = false;
		return;
	}
	recovery_forward(&h->peers[PEER_RESOLVER], "replay", evs);
	h->replay_next = first + n;
	if (h->replay_next <= h->durable_seq)
		recovery_read_more(h);
}

void recovery_snapshotter_read(hub_t *h, uint64_t first, const msgpack_object *evs)
{
	if (!h->snap_next || !peer_up(h, PEER_SNAPSHOTTER)) {
		h->snap_next = 0;
		return;
	}
	uint32_t n = evs->via.array.size;
	if (n == 0 || first != h->snap_next) {
		h->snap_next = 0;
		return;
	}
	recovery_forward(&h->peers[PEER_SNAPSHOTTER], "events", evs);
	h->snap_next = first + n;
	h->peers[PEER_SNAPSHOTTER].hwm = first + n - 1;
	pending_read_t rd = { 0 };
	if (h->snap_next > h->durable_seq ||
	    events_read(h, READ_SNAPSHOTTER, h->snap_next, BUS_READ_EVENTS_MAX, &rd) < 0)
		h->snap_next = 0;
}

void recovery_release_held(hub_t *h)
{
	while (h->held_requests.count && h->state == BUS_LIVE) {
		held_request_t *r = fifo_peek(&h->held_requests, 0);
		if (hub_client(h, r->from))
			route_to_resolver(h, r->from, r->req_id, r->req.p, r->req.n);
		bytes_free(&r->req);
		fifo_pop(&h->held_requests);
	}
}

void recovery_tick(hub_t *h)
{
	uint64_t now = hub_now_ms();
	while (h->held_requests.count) {
		held_request_t *r = fifo_peek(&h->held_requests, 0);
		if (now - r->since_ms < BUS_HOLD_MS_MAX)
			break;
		hub_send_error(h, r->from, r->req_id, LEDGER_E_UNAVAILABLE,
		               "the server is recovering; retry later");
		hub_request_done(h, r->from);
		bytes_free(&r->req);
		fifo_pop(&h->held_requests);
	}
}
