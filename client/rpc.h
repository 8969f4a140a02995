/*
 * rpc.h - the CLI's names for its link to bus.sock. The link itself is
 * libesbank's wire layer (libesbank/wire.h): the framing, the request
 * envelope and the reply matching are coded there once, for the library's
 * users and for this CLI alike. The CLI packs each op's fields itself
 * (commands.c) and prints replies as msgpack objects (output.c), so it uses
 * that layer rather than esbank.h's plain-C replies.
 */
#ifndef ESBANK_CLIENT_RPC_H
#define ESBANK_CLIENT_RPC_H

#include "wire.h"

/* How long a reply may take before the client gives up (exit 111). */
#define RPC_REPLY_TIMEOUT_MS WIRE_REPLY_TIMEOUT_MS

typedef wire_t rpc_t;

/* wire_open() with the ping check: see wire.h for the errors and why. */
static inline int rpc_open(rpc_t *r, const char *where, char *why, size_t why_size)
{
	return wire_open(r, where, 1, why, why_size);
}

static inline void rpc_close(rpc_t *r)
{
	wire_close(r);
}

static inline msgpack_packer *rpc_request(rpc_t *r, const char *op, uint32_t nfields,
					  uint64_t *id)
{
	return wire_request(r, op, nfields, id);
}

static inline int rpc_send(rpc_t *r)
{
	return wire_send(r);
}

static inline int rpc_wait(rpc_t *r, uint64_t id, int timeout_ms, msgpack_object *reply)
{
	return wire_wait(r, id, timeout_ms, reply);
}

#endif
