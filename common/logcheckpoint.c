/*
 * logcheckpoint.c - DIR/events.chk, the event log's checkpoint (see
 * logcheckpoint.h).
 *
 * File layout, LOGCHECKPOINT_FILE_BYTES (96), integers unsigned big-endian:
 *   0  6  magic     "ESBCHK"
 *   6  2  version   1
 *   8  8  seq       the log's last seq when it was written
 *   16 8  end       the log's length then (the end of the batch holding seq)
 *   24 32 hash      the chain hash at seq (docs/formats.md, events.log)
 *   56 8  ino       the log file's inode number then
 *   64 8  mtime     its modification time then, in ns since the epoch
 *   72 8  ctime     its status change time then, in ns
 *   80 16 check     BLAKE2b-128 of the 80 bytes above
 *
 * The logger writes it at a clean stop, after the last batch and the cut of
 * the preallocated zeros, and after one more fdatasync of the log: every
 * byte it vouches for is on stable storage. It waits until the log's last
 * change is LOGCHECKPOINT_TICK_NS old before writing (at most that long),
 * so that a later change cannot share its coarse timestamp. It is written to
 * events.chk.tmp and renamed over events.chk, never fsync'd: a lost or torn
 * checkpoint only costs a full check.
 *
 * At start-up the writer's check (logfile.c) trusts it only when it reads
 * back whole (magic, version, check) and the log file is the very file it
 * was written for, untouched since: same inode, length end, modification
 * and change time to the nanosecond. Any write to the log after the stop
 * (a crash after more appends, a restore, a flipped byte) changes the
 * change time, which no one can set back, and so means a full check. A
 * trusted checkpoint lets the check take each record's stored hash up to
 * seq instead of computing it (the framing, seqs and batch headers are
 * still checked), provided the stored hash at seq is the checkpoint's hash
 * and seq's batch ends at end; otherwise the check starts again and hashes
 * everything. Readers (esbank audit, history) never use it.
 */
#include "logcheckpoint.h"

#include "be.h"
#include "fileio.h"

#include <errno.h>
#include <fcntl.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define LOGCHECKPOINT_MAGIC "ESBCHK"
#define LOGCHECKPOINT_MAGIC_BYTES 6
#define LOGCHECKPOINT_VERSION 1
#define LOGCHECKPOINT_FIELDS_BYTES 80
#define LOGCHECKPOINT_CHECK_BYTES 16
#define LOGCHECKPOINT_FILE_BYTES (LOGCHECKPOINT_FIELDS_BYTES + LOGCHECKPOINT_CHECK_BYTES)
#define LOGCHECKPOINT_PATH_MAX 4096
/* A coarse file time advances at least this often (a jiffy: 1 to 10 ms). */
#define LOGCHECKPOINT_TICK_NS (20 * 1000000ull)

static uint64_t logcheckpoint_ns(const struct timespec *t)
{
	return (uint64_t)t->tv_sec * 1000000000u + (uint64_t)t->tv_nsec;
}

/*
 * Waits until the log's times are a tick old: a change within the tick of
 * its last one might keep the same coarse time, and the stamp would miss it.
 */
static void logcheckpoint_settle(const struct stat *st)
{
	struct timespec now;
	clock_gettime(CLOCK_REALTIME, &now);
	uint64_t t = logcheckpoint_ns(&now), c = logcheckpoint_ns(&st->st_ctim);
	uint64_t m = logcheckpoint_ns(&st->st_mtim), last = c > m ? c : m;
	if (last > t || t - last >= LOGCHECKPOINT_TICK_NS)
		return;
	uint64_t wait = LOGCHECKPOINT_TICK_NS - (t - last);
	struct timespec d = { .tv_sec = 0, .tv_nsec = (long)wait };
	while (nanosleep(&d, &d) < 0 && errno == EINTR)
		;
}

/* The checkpoint's path beside log_path, with suffix; -ENAMETOOLONG. */
static int logcheckpoint_path(const char *log_path, const char *suffix, char *out, size_t size)
{
	const char *slash = strrchr(log_path, '/');
	int dir_len = slash ? (int)(slash - log_path + 1) : 0;
	int n = snprintf(out, size, "%.*s%s%s", dir_len, log_path, LOGCHECKPOINT_NAME, suffix);
	return n < 0 || (size_t)n >= size ? -ENAMETOOLONG : 0;
}

