/*
 * recovery.c - rebuilding the resolver's state, and catching the snapshotter
 * and the mailer up (DESIGN.md, "Recovery: restart and replay").
 *
 * Whenever the bus starts or the resolver reconnects the bus is RECOVERING:
 * requests are held (BUS_HELD_MAX, each at most BUS_HOLD_MS_MAX) until
 *   1. both the resolver and the logger said hello;
 *   2. every event the bus still holds is durable (a resolver restart must
 *      not reuse sequence numbers that are on their way to the log);
 *   3. the resolver's hwm equals the durable seq D. The phases:
 *      - resolver ahead of D: REC_RESET, it drops its state (its extra
 *        events were never acknowledged);
 *      - resolver empty and D > 0: REC_LOAD, it loads the newest valid
 *        snapshot at or below D (DATA/snapshots) and says its seq S and the
 *        chain hash it recorded;
 *      - REC_REPLAY: events after its hwm are read from the logger in large
 *        batches and replayed to it; reads are pipelined (the next read goes
 *        out as soon as a batch arrives). After a snapshot load the first
 *        read's "prev" (the log's hash at S) must equal the snapshot's chain
 *        hash; when it does not, the snapshot belongs to another history:
 *        the resolver and the snapshotter are reset and the state is rebuilt
 *        from the whole log (no_snapshots).
 * Then the bus is LIVE and the held requests go through in order.
 */
#include "hub.h"

#include "log.h"
#include "protocol.h"

#include <string.h>

static void recovery_go_live(hub_t *h)
{
	h->state = BUS_LIVE;
	h->last_seq = h->peers[PEER_RESOLVER].hwm;
	log_info("live at seq %llu", (unsigned long long)h->last_seq);
	recovery_release_held(h);
	recovery_check(h); /* now the snapshotter's catch-up */
}

static void recovery_send(peer_t *p, const char *type, uint64_t max)
{
	msgpack_packer *pk = conn_pack_begin(&p->link.conn);
	msgpack_pack_map(pk, max ? 2 : 1);
	msg_pack_kv_str(pk, "t", type);
	if (max)
		msg_pack_kv_u64(pk, "max", max);
	conn_pack_end(&p->link.conn);
}

static void recovery_read_more(hub_t *h)
{
	pending_read_t rd = { 0 };
	if (events_read(h, READ_REPLAY, h->replay_next, BUS_READ_EVENTS_MAX, &rd) < 0)
		h->rec_phase = REC_IDLE;
}

static void recovery_reset_snapshotter(hub_t *h, const char *why)
{
	log_warn("%s: resetting the snapshotter", why);
	recovery_send(&h->peers[PEER_SNAPSHOTTER], "reset", 0);
	h->peers[PEER_SNAPSHOTTER].hwm = 0;
	h->snap_next = 0;
	h->snap_verify = false;
}

static void recovery_reset_all(hub_t *h, const char *why)
{
	log_warn("%s: rebuilding the state from the whole log", why);
	h->no_snapshots = true;
	h->expect_prev = false;
	h->rec_phase = REC_RESET;
	recovery_send(&h->peers[PEER_RESOLVER], "reset", 0);
	if (peer_up(h, PEER_SNAPSHOTTER))
		recovery_reset_snapshotter(h, why);
}

static void recovery_start_replay(hub_t *h, uint64_t from)
{
	log_info("replaying events %llu..%llu to the resolver", (unsigned long long)from,
	         (unsigned long long)h->durable_seq);
	h->rec_phase = REC_REPLAY;
	h->replay_next = from;
	recovery_read_more(h);
}

static void recovery_resolver(hub_t *h)
{
	peer_t *res = &h->peers[PEER_RESOLVER];
	uint64_t d = h->durable_seq;
	if (res->hwm == d && !h->expect_prev) {
		recovery_go_live(h);
	} else if (res->hwm > d) {
		log_warn("the resolver is at %llu, the log at %llu: resetting it",
		         (unsigned long long)res->hwm, (unsigned long long)d);
		h->rec_phase = REC_RESET;
		recovery_send(res, "reset", 0);
	} else if (res->hwm == 0 && !h->no_snapshots) {
		h->rec_phase = REC_LOAD;
		recovery_send(res, "load", d);
	} else {
		recovery_start_replay(h, res->hwm + 1);
	}
}

