/*
 * logfile.c - the event log file, DATA/events.log (see logfile.h).
 *
 * File layout, all integers unsigned big-endian:
 *
 *   file header, LOGFILE_HEADER_BYTES (8) bytes at offset 0:
 *     0  6  magic    "ESBLOG"
 *     6  2  version  LOGFILE_VERSION (1)
 *   then records, back to back, in sequence order:
 *     0  4  len      body length, 1 <= len <= LOGFILE_RECORD_BODY_MAX
 *     4  8  seq      sequence number: 1 for the first record, then +1 each
 *     12 len body    one event: exactly one msgpack map (checked when encoded)
 *     .. 32 hash     BLAKE2b-256 (libsodium crypto_generichash, unkeyed) of
 *                    prev_hash || seq (8 bytes BE) || len (4 bytes BE) || body,
 *                    where prev_hash is the hash of record seq - 1, or 32 zero
 *                    bytes for seq 1. The hash of the last record is the head:
 *                    it commits to the whole history, like a git commit id.
 *   A record takes LOGFILE_RECORD_OVERHEAD (44) + len bytes.
 *
 * A record is valid when it is complete, its len is in range, its seq is the
 * one expected and its hash matches. logfile_open() checks every record and
 * stops at the first one that is not valid, at offset o, expected seq s:
 *
 *   - If a complete valid record s + 1 follows it - a record that starts
 *     within one maximal record after o, and whose hash chains either to the
 *     32 bytes just before it (record s's stored hash) or to the hash record s
 *     would have with the bytes it has - then history is damaged: -EBADMSG,
 *     rep->damage_seq = s, rep->damage_offset = o, nothing is changed.
 *   - Otherwise it is a torn tail (a crash during an append: an incomplete
 *     record, or a complete one whose bytes did not all reach the disk): the
 *     file is cut at o with ftruncate + fdatasync and rep says so. In
 *     read_only mode the cut is only reported and the log ends at o.
 *
 * So a flipped byte anywhere in a record before the last is damage (the next
 * record still chains to it), and one in the last record is a torn tail. The
 * cost of this rule: if a crash tears a batch so that a later record of the
 * batch reached the disk whole while an earlier one did not, the logger stops
 * instead of cutting events that were never acknowledged; an operator cuts
 * the tail by hand. Acknowledged history is never cut automatically.
 *
 * A file shorter than the header whose bytes are a prefix of the header (a
 * crash while creating it) is a torn tail at 0 and the header is rewritten;
 * any other bad magic is damage at seq 0, offset 0; an unknown version is
 * -EPROTONOSUPPORT.
 *
 * Appends: logfile_encode() builds records in memory, logfile_write() writes a
 * batch with one pwrite and one fdatasync, cutting the file back on any error
 * so that a retry rewrites (re-dirties) every byte: after a failed fsync the
 * page cache cannot be trusted to still hold them.
 *
 * A writer holds an exclusive flock() on the file; a second writer gets
 * -EAGAIN. Read-only openers take no lock.
 */
#include "logfile.h"

#include "fileio.h"

#include "msg.h"

#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <msgpack.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define LOGFILE_MAGIC "ESBLOG"
#define LOGFILE_MAGIC_BYTES 6
#define LOGFILE_VERSION 1
#define LOGFILE_HEADER_BYTES 8
#define LOGFILE_RECORD_HEAD_BYTES 12 /* len + seq */
#define LOGFILE_RECORD_OVERHEAD (LOGFILE_RECORD_HEAD_BYTES + LOGFILE_HASH_BYTES)
#define LOGFILE_RECORD_BYTES_MAX (LOGFILE_RECORD_OVERHEAD + LOGFILE_RECORD_BODY_MAX)
/* Where a follower of a bad record may start and end: two maximal records. */
#define LOGFILE_RESYNC_BYTES (2 * LOGFILE_RECORD_BYTES_MAX)
#define LOGFILE_SCAN_CHUNK_BYTES (1024 * 1024)
#define LOGFILE_READ_CHUNK_BYTES (256 * 1024)
#define LOGFILE_INDEX_MIN 1024

