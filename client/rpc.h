/*
 * rpc.h - the client's side of bus.sock: one blocking connection, requests
 * framed and packed per PROTOCOL.md, replies matched to requests by id.
 *
 * A request is built in place: rpc_request() starts a map with "op" and "id"
 * and returns the packer; the caller packs exactly nfields key/value pairs,
 * then calls rpc_send(). rpc_wait() reads frames until the one whose "id" is
 * the request's (or an id-0 error, which answers a request the server could
 * not read) and hands it out decoded.
 *
 * Invariant: the object rpc_wait() returns points into the connection's
 * buffers and stays valid until the next rpc_wait() or rpc_close().
 */
#ifndef ESBANK_CLIENT_RPC_H
#define ESBANK_CLIENT_RPC_H

#include "frame.h"
#include "msg.h"

#include <msgpack.h>
#include <stdint.h>

/* How long a reply may take before the client gives up (exit 111). */
#define RPC_REPLY_TIMEOUT_MS 60000
/* Replies carrying another id that are skipped before giving up. */
#define RPC_STRAY_REPLIES_MAX 1000
#define RPC_ZONE_CHUNK_BYTES 8192

typedef struct {
	int fd;
	uint64_t next_id;
	size_t frame_off; /* where the request being built starts in out */
	frame_reader_t reader;
	msg_buf_t out;
	msgpack_zone zone;
} rpc_t;

/*
 * Connects to the Unix socket at path. Returns 0, -ENAMETOOLONG when path
 * does not fit a socket address, or the negative errno of socket/connect
 * (-ENOENT: no socket file, -ECONNREFUSED: nobody listening).
 */
int rpc_open(rpc_t *r, const char *path);
/* Closes the connection and frees the buffers; safe after a failed open. */
void rpc_close(rpc_t *r);

/*
 * Starts a request for op with nfields further fields; sets *id to its id
 * and returns the packer to pack those fields with.
 */
msgpack_packer *rpc_request(rpc_t *r, const char *op, uint32_t nfields, uint64_t *id);

/* Writes the request built since rpc_request(). Returns 0 or -errno. */
int rpc_send(rpc_t *r);

/*
 * Waits up to timeout_ms (-1: forever) for the reply to id and stores it in
 * *reply. Returns 0; -ETIMEDOUT; -ECONNRESET when the server closed the
 * connection; -EINTR when a signal arrived; -EMSGSIZE on a framing error;
 * -EBADMSG when a reply is not one msgpack map; -EPROTO after
 * RPC_STRAY_REPLIES_MAX frames for other ids; -ENOMEM; or another -errno.
 */
int rpc_wait(rpc_t *r, uint64_t id, int timeout_ms, msgpack_object *reply);

#endif
