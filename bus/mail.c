/*
 * mail.c - the mailer's feed. The mailer skips any item at or below its
 * hwm, so it must receive events in seq order; the bus keeps that order:
 *
 *   1. Held: every mail-sending event that becomes durable during this
 *      bus's life is held in pending, with the details the resolver
 *      gave (the verification code travels only here), until the mailer
 *      acks it; after a reconnect the unacknowledged ones are sent again.
 *      At most mail_cap() are held (BUS_MAIL_PENDING_MAX; the environment
 *      variable ESBANK_BUS_MAIL_PENDING_MAX may set a lower cap, for tests).
 *      Past the cap a new mail is not held (it is still sent live when the
 *      mailer is streaming) and unheld_last remembers the newest such
 *      event: the log has it.
 *   2. Catch-up from the log: when the mailer's hwm is below boot_durable
 *      (events from before this bus started) or below unheld_last
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
 *
 * Receipts: the mailer's {"t":"delivered","seqs":[...]} goes on to the
 * replicator as {"t":"receipts","seqs":[...]} while this bus is primary
 * (docs/replication.md, "Mail across failover"); otherwise it is dropped.
 *
 * Promotion: a standby's mailer gets nothing while it follows. A promoting
 * replicator sends the old primary's receipts ({"t":"receipts"} from the
 * replicator, kept in receipts); once the takeover record is applied
 * (mail_promoted) the log's end for the catch-up is at least that record, a
 * fresh mailer is not started at the end, and each event read with a
 * receipt goes out marked {"sent":true}: the mailer learns from it and
 * sends nothing. So every mail the old primary had not delivered goes out
 * from the new primary's mailer (docs/replication.md has the window).
 */
#include "hub.h"

#include "diag.h"
#include "protocol.h"

#include <stdlib.h>

void mail_init(hub_t *h)
{
	bus_fifo_init(&h->mail.pending, sizeof(pending_event_t));
}

static void mail_pack_item(hub_t *h, const pending_event_t *p)
{
	msgpack_packer *pk =
		batches_add(h, PEER_MAILER, p->ev.n + p->mail.n + BUS_BATCH_ITEM_OVERHEAD);
	msgpack_pack_map(pk, 2);
	msg_pack_kv_bin(pk, PEER_F_EV, p->ev.p, p->ev.n);
	msg_pack_kv_bin(pk, PEER_F_MAIL, p->mail.p, p->mail.n);
}

/* A catch-up item: the event alone, as read from the log; sent: the old
 * primary delivered its mail (the mailer only learns from it). */
static void mail_pack_event(hub_t *h, const char *ev, size_t n, bool sent)
{
	msgpack_packer *pk = batches_add(h, PEER_MAILER, n + BUS_BATCH_ITEM_OVERHEAD);
	msgpack_pack_map(pk, sent ? 2 : 1);
	msg_pack_kv_bin(pk, PEER_F_EV, ev, n);
	if (sent)
		msg_pack_kv_bool(pk, PEER_F_SENT, true);
}

/* How many mails are held at most (see the top of this file). */
static size_t mail_cap(hub_t *h)
{
	mail_t *m = &h->mail;
	if (m->pending_max)
		return m->pending_max;
	const char *v = getenv("ESBANK_BUS_MAIL_PENDING_MAX");
	char *end = NULL;
	unsigned long long n = v ? strtoull(v, &end, 10) : 0;
	bool lower = v && *v && end && !*end && n >= 1 && n < BUS_MAIL_PENDING_MAX;
	m->pending_max = lower ? (size_t)n : BUS_MAIL_PENDING_MAX;
	return m->pending_max;
}

/* p's mail is not held: the mailer's catch-up reads it from the log. */
static void mail_not_held(hub_t *h, const pending_event_t *p, const char *why)
{
	mail_t *m = &h->mail;
	const pending_event_t *last = m->pending.count
		? bus_fifo_peek(&m->pending, m->pending.count - 1) : NULL;
	if (!last || last->seq > m->unheld_last)
		diag_warn("%s: mails from event %llu on are not held; the mailer reads them "
		         "from the log (a verification code is not in it: such a mail is lost)",
		         why, (unsigned long long)p->seq);
	m->unheld_last = p->seq;
	if (m->streaming)
		mail_pack_item(h, p);
}

