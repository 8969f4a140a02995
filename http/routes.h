/*
 * routes.h - the gateway's REST API: the route table, and for each route
 * the protocol request it makes and the HTTP response it gives.
 */
#ifndef ESBANK_HTTP_ROUTES_H
#define ESBANK_HTTP_ROUTES_H

#include "gateway.h"
#include "server.h"

#include <stddef.h>

/* Answers req (now or when the bus replies). Set as the server's on_request. */
void routes_dispatch(http_server_t *s, http_req_t *req);

/* Forgets req's bus request. Set as the server's on_cancel. */
void routes_cancel(http_server_t *s, http_req_t *req);

/*
 * Metrics labels for req->route: index 0 is "invalid" (bad HTTP, before
 * routing), 1 "unmatched" (404), then one per path. Sets *n.
 */
const char *const *routes_labels(size_t *n);

#endif
