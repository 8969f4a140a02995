/* test_frame.c - the frame header and the stream reader. */
#include "frame.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define TEST_FRAMES 3

/* Builds a stream of frames with bodies of the given lengths; returns it. */
static char *test_stream(const size_t *lens, int n, size_t *total)
{
	*total = 0;
	for (int i = 0; i < n; i++)
		*total += FRAME_HEADER_BYTES + lens[i];
	char *s = malloc(*total);
	cr_assert_not_null(s);
	char *p = s;
	for (int i = 0; i < n; i++) {
		frame_put_header(p, (uint32_t)lens[i]);
		p += FRAME_HEADER_BYTES;
		for (size_t j = 0; j < lens[i]; j++)
			*p++ = (char)(i * 31 + j);
	}
	return s;
}

static void test_check_body(int i, const char *body, size_t len, size_t want)
{
	cr_assert_eq(len, want, "frame %d", i);
	for (size_t j = 0; j < len; j++)
		cr_assert_eq(body[j], (char)(i * 31 + j), "frame %d byte %zu", i, j);
}

Test(frame, header_round_trip)
{
	char h[FRAME_HEADER_BYTES];
	frame_put_header(h, 0x01020304);
	cr_assert_eq(h[0], 1);
	cr_assert_eq(h[3], 4);
	cr_assert_eq(frame_get_header(h), 0x01020304);
	frame_put_header(h, 0xfffffffe);
	cr_assert_eq(frame_get_header(h), 0xfffffffe);
}

Test(frame, split_at_every_byte)
{
	const size_t lens[TEST_FRAMES] = { 1, 200, 7 };
	size_t total;
	char *s = test_stream(lens, TEST_FRAMES, &total);
	for (size_t cut = 0; cut <= total; cut++) {
		frame_reader_t r;
		frame_reader_init(&r);
		int got = 0;
		const char *body;
		size_t len;
		cr_assert_eq(frame_reader_feed(&r, s, cut), 0);
		while (frame_reader_next(&r, &body, &len) == 1) {
			test_check_body(got, body, len, lens[got]);
			got++;
		}
		cr_assert_eq(frame_reader_feed(&r, s + cut, total - cut), 0);
		int ret;
		while ((ret = frame_reader_next(&r, &body, &len)) == 1) {
			test_check_body(got, body, len, lens[got]);
			got++;
		}
		cr_assert_eq(ret, 0, "then waits for more");
		cr_assert_eq(got, TEST_FRAMES, "cut at %zu", cut);
		frame_reader_free(&r);
	}
	free(s);
}

Test(frame, one_byte_at_a_time)
{
	const size_t lens[TEST_FRAMES] = { 5, 70000, 3 };
	size_t total;
	char *s = test_stream(lens, TEST_FRAMES, &total);
	frame_reader_t r;
	frame_reader_init(&r);
	int got = 0;
	for (size_t i = 0; i < total; i++) {
		const char *body;
		size_t len;
		cr_assert_eq(frame_reader_feed(&r, s + i, 1), 0);
		int ret = frame_reader_next(&r, &body, &len);
		cr_assert_geq(ret, 0);
		if (ret == 1) {
			cr_assert_eq(got < TEST_FRAMES, 1);
			test_check_body(got, body, len, lens[got]);
			got++;
			size_t end = 0;
			for (int k = 0; k < got; k++)
				end += FRAME_HEADER_BYTES + lens[k];
			cr_assert_eq(i + 1, end, "handed out exactly when complete");
		}
	}
	cr_assert_eq(got, TEST_FRAMES);
	frame_reader_free(&r);
	free(s);
}

Test(frame, several_frames_in_one_feed)
{
	const size_t lens[TEST_FRAMES] = { 10, 1, 300 };
	size_t total;
	char *s = test_stream(lens, TEST_FRAMES, &total);
	frame_reader_t r;
	frame_reader_init(&r);
	cr_assert_eq(frame_reader_feed(&r, s, total), 0);
	const char *body;
	size_t len;
	for (int i = 0; i < TEST_FRAMES; i++) {
		cr_assert_eq(frame_reader_next(&r, &body, &len), 1);
		test_check_body(i, body, len, lens[i]);
	}
	cr_assert_eq(frame_reader_next(&r, &body, &len), 0);
	/* The reader is reusable after being drained. */
	cr_assert_eq(frame_reader_feed(&r, s, total), 0);
	cr_assert_eq(frame_reader_next(&r, &body, &len), 1);
	test_check_body(0, body, len, lens[0]);
	frame_reader_free(&r);
	free(s);
}

