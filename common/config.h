/*
 * config.h - command-line options with environment fallbacks.
 *
 * Each program declares a table of config_opt_t ending with {0}. Values are
 * taken from the flag (--name VALUE or --name=VALUE), else from the
 * environment variable env (when not NULL), else from def. A boolean option
 * (is_flag) takes no value and is "1" when given. --help prints usage and the
 * table, --version the program's name, version and git commit; then
 * config_parse() returns 1 so that main can exit 0. config_parse() also
 * calls diag_init(): an unknown ESBANK_LOG is a usage error.
 */
#ifndef ESBANK_CONFIG_H
#define ESBANK_CONFIG_H

#include <stdbool.h>
#include <stdint.h>

typedef struct {
	const char *name;  /* long flag without "--" */
	const char *env;   /* environment variable, or NULL */
	const char *def;   /* default value, or NULL */
	const char *help;  /* one line for --help */
	bool is_flag;      /* takes no value */
	const char *value; /* result: points into argv, environ or def */
} config_opt_t;

/*
 * Parses argv[1..] into opts. Options may be mixed with positional
 * arguments; positional ones are moved, in order, to argv[*argc_out..] ...
 * precisely: on return argv[0 .. *npos) are the positional arguments.
 * Returns 0, 1 after printing --help, or -EINVAL after printing an error
 * naming the bad option (main exits EXIT_USAGE).
 */
int config_parse(config_opt_t *opts, int argc, char **argv, const char *usage, int *npos);

#define CONFIG_CONTINUE (-1)

/*
 * Prints "NAME (esbank) VERSION" (NAME: argv0's last component) and, when
 * built from a git checkout, "git commit HASH" on stdout (--version).
 */
void config_print_version(const char *argv0);

/*
 * config_parse() for a program that takes options only: returns
 * CONFIG_CONTINUE when main should go on, else the exit code main returns
 * (0 after --help, EXIT_USAGE (100) after a bad option or an argument, with
 * a message on stderr).
 */
int config_parse_options(config_opt_t *opts, int argc, char **argv, const char *usage);

/* The value of option name (NULL when unset and without default). */
const char *config_get(const config_opt_t *opts, const char *name);
/* True when a flag option was given (or its value is "1", "true", "yes"). */
bool config_flag(const config_opt_t *opts, const char *name);
/* Parses an unsigned integer option; -EINVAL if malformed (prints why). */
int config_u64(const config_opt_t *opts, const char *name, uint64_t *out);

/* Joins dir and name into a new string (malloc); NULL on failure. */
char *config_path(const char *dir, const char *name);

/* mkdir -p with mode for the last component; 0 or negative errno. */
int config_mkdirs(const char *path, unsigned mode);

#endif
