/* diag.c - diagnostics on stderr (see diag.h). */
#include "diag.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static diag_level_t diag_level = DIAG_INFO;
static int diag_level_from_env = 0;

static const char *const diag_level_names[] = { "debug", "info", "warn", "error" };

void diag_set_level(diag_level_t level)
{
	diag_level = level;
	diag_level_from_env = 1;
}

static void diag_init_level(void)
{
	if (diag_level_from_env)
		return;
	diag_level_from_env = 1;
	const char *env = getenv("ESBANK_LOG");
	for (int i = 0; env && i <= DIAG_ERROR; i++)
		if (strcmp(env, diag_level_names[i]) == 0)
			diag_level = (diag_level_t)i;
}

void diag_msg(diag_level_t level, const char *fmt, ...)
{
	diag_init_level();
	if (level < diag_level)
		return;
	char line[1024];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	fprintf(stderr, "%s: %s\n", diag_level_names[level], line);
}
