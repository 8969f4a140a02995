/*
 * mail.c - the mailer's feed. The mailer skips any item at or below its
 * hwm, so it must receive events in seq order; the bus keeps that order:
 *
 *   1. Held: every mail-sending event that becomes durable during this
 *      bus's life is held in mail_pending, with the details the resolver
 *      gave (the verification code travels only here), until the mailer
 *      acks it; after a reconnect the unacknowledged ones are sent again.
 *      At most mail_cap() are held (BUS_MAIL_PENDING_MAX; the environment
 *      variable ESBANK_BUS_MAIL_PENDING_MAX may set a lower cap, for tests).
 *      Past the cap a new mail is not held (it is still sent live when the
 *      mailer is streaming) and mail_unheld_last remembers the newest such
 *      event: the log has it.
 *   2. Catch-up from the log: when the mailer's hwm is below boot_durable
 *      (events from before this bus started) or below mail_unheld_last
 *      (mails not held), the events after its hwm are read from the log up
 *      to the larger of the two and sent in order, each with its held
 *      details when it is held, else bare ({"ev":bin}): the mailer rebuilds
 *      a withdrawal notice from the event (amount, balance) and its address
 *      book, and learns addresses from account_opened. Then streaming
 *      starts with the held mails after the last event read.
 *
 * So no withdrawal notice is lost however long the mailer is away: beyond
 * the cap it costs a log read instead of memory. A verification mail not
 * held is lost (its code is in no log; a warning says so, the holder can ask
 * for a new code): with a cap of 100,000 that takes 100,000 unacknowledged
 * mails. A fresh mailer (no spool) starts at boot_durable.
 */
#include "hub.h"

#include "log.h"

#include <stdlib.h>

static void mail_pack_item(hub_t *h, const pending_event_t *p)
{
	msgpack_packer *pk =
		route_batch_add(h, PEER_MAILER, p->ev.n + p->mail.n + BUS_BATCH_ITEM_OVERHEAD);
	msgpack_pack_map(pk, 2);
	msg_pack_kv_bin(pk, "ev", p->ev.p, p->ev.n);
	msg_pack_kv_bin(pk, "mail", p->mail.p, p->mail.n);
}

/* A catch-up item: the event alone, as read from the log. */
static void mail_pack_event(hub_t *h, const char *ev, size_t n)
{
	msgpack_packer *pk = route_batch_add(h, PEER_MAILER, n + BUS_BATCH_ITEM_OVERHEAD);
	msgpack_pack_map(pk, 1);
	msg_pack_kv_bin(pk, "ev", ev, n);
}

/* How many mails are held at most (see the top of this file). */
static size_t mail_cap(hub_t *h)
{
	if (h->mail_pending_max)
		return h->mail_pending_max;
	const char *v = getenv("ESBANK_BUS_MAIL_PENDING_MAX");
	char *end = NULL;
	unsigned long long n = v ? strtoull(v, &end, 10) : 0;
	bool lower = v && *v && end && !*end && n >= 1 && n < BUS_MAIL_PENDING_MAX;
	h->mail_pending_max = lower ? (size_t)n : BUS_MAIL_PENDING_MAX;
	return h->mail_pending_max;
}

/* p's mail is not held: the mailer's catch-up reads it from the log. */
static void mail_not_held(hub_t *h, const pending_event_t *p, const char *why)
{
	const pending_event_t *last = h->mail_pending.count
		? fifo_peek(&h->mail_pending, h->mail_pending.count - 1) : NULL;
	if (!last || last->seq > h->mail_unheld_last)
		log_warn("%s: mails from event %llu on are not held; the mailer reads them "
		         "from the log (a verification code is not in it: such a mail is lost)",
		         why, (unsigned long long)p->seq);
	h->mail_unheld_last = p->seq;
	if (h->mail_streaming)
		mail_pack_item(h, p);
}

void mail_durable(hub_t *h, pending_event_t *p)
{
	if (h->mail_pending.count >= mail_cap(h)) {
		mail_not_held(h, p, "mailer absent or slow");
		return;
	}
	pending_event_t *m = fifo_push(&h->mail_pending);
	if (!m) {
		mail_not_held(h, p, "out of memory");
		return;
	}
	*m = *p;
	p->ev = (bytes_t){ 0 };
	p->mail = (bytes_t){ 0 };
	if (h->mail_streaming)
		mail_pack_item(h, m);
}

