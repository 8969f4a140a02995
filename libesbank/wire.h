/*
 * wire.h - libesbank's blocking link to bus.sock (internal: not installed).
 * The esbank CLI (client/rpc.h) and the library's blocking API (esbank.h)
 * both stand on it, so the framing and the request envelope are coded once.
 *
 * A request is built in place: wire_request() starts a map with "op" and
 * "id" and returns the packer; the caller packs exactly nfields key/value
 * pairs, then calls wire_send(). wire_wait() reads frames until the one whose
 * "id" is the request's (or an id-0 error, which answers a request the server
 * could not read) and hands it out decoded.
 *
 * Invariant: the object wire_wait() returns, and body/body_len, point into
 * the link's buffers and stay valid until the next wire_wait() or
 * wire_close().
 */
#ifndef ESBANK_LIB_WIRE_H
#define ESBANK_LIB_WIRE_H

#include "frame.h"
#include "msg.h"

#include <msgpack.h>
#include <stddef.h>
#include <stdint.h>

/* How long a reply may take before a blocking call gives up. */
#define WIRE_REPLY_TIMEOUT_MS 60000
/* How long wire_open() waits for the bus to answer its ping. */
#define WIRE_HELLO_TIMEOUT_MS 5000
/* Replies carrying another id that are skipped before giving up. */
#define WIRE_STRAY_REPLIES_MAX 1000
#define WIRE_ZONE_CHUNK_BYTES 8192
#define WIRE_PATH_BYTES_MAX 108 /* sizeof(sun_path) on Linux */

typedef struct {
	int fd;
	uint64_t next_id;
	size_t frame_off; /* where the request being built starts in out */
	frame_reader_t reader;
	msg_buf_t out;
	msgpack_zone zone;
	const char *body; /* the last frame wire_wait() handed out */
	size_t body_len;
} wire_t;

/*
 * Resolves where (a run directory, or the path of a socket) to the socket's
 * path in path[WIRE_PATH_BYTES_MAX]. Returns 0 or -ENAMETOOLONG.
 */
int wire_sock_path(const char *where, char *path);

/*
 * Connects to the socket at where (see wire_sock_path), then, when check is
 * true, sends a ping and waits for its reply, so that a bus that closes the
 * connection of a user it does not admit (SO_PEERCRED) is told apart from a
 * working link. Returns 0 or a negative errno: -ENOENT (no socket),
 * -EACCES (no permission to reach it), -ECONNREFUSED (nobody listening),
 * -EPERM (the bus closed the connection unanswered: user not admitted),
 * -ETIMEDOUT (no answer to the ping), -ENAMETOOLONG. When why is not NULL it
 * receives a one-line explanation naming the place. wire_close() is safe
 * after a failed open.
 */
int wire_open(wire_t *w, const char *where, int check, char *why, size_t why_size);

/* Closes the link and frees the buffers (wiping them: requests carry passwords). */
void wire_close(wire_t *w);

/*
 * Starts a request for op with nfields further fields; sets *id to its id
 * and returns the packer to pack those fields with.
 */
msgpack_packer *wire_request(wire_t *w, const char *op, uint32_t nfields, uint64_t *id);

/* Writes the request built since wire_request(). Returns 0 or -errno. */
int wire_send(wire_t *w);

/*
 * Waits up to timeout_ms (-1: forever) for the reply to id and stores it in
 * *reply. Returns 0; -ETIMEDOUT; -ECONNRESET when the server closed the
 * connection; -EINTR when a signal arrived; -EMSGSIZE on a framing error;
 * -EBADMSG when a reply is not one msgpack map with an id; -EPROTO after
 * WIRE_STRAY_REPLIES_MAX frames for other ids; -ENOMEM; or another -errno.
 */
int wire_wait(wire_t *w, uint64_t id, int timeout_ms, msgpack_object *reply);

#endif
