/*
 * main.c - esbank, the command-line client of an esbank server: one
 * subcommand per op of PROTOCOL.md, talking to RUN/bus.sock.
 */
#include "commands.h"
#include "config.h"
#include "mail.h"
#include "diag.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#define USAGE_HEAD                                                                      \
	"usage: esbank [--run DIR] [--json] <subcommand> [ARGS] [OPTIONS]\n"              \
	"       esbank help [<subcommand>]\n"                                             \
	"\n"                                                                              \
	"The command-line client of esbank. Talks to the server through RUN/bus.sock.\n" \
	"\n"                                                                              \
	"Options:\n"                                                                      \
	"  --run DIR   run directory holding bus.sock [env ESBANK_RUN] (default: ./var/run)\n" \
	"  --json      print JSON, one object per reply or event per line; amounts in cents\n" \
	"  --help      print this help (also after a subcommand)\n"                      \
	"  --version   print the version and exit\n"                                     \
	"\n"                                                                              \
	"Subcommands:\n"

#define USAGE_TAIL                                                                      \
	"\n"                                                                              \
	"Amounts are written in dollars: 100, 12.50, $1,000.00. Commands (open, verify,\n" \
	"reissue, transfer, withdraw) take --key KEY, an idempotency key: a command\n"    \
	"repeated with the same key is done only once.\n"                                  \
	"\n"                                                                              \
	"Exit status: 0 ok, 100 usage error or rejected request, 111 temporary failure\n" \
	"(server not running, unavailable, overloaded), 101 internal error.\n"

static int usage(FILE *f, int exit_code)
{
	fputs(USAGE_HEAD, f);
	commands_list(f);
	mail_list(f);
	fputs(USAGE_TAIL, f);
	return exit_code;
}

/* Takes the options before the subcommand; returns its index, or -exit code. */
static int parse_global(int argc, char **argv, commands_global_t *g)
{
	int i = 1;

	for (; i < argc && strncmp(argv[i], "-", 1) == 0; i++) {
		const char *a = argv[i];
		if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0)
			return -usage(stdout, 0);
		if (strcmp(a, "--version") == 0) {
			config_print_version(argv[0]);
			return 0;
		}
		if (strcmp(a, "--json") == 0) {
			g->json = true;
		} else if (strncmp(a, "--run=", 6) == 0) {
			g->run_dir = a + 6;
		} else if (strcmp(a, "--run") == 0) {
			if (i + 1 == argc) {
				fprintf(stderr, "esbank: --run needs a directory\n");
				return -EXIT_USAGE;
			}
			g->run_dir = argv[++i];
		} else {
			fprintf(stderr, "esbank: unknown option %s before the subcommand\n", a);
			return -usage(stderr, EXIT_USAGE);
		}
	}
	if (i == argc) {
		fprintf(stderr, "esbank: no subcommand given\n");
		return -usage(stderr, EXIT_USAGE);
	}
	return i;
}

static int finish(int exit_code)
{
	if (fflush(stdout) != 0 || ferror(stdout)) {
		fprintf(stderr, "esbank: cannot write the output: %s\n", strerror(errno));
		return exit_code ? exit_code : EXIT_TEMPORARY;
	}
	return exit_code;
}

int main(int argc, char **argv)
{
	commands_global_t g = { 0 };
	if (diag_init() < 0)
		return EXIT_USAGE;

	int first = parse_global(argc, argv, &g);
	if (first <= 0)
		return -first;
	if (strcmp(argv[first], "help") == 0) {
		if (first + 1 == argc)
			return finish(usage(stdout, 0));
		return finish(commands_help(&g, argc - first - 1, argv + first + 1));
	}
	if (strcmp(argv[first], "mail") == 0)
		return finish(mail_main(&g, argc - first, argv + first));
	return finish(commands_run(&g, argc - first, argv + first));
}
