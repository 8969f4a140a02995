/* test_logfile.c - the event log file: append, read, chain, torn tails, damage. */
#include "logfile.h"
#include "logcheckpoint.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <msgpack.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#define TEST_EVENT_MAX 512
#define TEST_HEADER_BYTES 8
#define TEST_OVERHEAD 44
#define TEST_BATCH_HEAD 40 /* version 2 */

static char test_dir[64];
static char test_path[128];

static void test_setup(void)
{
	strcpy(test_dir, "/tmp/esb-logfile-XXXXXX");
	cr_assert_not_null(mkdtemp(test_dir));
	snprintf(test_path, sizeof(test_path), "%s/%s", test_dir, LOGFILE_NAME);
}

static void test_teardown(void)
{
	char chk[160];
	snprintf(chk, sizeof(chk), "%s/%s", test_dir, LOGCHECKPOINT_NAME);
	unlink(chk);
	unlink(test_path);
	rmdir(test_dir);
}

TestSuite(logfile, .init = test_setup, .fini = test_teardown);

/* The event body for seq (a msgpack map), variant v changes its content. */
static size_t test_event(uint64_t seq, int v, char out[TEST_EVENT_MAX])
{
	msgpack_sbuffer sb;
	msgpack_packer pk;
	msgpack_sbuffer_init(&sb);
	msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
	char note[64] = { 0 };
	int n = snprintf(note, sizeof(note), "event %llu v%d", (unsigned long long)seq, v);
	msgpack_pack_map(&pk, 3);
	msgpack_pack_str_with_body(&pk, "t", 1);
	msgpack_pack_str_with_body(&pk, "deposit", 7);
	msgpack_pack_str_with_body(&pk, "seq", 3);
	msgpack_pack_uint64(&pk, seq);
	msgpack_pack_str_with_body(&pk, "note", 4);
	msgpack_pack_str_with_body(&pk, note, (size_t)n + seq % 7);
	cr_assert_leq(sb.size, TEST_EVENT_MAX);
	size_t len = sb.size;
	memcpy(out, sb.data, len);
	msgpack_sbuffer_destroy(&sb);
	return len;
}

/* Appends count events as one batch; variant_at (or 0) gets variant 1. */
static void test_append(logfile_t *lf, uint64_t count, uint64_t variant_at)
{
	char *buf = NULL;
	size_t len = 0, cap = 0;
	uint8_t chain[LOGFILE_HASH_BYTES];
	memcpy(chain, lf->head_hash, sizeof(chain));
	uint64_t seq = lf->last_seq;
	for (uint64_t i = 0; i < count; i++) {
		char ev[TEST_EVENT_MAX];
		seq++;
		size_t n = test_event(seq, seq == variant_at, ev);
		cr_assert_eq(logfile_encode(seq, ev, n, chain, &buf, &len, &cap), 0);
	}
	cr_assert_eq(logfile_write(lf, lf->size_bytes, buf, len), 0);
	cr_assert_eq(logfile_commit(lf, buf, len, seq, chain), 0);
	free(buf);
}

static void test_open(logfile_t *lf, bool read_only, logfile_report_t *rep)
{
	int r = logfile_open(lf, test_dir, read_only, rep);
	cr_assert_eq(r, 0, "logfile_open: %s", strerror(-r));
}

static uint64_t test_file_size(void)
{
	struct stat st;
	cr_assert_eq(stat(test_path, &st), 0);
	return (uint64_t)st.st_size;
}

static char *test_file_bytes(size_t *n)
{
	*n = test_file_size();
	char *b = malloc(*n);
	int fd = open(test_path, O_RDONLY);
	cr_assert_eq(read(fd, b, *n), (ssize_t)*n);
	close(fd);
	return b;
}

static void test_file_put(const char *b, size_t n)
{
	int fd = open(test_path, O_WRONLY | O_TRUNC | O_CREAT, 0600);
	cr_assert_geq(fd, 0);
	cr_assert_eq(write(fd, b, n), (ssize_t)n);
	close(fd);
}

/* Checks that the bodies read match what test_append wrote. */
typedef struct {
	uint64_t next;
	long calls;
	long stop_after;
} test_reader_t;

static int test_read_cb(uint64_t seq, const char *body, size_t len, void *arg)
{
	test_reader_t *t = arg;
	if (t->stop_after && t->calls == t->stop_after)
		return 1;
	char ev[TEST_EVENT_MAX];
	size_t n = test_event(seq, 0, ev);
	cr_assert_eq(seq, t->next);
	cr_assert_eq(len, n);
	cr_assert_arr_eq(body, ev, n);
	t->next++;
	t->calls++;
	return 0;
}

static long test_read(logfile_t *lf, uint64_t from, size_t max_events, size_t max_bytes)
{
	test_reader_t t = { .next = from ? from : 1 };
	long n = logfile_read(lf, from, max_events, max_bytes, test_read_cb, &t);
	cr_assert_eq(n, t.calls);
	return n;
}

Test(logfile, empty_log_is_created_with_header)
{
	logfile_t lf;
	logfile_report_t rep;
	test_open(&lf, false, &rep);
	cr_assert_eq(lf.last_seq, 0);
	cr_assert_eq(lf.size_bytes, TEST_HEADER_BYTES);
	cr_assert_eq(test_file_size(), TEST_HEADER_BYTES);
	cr_assert_not(rep.torn_tail_cut);
	uint8_t zero[LOGFILE_HASH_BYTES] = { 0 }, h[LOGFILE_HASH_BYTES];
	cr_assert(logfile_hash_at(&lf, 0, h));
	cr_assert_arr_eq(h, zero, sizeof(h));
	cr_assert_not(logfile_hash_at(&lf, 1, h));
	cr_assert_eq(test_read(&lf, 1, 100, 1 << 20), 0);
	logfile_close(&lf);
}

Test(logfile, append_and_read_back)
{
	logfile_t lf;
	logfile_report_t rep;
	test_open(&lf, false, &rep);
	test_append(&lf, 10, 0);
	test_append(&lf, 1, 0);
	test_append(&lf, 5, 0);
	cr_assert_eq(lf.last_seq, 16);
	cr_assert_eq(lf.size_bytes, test_file_size());
	cr_assert_eq(test_read(&lf, 1, 100, 1 << 20), 16);
	cr_assert_eq(test_read(&lf, 0, 100, 1 << 20), 16, "from 0 reads from 1");
	logfile_close(&lf);
}

