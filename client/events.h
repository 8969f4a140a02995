/*
 * events.h - printing the event log: a range read page by page with the
 * "events" op, or followed live with "subscribe".
 */
#ifndef ESBANK_CLIENT_EVENTS_H
#define ESBANK_CLIENT_EVENTS_H

#include "call.h"

#include <stdbool.h>
#include <stdint.h>

/*
 * Prints the durable events from seq from on, at most limit of them, up to
 * the last seq the server reported in its first reply. Returns the exit code.
 */
int events_list(call_t *c, uint64_t from, uint64_t limit);

/*
 * Subscribes (from seq from when has_from, else from the next new event) and
 * prints events as they arrive until limit have been printed, SIGINT or
 * SIGTERM (exit 0), or the connection ends (exit 111).
 */
int events_follow(call_t *c, bool has_from, uint64_t from, uint64_t limit);

#endif
