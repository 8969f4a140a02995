/*
 * lock.h - one esbankd per directory: DIR/esbankd.lock.
 *
 * esbankd takes this lock in the data directory and in the run directory
 * before it starts any program, and keeps both for its whole life. The file
 * holds the holder's pid in decimal and a newline. The lock is an exclusive
 * flock() on an O_CLOEXEC descriptor: no child inherits it, so it goes with
 * esbankd (even a SIGKILLed one) and never outlives it in a child. The file
 * itself stays behind and is reused: only the lock counts, never the file's
 * existence. esbank restore takes the same lock on the data directory while
 * it writes there, so that no group starts on a half-restored directory.
 */
#ifndef ESBANK_COMMON_LOCK_H
#define ESBANK_COMMON_LOCK_H

#define LOCK_FILE "esbankd.lock"
#define LOCK_PATH_BYTES_MAX 4096
#define LOCK_PID_BYTES_MAX 32

/*
 * Takes DIR/esbankd.lock and writes our pid into it; *fd_out keeps the lock
 * (never closed: the lock goes with the process). what names the directory
 * in messages ("data", "run"). Returns 0, -EAGAIN when another process holds
 * it (an error naming the holder's pid has been logged), or another
 * negative errno (logged).
 */
int lock_take(const char *dir, const char *what, int *fd_out);

#endif
