/* esbank-bus: the hub; clients on bus.sock, links to every peer. */
#include "config.h"
#include "hub.h"
#include "log.h"

#include <signal.h>
#include <stdio.h>

static const char USAGE[] =
	"Usage: esbank-bus [--run DIR]\n"
	"\n"
	"The hub of esbank: serves clients on RUN/bus.sock (PROTOCOL.md), connects\n"
	"to the resolver, logger, snapshotter and mailer, routes every event to the\n"
	"right peers, answers commands once their events are durable, and rebuilds\n"
	"the resolver's state from the log when it starts. Started by esbankd.\n";

static config_opt_t opts[] = {
	{ "run", "ESBANK_RUN", "./var/run", "directory of the sockets", false, NULL },
	{ "data", "ESBANK_DATA", "./var/data", "data directory (unused by the bus)", false, NULL },
	{ 0 },
};

static void on_signal(uv_signal_t *s, int signum)
{
	log_info("signal %d: exiting", signum);
	conn_flush_all(s->loop);
	uv_stop(s->loop);
}

int main(int argc, char **argv)
{
	int npos;
	int rc = config_parse(opts, argc, argv, USAGE, &npos);
	if (rc != 0)
		return rc > 0 ? 0 : EXIT_USAGE;
	if (npos > 0) {
		fprintf(stderr, "esbank-bus: unexpected argument '%s'\n", argv[0]);
		return EXIT_USAGE;
	}
	signal(SIGPIPE, SIG_IGN);
	uv_loop_t *loop = uv_default_loop();
	static hub_t hub;
	rc = hub_start(&hub, loop, config_get(opts, "run"));
	if (rc < 0) {
		log_error("cannot start: %s", uv_strerror(rc));
		return EXIT_TEMPORARY;
	}
	uv_signal_t sigterm, sigint;
	uv_signal_init(loop, &sigterm);
	uv_signal_init(loop, &sigint);
	uv_signal_start(&sigterm, on_signal, SIGTERM);
	uv_signal_start(&sigint, on_signal, SIGINT);
	uv_run(loop, UV_RUN_DEFAULT);
	return 0;
}
