/*
 * logfile.c - the event log file, DATA/events.log (see logfile.h).
 *
 * File layout, all integers unsigned big-endian:
 *
 *   file header, LOGFILE_HEADER_BYTES (8) bytes at offset 0:
 *     0  6  magic    "ESBLOG"
 *     6  2  version  2 (LOGFILE_VERSION_2) for files created now; 1 is read
 *   record, LOGFILE_RECORD_OVERHEAD (44) + len bytes (the same in 1 and 2):
 *     0  4  len      body length, 1 <= len <= LOGFILE_RECORD_BODY_MAX
 *     4  8  seq      sequence number: 1 for the first record, then +1 each
 *     12 len body    one event: exactly one msgpack map (checked when encoded)
 *     .. 32 hash     BLAKE2b-256 (libsodium crypto_generichash, unkeyed) of
 *                    prev_hash || seq (8 bytes BE) || len (4 bytes BE) || body,
 *                    where prev_hash is the hash of record seq - 1, or 32 zero
 *                    bytes for seq 1. The hash of the last record is the head:
 *                    it commits to the whole history, like a git commit id.
 *   version 1: records back to back after the file header.
 *   version 2: batches back to back after the file header. A batch is what
 *   one logfile_write() writes (one pwritev, one fdatasync): a batch header,
 *   LOGFILE_BATCH_HEAD_BYTES (40), then its records back to back:
 *     0  8  first_seq  the seq of its first record
 *     8  8  last_seq   the seq of its last record (>= first_seq)
 *     16 8  bytes      the length of its records, so the batch ends at
 *                      offset + 40 + bytes
 *     24 16 check      BLAKE2b-128 of offset (8 bytes BE, where this header
 *                      starts) || the 24 bytes above *   The header is outside the chain: the records and their hashes are the
 *   same as in version 1, so the head hash of a history does not depend on
 *   how it was batched.
 *   Preallocated space (version 2 only): the file may go on past its last
 *   batch with zero bytes. A writer zero-fills space ahead of the end and
 *   fdatasyncs it before any batch is written there (logfile_zero_fill), so
 *   that a batch's fdatasync commits no change of size or block map; a
 *   writer's clean stop cuts the zeros off (logfile_trim). Where a batch
 *   header would start, zero bytes to the end of the file are the end of
 *   the log. A batch header's first_seq is never 0, so a batch is never all
 *   zero; zeros followed by anything else are a bad batch header, judged
 *   by the rules below. Writers before this rule cut such a tail as torn.
 *
 * A record is valid when it is complete, its len is in range, its seq is the
 * one expected and its hash matches; a batch header when it is complete, its
 * check matches and first_seq is the seq expected; a batch when its header
 * and all its records are valid and they end exactly at its end with
 * last_seq. logfile_open() checks everything and stops at the first thing
 * that is not valid. Then it must tell a torn tail (a crash during the last
 * append: those events were never acknowledged, since nothing is before its
 * fdatasync) from damage to acknowledged history (refused: -EBADMSG with the
 * seq and offset, nothing changed; the logger names `esbank log-repair`).
 *
 * Version 2, the bad spot in the batch starting at B:
 *   - The header at B is valid, so the batch's end E is known. If a
 *     non-zero byte follows E, damage: a batch is written only after the
 *     one before it was fdatasync'd, so this one was acknowledged.
 *     Otherwise (the file ends by E, or only preallocated zeros follow) it
 *     is the file's last batch and torn: cut at B.
 *   - The header at B is not valid. Walk the records that would follow it
 *     (chained from the last valid one) to the first that is not valid; if a
 *     valid batch header for the next seq stands there, a later batch
 *     follows: damage at B. Otherwise torn: cut at B.
 *   A batch is cut whole or kept whole: page write-back is unordered, so a
 *   crash may leave a later record of the last batch whole and an earlier
 *   one torn, and that is still a torn tail. The cost: damage inside the
 *   file's last batch after it was acknowledged (a bit flip at rest, with no
 *   append since) looks the same as a torn write and is cut too; and two
 *   faults at once (a damaged header and a damaged first record of the same
 *   acknowledged batch) may pass for a torn tail.
 *
 * Version 1 (no batches; kept for files written before version 2), the bad
 * record s at offset o:
 *   - If a complete valid record s + 1 follows it - one that starts within
 *     one maximal record after o and whose hash chains either to the 32 bytes
 *     just before it (record s's stored hash) or to the hash record s would
 *     have with the bytes it has - damage at s, o.
 *   - Otherwise a torn tail: cut at o.
 *   So a flipped byte in a record before the last is damage and one in the
 *   last record is a torn tail; and a torn batch whose later record reached
 *   the disk whole while an earlier one did not stops the logger (version 2
 *   exists for this). A version 1 file is appended to in version 1 (records
 *   only), never converted: converting means rewriting the whole history,
 *   and a log written in two versions would need rules for both at once. A
 *   new file is version 2.
 *
 * A torn tail is cut with ftruncate (preallocated space after it goes too). In read_only mode the cut is only
 * reported and the log ends at the cut. A file shorter than the header whose
 * bytes are a prefix of the header (a crash while creating it) is a torn
 * tail at 0 and a version 2 header is written; any other bad magic is damage
 * at seq 0, offset 0; an unknown version is -EPROTONOSUPPORT.
 *
 * Before a writer's logfile_open() returns, it fdatasyncs the file and
 * fsyncs its directory: the bytes it scanned may be only in the page cache
 * (the previous writer was killed between its pwrite and its fdatasync), and
 * the logger reports the log's last seq as durable. If that fails, the open
 * fails (rep->not_durable) and is not retried: after a failed fsync the
 * page cache cannot be trusted to still hold the bytes.
 *
 * Appends: logfile_encode() builds records in memory, logfile_write() writes a
 * batch with one pwrite(v) and one fdatasync, cutting the file back on any
 * error so that a retry rewrites (re-dirties) every byte, for the same
 * reason.
 *
 * Repair (logfile_repair, esbank log-repair): the operator cuts the log at
 * its first problem; every byte cut is first copied to
 * DIR/events.log.cut-<seq>-<unix time> (fsync'd, and its directory). In
 * version 2 a cut inside a batch keeps that batch's valid records and
 * rewrites its header to end at the cut.
 *
 * Checkpoint (DIR/events.chk, logcheckpoint.c): a writer's start-up check
 * (either version) takes the stored hashes of the records up to the
 * checkpoint's seq instead of computing them, when the checkpoint was
 * written at a clean stop of this very file, untouched since, and the
 * stored hash at its seq is its hash and its batch (v1: record) ends at
 * its end; anything else and every record is
 * hashed. logfile_save_checkpoint() writes it.
 *
 * A writer holds an exclusive flock() on the file; a second writer (or a
 * repair) gets -EAGAIN. Read-only openers take no lock.
 */
#include "logfile.h"

#include "be.h"
#include "fileio.h"
#include "logcheckpoint.h"

#include "msg.h"

#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <msgpack.h>
#include <sodium.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>
#include <uv.h>

#define LOGFILE_MAGIC "ESBLOG"
#define LOGFILE_MAGIC_BYTES 6
#define LOGFILE_VERSION LOGFILE_VERSION_2 /* what a new file is written in */
#define LOGFILE_HEADER_BYTES 8
#define LOGFILE_BATCH_HEAD_BYTES 40
#define LOGFILE_BATCH_FIELDS_BYTES 24 /* first_seq, last_seq, bytes */
#define LOGFILE_BATCH_CHECK_BYTES 16
/* A batch's declared length above this is not valid (keeps offsets in range). */
#define LOGFILE_BATCH_BYTES_MAX ((uint64_t)1 << 48)
#define LOGFILE_RECORD_HEAD_BYTES 12 /* len + seq */
#define LOGFILE_RECORD_OVERHEAD (LOGFILE_RECORD_HEAD_BYTES + LOGFILE_HASH_BYTES)
#define LOGFILE_RECORD_BYTES_MAX (LOGFILE_RECORD_OVERHEAD + LOGFILE_RECORD_BODY_MAX)
/* Where a follower of a bad record may start and end: two maximal records. */
#define LOGFILE_RESYNC_BYTES (2 * LOGFILE_RECORD_BYTES_MAX)
#define LOGFILE_SCAN_CHUNK_BYTES (1024 * 1024)
#define LOGFILE_READ_CHUNK_BYTES (256 * 1024)
#define LOGFILE_INDEX_MIN 1024
/* A writer's start-up hashes the chain in up to this many threads (one per
 * CPU), when the log holds at least LOGFILE_CHECK_PARALLEL_MIN records. */
#define LOGFILE_CHECK_THREADS_MAX 8
#define LOGFILE_CHECK_PARALLEL_MIN 65536
#define LOGFILE_ZERO_WRITE_BYTES (256 * 1024) /* one pwrite of logfile_zero_fill() */
#define LOGFILE_ZERO_LOOK_BYTES 4096 /* bytes checked at once for preallocated zeros */

_Static_assert(LOGFILE_SCAN_CHUNK_BYTES >= LOGFILE_RESYNC_BYTES, "scan chunk too small");
_Static_assert(LOGCHECKPOINT_HASH_BYTES == LOGFILE_HASH_BYTES, "checkpoint hash size");
_Static_assert(LOGFILE_READ_CHUNK_BYTES >= LOGFILE_RECORD_BYTES_MAX, "read chunk too small");

static void logfile_header_bytes(unsigned char out[LOGFILE_HEADER_BYTES], int version)
{
	memcpy(out, LOGFILE_MAGIC, LOGFILE_MAGIC_BYTES);
	out[6] = (unsigned char)(version >> 8);
	out[7] = (unsigned char)(version & 0xff);
}

/* The version in a whole header with the right magic, or 0 if unknown. */
static int logfile_header_version(const unsigned char h[LOGFILE_HEADER_BYTES])
{
	int v = h[6] << 8 | h[7];
	return v == LOGFILE_VERSION_1 || v == LOGFILE_VERSION_2 ? v : 0;
}

/* --- batch headers (version 2) ------------------------------------------ */

