/*
 * gateway.h - the HTTP gateway's state and its single shared link to the
 * bus (RUN/bus.sock).
 *
 * Every HTTP request that needs the bus becomes one protocol request,
 * {"op":..., "id":n, ...}, on that link, with an id the gateway allocates.
 * Replies are matched by id. A request that gets no reply within its timeout
 * is answered -ETIMEDOUT; when the link drops, every request in flight is
 * answered -ENOTCONN (its reply can never come on a new connection).
 */
#ifndef ESBANK_HTTP_GATEWAY_H
#define ESBANK_HTTP_GATEWAY_H

#include "conn.h"
#include "metrics.h"
#include "login.h"
#include "server.h"
#include "token.h"

#include <msgpack.h>
#include <stdint.h>
#include <uv.h>

#define GW_CALLS_MAX 4096            /* bus requests in flight; more get 503 */
#define GW_BUS_TIMEOUT_MS 15000      /* a bus request unanswered this long: 504 */
#define GW_STATUS_TIMEOUT_MS 2000    /* the status request of a /metrics scrape */
#define GW_BUS_OUT_MAX (8u << 20)    /* bytes queued to the bus; more get 503 */
#define GW_TICK_MS 250               /* how often deadlines are checked */

/*
 * Called once per request: status 0 with the reply map (valid during the
 * call only), -ETIMEDOUT, or -ENOTCONN with reply NULL.
 */
typedef void (*gw_reply_cb)(void *ctx, int status, const msgpack_object *reply);

typedef struct {
	uint64_t id; /* 0: free slot */
	uint64_t deadline_ms;
	gw_reply_cb cb;
	void *ctx;
} gw_call_t;

typedef struct {
	const char *http_addr;
	const char *data_dir;
	const char *run_dir;
	uint64_t token_ttl_s;
} gateway_opts_t;

typedef struct gateway {
	uv_loop_t *loop;
	link_t bus;
	bool bus_up;          /* between the link's on_up and on_down */
	bool stopping;        /* a stop signal came */
	gw_call_t *calls;     /* GW_CALLS_MAX slots; id n lives in slot n % GW_CALLS_MAX */
	size_t ncalls;
	uint64_t next_id;
	uv_timer_t tick;
	uv_signal_t sigterm;
	uv_signal_t sigint;
	token_ctx_t token;
	login_limits_t logins;
	metrics_t metrics;
	http_server_t server;
} gateway_t;

/* Runs the gateway until SIGTERM/SIGINT. Returns the process exit code. */
int gateway_run(const gateway_opts_t *o);

/*
 * Starts a request: packs the map header for 2 + nfields entries, "op" and
 * "id", and sets *pk for the caller to pack exactly nfields key/value pairs,
 * then call gw_call_end(). cb(ctx, ...) runs later, once, unless the request
 * is cancelled first. Returns 0 and sets *id; -ENOTCONN when the link is
 * down, -EBUSY when GW_CALLS_MAX requests or GW_BUS_OUT_MAX bytes wait
 * (nothing is sent, cb never runs).
 */
int gw_call_begin(gateway_t *gw, const char *op, uint32_t nfields, uint64_t timeout_ms,
                  gw_reply_cb cb, void *ctx, uint64_t *id, msgpack_packer **pk);
void gw_call_end(gateway_t *gw);

/* Forgets request id: its callback will not run. No-op for an unknown id. */
void gw_call_cancel(gateway_t *gw, uint64_t id);

/* The gateway a server belongs to. */
gateway_t *gw_of_server(http_server_t *s);

#endif
