/*
 * logfile.h - the event log file, events.log: append-only, hash-chained.
 *
 * The format is described field by field at the top of logfile.c. This
 * module does file I/O but knows nothing of sockets or event loops: the
 * logger program drives it (group commit, fsync off the loop), and the
 * offline tools read it directly.
 *
 * Invariants of logfile_t: records [1..last_seq] are on disk at offsets
 * offsets[seq - 1], in order, chained (contiguous in a version 1 file; in
 * version 2 a batch header stands before each batch's first record);
 * head_hash is the hash of record last_seq (all zero for an empty log);
 * size_bytes is where the next batch goes; version is the file's format
 * version, fixed while it is open.
 */
#ifndef ESBANK_LOGFILE_H
#define ESBANK_LOGFILE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <msgpack.h>

#define LOGFILE_NAME "events.log"
#define LOGFILE_HASH_BYTES 32
#define LOGFILE_RECORD_BODY_MAX (64 * 1024) /* one event, encoded */

typedef struct {
	int fd;
	char *path;
	uint64_t last_seq;
	uint64_t size_bytes;
	uint8_t head_hash[LOGFILE_HASH_BYTES];
	uint64_t file_bytes; /* the file's length at open: bytes size_bytes..file_bytes
	                      * are zero (v2: preallocated space, see logfile.c) */
	uint64_t *offsets; /* offsets[i] = byte offset of record seq i + 1 */
	size_t offsets_cap;
	int version;       /* LOGFILE_VERSION_1 or LOGFILE_VERSION_2 */
	uint64_t checkpoint_seq; /* open: records 1..this were taken on DIR/events.chk's
	                          * word, not hashed again (0: every record hashed) */
} logfile_t;

#define LOGFILE_VERSION_1 1 /* records back to back (read, and appended to) */
#define LOGFILE_VERSION_2 2 /* records in framed batches: new files */

/* What logfile_open() found, for the logger to report. */
typedef struct {
	bool torn_tail_cut;        /* a torn last record (v1) or batch (v2) was cut off */
	uint64_t torn_offset;      /* where it started */
	uint64_t torn_bytes;       /* how many bytes were cut */
	uint64_t torn_seq;         /* the first seq that was cut (it may not be whole) */
	uint64_t damage_seq;       /* on -EBADMSG: the seq of the damaged record */
	uint64_t damage_offset;    /* on -EBADMSG: its byte offset */
	bool not_durable;          /* on error: fdatasync of the file or fsync of its
	                            * directory failed; what it holds may be only in
	                            * the page cache. Never retried: stop. */
} logfile_report_t;

/*
 * Opens (creating when absent, as version 2) DIR/events.log, checks every
 * record and the chain (a writer takes the stored hashes up to a matching
 * DIR/events.chk instead of computing them: logfile_save_checkpoint), cuts a torn tail (the rules are at the top of
 * logfile.c; *rep says what was cut), and builds the in-memory index. A
 * writer then makes the file and DIR durable (fdatasync, fsync) before
 * returning, so that nothing it reports rests on bytes only in the page
 * cache. Returns 0; -EBADMSG when acknowledged history is damaged
 * (rep->damage_seq / damage_offset name it; nothing is changed on disk; the
 * operator's tool is esbank log-repair); or a negative errno from the file
 * system (rep->not_durable when it was the fdatasync or fsync). read_only
 * opens without creating, locking, cutting or syncing anything (a torn tail
 * is then only reported in *rep, and the log ends where it starts). Also
 * -EAGAIN when another writer holds the file (flock), -EPROTONOSUPPORT for
 * an unknown format version. On error lf is left closed. Free with
 * logfile_close().
 */
int logfile_open(logfile_t *lf, const char *dir, bool read_only, logfile_report_t *rep);
void logfile_close(logfile_t *lf);

