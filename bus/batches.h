/*
 * batches.h - every message the bus sends to a peer (batches.c): one batch
 * per peer per loop iteration ("req", "append", "events", "mail"), flushed
 * by the hub's check handle, and single messages sent at once (control
 * messages, forwarded log reads).
 *
 * Invariants: a batch with no items holds no bytes; no batch holds more than
 * BUS_BATCH_BYTES_MAX bytes of items beyond its last item; first[role] is
 * the seq of the first event in the logger's (or the replicator's) batch
 * while it has any.
 */
#ifndef ESBANK_BUS_BATCHES_H
#define ESBANK_BUS_BATCHES_H

#include "bus.h"
#include "msg.h"

#include <assert.h>

/* The items for one peer's next message. */
typedef struct {
	msg_buf_t items; /* encoded items, packed back to back */
	uint32_t n;
} bus_batch_t;

typedef struct {
	bus_batch_t of[PEER_COUNT]; /* one message per peer per loop iteration */
	uint64_t first[PEER_COUNT]; /* seq of the first event in of[PEER_LOGGER], of[PEER_REPLICATOR] */
	bus_batch_t replay;         /* a standby's durable events to the resolver ("replay") */
} batches_t;

static inline void batches_assert(const batches_t *b)
{
	for (int r = 0; r < PEER_COUNT; r++)
		assert(b->of[r].n > 0 || b->of[r].items.sb.size == 0);
	assert(b->replay.n > 0 || b->replay.items.sb.size == 0);
}

void batches_init(hub_t *h);
/*
 * Makes room for an item of item_bytes in role's batch (sending the batch
 * early when it would pass BUS_BATCH_BYTES_MAX) and returns the packer to
 * encode the item with; the caller packs exactly one item.
 */
msgpack_packer *batches_add(hub_t *h, peer_role_t role, size_t item_bytes);
/* Adds an event (seq, its bytes) to the logger's next "append". */
void batches_add_append(hub_t *h, uint64_t seq, const char *ev, size_t n);
/* Adds an event (seq, its bytes) to the replicator's next "append" (primary). */
void batches_add_repl(hub_t *h, uint64_t seq, const char *ev, size_t n);
/* Adds a durable event to the resolver's next "replay" (standby). */
void batches_add_replay(hub_t *h, const char *ev, size_t n);
/* Forgets role's batch unsent (its peer's session ended). */
void batches_discard(hub_t *h, peer_role_t role);
/* Sends every non-empty batch to its peer (dropped when the peer is not up). */
void batches_flush(hub_t *h);
/* Sends {"t":type} (with "max" when max > 0) to role's peer at once. */
void batches_send_control(hub_t *h, peer_role_t role, const char *type, uint64_t max);
/* Packs "events": [bin, ...] from a logger read's events array (every item
 * a bin, as the logger sends it), as forwarded messages carry it. */
void batches_pack_events(msgpack_packer *pk, const msgpack_object *evs);

/*
 * Sends {"t":type,"events":[bin...]} to role's peer at once, the events of a
 * log read result (msg), with the read's "head" when with_head and it has one.
 */
void batches_forward(hub_t *h, peer_role_t role, const char *type, const msgpack_object *msg,
                     bool with_head);
/* Sends {"t":type,"seqs":[...]} to role's peer at once, seqs an array of integers. */
void batches_send_seqs(hub_t *h, peer_role_t role, const char *type,
                       const msgpack_object *seqs);

#endif
