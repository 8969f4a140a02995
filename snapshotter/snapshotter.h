/*
 * snapshotter.h - esbank-snapshotter: keeps its own ledger_t by applying the
 * durable events the bus sends on RUN/snapshotter.sock (docs/peers.md,
 * Snapshotter) and writes it to DATA/snapshots every snapshot_every events.
 *
 * Files of the program, by concern:
 *   main.c         usage, options, hand-off to snapshotter_run()
 *   snapshotter.c  the process and the peer messages (common/peer.h)
 *   snapshot.c     loading the newest valid snapshot at start-up; taking
 *                  snapshots (pack on the loop, write in the thread pool)
 * Calls run one way: main -> snapshotter -> snapshot. snapshot.c reports a
 * finished write through written_cb, which snapshotter.c registers.
 *
 * Invariants of snapshotter_t (loop thread only, except job.body, which the
 * worker reads while writing):
 *   chain_known => chain is the log's chain hash at ledger_last_seq(ledger);
 *   snapshot_seq <= ledger_last_seq(ledger) (a reset sets both to 0);
 *   at most one snapshot write at a time (writing); job.epoch != epoch means
 *   a reset came while it ran and the file it wrote must not be kept.
 */
#ifndef ESBANK_SNAPSHOTTER_SNAPSHOTTER_H
#define ESBANK_SNAPSHOTTER_SNAPSHOTTER_H

#include "conn.h"
#include "ledger.h"
#include "logfile.h"
#include "peer.h"

#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

typedef struct {
	const char *data_dir;
	const char *run_dir;
	uint64_t snapshot_every; /* events between two snapshots */
	uint64_t interval_ms;    /* and at least this long between two starts */
} snapshotter_config_t;

/* One snapshot being written by a worker thread. */
typedef struct {
	uv_work_t req;
	uint64_t seq;
	uint8_t chain[LOGFILE_HASH_BYTES];
	msgpack_sbuffer body; /* ledger_pack() bytes */
	bool pack_failed;     /* out of memory while packing */
	uint64_t epoch;
	uint64_t pack_ns;
	uint64_t write_ns; /* set by the worker */
	int result;        /* set by the worker: snapfile_write()'s */
} snapshotter_job_t;

typedef struct snapshotter {
	uv_loop_t *loop;
	peer_server_t bus;     /* RUN/snapshotter.sock: one bus session at a time */
	uv_signal_t sig_term, sig_int;
	ledger_t *ledger;
	uint8_t chain[LOGFILE_HASH_BYTES];
	bool chain_known;
	uint64_t snapshot_seq; /* newest snapshot of this state written (or loaded) */
	uint64_t base_seq;     /* seq of the last snapshot taken: the count starts here */
	uint64_t epoch;        /* bumped by each reset */
	bool writing;          /* job is with a worker */
	uint64_t last_start_ms; /* loop time the last snapshot was packed */
	/* figures: snapshots written and failed, the last one's wall time and duration */
	uint64_t stat_written, stat_failed, stat_last_written_ms, stat_last_ns;
	uv_timer_t interval_timer; /* retries a snapshot held back by interval_ms */
	bool stopping;
	snapshotter_job_t job;
	char *sock_path;
	const snapshotter_config_t *cfg;
	/* snapshot.c: a snapshot write ended (kept or not) and the process goes on;
	 * registered by snapshotter.c */
	void (*written_cb)(struct snapshotter *s);
} snapshotter_t;

/*
 * Runs until SIGTERM or SIGINT (after a snapshot write in flight ends).
 * Returns an exit code: 0 after a signal, EXIT_TEMPORARY when the socket
 * cannot be set up or memory runs out.
 */
int snapshotter_run(const snapshotter_config_t *cfg);

/* snapshot.c */
/*
 * Loads the newest valid snapshot in DATA/snapshots into s->ledger (which
 * must be new), skipping damaged ones with a warning; leaves the state empty
 * when there is none. Returns 0 or -ENOMEM.
 */
int snapshot_load(snapshotter_t *s);
/* Takes a snapshot if one is due, the chain hash is known and none is being
 * written. */
void snapshot_maybe_take(snapshotter_t *s);
/* Wall-clock milliseconds since 1970 (the figures' snapshot age). */
uint64_t snapshot_wall_ms(void);

#endif
