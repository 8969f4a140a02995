/*
 * gateway.c - the gateway's state, its link to the bus, and its life cycle
 * (see gateway.h).
 *
 * Wire format on the link (PROTOCOL.md): each request is one frame holding
 * {"op": string, "id": uint, ...fields}; each reply one frame holding
 * {"id": uint, "ok": bool, ...}. Ids start at 1 and grow; id n lives in
 * slot n % GW_CALLS_MAX of the call table, and an id whose slot is taken is
 * skipped, so finding a reply's request is one array access. A reply whose
 * id is not in the table (timed out, cancelled, or id 0 for a frame the bus
 * could not read) is logged and dropped.
 */
#include "gateway.h"

#include "config.h"
#include "log.h"
#include "routes.h"

#include <assert.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define GW_BUS_SOCKET "bus.sock"

static gateway_t *gw_running; /* the gateway whose loop runs, until exit */

static gateway_t *gw_of_link(conn_t *c)
{
	link_t *k = (link_t *)((char *)c - offsetof(link_t, conn));
	return (gateway_t *)((char *)k - offsetof(gateway_t, bus));
}

gateway_t *gw_of_server(http_server_t *s)
{
	return (gateway_t *)((char *)s - offsetof(gateway_t, server));
}

static gw_call_t *gw_find(gateway_t *gw, uint64_t id)
{
	gw_call_t *call = &gw->calls[id % GW_CALLS_MAX];
	return id != 0 && call->id == id ? call : NULL;
}

/* Frees call's slot and runs its callback. */
static void gw_finish(gateway_t *gw, gw_call_t *call, int status, const msgpack_object *reply)
{
	gw_reply_cb cb = call->cb;
	void *ctx = call->ctx;
	call->id = 0;
	gw->ncalls--;
	cb(ctx, status, reply);
}

static void gw_bus_frame_cb(conn_t *c, const char *body, size_t len)
{
	gateway_t *gw = gw_of_link(c);
	msgpack_zone zone;
	msgpack_object map;
	uint64_t id = 0;
	msgpack_zone_init(&zone, 4096);
	if (msg_decode_map(body, len, &zone, &map) < 0 || msg_get_u64(&map, "id", &id) < 0) {
		log_warn("bus: a reply without an id (%zu bytes); dropped", len);
		goto out;
	}
	gw_call_t *call = gw_find(gw, id);
	if (!call) {
		char err[64] = "";
		msg_get_strcpy(&map, "error", err, sizeof(err));
		if (id == 0) /* the bus could not read one of our frames */
			log_warn("bus: reply to id 0: %s", err);
		else /* its client left, or it timed out */
			log_debug("bus: reply to id %llu after its request ended",
			          (unsigned long long)id);
		goto out;
	}
	gw_finish(gw, call, 0, &map);
out:
	msgpack_zone_destroy(&zone);
}

/* Answers every request in flight whose deadline is before until_ms with status. */
static void gw_fail_calls(gateway_t *gw, int status, uint64_t until_ms)
{
	for (size_t i = 0; i < GW_CALLS_MAX && gw->ncalls > 0; i++) {
		gw_call_t *call = &gw->calls[i];
		if (call->id != 0 && call->deadline_ms <= until_ms)
			gw_finish(gw, call, status, NULL);
	}
}

static void gw_bus_up_cb(link_t *k)
{
	gateway_t *gw = (gateway_t *)((char *)k - offsetof(gateway_t, bus));
	gw->bus_up = true;
	log_info("connected to the bus");
}

static void gw_bus_down_cb(link_t *k)
{
	gateway_t *gw = (gateway_t *)((char *)k - offsetof(gateway_t, bus));
	if (gw->bus_up && !gw->stopping)
		log_warn("lost the bus; %zu requests in flight fail", gw->ncalls);
	gw->bus_up = false;
	gw_fail_calls(gw, -ENOTCONN, UINT64_MAX);
}

static void gw_tick_cb(uv_timer_t *t)
{
	gateway_t *gw = t->data;
	if (gw->ncalls > 0)
		gw_fail_calls(gw, -ETIMEDOUT, uv_now(gw->loop));
}

int gw_call_begin(gateway_t *gw, const char *op, uint32_t nfields, uint64_t timeout_ms,
                  gw_reply_cb cb, void *ctx, uint64_t *id, msgpack_packer **pk)
{
	assert(cb && pk && id);
	if (!gw->bus_up)
		return -ENOTCONN;
	if (gw->ncalls >= GW_CALLS_MAX || gw->bus.conn.out_bytes > GW_BUS_OUT_MAX)
		return -EBUSY;
	while (gw->calls[gw->next_id % GW_CALLS_MAX].id != 0 || gw->next_id == 0)
		gw->next_id++;
	gw_call_t *call = &gw->calls[gw->next_id % GW_CALLS_MAX];
	call->id = gw->next_id++;
	call->deadline_ms = uv_now(gw->loop) + timeout_ms;
	call->cb = cb;
	call->ctx = ctx;
	gw->ncalls++;
	msgpack_packer *p = conn_pack_begin(&gw->bus.conn);
	msgpack_pack_map(p, 2 + nfields);
	msg_pack_kv_str(p, "op", op);
	msg_pack_kv_u64(p, "id", call->id);
	*id = call->id;
	*pk = p;
	return 0;
}

