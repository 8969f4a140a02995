/*
 * frame.h - the wire framing shared by every socket in esbank.
 *
 * A frame is a 4-byte unsigned big-endian length L followed by L bytes that
 * hold exactly one msgpack map. 1 <= L <= FRAME_BODY_MAX. The same framing is
 * used on bus.sock (clients) and on every peer socket (bus <-> peers).
 *
 * frame_reader_t accumulates bytes from a stream and hands out whole frames.
 * Invariant: buf[0..len) holds bytes received and not yet consumed; a frame
 * is never handed out until all of its bytes are present.
 */
#ifndef ESBANK_FRAME_H
#define ESBANK_FRAME_H

#include <stddef.h>
#include <stdint.h>

#define FRAME_HEADER_BYTES 4
#define FRAME_BODY_MAX (1024 * 1024) /* 1 MiB, PROTOCOL.md */

typedef struct {
	char *buf;
	size_t len;   /* bytes held */
	size_t start; /* bytes at the front already handed out */
	size_t cap;
} frame_reader_t;

/* Writes the 4-byte big-endian header for a body of body_len bytes. */
void frame_put_header(char out[FRAME_HEADER_BYTES], uint32_t body_len);

/* Reads the length from a 4-byte header. */
uint32_t frame_get_header(const char in[FRAME_HEADER_BYTES]);

void frame_reader_init(frame_reader_t *r);
void frame_reader_free(frame_reader_t *r);

/*
 * Gives a buffer of at least want bytes at the end of the held data for the
 * caller to read into; returns NULL on allocation failure. The caller then
 * calls frame_reader_commit() with the number of bytes it stored.
 */
char *frame_reader_space(frame_reader_t *r, size_t want, size_t *got);
void frame_reader_commit(frame_reader_t *r, size_t n);

/* Copies n bytes in (for tests and for callers that own their buffers). */
int frame_reader_feed(frame_reader_t *r, const char *data, size_t n);

/*
 * Takes the next whole frame. Returns 1 and sets *body / *body_len (valid
 * until the next call that changes the reader) when one is ready, 0 when more
 * bytes are needed, -EMSGSIZE when the next frame's length is 0 or above
 * FRAME_BODY_MAX (the stream cannot be resynchronised: close it).
 */
int frame_reader_next(frame_reader_t *r, const char **body, size_t *body_len);

#endif
