/*
 * snapfile.h - snapshot files: the whole state at a sequence number, so that
 * recovery replays only the events after it. The format is described at the
 * top of snapfile.c.
 *
 * A snapshot is used only when its checksum and version are right and the
 * log's chain hash at its sequence number equals the one it recorded (so a
 * snapshot from another data directory, or from a log that was cut back, is
 * never used).
 */
#ifndef ESBANK_SNAPFILE_H
#define ESBANK_SNAPFILE_H

#include "ledger.h"
#include "logfile.h"

#include <stddef.h>
#include <stdint.h>

#define SNAPFILE_DIR "snapshots"
#define SNAPFILE_KEEP 3          /* newest snapshots kept */
#define SNAPFILE_LIST_MAX 64     /* snapshots looked at when choosing one */
#define SNAPFILE_VERSION 1

typedef struct {
	uint64_t seq;
	uint8_t chain[LOGFILE_HASH_BYTES]; /* the log's hash at seq */
	char *body;                        /* ledger_pack() bytes, malloc'd */
	size_t body_len;
} snapfile_t;

/*
 * Writes DATA/snapshots/<seq>.snap atomically: temporary file, fsync, rename,
 * directory fsync; then removes all but the newest SNAPFILE_KEEP. body is the
 * ledger_pack() encoding. Returns 0 or a negative errno. Blocking: call it
 * from a worker thread.
 */
int snapfile_write(const char *data_dir, uint64_t seq, const uint8_t chain[LOGFILE_HASH_BYTES],
                   const char *body, size_t body_len);

/*
 * Removes DATA/snapshots/<seq>.snap (a snapshot known to be of a wrong
 * state). Returns 0 or a negative errno.
 */
int snapfile_remove(const char *data_dir, uint64_t seq);

/*
 * Lists the snapshot sequence numbers in DATA/snapshots, newest first, at
 * most max of them. Returns how many, or a negative errno (-ENOENT: none).
 */
int snapfile_list(const char *data_dir, uint64_t *seqs, size_t max);

/*
 * Reads and checks the snapshot at seq into *out (free with snapfile_free).
 * Returns 0, -EBADMSG (damaged: bad magic, size or checksum),
 * -EPROTONOSUPPORT (unknown version) or another negative errno.
 */
int snapfile_read(const char *data_dir, uint64_t seq, snapfile_t *out);
void snapfile_free(snapfile_t *s);

/*
 * Decodes a checked snapshot into a new ledger. Returns 0 and sets *out, or
 * -EINVAL / -ENOMEM.
 */
int snapfile_to_ledger(const snapfile_t *s, ledger_t **out);
/* The same into l, a new empty ledger (set up by the caller); l is the caller's to free. */
int snapfile_into_ledger(const snapfile_t *s, ledger_t *l);

#endif
