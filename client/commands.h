/*
 * commands.h - the subcommands of esbank, one per op of PROTOCOL.md: their
 * arguments and options, the request each sends, and what is printed.
 */
#ifndef ESBANK_CLIENT_COMMANDS_H
#define ESBANK_CLIENT_COMMANDS_H

#include <stdbool.h>
#include <stdio.h>

/* Options given before the subcommand name. */
typedef struct {
	const char *run_dir; /* --run DIR, or NULL for ESBANK_RUN / ./var/run */
	bool json;           /* --json */
} commands_global_t;

/* Prints one line per subcommand: name, arguments, summary. */
void commands_list(FILE *f);

/*
 * Runs the subcommand named argv[0] with the arguments after it (argv is
 * reordered). Prints results on stdout and errors on stderr; returns the
 * exit code (0, EXIT_USAGE, EXIT_TEMPORARY or EXIT_BUG).
 */
int commands_run(const commands_global_t *g, int argc, char **argv);

/*
 * Prints the help of the subcommand named by argv[0..argc) ("transfer",
 * "report sum"); returns 0, or EXIT_USAGE if there is none such.
 */
int commands_help(const commands_global_t *g, int argc, char **argv);

#endif
