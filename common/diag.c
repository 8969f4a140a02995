/* diag.c - diagnostics on stderr (see diag.h). */
#include "diag.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define DIAG_LINE_BYTES_MAX 1024

static diag_level_t diag_level = DIAG_INFO;
static bool diag_level_set;  /* by diag_set_level: ESBANK_LOG no longer counts */
static bool diag_ready;      /* diag_init ran */
static bool diag_journal;    /* stderr is the journal's stream */
static bool diag_timestamps;

static const char *const diag_level_names[] = { "debug", "info", "warn", "error" };
/* syslog priorities (LOG_DEBUG, LOG_INFO, LOG_WARNING, LOG_ERR) */
static const int diag_priorities[] = { 7, 6, 4, 3 };

/* True when JOURNAL_STREAM ("DEV:INODE") is the file stderr is. */
static bool diag_stderr_is_journal(void)
{
	const char *env = getenv("JOURNAL_STREAM");
	unsigned long long dev, ino;
	struct stat st;
	if (!env || sscanf(env, "%llu:%llu", &dev, &ino) != 2 || fstat(STDERR_FILENO, &st) < 0)
		return false;
	return (unsigned long long)st.st_dev == dev && (unsigned long long)st.st_ino == ino;
}

int diag_init(void)
{
	diag_ready = true;
	diag_journal = diag_stderr_is_journal();
	const char *env = getenv("ESBANK_LOG");
	if (diag_level_set || !env || !*env)
		return 0;
	for (int i = 0; i <= DIAG_ERROR; i++) {
		if (strcmp(env, diag_level_names[i]) == 0) {
			diag_level = (diag_level_t)i;
			return 0;
		}
	}
	fprintf(stderr, "error: ESBANK_LOG is debug, info, warn or error, not '%s'\n", env);
	return -EINVAL;
}

void diag_set_level(diag_level_t level)
{
	diag_level = level;
	diag_level_set = true;
}

void diag_set_timestamps(bool on)
{
	diag_timestamps = on;
}

void diag_prefix(diag_level_t level, char *buf, size_t size)
{
	buf[0] = '\0';
	if (diag_journal) {
		snprintf(buf, size, "<%d>", diag_priorities[level]);
		return;
	}
	if (!diag_timestamps)
		return;
	struct timespec ts;
	struct tm tm;
	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	char day[24];
	strftime(day, sizeof(day), "%Y-%m-%dT%H:%M:%S", &tm);
	snprintf(buf, size, "%s.%03ldZ ", day, ts.tv_nsec / 1000000);
}

diag_level_t diag_level_of_line(const char *line, size_t n)
{
	for (int i = 0; i <= DIAG_ERROR; i++) {
		size_t len = strlen(diag_level_names[i]);
		if (n > len && memcmp(line, diag_level_names[i], len) == 0 && line[len] == ':')
			return (diag_level_t)i;
	}
	return DIAG_INFO;
}

void diag_msg(diag_level_t level, const char *fmt, ...)
{
	if (!diag_ready)
		(void)diag_init();
	if (level < diag_level)
		return;
	char line[DIAG_LINE_BYTES_MAX];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	char prefix[DIAG_PREFIX_BYTES_MAX];
	diag_prefix(level, prefix, sizeof(prefix));
	fprintf(stderr, "%s%s: %s\n", prefix, diag_level_names[level], line);
}
