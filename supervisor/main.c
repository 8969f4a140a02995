/* main.c - esbankd: options, then supervise_run(); or the exec wrapper (child.h). */
#include "child.h"
#include "config.h"
#include "diag.h"
#include "supervise.h"

#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAIN_URL_BYTES_MAX 512

static const char USAGE[] =
	"usage: esbankd [--data DIR] [--run DIR] [--http ADDR|off] [--snapshot-every N]\n"
	"               [--mail maildir|mailgun|SMTP-URL]\n"
	"               [--pwhash-cost interactive|moderate|min]\n"
	"               [--public-url URL] [--allow-group NAME|GID] [--ready-fd N]\n"
	"               [--replicate URL[,URL...] | --follow URL[,URL...]] [--stream NAME]\n"
	"               [--replicas N] [--node NAME] [--auto-promote SECONDS]\n"
	"\n"
	"Starts the esbank group (logger, resolver, snapshotter, mailer, bus, http) in\n"
	"the foreground, prints each program's lines prefixed with the UTC time and its\n"
	"name (under systemd, JOURNAL_STREAM: with <N> priorities instead), restarts\n"
	"one that dies (100 ms back-off doubling to 5 s; more than 10 deaths of one in\n"
	"60 s stop the group, exit 111), and stops them in order on SIGTERM or SIGINT.\n"
	"A program that exits 100 (a permanent error) is not restarted: the group\n"
	"stops and esbankd exits 100, repeating that program's last error line.\n"
	"One esbankd per data and per run directory (DATA/esbankd.lock,\n"
	"RUN/esbankd.lock; a second one exits 100). It is ready when RUN/bus.sock\n"
	"says live with every peer connected and http listens; with --ready-fd N it\n"
	"then writes \"READY=1\\n\" to file descriptor N, and sends READY=1 to\n"
	"$NOTIFY_SOCKET (systemd's Type=notify). See docs/supervision.md.\n"
	"Executables are looked up in ESBANK_BIN_DIR, beside esbankd, then in the\n"
	"build tree's folders (../logger/esbank-logger, ...).\n"
	"\n"
	"Replication (docs/replication.md): --replicate starts esbank-replicator as\n"
	"the primary, which publishes the log to the NATS JetStream stream NAME\n"
	"(default ESBANK, created with --replicas N, default 3) on the NATS servers\n"
	"URL,...; a command is then answered once its event is durable here and held\n"
	"by a quorum of the stream. --follow makes this group a standby: first\n"
	"`esbank-replicator --rejoin` cuts the local events the stream lacks (keeping\n"
	"a copy), then the group follows the stream, serves queries, refuses\n"
	"commands (not_primary), and takes `esbank promote`; with --auto-promote S it\n"
	"promotes itself after S seconds without a primary. --node names this group\n"
	"(default: the replicator's). Without --replicate or --follow nothing changes.";

static int main_check(const config_opt_t *opts, sup_config_t *cfg)
{
	uint64_t n;
	if (config_u64(opts, "snapshot-every", &n) < 0 || n == 0) {
		diag_error("--snapshot-every wants a whole number of at least 1");
		return -1;
	}
	const char *cost = cfg->pwhash_cost;
	if (strcmp(cost, "interactive") && strcmp(cost, "moderate") && strcmp(cost, "min")) {
		diag_error("--pwhash-cost is interactive, moderate or min, not '%s'", cost);
		return -1;
	}
	const char *mail = cfg->mail;
	if (cfg->replicate && cfg->follow) {
		diag_error("--replicate and --follow exclude each other");
		return -1;
	}
	if (config_u64(opts, "replicas", &n) < 0 || n == 0 || n > 5) {
		diag_error("--replicas wants 1 to 5");
		return -1;
	}
	if (cfg->auto_promote && (config_u64(opts, "auto-promote", &n) < 0 || n == 0)) {
		diag_error("--auto-promote wants a whole number of seconds of at least 1");
		return -1;
	}
	if (mail && strcmp(mail, "maildir") && strcmp(mail, "mailgun") &&
	    strncmp(mail, "smtp://", 7) && strncmp(mail, "smtps://", 8)) {
		diag_error("--mail is maildir, mailgun or an smtp:// URL, not '%s'", mail);
		return -1;
	}
	return 0;
}

