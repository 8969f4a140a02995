/* log.c - diagnostics on stderr (see log.h). */
#include "log.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static log_level_t log_level = LOG_INFO;
static int log_level_from_env = 0;

static const char *const log_level_names[] = { "debug", "info", "warn", "error" };

void log_set_level(log_level_t level)
{
	log_level = level;
	log_level_from_env = 1;
}

static void log_init_level(void)
{
	if (log_level_from_env)
		return;
	log_level_from_env = 1;
	const char *env = getenv("ESBANK_LOG");
	for (int i = 0; env && i <= LOG_ERROR; i++)
		if (strcmp(env, log_level_names[i]) == 0)
			log_level = (log_level_t)i;
}

void log_msg(log_level_t level, const char *fmt, ...)
{
	log_init_level();
	if (level < log_level)
		return;
	char line[1024];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	fprintf(stderr, "%s: %s\n", log_level_names[level], line);
}