Test(logfile, read_from_the_middle_and_limits)
{
	logfile_t lf;
	logfile_report_t rep;
	test_open(&lf, false, &rep);
	test_append(&lf, 20, 0);
	cr_assert_eq(test_read(&lf, 7, 3, 1 << 20), 3);
	cr_assert_eq(test_read(&lf, 15, 100, 1 << 20), 6);
	cr_assert_eq(test_read(&lf, 20, 100, 1 << 20), 1);
	cr_assert_eq(test_read(&lf, 21, 100, 1 << 20), 0);
	cr_assert_eq(test_read(&lf, 5, 0, 1 << 20), 0);
	char ev[TEST_EVENT_MAX];
	size_t a = test_event(5, 0, ev), b = test_event(6, 0, ev);
	cr_assert_eq(test_read(&lf, 5, 100, a + b), 2, "the byte limit is inclusive");
	cr_assert_eq(test_read(&lf, 5, 100, a + b - 1), 1);
	cr_assert_eq(test_read(&lf, 5, 100, a - 1), 0, "strict even for the first");
	test_reader_t t = { .next = 3, .stop_after = 4 };
	cr_assert_eq(logfile_read(&lf, 3, 100, 1 << 20, test_read_cb, &t), 4);
	logfile_close(&lf);
}

Test(logfile, read_spans_many_chunks)
{
	logfile_t lf;
	logfile_report_t rep;
	test_open(&lf, false, &rep);
	for (int i = 0; i < 20; i++)
		test_append(&lf, 500, 0); /* ~10000 records, several read chunks */
	cr_assert_eq(test_read(&lf, 1, 100000, (size_t)1 << 30), 10000);
	cr_assert_eq(test_read(&lf, 4321, 3000, (size_t)1 << 30), 3000);
	logfile_close(&lf);
}

Test(logfile, hash_chain)
{
	logfile_t lf;
	logfile_report_t rep;
	test_open(&lf, false, &rep);
	test_append(&lf, 6, 0);
	uint8_t h[7][LOGFILE_HASH_BYTES];
	for (uint64_t s = 0; s <= 6; s++)
		cr_assert(logfile_hash_at(&lf, s, h[s]));
	for (int i = 0; i <= 6; i++)
		for (int j = i + 1; j <= 6; j++)
			cr_assert(memcmp(h[i], h[j], LOGFILE_HASH_BYTES) != 0, "%d vs %d", i, j);
	cr_assert_arr_eq(h[6], lf.head_hash, LOGFILE_HASH_BYTES);
	logfile_close(&lf);

	/* The same history with record 3's body changed: hashes from 3 on differ. */
	test_file_put("", 0);
	test_open(&lf, false, &rep);
	test_append(&lf, 6, 3);
	for (uint64_t s = 0; s <= 6; s++) {
		uint8_t o[LOGFILE_HASH_BYTES];
		cr_assert(logfile_hash_at(&lf, s, o));
		cr_assert_eq(memcmp(o, h[s], LOGFILE_HASH_BYTES) == 0, s < 3, "seq %lu", s);
	}
	logfile_close(&lf);
}

Test(logfile, reopen_keeps_everything)
{
	logfile_t lf;
	logfile_report_t rep;
	test_open(&lf, false, &rep);
	test_append(&lf, 7, 0);
	test_append(&lf, 5, 0);
	uint8_t head[LOGFILE_HASH_BYTES], h4[LOGFILE_HASH_BYTES], g[LOGFILE_HASH_BYTES];
	memcpy(head, lf.head_hash, sizeof(head));
	cr_assert(logfile_hash_at(&lf, 4, h4));
	uint64_t offsets[12], size = lf.size_bytes;
	memcpy(offsets, lf.offsets, sizeof(offsets));
	logfile_close(&lf);

	test_open(&lf, false, &rep);
	cr_assert_not(rep.torn_tail_cut);
	cr_assert_eq(lf.last_seq, 12);
	cr_assert_eq(lf.size_bytes, size);
	cr_assert_arr_eq(lf.head_hash, head, sizeof(head));
	cr_assert_arr_eq(lf.offsets, offsets, sizeof(offsets));
	cr_assert(logfile_hash_at(&lf, 4, g));
	cr_assert_arr_eq(g, h4, sizeof(g));
	cr_assert_eq(test_read(&lf, 1, 100, 1 << 20), 12);
	test_append(&lf, 3, 0);
	logfile_close(&lf);
	test_open(&lf, false, &rep);
	cr_assert_eq(lf.last_seq, 15);
	cr_assert_eq(test_read(&lf, 10, 100, 1 << 20), 6);
	logfile_close(&lf);
}

/* Writes a log of n records, the last one alone in its batch; returns its
 * bytes and the offset of the last batch (its header). */
static char *test_make_log(uint64_t n, size_t *size, uint64_t *last_off, uint64_t *mid_off)
{
	logfile_t lf;
	logfile_report_t rep;
	test_open(&lf, false, &rep);
	test_append(&lf, n - 1, 0);
	test_append(&lf, 1, 0);
	*last_off = lf.offsets[n - 1] - TEST_BATCH_HEAD;
	if (mid_off)
		*mid_off = lf.offsets[n / 2 - 1];
	logfile_close(&lf);
	return test_file_bytes(size);
}

static bool test_all_zero(const char *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (p[i] != 0)
			return false;
	return true;
}

Test(logfile, torn_tail_cut_at_every_byte_of_the_last_batch)
{
	const uint64_t n = 5;
	size_t size;
	uint64_t last_off;
	char *orig = test_make_log(n, &size, &last_off, NULL);
	for (uint64_t cut = 0; last_off + cut < size; cut++) {
		test_file_put(orig, last_off + cut);
		logfile_t lf;
		logfile_report_t rep;
		test_open(&lf, false, &rep);
		/* the header's first bytes (first_seq's high bytes) are zero: a
		 * tail of only those is preallocated space, kept, not a torn batch */
		bool zeros = cut > 0 && test_all_zero(orig + last_off, cut);
		cr_assert_eq(rep.torn_tail_cut, cut > 0 && !zeros, "cut %lu", cut);
		if (cut > 0 && !zeros) {
			cr_assert_eq(rep.torn_offset, last_off);
			cr_assert_eq(rep.torn_bytes, cut);
		}
		cr_assert_eq(lf.last_seq, n - 1, "cut %lu", cut);
		cr_assert_eq(lf.size_bytes, last_off);
		cr_assert_eq(test_file_size(), last_off + (zeros ? cut : 0), "file trimmed, cut %lu", cut);
		test_append(&lf, 1, 0);
		cr_assert_eq(test_read(&lf, 1, 100, 1 << 20), (long)n);
		logfile_close(&lf);
		test_open(&lf, false, &rep);
		cr_assert_not(rep.torn_tail_cut);
		cr_assert_eq(lf.last_seq, n);
		logfile_close(&lf);
	}
	free(orig);
}

/* Writes batches of the given sizes; returns the file's bytes. */
static char *test_make_batches(const uint64_t *sizes, size_t nb, size_t *size, logfile_t *out)
{
	logfile_t lf;
	logfile_report_t rep;
	test_open(&lf, false, &rep);
	for (size_t i = 0; i < nb; i++)
		test_append(&lf, sizes[i], 0);
	char *b = test_file_bytes(size);
	if (out) {
		*out = lf;
		out->offsets = malloc(lf.last_seq * sizeof(uint64_t));
		memcpy(out->offsets, lf.offsets, lf.last_seq * sizeof(uint64_t));
		out->path = NULL;
		out->fd = -1;
	}
	logfile_close(&lf);
	return b;
}

