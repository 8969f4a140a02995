/*
 * snapshotter.h - the snapshotter's peer side: keeps its own ledger_t by
 * applying the durable events the bus sends on RUN/snapshotter.sock
 * (docs/peers.md, Snapshotter). Writing snapshot files comes later.
 */
#ifndef ESBANK_SNAPSHOTTER_SNAPSHOTTER_H
#define ESBANK_SNAPSHOTTER_SNAPSHOTTER_H

#include <stdint.h>

typedef struct {
	const char *data_dir;
	const char *run_dir;
	uint64_t snapshot_every; /* events between two snapshots */
} snapshotter_config_t;

/*
 * Runs until SIGTERM or SIGINT. Returns an exit code: 0 after a signal,
 * EXIT_TEMPORARY when the socket cannot be set up or memory runs out.
 */
int snapshotter_run(const snapshotter_config_t *cfg);

#endif