typedef struct {
	uint64_t first_seq;
	uint64_t last_seq;
	uint64_t bytes;
} logfile_batch_t;

static void logfile_batch_check(uint64_t at, const unsigned char *fields,
                                uint8_t out[LOGFILE_BATCH_CHECK_BYTES])
{
	unsigned char in[8 + LOGFILE_BATCH_FIELDS_BYTES];
	be_put_u64(in, at);
	memcpy(in + 8, fields, LOGFILE_BATCH_FIELDS_BYTES);
	crypto_generichash(out, LOGFILE_BATCH_CHECK_BYTES, in, sizeof(in), NULL, 0);
}

static void logfile_batch_encode(uint64_t at, const logfile_batch_t *b,
                                 unsigned char out[LOGFILE_BATCH_HEAD_BYTES])
{
	be_put_u64(out, b->first_seq);
	be_put_u64(out + 8, b->last_seq);
	be_put_u64(out + 16, b->bytes);
	logfile_batch_check(at, out, out + LOGFILE_BATCH_FIELDS_BYTES);
}

/* True when the header p, found at offset at, is valid for first seq seq. */
static bool logfile_batch_decode(uint64_t at, const unsigned char *p, uint64_t seq,
                                 logfile_batch_t *b)
{
	uint8_t check[LOGFILE_BATCH_CHECK_BYTES];
	logfile_batch_check(at, p, check);
	if (sodium_memcmp(check, p + LOGFILE_BATCH_FIELDS_BYTES, sizeof(check)) != 0)
		return false;
	b->first_seq = be_get_u64(p);
	b->last_seq = be_get_u64(p + 8);
	b->bytes = be_get_u64(p + 16);
	return b->first_seq == seq && b->last_seq >= seq && b->bytes <= LOGFILE_BATCH_BYTES_MAX &&
	       b->last_seq - seq < b->bytes / (LOGFILE_RECORD_OVERHEAD + 1);
}

/* DIR/events.log, malloc'd; NULL when out of memory. */
static char *logfile_path(const char *dir)
{
	size_t n = strlen(dir) + sizeof(LOGFILE_NAME) + 1;
	char *path = malloc(n);
	if (path)
		snprintf(path, n, "%s/%s", dir, LOGFILE_NAME);
	return path;
}

/* hash = H(prev || seq || len || body) */
static void logfile_hash(const uint8_t prev[LOGFILE_HASH_BYTES], uint64_t seq, const void *body,
                         uint32_t len, uint8_t out[LOGFILE_HASH_BYTES])
{
	crypto_generichash_state st;
	unsigned char head[LOGFILE_RECORD_HEAD_BYTES];
	be_put_u64(head, seq);
	be_put_u32(head + 8, len);
	crypto_generichash_init(&st, NULL, 0, LOGFILE_HASH_BYTES);
	crypto_generichash_update(&st, prev, LOGFILE_HASH_BYTES);
	crypto_generichash_update(&st, head, sizeof(head));
	crypto_generichash_update(&st, body, len);
	crypto_generichash_final(&st, out, LOGFILE_HASH_BYTES);
}

/* --- reading the file for the start-up check --------------------------- */

/* A window on the file, refilled with pread as the scan moves on. */
typedef struct {
	int fd;
	uint64_t size;
	unsigned char *buf;
	uint64_t buf_off; /* file offset of buf[0] */
	size_t buf_len;
	int err;          /* first read error, negative errno */
	const logcheckpoint_t *cp; /* trusted up to cp->seq until confirmed (v2) */
	uint64_t trust_to; /* records up to this seq: stored hash taken, not computed */
	bool cp_confirmed; /* the scan reached cp->seq and it matched */
} logfile_scan_t;

/* The n bytes at file offset off, or NULL when past the end or on error. */
static const unsigned char *logfile_scan_get(logfile_scan_t *s, uint64_t off, size_t n)
{
	assert(n <= LOGFILE_SCAN_CHUNK_BYTES);
	if (off > s->size || s->size - off < n)
		return NULL;
	if (off >= s->buf_off && off + n <= s->buf_off + s->buf_len)
		return s->buf + (off - s->buf_off);
	size_t want = LOGFILE_SCAN_CHUNK_BYTES;
	if (s->size - off < want)
		want = (size_t)(s->size - off);
	size_t got = 0;
	while (got < want) {
		ssize_t r = pread(s->fd, s->buf + got, want - got, (off_t)(off + got));
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0) {
			s->err = r < 0 ? -errno : -EIO;
			s->buf_len = 0;
			return NULL;
		}
		got += (size_t)r;
	}
	s->buf_off = off;
	s->buf_len = got;
	return s->buf;
}

/*
 * Checks the record at off against the expected seq and prev hash. Returns
 * 1 with *next and out set when valid, 0 at the end of the file, -EBADMSG
 * when not valid (incomplete or failing a check).
 */
static int logfile_scan_record(logfile_scan_t *s, uint64_t off, uint64_t seq,
                               const uint8_t prev[LOGFILE_HASH_BYTES], uint64_t *next,
                               uint8_t out[LOGFILE_HASH_BYTES])
{
	if (off == s->size)
		return 0;
	const unsigned char *h = logfile_scan_get(s, off, LOGFILE_RECORD_HEAD_BYTES);
	if (!h)
		return -EBADMSG;
	uint32_t len = be_get_u32(h);
	if (len == 0 || len > LOGFILE_RECORD_BODY_MAX || be_get_u64(h + 4) != seq)
		return -EBADMSG;
	const unsigned char *r = logfile_scan_get(s, off, LOGFILE_RECORD_OVERHEAD + len);
	if (!r)
		return -EBADMSG;
	const unsigned char *stored = r + LOGFILE_RECORD_HEAD_BYTES + len;
	if (seq <= s->trust_to) { /* on the checkpoint's word, or checked after (check_chain) */
		memcpy(out, stored, LOGFILE_HASH_BYTES);
	} else {
		logfile_hash(prev, seq, r + LOGFILE_RECORD_HEAD_BYTES, len, out);
		if (memcmp(out, stored, LOGFILE_HASH_BYTES) != 0) /* public bytes: no need of
		                                                    * a constant-time compare */
			return -EBADMSG;
	}
	*next = off + LOGFILE_RECORD_OVERHEAD + len;
	return 1;
}

/* True when a complete record seq at w[p..] chains to prev (p counted from w). */
static bool logfile_record_chains(const unsigned char *w, size_t wlen, size_t p, uint64_t seq,
                                  const uint8_t prev[LOGFILE_HASH_BYTES])
{
	if (wlen - p < LOGFILE_RECORD_OVERHEAD || be_get_u64(w + p + 4) != seq)
		return false;
	uint32_t len = be_get_u32(w + p);
	if (len == 0 || len > LOGFILE_RECORD_BODY_MAX || wlen - p - LOGFILE_RECORD_OVERHEAD < len)
		return false;
	uint8_t h[LOGFILE_HASH_BYTES];
	logfile_hash(prev, seq, w + p + LOGFILE_RECORD_HEAD_BYTES, len, h);
	return sodium_memcmp(h, w + p + LOGFILE_RECORD_HEAD_BYTES + len, LOGFILE_HASH_BYTES) == 0;
}

/*
 * The bad record seq at off: is a complete valid record seq + 1 behind it?
 * (See the rules at the top.) True means damage, false a torn tail.
 */
static bool logfile_followed(logfile_scan_t *s, uint64_t off, uint64_t seq,
                             const uint8_t prev[LOGFILE_HASH_BYTES])
{
	size_t wlen = (size_t)(s->size - off < LOGFILE_RESYNC_BYTES ? s->size - off
	                                                              : LOGFILE_RESYNC_BYTES);
	const unsigned char *w = logfile_scan_get(s, off, wlen);
	if (!w)
		return false;
	/* The hash record seq would have with the body it has, if it is whole. */
	uint8_t own[LOGFILE_HASH_BYTES];
	size_t own_end = 0;
	uint32_t len = wlen >= LOGFILE_RECORD_OVERHEAD ? be_get_u32(w) : 0;
	if (len > 0 && len <= LOGFILE_RECORD_BODY_MAX && wlen - LOGFILE_RECORD_OVERHEAD >= len) {
		logfile_hash(prev, seq, w + LOGFILE_RECORD_HEAD_BYTES, len, own);
		own_end = LOGFILE_RECORD_OVERHEAD + len;
	}
	for (size_t p = LOGFILE_RECORD_OVERHEAD + 1; p + LOGFILE_RECORD_OVERHEAD <= wlen; p++) {
		if (p > LOGFILE_RECORD_BYTES_MAX)
			break;
		if (logfile_record_chains(w, wlen, p, seq + 1, w + p - LOGFILE_HASH_BYTES))
			return true;
		if (p == own_end && logfile_record_chains(w, wlen, p, seq + 1, own))
			return true;
	}
	return false;
}

/* --- opening ------------------------------------------------------------ */

static int logfile_index_push(logfile_t *lf, uint64_t off)
{
	if (lf->last_seq == lf->offsets_cap) {
		size_t cap = lf->offsets_cap ? lf->offsets_cap * 2 : LOGFILE_INDEX_MIN;
		uint64_t *n = realloc(lf->offsets, cap * sizeof(*n));
		if (!n)
			return -ENOMEM;
		lf->offsets = n;
		lf->offsets_cap = cap;
	}
	lf->offsets[lf->last_seq++] = off;
	return 0;
}

static int logfile_write_all(int fd, uint64_t at, const void *buf, size_t len)
{
	const char *p = buf;
	while (len > 0) {
		ssize_t n = pwrite(fd, p, len, (off_t)at);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (n == 0)
			return -EIO;
		p += n;
		at += (uint64_t)n;
		len -= (size_t)n;
	}
	return 0;
}

/*
 * Checks the header and sets lf->version; writes a version 2 header into a
 * new (or torn-while-created) file. Returns 0 when records may follow, 1 for
 * a read-only log without a whole header (empty), or a negative errno.
 */