/* The 96 bytes for cp and the log's stat st. */
static void logcheckpoint_encode(const logcheckpoint_t *cp, const struct stat *st,
                                 unsigned char out[LOGCHECKPOINT_FILE_BYTES])
{
	memcpy(out, LOGCHECKPOINT_MAGIC, LOGCHECKPOINT_MAGIC_BYTES);
	out[6] = 0;
	out[7] = LOGCHECKPOINT_VERSION;
	be_put_u64(out + 8, cp->seq);
	be_put_u64(out + 16, cp->end);
	memcpy(out + 24, cp->hash, LOGCHECKPOINT_HASH_BYTES);
	be_put_u64(out + 56, (uint64_t)st->st_ino);
	be_put_u64(out + 64, logcheckpoint_ns(&st->st_mtim));
	be_put_u64(out + 72, logcheckpoint_ns(&st->st_ctim));
	crypto_generichash(out + LOGCHECKPOINT_FIELDS_BYTES, LOGCHECKPOINT_CHECK_BYTES, out,
	                   LOGCHECKPOINT_FIELDS_BYTES, NULL, 0);
}

int logcheckpoint_save(const char *log_path, int fd, const logcheckpoint_t *cp)
{
	char path[LOGCHECKPOINT_PATH_MAX], tmp[LOGCHECKPOINT_PATH_MAX];
	int r = logcheckpoint_path(log_path, "", path, sizeof(path));
	if (r == 0)
		r = logcheckpoint_path(log_path, ".tmp", tmp, sizeof(tmp));
	if (r < 0)
		return r;
	struct stat st;
	if (fdatasync(fd) < 0 || fstat(fd, &st) < 0)
		return -errno;
	if ((uint64_t)st.st_size != cp->end)
		return -ESTALE; /* bytes past the log's end: nothing to vouch for */
	logcheckpoint_settle(&st);
	unsigned char bytes[LOGCHECKPOINT_FILE_BYTES];
	logcheckpoint_encode(cp, &st, bytes);
	int out = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (out < 0)
		return -errno;
	r = fileio_write_all(out, bytes, sizeof(bytes));
	if (close(out) < 0 && r == 0)
		r = -errno;
	if (r == 0 && rename(tmp, path) < 0)
		r = -errno;
	if (r < 0)
		unlink(tmp);
	return r;
}

/* Reads the whole file at path into out: 0, -ENOENT, -EBADMSG (wrong length). */
static int logcheckpoint_read(const char *path, unsigned char out[LOGCHECKPOINT_FILE_BYTES])
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	unsigned char extra;
	ssize_t n = read(fd, out, LOGCHECKPOINT_FILE_BYTES);
	int r = n < 0 ? -errno : 0;
	if (r == 0 && (n != LOGCHECKPOINT_FILE_BYTES || read(fd, &extra, 1) != 0))
		r = -EBADMSG;
	close(fd);
	return r;
}

int logcheckpoint_load(const char *log_path, const struct stat *st, logcheckpoint_t *cp)
{
	char path[LOGCHECKPOINT_PATH_MAX];
	unsigned char bytes[LOGCHECKPOINT_FILE_BYTES];
	int r = logcheckpoint_path(log_path, "", path, sizeof(path));
	if (r == 0)
		r = logcheckpoint_read(path, bytes);
	if (r < 0)
		return r;
	uint8_t check[LOGCHECKPOINT_CHECK_BYTES];
	crypto_generichash(check, sizeof(check), bytes, LOGCHECKPOINT_FIELDS_BYTES, NULL, 0);
	if (memcmp(bytes, LOGCHECKPOINT_MAGIC, LOGCHECKPOINT_MAGIC_BYTES) != 0 || bytes[6] != 0 ||
	    bytes[7] != LOGCHECKPOINT_VERSION ||
	    sodium_memcmp(check, bytes + LOGCHECKPOINT_FIELDS_BYTES, sizeof(check)) != 0)
		return -EBADMSG;
	cp->seq = be_get_u64(bytes + 8);
	cp->end = be_get_u64(bytes + 16);
	memcpy(cp->hash, bytes + 24, LOGCHECKPOINT_HASH_BYTES);
	unsigned char now[LOGCHECKPOINT_FILE_BYTES];
	logcheckpoint_encode(cp, st, now);
	if (cp->seq == 0 || (uint64_t)st->st_size != cp->end ||
	    memcmp(now, bytes, LOGCHECKPOINT_FIELDS_BYTES) != 0)
		return -ESTALE;
	return 0;
}