/* Issue 11 item 4: page write-back is unordered, so a crash may leave a later
 * record of the last batch whole and an earlier one torn: cut, not refused. */
Test(logfile, torn_multi_record_last_batch_is_cut)
{
	const uint64_t sizes[] = { 3, 5 }; /* records 1..3, then 4..8 */
	size_t size;
	logfile_t idx;
	char *orig = test_make_batches(sizes, 2, &size, &idx);
	uint64_t batch_off = idx.offsets[3] - TEST_BATCH_HEAD;
	for (uint64_t torn = 4; torn <= 7; torn++) {
		char *b = malloc(size);
		memcpy(b, orig, size);
		/* record torn: its page never reached the disk (zeros); 8 is whole */
		memset(b + idx.offsets[torn - 1], 0, idx.offsets[torn] - idx.offsets[torn - 1]);
		test_file_put(b, size);
		logfile_t lf;
		logfile_report_t rep;
		test_open(&lf, false, &rep);
		cr_assert(rep.torn_tail_cut, "record %lu torn", torn);
		cr_assert_eq(rep.torn_offset, batch_off);
		cr_assert_eq(rep.torn_bytes, size - batch_off);
		cr_assert_eq(rep.torn_seq, 4);
		cr_assert_eq(lf.last_seq, 3, "the batch is cut whole");
		cr_assert_eq(test_file_size(), batch_off);
		test_append(&lf, 2, 0);
		cr_assert_eq(test_read(&lf, 1, 100, 1 << 20), 5);
		logfile_close(&lf);
		free(b);
	}
	free(idx.offsets);
	free(orig);
}

/* The same tear in a batch that another batch follows: that batch was
 * fdatasync'd (and acknowledged) before the next was written: refused. */
Test(logfile, torn_record_in_an_earlier_batch_is_damage)
{
	const uint64_t sizes[] = { 3, 5, 1 };
	size_t size;
	logfile_t idx;
	char *orig = test_make_batches(sizes, 3, &size, &idx);
	for (uint64_t bad = 4; bad <= 8; bad++) {
		char *b = malloc(size);
		memcpy(b, orig, size);
		memset(b + idx.offsets[bad - 1], 0, 20);
		test_file_put(b, size);
		logfile_t lf;
		logfile_report_t rep;
		cr_assert_eq(logfile_open(&lf, test_dir, false, &rep), -EBADMSG, "record %lu", bad);
		cr_assert_eq(rep.damage_seq, bad);
		cr_assert_eq(rep.damage_offset, idx.offsets[bad - 1]);
		cr_assert_eq(test_file_size(), size, "nothing cut");
		free(b);
	}
	/* A damaged batch header of an acknowledged batch: damage at the header. */
	uint64_t head = idx.offsets[3] - TEST_BATCH_HEAD;
	orig[head + 17] ^= 1;
	test_file_put(orig, size);
	logfile_t lf;
	logfile_report_t rep;
	cr_assert_eq(logfile_open(&lf, test_dir, false, &rep), -EBADMSG);
	cr_assert_eq(rep.damage_seq, 4);
	cr_assert_eq(rep.damage_offset, head);
	free(idx.offsets);
	free(orig);
}

/* The last batch's header did not reach the disk, its records did: torn. */
Test(logfile, torn_header_of_the_last_batch_is_cut)
{
	const uint64_t sizes[] = { 2, 4 };
	size_t size;
	logfile_t idx;
	char *orig = test_make_batches(sizes, 2, &size, &idx);
	uint64_t head = idx.offsets[2] - TEST_BATCH_HEAD;
	memset(orig + head, 0, TEST_BATCH_HEAD);
	test_file_put(orig, size);
	logfile_t lf;
	logfile_report_t rep;
	test_open(&lf, false, &rep);
	cr_assert(rep.torn_tail_cut);
	cr_assert_eq(rep.torn_offset, head);
	cr_assert_eq(lf.last_seq, 2);
	logfile_close(&lf);
	free(idx.offsets);
	free(orig);
}

Test(logfile, flipped_byte_in_a_middle_record_is_damage)
{
	const uint64_t n = 6;
	size_t size;
	uint64_t last_off, mid_off;
	char *orig = test_make_log(n, &size, &last_off, &mid_off);
	logfile_t lf;
	logfile_report_t rep;
	test_open(&lf, true, &rep);
	uint64_t mid_end = lf.offsets[n / 2];
	logfile_close(&lf);
	for (uint64_t at = mid_off; at < mid_end; at++) {
		orig[at] ^= 0x20;
		test_file_put(orig, size);
		int r = logfile_open(&lf, test_dir, false, &rep);
		cr_assert_eq(r, -EBADMSG, "byte %lu: %d", at, r);
		cr_assert_eq(rep.damage_seq, n / 2, "byte %lu", at);
		cr_assert_eq(rep.damage_offset, mid_off, "byte %lu", at);
		size_t now_n;
		char *now = test_file_bytes(&now_n);
		cr_assert_eq(now_n, size, "nothing changed");
		cr_assert_arr_eq(now, orig, size);
		free(now);
		orig[at] ^= 0x20;
	}
	free(orig);
}

Test(logfile, flipped_byte_in_the_last_record_is_a_torn_tail)
{
	const uint64_t n = 4;
	size_t size;
	uint64_t last_off;
	char *orig = test_make_log(n, &size, &last_off, NULL);
	for (uint64_t at = last_off; at < size; at++) {
		orig[at] ^= 0x01;
		test_file_put(orig, size);
		logfile_t lf;
		logfile_report_t rep;
		test_open(&lf, false, &rep);
		cr_assert(rep.torn_tail_cut, "byte %lu", at);
		cr_assert_eq(rep.torn_offset, last_off);
		cr_assert_eq(lf.last_seq, n - 1);
		cr_assert_eq(test_file_size(), last_off);
		test_append(&lf, 1, 0);
		logfile_close(&lf);
		orig[at] ^= 0x01;
	}
	free(orig);
}

Test(logfile, read_only_changes_nothing)
{
	const uint64_t n = 5;
	size_t size;
	uint64_t last_off;
	char *orig = test_make_log(n, &size, &last_off, NULL);
	test_file_put(orig, size - 3);
	logfile_t lf;
	logfile_report_t rep;
	test_open(&lf, true, &rep);
	cr_assert(rep.torn_tail_cut);
	cr_assert_eq(rep.torn_offset, last_off);
	cr_assert_eq(lf.last_seq, n - 1);
	cr_assert_eq(test_read(&lf, 1, 100, 1 << 20), (long)n - 1);
	cr_assert_eq(test_file_size(), size - 3, "read_only does not cut");
	logfile_t w;
	test_open(&w, false, &rep);
	cr_assert_eq(w.last_seq, n - 1, "a writer may open beside a reader");
	logfile_close(&w);
	logfile_close(&lf);
	free(orig);
}

