/* supervision.c - RUN/esbankd.state beside the bus socket (see supervision.h). */
#include "supervision.h"

#include <stdio.h>
#include <string.h>

#define SUPERVISION_PATH_MAX 4096

void supervision_read(const char *sock_path, runstate_t *out)
{
	char path[SUPERVISION_PATH_MAX];
	const char *slash = strrchr(sock_path, '/');
	int dir_len = slash ? (int)(slash - sock_path) : 1;
	snprintf(path, sizeof(path), "%.*s/" RUNSTATE_FILE, dir_len, slash ? sock_path : ".");
	runstate_read(path, out);
}
