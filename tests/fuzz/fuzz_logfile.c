/*
 * fuzz_logfile.c - the log record reader (common/logfile.c): logfile_open()
 * of DATA/events.log (checks every record and the chain, cuts or reports a
 * torn tail, refuses damage), then logfile_read() of every record, each
 * body decoded as an event (common/event.c), and logfile_hash_at().
 *
 * Input: byte 0 holds flags. Bit 0 clear: the rest is the file as it is.
 * Bit 0 set: the rest is a list of records [u16 len][u8 flip][len bytes]
 * written with a correct header and hash chain (so that the fuzzer gets
 * past the hashes to the bodies and the index), where a non-zero flip
 * breaks that record's hash or seq. Bit 1: open for writing (cutting a torn
 * tail) instead of read-only, and then open again read-only, which must
 * find a clean log of the same length.
 */
#include "fuzz.h"

#include "event.h"
#include "logfile.h"

#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void put_be(unsigned char *p, uint64_t v, int n)
{
	for (int i = n - 1; i >= 0; i--, v >>= 8)
		p[i] = (unsigned char)v;
}

static void fuzz_write(const char *path, const void *p, size_t n)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	assert(fd >= 0);
	assert(n == 0 || write(fd, p, n) == (ssize_t)n);
	close(fd);
}

/* Builds a chained log from [u16 len][u8 flip][body] items. */
static size_t fuzz_build(const uint8_t *in, size_t n, unsigned char *out)
{
	memcpy(out, "ESBLOG\0\1", 8);
	size_t o = 8;
	uint8_t prev[32] = { 0 };
	uint64_t seq = 1;
	while (n >= 3) {
		size_t len = (size_t)in[0] << 8 | in[1];
		uint8_t flip = in[2];
		in += 3, n -= 3;
		if (len > n)
			len = n;
		unsigned char head[12];
		put_be(head, len, 4);
		put_be(head + 4, seq + (flip & 0x80 ? 1 : 0), 8);
		memcpy(out + o, head, 12);
		memcpy(out + o + 12, in, len);
		unsigned char hashed[12]; /* prev || seq || len || body */
		put_be(hashed, seq + (flip & 0x80 ? 1 : 0), 8);
		put_be(hashed + 8, len, 4);
		crypto_generichash_state st;
		crypto_generichash_init(&st, NULL, 0, 32);
		crypto_generichash_update(&st, prev, 32);
		crypto_generichash_update(&st, hashed, 12);
		crypto_generichash_update(&st, in, len);
		crypto_generichash_final(&st, prev, 32);
		memcpy(out + o + 12 + len, prev, 32);
		if (flip & 0x7f)
			out[o + 12 + len + (flip & 31)] ^= 1;
		o += 44 + len;
		in += len, n -= len;
		seq++;
	}
	return o;
}

static int fuzz_read_cb(uint64_t seq, const char *body, size_t len, void *arg)
{
	uint64_t *expect = arg;
	assert(seq == *expect);
	assert(len >= 1 && len <= LOGFILE_RECORD_BODY_MAX);
	(*expect)++;
	ledger_event_t ev;
	if (event_decode_bytes(body, len, &ev) == 0)
		assert(ev.email[LEDGER_EMAIL_BYTES_MAX] == '\0' || ev.email[0] == '\0');
	return 0;
}

static void fuzz_check(const char *dir, bool read_only, uint64_t *last, uint64_t *size)
{
	logfile_t lf;
	logfile_report_t rep;
	memset(&rep, 0, sizeof(rep));
	int rc = logfile_open(&lf, dir, read_only, &rep);
	if (rc < 0) {
		assert(rc == -EBADMSG || rc == -EPROTONOSUPPORT || rc == -ENOENT);
		*last = UINT64_MAX;
		return;
	}
	assert(lf.size_bytes >= 8 || lf.last_seq == 0);
	uint64_t next = 1;
	long got = logfile_read(&lf, 1, SIZE_MAX, SIZE_MAX, fuzz_read_cb, &next);
	assert(got >= 0 && (uint64_t)got == lf.last_seq);
	/* a read from the middle, with tight limits, sees the same records */
	if (lf.last_seq > 1) {
		next = lf.last_seq / 2 + 1;
		got = logfile_read(&lf, next, 3, 100, fuzz_read_cb, &next);
		assert(got >= 0 && got <= 3);
	}
	uint8_t h[LOGFILE_HASH_BYTES];
	assert(logfile_hash_at(&lf, lf.last_seq, h));
	assert(memcmp(h, lf.head_hash, sizeof(h)) == 0);
	assert(!logfile_hash_at(&lf, lf.last_seq + 1, h));
	*last = lf.last_seq;
	*size = lf.size_bytes;
	logfile_close(&lf);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1 || size > FUZZ_INPUT_BYTES_MAX)
		return 0;
	const char *dir = fuzz_tmpdir();
	char path[256];
	snprintf(path, sizeof(path), "%s/%s", dir, LOGFILE_NAME);
	unsigned flags = data[0];
	if (flags & 1) {
		unsigned char *buf = malloc(8 + (size / 3 + 1) * 44 + size);
		assert(buf);
		size_t n = fuzz_build(data + 1, size - 1, buf);
		fuzz_write(path, buf, n);
		free(buf);
	} else {
		fuzz_write(path, data + 1, size - 1);
	}
	uint64_t last = 0, bytes = 0;
	fuzz_check(dir, !(flags & 2), &last, &bytes);
	if ((flags & 2) && last != UINT64_MAX) {
		/* after a writer's open (and cut), the file is a clean log */
		uint64_t last2 = 0, bytes2 = 0;
		fuzz_check(dir, true, &last2, &bytes2);
		assert(last2 == last && bytes2 == bytes);
	}
	unlink(path);
	return 0;
}