Test(logfile, read_only_missing_file)
{
	logfile_t lf;
	logfile_report_t rep;
	cr_assert_eq(logfile_open(&lf, test_dir, true, &rep), -ENOENT);
	cr_assert_eq(access(test_path, F_OK), -1, "not created");
}

Test(logfile, second_writer_is_refused)
{
	logfile_t a, b;
	logfile_report_t rep;
	test_open(&a, false, &rep);
	cr_assert_eq(logfile_open(&b, test_dir, false, &rep), -EAGAIN);
	logfile_close(&a);
	test_open(&b, false, &rep);
	logfile_close(&b);
}

Test(logfile, file_header_checks)
{
	logfile_t lf;
	logfile_report_t rep;
	test_file_put("ESB", 3); /* torn while being created */
	test_open(&lf, false, &rep);
	cr_assert(rep.torn_tail_cut);
	cr_assert_eq(lf.last_seq, 0);
	cr_assert_eq(test_file_size(), TEST_HEADER_BYTES);
	test_append(&lf, 2, 0);
	logfile_close(&lf);

	size_t size;
	char *orig = test_file_bytes(&size);
	orig[1] = 'X';
	test_file_put(orig, size);
	cr_assert_eq(logfile_open(&lf, test_dir, false, &rep), -EBADMSG);
	cr_assert_eq(rep.damage_seq, 0);
	cr_assert_eq(rep.damage_offset, 0);
	orig[1] = 'S';
	orig[7] = 9;
	test_file_put(orig, size);
	cr_assert_eq(logfile_open(&lf, test_dir, false, &rep), -EPROTONOSUPPORT);
	cr_assert_eq(test_file_size(), size);
	free(orig);
}

Test(logfile, encode_rejects_bad_events)
{
	char *buf = NULL;
	size_t len = 0, cap = 0;
	uint8_t chain[LOGFILE_HASH_BYTES] = { 0 };
	char ev[TEST_EVENT_MAX];
	size_t n = test_event(1, 0, ev);
	cr_assert_eq(logfile_encode(0, ev, n, chain, &buf, &len, &cap), -EINVAL);
	cr_assert_eq(logfile_encode(1, ev, n - 1, chain, &buf, &len, &cap), -EINVAL, "truncated");
	cr_assert_eq(logfile_encode(1, "\x93\x01\x02\x03", 4, chain, &buf, &len, &cap), -EINVAL);
	char two[2 * TEST_EVENT_MAX];
	memcpy(two, ev, n);
	memcpy(two + n, ev, n);
	cr_assert_eq(logfile_encode(1, two, 2 * n, chain, &buf, &len, &cap), -EINVAL, "trailing");
	char *big = calloc(1, LOGFILE_RECORD_BODY_MAX + 1);
	cr_assert_eq(logfile_encode(1, big, LOGFILE_RECORD_BODY_MAX + 1, chain, &buf, &len, &cap),
	             -E2BIG);
	free(big);
	cr_assert_eq(len, 0);
	uint8_t zero[LOGFILE_HASH_BYTES] = { 0 };
	cr_assert_arr_eq(chain, zero, sizeof(zero), "chain untouched");
	cr_assert_eq(logfile_encode(1, ev, n, chain, &buf, &len, &cap), 0);
	cr_assert_eq(len, n + TEST_OVERHEAD);
	free(buf);
}

Test(logfile, failed_write_is_cut_back_and_retried)
{
	logfile_t lf;
	logfile_report_t rep;
	test_open(&lf, false, &rep);
	test_append(&lf, 3, 0);
	char *buf = NULL;
	size_t len = 0, cap = 0;
	uint8_t chain[LOGFILE_HASH_BYTES];
	memcpy(chain, lf.head_hash, sizeof(chain));
	for (uint64_t s = 4; s <= 40; s++) {
		char ev[TEST_EVENT_MAX];
		size_t n = test_event(s, 0, ev);
		cr_assert_eq(logfile_encode(s, ev, n, chain, &buf, &len, &cap), 0);
	}
	/* A "full disk": the file may not grow past half the batch. */
	signal(SIGXFSZ, SIG_IGN);
	struct rlimit lim = { .rlim_cur = lf.size_bytes + len / 2, .rlim_max = RLIM_INFINITY };
	cr_assert_eq(setrlimit(RLIMIT_FSIZE, &lim), 0);
	cr_assert_eq(logfile_write(&lf, lf.size_bytes, buf, len), -EFBIG);
	cr_assert_eq(test_file_size(), lf.size_bytes, "cut back");
	lim.rlim_cur = RLIM_INFINITY;
	cr_assert_eq(setrlimit(RLIMIT_FSIZE, &lim), 0);
	cr_assert_eq(logfile_write(&lf, lf.size_bytes, buf, len), 0);
	cr_assert_eq(logfile_commit(&lf, buf, len, 40, chain), 0);
	logfile_close(&lf);
	free(buf);
	test_open(&lf, false, &rep);
	cr_assert_not(rep.torn_tail_cut);
	cr_assert_eq(lf.last_seq, 40);
	cr_assert_eq(test_read(&lf, 1, 100, 1 << 20), 40);
	logfile_close(&lf);
}

static int test_count_cb(const logfile_record_t *r, void *arg)
{
	(void)r;
	(*(long *)arg)++;
	return 0;
}

/* --- version 1 files (written before version 2) -------------------------- */

/* Writes a version 1 log of n records, in one piece; returns its bytes and
 * the offset of each record (offs[0..n)). */
static char *test_make_v1(uint64_t n, size_t *size, uint64_t *offs)
{
	char *buf = malloc(TEST_HEADER_BYTES);
	size_t len = TEST_HEADER_BYTES, cap = TEST_HEADER_BYTES;
	memcpy(buf, "ESBLOG\0\1", TEST_HEADER_BYTES);
	uint8_t chain[LOGFILE_HASH_BYTES] = { 0 };
	for (uint64_t seq = 1; seq <= n; seq++) {
		char ev[TEST_EVENT_MAX];
		size_t evn = test_event(seq, 0, ev);
		offs[seq - 1] = len;
		cr_assert_eq(logfile_encode(seq, ev, evn, chain, &buf, &len, &cap), 0);
	}
	test_file_put(buf, len);
	*size = len;
	return buf;
}

