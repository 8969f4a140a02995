/* util.c - helpers shared by the fuzz targets (see fuzz.h). */
#include "fuzz.h"

#include <stdio.h>
#include <stdlib.h>

const char *fuzz_tmpdir(void)
{
	static char dir[64];
	if (dir[0])
		return dir;
	const char *base = getenv("TMPDIR");
	snprintf(dir, sizeof(dir), "%s/esbfuzz.XXXXXX", base && *base ? base : "/tmp");
	if (!mkdtemp(dir)) {
		perror("mkdtemp");
		abort();
	}
	return dir;
}