/*
 * A writer's start-up with its check overlapped (the logger): as
 * logfile_open(lf, dir, false, rep), except that a log of
 * LOGFILE_CHECK_OVERLAP_MIN records or more with no usable checkpoint
 * returns once its layout is checked (framing, seqs, batch headers: a
 * fraction of the time), with *chk set and lf holding the verified prefix:
 * none yet. The chain's hashes are then computed in threads, which call
 * progress_cb(arg) from their own thread after each chunk and when they
 * stop; the caller then calls logfile_check_advance() on its own thread.
 * Until the check ends lf serves reads and hash_at up to its last_seq, the
 * verified prefix, and must not be appended to. *chk NULL: the whole log
 * was checked as logfile_open() does. The same returns as logfile_open().
 */
#define LOGFILE_CHECK_OVERLAP_MIN 262144
typedef struct logfile_check logfile_check_t;
int logfile_open_overlapped(logfile_t *lf, const char *dir, logfile_report_t *rep,
                            void (*progress_cb)(void *arg), void *arg, logfile_check_t **chk);

/*
 * Moves lf's last_seq, head_hash and size_bytes (never back) to the end of
 * the records verified in order from seq 1. Returns 0 while the check goes
 * on; 1 when it ended and chk is freed: lf is the whole log, or, when a
 * record did not match, lf was checked again from the start as
 * logfile_open() does (a torn tail cut: rep says so, lf ends before it, at
 * or after where the verified prefix stood); or chk is freed and a negative
 * errno is returned as logfile_open() would (-EBADMSG with rep->damage_seq):
 * the caller closes lf. *rep is cleared first.
 */
int logfile_check_advance(logfile_t *lf, logfile_check_t *chk, logfile_report_t *rep);

/* The last seq of the log as its layout says (where the check ends if
 * every hash matches). */
uint64_t logfile_check_end(const logfile_check_t *chk);

/* Stops the check's threads and frees chk (NULL: nothing), before lf is closed. */
void logfile_check_abort(logfile_check_t *chk);

/*
 * A writer's clean stop: writes DIR/events.chk for the log as it is now
 * (every batch written, the preallocated zeros cut), after an fdatasync,
 * so that the next start-up check need not hash every record again
 * (logcheckpoint.c). 0 for an empty log (none is written), or
 * a negative errno (-ESTALE: bytes past the log's end).
 */
int logfile_save_checkpoint(const logfile_t *lf);

/*
 * Encodes one record for the event body (msgpack map bytes) with sequence
 * number seq, chaining it to *chain (updated to the new record's hash).
 * Appends the record's bytes to *out (grown with realloc; *out_len and
 * *out_cap track it). Returns 0; -EINVAL if seq is 0 or the body is not
 * exactly one msgpack map; -E2BIG if too large; -ENOMEM.
 * Nothing is written to the file: see logfile_write().
 */
int logfile_encode(uint64_t seq, const char *body, size_t body_len,
                   uint8_t chain[LOGFILE_HASH_BYTES],
                   char **out, size_t *out_len, size_t *out_cap);

/*
 * Checks a peer message's "events": an array whose every item is a msgpack
 * bin of 1..LOGFILE_RECORD_BODY_MAX bytes, so each can become a record body
 * (the logger's and the replicator's appends). 0, or -EINVAL.
 */
int logfile_check_bodies(const msgpack_object *evs);

/*
 * Writes encoded records (one batch: whole records, in seq order) at offset
 * at, the end of the file, with one pwrite (version 2: the batch header and
 * the records with one pwritev) and makes them durable with one fdatasync.
 * Safe to call from a worker thread while the loop thread encodes the next
 * batch (it reads only lf->fd and lf->version, fixed while open). On any
 * error the file is cut back to at (so a retry starts clean) and the
 * negative errno is returned.
 */
int logfile_write(const logfile_t *lf, uint64_t at, const char *buf, size_t len);

/* Where a logfile_write() of len bytes of records at at ends (v2: with
 * its batch header). */
uint64_t logfile_batch_end(const logfile_t *lf, uint64_t at, size_t len);

