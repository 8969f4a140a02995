/*
 * report.c - the figures of `esbank bench` and their report (see report.h).
 *
 * Text: a head (setup, load, requests, outcomes), then a table of count,
 * ok, errors and latency percentiles in ms per op with a weight, and "all".
 * JSON (--json): one object, latencies in microseconds:
 *   {"mode":"closed"|"open","connections":n,"inflight":n,["rate":r,]
 *    "count":n | "duration_s":s,"accounts":n,"setup_s":s,"elapsed_s":s,
 *    "requests":n,"ops_per_s":x,"interrupted":bool,"outcomes":{name:n,...},
 *    "latency_us":{"p50","p90","p99","p99.9","max","mean"},
 *    "ops":{op:{"count":n,"outcomes":{...},"latency_us":{...}},...}}
 * Outcomes list "ok" always and the others only when they happened.
 * --setup-only: {"setup_s":s,"accounts":[numbers]}, or a number per line.
 */
#include "report.h"

#include "diag.h"
#include "msg.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#define BENCH_LAT_HIGHEST_NS (60ull * 1000000000ull)
#define BENCH_LAT_DIGITS     2

static const char *const report_outcomes[] = {
    "ok",
    "bad_frame",
    "bad_request",
    "unknown_op",
    "not_found",
    "already_exists",
    "already_verified",
    "wrong_code",
    "not_verified",
    "insufficient_funds",
    "invalid_amount",
    "same_account",
    "key_conflict",
    "auth_failed",
    "unavailable",
    "overloaded",
    "internal",
    "other",
};
_Static_assert(sizeof(report_outcomes) / sizeof(report_outcomes[0]) == BENCH_OUTCOMES,
	       "BENCH_OUTCOMES counts report_outcomes");

int report_init(report_t *r)
{
	for (int op = 0; op <= BENCH_LOAD_OPS; op++)
		if (histogram_init(&r->lat[op], 1, BENCH_LAT_HIGHEST_NS, BENCH_LAT_DIGITS) < 0)
			return -ENOMEM;
	return 0;
}

void report_free(report_t *r)
{
	for (int op = 0; op <= BENCH_LOAD_OPS; op++)
		histogram_free(&r->lat[op]);
}

size_t report_outcome(const msgpack_object *reply)
{
	bool ok = false;
	const char *code;
	size_t n;

	if (msg_get_bool(reply, "ok", &ok) == 0 && ok)
		return BENCH_OUTCOME_OK;
	if (msg_get_str(reply, "error", &code, &n) < 0)
		return BENCH_OUTCOME_OTHER;
	for (size_t i = 1; i < BENCH_OUTCOME_OTHER; i++)
		if (strlen(report_outcomes[i]) == n && memcmp(report_outcomes[i], code, n) == 0)
			return i;
	return BENCH_OUTCOME_OTHER;
}

const char *report_outcome_name(size_t outcome)
{
	return report_outcomes[outcome];
}

bool report_outcome_temporary(size_t outcome)
{
	const char *code = report_outcomes[outcome];
	return !strcmp(code, "unavailable") || !strcmp(code, "overloaded") ||
	       !strcmp(code, "internal");
}

void report_record(report_t *r, bench_op_t op, size_t outcome, uint64_t lat_ns)
{
	r->outcomes[op][outcome]++;
	histogram_record(&r->lat[op], lat_ns);
	histogram_record(&r->lat[BENCH_LOAD_OPS], lat_ns);
	r->completed++;
}

static uint64_t report_op_total(const report_t *r, int op)
{
	uint64_t n = 0;
	for (size_t o = 0; o < BENCH_OUTCOMES; o++)
		n += r->outcomes[op][o];
	return n;
}

static uint64_t report_outcome_total(const report_t *r, size_t outcome)
{
	uint64_t n = 0;
	for (int op = 0; op < BENCH_LOAD_OPS; op++)
		n += r->outcomes[op][outcome];
	return n;
}

