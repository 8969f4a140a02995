/*
 * driver.c - runs a fuzz target over files, without libFuzzer: the
 * regression test. Usage: fuzz_replay_<target> PATH...; a PATH that is a
 * directory means every regular file in it. Prints "N inputs" and exits 0;
 * a failing input crashes (assert, sanitizer) with its name printed first.
 */
#include "fuzz.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static long driver_run_file(const char *path)
{
	FILE *f = fopen(path, "rb");
	if (!f) {
		perror(path);
		exit(1);
	}
	uint8_t *buf = malloc(FUZZ_INPUT_BYTES_MAX);
	if (!buf)
		abort();
	size_t n = fread(buf, 1, FUZZ_INPUT_BYTES_MAX, f);
	fclose(f);
	fprintf(stderr, "input %s (%zu bytes)\n", path, n);
	/* an exact-size copy, so that ASan sees reads past the end */
	uint8_t *exact = malloc(n ? n : 1);
	if (!exact)
		abort();
	memcpy(exact, buf, n);
	free(buf);
	LLVMFuzzerTestOneInput(exact, n);
	free(exact);
	return 1;
}

static int driver_cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static long driver_run_dir(const char *dir)
{
	DIR *d = opendir(dir);
	if (!d)
		return 0; /* an absent directory holds no inputs */
	char **names = NULL;
	size_t n = 0;
	struct dirent *e;
	while ((e = readdir(d)) != NULL) {
		if (e->d_name[0] == '.')
			continue;
		names = realloc(names, (n + 1) * sizeof(*names));
		size_t len = strlen(dir) + strlen(e->d_name) + 2;
		names[n] = malloc(len);
		snprintf(names[n++], len, "%s/%s", dir, e->d_name);
	}
	closedir(d);
	qsort(names, n, sizeof(*names), driver_cmp);
	long count = 0;
	for (size_t i = 0; i < n; i++) {
		struct stat st;
		if (stat(names[i], &st) == 0 && S_ISREG(st.st_mode))
			count += driver_run_file(names[i]);
		free(names[i]);
	}
	free(names);
	return count;
}

int main(int argc, char **argv)
{
	long count = 0;
	for (int i = 1; i < argc; i++) {
		struct stat st;
		if (stat(argv[i], &st) < 0)
			continue; /* an absent path (no regressions yet) holds no inputs */
		if (S_ISDIR(st.st_mode))
			count += driver_run_dir(argv[i]);
		else
			count += driver_run_file(argv[i]);
	}
	printf("%ld inputs\n", count);
	return 0;
}