static int logfile_check_header(logfile_t *lf, bool read_only, logfile_scan_t *s,
                                logfile_report_t *rep)
{
	unsigned char want[LOGFILE_HEADER_BYTES];
	logfile_header_bytes(want, LOGFILE_VERSION);
	size_t have = s->size < LOGFILE_HEADER_BYTES ? (size_t)s->size : LOGFILE_HEADER_BYTES;
	const unsigned char *h = logfile_scan_get(s, 0, have);
	if (!h)
		return s->err ? s->err : -EIO;
	if (memcmp(h, want, have < LOGFILE_MAGIC_BYTES ? have : LOGFILE_MAGIC_BYTES) != 0)
		return -EBADMSG;
	if (have == LOGFILE_HEADER_BYTES) {
		lf->version = logfile_header_version(h);
		return lf->version ? 0 : -EPROTONOSUPPORT;
	}
	if (memcmp(h, want, have) != 0)
		return -EPROTONOSUPPORT;
	lf->version = LOGFILE_VERSION;
	if (have > 0) {
		rep->torn_tail_cut = true;
		rep->torn_offset = 0;
		rep->torn_bytes = have;
	}
	if (read_only)
		return 1; /* an empty log; nothing to scan */
	s->size = LOGFILE_HEADER_BYTES;
	s->buf_len = 0;
	return logfile_write_all(lf->fd, 0, want, sizeof(want)); /* synced by the open */
}

/* Where the start-up scan stopped: the first thing not valid. */
typedef struct {
	uint64_t off;       /* the bad record, or (v2) the bad batch header */
	uint64_t seq;       /* the seq expected there */
	uint64_t batch_off; /* v2: the start of its batch (v1: off); the cut goes here */
	bool head_ok;       /* v2: that batch's header is valid, so end is known */
	uint64_t end;       /* v2: where that batch ends */
} logfile_stop_t;

/*
 * True when every byte from off to the end of the file is zero (v2: space
 * preallocated ahead of the log's end, or nothing at all). Stops reading at
 * the first non-zero byte, so a batch header (whose first_seq is non-zero)
 * costs a few bytes' look.
 */
static bool logfile_zero_from(logfile_scan_t *s, uint64_t off)
{
	while (off < s->size) {
		/* small looks, so that the window is refilled a chunk at a time */
		size_t n = s->size - off < LOGFILE_ZERO_LOOK_BYTES ? (size_t)(s->size - off)
		                                                    : LOGFILE_ZERO_LOOK_BYTES;
		const unsigned char *p = logfile_scan_get(s, off, n);
		if (!p)
			return false;
		for (size_t i = 0; i < n; i++)
			if (p[i] != 0)
				return false;
		off += n;
	}
	return true;
}

/* The scan took stored hashes up to the checkpoint: does it hold there? */
static int logfile_confirm(logfile_t *lf, logfile_scan_t *s, uint64_t end)
{
	s->trust_to = 0; /* the records after it are hashed */
	if (lf->last_seq != s->cp->seq || end != s->cp->end ||
	    sodium_memcmp(lf->head_hash, s->cp->hash, LOGFILE_HASH_BYTES) != 0)
		return -ESTALE;
	s->cp_confirmed = true;
	return 0;
}

/* Version 1: reads every record, building the index; stops at the first bad one. */
static int logfile_scan_v1(logfile_t *lf, logfile_scan_t *s, logfile_stop_t *st)
{
	uint64_t off = LOGFILE_HEADER_BYTES;
	for (;;) {
		uint8_t h[LOGFILE_HASH_BYTES];
		uint64_t next;
		int r = logfile_scan_record(s, off, lf->last_seq + 1, lf->head_hash, &next, h);
		if (s->err)
			return s->err;
		if (r <= 0) {
			*st = (logfile_stop_t){ .off = off, .seq = lf->last_seq + 1, .batch_off = off };
			return r;
		}
		if (logfile_index_push(lf, off) < 0)
			return -ENOMEM;
		memcpy(lf->head_hash, h, LOGFILE_HASH_BYTES);
		off = next;
		if (s->trust_to && lf->last_seq >= s->trust_to && logfile_confirm(lf, s, off) < 0)
			return -ESTALE;
	}
}

/* Version 2: indexes the records of batch b, from off to st->end; 0 or -EBADMSG. */
static int logfile_scan_batch(logfile_t *lf, logfile_scan_t *s, const logfile_batch_t *b,
                              uint64_t off, logfile_stop_t *st)
{
	while (off < st->end && lf->last_seq < b->last_seq) {
		uint8_t h[LOGFILE_HASH_BYTES];
		uint64_t next;
		int r = logfile_scan_record(s, off, lf->last_seq + 1, lf->head_hash, &next, h);
		if (s->err)
			return s->err;
		st->off = off;
		st->seq = lf->last_seq + 1;
		if (r <= 0 || next > st->end)
			return -EBADMSG;
		if (logfile_index_push(lf, off) < 0)
			return -ENOMEM;
		memcpy(lf->head_hash, h, LOGFILE_HASH_BYTES);
		off = next;
	}
	st->off = off;
	st->seq = lf->last_seq + 1;
	return off == st->end && lf->last_seq == b->last_seq ? 0 : -EBADMSG;
}

/* Version 2: reads batch after batch, building the index; stops at the
 * first bad one, whose records are left out of the index. */
static int logfile_scan_v2(logfile_t *lf, logfile_scan_t *s, logfile_stop_t *st)
{
	uint64_t off = LOGFILE_HEADER_BYTES;
	while (off < s->size) {
		logfile_batch_t b;
		if (logfile_zero_from(s, off)) {
			s->size = off; /* preallocated space: the end of the log */
			break;
		}
		const unsigned char *p = logfile_scan_get(s, off, LOGFILE_BATCH_HEAD_BYTES);
		if (s->err)
			return s->err;
		*st = (logfile_stop_t){ .off = off, .seq = lf->last_seq + 1, .batch_off = off };
		if (!p || !logfile_batch_decode(off, p, lf->last_seq + 1, &b))
			return -EBADMSG;
		st->head_ok = true;
		st->end = off + LOGFILE_BATCH_HEAD_BYTES + b.bytes;
		uint64_t seq0 = lf->last_seq;
		uint8_t head0[LOGFILE_HASH_BYTES];
		memcpy(head0, lf->head_hash, LOGFILE_HASH_BYTES);
		int r = logfile_scan_batch(lf, s, &b, off + LOGFILE_BATCH_HEAD_BYTES, st);
		if (r < 0) {
			lf->last_seq = seq0; /* a batch is kept or cut whole */
			memcpy(lf->head_hash, head0, LOGFILE_HASH_BYTES);
			return r;
		}
		if (s->trust_to && lf->last_seq >= s->trust_to && logfile_confirm(lf, s, st->end) < 0)
			return -ESTALE;
		off = st->end;
	}
	return 0;
}

/* Version 2, the batch at st->batch_off is bad: does a later batch follow it
 * (damage) or is it the file's last (a torn tail)? See the rules at the top. */
static bool logfile_v2_followed(const logfile_t *lf, logfile_scan_t *s, const logfile_stop_t *st)
{
	if (st->head_ok)
		return !logfile_zero_from(s, st->end);
	uint64_t off = st->batch_off + LOGFILE_BATCH_HEAD_BYTES;
	uint64_t seq = lf->last_seq + 1;
	uint8_t prev[LOGFILE_HASH_BYTES], h[LOGFILE_HASH_BYTES];
	memcpy(prev, lf->head_hash, LOGFILE_HASH_BYTES);
	for (uint64_t next; off < s->size; off = next, seq++) {
		if (logfile_scan_record(s, off, seq, prev, &next, h) != 1)
			break;
		memcpy(prev, h, LOGFILE_HASH_BYTES);
	}
	const unsigned char *p = logfile_scan_get(s, off, LOGFILE_BATCH_HEAD_BYTES);
	logfile_batch_t b;
	return p && logfile_batch_decode(off, p, seq, &b);
}

/* After the scan stopped at *st: torn tail (cut it) or damage. */
static int logfile_settle_tail(logfile_t *lf, logfile_scan_t *s, bool read_only,
                               const logfile_stop_t *st, logfile_report_t *rep)
{
	bool damage = lf->version == LOGFILE_VERSION_1
	                  ? logfile_followed(s, st->off, st->seq, lf->head_hash)
	                  : logfile_v2_followed(lf, s, st);
	if (s->err)
		return s->err;
	if (damage) {
		rep->damage_seq = st->seq;
		rep->damage_offset = st->head_ok ? st->off : st->batch_off;
		return -EBADMSG;
	}
	rep->torn_tail_cut = true;
	rep->torn_offset = st->batch_off;
	rep->torn_bytes = s->size - st->batch_off;
	rep->torn_seq = lf->last_seq + 1;
	s->size = st->batch_off;
	if (read_only)
		return 0;
	return ftruncate(lf->fd, (off_t)st->batch_off) < 0 ? -errno : 0; /* synced by the open */
}

/* A writer's last step: what it scanned, and the cut, on stable storage. */
static int logfile_make_durable(logfile_t *lf, const char *dir, logfile_report_t *rep)
{
	int r = fdatasync(lf->fd) < 0 ? -errno : fileio_fsync_dir(dir);
	rep->not_durable = r < 0;
	return r;
}

static int logfile_open_fd(logfile_t *lf, bool read_only)
{
	int flags = read_only ? O_RDONLY : O_RDWR | O_CREAT;
	lf->fd = open(lf->path, flags | O_CLOEXEC, 0600);
	if (lf->fd < 0)
		return -errno;
	if (!read_only && flock(lf->fd, LOCK_EX | LOCK_NB) < 0)
		return errno == EWOULDBLOCK ? -EAGAIN : -errno;
	return 0;
}

static int logfile_scan_version(logfile_t *lf, logfile_scan_t *s, logfile_stop_t *stop)
{
	return lf->version == LOGFILE_VERSION_1 ? logfile_scan_v1(lf, s, stop)
	                                        : logfile_scan_v2(lf, s, stop);
}

static int logfile_check_chain(const logfile_t *lf);