Test(logfile, v1_file_is_read_and_appended_in_v1)
{
	uint64_t offs[6];
	size_t size;
	char *orig = test_make_v1(6, &size, offs);
	logfile_t lf;
	logfile_report_t rep;
	test_open(&lf, false, &rep);
	cr_assert_eq(lf.version, LOGFILE_VERSION_1);
	cr_assert_eq(lf.last_seq, 6);
	cr_assert_eq(test_read(&lf, 1, 100, 1 << 20), 6);
	test_append(&lf, 2, 0);
	cr_assert_eq(lf.offsets[6], size, "records only, no batch header");
	cr_assert_eq(test_file_size(), lf.size_bytes);
	logfile_close(&lf);
	test_open(&lf, true, &rep);
	cr_assert_eq(lf.version, LOGFILE_VERSION_1);
	cr_assert_eq(test_read(&lf, 1, 100, 1 << 20), 8);
	uint8_t h[LOGFILE_HASH_BYTES];
	cr_assert(logfile_hash_at(&lf, 3, h));
	cr_assert_arr_eq(h, orig + offs[3] - LOGFILE_HASH_BYTES, LOGFILE_HASH_BYTES);
	logfile_close(&lf);
	free(orig);
}

Test(logfile, v1_file_keeps_its_rules)
{
	uint64_t offs[6];
	size_t size;
	char *orig = test_make_v1(6, &size, offs);
	/* A torn last record is cut at the record ... */
	test_file_put(orig, size - 5);
	logfile_t lf;
	logfile_report_t rep;
	test_open(&lf, false, &rep);
	cr_assert(rep.torn_tail_cut);
	cr_assert_eq(rep.torn_offset, offs[5]);
	cr_assert_eq(lf.last_seq, 5);
	logfile_close(&lf);
	/* ... and a bad record followed by a whole one is damage (v1 has no batches). */
	memset(orig + offs[3], 0, 16);
	test_file_put(orig, size);
	cr_assert_eq(logfile_open(&lf, test_dir, false, &rep), -EBADMSG);
	cr_assert_eq(rep.damage_seq, 4);
	cr_assert_eq(rep.damage_offset, offs[3]);
	free(orig);
}

Test(logfile, new_file_is_v2_and_scanned)
{
	const uint64_t sizes[] = { 3, 1, 4 };
	size_t size;
	char *orig = test_make_batches(sizes, 3, &size, NULL);
	cr_assert_eq(orig[7], LOGFILE_VERSION_2);
	logfile_scan_report_t sr;
	long n = 0;
	cr_assert_eq(logfile_scan(test_dir, &sr, test_count_cb, &n), 0);
	cr_assert_eq(n, 8);
	cr_assert_eq(sr.last_seq, 8);
	cr_assert_eq(sr.version, LOGFILE_VERSION_2);
	cr_assert_eq(sr.end_offset, size);
	free(orig);
}

/* --- repair (esbank log-repair) -------------------------------------------- */

static void test_remove_copy(const char *path)
{
	if (path[0])
		cr_assert_eq(unlink(path), 0, "%s", path);
}

Test(logfile, repair_cuts_inside_a_batch_and_keeps_every_byte)
{
	const uint64_t sizes[] = { 3, 5, 2 };
	size_t size;
	logfile_t idx;
	char *orig = test_make_batches(sizes, 3, &size, &idx);
	uint64_t bad = 6, bad_off = idx.offsets[bad - 1];
	orig[bad_off + 30] ^= 0x40;
	test_file_put(orig, size);
	logfile_repair_t rp;
	cr_assert_eq(logfile_repair(test_dir, true, &rp), 0);
	cr_assert(rp.cut);
	cr_assert_eq(rp.cut_offset, bad_off);
	cr_assert_eq(test_file_size(), size, "a dry run changes nothing");
	cr_assert_eq(logfile_repair(test_dir, false, &rp), 0);
	cr_assert_eq(rp.scan.seq, bad);
	cr_assert_eq(rp.first_cut_seq, bad);
	cr_assert_eq(rp.kept_last_seq, bad - 1);
	cr_assert_eq(rp.cut_bytes, size - bad_off);
	cr_assert(rp.header_rewritten);
	cr_assert_eq(test_file_size(), bad_off);
	/* The copy holds exactly the bytes cut. */
	int fd = open(rp.copy_path, O_RDONLY);
	cr_assert_geq(fd, 0, "%s", rp.copy_path);
	char *copy = malloc(size);
	cr_assert_eq(read(fd, copy, size), (ssize_t)(size - bad_off));
	cr_assert_arr_eq(copy, orig + bad_off, size - bad_off);
	close(fd);
	free(copy);
	/* The log is whole again and the logger can go on. */
	logfile_t lf;
	logfile_report_t rep;
	test_open(&lf, false, &rep);
	cr_assert_not(rep.torn_tail_cut);
	cr_assert_eq(lf.last_seq, bad - 1);
	test_append(&lf, 1, 0);
	logfile_close(&lf);
	cr_assert_eq(logfile_repair(test_dir, false, &rp), 0);
	cr_assert_not(rp.cut, "nothing left to cut");
	test_remove_copy(rp.copy_path);
	free(idx.offsets);
	free(orig);
}

Test(logfile, repair_of_a_batch_first_record_cuts_the_batch)
{
	const uint64_t sizes[] = { 2, 3, 1 };
	size_t size;
	logfile_t idx;
	char *orig = test_make_batches(sizes, 3, &size, &idx);
	uint64_t head = idx.offsets[2] - TEST_BATCH_HEAD;
	orig[idx.offsets[2] + 5] ^= 1; /* seq 3, the first of the second batch */
	test_file_put(orig, size);
	logfile_repair_t rp;
	cr_assert_eq(logfile_repair(test_dir, false, &rp), 0);
	cr_assert_eq(rp.cut_offset, head);
	cr_assert_eq(rp.first_cut_seq, 3);
	cr_assert_not(rp.header_rewritten);
	cr_assert_eq(test_file_size(), head);
	char cut[TEST_BATCH_HEAD];
	int fd = open(rp.copy_path, O_RDONLY);
	cr_assert_eq(read(fd, cut, sizeof(cut)), (ssize_t)sizeof(cut));
	cr_assert_arr_eq(cut, orig + head, sizeof(cut));
	close(fd);
	test_remove_copy(rp.copy_path);
	free(idx.offsets);
	free(orig);
}

Test(logfile, repair_is_refused_while_a_writer_holds_the_log)
{
	logfile_t lf;
	logfile_report_t rep;
	test_open(&lf, false, &rep);
	test_append(&lf, 2, 0);
	logfile_repair_t rp;
	cr_assert_eq(logfile_repair(test_dir, false, &rp), -EAGAIN);
	logfile_close(&lf);
	cr_assert_eq(logfile_repair(test_dir, false, &rp), 0);
	cr_assert_not(rp.cut);
}

/* --- preallocated space (issue 15 item 3) ------------------------------- */

#define TEST_PREALLOC_BYTES (256 * 1024)

/* The same tests' files, with zeros after the last batch as the logger
 * leaves them when killed: n batches of sizes[], then zero-filled space. */
