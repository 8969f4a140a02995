/*
 * statementcmd.h - `esbank statement ACCOUNT`: one account's transactions
 * with the running balance, for a month or a period, read page by page with
 * the "statement" op (docs/protocol.md), printed as a table, CSV or JSON.
 */
#ifndef ESBANK_CLIENT_STATEMENTCMD_H
#define ESBANK_CLIENT_STATEMENTCMD_H

#include "call.h"
#include "config.h"

/* The options of statement, for its option table (ends with {0}). */
#define STATEMENTCMD_OPTS                                                                  \
	{ .name = "month", .help = "the calendar month, UTC: 2026-11" },                      \
	{ .name = "since", .help = "from this UTC time on (2026-11-01, 2026-11-01T12:00Z, "  \
				   "ms)" },                                                  \
	{ .name = "until", .help = "up to this UTC time (a date: its whole day)" },           \
	{ .name = "csv", .is_flag = true, .help = "print CSV: seq,time,type,amount,"          \
						 "counterparty,balance (dollars)" }

#define STATEMENTCMD_HELP                                                                  \
	"Every transaction of ACCOUNT in order, with its counterparty, the signed\n"         \
	"amount and the balance after it, and the opening and closing balance of the\n"     \
	"period (all time when none is given). Only durable events are shown.\n"            \
	"With --json, the server's reply, one JSON object per page."

/* Prints account's statement as opts ask: the exit code. */
int statementcmd_run(call_t *c, const config_opt_t *opts, const char *account);

#endif