/* Forgets what a scan found, for another from the start. */
static void logfile_scan_restart(logfile_t *lf, logfile_scan_t *s, logfile_stop_t *stop,
                                 const struct stat *st)
{
	lf->last_seq = 0;
	memset(lf->head_hash, 0, LOGFILE_HASH_BYTES);
	*stop = (logfile_stop_t){ 0 };
	s->size = (uint64_t)st->st_size;
	s->cp = NULL;
	s->trust_to = 0;
}

/*
 * The split check: every record and batch but the hashes first (one
 * thread: cheap), then the hashes in threads (logfile_check_chain). 0 when
 * the whole file is valid (1: its layout is, and overlap asked to leave the
 * hashes of a long log to the overlapped check); -EBADMSG when anything is not (the caller then
 * checks again the classic way, record by record, to tell a torn tail from
 * damage and name the first bad record); or a negative errno.
 */
static int logfile_scan_split(logfile_t *lf, logfile_scan_t *s, logfile_stop_t *stop,
                              bool overlap)
{
	s->trust_to = UINT64_MAX;
	int r = logfile_scan_version(lf, s, stop);
	s->trust_to = 0;
	if (r < 0)
		return s->err ? s->err : r;
	lf->size_bytes = s->size;
	if (overlap && lf->last_seq >= LOGFILE_CHECK_OVERLAP_MIN)
		return 1; /* the hashes are the overlapped check's (logfile_check_start) */
	return logfile_check_chain(lf);
}

/*
 * A writer's scan: first on the word of a checkpoint that matches the file
 * (logcheckpoint.c), else the split check; unless that found nothing
 * wrong, again from the start hashing record after record.
 */
static int logfile_scan_writer(logfile_t *lf, logfile_scan_t *s, logfile_stop_t *stop,
                               const struct stat *st, bool overlap)
{
	logcheckpoint_t cp;
	int r;
	if (logcheckpoint_load(lf->path, st, &cp) == 0) {
		s->cp = &cp;
		s->trust_to = cp.seq;
		r = logfile_scan_version(lf, s, stop);
		if (r == 0 && s->cp_confirmed) {
			lf->checkpoint_seq = cp.seq;
			return 0;
		}
		if (s->err)
			return s->err;
	} else {
		r = logfile_scan_split(lf, s, stop, overlap);
		if (r != -EBADMSG)
			return r;
	}
	logfile_scan_restart(lf, s, stop, st);
	return logfile_scan_version(lf, s, stop);
}

int logfile_save_checkpoint(const logfile_t *lf)
{
	assert(lf && lf->fd >= 0);
	if (lf->last_seq == 0)
		return 0;
	logcheckpoint_t cp = { .seq = lf->last_seq, .end = lf->size_bytes };
	memcpy(cp.hash, lf->head_hash, LOGFILE_HASH_BYTES);
	return logcheckpoint_save(lf->path, lf->fd, &cp);
}

/* Where the scan s of the file (stat st) left the log's end; with zeros_stay
 * the zeroed tail after it stays part of the file. */
static void logfile_set_end(logfile_t *lf, const logfile_scan_t *s, const struct stat *st,
                            bool zeros_stay)
{
	lf->size_bytes = s->size;
	lf->file_bytes = s->size;
	if (zeros_stay && (uint64_t)st->st_size > s->size)
		lf->file_bytes = (uint64_t)st->st_size; /* the zeroed tail stays */
}

/* The check of an opened file: 0; 1 (overlap) when only the layout of a long
 * log was checked; or a negative errno. */
static int logfile_verify(logfile_t *lf, const char *dir, bool read_only, bool overlap,
                          logfile_report_t *rep)
{
	struct stat st;
	if (fstat(lf->fd, &st) < 0)
		return -errno;
	logfile_scan_t s = { .fd = lf->fd, .size = (uint64_t)st.st_size };
	s.buf = malloc(LOGFILE_SCAN_CHUNK_BYTES);
	if (!s.buf)
		return -ENOMEM;
	int r = logfile_check_header(lf, read_only, &s, rep);
	if (r == 1) {
		r = 0;
	} else if (r == 0) {
		logfile_stop_t stop = { 0 };
		r = read_only ? logfile_scan_version(lf, &s, &stop)
		              : logfile_scan_writer(lf, &s, &stop, &st, overlap);
		if (r == -EBADMSG)
			r = logfile_settle_tail(lf, &s, read_only, &stop, rep);
	}
	logfile_set_end(lf, &s, &st, r >= 0 && !rep->torn_tail_cut);
	free(s.buf);
	if (r >= 0 && !read_only) {
		int d = logfile_make_durable(lf, dir, rep);
		r = d < 0 ? d : r;
	}
	return r;
}

/* logfile_open(), or with overlap 1 for a long log whose layout only was
 * checked (logfile_open_overlapped). */
static int logfile_open_as(logfile_t *lf, const char *dir, bool read_only, bool overlap,
                           logfile_report_t *rep)
{
	assert(lf && dir && rep);
	memset(lf, 0, sizeof(*lf));
	memset(rep, 0, sizeof(*rep));
	lf->fd = -1;
	if (sodium_init() < 0)
		return -ENOSYS;
	lf->path = logfile_path(dir);
	if (!lf->path)
		return -ENOMEM;
	int r = logfile_open_fd(lf, read_only);
	if (r == 0)
		r = logfile_verify(lf, dir, read_only, overlap, rep);
	if (r < 0)
		logfile_close(lf);
	return r;
}

int logfile_open(logfile_t *lf, const char *dir, bool read_only, logfile_report_t *rep)
{
	return logfile_open_as(lf, dir, read_only, false, rep);
}

void logfile_close(logfile_t *lf)
{
	if (lf->fd >= 0)
		close(lf->fd);
	free(lf->path);
	free(lf->offsets);
	memset(lf, 0, sizeof(*lf));
	lf->fd = -1;
}

/* --- appending ------------------------------------------------------------ */

static bool logfile_is_one_map(const char *body, size_t len)
{
	msgpack_zone zone;
	msgpack_object obj;
	size_t off = 0;
	/* msg_check() first: a body whose headers declare huge containers must
	 * not make msgpack-c allocate from those counts (see msg.c) */
	if (msg_check(body, len) < 0 || !msgpack_zone_init(&zone, 1024))
		return false;
	msgpack_unpack_return r = msgpack_unpack(body, len, &off, &zone, &obj);
	bool ok = r == MSGPACK_UNPACK_SUCCESS && off == len && obj.type == MSGPACK_OBJECT_MAP;
	msgpack_zone_destroy(&zone);
	return ok;
}

static int logfile_reserve(char **out, size_t *out_len, size_t *out_cap, size_t more)
{
	if (*out_cap - *out_len >= more)
		return 0;
	size_t cap = *out_cap ? *out_cap : LOGFILE_RECORD_BYTES_MAX;
	while (cap - *out_len < more)
		cap *= 2;
	char *n = realloc(*out, cap);
	if (!n)
		return -ENOMEM;
	*out = n;
	*out_cap = cap;
	return 0;
}

int logfile_check_bodies(const msgpack_object *evs)
{
	if (!evs || evs->type != MSGPACK_OBJECT_ARRAY)
		return -EINVAL;
	for (uint32_t i = 0; i < evs->via.array.size; i++) {
		const msgpack_object *e = &evs->via.array.ptr[i];
		if (e->type != MSGPACK_OBJECT_BIN || e->via.bin.size == 0 ||
		    e->via.bin.size > LOGFILE_RECORD_BODY_MAX)
			return -EINVAL;
	}
	return 0;
}

int logfile_encode(uint64_t seq, const char *body, size_t body_len,
                   uint8_t chain[LOGFILE_HASH_BYTES],
                   char **out, size_t *out_len, size_t *out_cap)
{
	assert(body && chain && out && out_len && out_cap);
	if (seq == 0 || body_len == 0)
		return -EINVAL;
	if (body_len > LOGFILE_RECORD_BODY_MAX)
		return -E2BIG;
	if (!logfile_is_one_map(body, body_len))
		return -EINVAL;
	if (sodium_init() < 0)
		return -ENOSYS;
	int r = logfile_reserve(out, out_len, out_cap, LOGFILE_RECORD_OVERHEAD + body_len);
	if (r < 0)
		return r;
	unsigned char *p = (unsigned char *)*out + *out_len;
	be_put_u32(p, (uint32_t)body_len);
	be_put_u64(p + 4, seq);
	memcpy(p + LOGFILE_RECORD_HEAD_BYTES, body, body_len);
	logfile_hash(chain, seq, body, (uint32_t)body_len, chain);
	memcpy(p + LOGFILE_RECORD_HEAD_BYTES + body_len, chain, LOGFILE_HASH_BYTES);
	*out_len += LOGFILE_RECORD_OVERHEAD + body_len;
	return 0;
}

/* The seq of the last record of the encoded records buf[0..len). */
static uint64_t logfile_last_seq_of(const char *buf, size_t len)
{
	const unsigned char *p = (const unsigned char *)buf;
	size_t pos = 0, rec = 0;
	while (pos < len) {
		assert(len - pos >= LOGFILE_RECORD_OVERHEAD);
		rec = pos;
		pos += LOGFILE_RECORD_OVERHEAD + be_get_u32(p + pos);
	}
	assert(pos == len);
	return be_get_u64(p + rec + 4);
}

/* Writes the batch header and the records at at with one pwritev (the rest
 * with pwrite if it came short). */
static int logfile_write_batch(int fd, uint64_t at, const char *buf, size_t len)
{
	const unsigned char *p = (const unsigned char *)buf;
	logfile_batch_t b = { .first_seq = be_get_u64(p + 4), .bytes = len,
	                      .last_seq = logfile_last_seq_of(buf, len) };
	unsigned char head[LOGFILE_BATCH_HEAD_BYTES];
	logfile_batch_encode(at, &b, head);
	struct iovec iov[2] = { { head, sizeof(head) }, { (void *)buf, len } };
	ssize_t n;
	do
		n = pwritev(fd, iov, 2, (off_t)at);
	while (n < 0 && errno == EINTR);
	if (n < 0)
		return -errno;
	size_t done = (size_t)n;
	int r = 0;
	if (done < sizeof(head))
		r = logfile_write_all(fd, at + done, head + done, sizeof(head) - done);
	size_t body_done = done > sizeof(head) ? done - sizeof(head) : 0;
	if (r == 0 && body_done < len)
		r = logfile_write_all(fd, at + sizeof(head) + body_done, buf + body_done,
		                      len - body_done);
	return r;
}