static char *test_make_prealloc(const uint64_t *sizes, size_t nb, size_t *size, logfile_t *idx)
{
	char *b = test_make_batches(sizes, nb, size, idx);
	b = realloc(b, *size + TEST_PREALLOC_BYTES);
	memset(b + *size, 0, TEST_PREALLOC_BYTES);
	*size += TEST_PREALLOC_BYTES;
	return b;
}

static int test_count_records_cb(const logfile_record_t *r, void *arg)
{
	(void)r;
	(*(uint64_t *)arg)++;
	return 0;
}

Test(logfile, zero_fill_ahead_is_the_end_of_the_log)
{
	logfile_t lf;
	logfile_report_t rep;
	test_open(&lf, false, &rep);
	test_append(&lf, 3, 0);
	uint64_t end = lf.size_bytes;
	uint64_t phys = end + TEST_PREALLOC_BYTES;
	cr_assert_eq(logfile_zero_fill(&lf, end, phys), 0);
	cr_assert_eq(test_file_size(), phys);
	test_append(&lf, 2, 0); /* written in place, in the zeroed space */
	end = lf.size_bytes;
	cr_assert_eq(test_file_size(), phys, "no size change");
	logfile_close(&lf); /* as if killed: the zeros stay */

	test_open(&lf, false, &rep);
	cr_assert_not(rep.torn_tail_cut, "zeros are not a torn tail");
	cr_assert_eq(lf.last_seq, 5);
	cr_assert_eq(lf.size_bytes, end);
	cr_assert_gt(lf.file_bytes, end);
	cr_assert_eq(test_read(&lf, 1, 100, 1 << 20), 5);
	test_append(&lf, 1, 0);
	logfile_close(&lf);

	logfile_scan_report_t srep;
	uint64_t count = 0;
	cr_assert_eq(logfile_scan(test_dir, &srep, test_count_records_cb, &count), 0);
	cr_assert_eq(count, 6);
	cr_assert_eq(srep.problem, LOGFILE_PROBLEM_NONE);

	logfile_repair_t rp;
	cr_assert_eq(logfile_repair(test_dir, true, &rp), 0);
	cr_assert_not(rp.cut, "nothing to repair in a zeroed tail");

	test_open(&lf, false, &rep);
	cr_assert_eq(logfile_trim(&lf), 0);
	cr_assert_eq(test_file_size(), lf.size_bytes, "a clean stop cuts the zeros");
	logfile_close(&lf);
	test_open(&lf, true, &rep);
	cr_assert_eq(lf.last_seq, 6);
	logfile_close(&lf);
}

/* A crash while a batch was written into zeroed space: any of its pages may
 * be missing (still zero). The batch is cut, and so are the zeros after it. */
Test(logfile, torn_batch_in_zeroed_space_is_cut)
{
	const uint64_t sizes[] = { 3, 5 };
	size_t size;
	logfile_t idx;
	char *orig = test_make_prealloc(sizes, 2, &size, &idx);
	uint64_t batch_off = idx.offsets[3] - TEST_BATCH_HEAD;
	uint64_t batch_end = idx.size_bytes;
	/* each 16-byte piece of the last batch missing, one at a time */
	for (uint64_t at = batch_off; at < batch_end; at += 16) {
		char *b = malloc(size);
		memcpy(b, orig, size);
		memset(b + at, 0, 16);
		test_file_put(b, size);
		logfile_t lf;
		logfile_report_t rep;
		test_open(&lf, false, &rep);
		cr_assert_eq(lf.last_seq, 3, "zeros at %lu", at);
		cr_assert_eq(lf.size_bytes, batch_off);
		cr_assert(rep.torn_tail_cut, "zeros at %lu", at);
		cr_assert_eq(rep.torn_offset, batch_off);
		cr_assert_eq(test_file_size(), batch_off);
		test_append(&lf, 1, 0);
		cr_assert_eq(test_read(&lf, 1, 100, 1 << 20), 4);
		logfile_close(&lf);
		free(b);
	}
	free(idx.offsets);
	free(orig);
}

/* Zeros where a batch should stand, then a later batch: acknowledged
 * history is missing, whatever the zeros look like. */
Test(logfile, zeroed_batch_before_another_is_damage)
{
	const uint64_t sizes[] = { 2, 3, 1 };
	size_t size;
	logfile_t idx;
	char *orig = test_make_prealloc(sizes, 3, &size, &idx);
	uint64_t head = idx.offsets[2] - TEST_BATCH_HEAD;
	/* the second batch's records lost their first bytes: damage */
	char *b = malloc(size);
	memcpy(b, orig, size);
	memset(b + idx.offsets[3], 0, 30);
	test_file_put(b, size);
	logfile_t lf;
	logfile_report_t rep;
	cr_assert_eq(logfile_open(&lf, test_dir, false, &rep), -EBADMSG);
	cr_assert_eq(rep.damage_seq, 4);
	cr_assert_eq(test_file_size(), size, "nothing cut");
	/* the second batch's header zeroed: its records and the next batch
	 * still chain, so damage too */
	memcpy(b, orig, size);
	memset(b + head, 0, TEST_BATCH_HEAD);
	test_file_put(b, size);
	cr_assert_eq(logfile_open(&lf, test_dir, false, &rep), -EBADMSG);
	cr_assert_eq(rep.damage_seq, 3);
	cr_assert_eq(rep.damage_offset, head);
	/* the offline scan names it too, without cutting */
	logfile_scan_report_t srep;
	uint64_t count = 0;
	cr_assert_eq(logfile_scan(test_dir, &srep, test_count_records_cb, &count), -EBADMSG);
	cr_assert_eq(count, 2);
	cr_assert_eq(srep.seq, 3);
	free(b);
	free(idx.offsets);
	free(orig);
}

/* ---- the checkpoint (DIR/events.chk, common/logcheckpoint.c) ---- */

static void test_checkpoint_path(char *out, size_t n)
{
	snprintf(out, n, "%s/%s", test_dir, LOGCHECKPOINT_NAME);
}

/* Opens as a writer and checks it ends at seq with head (and reads back). */
static void test_open_expect(logfile_t *lf, uint64_t seq, const uint8_t *head,
                             uint64_t checkpoint_seq)
{
	logfile_report_t rep;
	test_open(lf, false, &rep);
	cr_assert_not(rep.torn_tail_cut);
	cr_assert_eq(lf->last_seq, seq);
	cr_assert_arr_eq(lf->head_hash, head, LOGFILE_HASH_BYTES);
	cr_assert_eq(lf->checkpoint_seq, checkpoint_seq, "checkpoint_seq %llu",
	             (unsigned long long)lf->checkpoint_seq);
	cr_assert_eq(test_read(lf, 1, 1000, 1 << 20), (long)seq);
}

