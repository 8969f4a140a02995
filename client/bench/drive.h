/*
 * drive.h - the connections of `esbank bench` to bus.sock and the requests
 * in flight on them: the in-flight window of each connection, the load's
 * pacing (closed loop, or open loop on a schedule with --rate), the
 * watchdog, ^C, and failing or stopping the run.
 *
 * The drive sits below the setup (setup.c) and the entry (bench.c): it tells
 * them what happens through the callbacks of drive_cbs_t, and records every
 * load reply in the report (report.c).
 *
 * Requests in flight live in per-connection slots; a request's id encodes
 * its slot and the slot's generation (id = gen x inflight + slot + 1), so a
 * reply finds its request in O(1) and a reply to a slot's earlier request
 * is recognised. Id 0 is never used: the server answers with it a request it
 * could not read, which would be a bug of this program.
 *
 * Invariant: outstanding == the busy slots of all connections.
 */
#ifndef ESBANK_CLIENT_BENCH_DRIVE_H
#define ESBANK_CLIENT_BENCH_DRIVE_H

#include "mix.h"
#include "options.h"
#include "report.h"

#include <msgpack.h>
#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

typedef struct drive_conn drive_conn_t;

typedef enum {
	DRIVE_CONNECT, /* connecting every connection */
	DRIVE_SETUP,   /* what to send comes from cbs.fill_cb */
	DRIVE_LOAD,    /* the load: mix_next() chooses each request */
	DRIVE_DONE,    /* stopped: the handles are closing */
} drive_mode_t;

/* What the drive tells the file above it; each callback gets ctx. */
typedef struct {
	void *ctx;
	/* Every connection is up; the mode is DRIVE_SETUP. */
	void (*up_cb)(void *ctx);
	/* DRIVE_SETUP: send requests on dc while drive_room(dc). */
	void (*fill_cb)(void *ctx, drive_conn_t *dc);
	/* The reply (valid during the call) to setup request op for account. */
	void (*reply_cb)(void *ctx, bench_op_t op, uint32_t account, const msgpack_object *reply,
			 size_t outcome);
	/* The run stops: close the handles the drive does not own. */
	void (*stop_cb)(void *ctx);
} drive_cbs_t;

/* Written only by drive.c; the files above may read it. */
typedef struct {
	const bench_config_t *cfg;
	report_t *report; /* where load replies are recorded */
	drive_cbs_t cbs;
	uv_loop_t *loop;
	drive_conn_t *conns; /* cfg->connections of them */
	uint64_t conns_up;
	uv_timer_t tick, watchdog;
	uv_signal_t sigint;
	drive_mode_t mode;
	int rc; /* the exit status of a failure; 0 while none */
	uint64_t outstanding, last_reply_ns;
	/* the load */
	const bench_number_t *numbers; /* cfg->accounts of them */
	uint64_t issued, start_ns, end_ns, deadline_ns;
	bool stopping, interrupted;
	size_t rr; /* next connection tried by the open-loop scheduler */
	uint64_t rng;
} drive_t;

/* Nanoseconds from since_ns to now (0 when since_ns is later). */
static inline uint64_t drive_elapsed_ns(uint64_t since_ns)
{
	uint64_t now = uv_hrtime();
	return now > since_ns ? now - since_ns : 0;
}

/* Allocates the connections of a zeroed *d; 0 or -ENOMEM (drive_free cleans up). */
int drive_init(drive_t *d, const bench_config_t *cfg, report_t *report, const drive_cbs_t *cbs);

/*
 * Sets up the drive's handles on loop and starts connecting; 0 or -ENOMEM
 * (then drive_stop() closes what was set up).
 */
int drive_start(drive_t *d, uv_loop_t *loop);

/* Frees what drive_init() allocated, once the loop has ended. */
void drive_free(drive_t *d);

/* Says "esbank: bench: <message>" on stderr and stops with exit_code; once. */
__attribute__((format(printf, 3, 4))) void drive_fail(drive_t *d, int exit_code,
						      const char *fmt, ...);

/* Stops: closes the handles and connections, calls cbs.stop_cb. */
void drive_stop(drive_t *d);

/* Sends what the mode calls for on every connection while they have room. */
void drive_fill_all(drive_t *d);

/* True when dc has a free slot for one more request. */
bool drive_room(const drive_conn_t *dc);

/*
 * Starts setup request op for account on dc (which has room): packs the map
 * header for 2 + nfields entries, "op" and "id"; the caller packs nfields
 * pairs, then calls drive_request_end().
 */
msgpack_packer *drive_request_begin(drive_conn_t *dc, bench_op_t op, uint32_t account,
				    uint32_t nfields);
void drive_request_end(drive_conn_t *dc);

/* Starts the load on the accounts numbers (cfg->accounts of them). */
void drive_load_start(drive_t *d, const bench_number_t *numbers);

#endif