/*
 * Writes zeros over [from, to) of a version 2 log (space ahead of its end,
 * which must be beyond every byte a logfile_write() may be writing now), with
 * the blocks reserved by fallocate first, then fdatasyncs: a later
 * logfile_write() into that space changes neither the file's size nor its
 * block map, so its fdatasync has no metadata to commit. Readers take zeros
 * where a batch header would start as the end of the log. Safe from a
 * worker thread while another writes below from. 0 or a negative errno
 * (the space may then be partly zeroed, which is as valid).
 */
int logfile_zero_fill(const logfile_t *lf, uint64_t from, uint64_t to);

/*
 * Cuts the preallocated zeros after the log's last record (lf->size_bytes)
 * and fdatasyncs: a writer's clean stop leaves the file exactly its records.
 * 0 or a negative errno.
 */
int logfile_trim(const logfile_t *lf);

/*
 * Records, after a successful logfile_write(), that records up to last_seq
 * ending at new_size with head hash are on disk, indexing their offsets.
 * first_offset is where the batch began; buf/len the batch bytes (to find
 * each record's offset). Returns 0 or -ENOMEM.
 */
int logfile_commit(logfile_t *lf, const char *buf, size_t len, uint64_t last_seq,
                   const uint8_t head[LOGFILE_HASH_BYTES]);

/*
 * Reads the event bodies of records from_seq.. (at most max_events, and at
 * most max_bytes of bodies in all) calling cb(seq, body, len, arg) for each,
 * in order, without scanning from the start (the index finds the offset).
 * Stops early if cb returns non-zero (that record is not counted). The byte
 * limit is strict: a body that would exceed it ends the read, even the first.
 * body is valid only during cb. Returns the number read or a negative errno.
 * Safe while a logfile_write() runs in another thread (it reads only
 * committed records).
 */
long logfile_read(const logfile_t *lf, uint64_t from_seq, size_t max_events, size_t max_bytes,
                  int (*cb)(uint64_t seq, const char *body, size_t len, void *arg), void *arg);

/*
 * The hash of record seq (all zero for seq 0, the empty prefix); false if
 * seq > last_seq or the hash could not be read back from the file.
 */
bool logfile_hash_at(const logfile_t *lf, uint64_t seq, uint8_t out[LOGFILE_HASH_BYTES]);

/*
 * A read-only view of lf's records as they are now, for another thread:
 * out shares lf's fd (not its own: never close it with logfile_close) and
 * holds its own copy of the index, so lf may go on appending while out is
 * read with logfile_read() and logfile_hash_at() (records are never changed
 * once written). Free with logfile_view_free() before lf is closed. 0 or
 * -ENOMEM.
 */
int logfile_view(const logfile_t *lf, logfile_t *out);
void logfile_view_free(logfile_t *view);

/* --- checking the whole file, record by record (the offline tools) ------ */

/* One valid record as logfile_scan() hands it over. */
typedef struct {
	uint64_t seq;
	uint64_t offset;     /* of the record's first byte in the file */
	const char *body;    /* the event bytes; valid only during the callback */
	size_t len;
	const uint8_t *hash; /* its chain hash, LOGFILE_HASH_BYTES */
} logfile_record_t;

/* The first thing wrong in a log file. */
typedef enum {
	LOGFILE_PROBLEM_NONE = 0,
	LOGFILE_PROBLEM_HEADER,    /* bad magic or unknown version (seq 0, offset 0) */
	LOGFILE_PROBLEM_TRUNCATED, /* the file ends inside a record */
	LOGFILE_PROBLEM_LENGTH,    /* len is 0 or above LOGFILE_RECORD_BODY_MAX */
	LOGFILE_PROBLEM_SEQ,       /* not the seq expected: a gap or a repeat */
	LOGFILE_PROBLEM_HASH,      /* the stored hash is not the chain's */
	LOGFILE_PROBLEM_BATCH,     /* v2: a batch header is not valid, or its
	                            * records do not end where it says */
} logfile_problem_t;

