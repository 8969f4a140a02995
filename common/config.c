/* config.c - flags, then environment, then defaults (see config.h). */
#include "config.h"
#include "diag.h"
#include "version.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static config_opt_t *config_find(config_opt_t *opts, const char *name, size_t n)
{
	for (config_opt_t *o = opts; o->name; o++)
		if (strlen(o->name) == n && strncmp(o->name, name, n) == 0)
			return o;
	return NULL;
}

static void config_print_help(const config_opt_t *opts, const char *usage)
{
	printf("%s\nOptions:\n", usage);
	for (const config_opt_t *o = opts; o->name; o++) {
		char flag[64];
		snprintf(flag, sizeof(flag), "--%s%s", o->name, o->is_flag ? "" : " V");
		printf("  %-24s %s", flag, o->help ? o->help : "");
		if (o->env)
			printf(" [env %s]", o->env);
		if (o->def)
			printf(" (default: %s)", o->def);
		printf("\n");
	}
	printf("  %-24s %s\n", "--help", "print this help and exit");
	printf("  %-24s %s\n", "--version", "print the version and exit");
}

void config_print_version(const char *argv0)
{
	const char *slash = argv0 ? strrchr(argv0, '/') : NULL;
	const char *name = slash ? slash + 1 : (argv0 && *argv0 ? argv0 : "esbank");
	printf("%s (esbank) %s\n", name, ESBANK_VERSION);
	if (*ESBANK_COMMIT)
		printf("git commit %s\n", ESBANK_COMMIT);
}

/* Handles one "--name[=value]" at argv[*i]; advances *i past a separate value. */
static int config_take(config_opt_t *opts, int argc, char **argv, int *i)
{
	const char *arg = argv[*i] + 2;
	const char *eq = strchr(arg, '=');
	size_t n = eq ? (size_t)(eq - arg) : strlen(arg);
	config_opt_t *o = config_find(opts, arg, n);
	if (!o) {
		fprintf(stderr, "error: unknown option --%.*s (see --help)\n", (int)n, arg);
		return -EINVAL;
	}
	if (o->is_flag) {
		o->value = eq ? eq + 1 : "1";
		return 0;
	}
	if (eq) {
		o->value = eq + 1;
		return 0;
	}
	if (*i + 1 >= argc) {
		fprintf(stderr, "error: option --%s needs a value\n", o->name);
		return -EINVAL;
	}
	o->value = argv[++*i];
	return 0;
}

static void config_fill_defaults(config_opt_t *opts)
{
	for (config_opt_t *o = opts; o->name; o++) {
		if (o->value)
			continue;
		const char *env = o->env ? getenv(o->env) : NULL;
		o->value = (env && *env) ? env : o->def;
	}
}

int config_parse(config_opt_t *opts, int argc, char **argv, const char *usage, int *npos)
{
	int pos = 0;
	bool only_positional = false;
	const char *argv0 = argv[0]; /* positional arguments overwrite argv[0..] */
	for (int i = 1; i < argc; i++) {
		char *a = argv[i];
		if (!only_positional && strcmp(a, "--") == 0) {
			only_positional = true;
		} else if (!only_positional && (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0)) {
			config_print_help(opts, usage);
			return 1;
		} else if (!only_positional && strcmp(a, "--version") == 0) {
			config_print_version(argv0);
			return 1;
		} else if (!only_positional && strncmp(a, "--", 2) == 0) {
			if (config_take(opts, argc, argv, &i) < 0)
				return -EINVAL;
		} else {
			argv[pos++] = a;
		}
	}
	if (diag_init() < 0)
		return -EINVAL;
	config_fill_defaults(opts);
	*npos = pos;
	return 0;
}

int config_parse_options(config_opt_t *opts, int argc, char **argv, const char *usage)
{
	int npos = 0;
	int rc = config_parse(opts, argc, argv, usage, &npos);
	if (rc == 1)
		return 0;
	if (rc < 0)
		return EXIT_USAGE;
	if (npos > 0) {
		fprintf(stderr, "error: unexpected argument '%s' (see --help)\n", argv[0]);
		return EXIT_USAGE;
	}
	return CONFIG_CONTINUE;
}

const char *config_get(const config_opt_t *opts, const char *name)
{
	config_opt_t *o = config_find((config_opt_t *)opts, name, strlen(name));
	return o ? o->value : NULL;
}

bool config_flag(const config_opt_t *opts, const char *name)
{
	const char *v = config_get(opts, name);
	return v && (strcmp(v, "1") == 0 || strcmp(v, "true") == 0 || strcmp(v, "yes") == 0);
}

int config_u64(const config_opt_t *opts, const char *name, uint64_t *out)
{
	const char *v = config_get(opts, name);
	char *end;
	if (!v || !*v || *v == '-')
		goto bad;
	errno = 0;
	unsigned long long x = strtoull(v, &end, 10);
	if (errno || *end)
		goto bad;
	*out = x;
	return 0;
bad:
	fprintf(stderr, "error: --%s wants a whole number, not '%s'\n", name, v ? v : "");
	return -EINVAL;
}

char *config_path(const char *dir, const char *name)
{
	size_t n = strlen(dir) + strlen(name) + 2;
	char *p = malloc(n);
	if (p)
		snprintf(p, n, "%s/%s", dir, name);
	return p;
}

int config_mkdirs(const char *path, unsigned mode)
{
	char tmp[4096];
	if (snprintf(tmp, sizeof(tmp), "%s", path) >= (int)sizeof(tmp))
		return -ENAMETOOLONG;
	for (char *p = tmp + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		if (mkdir(tmp, 0755) < 0 && errno != EEXIST)
			return -errno;
		*p = '/';
	}
	if (mkdir(tmp, mode) < 0 && errno != EEXIST)
		return -errno;
	return 0;
}
