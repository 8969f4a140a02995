/*
 * gather.h - the "metrics" op: every program's figures gathered into one
 * Prometheus text (common/figures.h). A request starts a round: the bus asks
 * each connected peer with {"t":"figures"}; each answers its text. When every
 * peer asked has answered, or after BUS_GATHER_WAIT_MS (a peer that does not
 * answer is left out and shown as esbank_bus_figures_answered 0), every
 * client waiting gets {"id","ok":true,"text":str}: the bus's own figures,
 * the restarts from RUN/esbankd.state, then each peer's text. Requests that
 * come during a round wait for it.
 *
 * Invariants: n <= BUS_GATHER_WAITING_MAX; no round (deadline_ms 0) <=> no
 * client waiting and no peer asked.
 */
#ifndef ESBANK_BUS_GATHER_H
#define ESBANK_BUS_GATHER_H

#include "bus.h"

#include "msg.h"

#include <assert.h>
#include <stddef.h>

#define BUS_GATHER_WAITING_MAX 64   /* metrics requests waiting for one round */
#define BUS_GATHER_WAIT_MS 1000     /* a round ends by then (checked at the tick) */

typedef struct {
	struct {
		client_ref_t client;
		uint64_t id;
	} waiting[BUS_GATHER_WAITING_MAX];
	size_t n;
	unsigned asked;          /* a bit per peer_role_t not yet answered */
	unsigned answered;       /* a bit per peer_role_t answered this round */
	uint64_t deadline_ms;    /* 0: no round */
	bus_bytes_t text[PEER_COUNT]; /* this round's answers */
	char *state_path;        /* RUN/esbankd.state */
} gather_t;

static inline void gather_assert(const gather_t *g)
{
	assert(g->n <= BUS_GATHER_WAITING_MAX);
	assert(g->deadline_ms || (g->n == 0 && g->asked == 0));
}

/* Sets the part up; run_dir holds esbankd.state. 0 or -ENOMEM. */
int gather_init(hub_t *h, const char *run_dir);

/* A client's "metrics" request: joins the round (starting one), or unavailable when full. */
void gather_request(hub_t *h, client_ref_t c, uint64_t id);

/* A peer's "figures" answer. */
void gather_figures(hub_t *h, peer_role_t role, const msgpack_object *msg);

/* The tick: ends a round past its deadline. */
void gather_tick(hub_t *h);

#endif
