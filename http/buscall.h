/*
 * buscall.h - the gateway's calls in flight to the bus: its single shared
 * link to RUN/bus.sock, a libesbank async link (libesbank/esbank.h), kept
 * connected.
 *
 * Every HTTP request that needs the bus becomes one protocol request, built
 * with the library's esbank_req_*() and sent with a deadline; the library
 * frames it, gives it an id and matches the reply. A request that gets no
 * reply within its timeout is answered -ETIMEDOUT; when the link drops,
 * every request in flight is answered -ECONNRESET (its reply can never come
 * on a new connection) and the link is made again after a back-off.
 *
 * The library numbers a link's calls from 1; the ids handed out here carry
 * the link's generation above BUSCALL_ID_LINK_BITS, so that cancelling a
 * request of a dead link never cancels one of the next link.
 *
 * Invariants: link is not NULL exactly while up; inflight <= BUSCALLS_MAX.
 */
#ifndef ESBANK_HTTP_BUSCALL_H
#define ESBANK_HTTP_BUSCALL_H

#include "esbank.h"

#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#define BUSCALLS_MAX 4096                 /* bus requests in flight; more get 503 */
#define BUSCALL_TIMEOUT_MS 15000          /* a bus request unanswered this long: 504 */
#define BUSCALL_STATUS_TIMEOUT_MS 2000    /* the status request of a /metrics scrape */
#define BUSCALL_BACKOFF_MIN_MS 50         /* first wait before connecting again */
#define BUSCALL_BACKOFF_MAX_MS 2000       /* longest wait before connecting again */
#define BUSCALL_PATH_BYTES_MAX 108        /* sizeof(sun_path) on Linux */
#define BUSCALL_ID_LINK_BITS 40           /* bits of an id that are the library's */

/*
 * The library's reply callback, called once per request with ctx as arg:
 * status 0 with the reply (valid during the call only), or -ETIMEDOUT,
 * -ECONNRESET (the link dropped), -ECANCELED (buscall_stop) with reply NULL.
 */
typedef esbank_reply_cb buscall_reply_cb;

/* Written only by buscall.c; others read it through buscall_up()/_inflight(). */
typedef struct {
	uv_loop_t *loop;
	esbank_async_t *link; /* NULL while down */
	bool stopping;        /* buscall_stop() ran */
	bool attached;        /* a test's fd: no reconnection */
	uint64_t generation;  /* links made so far: names a link in the ids */
	char path[BUSCALL_PATH_BYTES_MAX];
	uint64_t backoff_ms;
	uv_timer_t retry;
} buscall_table_t;

/* Readies a zeroed *t on loop; 0. */
int buscall_init(buscall_table_t *t, uv_loop_t *loop);

/* Frees what the table holds (not the handles: the process exits after the loop). */
void buscall_free(buscall_table_t *t);

/*
 * Starts the link to the bus at sock_path (reconnecting after each loss).
 * Returns 0, or -ENAMETOOLONG for a path too long.
 */
int buscall_start(buscall_table_t *t, const char *sock_path);

/*
 * Uses fd, a connected stream socket, as the link (a test's fake bus; no
 * reconnection). Returns 0 or a libuv error.
 */
int buscall_attach(buscall_table_t *t, int fd);

/* Stops the link for good; the requests in flight fail with -ECANCELED. */
void buscall_stop(buscall_table_t *t);

/* Whether the link is up, and the requests waiting for replies (/metrics). */
bool buscall_up(const buscall_table_t *t);
size_t buscall_inflight(const buscall_table_t *t);

/*
 * Sends req; cb(ctx, ...) runs later, once, unless the request is cancelled
 * first. Returns 0 and sets *id; -ENOTCONN when the link is down, -EBUSY
 * when BUSCALLS_MAX requests or the library's queued-bytes limit wait,
 * -EMSGSIZE or -ENOMEM (nothing is sent, cb never runs).
 */
int buscall_send(buscall_table_t *t, const esbank_request_t *req, int timeout_ms,
                 buscall_reply_cb cb, void *ctx, uint64_t *id);

/* Forgets request id: its callback will not run. No-op for an unknown id. */
void buscall_cancel(buscall_table_t *t, uint64_t id);

#endif
