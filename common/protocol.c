/*
 * protocol.c - the wire names of ops and errors, the request envelope and
 * the reply envelopes (see protocol.h; the reply maps are described there).
 * Pure: no I/O, no state.
 */
#include "protocol.h"

#include "msg.h"

#include <assert.h>
#include <string.h>

static const char *const proto_err_names[] = {
	[PROTO_OK] = "ok",
	[PROTO_E_BAD_REQUEST] = "bad_request",
	[PROTO_E_UNKNOWN_OP] = "unknown_op",
	[PROTO_E_NOT_FOUND] = "not_found",
	[PROTO_E_ALREADY_EXISTS] = "already_exists",
	[PROTO_E_ALREADY_VERIFIED] = "already_verified",
	[PROTO_E_WRONG_CODE] = "wrong_code",
	[PROTO_E_NOT_VERIFIED] = "not_verified",
	[PROTO_E_INSUFFICIENT_FUNDS] = "insufficient_funds",
	[PROTO_E_INVALID_AMOUNT] = "invalid_amount",
	[PROTO_E_SAME_ACCOUNT] = "same_account",
	[PROTO_E_KEY_CONFLICT] = "key_conflict",
	[PROTO_E_AUTH_FAILED] = "auth_failed",
	[PROTO_E_UNAVAILABLE] = "unavailable",
	[PROTO_E_OVERLOADED] = "overloaded",
	[PROTO_E_INTERNAL] = "internal",
	[PROTO_DUPLICATE] = "duplicate",
	[PROTO_E_NOT_PRIMARY] = "not_primary",
	[PROTO_E_NOT_STANDBY] = "not_standby",
	[PROTO_E_BALANCE_NOT_ZERO] = "balance_not_zero",
	[PROTO_E_ALREADY_ERASED] = "already_erased",
};

const char *proto_err_name(proto_err_t e)
{
	if ((unsigned)e >= sizeof(proto_err_names) / sizeof(proto_err_names[0]))
		return "internal";
	return proto_err_names[e];
}

const char *proto_err_text(proto_err_t e)
{
	switch (e) {
	case PROTO_E_BAD_REQUEST: return "not a valid request";
	case PROTO_E_UNKNOWN_OP: return "op names no operation of the protocol";
	case PROTO_E_NOT_FOUND: return "no such account";
	case PROTO_E_ALREADY_EXISTS: return "an account with that email exists";
	case PROTO_E_ALREADY_VERIFIED: return "the account is verified already";
	case PROTO_E_WRONG_CODE: return "the verification code does not match";
	case PROTO_E_NOT_VERIFIED: return "an account in the operation is not verified";
	case PROTO_E_INSUFFICIENT_FUNDS: return "the balance would go below zero";
	case PROTO_E_INVALID_AMOUNT: return "amount must be from 1 to 1000000000000 cents";
	case PROTO_E_SAME_ACCOUNT: return "cannot transfer to the account it comes from";
	case PROTO_E_KEY_CONFLICT: return "idempotency key reused for a different command";
	case PROTO_E_AUTH_FAILED: return "wrong account or password";
	case PROTO_E_UNAVAILABLE: return "the server cannot take commands just now; retry later";
	case PROTO_E_OVERLOADED: return "too many requests in flight; retry later";
	case PROTO_E_NOT_PRIMARY: return "this group is not the primary; send commands to the primary";
	case PROTO_E_NOT_STANDBY: return "only a standby group can be promoted";
	case PROTO_E_BALANCE_NOT_ZERO: return "the account still holds money (force erases it anyway)";
	case PROTO_E_ALREADY_ERASED: return "the account's personal data is erased already";
	default: return "a fault inside the server; the command did not take effect";
	}
}