void mail_durable(hub_t *h, pending_event_t *p)
{
	mail_t *m = &h->mail;
	if (m->pending.count >= mail_cap(h)) {
		mail_not_held(h, p, "mailer absent or slow");
		return;
	}
	pending_event_t *held = bus_fifo_push(&m->pending);
	if (!held) {
		mail_not_held(h, p, "out of memory");
		return;
	}
	*held = *p;
	p->ev = (bus_bytes_t){ 0 };
	p->mail = (bus_bytes_t){ 0 };
	if (m->streaming)
		mail_pack_item(h, held);
	mail_assert(m);
}

void mail_ack(hub_t *h, const msgpack_object *msg)
{
	mail_t *m = &h->mail;
	msg_get_u64(msg, PEER_F_HWM, &m->hwm);
	while (m->pending.count) {
		pending_event_t *p = bus_fifo_peek(&m->pending, 0);
		if (p->seq > m->hwm)
			break;
		bus_bytes_free(&p->ev);
		bus_bytes_free(&p->mail);
		bus_fifo_pop(&m->pending);
	}
	mail_assert(m);
}

void mail_delivered(hub_t *h, const msgpack_object *msg)
{
	const msgpack_object *seqs = msg_get(msg, PEER_F_SEQS);
	if (!seqs || seqs->type != MSGPACK_OBJECT_ARRAY || seqs->via.array.size == 0)
		return;
	for (uint32_t i = 0; i < seqs->via.array.size; i++)
		if (seqs->via.array.ptr[i].type != MSGPACK_OBJECT_POSITIVE_INTEGER)
			return;
	if (h->recovery.role == BUS_ROLE_PRIMARY && peer_up(h, PEER_REPLICATOR))
		batches_send_seqs(h, PEER_REPLICATOR, PEER_MSG_RECEIPTS, seqs);
}

void mail_receipts(hub_t *h, const msgpack_object *msg)
{
	mail_t *m = &h->mail;
	const msgpack_object *seqs = msg_get(msg, PEER_F_SEQS);
	if (!seqs || seqs->type != MSGPACK_OBJECT_ARRAY || h->recovery.role != BUS_ROLE_STANDBY)
		return;
	uint32_t n = seqs->via.array.size;
	if (m->receipts_n + n > m->receipts_cap) {
		size_t cap = 2 * (m->receipts_n + n);
		uint64_t *v = realloc(m->receipts, cap * sizeof(*v));
		if (!v) {
			diag_error("out of memory keeping mail receipts: their mails may go out twice");
			return;
		}
		m->receipts = v;
		m->receipts_cap = cap;
	}
	for (uint32_t i = 0; i < n; i++)
		if (seqs->via.array.ptr[i].type == MSGPACK_OBJECT_POSITIVE_INTEGER)
			m->receipts[m->receipts_n++] = seqs->via.array.ptr[i].via.u64;
}

