/*
 * clients.h - the clients of bus.sock (clients.c): accept, read requests,
 * send replies, the limits on each client and on all of them.
 *
 * Invariants: count <= BUS_CLIENTS_MAX clients fill slots; out_bytes is the
 * sum of out_counted over them (>= what those not dropped queue); a dropped
 * client's out_counted is 0 and stays so.
 */
#ifndef ESBANK_BUS_CLIENTS_H
#define ESBANK_BUS_CLIENTS_H

#include "bus.h"
#include "conn.h"

#include <assert.h>
#include <uv.h>

typedef struct client {
	conn_t conn;
	hub_t *hub;
	uint32_t slot;
	uint64_t gen;
	uint32_t inflight;
	long pid;               /* the connecting process (SO_PEERCRED), for the log */
	size_t out_counted;     /* conn.out_bytes as last added to clients.out_bytes */
	bool dropped;           /* out_counted is 0 and stays so */
} client_t;

/* A request with a valid id and op from c: the whole frame is req[0..n). */
typedef void (*clients_request_cb)(hub_t *h, client_t *c, uint64_t id, int op, const char *req,
                                   size_t n);

typedef struct {
	listener_t listener;
	client_t *slots[BUS_CLIENTS_MAX];
	uint64_t gen;           /* of the newest client */
	size_t count;
	size_t out_bytes;       /* the sum of out_counted over clients */
	size_t out_bytes_max;   /* the budget, BUS_CLIENTS_OUT_BYTES_TOTAL_MAX or lower */
	clients_request_cb on_request;
} clients_t;

static inline void clients_assert(const clients_t *cs)
{
	assert(cs->count <= BUS_CLIENTS_MAX);
	assert(cs->out_bytes_max >= BUS_CLIENTS_OUT_BYTES_TOTAL_MIN &&
	       cs->out_bytes_max <= BUS_CLIENTS_OUT_BYTES_TOTAL_MAX);
}

/*
 * Listens on RUN/bus.sock. allow_gid: a group whose members may connect
 * besides our own user (bus.sock then 0660 in that group, the run directory
 * 0710), or -1. out_bytes_max: the budget of reply bytes queued for all
 * clients, from BUS_CLIENTS_OUT_BYTES_TOTAL_MIN to _MAX. Each request goes
 * to on_request. Returns 0 or -errno.
 */
int clients_start(hub_t *h, const char *run_dir, long allow_gid, size_t out_bytes_max,
                  clients_request_cb on_request);
/* Stops listening and removes bus.sock. */
void clients_stop(hub_t *h);
client_t *clients_get(hub_t *h, client_ref_t ref); /* NULL when gone */
client_ref_t clients_ref(const client_t *c);
/* Queues one reply frame for to (nothing when it is gone). */
void clients_send(hub_t *h, client_ref_t to, const char *reply, size_t n);
void clients_send_error(hub_t *h, client_ref_t to, uint64_t id, int err, const char *message);
/* One request of from's is answered: it may be read from again. */
void clients_done(hub_t *h, client_ref_t from);
/*
 * To call after queueing a reply for c: disconnects c when its queued
 * replies exceed BUS_CLIENT_OUT_BYTES_MAX, and the clients with the largest
 * backlogs (c or others) while all clients' together exceed the budget.
 * A dropped client's queued replies are discarded (its memory is freed once
 * its socket closes, without waiting for it to read). c stays allocated.
 */
void clients_check_backlog(client_t *c);

#endif