static const char *const proto_op_names[] = {
	[PROTO_OP_OPEN_ACCOUNT] = "open_account",
	[PROTO_OP_VERIFY_ACCOUNT] = "verify_account",
	[PROTO_OP_REISSUE_CODE] = "reissue_code",
	[PROTO_OP_TRANSFER] = "transfer",
	[PROTO_OP_WITHDRAW] = "withdraw",
	[PROTO_OP_GET_ACCOUNT] = "get_account",
	[PROTO_OP_AUTHENTICATE] = "authenticate",
	[PROTO_OP_SUM_TRANSACTIONS] = "sum_transactions",
	[PROTO_OP_INACTIVE_USERS] = "inactive_users",
	[PROTO_OP_EVENTS] = "events",
	[PROTO_OP_SUBSCRIBE] = "subscribe",
	[PROTO_OP_STATUS] = "status",
	[PROTO_OP_PING] = "ping",
	[PROTO_OP_PROMOTE] = "promote",
	[PROTO_OP_TRANSFERS] = "transfers",
	[PROTO_OP_METRICS] = "metrics",
	[PROTO_OP_STATEMENT] = "statement",
	[PROTO_OP_ERASE_ACCOUNT] = "erase_account",
};
#define PROTO_OPS_N (sizeof(proto_op_names) / sizeof(proto_op_names[0]))

proto_op_t proto_op_parse(const char *s, size_t n)
{
	for (unsigned op = 1; op < PROTO_OPS_N; op++)
		if (strlen(proto_op_names[op]) == n && memcmp(proto_op_names[op], s, n) == 0)
			return (proto_op_t)op;
	return PROTO_OP_NONE;
}

const char *proto_op_name(proto_op_t op)
{
	if ((unsigned)op == 0 || (unsigned)op >= PROTO_OPS_N)
		return NULL;
	return proto_op_names[op];
}

bool proto_op_is_command(proto_op_t op)
{
	return (op >= PROTO_OP_OPEN_ACCOUNT && op <= PROTO_OP_WITHDRAW) || op == PROTO_OP_TRANSFERS ||
	       op == PROTO_OP_ERASE_ACCOUNT;
}

proto_err_t proto_peek(const msgpack_object *map, uint64_t *id, proto_op_t *op)
{
	assert(id && op);
	*id = 0;
	*op = PROTO_OP_NONE;
	if (!map || map->type != MSGPACK_OBJECT_MAP)
		return PROTO_E_BAD_REQUEST;
	if (msg_get_u64(map, "id", id) < 0) {
		*id = 0;
		return PROTO_E_BAD_REQUEST;
	}
	const char *s;
	size_t n;
	if (msg_get_str(map, "op", &s, &n) < 0)
		return PROTO_E_BAD_REQUEST;
	*op = proto_op_parse(s, n);
	return *op == PROTO_OP_NONE ? PROTO_E_UNKNOWN_OP : PROTO_OK;
}

/* An optional unsigned field: absent or nil leaves *present false. */
static proto_err_t proto_opt_uint(const msgpack_object *map, const char *name, uint64_t *v,
                                  bool *present)
{
	const msgpack_object *o = msg_get(map, name);
	*present = false;
	if (!o || o->type == MSGPACK_OBJECT_NIL)
		return PROTO_OK;
	if (o->type != MSGPACK_OBJECT_POSITIVE_INTEGER)
		return PROTO_E_BAD_REQUEST;
	*v = o->via.u64;
	*present = true;
	return PROTO_OK;
}

proto_err_t proto_decode_read_args(const msgpack_object *map, proto_op_t op,
                                   proto_read_args_t *out, const char **why)
{
	assert(op == PROTO_OP_EVENTS || op == PROTO_OP_SUBSCRIBE);
	bool events = op == PROTO_OP_EVENTS, has_limit;
	uint64_t limit = PROTO_EVENTS_LIMIT_DEFAULT;
	memset(out, 0, sizeof(*out));
	out->from_seq = events ? 1 : 0;
	if (proto_opt_uint(map, "from", &out->from_seq, &out->has_from) != PROTO_OK) {
		*why = "from must be a sequence number (a non-negative integer)";
		return PROTO_E_BAD_REQUEST;
	}
	if (events && proto_opt_uint(map, "limit", &limit, &has_limit) != PROTO_OK) {
		*why = "limit must be a non-negative integer";
		return PROTO_E_BAD_REQUEST;
	}
	out->limit = limit > PROTO_EVENTS_LIMIT_MAX ? PROTO_EVENTS_LIMIT_MAX : limit;
	return PROTO_OK;
}