int logfile_write(const logfile_t *lf, uint64_t at, const char *buf, size_t len)
{
	assert(lf && lf->fd >= 0 && buf && len > 0);
	int fd = lf->fd;
	int r = lf->version == LOGFILE_VERSION_1 ? logfile_write_all(fd, at, buf, len)
	                                         : logfile_write_batch(fd, at, buf, len);
	if (r == 0 && fdatasync(fd) < 0)
		r = -errno;
	if (r < 0) {
		/* Best effort: a leftover tail is cut at the next open anyway. */
		while (ftruncate(fd, (off_t)at) < 0 && errno == EINTR)
			;
	}
	return r;
}

uint64_t logfile_batch_end(const logfile_t *lf, uint64_t at, size_t len)
{
	return at + len + (lf->version == LOGFILE_VERSION_2 ? LOGFILE_BATCH_HEAD_BYTES : 0);
}

int logfile_zero_fill(const logfile_t *lf, uint64_t from, uint64_t to)
{
	assert(lf && lf->fd >= 0 && lf->version == LOGFILE_VERSION_2 && from <= to);
	static const char zeros[LOGFILE_ZERO_WRITE_BYTES];
	/* Reserve the blocks first (one extent, no ENOSPC half way); a file
	 * system without fallocate still gets the zeros written. */
	if (fallocate(lf->fd, 0, (off_t)from, (off_t)(to - from)) < 0 && errno != EOPNOTSUPP)
		return -errno;
	for (uint64_t at = from; at < to;) {
		size_t n = to - at < sizeof(zeros) ? (size_t)(to - at) : sizeof(zeros);
		int r = logfile_write_all(lf->fd, at, zeros, n);
		if (r < 0)
			return r;
		at += n;
	}
	return fdatasync(lf->fd) < 0 ? -errno : 0;
}

int logfile_trim(const logfile_t *lf)
{
	assert(lf && lf->fd >= 0);
	struct stat st;
	if (fstat(lf->fd, &st) < 0)
		return -errno;
	if ((uint64_t)st.st_size <= lf->size_bytes)
		return 0;
	if (ftruncate(lf->fd, (off_t)lf->size_bytes) < 0 || fdatasync(lf->fd) < 0)
		return -errno;
	return 0;
}

int logfile_commit(logfile_t *lf, const char *buf, size_t len, uint64_t last_seq,
                   const uint8_t head[LOGFILE_HASH_BYTES])
{
	assert(lf && buf && last_seq >= lf->last_seq);
	uint64_t base = lf->size_bytes;
	if (lf->version == LOGFILE_VERSION_2)
		base += LOGFILE_BATCH_HEAD_BYTES;
	size_t pos = 0;
	while (pos < len) {
		const unsigned char *p = (const unsigned char *)buf + pos;
		assert(len - pos >= LOGFILE_RECORD_OVERHEAD);
		assert(be_get_u64(p + 4) == lf->last_seq + 1);
		if (logfile_index_push(lf, base + pos) < 0)
			return -ENOMEM;
		pos += LOGFILE_RECORD_OVERHEAD + be_get_u32(p);
	}
	assert(pos == len && lf->last_seq == last_seq);
	lf->size_bytes = base + len;
	memcpy(lf->head_hash, head, LOGFILE_HASH_BYTES);
	return 0;
}

/* --- reading ---------------------------------------------------------------- */

/* Byte offset of record seq, or of the end for seq == last_seq + 1. */
static uint64_t logfile_offset(const logfile_t *lf, uint64_t seq)
{
	assert(seq >= 1 && seq <= lf->last_seq + 1);
	return seq > lf->last_seq ? lf->size_bytes : lf->offsets[seq - 1];
}

static int logfile_pread_all(int fd, uint64_t at, char *buf, size_t len)
{
	while (len > 0) {
		ssize_t n = pread(fd, buf, len, (off_t)at);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return n < 0 ? -errno : -EIO;
		buf += n;
		at += (uint64_t)n;
		len -= (size_t)n;
	}
	return 0;
}

/* Records seq..end-1 that fit one read chunk: returns how many (>= 1). */
static uint64_t logfile_chunk_records(const logfile_t *lf, uint64_t seq, uint64_t end)
{
	uint64_t base = logfile_offset(lf, seq);
	uint64_t n = 1;
	while (seq + n < end && logfile_offset(lf, seq + n + 1) - base <= LOGFILE_READ_CHUNK_BYTES)
		n++;
	return n;
}

/* What a read has taken so far. */
typedef struct {
	size_t max_bytes;
	size_t bytes;
	long count;
	int (*cb)(uint64_t seq, const char *body, size_t len, void *arg);
	void *arg;
} logfile_reader_t;

/* Hands the n records from seq held in buf (read from base) to the callback:
 * 0 to go on, 1 to stop, -EIO if the file changed under us. */
static int logfile_deliver(const logfile_t *lf, const char *buf, uint64_t base, uint64_t seq,
                           uint64_t n, logfile_reader_t *rd)
{
	for (uint64_t i = 0; i < n; i++, seq++) {
		const char *p = buf + (logfile_offset(lf, seq) - base);
		const unsigned char *u = (const unsigned char *)p;
		uint32_t len = be_get_u32(u);
		if (be_get_u64(u + 4) != seq)
			return -EIO;
		if (len > rd->max_bytes - rd->bytes)
			return 1;
		if (rd->cb(seq, p + LOGFILE_RECORD_HEAD_BYTES, len, rd->arg) != 0)
			return 1;
		rd->count++;
		rd->bytes += len;
	}
	return 0;
}

long logfile_read(const logfile_t *lf, uint64_t from_seq, size_t max_events, size_t max_bytes,
                  int (*cb)(uint64_t seq, const char *body, size_t len, void *arg), void *arg)
{
	assert(lf && cb);
	if (from_seq == 0)
		from_seq = 1;
	if (from_seq > lf->last_seq || max_events == 0)
		return 0;
	uint64_t end = lf->last_seq + 1;
	if (end - from_seq > max_events)
		end = from_seq + max_events;
	char *buf = malloc(LOGFILE_READ_CHUNK_BYTES);
	if (!buf)
		return -ENOMEM;
	logfile_reader_t rd = { .max_bytes = max_bytes, .cb = cb, .arg = arg };
	int r = 0;
	for (uint64_t seq = from_seq; seq < end && r == 0;) {
		uint64_t n = logfile_chunk_records(lf, seq, end);
		uint64_t base = logfile_offset(lf, seq);
		r = logfile_pread_all(lf->fd, base, buf, logfile_offset(lf, seq + n) - base);
		if (r == 0)
			r = logfile_deliver(lf, buf, base, seq, n, &rd);
		seq += n;
	}
	free(buf);
	return r < 0 ? r : rd.count;
}

bool logfile_hash_at(const logfile_t *lf, uint64_t seq, uint8_t out[LOGFILE_HASH_BYTES])
{
	assert(lf && out);
	if (seq > lf->last_seq)
		return false;
	if (seq == 0) {
		memset(out, 0, LOGFILE_HASH_BYTES);
		return true;
	}
	if (seq == lf->last_seq) {
		memcpy(out, lf->head_hash, LOGFILE_HASH_BYTES);
		return true;
	}
	/* A record's hash is its last 32 bytes (in v2 a batch header may follow). */
	unsigned char len[4];
	uint64_t at = logfile_offset(lf, seq);
	if (logfile_pread_all(lf->fd, at, (char *)len, sizeof(len)) < 0)
		return false;
	at += LOGFILE_RECORD_HEAD_BYTES + be_get_u32(len);
	return logfile_pread_all(lf->fd, at, (char *)out, LOGFILE_HASH_BYTES) == 0;
}

int logfile_view(const logfile_t *lf, logfile_t *out)
{
	assert(lf && out);
	*out = *lf;
	out->path = NULL;
	out->offsets = malloc((lf->last_seq ? lf->last_seq : 1) * sizeof(*out->offsets));
	if (!out->offsets)
		return -ENOMEM;
	memcpy(out->offsets, lf->offsets, lf->last_seq * sizeof(*out->offsets));
	out->offsets_cap = lf->last_seq;
	return 0;
}

void logfile_view_free(logfile_t *view)
{
	free(view->offsets);
	memset(view, 0, sizeof(*view));
	view->fd = -1;
}

/* --- the split check's hashes, in threads (a writer's start-up) ---------- */

/* One thread's share: records from..to - 1. */
typedef struct {
	const logfile_t *lf;
	uint64_t from, to;
	bool bad;  /* a record's hash is not the chain's */
	int err;   /* a read failed: negative errno */
	bool inline_run; /* no thread could be started: the caller runs it */
	uv_thread_t tid;
} logfile_hasher_t;

/* Hashes each record of a chunk read from base on the stored hash before
 * it (*prev, updated) and compares it with its own: false at the first that
 * differs. */
static bool logfile_chunk_chains(const logfile_t *lf, const char *buf, uint64_t base,
                                 uint64_t seq, uint64_t n, uint8_t prev[LOGFILE_HASH_BYTES],
                                 uint32_t *last_len)
{
	uint8_t mine[LOGFILE_HASH_BYTES];
	for (uint64_t i = 0; i < n; i++) {
		const unsigned char *p =
			(const unsigned char *)buf + (logfile_offset(lf, seq + i) - base);
		uint32_t len = be_get_u32(p);
		*last_len = len;
		const unsigned char *stored = p + LOGFILE_RECORD_HEAD_BYTES + len;
		logfile_hash(prev, seq + i, p + LOGFILE_RECORD_HEAD_BYTES, len, mine);
		if (memcmp(mine, stored, LOGFILE_HASH_BYTES) != 0)
			return false;
		memcpy(prev, stored, LOGFILE_HASH_BYTES);
	}
	return true;
}

