/*
 * recovery.c - the bus's state, and rebuilding the resolver's state from the
 * log (DESIGN.md, "Recovery: restart and replay"). The snapshotter's and the
 * mailer's catch-up are snapfeed.c's and mail.c's; recovery_check moves them
 * on too.
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
 *   4. the logger's log is checked whole: while its hwm is below the "end"
 *      its hello gave (docs/peers.md: a long log's check overlapped with
 *      the replay), D grows with each "durable"; the replay reads up to D
 *      and waits for more (recovery_durable), a resolver holding events up
 *      to end waits for them, a snapshot load may go up to end. The log
 *      holds events up to end: giving out a seq, or acknowledging anything,
 *      before they are all verified and replayed could give a seq twice.
 * Then the bus is LIVE and the held requests go through in order (hold.c).
 */
#include "hub.h"

#include "diag.h"
#include "protocol.h"


void recovery_init(hub_t *h, bus_role_t role)
{
	h->recovery.state = BUS_RECOVERING;
	h->recovery.role = role;
	snapfeed_init(h, recovery_check);
}

void recovery_set_role(hub_t *h, bus_role_t role)
{
	diag_info("role: %s -> %s", recovery_role_name(h->recovery.role), recovery_role_name(role));
	h->recovery.role = role;
}

const char *recovery_role_name(bus_role_t role)
{
	static const char *const names[] = { "single", "primary", "standby", "fenced" };
	return names[role];
}

static void recovery_go_live(hub_t *h)
{
	h->recovery.state = BUS_LIVE;
	route_go_live(h);
	diag_info("live at seq %llu", (unsigned long long)h->routes.last_seq);
	hold_release(h);
	recovery_check(h); /* now the snapshotter's catch-up */
}

static void recovery_on_read(hub_t *h, const bus_read_t *rd, const msgpack_object *msg);

static void recovery_read_more(hub_t *h)
{
	bus_read_t rd = { .on_result = recovery_on_read,
		          .arg = (void *)(uintptr_t)h->recovery.replay_gen };
	if (h->recovery.replay_next > h->routes.durable_seq + 1)
		return; /* after a snapshot past what the logger has checked: recovery_durable
		         * (at durable + 1 the read, of none, brings the snapshot's "prev") */
	/* up to durable_seq only: a fenced group's log goes on past it */
	uint64_t left = h->routes.durable_seq - h->recovery.replay_next + 1;
	uint64_t limit = left < BUS_READ_EVENTS_MAX ? left : BUS_READ_EVENTS_MAX;
	h->recovery.reading = true;
	if (reads_send(h, h->recovery.replay_next, limit, &rd) < 0)
		h->recovery.phase = REC_IDLE;
}

void recovery_durable(hub_t *h)
{
	recovery_t *r = &h->recovery;
	if (r->phase == REC_REPLAY && !r->reading &&
	    r->replay_next <= h->routes.durable_seq + r->expect_prev)
		recovery_read_more(h);
}

static void recovery_reset_all(hub_t *h, const char *why)
{
	recovery_t *r = &h->recovery;
	diag_warn("%s: rebuilding the state from the whole log", why);
	r->no_snapshots = true;
	r->expect_prev = false;
	r->phase = REC_RESET;
	batches_send_control(h, PEER_RESOLVER, PEER_MSG_RESET, 0);
	if (peer_up(h, PEER_SNAPSHOTTER))
		snapfeed_reset(h, why);
}

static void recovery_start_replay(hub_t *h, uint64_t from)
{
	diag_info("replaying events %llu..%llu to the resolver", (unsigned long long)from,
	         (unsigned long long)h->routes.durable_seq);
	h->recovery.phase = REC_REPLAY;
	h->recovery.replay_next = from;
	h->recovery.replay_gen++;
	recovery_read_more(h);
}

static void recovery_resolver(hub_t *h)
{
	recovery_t *r = &h->recovery;
	uint64_t hwm = h->routes.resolver_hwm;
	uint64_t d = h->routes.durable_seq;
	/* the logger checks its log still: events up to logger_end exist and
	 * will be durable (or cut, and the logger's session ends): no new seq
	 * before they are replayed, and a resolver holding them waits for them */
	bool checking = h->peers.logger_hwm < h->peers.logger_end;
	if (checking && hwm >= d && hwm <= h->peers.logger_end && !r->expect_prev)
		return; /* recovery_durable, or a durable's recovery_check, goes on */
	if (hwm == d && !r->expect_prev) {
		recovery_go_live(h);
	} else if (hwm > d) {
		diag_warn("the resolver is at %llu, the log at %llu: resetting it",
		         (unsigned long long)hwm, (unsigned long long)d);
		r->phase = REC_RESET;
		batches_send_control(h, PEER_RESOLVER, PEER_MSG_RESET, 0);
	} else if (hwm == 0 && !r->no_snapshots) {
		r->phase = REC_LOAD; /* a snapshot past the checked prefix waits for it */
		batches_send_control(h, PEER_RESOLVER, PEER_MSG_LOAD,
		                     checking ? h->peers.logger_end : d);
	} else {
		recovery_start_replay(h, hwm + 1);
	}
}

