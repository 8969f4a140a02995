/*
 * hub.h - esbank-bus, the hub of the group: its state, one part per concern.
 *
 * The bus holds no domain state: it accepts clients on bus.sock, routes each
 * request by its op, keeps the links to the four peers, answers commands
 * only once their events are durable, and drives recovery. Each part of
 * struct hub is written only by its own file; the others read it or call
 * that file's functions. Calls run one way, from the top:
 *
 *   main.c     usage and options; starts the hub
 *   hub.c      starts every part; routes each client request by its op;
 *              the loop's tick and per-iteration flush
 *   status.c   the "status" reply (reads every part)
 *   gather.c   the "metrics" op: every program's figures (reads every part)
 *   peers.c    the four links: hello, each peer message to its concern
 *   recovery.c the bus's state; the resolver rebuilt from the log
 *   hold.c     requests held while recovering
 *   routes.c   the live path: requests, results, durable releases
 *   snapfeed.c the snapshotter's feed     mail.c  the mailer's feed
 *   repl.c     the replicator's column: its feed, follow, promote
 *   clientreads.c  "events" and "subscribe"
 *   reads.c    the read pipeline to the logger (a callback per read)
 *   batches.c  every message to a peer    clients.c  the clients of bus.sock
 *   fifo.c     rings and owned bytes
 *
 * A lower file that must tell a higher one something takes a callback
 * (reads.c, clients.c, snapfeed.c) or returns a code (route_results).
 * Each part's header lists its invariants; hub_assert() checks them all,
 * cheaply (O(1) each), at the end of every entry point from the loop: a
 * client request, a peer frame, a link lost, the tick, the flush.
 */
#ifndef ESBANK_BUS_HUB_H
#define ESBANK_BUS_HUB_H

#include "batches.h"
#include "bus.h"
#include "clientreads.h"
#include "clients.h"
#include "gather.h"
#include "hold.h"
#include "mail.h"
#include "peers.h"
#include "reads.h"
#include "recovery.h"
#include "repl.h"
#include "routes.h"
#include "snapfeed.h"
#include "statement.h"
#include "status.h"

#include <uv.h>

struct hub {
	uv_loop_t *loop;
	uv_check_t batcher;     /* flushes the per-iteration batches to peers */
	uv_timer_t ticker;
	uint64_t started_ms;
	clients_t clients;      /* clients.c */
	peers_t peers;          /* peers.c */
	recovery_t recovery;    /* recovery.c */
	hold_t hold;            /* hold.c */
	routes_t routes;        /* routes.c */
	snapfeed_t snapfeed;    /* snapfeed.c */
	mail_t mail;            /* mail.c */
	repl_t repl;            /* repl.c */
	clientreads_t clientreads; /* clientreads.c */
	reads_t reads;          /* reads.c */
	statements_t statements; /* statement.c */
	batches_t batches;      /* batches.c */
	gather_t gather;        /* gather.c */
};

/* True when role's peer is connected and said hello on this connection. */
static inline bool peer_up(const hub_t *h, peer_role_t role)
{
	return h->peers.peer[role].link.up && h->peers.peer[role].hello;
}

/* Every part's invariants (each header lists its own). */
static inline void hub_assert(const hub_t *h)
{
	clients_assert(&h->clients);
	peers_assert(&h->peers);
	recovery_assert(&h->recovery);
	hold_assert(&h->hold);
	routes_assert(&h->routes);
	mail_assert(&h->mail);
	repl_assert(&h->repl);
	batches_assert(&h->batches);
	gather_assert(&h->gather);
	statements_assert(&h->statements);
}

/*
 * Starts the bus on loop: clients on RUN/bus.sock (allow_gid and
 * out_bytes_max as for clients_start), links to the four peers, and to the
 * replicator when role is not single. Returns 0 or -errno.
 */
int hub_start(hub_t *h, uv_loop_t *loop, const char *run_dir, long allow_gid,
              size_t out_bytes_max, bus_role_t role);
/* Stops taking clients (bus.sock removed); the caller stops the loop. */
void hub_stop(hub_t *h);

#endif