/*
 * Hashes records from..to - 1 of lf on the stored hash before from, read a
 * chunk at a time into buf (LOGFILE_READ_CHUNK_BYTES). 0 and the last
 * record's hash in prev and its length in *last_len; -EBADMSG at the first
 * that does not match; or a negative errno.
 */
static int logfile_hash_range(const logfile_t *lf, uint64_t from, uint64_t to, char *buf,
                              uint8_t prev[LOGFILE_HASH_BYTES], uint32_t *last_len)
{
	if (!logfile_hash_at(lf, from - 1, prev))
		return -EIO;
	for (uint64_t seq = from; seq < to;) {
		uint64_t n = logfile_chunk_records(lf, seq, to);
		uint64_t base = logfile_offset(lf, seq);
		int r = logfile_pread_all(lf->fd, base, buf, logfile_offset(lf, seq + n) - base);
		if (r < 0)
			return r;
		if (!logfile_chunk_chains(lf, buf, base, seq, n, prev, last_len))
			return -EBADMSG;
		seq += n;
	}
	return 0;
}

/* A thread's work: records h->from..h->to - 1, read a chunk at a time. */
static void logfile_hasher_run(void *arg)
{
	logfile_hasher_t *h = arg;
	uint8_t prev[LOGFILE_HASH_BYTES];
	uint32_t len;
	char *buf = malloc(LOGFILE_READ_CHUNK_BYTES);
	int r = buf ? logfile_hash_range(h->lf, h->from, h->to, buf, prev, &len) : -ENOMEM;
	h->bad = r == -EBADMSG;
	h->err = r == -EBADMSG ? 0 : r;
	free(buf);
}

/* How many threads hash a log of n records. */
static size_t logfile_hashers(uint64_t n)
{
	long cpus = sysconf(_SC_NPROCESSORS_ONLN);
	if (n < LOGFILE_CHECK_PARALLEL_MIN || cpus < 2)
		return 1;
	return cpus > LOGFILE_CHECK_THREADS_MAX ? LOGFILE_CHECK_THREADS_MAX : (size_t)cpus;
}

/*
 * The chain of lf's records 1..last_seq, whose layout was checked but whose
 * stored hashes were taken on trust: record s's hash is computed on the
 * STORED hash of s - 1, so the records split into independent shares, one
 * per thread (the caller runs the first). Every record matching on its
 * predecessor's stored hash is, step by step from seq 1, the chain the
 * classic check computes. 0; -EBADMSG when some record does not match (the
 * caller checks again the classic way); or a negative errno.
 */
static int logfile_check_chain(const logfile_t *lf)
{
	logfile_hasher_t hs[LOGFILE_CHECK_THREADS_MAX];
	size_t n = logfile_hashers(lf->last_seq);
	uint64_t share = lf->last_seq / n;
	for (size_t i = 0; i < n; i++) {
		hs[i] = (logfile_hasher_t){ .lf = lf, .from = 1 + i * share,
			                    .to = i + 1 == n ? lf->last_seq + 1 : 1 + (i + 1) * share };
		hs[i].inline_run = i > 0 && uv_thread_create(&hs[i].tid, logfile_hasher_run, &hs[i]) != 0;
	}
	int r = 0;
	for (size_t i = 0; i < n; i++) {
		if (i == 0 || hs[i].inline_run)
			logfile_hasher_run(&hs[i]);
		else
			uv_thread_join(&hs[i].tid);
	}
	for (size_t i = 0; i < n; i++) {
		if (hs[i].err && !r)
			r = hs[i].err;
		if (hs[i].bad && !r)
			r = -EBADMSG;
	}
	return r;
}

/* --- the overlapped check (a writer's start-up, logfile_open_overlapped) -- */

/*
 * The layout of a long log was checked (every record's framing and seq,
 * every batch header), its hashes not yet. Threads take chunks of
 * LOGFILE_CHECK_CHUNK_RECORDS records in order and hash each on the stored
 * hash before it, as logfile_check_chain does; the loop thread's
 * logfile_check_advance() moves lf's end over the chunks verified in order
 * from the start, so lf (its reads, its hash_at) never reaches a record
 * whose chain from seq 1 was not computed. A chunk that does not match
 * stops the threads; once they are joined the whole file is checked again
 * the classic way (logfile_settle_tail: a torn tail cut, or damage), as
 * logfile_open() does. While the check runs, lf's index past last_seq
 * (shared with c->view, the whole layout) is read by the threads and not
 * changed by anyone.
 */
#define LOGFILE_CHECK_CHUNK_RECORDS 16384

enum { LOGFILE_CHUNK_TODO, LOGFILE_CHUNK_OK, LOGFILE_CHUNK_BAD };

/* One chunk's result, written by the thread that hashed it (before its
 * state is stored, with release), read by the loop thread. */
typedef struct {
	atomic_int state;
	int err;       /* LOGFILE_CHUNK_BAD: -EBADMSG or the read's errno */
	uint64_t end;  /* where its last record ends */
	uint8_t hash[LOGFILE_HASH_BYTES]; /* its last record's hash */
} logfile_chunk_t;

struct logfile_check {
	logfile_t view;        /* the whole layout; offsets are lf's, not owned */
	char *dir;
	uint64_t nchunks;
	logfile_chunk_t *chunks;
	uint64_t verified;     /* chunks verified in order from the first (loop thread) */
	atomic_uint_fast64_t next; /* the next chunk a thread takes */
	atomic_bool stop;      /* a chunk did not match, or the caller aborts */
	atomic_int running;    /* threads not yet finished */
	size_t nthreads;
	uv_thread_t tids[LOGFILE_CHECK_THREADS_MAX];
	void (*progress_cb)(void *arg);
	void *arg;
};

static void logfile_check_chunk(logfile_check_t *c, uint64_t i, char *buf)
{
	logfile_chunk_t *k = &c->chunks[i];
	uint64_t from = 1 + i * LOGFILE_CHECK_CHUNK_RECORDS;
	uint64_t to = i + 1 == c->nchunks ? c->view.last_seq + 1 : from + LOGFILE_CHECK_CHUNK_RECORDS;
	uint32_t len = 0;
	int r = buf ? logfile_hash_range(&c->view, from, to, buf, k->hash, &len) : -ENOMEM;
	k->err = r;
	k->end = logfile_offset(&c->view, to - 1) + LOGFILE_RECORD_OVERHEAD + len;
	if (r < 0)
		atomic_store(&c->stop, true);
	atomic_store_explicit(&k->state, r < 0 ? LOGFILE_CHUNK_BAD : LOGFILE_CHUNK_OK,
	                      memory_order_release);
}

static void logfile_check_thread(void *arg)
{
	logfile_check_t *c = arg;
	char *buf = malloc(LOGFILE_READ_CHUNK_BYTES);
	for (;;) {
		uint64_t i = atomic_fetch_add(&c->next, 1);
		if (i >= c->nchunks || atomic_load(&c->stop))
			break;
		logfile_check_chunk(c, i, buf);
		c->progress_cb(c->arg);
	}
	free(buf);
	atomic_fetch_sub(&c->running, 1);
	c->progress_cb(c->arg); /* the loop may be waiting for the last to stop */
}

static void logfile_check_free(logfile_check_t *c)
{
	atomic_store(&c->stop, true);
	for (size_t i = 0; i < c->nthreads; i++)
		uv_thread_join(&c->tids[i]);
	free(c->chunks);
	free(c->dir);
	free(c);
}

/* lf, fully indexed, becomes the empty verified prefix; the threads start. */
static int logfile_check_start(logfile_t *lf, const char *dir, void (*progress_cb)(void *arg),
                               void *arg, logfile_check_t **out)
{
	logfile_check_t *c = calloc(1, sizeof(*c));
	if (!c)
		return -ENOMEM;
	c->view = *lf;
	c->view.path = NULL;
	c->nchunks = (lf->last_seq + LOGFILE_CHECK_CHUNK_RECORDS - 1) / LOGFILE_CHECK_CHUNK_RECORDS;
	c->chunks = calloc(c->nchunks, sizeof(*c->chunks));
	c->dir = strdup(dir);
	c->progress_cb = progress_cb;
	c->arg = arg;
	if (!c->chunks || !c->dir) {
		logfile_check_free(c);
		return -ENOMEM;
	}
	lf->last_seq = 0;
	memset(lf->head_hash, 0, LOGFILE_HASH_BYTES);
	lf->size_bytes = LOGFILE_HEADER_BYTES;
	size_t want = logfile_hashers(c->view.last_seq);
	atomic_store(&c->running, (int)want);
	for (size_t i = 0; i < want; i++) {
		if (uv_thread_create(&c->tids[c->nthreads], logfile_check_thread, c) == 0)
			c->nthreads++;
		else
			atomic_fetch_sub(&c->running, 1);
	}
	if (c->nthreads == 0) {
		*lf = c->view; /* lf's own again, whole, for the caller to close */
		lf->path = NULL;
		logfile_check_free(c);
		return -EAGAIN;
	}
	*out = c;
	return 0;
}

int logfile_open_overlapped(logfile_t *lf, const char *dir, logfile_report_t *rep,
                            void (*progress_cb)(void *arg), void *arg, logfile_check_t **out)
{
	assert(lf && dir && rep && progress_cb && out);
	*out = NULL;
	int r = logfile_open_as(lf, dir, false, true, rep);
	if (r != 1)
		return r;
	char *path = lf->path;
	r = logfile_check_start(lf, dir, progress_cb, arg, out);
	lf->path = path;
	if (r < 0)
		logfile_close(lf);
	return r;
}

/* Moves lf's end over the chunks verified in order; the first bad one's
 * index, or c->nchunks when none is known. */
static uint64_t logfile_check_take(logfile_t *lf, logfile_check_t *c)
{
	while (c->verified < c->nchunks) {
		const logfile_chunk_t *k = &c->chunks[c->verified];
		int st = atomic_load_explicit(&k->state, memory_order_acquire);
		if (st == LOGFILE_CHUNK_BAD)
			return c->verified;
		if (st == LOGFILE_CHUNK_TODO)
			break;
		c->verified++;
		uint64_t last = c->verified * LOGFILE_CHECK_CHUNK_RECORDS;
		lf->last_seq = last < c->view.last_seq ? last : c->view.last_seq;
		lf->size_bytes = k->end;
		memcpy(lf->head_hash, k->hash, LOGFILE_HASH_BYTES);
	}
	return c->nchunks;
}

