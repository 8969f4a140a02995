/*
 * listening.c - a process's listening TCP sockets, from /proc (see listening.h).
 *
 * /proc/PID/net/tcp and tcp6 (proc(5)): a header line, then one line per
 * socket of PID's network namespace, blank-separated fields:
 *     sl local_address rem_address st tx_queue:rx_queue tr:tm->when
 *     retrnsmt uid timeout inode ...
 * st is the state in hex (0A: LISTEN), inode the socket's inode, which
 * /proc/PID/fd/N names as the link "socket:[inode]". A line that does not
 * parse is skipped.
 */
#include "listening.h"

#include <dirent.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#define LISTENING_TCP_LISTEN 0x0A

/* Fills inodes with pid's socket inodes; returns how many. */
static size_t listening_sockets(pid_t pid, unsigned long *inodes)
{
	char dir_path[64], link[96], target[64];
	snprintf(dir_path, sizeof(dir_path), "/proc/%ld/fd", (long)pid);
	DIR *dir = opendir(dir_path);
	if (!dir)
		return 0;
	size_t n = 0;
	struct dirent *e;
	while (n < LISTENING_SOCKETS_MAX && (e = readdir(dir)) != NULL) {
		snprintf(link, sizeof(link), "%s/%.16s", dir_path, e->d_name);
		ssize_t len = readlink(link, target, sizeof(target) - 1);
		if (len <= 0)
			continue;
		target[len] = '\0';
		if (sscanf(target, "socket:[%lu]", &inodes[n]) == 1)
			n++;
	}
	closedir(dir);
	return n;
}

static bool listening_in(const char *table, const unsigned long *inodes, size_t n)
{
	FILE *f = fopen(table, "re");
	if (!f)
		return false;
	char line[LISTENING_LINE_BYTES_MAX];
	bool found = false;
	while (!found && fgets(line, sizeof(line), f)) {
		unsigned state;
		unsigned long inode;
		if (sscanf(line, "%*s %*s %*s %x %*s %*s %*s %*s %*s %lu", &state, &inode) != 2 ||
		    state != LISTENING_TCP_LISTEN)
			continue;
		for (size_t i = 0; i < n && !found; i++)
			found = inodes[i] == inode;
	}
	fclose(f);
	return found;
}

bool listening_tcp(pid_t pid)
{
	unsigned long inodes[LISTENING_SOCKETS_MAX];
	size_t n = listening_sockets(pid, inodes);
	if (n == 0)
		return false;
	char path[64];
	snprintf(path, sizeof(path), "/proc/%ld/net/tcp", (long)pid);
	if (listening_in(path, inodes, n))
		return true;
	snprintf(path, sizeof(path), "/proc/%ld/net/tcp6", (long)pid);
	return listening_in(path, inodes, n);
}
