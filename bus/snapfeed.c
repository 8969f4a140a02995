/*
 * snapfeed.c - the snapshotter's feed (DESIGN.md, "Recovery"). Live: each
 * durable event past its hwm goes into its next "events" batch. Catch-up:
 * once the bus is live (the resolver's replay comes first), a snapshotter
 * behind the durable seq is sent the missing events read from the logger,
 * BUS_READ_EVENTS_MAX at a time; live events wait meanwhile (next != 0).
 * A snapshotter that loaded a state says the chain hash it recorded: its
 * first catch-up read checks it against the log's "prev"; when they differ,
 * or when it is past the log, it is reset and starts empty.
 */
#include "hub.h"

#include "diag.h"
#include "protocol.h"


void snapfeed_init(hub_t *h, snapfeed_reset_cb on_reset)
{
	h->snapfeed.on_reset = on_reset;
}

void snapfeed_up(hub_t *h, const msgpack_object *msg)
{
	snapfeed_t *s = &h->snapfeed;
	s->hwm = 0;
	msg_get_u64(msg, PEER_F_HWM, &s->hwm);
	msg_get_u64(msg, PEER_F_SNAPSHOT, &s->snapshot_seq);
	/* the state it loaded must belong to this log: checked at catch-up */
	s->verify = s->hwm > 0 &&
	            msg_get_strcpy(msg, PEER_F_CHAIN, s->chain, sizeof(s->chain)) == 0;
	s->next = 0;
}

void snapfeed_ack(hub_t *h, const msgpack_object *msg)
{
	msg_get_u64(msg, PEER_F_HWM, &h->snapfeed.hwm);
	msg_get_u64(msg, PEER_F_SNAPSHOT, &h->snapfeed.snapshot_seq);
}

void snapfeed_down(hub_t *h)
{
	h->snapfeed.next = 0;
}

void snapfeed_reset(hub_t *h, const char *why)
{
	snapfeed_t *s = &h->snapfeed;
	diag_warn("%s: resetting the snapshotter", why);
	batches_send_control(h, PEER_SNAPSHOTTER, PEER_MSG_RESET, 0);
	s->hwm = 0;
	s->next = 0;
	s->verify = false;
}

static void snapfeed_on_read(hub_t *h, const bus_read_t *rd, const msgpack_object *msg);

static void snapfeed_read(hub_t *h)
{
	bus_read_t rd = { .on_result = snapfeed_on_read };
	if (reads_send(h, h->snapfeed.next, BUS_READ_EVENTS_MAX, &rd) < 0)
		h->snapfeed.next = 0;
}

void snapfeed_check(hub_t *h)
{
	snapfeed_t *s = &h->snapfeed;
	uint64_t durable = h->routes.durable_seq;
	if (!peer_up(h, PEER_SNAPSHOTTER) || !peer_up(h, PEER_LOGGER) || s->next)
		return;
	if (s->hwm > durable) {
		snapfeed_reset(h, "the snapshotter is past the log");
		return;
	}
	if (s->hwm >= durable && !s->verify)
		return;
	s->next = s->hwm + 1;
	snapfeed_read(h);
}

/* One batch of its catch-up read: forwarded, then the next read. */
static void snapfeed_on_read(hub_t *h, const bus_read_t *rd, const msgpack_object *msg)
{
	(void)rd;
	snapfeed_t *s = &h->snapfeed;
	if (!msg)
		return; /* the logger went away: snapfeed_down */
	uint64_t first;
	const msgpack_object *evs = reads_events(msg, &first);
	uint32_t n = evs->via.array.size;
	if (s->verify && s->next) {
		s->verify = false;
		if (!reads_prev_is(msg, s->chain)) {
			snapfeed_reset(h, "the snapshotter's state is not of this log");
			s->on_reset(h);
			return;
		}
	}
	if (!s->next || !peer_up(h, PEER_SNAPSHOTTER) || n == 0 || first != s->next) {
		s->next = 0;
		return;
	}
	batches_forward(h, PEER_SNAPSHOTTER, PEER_MSG_EVENTS, msg, true);
	s->next = first + n;
	s->hwm = first + n - 1;
	if (s->next > h->routes.durable_seq)
		s->next = 0;
	else
		snapfeed_read(h);
}

void snapfeed_durable(hub_t *h, const pending_event_t *p)
{
	snapfeed_t *s = &h->snapfeed;
	if (!h->peers.peer[PEER_SNAPSHOTTER].hello || s->next != 0 || p->seq <= s->hwm)
		return;
	msgpack_packer *pk = batches_add(h, PEER_SNAPSHOTTER, p->ev.n + BUS_BATCH_ITEM_OVERHEAD);
	msg_pack_binn(pk, p->ev.p, p->ev.n);
}