/* An optional integer field that fits int64: PROTO_OK (absent or valid). */
static proto_err_t proto_opt_int(const msgpack_object *map, const char *key, int64_t *v,
                                 bool *present)
{
	const msgpack_object *o = msg_get(map, key);
	*present = false;
	if (!o)
		return PROTO_OK;
	if (o->type == MSGPACK_OBJECT_NEGATIVE_INTEGER)
		*v = o->via.i64;
	else if (o->type == MSGPACK_OBJECT_POSITIVE_INTEGER && o->via.u64 <= INT64_MAX)
		*v = (int64_t)o->via.u64;
	else
		return PROTO_E_BAD_REQUEST;
	*present = true;
	return PROTO_OK;
}

/* 16 decimal digits, the first not zero, as a number; false otherwise. */
static bool proto_account_number(const char *s, size_t n, uint64_t *out)
{
	uint64_t v = 0;
	if (n != 16 || s[0] < '1' || s[0] > '9')
		return false;
	for (size_t i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return false;
		v = v * 10 + (uint64_t)(s[i] - '0');
	}
	*out = v;
	return true;
}

proto_err_t proto_decode_statement_args(const msgpack_object *map, proto_statement_args_t *out,
                                        const char **why)
{
	const char *s;
	size_t n;
	bool has_after, has_limit;
	memset(out, 0, sizeof(*out));
	out->since_ms = INT64_MIN;
	out->until_ms = INT64_MAX;
	out->limit = PROTO_STATEMENT_LIMIT_MAX;
	if (msg_get_str(map, "account", &s, &n) < 0)
		*why = "account must be a string";
	else if (proto_opt_int(map, "since", &out->since_ms, &out->has_since) != PROTO_OK ||
	         proto_opt_int(map, "until", &out->until_ms, &out->has_until) != PROTO_OK)
		*why = "since and until must be times in ms since the epoch (integers)";
	else if (out->since_ms > out->until_ms)
		*why = "since must not be after until";
	else if (proto_opt_uint(map, "after_seq", &out->after_seq, &has_after) != PROTO_OK)
		*why = "after_seq must be a sequence number (a non-negative integer)";
	else if (proto_opt_uint(map, "limit", &out->limit, &has_limit) != PROTO_OK ||
	         out->limit == 0)
		*why = "limit must be a positive integer";
	else
		*why = NULL;
	if (*why)
		return PROTO_E_BAD_REQUEST;
	out->account_valid = proto_account_number(s, n, &out->account);
	if (out->limit > PROTO_STATEMENT_LIMIT_MAX)
		out->limit = PROTO_STATEMENT_LIMIT_MAX;
	return PROTO_OK;
}

void proto_pack_error(msgpack_packer *pk, uint64_t id, proto_err_t err, const char *message)
{
	assert(pk && err != PROTO_OK && err != PROTO_DUPLICATE);
	if (!message)
		message = proto_err_text(err);
	msgpack_pack_map(pk, 4);
	msg_pack_kv_u64(pk, "id", id);
	msg_pack_kv_bool(pk, "ok", false);
	msg_pack_kv_str(pk, "error", proto_err_name(err));
	msg_pack_kv_strn(pk, "message", message, strnlen(message, PROTO_MESSAGE_BYTES_MAX));
}

void proto_pack_ok(msgpack_packer *pk, uint64_t id, uint32_t extra)
{
	assert(pk);
	msgpack_pack_map(pk, 2 + extra);
	msg_pack_kv_u64(pk, "id", id);
	msg_pack_kv_bool(pk, "ok", true);
}