static void recovery_catch_up(hub_t *h, peer_role_t role, read_kind_t kind, uint64_t *next)
{
	peer_t *p = &h->peers[role];
	bool verify = role == PEER_SNAPSHOTTER && h->snap_verify;
	if (!peer_up(h, role) || !peer_up(h, PEER_LOGGER) || *next)
		return;
	if (p->hwm > h->durable_seq && role == PEER_SNAPSHOTTER) {
		recovery_reset_snapshotter(h, "the snapshotter is past the log");
		return;
	}
	if (p->hwm >= h->durable_seq && !verify)
		return;
	*next = p->hwm + 1;
	pending_read_t rd = { 0 };
	if (events_read(h, kind, *next, BUS_READ_EVENTS_MAX, &rd) < 0)
		*next = 0;
}

void recovery_check(hub_t *h)
{
	/* the resolver's replay is what clients wait for: the snapshotter (off
	 * the critical path) is caught up only once the bus is live */
	if (h->state == BUS_LIVE)
		recovery_catch_up(h, PEER_SNAPSHOTTER, READ_SNAPSHOTTER, &h->snap_next);
	mail_check(h);
	if (h->state == BUS_LIVE || h->rec_phase != REC_IDLE)
		return;
	if (!peer_up(h, PEER_RESOLVER) || !peer_up(h, PEER_LOGGER) || h->pending.count)
		return;
	recovery_resolver(h);
}

void recovery_peer_hello(hub_t *h, peer_t *p, const msgpack_object *msg)
{
	if (p->role == PEER_RESOLVER) {
		h->rec_phase = REC_IDLE;
		h->expect_prev = false;
	} else if (p->role == PEER_SNAPSHOTTER) {
		/* the state it loaded must belong to this log: checked at catch-up */
		h->snap_verify = p->hwm > 0 &&
		                 msg_get_strcpy(msg, "chain", p->head, sizeof(p->head)) == 0;
		h->snap_next = 0;
	} else if (p->role == PEER_MAILER) {
		mail_hello(h, msg);
	}
}

void recovery_replayed(hub_t *h, uint64_t hwm)
{
	h->peers[PEER_RESOLVER].hwm = hwm;
	if (h->rec_phase == REC_RESET || (h->rec_phase == REC_REPLAY && hwm >= h->durable_seq)) {
		h->rec_phase = REC_IDLE;
		recovery_check(h);
	}
}

void recovery_loaded(hub_t *h, const msgpack_object *msg)
{
	uint64_t seq = 0;
	msg_get_u64(msg, "hwm", &seq);
	h->peers[PEER_RESOLVER].hwm = seq;
	h->expect_prev = seq > 0 &&
	                 msg_get_strcpy(msg, "chain", h->prev_hash, sizeof(h->prev_hash)) == 0;
	if (seq == 0)
		h->no_snapshots = true; /* nothing usable: replay the whole log */
	else
		log_info("the resolver loaded the snapshot at %llu", (unsigned long long)seq);
	recovery_start_replay(h, seq + 1);
}

/* Packs {"t":type,"events":[bin...]} (+ "head") for a peer from a read result. */
static void recovery_forward(peer_t *p, const char *type, const msgpack_object *msg,
                             bool with_head)
{
	const msgpack_object *evs = msg_get(msg, "events");
	const char *head;
	size_t head_n;
	with_head = with_head && msg_get_str(msg, "head", &head, &head_n) == 0;
	msgpack_packer *pk = conn_pack_begin(&p->link.conn);
	msgpack_pack_map(pk, 2 + with_head);
	msg_pack_kv_str(pk, "t", type);
	if (with_head)
		msg_pack_kv_strn(pk, "head", head, head_n);
	msg_pack_str(pk, "events");
	msgpack_pack_array(pk, evs->via.array.size);
	for (uint32_t i = 0; i < evs->via.array.size; i++)
		msg_pack_binn(pk, evs->via.array.ptr[i].via.bin.ptr, evs->via.array.ptr[i].via.bin.size);
	conn_pack_end(&p->link.conn);
}

