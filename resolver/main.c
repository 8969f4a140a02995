/* esbank-resolver: owns the state; validates and resolves commands. */
#include "config.h"
#include "diag.h"
#include "resolver.h"

#include <signal.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>

static const char USAGE[] =
	"Usage: esbank-resolver [--run DIR] [--data DIR] [--pwhash-cost interactive|moderate|min]\n"
	"\n"
	"Owns esbank's in-memory state: checks each command against the rules,\n"
	"resolves it into an event (account numbers, codes, password hashes,\n"
	"sequence numbers, time), applies it and answers queries. Started by\n"
	"esbankd; listens on RUN/resolver.sock for the bus.\n";

static config_opt_t opts[] = {
	{ "run", "ESBANK_RUN", "./var/run", "directory of the sockets", false, NULL },
	{ "data", "ESBANK_DATA", "./var/data", "data directory (snapshots are loaded from it)", false,
	  NULL },
	{ "pwhash-cost", "ESBANK_PWHASH_COST", "interactive",
	  "argon2id cost: interactive, moderate or min (tests)", false, NULL },
	{ 0 },
};

static void on_signal(uv_signal_t *s, int signum)
{
	diag_info("signal %d: exiting", signum);
	resolver_stop(s->data); /* removes resolver.sock */
	conn_flush_all(s->loop);
	uv_stop(s->loop);
}

int main(int argc, char **argv)
{
	int rc = config_parse_options(opts, argc, argv, USAGE);
	if (rc != CONFIG_CONTINUE)
		return rc;
	if (sodium_init() < 0)
		return EXIT_TEMPORARY;
	signal(SIGPIPE, SIG_IGN);
	static resolver_t r;
	if (resolver_pwcost_parse(config_get(opts, "pwhash-cost"), &r.cost) < 0) {
		fprintf(stderr, "esbank-resolver: --pwhash-cost must be interactive, moderate or min\n");
		return EXIT_USAGE;
	}
	uv_loop_t *loop = uv_default_loop();
	r.data_dir = config_get(opts, "data");
	rc = resolver_start(&r, loop, config_get(opts, "run"));
	if (rc < 0) {
		diag_error("cannot start: %s", uv_strerror(rc));
		return EXIT_TEMPORARY;
	}
	uv_signal_t sigterm, sigint;
	uv_signal_init(loop, &sigterm);
	uv_signal_init(loop, &sigint);
	sigterm.data = sigint.data = &r;
	uv_signal_start(&sigterm, on_signal, SIGTERM);
	uv_signal_start(&sigint, on_signal, SIGINT);
	uv_run(loop, UV_RUN_DEFAULT);
	return 0;
}