Test(logfile, checkpoint_spares_the_hashes_of_an_untouched_log)
{
	logfile_t lf;
	logfile_report_t rep;
	uint8_t head[LOGFILE_HASH_BYTES];
	test_open(&lf, false, &rep);
	test_append(&lf, 5, 0);
	test_append(&lf, 7, 0);
	memcpy(head, lf.head_hash, sizeof(head));
	uint64_t offsets[12];
	memcpy(offsets, lf.offsets, sizeof(offsets));
	cr_assert_eq(logfile_save_checkpoint(&lf), 0);
	logfile_close(&lf);

	test_open_expect(&lf, 12, head, 12);
	cr_assert_arr_eq(lf.offsets, offsets, sizeof(offsets));
	test_append(&lf, 3, 0); /* the log changes after the checkpoint */
	memcpy(head, lf.head_hash, sizeof(head));
	logfile_close(&lf);
	test_open_expect(&lf, 15, head, 0);
	cr_assert_eq(logfile_save_checkpoint(&lf), 0);
	logfile_close(&lf);
	test_open_expect(&lf, 15, head, 15);
	logfile_close(&lf);
	test_open(&lf, true, &rep); /* readers hash everything */
	cr_assert_eq(lf.checkpoint_seq, 0);
	logfile_close(&lf);
}

Test(logfile, checkpoint_does_not_hide_damage_written_after_it)
{
	logfile_t lf;
	logfile_report_t rep;
	test_open(&lf, false, &rep);
	test_append(&lf, 4, 0);
	test_append(&lf, 4, 0);
	test_append(&lf, 4, 0);
	uint64_t off = lf.offsets[5]; /* seq 6, in the middle batch */
	cr_assert_eq(logfile_save_checkpoint(&lf), 0);
	logfile_close(&lf);
	size_t n;
	char *b = test_file_bytes(&n);
	b[off + TEST_OVERHEAD - 32 + 2] ^= 0x20; /* a byte of seq 6's body, same length */
	test_file_put(b, n);
	cr_assert_eq(logfile_open(&lf, test_dir, false, &rep), -EBADMSG);
	cr_assert_eq(rep.damage_seq, 6);
	free(b);
}

Test(logfile, damaged_or_wrong_checkpoint_means_a_full_check)
{
	logfile_t lf;
	logfile_report_t rep;
	uint8_t head[LOGFILE_HASH_BYTES];
	char chk[160];
	test_checkpoint_path(chk, sizeof(chk));
	test_open(&lf, false, &rep);
	test_append(&lf, 6, 0);
	test_append(&lf, 6, 0);
	memcpy(head, lf.head_hash, sizeof(head));
	cr_assert_eq(logfile_save_checkpoint(&lf), 0);
	uint64_t end6 = lf.offsets[6] - TEST_BATCH_HEAD, end12 = lf.size_bytes;
	uint8_t h6[LOGFILE_HASH_BYTES];
	cr_assert(logfile_hash_at(&lf, 6, h6));
	/* saved for this very file (the stamp matches) but wrong in one field each */
	const logcheckpoint_t wrong[] = {
		{ .seq = 12, .end = end12 }, /* hash */
		{ .seq = 6, .end = end12 },  /* seq inside the last batch */
		{ .seq = 13, .end = end12 }, /* past the end */
	};
	for (size_t i = 0; i < sizeof(wrong) / sizeof(wrong[0]); i++) {
		logcheckpoint_t cp = wrong[i];
		memcpy(cp.hash, i == 1 ? h6 : head, LOGFILE_HASH_BYTES);
		if (i == 0)
			cp.hash[0] ^= 1;
		cr_assert_eq(logcheckpoint_save(lf.path, lf.fd, &cp), 0);
		logfile_close(&lf);
		test_open_expect(&lf, 12, head, 0);
	}
	logcheckpoint_t mid = { .seq = 6, .end = end6 }; /* right, at an earlier batch's end */
	memcpy(mid.hash, h6, LOGFILE_HASH_BYTES);
	cr_assert_eq(logcheckpoint_save(lf.path, lf.fd, &mid), -ESTALE, "the file is longer");
	cr_assert_eq(logfile_save_checkpoint(&lf), 0);
	logfile_close(&lf);
	size_t n;
	int fd = open(chk, O_RDWR);
	char byte;
	cr_assert_eq(pread(fd, &byte, 1, 30), 1);
	byte ^= 0x40;
	cr_assert_eq(pwrite(fd, &byte, 1, 30), 1); /* a damaged checkpoint */
	close(fd);
	test_open_expect(&lf, 12, head, 0);
	cr_assert_eq(logfile_save_checkpoint(&lf), 0);
	logfile_close(&lf);
	char *b = test_file_bytes(&n);
	test_file_put(b, n); /* the same bytes, written again: another change time */
	free(b);
	test_open_expect(&lf, 12, head, 0);
	logfile_close(&lf);
}

Test(logfile, checkpoint_of_a_v1_log)
{
	uint64_t offs[9];
	size_t size;
	char *orig = test_make_v1(9, &size, offs);
	logfile_t lf;
	logfile_report_t rep;
	uint8_t head[LOGFILE_HASH_BYTES];
	memcpy(head, orig + size - LOGFILE_HASH_BYTES, sizeof(head));
	test_open_expect(&lf, 9, head, 0);
	cr_assert_eq(logfile_save_checkpoint(&lf), 0);
	logfile_close(&lf);
	test_open_expect(&lf, 9, head, 9);
	cr_assert_eq(lf.version, LOGFILE_VERSION_1);
	cr_assert_arr_eq(lf.offsets, offs, sizeof(offs));
	cr_assert_eq(logfile_save_checkpoint(&lf), 0);
	logfile_close(&lf);
	orig[offs[4] + 14] ^= 0x08; /* seq 5's body: damage, whatever the checkpoint says */
	test_file_put(orig, size);
	cr_assert_eq(logfile_open(&lf, test_dir, false, &rep), -EBADMSG);
	cr_assert_eq(rep.damage_seq, 5);
	free(orig);
}

/* --- the split check: the hashes in threads (a writer's start-up) -------- */

#define TEST_SPLIT_EVENTS 70001 /* past LOGFILE_CHECK_PARALLEL_MIN: two shares or more */
#define TEST_SPLIT_BATCH 1000

/* A log long enough for the hashes to be checked in threads: its bytes, and
 * the offsets of its records (offsets[seq - 1]; free both). */
static char *test_make_split_log(size_t *size, uint64_t **offsets)
{
	logfile_t lf;
	logfile_report_t rep;
	test_open(&lf, false, &rep);
	while (lf.last_seq < TEST_SPLIT_EVENTS) {
		uint64_t left = TEST_SPLIT_EVENTS - lf.last_seq;
		test_append(&lf, left < TEST_SPLIT_BATCH ? left : TEST_SPLIT_BATCH, 0);
	}
	*offsets = malloc(TEST_SPLIT_EVENTS * sizeof(**offsets));
	cr_assert_not_null(*offsets);
	memcpy(*offsets, lf.offsets, TEST_SPLIT_EVENTS * sizeof(**offsets));
	logfile_close(&lf);
	return test_file_bytes(size);
}