static int mail_seq_cmp(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

void mail_promoted(hub_t *h, uint64_t seq)
{
	mail_t *m = &h->mail;
	qsort(m->receipts, m->receipts_n, sizeof(*m->receipts), mail_seq_cmp);
	m->promoted_end = seq;
	diag_info("mail: the old primary's undelivered mail up to %llu goes out (%zu receipts)",
	         (unsigned long long)seq, m->receipts_n);
}

void mail_up(hub_t *h, const msgpack_object *msg)
{
	mail_t *m = &h->mail;
	m->hwm = 0;
	msg_get_u64(msg, PEER_F_HWM, &m->hwm);
	m->fresh = false;
	msg_get_bool(msg, PEER_F_FRESH, &m->fresh);
	m->streaming = false;
	m->next = 0;
}

void mail_down(hub_t *h)
{
	h->mail.streaming = false;
	h->mail.next = 0;
}

void mail_logger_up(hub_t *h, uint64_t hwm)
{
	if (!h->mail.boot_known) {
		h->mail.boot_known = true;
		h->mail.boot_durable = hwm;
	}
}

void mail_logger_lost(hub_t *h)
{
	h->mail.next = 0;
	h->mail.streaming = false;
}

/* Sends every unacknowledged mail above the mailer's hwm, then streams. */
static void mail_stream(hub_t *h)
{
	mail_t *m = &h->mail;
	for (size_t i = 0; i < m->pending.count; i++) {
		pending_event_t *p = bus_fifo_peek(&m->pending, i);
		if (p->seq > m->hwm)
			mail_pack_item(h, p);
	}
	m->streaming = true;
}

/* The last seq the mailer must read from the log: the held mails follow it. */
static uint64_t mail_log_end(const mail_t *m)
{
	uint64_t end = m->boot_durable > m->unheld_last ? m->boot_durable : m->unheld_last;
	return end > m->promoted_end ? end : m->promoted_end;
}

static void mail_on_read(hub_t *h, const bus_read_t *rd, const msgpack_object *msg);

static void mail_read_from(hub_t *h, uint64_t from)
{
	mail_t *m = &h->mail;
	uint64_t left = mail_log_end(m) - from + 1;
	bus_read_t rd = { .on_result = mail_on_read };
	m->next = from;
	if (reads_send(h, from, left < BUS_READ_EVENTS_MAX ? left : BUS_READ_EVENTS_MAX, &rd) < 0)
		m->next = 0;
}

void mail_check(hub_t *h)
{
	mail_t *m = &h->mail;
	if (!peer_up(h, PEER_MAILER) || m->streaming || m->next || !m->boot_known)
		return;
	if (m->fresh && m->hwm < m->boot_durable && !m->promoted_end)
		m->hwm = m->boot_durable; /* a mailer with no spool starts at the end */
	if (m->hwm >= mail_log_end(m))
		mail_stream(h);
	else if (peer_up(h, PEER_LOGGER))
		mail_read_from(h, m->hwm + 1);
	mail_assert(m);
}

/* The index of the first held mail with a seq >= seq (they are in seq order). */
static size_t mail_held_from(const mail_t *m, uint64_t seq)
{
	size_t lo = 0, hi = m->pending.count;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		const pending_event_t *p = bus_fifo_peek(&m->pending, mid);
		if (p->seq < seq)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

/* True if the old primary's receipts name seq (sorted by mail_promoted). */
static bool mail_has_receipt(const mail_t *m, uint64_t seq)
{
	size_t lo = 0, hi = m->promoted_end ? m->receipts_n : 0;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (m->receipts[mid] < seq)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo < m->receipts_n && m->promoted_end && m->receipts[lo] == seq;
}

/* Sends the n events read from first on, each with its held details if any. */
static void mail_send_read(hub_t *h, const msgpack_object *evs, uint64_t first, uint32_t n)
{
	mail_t *m = &h->mail;
	size_t held = mail_held_from(m, first);
	for (uint32_t i = 0; i < n; i++) {
		pending_event_t *p = held < m->pending.count ? bus_fifo_peek(&m->pending, held)
		                                             : NULL;
		if (p && p->seq == first + i) {
			mail_pack_item(h, p); /* with its details: a code is only here */
			held++;
		} else {
			mail_pack_event(h, evs->via.array.ptr[i].via.bin.ptr,
			                evs->via.array.ptr[i].via.bin.size,
			                mail_has_receipt(m, first + i));
		}
	}
}

/* One batch of the mailer's catch-up read from the log. */
static void mail_on_read(hub_t *h, const bus_read_t *rd, const msgpack_object *msg)
{
	(void)rd;
	mail_t *m = &h->mail;
	if (!msg)
		return; /* the logger went away: mail_logger_lost */
	uint64_t first;
	const msgpack_object *evs = reads_events(msg, &first);
	uint32_t n = evs->via.array.size;
	if (!m->next || !peer_up(h, PEER_MAILER) || n == 0 || first != m->next) {
		m->next = 0;
		return;
	}
	mail_send_read(h, evs, first, n);
	m->hwm = first + n - 1;
	m->next = 0;
	if (m->hwm >= mail_log_end(m))
		mail_stream(h);
	else
		mail_read_from(h, m->hwm + 1);
	mail_assert(m);
}
