/*
 * statementroute.h - GET /api/account/statement (statementroute.c).
 */
#ifndef ESBANK_HTTP_STATEMENTROUTE_H
#define ESBANK_HTTP_STATEMENTROUTE_H

#include "gateway.h"
#include "server.h"

/* The logged-in account's statement; answers req. */
void route_statement(gateway_t *gw, http_req_t *req);

#endif
