/*
 * hold.h - the hold queue (hold.c): requests that arrive while the bus is
 * recovering (or the resolver is away) wait here, in order, at most
 * BUS_HELD_MAX of them and each at most BUS_HOLD_MS_MAX.
 *
 * Invariant: held.count <= BUS_HELD_MAX.
 */
#ifndef ESBANK_BUS_HOLD_H
#define ESBANK_BUS_HOLD_H

#include "bus.h"

#include <assert.h>

/* A request held while recovering. */
typedef struct {
	client_ref_t from;
	uint64_t req_id;
	uint64_t since_ms;
	bool command;      /* refused with unavailable if released during a log fault */
	bus_bytes_t req;
} held_request_t;

typedef struct {
	bus_fifo_t held; /* held_request_t, in arrival order */
} hold_t;

static inline void hold_assert(const hold_t *q)
{
	assert(q->held.count <= BUS_HELD_MAX);
}

void hold_init(hub_t *h);
/* Holds from's request (req[0..n), copied); when full it gets unavailable. */
void hold_request(hub_t *h, client_ref_t from, uint64_t id, bool command, const char *req,
                  size_t n);
/*
 * The bus is live: the held requests go to the resolver in order (commands
 * get unavailable while the log cannot be written).
 */
void hold_release(hub_t *h);
/* Requests held longer than BUS_HOLD_MS_MAX get unavailable. */
void hold_tick(hub_t *h);

#endif
