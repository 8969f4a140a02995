/*
 * mail.h - the mailer's feed (mail.c): mails held until the mailer acks
 * them, its catch-up from the log, then the live stream, always in seq order.
 *
 * Invariants: pending holds at most pending_max mails, in seq order; while
 * streaming no catch-up read is out (next == 0).
 */
#ifndef ESBANK_BUS_MAIL_H
#define ESBANK_BUS_MAIL_H

#include "bus.h"

#include <assert.h>

typedef struct {
	bus_fifo_t pending;     /* pending_event_t with mail, until the mailer acks */
	uint64_t hwm;           /* the mailer's: its hello, its acks, what was sent */
	uint64_t boot_durable;  /* the log's end when this bus first saw the logger */
	bool boot_known;
	bool streaming;         /* live mail flows; false while catching up */
	bool fresh;             /* the mailer has no spool: it starts at the end */
	uint64_t next;          /* next seq to read for the mailer's catch-up, 0: none */
	size_t pending_max;     /* the cap on pending, 0 until first asked */
	uint64_t unheld_last;   /* newest mail past the cap, not held (0: none) */
	uint64_t promoted_end;  /* after a promotion: the takeover record's seq (0: none) */
	uint64_t *receipts;     /* the old primary's receipts, sorted once promoted */
	size_t receipts_n, receipts_cap;
} mail_t;

static inline void mail_assert(const mail_t *m)
{
	assert(!m->pending_max || m->pending.count <= m->pending_max);
	assert(!m->streaming || m->next == 0);
}

void mail_init(hub_t *h);
/* Durable event p sends mail: held and streamed; takes p->ev and p->mail when held. */
void mail_durable(hub_t *h, pending_event_t *p);
/* The mailer's hello (msg): its hwm and "fresh"; catching up starts again. */
void mail_up(hub_t *h, const msgpack_object *msg);
/* The mailer's ack (msg): every held mail up to its hwm is dropped. */
void mail_ack(hub_t *h, const msgpack_object *msg);
/* The mailer delivered mails (msg): a primary's replicator publishes them as receipts. */
void mail_delivered(hub_t *h, const msgpack_object *msg);
void mail_down(hub_t *h);
/* A standby's replicator read receipts (msg) for a promotion: their mails
 * are not sent again. */
void mail_receipts(hub_t *h, const msgpack_object *msg);
/* The takeover record seq is applied: the mailer catches up from its hwm to
 * seq from the log, each event with a receipt marked sent. */
void mail_promoted(hub_t *h, uint64_t seq);
/* The logger said hello with its hwm: the first one is where this bus began. */
void mail_logger_up(hub_t *h, uint64_t hwm);
void mail_logger_lost(hub_t *h);
/* Starts the mailer's catch-up or stream when it is due. */
void mail_check(hub_t *h);

#endif
