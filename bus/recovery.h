/*
 * recovery.h - the bus's state and the rebuilding of the resolver's state
 * from the log (recovery.c; DESIGN.md, "Recovery: restart and replay").
 *
 * Invariants:
 *   - while state is BUS_RECOVERING no request reaches the resolver (they
 *     wait in the hold queue);
 *   - a replay read is out only in REC_REPLAY, from replay_next >= 1
 *     (reading: one of replay_gen is out);
 *   - never BUS_LIVE by recovery_check while peers.logger_hwm < logger_end;
 *   - expect_prev (a loaded snapshot's chain to check) only while replaying.
 */
#ifndef ESBANK_BUS_RECOVERY_H
#define ESBANK_BUS_RECOVERY_H

#include "bus.h"

#include <assert.h>

typedef enum { BUS_RECOVERING, BUS_LIVE } bus_state_t;
/*
 * The group's place in replication (docs/replication.md): single (no
 * replicator), primary (commands replicated), standby (follows the stream,
 * refuses commands), fenced (another primary wrote: acknowledges nothing).
 */
typedef enum { BUS_ROLE_SINGLE, BUS_ROLE_PRIMARY, BUS_ROLE_STANDBY, BUS_ROLE_FENCED } bus_role_t;
/* Where recovery of the resolver stands. */
typedef enum { REC_IDLE, REC_RESET, REC_LOAD, REC_REPLAY } rec_phase_t;

typedef struct {
	bus_state_t state;
	bus_role_t role;
	rec_phase_t phase;
	uint64_t replay_next;   /* next seq to read for the resolver */
	uint64_t replay_gen;    /* bumped by each replay: a read of an older one is stale */
	bool expect_prev;       /* check the log's hash before replay_next */
	char prev_hash[BUS_HASH_HEX_BYTES]; /* the loaded snapshot's chain hash */
	bool no_snapshots;      /* a snapshot was tried: replay from the log */
	bool reading;           /* a replay read of replay_gen is out */
} recovery_t;

static inline void recovery_assert(const recovery_t *r)
{
	assert(r->state == BUS_RECOVERING || r->state == BUS_LIVE);
	assert(r->phase != REC_REPLAY || r->replay_next >= 1);
}

void recovery_init(hub_t *h, bus_role_t role);
/* The role changes: a standby promoted becomes primary, a primary fenced. */
void recovery_set_role(hub_t *h, bus_role_t role);
/* The role's wire name ("single", "primary", "standby", "fenced"). */
const char *recovery_role_name(bus_role_t role);
/* Moves recovery on when it can (and the snapshotter's and mailer's feeds). */
void recovery_check(hub_t *h);
/* The resolver's hello (msg): where it stands. */
void recovery_resolver_up(hub_t *h, const msgpack_object *msg);
/* The resolver's link is down: RECOVERING until it is rebuilt. */
void recovery_resolver_lost(hub_t *h);
/* The logger's link is down: RECOVERING until it is back (status truthful). */
void recovery_logger_lost(hub_t *h);
/* The resolver's "replayed" (after a replay batch or a reset): its hwm. */
void recovery_replayed(hub_t *h, uint64_t hwm);
/* The logger's "durable" while recovering: a replay that waited for more
 * of a log being checked (peers.logger_end) reads on. */
void recovery_durable(hub_t *h);
/* The resolver's "loaded" (msg): the snapshot it loaded, if any. */
void recovery_loaded(hub_t *h, const msgpack_object *msg);

#endif
