/* esbank-bus: the hub; clients on bus.sock, links to every peer. */
#include "config.h"
#include "hub.h"
#include "diag.h"

#include <errno.h>
#include <grp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

static const char USAGE[] =
	"Usage: esbank-bus [--run DIR] [--allow-group NAME|GID] [--clients-out-bytes-max N]\n"
	"\n"
	"The hub of esbank: serves clients on RUN/bus.sock (PROTOCOL.md), connects\n"
	"to the resolver, logger, snapshotter and mailer, routes every event to the\n"
	"right peers, answers commands once their events are durable, and rebuilds\n"
	"the resolver's state from the log when it starts. Started by esbankd.\n"
	"Only our own user may connect (SO_PEERCRED); --allow-group admits the\n"
	"members of one more group to bus.sock (not to the peers' sockets).\n"
	"--clients-out-bytes-max lowers the budget of reply bytes queued for all\n"
	"clients together (default and most 1 GiB); past it the clients with the\n"
	"largest backlogs are dropped.\n"
	"--replication primary|standby (set by esbankd --replicate or --follow)\n"
	"also connects to RUN/replicator.sock: a primary answers a command once its\n"
	"event is durable in the log and in the stream; a standby follows the\n"
	"stream, refuses commands with not_primary and takes the op promote.\n";

static config_opt_t opts[] = {
	{ "run", "ESBANK_RUN", "./var/run", "directory of the sockets", false, NULL },
	{ "data", "ESBANK_DATA", "./var/data", "data directory (unused by the bus)", false, NULL },
	{ "allow-group", "ESBANK_ALLOW_GROUP", NULL,
	  "also admit this group's members to bus.sock (name or gid)", false, NULL },
	{ "clients-out-bytes-max", "ESBANK_BUS_CLIENTS_OUT_BYTES_MAX", NULL,
	  "budget of reply bytes queued for all clients (bytes)", false, NULL },
	{ "replication", "ESBANK_BUS_REPLICATION", NULL,
	  "primary or standby: this group's role in replication (default: none)", false, NULL },
	{ 0 },
};

static void on_signal(uv_signal_t *s, int signum)
{
	hub_t *h = s->data;
	diag_info("signal %d: exiting", signum);
	hub_stop(h); /* removes bus.sock */
	conn_flush_all(s->loop);
	uv_stop(s->loop);
}

/* The gid named by --allow-group (a name or a number); -1 when unset. */
static int parse_group(const char *v, long *gid)
{
	*gid = -1;
	if (!v || !*v)
		return 0;
	char *end;
	errno = 0;
	long n = strtol(v, &end, 10);
	if (*end != '\0' || errno) {
		struct group *g = getgrnam(v);
		if (!g) {
			fprintf(stderr, "esbank-bus: --allow-group: no group '%s'\n", v);
			return -1;
		}
		n = (long)g->gr_gid;
	}
	if (n <= 0) { /* gid 0 is root's group: never admitted this way */
		fprintf(stderr, "esbank-bus: --allow-group: '%s' is not a group to admit\n", v);
		return -1;
	}
	*gid = n;
	return 0;
}

/* --clients-out-bytes-max: 0 and *bytes, or -1 after saying why. */
static int parse_out_budget(size_t *bytes)
{
	uint64_t v = BUS_CLIENTS_OUT_BYTES_TOTAL_MAX;

	if (config_get(opts, "clients-out-bytes-max") &&
	    config_u64(opts, "clients-out-bytes-max", &v) < 0)
		return -1;
	if (v < BUS_CLIENTS_OUT_BYTES_TOTAL_MIN || v > BUS_CLIENTS_OUT_BYTES_TOTAL_MAX) {
		fprintf(stderr, "esbank-bus: --clients-out-bytes-max: from %zu to %zu\n",
			(size_t)BUS_CLIENTS_OUT_BYTES_TOTAL_MIN, BUS_CLIENTS_OUT_BYTES_TOTAL_MAX);
		return -1;
	}
	*bytes = (size_t)v;
	return 0;
}

/* --replication: the bus's role; 0, or -1 after saying why. */
static int parse_role(const char *v, bus_role_t *role)
{
	*role = BUS_ROLE_SINGLE;
	if (!v || !*v)
		return 0;
	if (strcmp(v, "primary") == 0)
		*role = BUS_ROLE_PRIMARY;
	else if (strcmp(v, "standby") == 0)
		*role = BUS_ROLE_STANDBY;
	else {
		fprintf(stderr, "esbank-bus: --replication: primary or standby, not '%s'\n", v);
		return -1;
	}
	return 0;
}

/*
 * BUS_CLIENTS_MAX clients need as many descriptors, plus the peers', the
 * listener's and libuv's: raise the soft limit (often 1024) towards the hard
 * one, so that client 1,000 is not refused by EMFILE instead of the limit.
 */
#define BUS_FDS_SPARE 64
static void raise_fd_limit(void)
{
	struct rlimit rl;
	rlim_t want = BUS_CLIENTS_MAX + BUS_FDS_SPARE;
	if (getrlimit(RLIMIT_NOFILE, &rl) < 0 || rl.rlim_cur >= want)
		return;
	rl.rlim_cur = rl.rlim_max < want ? rl.rlim_max : want;
	if (setrlimit(RLIMIT_NOFILE, &rl) < 0 || rl.rlim_cur < want)
		diag_warn("only %llu file descriptors: fewer than %d clients fit",
		         (unsigned long long)rl.rlim_cur, BUS_CLIENTS_MAX);
}

int main(int argc, char **argv)
{
	int rc = config_parse_options(opts, argc, argv, USAGE);
	if (rc != CONFIG_CONTINUE)
		return rc;
	long allow_gid;
	size_t out_budget;
	bus_role_t role;
	if (parse_group(config_get(opts, "allow-group"), &allow_gid) < 0 ||
	    parse_out_budget(&out_budget) < 0 ||
	    parse_role(config_get(opts, "replication"), &role) < 0)
		return EXIT_USAGE;
	signal(SIGPIPE, SIG_IGN);
	raise_fd_limit();
	uv_loop_t *loop = uv_default_loop();
	static hub_t hub;
	rc = hub_start(&hub, loop, config_get(opts, "run"), allow_gid, out_budget, role);
	if (rc < 0) {
		diag_error("cannot start: %s", uv_strerror(rc));
		return EXIT_TEMPORARY;
	}
	uv_signal_t sigterm, sigint;
	uv_signal_init(loop, &sigterm);
	uv_signal_init(loop, &sigint);
	sigterm.data = sigint.data = &hub;
	uv_signal_start(&sigterm, on_signal, SIGTERM);
	uv_signal_start(&sigint, on_signal, SIGINT);
	uv_run(loop, UV_RUN_DEFAULT);
	return 0;
}
