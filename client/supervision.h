/*
 * supervision.h - what esbankd says of its children in RUN/esbankd.state
 * (common/runstate.h), found beside the bus socket, for `esbank status`.
 */
#ifndef ESBANK_CLIENT_SUPERVISION_H
#define ESBANK_CLIENT_SUPERVISION_H

#include "runstate.h"

/* Reads the state file beside sock_path (RUN/bus.sock); never fails. */
void supervision_read(const char *sock_path, runstate_t *out);

#endif
