/* rundir.c - the pid files and leftovers (see rundir.h). */
#include "rundir.h"
#include "diag.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define RUNDIR_PID_BYTES_MAX 32

static int rundir_join(char *out, const char *dir, const char *file, const char *ext)
{
	int n = snprintf(out, RUNDIR_PATH_BYTES_MAX, "%s/%s%s", dir, file, ext);
	return n < 0 || n >= RUNDIR_PATH_BYTES_MAX ? -ENAMETOOLONG : 0;
}

/* The pid written in the file at path; 0 when missing or malformed. */
static pid_t rundir_read_pid(const char *path)
{
	char buf[RUNDIR_PID_BYTES_MAX] = { 0 };
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return 0;
	ssize_t n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	char *end;
	long pid = n > 0 ? strtol(buf, &end, 10) : 0;
	return pid > 1 && pid <= INT32_MAX && (*end == '\n' || !*end) ? (pid_t)pid : 0;
}

int rundir_replace(const char *run_dir, const char *file, const char *data, size_t n)
{
	char path[RUNDIR_PATH_BYTES_MAX], tmp[RUNDIR_PATH_BYTES_MAX];
	if (rundir_join(path, run_dir, file, "") < 0 ||
	    rundir_join(tmp, run_dir, file, ".tmp") < 0)
		return -ENAMETOOLONG;
	int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0)
		return -errno;
	ssize_t w = write(fd, data, n);
	int rc = w < 0 ? -errno : (size_t)w != n ? -EIO : 0;
	if (close(fd) < 0 && rc == 0)
		rc = -errno;
	if (rc == 0 && rename(tmp, path) < 0)
		rc = -errno;
	if (rc < 0)
		unlink(tmp);
	return rc;
}

int rundir_pid_write(const char *run_dir, const char *name, pid_t pid)
{
	char file[RUNDIR_PATH_BYTES_MAX], text[RUNDIR_PID_BYTES_MAX];
	snprintf(file, sizeof(file), "%s.pid", name);
	int n = snprintf(text, sizeof(text), "%ld\n", (long)pid);
	return rundir_replace(run_dir, file, text, (size_t)n);
}

void rundir_pid_remove(const char *run_dir, const char *name)
{
	char path[RUNDIR_PATH_BYTES_MAX];
	if (rundir_join(path, run_dir, name, ".pid") == 0)
		unlink(path);
}

/* True when pid runs an executable called esbank-<name> (even if deleted since). */
static bool rundir_runs(pid_t pid, const char *name)
{
	char link[64], exe[RUNDIR_PATH_BYTES_MAX], want[RUNDIR_PATH_BYTES_MAX];
	snprintf(link, sizeof(link), "/proc/%ld/exe", (long)pid);
	ssize_t n = readlink(link, exe, sizeof(exe) - 1);
	if (n <= 0)
		return false;
	exe[n] = '\0';
	char *deleted = strstr(exe, " (deleted)");
	if (deleted && deleted[strlen(" (deleted)")] == '\0')
		*deleted = '\0';
	const char *base = strrchr(exe, '/');
	snprintf(want, sizeof(want), "esbank-%s", name);
	return strcmp(base ? base + 1 : exe, want) == 0;
}

/* True when dir (relative to pid's working directory) is the file st. */
static bool rundir_same_dir(pid_t pid, const char *dir, const struct stat *st)
{
	char path[RUNDIR_PATH_BYTES_MAX];
	int n = dir[0] == '/' ? snprintf(path, sizeof(path), "%s", dir)
	                      : snprintf(path, sizeof(path), "/proc/%ld/cwd/%s", (long)pid, dir);
	struct stat other;
	return n > 0 && n < (int)sizeof(path) && stat(path, &other) == 0 &&
	       other.st_dev == st->st_dev && other.st_ino == st->st_ino;
}

/* True when pid was started with "--run DIR", DIR being run_dir. */
static bool rundir_runs_on(pid_t pid, const char *run_dir)
{
	static char args[RUNDIR_CMDLINE_BYTES_MAX];
	char path[64];
	struct stat st;
	if (stat(run_dir, &st) < 0)
		return false;
	snprintf(path, sizeof(path), "/proc/%ld/cmdline", (long)pid);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return false;
	ssize_t n = read(fd, args, sizeof(args) - 1);
	close(fd);
	if (n <= 0)
		return false;
	args[n] = '\0';
	for (const char *a = args; a < args + n; a += strlen(a) + 1) {
		const char *next = a + strlen(a) + 1;
		if (strcmp(a, "--run") == 0 && next < args + n)
			return rundir_same_dir(pid, next, &st);
		if (strncmp(a, "--run=", 6) == 0)
			return rundir_same_dir(pid, a + 6, &st);
	}
	return false;
}

/* True while pid exists and is not a zombie (a zombie holds no file or lock). */
static bool rundir_alive(pid_t pid)
{
	char path[64], stat_line[512];
	snprintf(path, sizeof(path), "/proc/%ld/stat", (long)pid);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return false;
	ssize_t n = read(fd, stat_line, sizeof(stat_line) - 1);
	close(fd);
	if (n <= 0)
		return false;
	stat_line[n] = '\0';
	const char *paren = strrchr(stat_line, ')');
	return !paren || paren[1] != ' ' || (paren[2] != 'Z' && paren[2] != 'X');
}

static int rundir_wait_gone(pid_t pid)
{
	struct timespec poll = { 0, RUNDIR_STALE_POLL_MS * 1000000L };
	for (int waited_ms = 0; waited_ms < RUNDIR_STALE_WAIT_MS;
	     waited_ms += RUNDIR_STALE_POLL_MS) {
		if (!rundir_alive(pid))
			return 0;
		nanosleep(&poll, NULL);
	}
	return rundir_alive(pid) ? -ETIMEDOUT : 0;
}

int rundir_kill_stale(const char *run_dir, const char *name)
{
	char path[RUNDIR_PATH_BYTES_MAX];
	if (rundir_join(path, run_dir, name, ".pid") < 0)
		return -ENAMETOOLONG;
	pid_t pid = rundir_read_pid(path);
	if (pid && rundir_alive(pid) && rundir_runs(pid, name) && rundir_runs_on(pid, run_dir)) {
		diag_warn("esbank-%s (pid %ld) of an earlier esbankd is still running: SIGKILL",
		         name, (long)pid);
		if (kill(pid, SIGKILL) < 0 && errno != ESRCH) {
			int rc = -errno;
			diag_error("cannot kill %s (pid %ld): %s", name, (long)pid, strerror(-rc));
			return rc;
		}
		if (rundir_wait_gone(pid) < 0) {
			diag_error("%s (pid %ld) still alive %d ms after SIGKILL", name, (long)pid,
			          RUNDIR_STALE_WAIT_MS);
			return -ETIMEDOUT;
		}
	}
	unlink(path);
	return 0;
}
