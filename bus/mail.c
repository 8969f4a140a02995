/*
 * mail.c - the mailer's feed. The mailer skips any item at or below its
 * hwm, so it must receive events in seq order; the bus keeps that order:
 *
 *   1. Catch-up (only for events from before this bus started, seq <=
 *      boot_durable): when the mailer's hwm is below boot_durable, the
 *      events after it are read from the log and sent without mail details
 *      ({"ev":bin}); the mailer sends withdrawal notices from them (it
 *      knows the address; the event carries amount and balance).
 *   2. Streaming: every mail-sending event that became durable during this
 *      bus's life sits in mail_pending, with the details the resolver gave
 *      (the verification code travels only here), until the mailer acks it;
 *      after a reconnect the unacknowledged ones are sent again. So a mailer
 *      that restarts, or that connects after the first commands, loses none.
 *
 * A fresh mailer (no spool) starts at the end of the log: no catch-up, only
 * the events of this bus's life. mail_pending is bounded by
 * BUS_MAIL_PENDING_MAX; past it the oldest are dropped with a warning.
 */
#include "hub.h"

#include "log.h"

static void mail_pack_item(hub_t *h, const pending_event_t *p)
{
	msgpack_packer *pk =
		route_batch_add(h, PEER_MAILER, p->ev.n + p->mail.n + BUS_BATCH_ITEM_OVERHEAD);
	msgpack_pack_map(pk, 2);
	msg_pack_kv_bin(pk, "ev", p->ev.p, p->ev.n);
	msg_pack_kv_bin(pk, "mail", p->mail.p, p->mail.n);
}

static void mail_drop_oldest(hub_t *h)
{
	pending_event_t *old = fifo_peek(&h->mail_pending, 0);
	log_warn("mailer absent too long: the mail of event %llu is dropped",
	         (unsigned long long)old->seq);
	bytes_free(&old->ev);
	bytes_free(&old->mail);
	fifo_pop(&h->mail_pending);
}

void mail_durable(hub_t *h, pending_event_t *p)
{
	if (h->mail_pending.count >= BUS_MAIL_PENDING_MAX)
		mail_drop_oldest(h);
	pending_event_t *m = fifo_push(&h->mail_pending);
	if (!m) {
		log_error("out of memory: the mail of event %llu is dropped",
		          (unsigned long long)p->seq);
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

static void mail_read_from(hub_t *h, uint64_t from)
{
	uint64_t left = h->boot_durable - from + 1;
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
	if (p->hwm >= h->boot_durable) {
		mail_stream(h);
		return;
	}
	if (peer_up(h, PEER_LOGGER))
		mail_read_from(h, p->hwm + 1);
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
	msgpack_packer *pk = conn_pack_begin(&p->link.conn);
	msgpack_pack_map(pk, 2);
	msg_pack_kv_str(pk, "t", "mail");
	msg_pack_str(pk, "items");
	msgpack_pack_array(pk, n);
	for (uint32_t i = 0; i < n; i++) {
		msgpack_pack_map(pk, 1);
		msg_pack_kv_bin(pk, "ev", evs->via.array.ptr[i].via.bin.ptr,
		                evs->via.array.ptr[i].via.bin.size);
	}
	conn_pack_end(&p->link.conn);
	p->hwm = first + n - 1;
	h->mail_next = 0;
	if (p->hwm >= h->boot_durable)
		mail_stream(h);
	else
		mail_read_from(h, p->hwm + 1);
}
