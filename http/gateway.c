/*
 * gateway.c - the gateway's state and its life cycle (see gateway.h).
 */
#include "gateway.h"

#include "config.h"
#include "diag.h"
#include "routes.h"

#include <errno.h>
#include <http_parser.h>
#include <stdlib.h>
#include <string.h>

#define GW_BUS_SOCKET "bus.sock"

static gateway_t *gw_running; /* the gateway whose loop runs, until exit */

static void gw_signal_cb(uv_signal_t *sig, int signum)
{
	gateway_t *gw = sig->data;
	diag_info("signal %d: stopping", signum);
	http_server_stop(&gw->server);
	if (gw->metrics_on)
		http_server_stop(&gw->metrics_server);
	buscall_stop(&gw->calls);
	uv_stop(gw->loop);
}

int gateway_init(gateway_t *gw, const gateway_opts_t *o)
{
	int rc = config_mkdirs(o->data_dir, 0700);
	if (rc < 0) {
		diag_error("data directory %s: %s", o->data_dir, strerror(-rc));
		return EXIT_TEMPORARY;
	}
	rc = token_load_secret(&gw->token, o->data_dir);
	if (rc < 0)
		return rc == -EINVAL ? EXIT_USAGE : EXIT_TEMPORARY;
	gw->token.ttl_s = o->token_ttl_s;
	if (buscall_init(&gw->calls, gw->loop) < 0 || login_limits_init(&gw->logins) < 0) {
		diag_error("out of memory");
		return EXIT_TEMPORARY;
	}
	size_t nlabels;
	const char *const *labels = routes_labels(&nlabels);
	metrics_init(&gw->metrics, labels, nlabels);
	return 0;
}

void gateway_free(gateway_t *gw)
{
	login_limits_free(&gw->logins);
	buscall_free(&gw->calls);
}

/*
 * The access log: one line per response, "http METHOD ROUTE STATUS MS
 * PEER". ROUTE is the route's path as in the metrics (never the query,
 * which may hold a verification code; never a header, which may hold a
 * token): "invalid" for bad HTTP, "unmatched" for a 404.
 */
static void gw_response_cb(http_server_t *s, http_req_t *req, int status)
{
	gateway_t *gw = s->data;
	uint64_t ns = uv_hrtime() - req->start_ns;
	metrics_observe(&gw->metrics, (size_t)req->route, status, ns);
	size_t nlabels;
	const char *const *labels = routes_labels(&nlabels);
	const char *route = (size_t)req->route < nlabels ? labels[req->route] : "invalid";
	const char *method = req->route ? http_method_str((enum http_method)req->method) : "-";
	diag_info("http %s %s %d %.3fms %s", method, route, status, (double)ns / 1e6,
	          req->peer[0] ? req->peer : "-");
}

/* Starts s on addr with the routes. 0, or an exit code (logged). */
static int gw_listen_on(gateway_t *gw, http_server_t *s, const char *addr)
{
	s->on_request = routes_dispatch;
	s->on_cancel = routes_cancel;
	s->on_response = gw_response_cb;
	s->data = gw;
	int rc = http_server_start(s, gw->loop, addr);
	if (rc < 0) {
		diag_error("http %s: %s", addr, rc == -EINVAL ? "bad address" : uv_strerror(rc));
		/* Retrying cannot help: the operator must choose another address. */
		bool permanent = rc == -EINVAL || rc == UV_EADDRINUSE || rc == UV_EACCES ||
		                 rc == UV_EADDRNOTAVAIL;
		return permanent ? EXIT_USAGE : EXIT_TEMPORARY;
	}
	return 0;
}

int gateway_listen(gateway_t *gw, const gateway_opts_t *o)
{
	int rc = gw_listen_on(gw, &gw->server, o->http_addr);
	if (rc || !o->metrics_addr || !o->metrics_addr[0])
		return rc;
	rc = gw_listen_on(gw, &gw->metrics_server, o->metrics_addr);
	gw->metrics_on = rc == 0;
	return rc;
}

/* Starts the HTTP listener, the bus link and its tick, and the signals. */
static int gw_start_io(gateway_t *gw, const gateway_opts_t *o)
{
	int rc = gateway_listen(gw, o);
	if (rc)
		return rc;
	char *path = config_path(o->run_dir, GW_BUS_SOCKET);
	if (!path || buscall_start(&gw->calls, path) < 0) {
		diag_error("cannot start the link to %s", path ? path : GW_BUS_SOCKET);
		free(path);
		return EXIT_TEMPORARY;
	}
	free(path);
	gw->sigterm.data = gw->sigint.data = gw;
	uv_signal_init(gw->loop, &gw->sigterm);
	uv_signal_start(&gw->sigterm, gw_signal_cb, SIGTERM);
	uv_signal_init(gw->loop, &gw->sigint);
	uv_signal_start(&gw->sigint, gw_signal_cb, SIGINT);
	diag_info("listening on http://%s; bus at %s/%s", o->http_addr, o->run_dir, GW_BUS_SOCKET);
	if (gw->metrics_on)
		diag_info("metrics on http://%s/metrics", o->metrics_addr);
	return 0;
}

int gateway_run(const gateway_opts_t *o)
{
	gateway_t *gw = calloc(1, sizeof(*gw));
	if (!gw) {
		diag_error("out of memory");
		return EXIT_TEMPORARY;
	}
	gw->loop = uv_default_loop();
	int rc = gateway_init(gw, o);
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
	gateway_free(gw);
	free(gw);
	return rc;
}
