/* lock.c - DIR/esbankd.lock, one esbankd per directory (see lock.h). */
#include "lock.h"
#include "diag.h"

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <unistd.h>

/* The pid written in the lock file; 0 when missing or malformed. */
static long lock_read_pid(int fd)
{
	char buf[LOCK_PID_BYTES_MAX] = { 0 };
	ssize_t n = pread(fd, buf, sizeof(buf) - 1, 0);
	char *end;
	long pid = n > 0 ? strtol(buf, &end, 10) : 0;
	return pid > 1 && pid <= INT32_MAX && (*end == '\n' || !*end) ? pid : 0;
}

static int lock_held(int fd, const char *what, const char *path)
{
	long holder = lock_read_pid(fd);
	if (holder)
		diag_error("another esbankd (pid %ld) is running on this %s directory: "
		          "it holds %s", holder, what, path);
	else
		diag_error("another esbankd is running on this %s directory: it holds %s", what,
		          path);
	return -EAGAIN;
}

int lock_take(const char *dir, const char *what, int *fd_out)
{
	char path[LOCK_PATH_BYTES_MAX], pid[LOCK_PID_BYTES_MAX];
	int n = snprintf(path, sizeof(path), "%s/%s", dir, LOCK_FILE);
	if (n < 0 || (size_t)n >= sizeof(path))
		return -ENAMETOOLONG;
	int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (fd < 0) {
		int rc = -errno;
		diag_error("%s: %s", path, strerror(-rc));
		return rc;
	}
	if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
		int rc = errno == EWOULDBLOCK ? lock_held(fd, what, path) : -errno;
		if (rc != -EAGAIN)
			diag_error("%s: flock: %s", path, strerror(-rc));
		close(fd);
		return rc;
	}
	n = snprintf(pid, sizeof(pid), "%ld\n", (long)getpid());
	errno = 0; /* a short pwrite sets none */
	/* Overwrite, then cut: no page freed and asked for again on a full disk. */
	if (pwrite(fd, pid, (size_t)n, 0) != n || ftruncate(fd, n) < 0) {
		int rc = errno ? -errno : -EIO;
		diag_error("%s: %s", path, strerror(-rc));
		close(fd);
		return rc;
	}
	*fd_out = fd;
	return 0;
}
