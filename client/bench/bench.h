/*
 * bench.h - `esbank bench`, a load generator: prepares verified accounts over
 * the protocol, then keeps many requests in flight on several connections to
 * bus.sock and reports throughput, outcomes and latency percentiles.
 * bench.c maps the files of the bench; options.c holds bench_details and
 * bench_opts.
 */
#ifndef ESBANK_CLIENT_BENCH_H
#define ESBANK_CLIENT_BENCH_H

#include "config.h"

#include <stdbool.h>

/* The further help of `esbank bench`: what it does, the exit status. */
extern const char bench_details[];

/* The options of `esbank bench`, ending with {0}: copied into the parser's table. */
extern const config_opt_t bench_opts[];

/*
 * Runs the bench with the parsed options (bench_opts plus "run" and "json"),
 * talking to the socket at sock_path. Prints the report on stdout, progress
 * (when stderr is a terminal) and errors on stderr. Returns the exit code.
 */
int bench_run(const config_opt_t *opts, const char *sock_path, bool json);

#endif
