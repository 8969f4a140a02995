/* esbank-bus: the hub; clients on bus.sock, links to every peer. */
#include "config.h"
#include "hub.h"
#include "log.h"

#include <errno.h>
#include <grp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/resource.h>

static const char USAGE[] =
	"Usage: esbank-bus [--run DIR] [--allow-group NAME|GID]\n"
	"\n"
	"The hub of esbank: serves clients on RUN/bus.sock (PROTOCOL.md), connects\n"
	"to the resolver, logger, snapshotter and mailer, routes every event to the\n"
	"right peers, answers commands once their events are durable, and rebuilds\n"
	"the resolver's state from the log when it starts. Started by esbankd.\n"
	"Only our own user may connect (SO_PEERCRED); --allow-group admits the\n"
	"members of one more group to bus.sock (not to the peers' sockets).\n";

static config_opt_t opts[] = {
	{ "run", "ESBANK_RUN", "./var/run", "directory of the sockets", false, NULL },
	{ "data", "ESBANK_DATA", "./var/data", "data directory (unused by the bus)", false, NULL },
	{ "allow-group", "ESBANK_ALLOW_GROUP", NULL,
	  "also admit this group's members to bus.sock (name or gid)", false, NULL },
	{ 0 },
};

static void on_signal(uv_signal_t *s, int signum)
{
	hub_t *h = s->data;
	log_info("signal %d: exiting", signum);
	listener_close(&h->listener); /* removes bus.sock */
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
		log_warn("only %llu file descriptors: fewer than %d clients fit",
		         (unsigned long long)rl.rlim_cur, BUS_CLIENTS_MAX);
}

int main(int argc, char **argv)
{
	int rc = config_parse_options(opts, argc, argv, USAGE);
	if (rc != CONFIG_CONTINUE)
		return rc;
	long allow_gid;
	if (parse_group(config_get(opts, "allow-group"), &allow_gid) < 0)
		return EXIT_USAGE;
	signal(SIGPIPE, SIG_IGN);
	raise_fd_limit();
	uv_loop_t *loop = uv_default_loop();
	static hub_t hub;
	rc = hub_start(&hub, loop, config_get(opts, "run"), allow_gid);
	if (rc < 0) {
		log_error("cannot start: %s", uv_strerror(rc));
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