static double report_ms(uint64_t ns)
{
	return (double)ns / 1e6;
}

static void report_text_latency(const char *name, uint64_t count, uint64_t ok,
				const histogram_t *h)
{
	printf("%-12s %10" PRIu64 " %10" PRIu64 " %8" PRIu64, name, count, ok, count - ok);
	if (count)
		printf(" %9.3f %9.3f %9.3f %9.3f %9.3f", report_ms(histogram_percentile(h, 50)),
		       report_ms(histogram_percentile(h, 90)),
		       report_ms(histogram_percentile(h, 99)),
		       report_ms(histogram_percentile(h, 99.9)), report_ms(h->max));
	putchar('\n');
}

static void report_text_head(const report_t *r, const bench_config_t *cfg,
			     const report_run_t *run)
{
	double elapsed_s = run->elapsed_s;

	printf("Setup          %" PRIu64 " accounts opened and verified in %.2f s\n",
	       cfg->accounts, (double)run->setup_ns / 1e9);
	if (cfg->rate > 0)
		printf("Load           open loop, %.0f requests/s over %" PRIu64 " connection%s "
		       "(at most %" PRIu64 " in flight each)\n",
		       cfg->rate, cfg->connections, cfg->connections == 1 ? "" : "s",
		       cfg->inflight);
	else
		printf("Load           closed loop, %" PRIu64 " connection%s x %" PRIu64
		       " in flight\n",
		       cfg->connections, cfg->connections == 1 ? "" : "s", cfg->inflight);
	printf("Requests       %" PRIu64 " in %.2f s: %.0f ops/s%s\n", r->completed, elapsed_s,
	       elapsed_s > 0 ? (double)r->completed / elapsed_s : 0,
	       run->interrupted ? " (interrupted)" : "");
	printf("Outcomes      ");
	for (size_t o = 0; o < BENCH_OUTCOMES; o++) {
		uint64_t n = report_outcome_total(r, o);
		if (n || o == BENCH_OUTCOME_OK)
			printf("%s %s %" PRIu64, o ? "," : "", report_outcomes[o], n);
	}
	printf("\n\n");
}

static void report_text(const report_t *r, const bench_config_t *cfg, const report_run_t *run)
{
	report_text_head(r, cfg, run);
	printf("%-12s %10s %10s %8s %9s %9s %9s %9s %9s\n", "op", "count", "ok", "errors",
	       "p50 ms", "p90 ms", "p99 ms", "p99.9 ms", "max ms");
	for (int op = 0; op < BENCH_LOAD_OPS; op++)
		if (cfg->mix.weights[op])
			report_text_latency(mix_op_name((bench_op_t)op), report_op_total(r, op),
					    r->outcomes[op][BENCH_OUTCOME_OK], &r->lat[op]);
	report_text_latency("all", r->completed, report_outcome_total(r, BENCH_OUTCOME_OK),
			    &r->lat[BENCH_LOAD_OPS]);
}

static void report_json_latency(const histogram_t *h)
{
	printf(
	    "{\"p50\":%.1f,\"p90\":%.1f,\"p99\":%.1f,\"p99.9\":%.1f,\"max\":%.1f,"
	    "\"mean\":%.1f}",
	    (double)histogram_percentile(h, 50) / 1e3, (double)histogram_percentile(h, 90) / 1e3,
	    (double)histogram_percentile(h, 99) / 1e3, (double)histogram_percentile(h, 99.9) / 1e3,
	    (double)h->max / 1e3, histogram_mean(h) / 1e3);
}

static void report_json_outcomes(const uint64_t *counts)
{
	putchar('{');
	for (size_t o = 0, first = 1; o < BENCH_OUTCOMES; o++) {
		if (!counts[o] && o != BENCH_OUTCOME_OK)
			continue;
		printf("%s\"%s\":%" PRIu64, first ? "" : ",", report_outcomes[o], counts[o]);
		first = 0;
	}
	putchar('}');
}

