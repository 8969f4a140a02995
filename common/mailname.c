/* mailname.c - the name of a mail in the Maildir outbox (format in mailname.h). */
#include "mailname.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAILNAME_TAG ".esbank-"

void mailname_format(char out[MAILNAME_MAX + 1], int64_t ts_ms, uint64_t seq, const char *host)
{
	char esc[MAILNAME_HOST_MAX + 1];
	size_t e = 0;
	for (const char *p = host; *p && e + 4 < sizeof(esc); p++) {
		if (*p == '/' || *p == ':') {
			memcpy(esc + e, *p == '/' ? "\\057" : "\\072", 4);
			e += 4;
		} else {
			esc[e++] = *p;
		}
	}
	esc[e] = '\0';
	if (e == 0)
		snprintf(esc, sizeof(esc), "localhost");
	snprintf(out, MAILNAME_MAX + 1, "%" PRId64 MAILNAME_TAG "%" PRIu64 ".%s", ts_ms / 1000, seq,
	         esc);
}

int mailname_seq(const char *name, uint64_t *seq)
{
	const char *p = strstr(name, MAILNAME_TAG);
	if (!p)
		return -EINVAL;
	const char *digits = p + strlen(MAILNAME_TAG);
	char *end;
	uint64_t n = strtoull(digits, &end, 10);
	if (end == digits || *end != '.')
		return -EINVAL;
	*seq = n;
	return 0;
}