Test(logfile, split_check_agrees_with_the_classic_check)
{
	size_t size;
	uint64_t *offs;
	char *orig = test_make_split_log(&size, &offs);
	logfile_t w, ro;
	logfile_report_t rep;
	test_open(&w, false, &rep); /* a writer: the split check */
	cr_assert_not(rep.torn_tail_cut);
	test_open(&ro, true, &rep); /* read-only: record after record */
	cr_assert_eq(w.last_seq, TEST_SPLIT_EVENTS);
	cr_assert_eq(ro.last_seq, TEST_SPLIT_EVENTS);
	cr_assert_arr_eq(w.head_hash, ro.head_hash, LOGFILE_HASH_BYTES);
	cr_assert_arr_eq(w.offsets, offs, TEST_SPLIT_EVENTS * sizeof(*offs));
	cr_assert_eq(w.size_bytes, ro.size_bytes);
	uint8_t a[LOGFILE_HASH_BYTES], b[LOGFILE_HASH_BYTES];
	for (uint64_t seq = 1; seq < TEST_SPLIT_EVENTS; seq += 9973) {
		cr_assert(logfile_hash_at(&w, seq, a) && logfile_hash_at(&ro, seq, b));
		cr_assert_arr_eq(a, b, LOGFILE_HASH_BYTES);
	}
	logfile_close(&ro);
	test_append(&w, 1, 0); /* and the writer appends after it */
	logfile_close(&w);
	test_open(&w, false, &rep);
	cr_assert_eq(w.last_seq, TEST_SPLIT_EVENTS + 1);
	logfile_close(&w);
	free(offs);
	free(orig);
}

/* A writer's open of the file (whose bytes are orig) finds damage at seq,
 * offset, and changes nothing. */
static void test_open_damaged(const char *orig, size_t size, uint64_t seq, uint64_t offset)
{
	logfile_t lf;
	logfile_report_t rep;
	int r = logfile_open(&lf, test_dir, false, &rep);
	cr_assert_eq(r, -EBADMSG, "seq %lu: %d", seq, r);
	cr_assert_eq(rep.damage_seq, seq);
	cr_assert_eq(rep.damage_offset, offset, "seq %lu", seq);
	size_t now_n;
	char *now = test_file_bytes(&now_n);
	cr_assert_eq(now_n, size, "nothing changed");
	cr_assert_arr_eq(now, orig, size);
	free(now);
}

Test(logfile, split_check_stops_on_a_damaged_record_in_any_share)
{
	size_t size;
	uint64_t *offs;
	char *orig = test_make_split_log(&size, &offs);
	/* the first share, both sides of the shares' boundary (about half way),
	 * the second share, and a record's stored hash (which the next record is
	 * hashed on, in another share when it ends one) */
	const uint64_t seqs[] = { 2, 777, TEST_SPLIT_EVENTS / 2, TEST_SPLIT_EVENTS / 2 + 1,
		                  TEST_SPLIT_EVENTS / 2 + 2, 60001, TEST_SPLIT_EVENTS - 5 };
	for (size_t i = 0; i < sizeof(seqs) / sizeof(seqs[0]); i++) {
		for (int where = 0; where < 2; where++) { /* 0: the body, 1: the stored hash */
			uint64_t seq = seqs[i];
			uint64_t end = seq < TEST_SPLIT_EVENTS ? offs[seq] : size;
			if (seq < TEST_SPLIT_EVENTS && (seq % TEST_SPLIT_BATCH) == 0)
				end -= TEST_BATCH_HEAD; /* the next record is after a batch header */
			uint64_t at = where ? end - 3 : offs[seq - 1] + 12 + 2;
			orig[at] ^= 0x10;
			test_file_put(orig, size);
			test_open_damaged(orig, size, seq, offs[seq - 1]);
			orig[at] ^= 0x10;
		}
	}
	free(offs);
	free(orig);
}

#define TEST_OVERLAP_EVENTS (LOGFILE_CHECK_OVERLAP_MIN + 1001)

static void test_overlap_progress(void *arg)
{
	(void)arg; /* the test polls logfile_check_advance */
}

/* Opens the log overlapped and advances until the check ends: its result;
 * the verified prefix never goes back and stays below stop_below. */
static int test_open_overlapped(logfile_t *lf, logfile_report_t *rep, uint64_t stop_below)
{
	logfile_check_t *chk;
	int r = logfile_open_overlapped(lf, test_dir, rep, test_overlap_progress, NULL, &chk);
	cr_assert_eq(r, 0);
	cr_assert_not_null(chk, "a long log without checkpoint is checked overlapped");
	cr_assert_geq(logfile_check_end(chk), TEST_OVERLAP_EVENTS);
	cr_assert_eq(lf->last_seq, 0);
	uint64_t seen = 0;
	while ((r = logfile_check_advance(lf, chk, rep)) == 0) {
		cr_assert_geq(lf->last_seq, seen);
		cr_assert_lt(lf->last_seq, stop_below);
		seen = lf->last_seq;
		usleep(1000);
	}
	return r;
}

Test(logfile, overlapped_check_agrees_with_the_classic_check)
{
	logfile_t lf, ro;
	logfile_report_t rep;
	test_open(&lf, false, &rep);
	while (lf.last_seq < TEST_OVERLAP_EVENTS) {
		uint64_t left = TEST_OVERLAP_EVENTS - lf.last_seq;
		test_append(&lf, left < TEST_SPLIT_BATCH ? left : TEST_SPLIT_BATCH, 0);
	}
	uint64_t mid = lf.offsets[TEST_OVERLAP_EVENTS / 2 - 1];
	logfile_close(&lf);
	cr_assert_eq(test_open_overlapped(&lf, &rep, UINT64_MAX), 1);
	test_open(&ro, true, &rep);
	cr_assert_eq(lf.last_seq, TEST_OVERLAP_EVENTS);
	cr_assert_arr_eq(lf.head_hash, ro.head_hash, LOGFILE_HASH_BYTES);
	cr_assert_eq(lf.size_bytes, ro.size_bytes);
	logfile_close(&ro);
	test_append(&lf, 1, 0); /* a writer after the check */
	logfile_close(&lf);
	/* a flipped body byte half way (a later batch follows: damage) */
	size_t size;
	char *orig = test_file_bytes(&size);
	orig[mid + 12 + 2] ^= 0x10;
	test_file_put(orig, size);
	logfile_t d;
	cr_assert_eq(test_open_overlapped(&d, &rep, TEST_OVERLAP_EVENTS / 2), -EBADMSG);
	cr_assert_eq(rep.damage_seq, TEST_OVERLAP_EVENTS / 2);
	cr_assert_eq(rep.damage_offset, mid);
	logfile_close(&d);
	free(orig);
}
