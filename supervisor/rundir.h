/*
 * rundir.h - esbankd's pid files in the run directory (the lock is lock.h).
 *
 * RUN/<name>.pid (logger.pid, bus.pid, ...): the pid of the running child,
 * in decimal and a newline, written (to a temporary name, then renamed) as
 * soon as it is started, removed once it has exited. One left behind by a
 * killed esbankd is checked at the next start-up: a process that is still
 * alive, runs esbank-<name> and was given the same --run directory is killed
 * (SIGKILL) before anything is started; any other pid is ignored.
 */
#ifndef ESBANK_SUPERVISOR_RUNDIR_H
#define ESBANK_SUPERVISOR_RUNDIR_H

#include <sys/types.h>

#define RUNDIR_PATH_BYTES_MAX 4096
#define RUNDIR_CMDLINE_BYTES_MAX 16384
#define RUNDIR_STALE_WAIT_MS 5000 /* for a killed leftover to be gone */
#define RUNDIR_STALE_POLL_MS 10

/* Writes RUN/<name>.pid atomically. 0 or a negative errno. */
int rundir_pid_write(const char *run_dir, const char *name, pid_t pid);

/* Removes RUN/<name>.pid (missing is fine). */
void rundir_pid_remove(const char *run_dir, const char *name);

/*
 * Kills the leftover child of an earlier esbankd named by RUN/<name>.pid,
 * if there is one (see above), and waits until it is gone. 0 (nothing left,
 * the pid file removed), or -ETIMEDOUT / another negative errno (logged).
 */
int rundir_kill_stale(const char *run_dir, const char *name);

/*
 * Replaces RUN/<file> with the n bytes of data (written to a temporary
 * name, then renamed). 0 or a negative errno.
 */
int rundir_replace(const char *run_dir, const char *file, const char *data, size_t n);

#endif
