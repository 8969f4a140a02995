/*
 * options.h - the settings of one `esbank bench` run, parsed from its
 * options (bench_opts, with their defaults and limits) and fixed before the
 * run starts: every other file of the bench reads them, none writes them.
 */
#ifndef ESBANK_CLIENT_BENCH_OPTIONS_H
#define ESBANK_CLIENT_BENCH_OPTIONS_H

#include "config.h"
#include "mix.h"

#include <stdbool.h>
#include <stdint.h>

/* The password of every account the bench opens. */
#define BENCH_PASSWORD "bench-password"

typedef struct {
	uint64_t connections, inflight, count, accounts;
	uint64_t batch; /* transfers per request; > 1: "transfers" requests, transfers only */
	double duration_s, rate; /* rate 0: closed loop; count 0: run for duration_s */
	mix_t mix;
	bool setup_only, json;
	bool progress; /* a progress line on stderr (a terminal) */
	const char *sock_path, *data_dir;
} bench_config_t;

/*
 * Fills *cfg (zeroed by the caller, json and progress set) from the parsed
 * options and the socket path. Returns 0, or EXIT_USAGE after saying why on
 * stderr.
 */
int options_parse(bench_config_t *cfg, const config_opt_t *opts, const char *sock_path);

#endif
