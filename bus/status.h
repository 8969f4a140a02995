/* status.h - the protocol's "status" (status.c): the bus's view of the group. */
#ifndef ESBANK_BUS_STATUS_H
#define ESBANK_BUS_STATUS_H

#include "clients.h"

/* Queues the status reply to request id for c. */
void status_reply(hub_t *h, client_t *c, uint64_t id);

#endif
