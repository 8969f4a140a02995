/*
 * metricscmd.h - `esbank metrics`: every program's figures, as the bus
 * gathers them for the op "metrics" (docs/protocol.md), printed in the
 * Prometheus text format (or the reply as JSON with --json).
 */
#ifndef ESBANK_CLIENT_METRICSCMD_H
#define ESBANK_CLIENT_METRICSCMD_H

#include "call.h"

/* Asks the bus on call and prints the text on stdout. Returns 0 or an exit code. */
int metrics_run(call_t *call);

#endif
