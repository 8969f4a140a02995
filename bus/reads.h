/*
 * reads.h - the one read pipeline to the logger (reads.c). The logger
 * answers "read"s in order, so each read sent is queued with the callback
 * that takes its answer; whoever asks (a client's events, a subscriber, the
 * resolver's replay, the snapshotter's and the mailer's catch-up) passes its
 * own callback and context.
 *
 * Invariant: one queued read per "read" sent on the logger's current
 * session; none while the logger is not up.
 */
#ifndef ESBANK_BUS_READS_H
#define ESBANK_BUS_READS_H

#include "bus.h"
#include "msg.h"

typedef struct bus_read bus_read_t;
/*
 * Takes the answer to rd: msg is the logger's read result, its "events" an
 * array of bin; NULL when the logger went away before answering.
 */
typedef void (*reads_cb)(hub_t *h, const bus_read_t *rd, const msgpack_object *msg);

/* A read sent to the logger, and who takes its answer. */
struct bus_read {
	reads_cb on_result;
	client_ref_t to;  /* the asking client, when one asked */
	uint64_t req_id;  /* its request's id */
	void *arg;        /* the asker's context */
};

typedef struct {
	bus_fifo_t queue; /* bus_read_t, in the order sent */
} reads_t;

void reads_init(hub_t *h);
/*
 * Asks the logger for at most limit durable events from seq from; rd's
 * callback takes the answer. Returns 0, -ENOTCONN when the logger is not
 * up, -ENOMEM (nothing sent, the callback never runs).
 */
int reads_send(hub_t *h, uint64_t from, uint64_t limit, const bus_read_t *rd);
/* The logger's answer to the oldest read: to its callback. */
void reads_result(hub_t *h, const msgpack_object *msg);
/* The logger's link is down: every queued read's callback gets NULL. */
void reads_logger_lost(hub_t *h);
/* A read result's events (an array of bin) and, in *first, the seq of the first. */
const msgpack_object *reads_events(const msgpack_object *msg, uint64_t *first);
/* True when a read result's "prev" (the log's hash before it) is chain. */
bool reads_prev_is(const msgpack_object *msg, const char *chain);

#endif
