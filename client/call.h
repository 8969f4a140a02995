/*
 * call.h - one subcommand's conversation with the server: connecting,
 * sending a request, waiting for its reply, and turning every failure
 * (cannot connect, no reply, an error reply) into a message on stderr and an
 * exit code.
 *
 * Error replies are printed as "esbank: <op> failed: <message> (<code>)";
 * with --json the error reply is also printed on stdout as a JSON object.
 * Exit codes: 100 for a rejection (not_found, insufficient_funds, ...), 111
 * when trying again later may work (cannot connect, no reply, unavailable,
 * overloaded, internal), 101 when the server says this client broke the
 * protocol (bad_frame, unknown_op).
 */
#ifndef ESBANK_CLIENT_CALL_H
#define ESBANK_CLIENT_CALL_H

#include "rpc.h"

#include <stdbool.h>
#include <stdint.h>

typedef struct {
	const char *sock_path; /* RUN/bus.sock */
	const char *key;       /* idempotency key for commands, or NULL */
	bool json;             /* --json */
	bool dry_run;          /* --dry-run: commands carry "dry_run": true */
	bool connected;        /* rpc holds an open connection */
	const char *op;        /* op of the request in flight, for messages */
	bool command;          /* that op changes state */
	uint64_t id;           /* its id */
	rpc_t rpc;
} call_t;

/*
 * Connects on first use and starts a request for op with nfields fields,
 * plus "key" when command is true and a key was given. Sets *pk to the packer
 * for the caller's fields. Returns 0 or the exit code after printing why.
 */
int call_begin(call_t *c, const char *op, bool command, uint32_t nfields, msgpack_packer **pk);

/*
 * Sends the request and waits up to timeout_ms (-1: forever) for its reply.
 * Returns 0 with *reply set when it is not an error reply, otherwise the
 * exit code after printing why.
 */
int call_finish(call_t *c, int timeout_ms, msgpack_object *reply);

/* Waits for a further frame for the request in flight (subscribe). Returns
 * 0, -EINTR when a signal arrived, or the exit code after printing why. */
int call_next(call_t *c, msgpack_object *reply);

/* Prints an error reply and returns its exit code. */
int call_fail_reply(call_t *c, const msgpack_object *reply);

/* Prints "esbank: <op> failed: <why>" for a reply that breaks the protocol. */
int call_fail_protocol(call_t *c, const char *why);

/* Closes the connection, if any. */
void call_close(call_t *c);

#endif