_Static_assert(LOGFILE_SCAN_CHUNK_BYTES >= LOGFILE_RESYNC_BYTES, "scan chunk too small");
_Static_assert(LOGFILE_READ_CHUNK_BYTES >= LOGFILE_RECORD_BYTES_MAX, "read chunk too small");

static void logfile_put_u32(unsigned char *p, uint32_t v)
{
	for (int i = 3; i >= 0; i--, v >>= 8)
		p[i] = (unsigned char)v;
}

static void logfile_put_u64(unsigned char *p, uint64_t v)
{
	for (int i = 7; i >= 0; i--, v >>= 8)
		p[i] = (unsigned char)v;
}

static uint32_t logfile_get_u32(const unsigned char *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static uint64_t logfile_get_u64(const unsigned char *p)
{
	uint64_t v = 0;
	for (int i = 0; i < 8; i++)
		v = v << 8 | p[i];
	return v;
}

static void logfile_header_bytes(unsigned char out[LOGFILE_HEADER_BYTES])
{
	memcpy(out, LOGFILE_MAGIC, LOGFILE_MAGIC_BYTES);
	out[6] = LOGFILE_VERSION >> 8;
	out[7] = LOGFILE_VERSION & 0xff;
}

/* hash = H(prev || seq || len || body) */
static void logfile_hash(const uint8_t prev[LOGFILE_HASH_BYTES], uint64_t seq, const void *body,
                         uint32_t len, uint8_t out[LOGFILE_HASH_BYTES])
{
	crypto_generichash_state st;
	unsigned char head[LOGFILE_RECORD_HEAD_BYTES];
	logfile_put_u64(head, seq);
	logfile_put_u32(head + 8, len);
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
	uint32_t len = logfile_get_u32(h);
	if (len == 0 || len > LOGFILE_RECORD_BODY_MAX || logfile_get_u64(h + 4) != seq)
		return -EBADMSG;
	const unsigned char *r = logfile_scan_get(s, off, LOGFILE_RECORD_OVERHEAD + len);
	if (!r)
		return -EBADMSG;
	logfile_hash(prev, seq, r + LOGFILE_RECORD_HEAD_BYTES, len, out);
	if (sodium_memcmp(out, r + LOGFILE_RECORD_HEAD_BYTES + len, LOGFILE_HASH_BYTES) != 0)
		return -EBADMSG;
	*next = off + LOGFILE_RECORD_OVERHEAD + len;
	return 1;
}

/* True when a complete record seq at w[p..] chains to prev (p counted from w). */
static bool logfile_record_chains(const unsigned char *w, size_t wlen, size_t p, uint64_t seq,
                                  const uint8_t prev[LOGFILE_HASH_BYTES])
{
	if (wlen - p < LOGFILE_RECORD_OVERHEAD || logfile_get_u64(w + p + 4) != seq)
		return false;
	uint32_t len = logfile_get_u32(w + p);
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
	uint32_t len = wlen >= LOGFILE_RECORD_OVERHEAD ? logfile_get_u32(w) : 0;
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
 * Checks the header; writes it into a new (or torn-while-created) file.
 * Returns 0 when records may follow, 1 for a read-only log without a whole
 * header (empty), or a negative errno.
 */
static int logfile_check_header(logfile_t *lf, const char *dir, bool read_only,
                                logfile_scan_t *s, logfile_report_t *rep)
{
	unsigned char want[LOGFILE_HEADER_BYTES];
	logfile_header_bytes(want);
	size_t have = s->size < LOGFILE_HEADER_BYTES ? (size_t)s->size : LOGFILE_HEADER_BYTES;
	const unsigned char *h = logfile_scan_get(s, 0, have);
	if (!h)
		return s->err ? s->err : -EIO;
	if (memcmp(h, want, have < LOGFILE_MAGIC_BYTES ? have : LOGFILE_MAGIC_BYTES) != 0)
		return -EBADMSG;
	if (memcmp(h, want, have) != 0)
		return -EPROTONOSUPPORT;
	if (have == LOGFILE_HEADER_BYTES)
		return 0;
	if (have > 0) {
		rep->torn_tail_cut = true;
		rep->torn_offset = 0;
		rep->torn_bytes = have;
	}
	if (read_only)
		return 1; /* an empty log; nothing to scan */
	int r = logfile_write_all(lf->fd, 0, want, sizeof(want));
	if (r == 0 && fdatasync(lf->fd) < 0)
		r = -errno;
	if (r == 0)
		r = fileio_fsync_dir(dir);
	s->size = LOGFILE_HEADER_BYTES;
	s->buf_len = 0;
	return r;
}

/* Reads every record, building the index; stops at the first bad one. */
static int logfile_scan_all(logfile_t *lf, logfile_scan_t *s, uint64_t *bad_off)
{
	uint64_t off = LOGFILE_HEADER_BYTES;
	for (;;) {
		uint8_t h[LOGFILE_HASH_BYTES];
		uint64_t next;
		int r = logfile_scan_record(s, off, lf->last_seq + 1, lf->head_hash, &next, h);
		if (s->err)
			return s->err;
		if (r <= 0) {
			*bad_off = off;
			return r;
		}
		if (logfile_index_push(lf, off) < 0)
			return -ENOMEM;
		memcpy(lf->head_hash, h, LOGFILE_HASH_BYTES);
		off = next;
	}
}

/* After the scan stopped at bad_off: torn tail (cut it) or damage. */
static int logfile_settle_tail(logfile_t *lf, logfile_scan_t *s, bool read_only,
                               uint64_t bad_off, logfile_report_t *rep)
{
	if (logfile_followed(s, bad_off, lf->last_seq + 1, lf->head_hash)) {
		rep->damage_seq = lf->last_seq + 1;
		rep->damage_offset = bad_off;
		return -EBADMSG;
	}
	if (s->err)
		return s->err;
	rep->torn_tail_cut = true;
	rep->torn_offset = bad_off;
	rep->torn_bytes = s->size - bad_off;
	if (read_only)
		return 0;
	if (ftruncate(lf->fd, (off_t)bad_off) < 0 || fdatasync(lf->fd) < 0)
		return -errno;
	return 0;
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

static int logfile_verify(logfile_t *lf, const char *dir, bool read_only, logfile_report_t *rep)
{
	struct stat st;
	if (fstat(lf->fd, &st) < 0)
		return -errno;
	logfile_scan_t s = { .fd = lf->fd, .size = (uint64_t)st.st_size };
	s.buf = malloc(LOGFILE_SCAN_CHUNK_BYTES);
	if (!s.buf)
		return -ENOMEM;
	int r = logfile_check_header(lf, dir, read_only, &s, rep);
	uint64_t bad_off = 0;
	if (r == 1) {
		r = 0;
	} else if (r == 0) {
		r = logfile_scan_all(lf, &s, &bad_off);
		if (r == -EBADMSG) {
			r = logfile_settle_tail(lf, &s, read_only, bad_off, rep);
			s.size = bad_off;
		}
	}
	lf->size_bytes = s.size;
	free(s.buf);
	return r;
}

int logfile_open(logfile_t *lf, const char *dir, bool read_only, logfile_report_t *rep)
{
	assert(lf && dir && rep);
	memset(lf, 0, sizeof(*lf));
	memset(rep, 0, sizeof(*rep));
	lf->fd = -1;
	if (sodium_init() < 0)
		return -ENOSYS;
	size_t n = strlen(dir) + sizeof(LOGFILE_NAME) + 1;
	lf->path = malloc(n);
	if (!lf->path)
		return -ENOMEM;
	snprintf(lf->path, n, "%s/%s", dir, LOGFILE_NAME);
	int r = logfile_open_fd(lf, read_only);
	if (r == 0)
		r = logfile_verify(lf, dir, read_only, rep);
	if (r < 0)
		logfile_close(lf);
	return r;
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
	logfile_put_u32(p, (uint32_t)body_len);
	logfile_put_u64(p + 4, seq);
	memcpy(p + LOGFILE_RECORD_HEAD_BYTES, body, body_len);
	logfile_hash(chain, seq, body, (uint32_t)body_len, chain);
	memcpy(p + LOGFILE_RECORD_HEAD_BYTES + body_len, chain, LOGFILE_HASH_BYTES);
	*out_len += LOGFILE_RECORD_OVERHEAD + body_len;
	return 0;
}

int logfile_write(int fd, uint64_t at, const char *buf, size_t len)
{
	assert(fd >= 0 && buf && len > 0);
	int r = logfile_write_all(fd, at, buf, len);
	if (r == 0 && fdatasync(fd) < 0)
		r = -errno;
	if (r < 0) {
		/* Best effort: a leftover tail is cut at the next open anyway. */
		while (ftruncate(fd, (off_t)at) < 0 && errno == EINTR)
			;
	}
	return r;
}

int logfile_commit(logfile_t *lf, const char *buf, size_t len, uint64_t last_seq,
                   const uint8_t head[LOGFILE_HASH_BYTES])
{
	assert(lf && buf && last_seq >= lf->last_seq);
	size_t pos = 0;
	while (pos < len) {
		const unsigned char *p = (const unsigned char *)buf + pos;
		assert(len - pos >= LOGFILE_RECORD_OVERHEAD);
		assert(logfile_get_u64(p + 4) == lf->last_seq + 1);
		if (logfile_index_push(lf, lf->size_bytes + pos) < 0)
			return -ENOMEM;
		pos += LOGFILE_RECORD_OVERHEAD + logfile_get_u32(p);
	}
	assert(pos == len && lf->last_seq == last_seq);
	lf->size_bytes += len;
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
		uint32_t len = logfile_get_u32(u);
		if (logfile_get_u64(u + 4) != seq)
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
	/* A record's hash is its last 32 bytes, just before the next record. */
	uint64_t at = logfile_offset(lf, seq + 1) - LOGFILE_HASH_BYTES;
	return logfile_pread_all(lf->fd, at, (char *)out, LOGFILE_HASH_BYTES) == 0;
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
	uint32_t len = logfile_get_u32(h);
	rep->found_seq = logfile_get_u64(h + 4);
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

/* 0 when records follow the header, 1 for an empty file, or -EBADMSG. */
static int logfile_scan_header(logfile_scan_t *s, logfile_scan_report_t *rep)
{
	unsigned char want[LOGFILE_HEADER_BYTES];
	logfile_header_bytes(want);
	if (s->size == 0)
		return 1;
	const unsigned char *h = logfile_scan_need(s, 0, LOGFILE_HEADER_BYTES);
	if (!h && !s->err) {
		rep->problem = LOGFILE_PROBLEM_TRUNCATED;
		return -EBADMSG;
	}
	if (h && memcmp(h, want, LOGFILE_HEADER_BYTES) == 0)
		return 0;
	rep->problem = LOGFILE_PROBLEM_HEADER;
	return s->err ? s->err : -EBADMSG;
}

static int logfile_scan_records(logfile_scan_t *s, logfile_scan_report_t *rep,
                                int (*record_cb)(const logfile_record_t *r, void *arg),
                                void *arg)
{
	uint64_t off = LOGFILE_HEADER_BYTES;
	rep->end_offset = off;
	for (;;) {
		logfile_record_t rec;
		uint8_t hash[LOGFILE_HASH_BYTES];
		int r = logfile_scan_one(s, off, rep, &rec, hash);
		if (s->err)
			return s->err;
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

int logfile_scan(const char *dir, logfile_scan_report_t *rep,
                 int (*record_cb)(const logfile_record_t *r, void *arg), void *arg)
{
	assert(dir && rep && record_cb);
	memset(rep, 0, sizeof(*rep));
	if (sodium_init() < 0)
		return -ENOSYS;
	char *path = malloc(strlen(dir) + sizeof(LOGFILE_NAME) + 1);
	if (!path)
		return -ENOMEM;
	sprintf(path, "%s/%s", dir, LOGFILE_NAME);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	free(path);
	if (fd < 0)
		return -errno;
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
	close(fd);
	return r;
}
