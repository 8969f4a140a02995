/*
 * options.c - the options of `esbank bench`, their help, defaults and
 * limits (see options.h and bench.h).
 */
#include "bench.h"
#include "options.h"

#include "diag.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/un.h>

#define BENCH_CONNECTIONS_MAX    1000 /* the bus admits 1024 clients */
#define BENCH_INFLIGHT_MAX       8192 /* the bus's limit per connection */
#define BENCH_ACCOUNTS_MAX       1000000
#define BENCH_COUNT_MAX          1000000000000ull
#define BENCH_DURATION_S_MAX     86400.0
#define BENCH_DURATION_S_DEFAULT 10.0
#define BENCH_RATE_MAX           10000000.0
#define BENCH_BATCH_MAX          8192 /* the "transfers" op's limit */

const char bench_details[] =
    "Prepares --accounts verified accounts (opened over bus.sock with the password\n"
    "\"bench-password\"; the codes are read from the mails in DATA/mail/outbox/new),\n"
    "then sends transfers of 1 cent to $1 between random accounts, withdrawals of\n"
    "1 cent and get_account queries in the proportions of --mix. Closed loop by\n"
    "default: each connection keeps --inflight requests outstanding. With --rate,\n"
    "open loop: R requests/s in total on a fixed schedule, latency counted from\n"
    "the time a request was due (a request waits for a free slot when --inflight\n"
    "are outstanding). Prints throughput, counts by op and by outcome, and latency\n"
    "p50, p90, p99, p99.9 and max; --json prints one object with all figures.\n"
    "With --batch N > 1 the load is transfers only, N per \"transfers\" request;\n"
    "--count, --rate and every figure then count transfers (each transfer gets its\n"
    "request's latency).\n"
    "Start the server with --pwhash-cost min, or setup takes a while (argon2id).\n"
    "Exit status: 0 when every request got an ok reply (insufficient_funds is\n"
    "counted but allowed), 111 when the server cannot be reached, stops answering\n"
    "or replies unavailable/overloaded/internal, 101 for any other error reply.";

const config_opt_t bench_opts[] = {
    {.name = "connections", .def = "4", .help = "connections to bus.sock"},
    {.name = "inflight", .def = "256", .help = "requests outstanding per connection, at most"},
    {.name = "duration", .help = "seconds of load (default: 10)"},
    {.name = "count", .help = "send this many requests instead of running for --duration"},
    {.name = "accounts", .def = "1000", .help = "accounts prepared for the load"},
    {.name = "mix",
     .def = "transfer=90,withdraw=5,get_account=5",
     .help = "relative weights of the ops"},
    {.name = "rate", .help = "open loop: R requests/s in total, on a schedule"},
    {.name = "batch", .def = "1", .help = "transfers per request (1 to 8192; > 1: transfers only)"},
    {.name = "setup-only",
     .is_flag = true,
     .help = "prepare the accounts, print their numbers, stop"},
    {.name = "data",
     .env = "ESBANK_DATA",
     .def = "./var/data",
     .help = "the server's data directory (mails: DATA/mail/outbox)"},
    {0},
};

static int options_u64(const config_opt_t *opts, const char *name, uint64_t lo, uint64_t hi,
		       uint64_t *v)
{
	if (config_u64(opts, name, v) < 0)
		return EXIT_USAGE;
	if (*v >= lo && *v <= hi)
		return 0;
	fprintf(stderr, "esbank: --%s must be from %" PRIu64 " to %" PRIu64 "\n", name, lo, hi);
	return EXIT_USAGE;
}

static int options_double(const config_opt_t *opts, const char *name, double hi, double *v)
{
	const char *s = config_get(opts, name);
	char *end;

	errno = 0;
	*v = strtod(s, &end);
	if (errno == 0 && end != s && *end == '\0' && *v > 0 && *v <= hi)
		return 0;
	fprintf(stderr, "esbank: --%s wants a number above 0 and at most %g, not '%s'\n", name, hi,
		s);
	return EXIT_USAGE;
}

static int options_limits(bench_config_t *cfg, const config_opt_t *opts)
{
	int rc = options_u64(opts, "connections", 1, BENCH_CONNECTIONS_MAX, &cfg->connections);
	if (rc == 0)
		rc = options_u64(opts, "inflight", 1, BENCH_INFLIGHT_MAX, &cfg->inflight);
	if (rc == 0)
		rc = options_u64(opts, "accounts", 1, BENCH_ACCOUNTS_MAX, &cfg->accounts);
	if (rc == 0)
		rc = options_u64(opts, "batch", 1, BENCH_BATCH_MAX, &cfg->batch);
	if (rc == 0 && config_get(opts, "count"))
		rc = options_u64(opts, "count", 1, BENCH_COUNT_MAX, &cfg->count);
	if (rc == 0 && config_get(opts, "duration"))
		rc = options_double(opts, "duration", BENCH_DURATION_S_MAX, &cfg->duration_s);
	if (rc == 0 && config_get(opts, "rate"))
		rc = options_double(opts, "rate", BENCH_RATE_MAX, &cfg->rate);
	if (rc)
		return rc;
	if (cfg->count && cfg->duration_s > 0) {
		fprintf(stderr, "esbank: give --duration or --count, not both\n");
		return EXIT_USAGE;
	}
	if (!cfg->count && cfg->duration_s == 0)
		cfg->duration_s = BENCH_DURATION_S_DEFAULT;
	return 0;
}

int options_parse(bench_config_t *cfg, const config_opt_t *opts, const char *sock_path)
{
	int rc = options_limits(cfg, opts);
	if (rc == 0)
		rc = mix_parse(&cfg->mix, config_get(opts, "mix"));
	if (rc)
		return rc;
	if (cfg->batch > 1) /* a "transfers" request carries transfers only */
		cfg->mix = (mix_t){ .weights = { [BENCH_OP_TRANSFER] = 1 }, .weight_total = 1 };
	if (cfg->mix.weights[BENCH_OP_TRANSFER] && cfg->accounts < 2) {
		fprintf(stderr, "esbank: transfers need --accounts 2 or more\n");
		return EXIT_USAGE;
	}
	if (strlen(sock_path) >= sizeof(((struct sockaddr_un *)0)->sun_path)) {
		fprintf(stderr, "esbank: the socket path %s is too long\n", sock_path);
		return EXIT_USAGE;
	}
	cfg->setup_only = config_flag(opts, "setup-only");
	cfg->data_dir = config_get(opts, "data");
	cfg->sock_path = sock_path;
	return 0;
}
