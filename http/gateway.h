/*
 * gateway.h - the HTTP gateway's state and its life cycle: the HTTP server
 * (server.h), the routes (routes.h) that answer its requests through the
 * calls in flight to the bus (buscall.h), tokens, login limits and metrics.
 *
 * Calls run one way: main.c -> gateway.c -> routes.c -> {buscall.c, server.c,
 * token.c, login.c, metrics.c, idemkey.c}; the server reaches the routes
 * through the callbacks gateway.c sets, the bus's replies reach them
 * through buscall_reply_cb.
 */
#ifndef ESBANK_HTTP_GATEWAY_H
#define ESBANK_HTTP_GATEWAY_H

#include "buscall.h"
#include "login.h"
#include "metrics.h"
#include "server.h"
#include "token.h"

#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

typedef struct {
	const char *http_addr;
	const char *metrics_addr; /* NULL or "": no metrics listener */
	const char *data_dir;
	const char *run_dir;
	uint64_t token_ttl_s;
} gateway_opts_t;

/* Each part is written by its own file; server.data points back here. */
typedef struct gateway {
	uv_loop_t *loop;
	buscall_table_t calls;
	uv_signal_t sigterm;
	uv_signal_t sigint;
	token_ctx_t token;
	login_limits_t logins;
	metrics_t metrics;
	http_server_t server;
	http_server_t metrics_server; /* serves /metrics only; started when asked */
	bool metrics_on;
} gateway_t;

/* Runs the gateway until SIGTERM/SIGINT. Returns the process exit code. */
int gateway_run(const gateway_opts_t *o);

/*
 * The steps of gateway_run, for a test that drives the gateway on its own
 * loop: gateway_init loads the secret and allocates the tables of a zeroed
 * *gw on gw->loop (0 or an exit code; gateway_free undoes it);
 * gateway_listen starts the HTTP server on o->http_addr with the routes,
 * and the metrics server on o->metrics_addr when set (0 or an exit code,
 * the error logged). The bus link is then started with
 * buscall_start() or buscall_attach() on &gw->calls.
 */
int gateway_init(gateway_t *gw, const gateway_opts_t *o);
int gateway_listen(gateway_t *gw, const gateway_opts_t *o);
void gateway_free(gateway_t *gw);

#endif
