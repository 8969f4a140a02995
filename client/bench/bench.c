/*
 * bench.c - `esbank bench`: a load generator for the client protocol (see
 * bench.h and PROTOCOL.md). This file runs the others in order, all on one
 * libuv loop over --connections framed connections:
 *
 *   options.c  the options, their defaults and limits (bench_config_t);
 *   drive.c    connect every connection to bus.sock; the requests in
 *              flight, the load's pacing, the watchdog, ^C, stopping;
 *   setup.c    open --accounts accounts, read their codes from the Maildir
 *              outbox, verify them; then the load starts;
 *   mix.c      each load request: transfer, withdrawal or get_account in
 *              the --mix proportions, on random accounts;
 *   report.c   outcomes and latencies as the replies come, the report;
 *   histogram.c the latency histograms.
 *
 * Calls run one way: bench.c -> setup.c -> drive.c -> report.c -> mix.c;
 * the drive tells the setup what happens through drive_cbs_t, wired here.
 * This file owns the progress line (stderr, when it is a terminal).
 */
#include "bench.h"

#include "drive.h"
#include "diag.h"
#include "options.h"
#include "report.h"
#include "setup.h"

#include <errno.h>
#include <inttypes.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <uv.h>

#define BENCH_PROGRESS_MS  250
#define BENCH_PROGRESS_BAR 30

typedef struct {
	bench_config_t cfg;
	report_t report;
	drive_t drive;
	setup_t setup;
	uv_loop_t *loop;
	uv_timer_t progress;
	uint64_t prog_ns, prog_completed;
} bench_t;

/* ---- the progress line ---- */

static void bench_progress_line(bench_t *b)
{
	static const char *const what[] = {"", "accounts opened", "codes found in mail",
					   "accounts verified", ""};
	uint64_t now = uv_hrtime(), completed = b->report.completed;

	if (b->drive.mode != DRIVE_LOAD) {
		fprintf(stderr, "\r\033[Ksetup: %" PRIu64 "/%" PRIu64 " %s", b->setup.done,
			b->cfg.accounts, what[b->setup.step]);
		return;
	}
	if (b->prog_ns < b->drive.start_ns)
		b->prog_ns = b->drive.start_ns;
	double t = (double)(now - b->drive.start_ns) / 1e9;
	double frac =
	    b->cfg.count ? (double)completed / (double)b->cfg.count : t / b->cfg.duration_s;
	double dt = (double)(now - b->prog_ns) / 1e9;
	double rate = dt > 0 ? (double)(completed - b->prog_completed) / dt : 0;
	char bar[BENCH_PROGRESS_BAR + 1];
	int full = (int)((frac > 1 ? 1 : frac) * BENCH_PROGRESS_BAR);
	memset(bar, '#', BENCH_PROGRESS_BAR);
	memset(bar + full, '.', BENCH_PROGRESS_BAR - full);
	bar[BENCH_PROGRESS_BAR] = '\0';
	fprintf(stderr, "\r\033[K[%s] %6.1f s %12" PRIu64 " ops %10.0f ops/s", bar, t, completed,
		rate);
	b->prog_ns = now;
	b->prog_completed = completed;
}

static void bench_progress_cb(uv_timer_t *t)
{
	bench_progress_line(t->data);
}

/* ---- the drive's callbacks ---- */

static void bench_up_cb(void *ctx)
{
	bench_t *b = ctx;

	if (b->cfg.progress)
		uv_timer_start(&b->progress, bench_progress_cb, BENCH_PROGRESS_MS,
			       BENCH_PROGRESS_MS);
	setup_start(&b->setup);
}

static void bench_fill_cb(void *ctx, drive_conn_t *dc)
{
	bench_t *b = ctx;
	setup_fill(&b->setup, dc);
}

static void bench_reply_cb(void *ctx, bench_op_t op, uint32_t account, const msgpack_object *reply,
			   size_t outcome)
{
	bench_t *b = ctx;
	setup_reply(&b->setup, op, account, reply, outcome);
}

static void bench_stop_cb(void *ctx)
{
	bench_t *b = ctx;

	if (!uv_is_closing((uv_handle_t *)&b->progress))
		uv_close((uv_handle_t *)&b->progress, NULL);
	setup_stop(&b->setup);
}

/* ---- the run ---- */

static int bench_alloc(bench_t *b)
{
	drive_cbs_t cbs = {.ctx = b,
			   .up_cb = bench_up_cb,
			   .fill_cb = bench_fill_cb,
			   .reply_cb = bench_reply_cb,
			   .stop_cb = bench_stop_cb};

	if (report_init(&b->report) < 0 || drive_init(&b->drive, &b->cfg, &b->report, &cbs) < 0 ||
	    setup_init(&b->setup, &b->cfg, &b->drive) < 0)
		return -ENOMEM;
	return 0;
}

/* Sets up the loop's handles and starts connecting; 0 or -ENOMEM. */
static int bench_start(bench_t *b)
{
	b->loop = uv_default_loop();
	uv_timer_init(b->loop, &b->progress);
	b->progress.data = b;
	setup_handles(&b->setup, b->loop);
	return drive_start(&b->drive, b->loop);
}

static int bench_report(const bench_t *b)
{
	if (b->cfg.setup_only) {
		report_accounts(&b->cfg, b->setup.numbers, b->setup.setup_ns);
		return 0;
	}
	report_run_t run = {
	    .setup_ns = b->setup.setup_ns,
	    .elapsed_s = (double)(b->drive.end_ns - b->drive.start_ns) / 1e9,
	    .interrupted = b->drive.interrupted,
	};
	return report_print(&b->report, &b->cfg, &run);
}

static void bench_free(bench_t *b)
{
	drive_free(&b->drive);
	setup_free(&b->setup);
	report_free(&b->report);
	free(b);
}

int bench_run(const config_opt_t *opts, const char *sock_path, bool json)
{
	bench_t *b = calloc(1, sizeof(*b));

	if (!b || sodium_init() < 0) {
		fprintf(stderr, "esbank: bench: cannot start: out of memory\n");
		free(b);
		return EXIT_TEMPORARY;
	}
	b->cfg.json = json;
	int rc = options_parse(&b->cfg, opts, sock_path);
	if (rc) {
		free(b);
		return rc;
	}
	b->cfg.progress = isatty(STDERR_FILENO);
	if (bench_alloc(b) < 0 || bench_start(b) < 0) {
		fprintf(stderr, "esbank: bench: out of memory\n");
		rc = EXIT_TEMPORARY;
		if (b->loop)
			drive_stop(&b->drive);
	}
	if (b->loop)
		uv_run(b->loop, UV_RUN_DEFAULT);
	if (rc == 0)
		rc = b->drive.rc ? b->drive.rc : bench_report(b);
	bench_free(b);
	return rc;
}
