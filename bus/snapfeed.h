/*
 * snapfeed.h - the snapshotter's feed (snapfeed.c): durable events live,
 * its catch-up from the log when it is behind, its reset when its state is
 * past the log or from another history.
 *
 * Invariant: while a catch-up read is out (next != 0) no live event is
 * batched for it (the read brings them, in order).
 */
#ifndef ESBANK_BUS_SNAPFEED_H
#define ESBANK_BUS_SNAPFEED_H

#include "bus.h"

/* Called after the feed reset the snapshotter (the caller re-checks recovery). */
typedef void (*snapfeed_reset_cb)(hub_t *h);

typedef struct {
	uint64_t hwm;           /* the snapshotter's: its hello, its acks, what was sent */
	uint64_t snapshot_seq;  /* its newest snapshot, as it said (status) */
	uint64_t next;          /* next seq to read for its catch-up, 0: none */
	bool verify;            /* check its chain against the log's first */
	char chain[BUS_HASH_HEX_BYTES]; /* the chain hash of its state, from its hello */
	snapfeed_reset_cb on_reset;
} snapfeed_t;

void snapfeed_init(hub_t *h, snapfeed_reset_cb on_reset);
/* The snapshotter's hello (msg): its hwm, snapshot and chain. */
void snapfeed_up(hub_t *h, const msgpack_object *msg);
/* Its ack (msg): applied up to hwm, newest snapshot. */
void snapfeed_ack(hub_t *h, const msgpack_object *msg);
/* Its link or the logger's is down: no catch-up read is out any more. */
void snapfeed_down(hub_t *h);
/* Tells the snapshotter to start empty (why: for the log). */
void snapfeed_reset(hub_t *h, const char *why);
/* Starts its catch-up from the log when it is behind (or to verify it). */
void snapfeed_check(hub_t *h);
/* Durable event p: into the snapshotter's next batch when it is streaming. */
void snapfeed_durable(hub_t *h, const pending_event_t *p);

#endif