void recovery_check(hub_t *h)
{
	recovery_t *r = &h->recovery;
	/* the resolver's replay is what clients wait for: the snapshotter (off
	 * the critical path) is caught up only once the bus is live */
	if (r->state == BUS_LIVE)
		snapfeed_check(h);
	if (r->role != BUS_ROLE_STANDBY) /* a standby's events send no mail */
		mail_check(h);
	if (r->role != BUS_ROLE_SINGLE)
		repl_check(h);
	if (r->state == BUS_LIVE || r->phase != REC_IDLE)
		return;
	if (r->role == BUS_ROLE_FENCED) /* its events past the stream's are never durable */
		route_drop_pending(h);
	if (!peer_up(h, PEER_RESOLVER) || !peer_up(h, PEER_LOGGER) || h->routes.pending.count)
		return;
	/* a primary replays only what the stream holds too (repl.c catches it up) */
	if (r->role == BUS_ROLE_PRIMARY && !repl_caught_up(h))
		return;
	recovery_resolver(h);
	recovery_assert(r);
}

void recovery_resolver_up(hub_t *h, const msgpack_object *msg)
{
	uint64_t hwm = 0;
	msg_get_u64(msg, PEER_F_HWM, &hwm);
	route_resolver_at(h, hwm);
	h->recovery.phase = REC_IDLE;
	h->recovery.expect_prev = false;
}

void recovery_resolver_lost(hub_t *h)
{
	h->recovery.state = BUS_RECOVERING;
	h->recovery.phase = REC_IDLE;
}

void recovery_logger_lost(hub_t *h)
{
	recovery_t *r = &h->recovery;
	if (r->phase == REC_REPLAY)
		r->phase = REC_IDLE;
	/* durable_seq cannot advance without the logger: not live until it is
	 * back and every pending event is durable (recovery_check) */
	if (r->state == BUS_LIVE) {
		r->state = BUS_RECOVERING;
		r->phase = REC_IDLE;
	}
}

void recovery_replayed(hub_t *h, uint64_t hwm)
{
	recovery_t *r = &h->recovery;
	route_resolver_at(h, hwm);
	if (r->phase == REC_RESET || (r->phase == REC_REPLAY && hwm >= h->routes.durable_seq)) {
		r->phase = REC_IDLE;
		recovery_check(h);
	}
	recovery_assert(r);
}

void recovery_loaded(hub_t *h, const msgpack_object *msg)
{
	recovery_t *r = &h->recovery;
	uint64_t seq = 0;
	msg_get_u64(msg, PEER_F_HWM, &seq);
	route_resolver_at(h, seq);
	r->expect_prev = seq > 0 &&
	                 msg_get_strcpy(msg, PEER_F_CHAIN, r->prev_hash, sizeof(r->prev_hash)) == 0;
	if (seq == 0)
		r->no_snapshots = true; /* nothing usable: replay the whole log */
	else
		diag_info("the resolver loaded the snapshot at %llu", (unsigned long long)seq);
	recovery_start_replay(h, seq + 1);
	recovery_assert(r);
}

/* Checks a loaded snapshot's chain on the first read; false: stop here. */
static bool recovery_check_prev(hub_t *h, const msgpack_object *msg, uint32_t n)
{
	recovery_t *r = &h->recovery;
	if (!reads_prev_is(msg, r->prev_hash)) {
		recovery_reset_all(h, "the snapshot does not match this log");
		return false;
	}
	r->expect_prev = false;
	if (n == 0 && h->routes.resolver_hwm == h->routes.durable_seq) {
		r->phase = REC_IDLE;
		recovery_check(h);
		return false;
	}
	return true;
}

/* One batch of the resolver's replay read: forwarded, then the next read. */
static void recovery_on_read(hub_t *h, const bus_read_t *rd, const msgpack_object *msg)
{
	recovery_t *r = &h->recovery;
	if (!msg || r->phase != REC_REPLAY || !peer_up(h, PEER_RESOLVER))
		return; /* the logger went away: recovery_logger_lost */
	if ((uintptr_t)rd->arg != r->replay_gen)
		return; /* a read of an earlier replay (the resolver came back meanwhile) */
	r->reading = false;
	uint64_t first;
	const msgpack_object *evs = reads_events(msg, &first);
	uint32_t n = evs->via.array.size;
	if (r->expect_prev && !recovery_check_prev(h, msg, n))
		return;
	if (n == 0 || first != r->replay_next) {
		diag_error("replay read from %llu returned nothing usable: replaying again",
		          (unsigned long long)r->replay_next);
		r->phase = REC_IDLE;
		recovery_check(h); /* never stay recovering with nothing under way */
		return;
	}
	batches_forward(h, PEER_RESOLVER, PEER_MSG_REPLAY, msg, false);
	r->replay_next = first + n;
	if (r->replay_next <= h->routes.durable_seq)
		recovery_read_more(h);
	recovery_assert(r);
}