void gw_call_end(gateway_t *gw)
{
	conn_pack_end(&gw->bus.conn);
}

void gw_call_cancel(gateway_t *gw, uint64_t id)
{
	gw_call_t *call = gw_find(gw, id);
	if (call) {
		call->id = 0;
		gw->ncalls--;
	}
}

static void gw_signal_cb(uv_signal_t *sig, int signum)
{
	gateway_t *gw = sig->data;
	log_info("signal %d: stopping", signum);
	gw->stopping = true;
	http_server_stop(&gw->server);
	link_stop(&gw->bus);
	uv_stop(gw->loop);
}

/* Loads the secret and allocates the tables. Returns 0 or an exit code. */
static int gw_init_state(gateway_t *gw, const gateway_opts_t *o)
{
	int rc = config_mkdirs(o->data_dir, 0700);
	if (rc < 0) {
		log_error("data directory %s: %s", o->data_dir, strerror(-rc));
		return EXIT_TEMPORARY;
	}
	rc = token_load_secret(&gw->token, o->data_dir);
	if (rc < 0)
		return rc == -EINVAL ? EXIT_USAGE : EXIT_TEMPORARY;
	gw->token.ttl_s = o->token_ttl_s;
	gw->calls = calloc(GW_CALLS_MAX, sizeof(*gw->calls));
	if (!gw->calls || login_limits_init(&gw->logins) < 0) {
		log_error("out of memory");
		return EXIT_TEMPORARY;
	}
	size_t nlabels;
	const char *const *labels = routes_labels(&nlabels);
	metrics_init(&gw->metrics, labels, nlabels);
	gw->next_id = 1;
	return 0;
}

static void gw_response_cb(http_server_t *s, http_req_t *req, int status)
{
	gateway_t *gw = gw_of_server(s);
	metrics_observe(&gw->metrics, (size_t)req->route, status, uv_hrtime() - req->start_ns);
	log_debug("%s %s %d", req->peer, req->path, status);
}

/* Starts the HTTP listener, the bus link, the tick and the signals. */
static int gw_start_io(gateway_t *gw, const gateway_opts_t *o)
{
	gw->server.on_request = routes_dispatch;
	gw->server.on_cancel = routes_cancel;
	gw->server.on_response = gw_response_cb;
	gw->server.data = gw;
	int rc = http_server_start(&gw->server, gw->loop, o->http_addr);
	if (rc < 0) {
		log_error("http %s: %s", o->http_addr,
		          rc == -EINVAL ? "bad address" : uv_strerror(rc));
		/* Retrying cannot help: the operator must choose another address. */
		bool permanent = rc == -EINVAL || rc == UV_EADDRINUSE || rc == UV_EACCES ||
		                 rc == UV_EADDRNOTAVAIL;
		return permanent ? EXIT_USAGE : EXIT_TEMPORARY;
	}
	char *path = config_path(o->run_dir, GW_BUS_SOCKET);
	if (!path || link_start(&gw->bus, gw->loop, path, gw_bus_frame_cb, gw_bus_up_cb,
	                        gw_bus_down_cb) < 0) {
		log_error("cannot start the link to %s", path ? path : GW_BUS_SOCKET);
		free(path);
		return EXIT_TEMPORARY;
	}
	free(path);
	gw->tick.data = gw->sigterm.data = gw->sigint.data = gw;
	uv_timer_init(gw->loop, &gw->tick);
	uv_timer_start(&gw->tick, gw_tick_cb, GW_TICK_MS, GW_TICK_MS);
	uv_signal_init(gw->loop, &gw->sigterm);
	uv_signal_start(&gw->sigterm, gw_signal_cb, SIGTERM);
	uv_signal_init(gw->loop, &gw->sigint);
	uv_signal_start(&gw->sigint, gw_signal_cb, SIGINT);
	log_info("listening on http://%s; bus at %s/%s", o->http_addr, o->run_dir, GW_BUS_SOCKET);
	return 0;
}

int gateway_run(const gateway_opts_t *o)
{
	gateway_t *gw = calloc(1, sizeof(*gw));
	if (!gw) {
		log_error("out of memory");
		return EXIT_TEMPORARY;
	}
	gw->loop = uv_default_loop();
	int rc = gw_init_state(gw, o);
	if (rc == 0)
		rc = gw_start_io(gw, o);
	if (rc == 0) {
		/*
		 * After a stop signal the process exits: the kernel closes the
		 * sockets. Handles inside *gw stay referenced by the loop, so gw
		 * is kept (and reachable, for leak checkers) rather than freed.
		 */
		gw_running = gw;
		uv_run(gw->loop, UV_RUN_DEFAULT);
		return 0;
	}
	login_limits_free(&gw->logins);
	free(gw->calls);
	free(gw);
	return rc;
}