void mail_ack(hub_t *h, uint64_t hwm)
{
	while (h->mail_pending.count) {
		pending_event_t *m = fifo_peek(&h->mail_pending, 0);
		if (m->seq > hwm)
			break;
		bytes_free(&m->ev);
		bytes_free(&m->mail);
		fifo_pop(&h->mail_pending);
	}
}

void mail_hello(hub_t *h, const msgpack_object *msg)
{
	h->mail_fresh = false;
	msg_get_bool(msg, "fresh", &h->mail_fresh);
	h->mail_streaming = false;
	h->mail_next = 0;
}

void mail_down(hub_t *h)
{
	h->mail_streaming = false;
	h->mail_next = 0;
}

/* Sends every unacknowledged mail above the mailer's hwm, then streams. */
static void mail_stream(hub_t *h)
{
	uint64_t hwm = h->peers[PEER_MAILER].hwm;
	for (size_t i = 0; i < h->mail_pending.count; i++) {
		pending_event_t *m = fifo_peek(&h->mail_pending, i);
		if (m->seq > hwm)
			mail_pack_item(h, m);
	}
	h->mail_streaming = true;
}

/* The last seq the mailer must read from the log: the held mails follow it. */
static uint64_t mail_log_end(const hub_t *h)
{
	return h->boot_durable > h->mail_unheld_last ? h->boot_durable : h->mail_unheld_last;
}

static void mail_read_from(hub_t *h, uint64_t from)
{
	uint64_t left = mail_log_end(h) - from + 1;
	pending_read_t rd = { 0 };
	h->mail_next = from;
	if (events_read(h, READ_MAILER, from, left < BUS_READ_EVENTS_MAX ? left : BUS_READ_EVENTS_MAX,
	                &rd) < 0)
		h->mail_next = 0;
}

void mail_check(hub_t *h)
{
	peer_t *p = &h->peers[PEER_MAILER];
	if (!peer_up(h, PEER_MAILER) || h->mail_streaming || h->mail_next || !h->boot_known)
		return;
	if (h->mail_fresh && p->hwm < h->boot_durable)
		p->hwm = h->boot_durable; /* a mailer with no spool starts at the end */
	if (p->hwm >= mail_log_end(h)) {
		mail_stream(h);
		return;
	}
	if (peer_up(h, PEER_LOGGER))
		mail_read_from(h, p->hwm + 1);
}

/* The index of the first held mail with a seq >= seq (they are in seq order). */
static size_t mail_held_from(const hub_t *h, uint64_t seq)
{
	size_t lo = 0, hi = h->mail_pending.count;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		const pending_event_t *m = fifo_peek(&h->mail_pending, mid);
		if (m->seq < seq)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

void mail_read_result(hub_t *h, const msgpack_object *msg)
{
	const msgpack_object *evs = msg_get(msg, "events");
	uint64_t first = 0;
	msg_get_u64(msg, "first", &first);
	uint32_t n = evs->via.array.size;
	peer_t *p = &h->peers[PEER_MAILER];
	if (!h->mail_next || !peer_up(h, PEER_MAILER) || n == 0 || first != h->mail_next) {
		h->mail_next = 0;
		return;
	}
	size_t held = mail_held_from(h, first);
	for (uint32_t i = 0; i < n; i++) {
		pending_event_t *m = held < h->mail_pending.count
			? fifo_peek(&h->mail_pending, held) : NULL;
		if (m && m->seq == first + i) {
			mail_pack_item(h, m); /* with its details: a code is only here */
			held++;
		} else {
			mail_pack_event(h, evs->via.array.ptr[i].via.bin.ptr,
			                evs->via.array.ptr[i].via.bin.size);
		}
	}
	p->hwm = first + n - 1;
	h->mail_next = 0;
	if (p->hwm >= mail_log_end(h))
		mail_stream(h);
	else
		mail_read_from(h, p->hwm + 1);
}
