/*
 * call.c - requests and replies of one subcommand, with every failure turned
 * into a message and an exit code (see call.h).
 */
#include "call.h"

#include "diag.h"
#include "output.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#define CALL_WHY_BYTES_MAX 512

typedef struct {
	const char *code;
	const char *meaning; /* shown when the reply carries no message */
	int exit_code;
} call_error_t;

/* The error codes of PROTOCOL.md. */
static const call_error_t call_errors[] = {
	{ "bad_frame", "the server could not read the frame", EXIT_BUG },
	{ "bad_request", "not a valid request", EXIT_USAGE },
	{ "unknown_op", "the server does not know this operation", EXIT_BUG },
	{ "not_found", "no such account", EXIT_USAGE },
	{ "already_exists", "an account with that email exists", EXIT_USAGE },
	{ "already_verified", "the account is verified already", EXIT_USAGE },
	{ "wrong_code", "the verification code does not match", EXIT_USAGE },
	{ "not_verified", "an account in the operation is not verified", EXIT_USAGE },
	{ "insufficient_funds", "the balance would go below zero", EXIT_USAGE },
	{ "invalid_amount", "the amount must be from $0.01 to $10,000,000,000.00", EXIT_USAGE },
	{ "same_account", "cannot transfer to the same account", EXIT_USAGE },
	{ "key_conflict", "the idempotency key was used for another command", EXIT_USAGE },
	{ "auth_failed", "wrong account number or password", EXIT_USAGE },
	{ "unavailable", "the server cannot take commands just now", EXIT_TEMPORARY },
	{ "overloaded", "too many requests in flight", EXIT_TEMPORARY },
	{ "internal", "a fault inside the server; nothing was changed", EXIT_TEMPORARY },
	{ "balance_not_zero", "the account still holds money (--force erases it anyway)",
	  EXIT_USAGE },
	{ "already_erased", "the account's personal data is erased already", EXIT_USAGE },
};

static const call_error_t *call_error_find(const char *code)
{
	for (size_t i = 0; i < sizeof(call_errors) / sizeof(call_errors[0]); i++)
		if (strcmp(call_errors[i].code, code) == 0)
			return &call_errors[i];
	return NULL;
}

int call_fail_reply(call_t *c, const msgpack_object *reply)
{
	char code[OUTPUT_FIELD_MAX], message[OUTPUT_FIELD_MAX];
	const msgpack_object *m = msg_get(reply, "message");

	output_field(reply, "error", code);
	const call_error_t *e = call_error_find(code);
	if (m && m->type == MSGPACK_OBJECT_STR && m->via.str.size > 0)
		output_field(reply, "message", message);
	else
		snprintf(message, sizeof(message), "%s", e ? e->meaning : "unknown error");
	if (c->json)
		output_json_line(reply, "id");
	fprintf(stderr, "esbank: %s failed: %s (%s)\n", c->op, message, code);
	if (e && e->exit_code == EXIT_TEMPORARY)
		fprintf(stderr, "esbank: this is temporary; try again shortly\n");
	return e ? e->exit_code : EXIT_USAGE;
}

int call_fail_protocol(call_t *c, const char *why)
{
	fprintf(stderr, "esbank: %s failed: %s\n", c->op, why);
	return EXIT_TEMPORARY;
}

static int call_connect(call_t *c)
{
	char why[CALL_WHY_BYTES_MAX];
	int rc = rpc_open(&c->rpc, c->sock_path, why, sizeof(why));

	c->connected = true; /* rpc_open() set up what rpc_close() frees */
	if (rc == 0)
		return 0;
	fprintf(stderr, "esbank: %s\n", why);
	/* Wrong usage or a user the bus does not admit: trying again will not help. */
	if (rc == -ENAMETOOLONG || rc == -EACCES || rc == -EPERM)
		return EXIT_USAGE;
	return EXIT_TEMPORARY;
}

int call_begin(call_t *c, const char *op, bool command, uint32_t nfields, msgpack_packer **pk)
{
	bool keyed = command && c->key;
	bool dry = command && c->dry_run;

	c->op = op;
	c->command = command;
	if (!c->connected) {
		int rc = call_connect(c);
		if (rc)
			return rc;
	}
	*pk = rpc_request(&c->rpc, op, nfields + keyed + dry, &c->id);
	if (keyed)
		msg_pack_kv_str(*pk, "key", c->key);
	if (dry)
		msg_pack_kv_bool(*pk, "dry_run", true);
	return 0;
}

/* Explains a failure to get a reply; a command's fate is then unknown. */
static int call_fail_io(call_t *c, int err)
{
	const char *why;

	switch (err) {
	case -ETIMEDOUT: why = "no reply in time"; break;
	case -ECONNRESET:
	case -EPIPE: why = "the server closed the connection"; break;
	case -EMSGSIZE: why = "the server sent a frame of invalid length"; break;
	case -EBADMSG: why = "the server sent a reply that is not a msgpack map with an id"; break;
	case -EPROTO: why = "the server sent replies for other requests only"; break;
	default: why = strerror(-err); break;
	}
	fprintf(stderr, "esbank: %s failed: %s\n", c->op, why);
	if (c->command && c->key)
		fprintf(stderr, "esbank: it may or may not have taken effect; running it again "
				"with the same --key is safe\n");
	else if (c->command)
		fprintf(stderr, "esbank: it may or may not have taken effect; see 'esbank log' "
				"(a --key makes retries safe)\n");
	return EXIT_TEMPORARY;
}

/* True unless the reply says "ok": false (a frame without "ok" is no error). */
static bool call_reply_ok(const msgpack_object *reply)
{
	bool ok = true;
	msg_get_bool(reply, "ok", &ok);
	return ok;
}

int call_finish(call_t *c, int timeout_ms, msgpack_object *reply)
{
	int rc = rpc_send(&c->rpc);
	if (rc == 0)
		rc = rpc_wait(&c->rpc, c->id, timeout_ms, reply);
	if (rc < 0)
		return call_fail_io(c, rc);
	return call_reply_ok(reply) ? 0 : call_fail_reply(c, reply);
}

int call_next(call_t *c, msgpack_object *reply)
{
	int rc = rpc_wait(&c->rpc, c->id, -1, reply);
	if (rc == -EINTR)
		return rc;
	if (rc < 0)
		return call_fail_io(c, rc);
	return call_reply_ok(reply) ? 0 : call_fail_reply(c, reply);
}

void call_close(call_t *c)
{
	if (c->connected)
		rpc_close(&c->rpc);
	c->connected = false;
}
