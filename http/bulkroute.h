/*
 * bulkroute.h - POST /api/money_transfers, bulk transfers (bulkroute.c).
 */
#ifndef ESBANK_HTTP_BULKROUTE_H
#define ESBANK_HTTP_BULKROUTE_H

#include "gateway.h"
#include "server.h"

void route_transfers(gateway_t *gw, http_req_t *req);

#endif
