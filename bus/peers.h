/*
 * peers.h - the bus's links to its four peers and the replicator (peers.c; docs/peers.md):
 * each a link_t that reconnects with back-off, opened with the bus hello;
 * each peer's messages handed to the file of their concern; and what the
 * logger's link says of the log (its hwm and head, a write fault).
 *
 * Invariant: a peer is up (peer_up) only after its hello on the current
 * connection.
 */
#ifndef ESBANK_BUS_PEERS_H
#define ESBANK_BUS_PEERS_H

#include "bus.h"
#include "conn.h"

#include <assert.h>

typedef struct {
	link_t link;
	hub_t *hub;
	peer_role_t role;
	bool hello;        /* hello received on the current connection */
	uint64_t pid;      /* as the peer said in its hello (0: unknown) */
} peer_t;

typedef struct {
	peer_t peer[PEER_COUNT];
	uint64_t logger_hwm;    /* its hello, then each "durable" */
	uint64_t logger_end;    /* its hello's "end": the log's last seq, checked up
	                         * to logger_hwm only while logger_hwm is below it */
	char logger_head[BUS_HASH_HEX_BYTES]; /* the log's chain hash at logger_hwm */
	/*
	 * From the logger's "fault" until its next "durable": no command reaches
	 * the resolver, each gets `unavailable`. Events resolved before stay
	 * pending and their replies held; the logger keeps them and retries, so
	 * they become durable (and log_fault clears) when the disk recovers, and
	 * the resolver's state, which has applied them, never diverges from the log.
	 */
	bool log_fault;
} peers_t;

static inline void peers_assert(const peers_t *ps)
{
	for (int r = 0; r < PEER_COUNT; r++)
		assert(!ps->peer[r].hello || ps->peer[r].link.up);
}

/* Starts the four links and the replicator's unless the role is single
 * (sockets in run_dir). Returns 0 or -errno. */
int peers_start(hub_t *h, const char *run_dir);

#endif
