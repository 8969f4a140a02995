/* main.c - esbank-snapshotter: options, then snapshotter_run(). */
#include "config.h"
#include "diag.h"
#include "snapshotter.h"

static const char USAGE[] =
	"usage: esbank-snapshotter [--data DIR] [--run DIR] [--snapshot-every N]\n"
	"                          [--snapshot-interval-ms MS]\n"
	"\n"
	"Applies the durable events esbank-bus sends on RUN/snapshotter.sock to its\n"
	"own copy of the state, with the same rules as the resolver.";

int main(int argc, char **argv)
{
	config_opt_t opts[] = {
		{ .name = "data", .env = "ESBANK_DATA", .def = "./var/data",
		  .help = "data directory" },
		{ .name = "run", .env = "ESBANK_RUN", .def = "./var/run",
		  .help = "run directory (sockets)" },
		{ .name = "snapshot-every", .env = "ESBANK_SNAPSHOT_EVERY", .def = "1000",
		  .help = "events between two snapshots" },
		{ .name = "snapshot-interval-ms", .env = "ESBANK_SNAPSHOT_INTERVAL_MS",
		  .def = "1000", .help = "at least this long between two snapshots (0: no wait)" },
		{ 0 },
	};
	int npos = 0;
	int rc = config_parse(opts, argc, argv, USAGE, &npos);
	if (rc == 1)
		return 0;
	snapshotter_config_t cfg = {
		.data_dir = config_get(opts, "data"),
		.run_dir = config_get(opts, "run"),
	};
	if (rc < 0 || config_u64(opts, "snapshot-every", &cfg.snapshot_every) < 0 ||
	    config_u64(opts, "snapshot-interval-ms", &cfg.interval_ms) < 0)
		return EXIT_USAGE;
	if (npos > 0 || cfg.snapshot_every == 0) {
		diag_error("%s (see --help)", npos > 0 ? "unexpected argument"
		                                       : "--snapshot-every must be at least 1");
		return EXIT_USAGE;
	}
	return snapshotter_run(&cfg);
}