/* A chunk did not match: the whole file again, record after record, as
 * logfile_open() would (the threads are joined). 0 or a negative errno. */
static int logfile_check_classic(logfile_t *lf, const char *dir, logfile_report_t *rep)
{
	struct stat st;
	if (fstat(lf->fd, &st) < 0)
		return -errno;
	logfile_scan_t s = { .fd = lf->fd };
	logfile_stop_t stop;
	s.buf = malloc(LOGFILE_SCAN_CHUNK_BYTES);
	if (!s.buf)
		return -ENOMEM;
	logfile_scan_restart(lf, &s, &stop, &st);
	int r = logfile_scan_version(lf, &s, &stop);
	if (r == -EBADMSG)
		r = logfile_settle_tail(lf, &s, false, &stop, rep);
	logfile_set_end(lf, &s, &st, r == 0 && !rep->torn_tail_cut);
	free(s.buf);
	return r == 0 ? logfile_make_durable(lf, dir, rep) : r;
}

int logfile_check_advance(logfile_t *lf, logfile_check_t *c, logfile_report_t *rep)
{
	assert(lf && c && rep);
	memset(rep, 0, sizeof(*rep));
	uint64_t bad = logfile_check_take(lf, c);
	if (c->verified == c->nchunks) {
		lf->last_seq = c->view.last_seq;
		lf->size_bytes = c->view.size_bytes;
		memcpy(lf->head_hash, c->view.head_hash, LOGFILE_HASH_BYTES);
		logfile_check_free(c);
		return 1;
	}
	if (bad == c->nchunks || atomic_load(&c->running) > 0)
		return 0; /* more to come, or the last thread's stop to wait for */
	int err = c->chunks[bad].err;
	const char *dir = c->dir;
	c->dir = NULL;
	logfile_check_free(c);
	int r = err == -EBADMSG ? logfile_check_classic(lf, dir, rep) : err;
	free((void *)dir);
	return r < 0 ? r : 1;
}

uint64_t logfile_check_end(const logfile_check_t *c)
{
	return c->view.last_seq;
}

void logfile_check_abort(logfile_check_t *c)
{
	if (c)
		logfile_check_free(c);
}

/* --- checking the whole file (logfile_scan) ------------------------------ */

#define LOGFILE_TAIL_WAITS 3

const char *logfile_problem_text(logfile_problem_t p)
{
	switch (p) {
	case LOGFILE_PROBLEM_NONE: return "no problem";
	case LOGFILE_PROBLEM_HEADER: return "the file header is not an esbank log's";
	case LOGFILE_PROBLEM_TRUNCATED: return "the file ends inside the record";
	case LOGFILE_PROBLEM_LENGTH: return "the record's length is out of range";
	case LOGFILE_PROBLEM_SEQ: return "the record has the wrong sequence number";
	case LOGFILE_PROBLEM_HASH: return "the record's hash does not chain";
	case LOGFILE_PROBLEM_BATCH: return "the batch header is not valid or does not fit its records";
	}
	return "unknown problem";
}

/* A record is cut short at the end: true when the file grew meanwhile. */
static bool logfile_tail_grew(logfile_scan_t *s)
{
	for (int i = 0; i < LOGFILE_TAIL_WAITS; i++) {
		struct timespec ts = { 0, LOGFILE_TAIL_WAIT_MS / LOGFILE_TAIL_WAITS * 1000000L };
		nanosleep(&ts, NULL);
		struct stat st;
		if (fstat(s->fd, &st) == 0 && (uint64_t)st.st_size > s->size) {
			s->size = (uint64_t)st.st_size;
			s->buf_len = 0; /* the window may hold the short read */
			return true;
		}
	}
	return false;
}

/* The n bytes at off, waiting for a writer once they are past the end. */
static const unsigned char *logfile_scan_need(logfile_scan_t *s, uint64_t off, size_t n)
{
	const unsigned char *p = logfile_scan_get(s, off, n);
	while (!p && !s->err && off + n > s->size && logfile_tail_grew(s))
		p = logfile_scan_get(s, off, n);
	return p;
}

/* Checks the record at off; 1 valid (rec filled), 0 end of file, or -EBADMSG. */
static int logfile_scan_one(logfile_scan_t *s, uint64_t off, logfile_scan_report_t *rep,
                            logfile_record_t *rec, uint8_t hash[LOGFILE_HASH_BYTES])
{
	uint64_t seq = rep->last_seq + 1;
	rep->seq = seq;
	rep->offset = off;
	if (off == s->size)
		return 0;
	const unsigned char *h = logfile_scan_need(s, off, LOGFILE_RECORD_HEAD_BYTES);
	rep->problem = LOGFILE_PROBLEM_TRUNCATED;
	if (!h)
		return -EBADMSG;
	uint32_t len = be_get_u32(h);
	rep->found_seq = be_get_u64(h + 4);
	rep->problem = LOGFILE_PROBLEM_LENGTH;
	if (len == 0 || len > LOGFILE_RECORD_BODY_MAX)
		return -EBADMSG;
	rep->problem = LOGFILE_PROBLEM_SEQ;
	if (rep->found_seq != seq)
		return -EBADMSG;
	const unsigned char *r = logfile_scan_need(s, off, LOGFILE_RECORD_OVERHEAD + len);
	rep->problem = LOGFILE_PROBLEM_TRUNCATED;
	if (!r)
		return -EBADMSG;
	logfile_hash(rep->head_hash, seq, r + LOGFILE_RECORD_HEAD_BYTES, len, hash);
	rep->problem = LOGFILE_PROBLEM_HASH;
	if (sodium_memcmp(hash, r + LOGFILE_RECORD_HEAD_BYTES + len, LOGFILE_HASH_BYTES) != 0)
		return -EBADMSG;
	rep->problem = LOGFILE_PROBLEM_NONE;
	*rec = (logfile_record_t){ .seq = seq, .offset = off, .len = len, .hash = hash,
	                           .body = (const char *)r + LOGFILE_RECORD_HEAD_BYTES };
	return 1;
}

/* 0 when records follow the header (rep->version set), 1 for an empty
 * file, or -EBADMSG. */
static int logfile_scan_header(logfile_scan_t *s, logfile_scan_report_t *rep)
{
	unsigned char magic[LOGFILE_HEADER_BYTES];
	logfile_header_bytes(magic, LOGFILE_VERSION);
	if (s->size == 0)
		return 1;
	const unsigned char *h = logfile_scan_need(s, 0, LOGFILE_HEADER_BYTES);
	if (!h && !s->err) {
		rep->problem = LOGFILE_PROBLEM_TRUNCATED;
		return -EBADMSG;
	}
	if (h && memcmp(h, magic, LOGFILE_MAGIC_BYTES) == 0)
		rep->version = logfile_header_version(h);
	if (rep->version)
		return 0;
	rep->problem = LOGFILE_PROBLEM_HEADER;
	return s->err ? s->err : -EBADMSG;
}

/* v2: the batch header at off; 1 valid (*b set), 0 end of file, or -EBADMSG. */
static int logfile_scan_batch_head(logfile_scan_t *s, uint64_t off, logfile_scan_report_t *rep,
                                   logfile_batch_t *b)
{
	rep->seq = rep->batch_seq = rep->last_seq + 1;
	rep->offset = rep->batch_offset = off;
	if (off == s->size)
		return 0;
	const unsigned char *p = logfile_scan_need(s, off, LOGFILE_BATCH_HEAD_BYTES);
	rep->problem = p ? LOGFILE_PROBLEM_BATCH : LOGFILE_PROBLEM_TRUNCATED;
	if (!p || !logfile_batch_decode(off, p, rep->seq, b))
		return -EBADMSG;
	rep->problem = LOGFILE_PROBLEM_NONE;
	return 1;
}

/* v2: the record ending at end is where its batch says: its last exactly at the end. */
static bool logfile_fits_batch(const logfile_batch_t *b, uint64_t batch_end, uint64_t seq,
                               uint64_t end)
{
	return end < batch_end ? seq < b->last_seq : end == batch_end && seq == b->last_seq;
}

/* One record (v2: after its batch header, if it starts a batch): 1 valid, 0
 * end of the file, -EBADMSG, or a negative errno. */
static int logfile_scan_next(logfile_scan_t *s, uint64_t *off, logfile_scan_report_t *rep,
                             logfile_record_t *rec, uint8_t hash[LOGFILE_HASH_BYTES],
                             logfile_batch_t *b, uint64_t *batch_end)
{
	if (rep->version == LOGFILE_VERSION_2 && *off == *batch_end) {
		if (logfile_zero_from(s, *off)) { /* preallocated space: the end */
			rep->seq = rep->batch_seq = rep->last_seq + 1;
			rep->offset = rep->batch_offset = *off;
			return s->err ? s->err : 0;
		}
		int r = logfile_scan_batch_head(s, *off, rep, b);
		if (r <= 0)
			return s->err ? s->err : r;
		*off += LOGFILE_BATCH_HEAD_BYTES;
		*batch_end = *off + b->bytes;
	} else if (rep->version == LOGFILE_VERSION_1) {
		rep->batch_seq = rep->last_seq + 1;
		rep->batch_offset = *off;
	}
	int r = logfile_scan_one(s, *off, rep, rec, hash);
	if (r == 0 && rep->version == LOGFILE_VERSION_2) {
		if (logfile_tail_grew(s)) /* a writer is inside this batch */
			r = logfile_scan_one(s, *off, rep, rec, hash);
		if (r == 0)
			rep->problem = LOGFILE_PROBLEM_TRUNCATED;
		r = r == 0 ? -EBADMSG : r;
	}
	if (s->err)
		return s->err;
	if (r == 1 && rep->version == LOGFILE_VERSION_2 &&
	    !logfile_fits_batch(b, *batch_end, rec->seq, *off + LOGFILE_RECORD_OVERHEAD + rec->len)) {
		rep->problem = LOGFILE_PROBLEM_BATCH;
		return -EBADMSG;
	}
	return r;
}

