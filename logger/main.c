/* main.c - esbank-logger: usage, options, hand-off to logger_run(). */
#include "config.h"
#include "diag.h"
#include "logger.h"

#include <stdio.h>

static const char USAGE[] =
	"usage: esbank-logger [--data DIR] [--run DIR]\n"
	"\n"
	"Owns the event log DATA/events.log: checks it at start-up (cutting a torn\n"
	"last record, refusing to start on damage before it), appends the events the\n"
	"bus sends with group commit, reports what is durable, and serves reads.\n"
	"Listens for the bus on RUN/logger.sock. Stops on SIGTERM or SIGINT once the\n"
	"write in flight is on disk.\n"
	"\n"
	"Exit codes: 0 stopped, 100 usage or a damaged log, 111 temporary failure.";

int main(int argc, char **argv)
{
	config_opt_t opts[] = {
		{ .name = "data", .env = "ESBANK_DATA", .def = "./var/data",
		  .help = "data directory (holds events.log)" },
		{ .name = "run", .env = "ESBANK_RUN", .def = "./var/run",
		  .help = "run directory (holds logger.sock)" },
		{ 0 },
	};
	int r = config_parse_options(opts, argc, argv, USAGE);
	if (r != CONFIG_CONTINUE)
		return r;
	logger_config_t cfg = {
		.data_dir = config_get(opts, "data"),
		.run_dir = config_get(opts, "run"),
	};
	return logger_run(&cfg);
}
