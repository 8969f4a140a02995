/*
 * fuzz_frame.c - the frame decoder (common/frame.c) and what the bus does
 * with each frame body before routing it (msg_decode_map, proto_peek).
 *
 * Input: byte 0 seeds the chunk sizes the stream is cut into (as reads
 * from a socket would cut it); the rest is the byte stream. Checks: every
 * frame handed out has 1 <= L <= FRAME_BODY_MAX and its bytes are exactly
 * the ones in the stream; after a framing error the reader is not asked
 * again (as conn.c closes the connection); no byte is handed out twice.
 */
#include "fuzz.h"

#include "frame.h"
#include "msg.h"
#include "request.h"

#include <assert.h>
#include <errno.h>
#include <string.h>

static void fuzz_frame_body(const char *body, size_t len)
{
	msgpack_zone zone;
	msgpack_zone_init(&zone, 1024);
	msgpack_object map;
	if (msg_decode_map(body, len, &zone, &map) == 0) {
		assert(map.type == MSGPACK_OBJECT_MAP);
		uint64_t id = 0;
		proto_op_t op = PROTO_OP_NONE;
		proto_err_t e = proto_peek(&map, &id, &op);
		assert(e == PROTO_OK || e == PROTO_E_BAD_REQUEST || e == PROTO_E_UNKNOWN_OP);
		if (e == PROTO_OK)
			assert(proto_op_name(op) != NULL);
	}
	msgpack_zone_destroy(&zone);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1 || size > FUZZ_INPUT_BYTES_MAX)
		return 0;
	unsigned seed = data[0];
	const char *in = (const char *)data + 1;
	size_t left = size - 1, off = 0, consumed = 0;
	frame_reader_t r;
	frame_reader_init(&r);
	bool broken = false;
	while (off < left && !broken) {
		size_t chunk = 1 + (seed * 2654435761u >> 7) % 4096;
		seed = seed * 1103515245u + 12345u;
		if (chunk > left - off)
			chunk = left - off;
		/* half the time through frame_reader_space/commit, as conn.c reads */
		if (seed & 1) {
			size_t got = 0;
			char *p = frame_reader_space(&r, chunk, &got);
			assert(p && got >= chunk);
			memcpy(p, in + off, chunk);
			frame_reader_commit(&r, chunk);
		} else {
			assert(frame_reader_feed(&r, in + off, chunk) == 0);
		}
		off += chunk;
		const char *body;
		size_t len;
		int rc;
		while ((rc = frame_reader_next(&r, &body, &len)) != 0) {
			if (rc < 0) {
				assert(rc == -EMSGSIZE);
				uint32_t l = frame_get_header(in + consumed);
				assert(l == 0 || l > FRAME_BODY_MAX);
				broken = true;
				break;
			}
			assert(len >= 1 && len <= FRAME_BODY_MAX);
			assert(frame_get_header(in + consumed) == len);
			assert(consumed + FRAME_HEADER_BYTES + len <= off);
			assert(memcmp(body, in + consumed + FRAME_HEADER_BYTES, len) == 0);
			consumed += FRAME_HEADER_BYTES + len;
			fuzz_frame_body(body, len);
		}
	}
	frame_reader_free(&r);
	return 0;
}