static int main_ready_fd(const char *v, int *fd)
{
	*fd = -1;
	if (!v)
		return 0;
	char *end;
	long n = strtol(v, &end, 10);
	if (!*v || *end || n < 0 || n > INT32_MAX || fcntl((int)n, F_GETFD) < 0) {
		diag_error("--ready-fd wants an open file descriptor, not '%s'", v);
		return -1;
	}
	*fd = (int)n;
	/* Not inherited by the children. */
	return fcntl(*fd, F_SETFD, FD_CLOEXEC) < 0 ? -1 : 0;
}

int main(int argc, char **argv)
{
	if (argc > 1 && strcmp(argv[1], CHILD_EXEC_FLAG) == 0)
		return child_exec(argc, argv);
	diag_set_timestamps(true); /* its own lines and its programs' (output.h) */
	config_opt_t opts[] = {
		{ .name = "data", .env = "ESBANK_DATA", .def = "./var/data",
		  .help = "data directory" },
		{ .name = "run", .env = "ESBANK_RUN", .def = "./var/run",
		  .help = "run directory (sockets, mode 0700)" },
		{ .name = "http", .env = "ESBANK_HTTP", .def = "127.0.0.1:4000",
		  .help = "HTTP gateway address, or off" },
		{ .name = "snapshot-every", .env = "ESBANK_SNAPSHOT_EVERY", .def = "1000",
		  .help = "events between two snapshots" },
		{ .name = "mail", .env = "ESBANK_MAIL", .def = NULL,
		  .help = "maildir, mailgun or SMTP URL (unset: the mailer chooses from "
		          "ESBANK_SMTP_URL, MAILGUN_*, else maildir)" },
		{ .name = "pwhash-cost", .env = "ESBANK_PWHASH_COST", .def = "interactive",
		  .help = "interactive, moderate or min" },
		{ .name = "public-url", .env = "ESBANK_PUBLIC_URL", .def = NULL,
		  .help = "base of the verification link (default http://<http addr>)" },
		{ .name = "allow-group", .env = "ESBANK_ALLOW_GROUP", .def = NULL,
		  .help = "also admit this group (name or gid) to bus.sock" },
		{ .name = "ready-fd", .env = NULL, .def = NULL,
		  .help = "write READY=1 to this fd once live" },
		{ .name = "replicate", .env = "ESBANK_REPLICATE", .def = NULL,
		  .help = "NATS URLs: replicate the log to the stream (primary)" },
		{ .name = "follow", .env = NULL, .def = NULL,
		  .help = "NATS URLs: follow the stream (standby)" },
		{ .name = "stream", .env = NULL, .def = "ESBANK", .help = "JetStream stream name" },
		{ .name = "replicas", .env = NULL, .def = "3", .help = "the stream's replicas" },
		{ .name = "node", .env = NULL, .def = NULL, .help = "this group's name" },
		{ .name = "auto-promote", .env = NULL, .def = NULL,
		  .help = "standby: promote after this many seconds without a primary" },
		{ 0 },
	};
	int rc = config_parse_options(opts, argc, argv, USAGE);
	if (rc != CONFIG_CONTINUE)
		return rc;
	sup_config_t cfg = {
		.data_dir = config_get(opts, "data"),
		.run_dir = config_get(opts, "run"),
		.http = config_get(opts, "http"),
		.snapshot_every = config_get(opts, "snapshot-every"),
		.mail = config_get(opts, "mail"),
		.pwhash_cost = config_get(opts, "pwhash-cost"),
		.allow_group = config_get(opts, "allow-group"),
		.public_url = config_get(opts, "public-url"),
		.replicate = config_get(opts, "replicate"),
		.follow = config_get(opts, "follow"),
		.stream = config_get(opts, "stream"),
		.replicas = config_get(opts, "replicas"),
		.node = config_get(opts, "node"),
		.auto_promote = config_get(opts, "auto-promote"),
	};
	if (cfg.replicate && !*cfg.replicate)
		cfg.replicate = NULL; /* ESBANK_REPLICATE= : not replicated */
	if (main_check(opts, &cfg) < 0 || main_ready_fd(config_get(opts, "ready-fd"),
	                                                &cfg.ready_fd) < 0)
		return EXIT_USAGE;
	static char url[MAIN_URL_BYTES_MAX];
	if (!cfg.public_url) {
		const char *host = strcmp(cfg.http, "off") ? cfg.http : "127.0.0.1:4000";
		snprintf(url, sizeof(url), "http://%s", host);
		cfg.public_url = url;
	}
	return supervise_run(&cfg);
}