/* True when the file ends in a zero byte: preallocated space, which a
 * writer may be filling right now (a v2 log ends in a hash otherwise). */
static bool logfile_ends_zeroed(logfile_scan_t *s)
{
	const unsigned char *p = s->size > 0 ? logfile_scan_get(s, s->size - 1, 1) : NULL;
	return p && *p == 0;
}

/*
 * logfile_scan_next(), looked at again when it finds a problem in a v2 file
 * that ends in preallocated space: a writer's batch lands there page by
 * page, so a reader may see part of it. A few looks over
 * LOGFILE_TAIL_WAIT_MS, each from the same place, before the problem counts.
 */
static int logfile_scan_next_settled(logfile_scan_t *s, uint64_t *off, logfile_scan_report_t *rep,
                                     logfile_record_t *rec, uint8_t hash[LOGFILE_HASH_BYTES],
                                     logfile_batch_t *b, uint64_t *batch_end)
{
	const uint64_t off0 = *off, end0 = *batch_end;
	const logfile_batch_t b0 = *b;
	int r = logfile_scan_next(s, off, rep, rec, hash, b, batch_end);
	for (int i = 0; i < LOGFILE_TAIL_WAITS && r == -EBADMSG &&
	                rep->version == LOGFILE_VERSION_2 && logfile_ends_zeroed(s); i++) {
		struct timespec ts = { 0, LOGFILE_TAIL_WAIT_MS / LOGFILE_TAIL_WAITS * 1000000L };
		nanosleep(&ts, NULL);
		s->buf_len = 0;
		*off = off0;
		*batch_end = end0;
		*b = b0;
		r = logfile_scan_next(s, off, rep, rec, hash, b, batch_end);
	}
	return r;
}

static int logfile_scan_records(logfile_scan_t *s, logfile_scan_report_t *rep,
                                int (*record_cb)(const logfile_record_t *r, void *arg),
                                void *arg)
{
	uint64_t off = LOGFILE_HEADER_BYTES, batch_end = off;
	logfile_batch_t b = { 0 };
	rep->end_offset = off;
	for (;;) {
		logfile_record_t rec;
		uint8_t hash[LOGFILE_HASH_BYTES];
		int r = logfile_scan_next_settled(s, &off, rep, &rec, hash, &b, &batch_end);
		if (r <= 0)
			return r;
		off += LOGFILE_RECORD_OVERHEAD + rec.len;
		rep->last_seq = rec.seq;
		rep->end_offset = off;
		memcpy(rep->head_hash, hash, LOGFILE_HASH_BYTES);
		r = record_cb(&rec, arg);
		if (r != 0)
			return r < 0 ? r : 0;
	}
}

/* logfile_scan() of an open file. */
static int logfile_scan_fd(int fd, logfile_scan_report_t *rep,
                           int (*record_cb)(const logfile_record_t *r, void *arg), void *arg)
{
	struct stat st;
	logfile_scan_t s = { .fd = fd, .buf = malloc(LOGFILE_SCAN_CHUNK_BYTES) };
	int r = fstat(fd, &st) < 0 ? -errno : s.buf ? 0 : -ENOMEM;
	s.size = r == 0 ? (uint64_t)st.st_size : 0;
	rep->file_bytes = s.size;
	if (r == 0)
		r = logfile_scan_header(&s, rep);
	if (r == 0)
		r = logfile_scan_records(&s, rep, record_cb, arg);
	else if (r == 1)
		r = 0;
	rep->file_bytes = s.size;
	free(s.buf);
	return r;
}

/* Opens DIR/events.log for the offline tools (flags: O_RDONLY or O_RDWR),
 * close-on-exec, with libsodium ready for the hashes: an fd or -errno. */
static int logfile_open_dir(const char *dir, int flags)
{
	if (sodium_init() < 0)
		return -ENOSYS;
	char *path = logfile_path(dir);
	if (!path)
		return -ENOMEM;
	int fd = open(path, flags | O_CLOEXEC);
	free(path);
	return fd < 0 ? -errno : fd;
}

int logfile_scan(const char *dir, logfile_scan_report_t *rep,
                 int (*record_cb)(const logfile_record_t *r, void *arg), void *arg)
{
	assert(dir && rep && record_cb);
	memset(rep, 0, sizeof(*rep));
	int fd = logfile_open_dir(dir, O_RDONLY);
	if (fd < 0)
		return fd;
	int r = logfile_scan_fd(fd, rep, record_cb, arg);
	close(fd);
	return r;
}

/* --- the operator's repair (logfile_repair) ------------------------------ */

static int logfile_repair_scan_cb(const logfile_record_t *r, void *arg)
{
	(void)r;
	(void)arg;
	return 0;
}

/* Where to cut for the problem in out->scan: at the bad record, or (v2) at
 * the start of its batch when it is the batch's header or first record. */
static void logfile_repair_plan(logfile_repair_t *out)
{
	const logfile_scan_report_t *sc = &out->scan;
	uint64_t first_rec = sc->batch_offset;
	if (sc->version == LOGFILE_VERSION_2)
		first_rec += LOGFILE_BATCH_HEAD_BYTES;
	bool inside = sc->offset > first_rec;
	out->header_rewritten = inside && sc->version == LOGFILE_VERSION_2;
	out->cut_offset = inside ? sc->offset : sc->batch_offset;
	out->first_cut_seq = inside ? sc->seq : sc->batch_seq;
	out->kept_last_seq = out->first_cut_seq - 1;
	out->cut_bytes = sc->file_bytes - out->cut_offset;
	out->cut = true;
}

/* Copies the bytes to be cut into a new file beside the log, synced with its directory. */
static int logfile_repair_copy(int fd, const char *dir, logfile_repair_t *out)
{
	snprintf(out->copy_path, sizeof(out->copy_path), "%s/%s.cut-%llu-%lld", dir, LOGFILE_NAME,
	         (unsigned long long)out->first_cut_seq, (long long)time(NULL));
	int cfd = open(out->copy_path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (cfd < 0)
		return -errno;
	char *buf = malloc(LOGFILE_READ_CHUNK_BYTES);
	int r = buf ? 0 : -ENOMEM;
	uint64_t end = out->cut_offset + out->cut_bytes;
	for (uint64_t at = out->cut_offset; r == 0 && at < end;) {
		size_t n = end - at < LOGFILE_READ_CHUNK_BYTES ? (size_t)(end - at)
		                                               : LOGFILE_READ_CHUNK_BYTES;
		r = logfile_pread_all(fd, at, buf, n);
		if (r == 0)
			r = fileio_write_all(cfd, buf, n);
		at += n;
	}
	free(buf);
	if (r == 0 && fsync(cfd) < 0)
		r = -errno;
	close(cfd);
	if (r == 0)
		r = fileio_fsync_dir(dir);
	if (r < 0)
		unlink(out->copy_path);
	return r;
}

/* Makes the planned cut: the batch header first when the cut is inside its batch. */
static int logfile_repair_cut(int fd, const logfile_repair_t *out)
{
	if (out->header_rewritten) {
		unsigned char head[LOGFILE_BATCH_HEAD_BYTES];
		uint64_t at = out->scan.batch_offset;
		logfile_batch_t b = { .first_seq = out->scan.batch_seq, .last_seq = out->kept_last_seq,
		                      .bytes = out->cut_offset - at - LOGFILE_BATCH_HEAD_BYTES };
		logfile_batch_encode(at, &b, head);
		int r = logfile_write_all(fd, at, head, sizeof(head));
		if (r < 0)
			return r;
	}
	if (ftruncate(fd, (off_t)out->cut_offset) < 0 || fdatasync(fd) < 0)
		return -errno;
	return 0;
}

/* logfile_cut_after: stops the scan at the first record after the one kept. */
static int logfile_cut_scan_cb(const logfile_record_t *r, void *arg)
{
	return r->seq > *(const uint64_t *)arg ? 1 : 0;
}

/* Opens DIR/events.log for a cut, holding the writer's lock: an fd or a negative errno. */
static int logfile_open_locked(const char *dir)
{
	int fd = logfile_open_dir(dir, O_RDWR);
	if (fd < 0)
		return fd;
	if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
		int r = errno == EWOULDBLOCK ? -EAGAIN : -errno;
		close(fd);
		return r;
	}
	return fd;
}

int logfile_cut_after(const char *dir, uint64_t keep_seq, logfile_repair_t *out)
{
	assert(dir && out);
	memset(out, 0, sizeof(*out));
	int fd = logfile_open_locked(dir);
	if (fd < 0)
		return fd;
	int r = logfile_scan_fd(fd, &out->scan, logfile_cut_scan_cb, &keep_seq);
	bool past = out->scan.last_seq > keep_seq; /* the callback stopped at keep_seq + 1 */
	if (r == -EBADMSG && out->scan.problem != LOGFILE_PROBLEM_HEADER &&
	    out->scan.seq == keep_seq + 1)
		past = true; /* the record after the kept one is the first bad one: cut it too */
	else if (r == -EBADMSG)
		r = out->scan.seq <= keep_seq ? -EBADMSG : 0;
	if (r >= 0 && past) {
		out->scan.seq = keep_seq + 1;
		logfile_repair_plan(out);
		r = logfile_repair_copy(fd, dir, out);
		if (r == 0)
			r = logfile_repair_cut(fd, out);
	}
	close(fd);
	return r < 0 ? r : 0;
}

int logfile_repair(const char *dir, bool dry_run, logfile_repair_t *out)
{
	assert(dir && out);
	memset(out, 0, sizeof(*out));
	int fd = logfile_open_locked(dir);
	if (fd < 0)
		return fd;
	int r = logfile_scan_fd(fd, &out->scan, logfile_repair_scan_cb, NULL);
	if (r == -EBADMSG && out->scan.problem != LOGFILE_PROBLEM_HEADER) {
		logfile_repair_plan(out);
		r = dry_run ? 0 : logfile_repair_copy(fd, dir, out);
		if (r == 0 && !dry_run)
			r = logfile_repair_cut(fd, out);
	}
	close(fd);
	return r;
}