static void report_json_ops(const report_t *r, const bench_config_t *cfg)
{
	printf(",\"ops\":{");
	for (int op = 0, first = 1; op < BENCH_LOAD_OPS; op++) {
		if (!cfg->mix.weights[op])
			continue;
		printf("%s\"%s\":{\"count\":%" PRIu64 ",\"outcomes\":", first ? "" : ",",
		       mix_op_name((bench_op_t)op), report_op_total(r, op));
		report_json_outcomes(r->outcomes[op]);
		printf(",\"latency_us\":");
		report_json_latency(&r->lat[op]);
		putchar('}');
		first = 0;
	}
	printf("}}\n");
}

static void report_json(const report_t *r, const bench_config_t *cfg, const report_run_t *run)
{
	double elapsed_s = run->elapsed_s;
	uint64_t all[BENCH_OUTCOMES];

	printf("{\"mode\":\"%s\",\"connections\":%" PRIu64 ",\"inflight\":%" PRIu64,
	       cfg->rate > 0 ? "open" : "closed", cfg->connections, cfg->inflight);
	if (cfg->rate > 0)
		printf(",\"rate\":%.3f", cfg->rate);
	if (cfg->count)
		printf(",\"count\":%" PRIu64, cfg->count);
	else
		printf(",\"duration_s\":%.3f", cfg->duration_s);
	printf(",\"accounts\":%" PRIu64
	       ",\"setup_s\":%.3f,\"elapsed_s\":%.3f,\"requests\":%" PRIu64
	       ",\"ops_per_s\":%.1f,\"interrupted\":%s,\"outcomes\":",
	       cfg->accounts, (double)run->setup_ns / 1e9, elapsed_s, r->completed,
	       elapsed_s > 0 ? (double)r->completed / elapsed_s : 0,
	       run->interrupted ? "true" : "false");
	for (size_t o = 0; o < BENCH_OUTCOMES; o++)
		all[o] = report_outcome_total(r, o);
	report_json_outcomes(all);
	printf(",\"latency_us\":");
	report_json_latency(&r->lat[BENCH_LOAD_OPS]);
	report_json_ops(r, cfg);
}

/* 0 when every load request got ok or insufficient_funds; else says why. */
static int report_exit_code(const report_t *r)
{
	uint64_t failed = 0;
	int rc = 0;

	for (size_t o = 1; o < BENCH_OUTCOMES; o++) {
		uint64_t n = report_outcome_total(r, o);
		if (n == 0 || !strcmp(report_outcomes[o], "insufficient_funds"))
			continue;
		failed += n;
		if (!report_outcome_temporary(o))
			rc = EXIT_BUG;
		else if (rc == 0)
			rc = EXIT_TEMPORARY;
	}
	if (rc)
		fprintf(stderr, "esbank: bench: %" PRIu64 " requests failed (see the outcomes)\n",
			failed);
	return rc;
}

int report_print(const report_t *r, const bench_config_t *cfg, const report_run_t *run)
{
	if (cfg->json)
		report_json(r, cfg, run);
	else
		report_text(r, cfg, run);
	return report_exit_code(r);
}

void report_accounts(const bench_config_t *cfg, const bench_number_t *numbers, uint64_t setup_ns)
{
	if (cfg->json) {
		printf("{\"setup_s\":%.3f,\"accounts\":[", (double)setup_ns / 1e9);
		for (uint64_t i = 0; i < cfg->accounts; i++)
			printf("%s\"%s\"", i ? "," : "", numbers[i]);
		printf("]}\n");
		return;
	}
	for (uint64_t i = 0; i < cfg->accounts; i++)
		printf("%s\n", numbers[i]);
	fprintf(stderr,
		"esbank: bench: %" PRIu64 " accounts opened and verified in %.2f s "
		"(password \"%s\")\n",
		cfg->accounts, (double)setup_ns / 1e9, BENCH_PASSWORD);
}
