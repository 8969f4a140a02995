/*
 * clientreads.h - the protocol's "events" and "subscribe" (clientreads.c):
 * client reads of the durable log, and subscriptions to it.
 *
 * Invariants: an active subscriber is reading (a read of the logger is
 * queued for it) or takes live events from next_seq on; each event reaches
 * it once, in order. active counts the active slots of subs (so a durable
 * event costs nothing while nobody subscribes).
 */
#ifndef ESBANK_BUS_CLIENTREADS_H
#define ESBANK_BUS_CLIENTREADS_H

#include "bus.h"
#include "clients.h"

#include <assert.h>

typedef struct {
	client_ref_t to;
	uint64_t req_id;
	uint64_t next_seq;
	bool reading;
	bool active;
} subscriber_t;

/* Written only by clientreads.c. */
typedef struct {
	subscriber_t subs[BUS_SUBSCRIBERS_MAX];
	int active; /* slots of subs with active set */
} clientreads_t;

static inline void clientreads_assert(const clientreads_t *cr)
{
	assert(cr->active >= 0 && cr->active <= BUS_SUBSCRIBERS_MAX);
}

/* "events": req[0..n) is the request, its id and op already checked. */
void clientreads_events(hub_t *h, client_t *c, uint64_t id, const char *req, size_t n);
/* "subscribe": likewise. */
void clientreads_subscribe(hub_t *h, client_t *c, uint64_t id, const char *req, size_t n);
/* Event seq became durable: to the subscribers waiting for it. */
void clientreads_live(hub_t *h, uint64_t seq, const bus_bytes_t *ev);
/* The logger is back: subscribers behind the log read again. */
void clientreads_logger_back(hub_t *h);

#endif
