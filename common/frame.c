/*
 * frame.c - length-prefixed frames; the format is described in frame.h.
 *
 * Invalid input: a length of 0 or over FRAME_BODY_MAX is reported as
 * -EMSGSIZE and nothing more is read from that stream. Whether the body is a
 * valid msgpack map is the codec's business (msg.c), not the framer's.
 */
#include "frame.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define FRAME_READER_CHUNK_BYTES (64 * 1024)

void frame_put_header(char out[FRAME_HEADER_BYTES], uint32_t body_len)
{
	out[0] = (char)(body_len >> 24);
	out[1] = (char)(body_len >> 16);
	out[2] = (char)(body_len >> 8);
	out[3] = (char)body_len;
}

uint32_t frame_get_header(const char in[FRAME_HEADER_BYTES])
{
	const unsigned char *u = (const unsigned char *)in;
	return (uint32_t)u[0] << 24 | (uint32_t)u[1] << 16 | (uint32_t)u[2] << 8 | u[3];
}

void frame_reader_init(frame_reader_t *r)
{
	memset(r, 0, sizeof(*r));
}

void frame_reader_free(frame_reader_t *r)
{
	free(r->buf);
	memset(r, 0, sizeof(*r));
}

/* Moves unconsumed bytes to the front so the buffer does not grow forever:
 * only when every byte was handed out (nothing to move) or the room behind
 * them is short, so a partial frame is not moved after every read. */
static void frame_reader_compact(frame_reader_t *r, size_t want)
{
	if (r->start == 0 || (r->start < r->len && r->cap - r->len >= want))
		return;
	memmove(r->buf, r->buf + r->start, r->len - r->start);
	r->len -= r->start;
	r->start = 0;
}

char *frame_reader_space(frame_reader_t *r, size_t want, size_t *got)
{
	if (want < FRAME_READER_CHUNK_BYTES)
		want = FRAME_READER_CHUNK_BYTES;
	frame_reader_compact(r, want);
	if (r->cap - r->len < want) {
		size_t cap = r->cap ? r->cap : FRAME_READER_CHUNK_BYTES;
		while (cap - r->len < want)
			cap *= 2;
		char *nb = realloc(r->buf, cap);
		if (!nb)
			return NULL;
		r->buf = nb;
		r->cap = cap;
	}
	*got = r->cap - r->len;
	return r->buf + r->len;
}

void frame_reader_commit(frame_reader_t *r, size_t n)
{
	r->len += n;
}

int frame_reader_feed(frame_reader_t *r, const char *data, size_t n)
{
	size_t got;
	char *space = frame_reader_space(r, n, &got);
	if (!space)
		return -ENOMEM;
	memcpy(space, data, n);
	frame_reader_commit(r, n);
	return 0;
}

int frame_reader_next(frame_reader_t *r, const char **body, size_t *body_len)
{
	size_t avail = r->len - r->start;
	if (avail < FRAME_HEADER_BYTES)
		return 0;
	uint32_t n = frame_get_header(r->buf + r->start);
	if (n == 0 || n > FRAME_BODY_MAX)
		return -EMSGSIZE;
	if (avail < FRAME_HEADER_BYTES + (size_t)n)
		return 0;
	*body = r->buf + r->start + FRAME_HEADER_BYTES;
	*body_len = n;
	r->start += FRAME_HEADER_BYTES + n;
	return 1;
}
