/*
 * logcmd.h - `esbank log`, printing the event log: a range read page by page with the
 * "events" op, or followed live with "subscribe".
 */
#ifndef ESBANK_CLIENT_LOGCMD_H
#define ESBANK_CLIENT_LOGCMD_H

#include "call.h"
#include "config.h"
#include "ledger.h"

#include <stdbool.h>
#include <stdint.h>

/* Which events are printed (--type, --account, --since, --until); zero: all. */
typedef struct {
	ledger_event_type_t type;  /* 0: any */
	bool has_account;
	uint64_t account;          /* as account, from or to */
	bool has_since, has_until;
	int64_t since_ms, until_ms;
} logcmd_filter_t;

/* The filter options of log, for its option table (ends with {0}). */
#define LOGCMD_FILTER_OPTS                                                               \
	{ .name = "type", .help = "only events of this type (account_opened, ...)" },    \
	{ .name = "account", .help = "only events of this account (as from or to too)" }, \
	{ .name = "since", .help = "only events at or after this UTC time (2024-05-01, "  \
				   "2024-05-01T12:00Z, ms)" },                           \
	{ .name = "until", .help = "only events at or before this UTC time" }

/* Reads the filter options; 0, or EXIT_USAGE after saying why. */
int logcmd_filter_parse(const config_opt_t *opts, logcmd_filter_t *f);

/*
 * Prints the durable events from seq from on that pass the filter f, at most
 * limit of them, up to the last seq the server reported in its first reply
 * (or the first event after f->until_ms). Returns the exit code.
 */
int logcmd_list(call_t *c, uint64_t from, uint64_t limit, const logcmd_filter_t *f);

/*
 * Subscribes (from seq from when has_from, else from the next new event) and
 * prints events as they arrive until limit have been printed, SIGINT or
 * SIGTERM (exit 0), or the connection ends (exit 111).
 */
int logcmd_follow(call_t *c, bool has_from, uint64_t from, uint64_t limit,
		  const logcmd_filter_t *f);

#endif
