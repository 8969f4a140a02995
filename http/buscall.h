/*
 * buscall.h - the gateway's calls in flight to the bus: its single shared link
 * to RUN/bus.sock and the table of requests waiting for their replies.
 *
 * Every HTTP request that needs the bus becomes one protocol request,
 * {"op":..., "id":n, ...}, on that link, with an id the table allocates.
 * Replies are matched by id. A request that gets no reply within its timeout
 * is answered -ETIMEDOUT; when the link drops, every request in flight is
 * answered -ENOTCONN (its reply can never come on a new connection).
 *
 * Invariants: n == the slots whose id is not 0, n <= BUSCALLS_MAX; the call
 * with id k lives in slots[k % BUSCALLS_MAX]; up only between the link's
 * on_up and on_down.
 */
#ifndef ESBANK_HTTP_BUSCALL_H
#define ESBANK_HTTP_BUSCALL_H

#include "conn.h"

#include <msgpack.h>
#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#define BUSCALLS_MAX 4096                 /* bus requests in flight; more get 503 */
#define BUSCALL_TIMEOUT_MS 15000          /* a bus request unanswered this long: 504 */
#define BUSCALL_STATUS_TIMEOUT_MS 2000    /* the status request of a /metrics scrape */
#define BUSCALL_OUT_BYTES_MAX (8u << 20)  /* bytes queued to the bus; more get 503 */
#define BUSCALL_TICK_MS 250               /* how often deadlines are checked */

/*
 * Called once per request: status 0 with the reply map (valid during the
 * call only), -ETIMEDOUT, or -ENOTCONN with reply NULL.
 */
typedef void (*buscall_reply_cb)(void *ctx, int status, const msgpack_object *reply);

typedef struct {
	uint64_t id; /* 0: free slot */
	uint64_t deadline_ms;
	buscall_reply_cb cb;
	void *ctx;
} buscall_t;

/* Written only by buscall.c; others may read up and n (the /metrics gauges). */
typedef struct {
	uv_loop_t *loop;
	link_t bus;
	bool up;       /* between the link's on_up and on_down */
	bool stopping; /* buscall_stop() ran */
	buscall_t *slots; /* BUSCALLS_MAX of them */
	size_t n;      /* requests in flight */
	uint64_t next_id;
	uv_timer_t tick;
} buscall_table_t;

/* Allocates the table of a zeroed *t on loop; 0 or -ENOMEM (buscall_free cleans up). */
int buscall_init(buscall_table_t *t, uv_loop_t *loop);

/* Frees the table (not the handles: the process exits after the loop). */
void buscall_free(buscall_table_t *t);

/*
 * Starts the link to the bus at sock_path (reconnecting after each loss)
 * and the deadline tick. Returns 0, or -ENAMETOOLONG for a path too long.
 */
int buscall_start(buscall_table_t *t, const char *sock_path);

/*
 * Uses fd, a connected stream socket, as the link (a test's fake bus; no
 * reconnection, no tick). Returns 0 or a libuv error.
 */
int buscall_attach(buscall_table_t *t, int fd);

/* Stops the link for good; the requests in flight fail with -ENOTCONN. */
void buscall_stop(buscall_table_t *t);

/*
 * Starts a request: packs the map header for 2 + nfields entries, "op" and
 * "id", and sets *pk for the caller to pack exactly nfields key/value pairs,
 * then call buscall_end(). cb(ctx, ...) runs later, once, unless the request
 * is cancelled first. Returns 0 and sets *id; -ENOTCONN when the link is
 * down, -EBUSY when BUSCALLS_MAX requests or BUSCALL_OUT_BYTES_MAX bytes wait
 * (nothing is sent, cb never runs).
 */
int buscall_begin(buscall_table_t *t, const char *op, uint32_t nfields, uint64_t timeout_ms,
               buscall_reply_cb cb, void *ctx, uint64_t *id, msgpack_packer **pk);
void buscall_end(buscall_table_t *t);

/* Forgets request id: its callback will not run. No-op for an unknown id. */
void buscall_cancel(buscall_table_t *t, uint64_t id);

#endif