/* True when the read's "prev" is the chain hash a snapshot recorded. */
static bool recovery_prev_matches(const msgpack_object *msg, const char *chain)
{
	const char *prev;
	size_t n;
	if (msg_get_str(msg, "prev", &prev, &n) < 0)
		return false;
	return n == strlen(chain) && memcmp(prev, chain, n) == 0;
}

void recovery_read_result(hub_t *h, const msgpack_object *msg)
{
	if (h->rec_phase != REC_REPLAY || !peer_up(h, PEER_RESOLVER))
		return;
	const msgpack_object *evs = msg_get(msg, "events");
	uint64_t first = 0;
	msg_get_u64(msg, "first", &first);
	uint32_t n = evs->via.array.size;
	if (h->expect_prev) {
		if (!recovery_prev_matches(msg, h->prev_hash)) {
			recovery_reset_all(h, "the snapshot does not match this log");
			return;
		}
		h->expect_prev = false;
		if (n == 0 && h->peers[PEER_RESOLVER].hwm == h->durable_seq) {
			h->rec_phase = REC_IDLE;
			recovery_check(h);
			return;
		}
	}
	if (n == 0 || first != h->replay_next) {
		log_error("replay read from %llu returned nothing usable",
		          (unsigned long long)h->replay_next);
		h->rec_phase = REC_IDLE;
		return;
	}
	recovery_forward(&h->peers[PEER_RESOLVER], "replay", msg, false);
	h->replay_next = first + n;
	if (h->replay_next <= h->durable_seq)
		recovery_read_more(h);
}

/* One batch of a catch-up read for the snapshotter or the mailer. */
static void recovery_catch_up_read(hub_t *h, const msgpack_object *msg, peer_role_t role,
                                   read_kind_t kind, uint64_t *next, uint64_t target)
{
	const msgpack_object *evs = msg_get(msg, "events");
	uint64_t first = 0;
	msg_get_u64(msg, "first", &first);
	uint32_t n = evs->via.array.size;
	if (role == PEER_SNAPSHOTTER && h->snap_verify && *next) {
		h->snap_verify = false;
		if (!recovery_prev_matches(msg, h->peers[role].head)) {
			recovery_reset_snapshotter(h, "the snapshotter's state is not of this log");
			recovery_check(h);
			return;
		}
	}
	if (!*next || !peer_up(h, role) || n == 0 || first != *next) {
		*next = 0;
		return;
	}
	recovery_forward(&h->peers[role], "events", msg, true);
	*next = first + n;
	h->peers[role].hwm = first + n - 1;
	pending_read_t rd = { 0 };
	if (*next > target || *next > h->durable_seq ||
	    events_read(h, kind, *next, BUS_READ_EVENTS_MAX, &rd) < 0)
		*next = 0;
}

void recovery_snapshotter_read(hub_t *h, const msgpack_object *msg)
{
	recovery_catch_up_read(h, msg, PEER_SNAPSHOTTER, READ_SNAPSHOTTER, &h->snap_next,
	                       h->durable_seq);
}

void recovery_release_held(hub_t *h)
{
	while (h->held_requests.count && h->state == BUS_LIVE) {
		held_request_t *r = fifo_peek(&h->held_requests, 0);
		if (hub_client(h, r->from) && r->command && h->log_fault) {
			hub_send_error(h, r->from, r->req_id, PROTO_E_UNAVAILABLE,
			               "the event log cannot be written just now; retry later");
			hub_request_done(h, r->from);
		} else if (hub_client(h, r->from)) {
			route_to_resolver(h, r->from, r->req_id, r->req.p, r->req.n);
		}
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
		hub_send_error(h, r->from, r->req_id, PROTO_E_UNAVAILABLE,
		               "the server is recovering; retry later");
		hub_request_done(h, r->from);
		bytes_free(&r->req);
		fifo_pop(&h->held_requests);
	}
}
