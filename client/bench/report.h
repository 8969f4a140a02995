/*
 * report.h - the figures of `esbank bench`: every load reply's outcome
 * and latency, recorded as they come, and the report printed at the end
 * (text or JSON), with the exit status the outcomes call for.
 *
 * Outcome 0 is ok; then the error codes of PROTOCOL.md; last, anything else.
 * Invariant: completed == the sum of outcomes[][] == lat[BENCH_LOAD_OPS].total.
 */
#ifndef ESBANK_CLIENT_BENCH_REPORT_H
#define ESBANK_CLIENT_BENCH_REPORT_H

#include "histogram.h"
#include "mix.h"
#include "options.h"

#include <msgpack.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define BENCH_OUTCOMES      18
#define BENCH_OUTCOME_OK    0
#define BENCH_OUTCOME_OTHER (BENCH_OUTCOMES - 1)

typedef struct {
	uint64_t completed; /* load replies */
	uint64_t outcomes[BENCH_LOAD_OPS][BENCH_OUTCOMES];
	histogram_t lat[BENCH_LOAD_OPS + 1]; /* per op, then all; nanoseconds */
} report_t;

/* What the run adds to the figures: its times and whether it was interrupted. */
typedef struct {
	uint64_t setup_ns;
	double elapsed_s; /* of the load */
	bool interrupted;
} report_run_t;

/* Sets up the histograms of a zeroed *r; 0 or -ENOMEM (report_free cleans up). */
int report_init(report_t *r);
void report_free(report_t *r);

/* The outcome a reply map says: BENCH_OUTCOME_OK, an error's, or _OTHER. */
size_t report_outcome(const msgpack_object *reply);

/* The name of an outcome: "ok", an error code, "other". */
const char *report_outcome_name(size_t outcome);

/* True for the outcomes that say the server is in trouble, not the request. */
bool report_outcome_temporary(size_t outcome);

/* Counts one load reply of op with its latency. */
void report_record(report_t *r, bench_op_t op, size_t outcome, uint64_t lat_ns);

/*
 * Prints the report of a load run on stdout (text, or JSON with cfg->json).
 * Returns the exit status: 0 when every request got ok or
 * insufficient_funds, else EXIT_TEMPORARY or EXIT_BUG after saying so on
 * stderr.
 */
int report_print(const report_t *r, const bench_config_t *cfg, const report_run_t *run);

/* Prints the numbers of the cfg->accounts prepared accounts (--setup-only). */
void report_accounts(const bench_config_t *cfg, const bench_number_t *numbers,
		     uint64_t setup_ns);

#endif
