/*
 * routes.h - the live path (routes.c): requests to the resolver, its results
 * to the logger and the hold queue of replies, durable events to the
 * snapshotter, the mailer and subscribers.
 *
 * Invariants:
 *   - the events not yet durable sit in pending, in seq order without a
 *     gap, the newest being last_seq; each is held until the logger reports
 *     it durable (after route_durable: the oldest is past durable_seq);
 *   - a reply is sent to its client only when durable_seq >= its wait seq,
 *     and in the order resolved: the oldest held reply waits for a later seq;
 *   - outstanding requests have cids in [out_base, next_cid), fewer than out_cap.
 */
#ifndef ESBANK_BUS_ROUTES_H
#define ESBANK_BUS_ROUTES_H

#include "bus.h"
#include "msg.h"

#include <assert.h>

/* A reply waiting for durability. */
typedef struct {
	client_ref_t to;
	uint64_t wait_seq;
	bool query;        /* no event of its own: a query or a dry run */
	bus_bytes_t reply;
} held_reply_t;

/* A request forwarded to the resolver, by correlation id. */
typedef struct {
	uint64_t cid; /* 0: free slot */
	client_ref_t from;
	uint64_t req_id;
} outstanding_t;

typedef struct {
	uint64_t last_seq;      /* newest event resolved */
	uint64_t durable_seq;
	uint64_t resolver_hwm;  /* the resolver's: its hello, replay, each event it resolved */
	bus_fifo_t pending;     /* pending_event_t, seq order */
	bus_fifo_t held_replies; /* held_reply_t */
	outstanding_t *out;     /* ring indexed by cid % out_cap */
	size_t out_cap;
	uint64_t next_cid, out_base;
} routes_t;

static inline void routes_assert(const routes_t *r)
{
	if (r->pending.count) {
		const pending_event_t *first = bus_fifo_peek(&r->pending, 0);
		const pending_event_t *last = bus_fifo_peek(&r->pending, r->pending.count - 1);
		assert(last->seq == r->last_seq && last->seq - first->seq + 1 == r->pending.count);
	}
	if (r->held_replies.count) {
		const held_reply_t *oldest = bus_fifo_peek(&r->held_replies, 0);
		assert(oldest->wait_seq > r->durable_seq);
	}
	assert(r->out_base <= r->next_cid && r->next_cid - r->out_base <= r->out_cap);
}

void routes_init(hub_t *h);
/* Forwards a request to the resolver (the bus is live). */
void route_to_resolver(hub_t *h, client_ref_t from, uint64_t id, const char *req, size_t n);
/*
 * The resolver's "res" items: events to the logger, replies held. Returns 0,
 * or -EPROTO after a gap (an event not last_seq + 1): the rest is dropped and
 * the caller resets the resolver's link.
 */
int route_results(hub_t *h, const msgpack_object *items);
/*
 * A standby's followed events: evs (an array of bin) from index skip on are
 * last_seq + 1, ...: held until durable, appended to the log.
 */
void route_followed(hub_t *h, const msgpack_object *evs, uint32_t skip);
/* Fenced: every held reply gets not_primary (its event is not replicated). */
void route_refuse_held(hub_t *h);
/* Replication stalled (repl_stalled): every held query's reply gets
 * unavailable (it shows events the stream lacks); commands stay held. */
void route_refuse_held_queries(hub_t *h);
/* Fenced and recovering: the events not durable (not in the stream, never
 * acknowledged; a rejoin cuts them) are forgotten; last_seq = durable_seq. */
void route_drop_pending(hub_t *h);
/* The log is durable up to seq: replies and durable events go out. */
void route_durable(hub_t *h, uint64_t seq);
/* A new logger holds every event up to hwm: the later pending ones are sent again. */
void route_logger_up(hub_t *h, uint64_t hwm);
/* The resolver's link is down: its outstanding requests get unavailable. */
void route_resolver_lost(hub_t *h);
/* The resolver said (hello, replayed, loaded) that it holds every event up to hwm. */
void route_resolver_at(hub_t *h, uint64_t hwm);
/* The bus goes live: the next event is the resolver's hwm + 1. */
void route_go_live(hub_t *h);

#endif