typedef struct {
	logfile_problem_t problem;
	uint64_t seq;          /* the seq expected where the problem is */
	uint64_t offset;       /* byte offset of the bad record (or batch header) */
	uint64_t batch_offset; /* v2: the start of the batch holding it (v1: offset) */
	uint64_t batch_seq;    /* v2: that batch's first seq (v1: seq) */
	int version;           /* the file's format version (0: not known) */
	uint64_t found_seq;    /* LOGFILE_PROBLEM_SEQ: the seq found there */
	uint64_t last_seq;     /* the last valid record handed over (0: none) */
	uint64_t end_offset;   /* where that record ends */
	uint64_t file_bytes;   /* the file's size when the scan ended */
	uint8_t head_hash[LOGFILE_HASH_BYTES]; /* the hash of last_seq */
} logfile_scan_report_t;

/* A short English description of a problem ("the hash does not chain"). */
const char *logfile_problem_text(logfile_problem_t p);

/*
 * Reads DIR/events.log from the start without opening it for writing,
 * locking or changing anything (safe while the logger appends), checks every
 * record as logfile_open() does, and calls record_cb for each valid record in
 * order. Unlike logfile_open() it does not tell damage from a torn tail: it
 * stops at the first record that is not valid and names it in *rep. A record
 * cut short by the end of the file is looked at again a few times over
 * LOGFILE_TAIL_WAIT_MS (a writer may be appending it) before it counts as
 * truncated. record_cb returns 0 to go on, 1 to stop (the scan returns 0) or
 * a negative errno (returned).
 * Returns 0 (the file is valid to its end, or record_cb stopped it),
 * -EBADMSG with rep->problem set, or a negative errno (-ENOENT: no log).
 * *rep is always filled.
 */
int logfile_scan(const char *dir, logfile_scan_report_t *rep,
                 int (*record_cb)(const logfile_record_t *r, void *arg), void *arg);

#define LOGFILE_TAIL_WAIT_MS 300

/* --- the operator's repair (esbank log-repair) --------------------------- */

#define LOGFILE_CUT_PATH_MAX 4096

/* What logfile_repair() found and did. */
typedef struct {
	logfile_scan_report_t scan;  /* the first problem (scan.problem NONE: none) */
	bool cut;                    /* the log was (dry run: would be) cut */
	uint64_t cut_offset;         /* the log's new length */
	uint64_t cut_bytes;          /* bytes removed from the log, all kept in the copy */
	uint64_t first_cut_seq;      /* the first seq removed */
	uint64_t kept_last_seq;      /* the last seq kept */
	bool header_rewritten;       /* v2: the cut fell inside a batch, whose header
	                              * now says it ends there */
	char copy_path[LOGFILE_CUT_PATH_MAX]; /* DIR/events.log.cut-<seq>-<unix time> */
} logfile_repair_t;

/*
 * Cuts DIR/events.log at its first problem (the damaged record, or in v2
 * the start of its batch when it is the batch's first record or header).
 * Every byte removed is first written to out->copy_path, fsync'd, with its
 * directory; then the cut is made and fdatasync'd. With dry_run only
 * out is filled. Takes the writer's lock for the whole run: -EAGAIN while a
 * logger (or another repair) holds it. Returns 0 (cut, or nothing to cut:
 * out->cut false), -EBADMSG when the file header itself is not an esbank
 * log's (nothing is cut), -ENOENT without a log, or another negative errno.
 */
int logfile_repair(const char *dir, bool dry_run, logfile_repair_t *out);

/*
 * Cuts DIR/events.log after record keep_seq (a rejoining primary's events
 * that the stream does not have), the same way as logfile_repair(): every
 * byte removed is first copied to out->copy_path and fsync'd with its
 * directory, a batch cut inside keeps its header valid, then the cut is
 * fdatasync'd. Records after keep_seq that are not valid (a torn tail) are
 * cut with them. Nothing to cut (the log ends at or before keep_seq):
 * out->cut false. Takes the writer's lock: -EAGAIN while a logger holds it.
 * Returns 0, -EBADMSG when the log is damaged at or before keep_seq (nothing
 * is cut), -ENOENT without a log, or another negative errno.
 */
int logfile_cut_after(const char *dir, uint64_t keep_seq, logfile_repair_t *out);

#endif
