/* main.c - esbank-replicator: usage, options, hand-off to repl_run() or rejoin_run(). */
#include "config.h"
#include "diag.h"
#include "replicator.h"

#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

static const char USAGE[] =
	"usage: esbank-replicator --nats URL[,URL...] [--mode primary|standby] [--stream NAME]\n"
	"                         [--replicas N] [--node NAME] [--auto-promote SECONDS]\n"
	"                         [--data DIR] [--run DIR]\n"
	"       esbank-replicator --rejoin --nats URL[,URL...] [--stream NAME] [--data DIR]\n"
	"\n"
	"Keeps the event log on a NATS JetStream stream (docs/replication.md). Primary:\n"
	"publishes the events the bus sends, fenced, and reports what a quorum holds.\n"
	"Standby: reads the stream from where the bus asks and sends the events to it;\n"
	"promotes on request (or after --auto-promote seconds without a primary).\n"
	"Listens for the bus on RUN/replicator.sock.\n"
	"--rejoin (the group is down): cuts DATA/events.log after the last record the\n"
	"stream also has, keeping a copy of the cut bytes, and removes newer snapshots.\n"
	"\n"
	"Exit codes: 0 done, 100 usage or a permanent error, 111 temporary failure.";

/* The default node name: host:pid of esbankd (our parent). */
static const char *main_node(const char *given, char *buf, size_t len)
{
	if (given && *given)
		return given;
	char host[HOST_NAME_MAX + 1] = "localhost";
	gethostname(host, sizeof(host) - 1);
	snprintf(buf, len, "%s:%ld", host, (long)getppid());
	return buf;
}

static int main_config(config_opt_t *opts, repl_config_t *cfg, char *node, size_t node_len)
{
	const char *mode = config_get(opts, "mode");
	uint64_t secs = 0;
	if (config_u64(opts, "replicas", &cfg->replicas) < 0 ||
	    config_u64(opts, "auto-promote", &secs) < 0)
		return -1;
	cfg->data_dir = config_get(opts, "data");
	cfg->run_dir = config_get(opts, "run");
	cfg->nats_urls = config_get(opts, "nats");
	cfg->stream = config_get(opts, "stream");
	cfg->node = main_node(config_get(opts, "node"), node, node_len);
	cfg->auto_promote_ms = secs * 1000;
	if (!cfg->nats_urls || !*cfg->nats_urls || strlen(cfg->stream) == 0 ||
	    strlen(cfg->stream) >= REPL_NAME_BYTES_MAX || strpbrk(cfg->stream, ".*> ") ||
	    strlen(cfg->node) >= REPL_NODE_BYTES_MAX || cfg->replicas < 1 || cfg->replicas > 5) {
		fprintf(stderr, "esbank-replicator: --nats, a stream name (no dots), a node name "
		                "and --replicas 1..5 are needed\n%s\n", USAGE);
		return -1;
	}
	if (strcmp(mode, "primary") == 0)
		cfg->mode = REPL_MODE_PRIMARY;
	else if (strcmp(mode, "standby") == 0)
		cfg->mode = REPL_MODE_STANDBY;
	else {
		fprintf(stderr, "esbank-replicator: --mode is primary or standby\n");
		return -1;
	}
	return 0;
}

int main(int argc, char **argv)
{
	config_opt_t opts[] = {
		{ .name = "nats", .help = "NATS server URLs, comma-separated" },
		{ .name = "mode", .def = "primary", .help = "primary (publish) or standby (follow)" },
		{ .name = "stream", .def = "ESBANK", .help = "the JetStream stream's name" },
		{ .name = "replicas", .def = "3", .help = "the stream's replicas, when creating it" },
		{ .name = "node", .help = "this group's name (default host:pid of esbankd)" },
		{ .name = "auto-promote", .def = "0",
		  .help = "standby: promote after SECONDS without a primary heartbeat (0: never)" },
		{ .name = "rejoin", .is_flag = true, .help = "cut the local log back to the stream" },
		{ .name = "data", .env = "ESBANK_DATA", .def = "./var/data", .help = "data directory" },
		{ .name = "run", .env = "ESBANK_RUN", .def = "./var/run",
		  .help = "run directory (holds replicator.sock)" },
		{ 0 },
	};
	int r = config_parse_options(opts, argc, argv, USAGE);
	if (r != CONFIG_CONTINUE)
		return r;
	char node[REPL_NODE_BYTES_MAX];
	repl_config_t cfg = { 0 };
	if (main_config(opts, &cfg, node, sizeof(node)) < 0)
		return EXIT_USAGE;
	if (config_flag(opts, "rejoin"))
		return rejoin_run(&cfg);
	return repl_run(&cfg);
}