Test(frame, space_and_commit)
{
	const size_t lens[1] = { 1000 };
	size_t total;
	char *s = test_stream(lens, 1, &total);
	frame_reader_t r;
	frame_reader_init(&r);
	size_t got;
	char *p = frame_reader_space(&r, 10, &got);
	cr_assert_not_null(p);
	cr_assert_geq(got, 10);
	memcpy(p, s, 10);
	frame_reader_commit(&r, 10);
	const char *body;
	size_t len;
	cr_assert_eq(frame_reader_next(&r, &body, &len), 0);
	p = frame_reader_space(&r, total - 10, &got);
	cr_assert_geq(got, total - 10);
	memcpy(p, s + 10, total - 10);
	frame_reader_commit(&r, total - 10);
	cr_assert_eq(frame_reader_next(&r, &body, &len), 1);
	test_check_body(0, body, len, 1000);
	frame_reader_free(&r);
	free(s);
}

static int test_next_after_header(uint32_t n)
{
	frame_reader_t r;
	frame_reader_init(&r);
	char h[FRAME_HEADER_BYTES];
	frame_put_header(h, n);
	cr_assert_eq(frame_reader_feed(&r, h, sizeof(h)), 0);
	const char *body;
	size_t len;
	int ret = frame_reader_next(&r, &body, &len);
	frame_reader_free(&r);
	return ret;
}

Test(frame, bad_lengths)
{
	cr_assert_eq(test_next_after_header(0), -EMSGSIZE);
	cr_assert_eq(test_next_after_header(FRAME_BODY_MAX + 1), -EMSGSIZE);
	cr_assert_eq(test_next_after_header(0xffffffff), -EMSGSIZE);
	cr_assert_eq(test_next_after_header(FRAME_BODY_MAX), 0, "valid, waits for the body");
	cr_assert_eq(test_next_after_header(1), 0);
}

Test(frame, bad_length_after_a_good_frame)
{
	char s[FRAME_HEADER_BYTES * 2 + 2];
	frame_put_header(s, 2);
	s[4] = 'a';
	s[5] = 'b';
	frame_put_header(s + 6, 0);
	frame_reader_t r;
	frame_reader_init(&r);
	cr_assert_eq(frame_reader_feed(&r, s, sizeof(s)), 0);
	const char *body;
	size_t len;
	cr_assert_eq(frame_reader_next(&r, &body, &len), 1);
	cr_assert_eq(len, 2);
	cr_assert_eq(frame_reader_next(&r, &body, &len), -EMSGSIZE);
	cr_assert_eq(frame_reader_next(&r, &body, &len), -EMSGSIZE, "stays failed");
	frame_reader_free(&r);
}

Test(frame, exactly_one_mib_is_accepted)
{
	const size_t lens[2] = { FRAME_BODY_MAX, 2 };
	size_t total;
	char *s = test_stream(lens, 2, &total);
	frame_reader_t r;
	frame_reader_init(&r);
	const char *body;
	size_t len;
	cr_assert_eq(frame_reader_feed(&r, s, total - 7), 0);
	cr_assert_eq(frame_reader_next(&r, &body, &len), 0, "one byte of the body missing");
	cr_assert_eq(frame_reader_feed(&r, s + total - 7, 7), 0);
	cr_assert_eq(frame_reader_next(&r, &body, &len), 1);
	test_check_body(0, body, len, FRAME_BODY_MAX);
	cr_assert_eq(frame_reader_next(&r, &body, &len), 1);
	test_check_body(1, body, len, 2);
	frame_reader_free(&r);
	free(s);
}

/* Frames of many sizes read in reads of uneven sizes through space/commit:
 * every body comes out whole and in order, and the buffer stays bounded
 * (a partial frame is moved to the front only when the room is short). */
Test(frame, uneven_reads_of_many_frames_through_space_and_commit)
{
	enum { N = 2000 };
	static size_t lens[N];
	unsigned seed = 7;
	for (int i = 0; i < N; i++)
		lens[i] = 1 + (size_t)rand_r(&seed) % (i % 50 == 0 ? 200000 : 3000);
	size_t total;
	char *stream = test_stream(lens, N, &total);
	frame_reader_t r;
	frame_reader_init(&r);
	size_t fed = 0, body_at = 0;
	int got_n = 0;
	while (fed < total) {
		size_t room;
		char *space = frame_reader_space(&r, 1, &room);
		cr_assert(space);
		size_t n = 1 + (size_t)rand_r(&seed) % 70000;
		if (n > room)
			n = room;
		if (n > total - fed)
			n = total - fed;
		memcpy(space, stream + fed, n);
		frame_reader_commit(&r, n);
		fed += n;
		const char *body;
		size_t len;
		while (frame_reader_next(&r, &body, &len) == 1) {
			cr_assert_eq(len, lens[got_n]);
			cr_assert(memcmp(body, stream + body_at + FRAME_HEADER_BYTES, len) == 0);
			body_at += FRAME_HEADER_BYTES + len;
			got_n++;
		}
	}
	cr_assert_eq(got_n, N);
	cr_assert_leq(r.cap, (size_t)1 << 20);
	frame_reader_free(&r);
	free(stream);
}
