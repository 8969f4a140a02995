/*
 * request.c - decoding client requests and packing replies (see request.h and
 * PROTOCOL.md).
 *
 * request_decode() turns a request map into a ledger_cmd_t, applying every
 * bad_request rule of PROTOCOL.md and nothing more. Choices where the
 * protocol leaves room:
 *   - "amount": any msgpack integer is accepted here; a negative value is kept
 *     as is and a positive one above INT64_MAX becomes INT64_MAX, so that the
 *     ledger answers invalid_amount for both. A float, string, nil, ... is
 *     bad_request.
 *   - an account field that is a string but not 16 digits (first not 0) gets
 *     account_valid = false and, in account (or to), the first 8 bytes of the
 *     string's BLAKE2b hash, so that two equal invalid strings still compare
 *     equal (transfer answers same_account before not_found).
 *   - "key" is read for commands only; on a query it is an unknown key.
 *   - optional query fields (year, month, day, days, from, limit): a nil
 *     value counts as absent; otherwise they must be non-negative integers.
 *     year is 1..REQUEST_YEAR_MAX, month 1..12, day 1..31; day needs month,
 *     month needs year. days above REQUEST_DAYS_MAX count as that maximum.
 *     limit 0 asks for no events (only last_seq); above
 *     REQUEST_EVENTS_LIMIT_MAX it counts as the maximum.
 *   - emails: ledger_email_valid() (common/ledger_email.c) decides.
 *   - erase_account's "force": absent or nil (false) or a boolean.
 *   - "dry_run" (commands only; on a query it is an unknown key): absent
 *     means false; any value but a boolean, nil included, is bad_request.
 *     It is not part of the fingerprint: a dry run with a used key answers
 *     what the real command would (a duplicate or key_conflict).
 *     "transfers" refuses any "dry_run" with bad_request.
 *
 * The fingerprint cmd->fp is the first LEDGER_FP_BYTES (16) of BLAKE2b over
 * a canonical encoding of the command (it is stored in the log, so it must
 * never change):
 *   "esbank-fp-1" | u8 op | field...
 * where each field is u8 tag | u32 little-endian length | bytes, in this
 * order per op (the password is never part of it):
 *   open_account   'e' email (lower-cased)
 *   verify_account 'a' account (the string as sent), 'c' code
 *   reissue_code   'a' account
 *   transfer       'a' from, 't' to, 'm' amount (int64, 8 bytes LE)
 *   withdraw       'a' account, 'm' amount
 *   erase_account  'a' account, 'f' force (1 byte: 0 or 1)
 * Each item of "transfers" gets the fingerprint of a single transfer (op
 * byte PROTO_OP_TRANSFER), so one key means the same thing in both ops.
 *
 * "transfers" (request_decode_transfers): "transfers" is an array of 1 to
 * REQUEST_TRANSFERS_MAX maps, each decoded with the rules of a single
 * transfer; "atomic" is absent, nil or a boolean. request_decode() answers
 * bad_request for it: it is decoded whole, by request_decode_transfers().
 */
#include "request.h"

#include <assert.h>
#include <errno.h>
#include <stdlib.h>
#include <sodium.h>
#include <string.h>

#define REQUEST_FP_DOMAIN "esbank-fp-1"

/* ---- field readers: each returns PROTO_OK or PROTO_E_BAD_REQUEST ---- */

typedef struct {
	const msgpack_object *map;
	ledger_cmd_t *cmd;
	const char *why;
	/* the strings as sent, for the fingerprint */
	const char *from_s, *to_s;
	size_t from_n, to_n;
	char email_lower[LEDGER_EMAIL_BYTES_MAX + 1];
} request_ctx_t;

static proto_err_t request_bad(request_ctx_t *c, const char *why)
{
	c->why = why;
	return PROTO_E_BAD_REQUEST;
}

static uint64_t request_hash64(const char *s, size_t n)
{
	uint8_t h[8];
	crypto_generichash(h, sizeof(h), (const unsigned char *)s, n, NULL, 0);
	uint64_t v = 0;
	for (int i = 0; i < 8; i++)
		v = (v << 8) | h[i];
	return v;
}

static proto_err_t request_account(request_ctx_t *c, const char *name, const char *why,
				    uint64_t *number, bool *valid, const char **s, size_t *n)
{
	if (msg_get_str(c->map, name, s, n) < 0)
		return request_bad(c, why);
	*valid = ledger_account_parse(*s, *n, number);
	if (!*valid)
		*number = request_hash64(*s, *n);
	return PROTO_OK;
}

static proto_err_t request_amount(request_ctx_t *c)
{
	const msgpack_object *o = msg_get(c->map, "amount");
	if (o && o->type == MSGPACK_OBJECT_NEGATIVE_INTEGER) {
		c->cmd->amount = o->via.i64;
		return PROTO_OK;
	}
	if (!o || o->type != MSGPACK_OBJECT_POSITIVE_INTEGER)
		return request_bad(c, "amount must be an integer number of cents");
	c->cmd->amount = o->via.u64 > INT64_MAX ? INT64_MAX : (int64_t)o->via.u64;
	return PROTO_OK;
}

static proto_err_t request_key(request_ctx_t *c)
{
	const char *s;
	size_t n;
	int rc = msg_get_str(c->map, "key", &s, &n);
	if (rc == -ENOENT)
		return PROTO_OK;
	if (rc < 0 || n < 1 || n > LEDGER_KEY_BYTES_MAX)
		return request_bad(c, "key must be a string of 1 to 64 bytes");
	c->cmd->has_key = true;
	c->cmd->key = s;
	c->cmd->key_len = n;
	return PROTO_OK;
}

/* "dry_run" on a command: absent (false) or a boolean; anything else, nil too, is bad. */
static proto_err_t request_dry_run(request_ctx_t *c)
{
	const msgpack_object *o = msg_get(c->map, "dry_run");
	if (!o)
		return PROTO_OK;
	if (o->type != MSGPACK_OBJECT_BOOLEAN)
		return request_bad(c, "dry_run must be a boolean");
	c->cmd->dry_run = o->via.boolean;
	return PROTO_OK;
}

/* An optional non-negative integer; nil counts as absent. */
static proto_err_t request_opt_uint(request_ctx_t *c, const char *name, const char *why,
				     uint64_t *v, bool *present)
{
	const msgpack_object *o = msg_get(c->map, name);
	*present = false;
	if (!o || o->type == MSGPACK_OBJECT_NIL)
		return PROTO_OK;
	if (o->type != MSGPACK_OBJECT_POSITIVE_INTEGER)
		return request_bad(c, why);
	*v = o->via.u64;
	*present = true;
	return PROTO_OK;
}

/* ---- one decoder per op ---- */

#define REQUEST_WHY_ACCOUNT "account must be a string (the 16-digit account number)"
#define REQUEST_WHY_FROM "from must be a string (the 16-digit account number)"
#define REQUEST_WHY_TO "to must be a string (the 16-digit account number)"

static proto_err_t request_the_account(request_ctx_t *c)
{
	ledger_cmd_t *cmd = c->cmd;
	return request_account(c, "account", REQUEST_WHY_ACCOUNT, &cmd->account,
			       &cmd->account_valid, &c->from_s, &c->from_n);
}

static proto_err_t request_erase_account(request_ctx_t *c)
{
	const msgpack_object *o = msg_get(c->map, "force");
	if (o && o->type != MSGPACK_OBJECT_NIL && o->type != MSGPACK_OBJECT_BOOLEAN)
		return request_bad(c, "force must be a boolean");
	c->cmd->force = o && o->type == MSGPACK_OBJECT_BOOLEAN && o->via.boolean;
	return request_the_account(c);
}

static proto_err_t request_open_account(request_ctx_t *c)
{
	ledger_cmd_t *cmd = c->cmd;
	if (msg_get_str(c->map, "email", &cmd->email, &cmd->email_len) < 0)
		return request_bad(c, "email must be a string");
	if (!ledger_email_valid(cmd->email, cmd->email_len, c->email_lower))
		return request_bad(c, "email must be 3 to 254 bytes with exactly one @, text on "
				      "both sides of it and no spaces or control characters");
	if (msg_get_str(c->map, "password", &cmd->password, &cmd->password_len) < 0)
		return request_bad(c, "password must be a string");
	if (cmd->password_len < LEDGER_PASSWORD_BYTES_MIN ||
	    cmd->password_len > LEDGER_PASSWORD_BYTES_MAX)
		return request_bad(c, "password must be 8 to 1024 bytes");
	return PROTO_OK;
}

static proto_err_t request_verify_account(request_ctx_t *c)
{
	ledger_cmd_t *cmd = c->cmd;
	if (request_the_account(c) != PROTO_OK)
		return PROTO_E_BAD_REQUEST;
	if (msg_get_str(c->map, "code", &cmd->code, &cmd->code_len) < 0)
		return request_bad(c, "code must be a string");
	if (cmd->code_len > REQUEST_CODE_BYTES_MAX)
		return request_bad(c, "code is too long to be a verification code");
	return PROTO_OK;
}

static proto_err_t request_transfer(request_ctx_t *c)
{
	ledger_cmd_t *cmd = c->cmd;
	if (request_account(c, "from", REQUEST_WHY_FROM, &cmd->account, &cmd->account_valid,
			    &c->from_s, &c->from_n) != PROTO_OK)
		return PROTO_E_BAD_REQUEST;
	if (request_account(c, "to", REQUEST_WHY_TO, &cmd->to, &cmd->to_valid, &c->to_s,
			    &c->to_n) != PROTO_OK)
		return PROTO_E_BAD_REQUEST;
	return request_amount(c);
}

static proto_err_t request_withdraw(request_ctx_t *c)
{
	if (request_the_account(c) != PROTO_OK)
		return PROTO_E_BAD_REQUEST;
	return request_amount(c);
}

static proto_err_t request_authenticate(request_ctx_t *c)
{
	ledger_cmd_t *cmd = c->cmd;
	if (request_the_account(c) != PROTO_OK)
		return PROTO_E_BAD_REQUEST;
	if (msg_get_str(c->map, "password", &cmd->password, &cmd->password_len) < 0)
		return request_bad(c, "password must be a string");
	return PROTO_OK;
}

static proto_err_t request_sum_transactions(request_ctx_t *c)
{
	uint64_t y = 0, m = 0, d = 0;
	bool has_y, has_m, has_d;
	if (request_opt_uint(c, "year", "year must be a non-negative integer", &y, &has_y) ||
	    request_opt_uint(c, "month", "month must be a non-negative integer", &m, &has_m) ||
	    request_opt_uint(c, "day", "day must be a non-negative integer", &d, &has_d))
		return PROTO_E_BAD_REQUEST;
	if (has_y && (y < 1 || y > REQUEST_YEAR_MAX))
		return request_bad(c, "year must be from 1 to 9999");
	if (has_m && (m < 1 || m > 12))
		return request_bad(c, "month must be from 1 to 12");
	if (has_d && (d < 1 || d > 31))
		return request_bad(c, "day must be from 1 to 31");
	if (has_m && !has_y)
		return request_bad(c, "month needs a year");
	if (has_d && !has_m)
		return request_bad(c, "day needs a month");
	c->cmd->year = (int64_t)y;
	c->cmd->month = (int64_t)m;
	c->cmd->day = (int64_t)d;
	return PROTO_OK;
}

static proto_err_t request_inactive_users(request_ctx_t *c)
{
	uint64_t days = LEDGER_INACTIVE_DAYS_DEFAULT;
	bool has;
	if (request_opt_uint(c, "days", "days must be a non-negative integer", &days, &has))
		return PROTO_E_BAD_REQUEST;
	c->cmd->days = days > REQUEST_DAYS_MAX ? REQUEST_DAYS_MAX : (int64_t)days;
	return PROTO_OK;
}

/* events / subscribe: the protocol module decodes them (the bus serves them) */
static proto_err_t request_events(request_ctx_t *c)
{
	ledger_cmd_t *cmd = c->cmd;
	proto_read_args_t a;
	proto_err_t e = proto_decode_read_args(c->map, cmd->op, &a, &c->why);
	cmd->from_seq = a.from_seq;
	cmd->has_from = a.has_from;
	cmd->limit = a.limit;
	return e;
}

static proto_err_t request_fields(request_ctx_t *c)
{
	switch (c->cmd->op) {
	case PROTO_OP_OPEN_ACCOUNT: return request_open_account(c);
	case PROTO_OP_VERIFY_ACCOUNT: return request_verify_account(c);
	case PROTO_OP_REISSUE_CODE: return request_the_account(c);
	case PROTO_OP_TRANSFER: return request_transfer(c);
	case PROTO_OP_WITHDRAW: return request_withdraw(c);
	case PROTO_OP_GET_ACCOUNT: return request_the_account(c);
	case PROTO_OP_ERASE_ACCOUNT: return request_erase_account(c);
	case PROTO_OP_AUTHENTICATE: return request_authenticate(c);
	case PROTO_OP_SUM_TRANSACTIONS: return request_sum_transactions(c);
	case PROTO_OP_INACTIVE_USERS: return request_inactive_users(c);
	case PROTO_OP_EVENTS: return request_events(c);
	case PROTO_OP_SUBSCRIBE: return request_events(c);
	default: return PROTO_OK;
	}
}

/* ---- fingerprint ---- */

static void request_fp_field(crypto_generichash_state *st, char tag, const void *p, size_t n)
{
	uint8_t hdr[5] = { (uint8_t)tag, (uint8_t)n, (uint8_t)(n >> 8), (uint8_t)(n >> 16),
			   (uint8_t)(n >> 24) };
	crypto_generichash_update(st, hdr, sizeof(hdr));
	crypto_generichash_update(st, p, n);
}

static void request_fp(request_ctx_t *c)
{
	const ledger_cmd_t *cmd = c->cmd;
	crypto_generichash_state st;
	uint8_t op = (uint8_t)cmd->op, amount[8];
	for (int i = 0; i < 8; i++)
		amount[i] = (uint8_t)((uint64_t)cmd->amount >> (8 * i));
	crypto_generichash_init(&st, NULL, 0, LEDGER_FP_BYTES);
	crypto_generichash_update(&st, (const uint8_t *)REQUEST_FP_DOMAIN,
				  strlen(REQUEST_FP_DOMAIN));
	crypto_generichash_update(&st, &op, 1);
	if (cmd->op == PROTO_OP_OPEN_ACCOUNT)
		request_fp_field(&st, 'e', c->email_lower, cmd->email_len);
	else
		request_fp_field(&st, 'a', c->from_s, c->from_n);
	if (cmd->op == PROTO_OP_VERIFY_ACCOUNT)
		request_fp_field(&st, 'c', cmd->code, cmd->code_len);
	if (cmd->op == PROTO_OP_TRANSFER)
		request_fp_field(&st, 't', c->to_s, c->to_n);
	if (cmd->op == PROTO_OP_TRANSFER || cmd->op == PROTO_OP_WITHDRAW)
		request_fp_field(&st, 'm', amount, sizeof(amount));
	uint8_t force = cmd->force;
	if (cmd->op == PROTO_OP_ERASE_ACCOUNT)
		request_fp_field(&st, 'f', &force, 1);
	crypto_generichash_final(&st, c->cmd->fp, LEDGER_FP_BYTES);
}

proto_err_t request_decode(const msgpack_object *map, ledger_cmd_t *cmd, const char **why)
{
	assert(cmd);
	memset(cmd, 0, sizeof(*cmd));
	request_ctx_t c = { .map = map, .cmd = cmd };
	proto_err_t e = proto_peek(map, &cmd->id, &cmd->op);
	if (e == PROTO_E_BAD_REQUEST)
		c.why = "a request is a map with an unsigned integer id and a string op";
	else if (e == PROTO_E_UNKNOWN_OP)
		c.why = "op names no operation of the protocol";
	if (e == PROTO_OK && cmd->op == PROTO_OP_TRANSFERS) {
		e = PROTO_E_BAD_REQUEST; /* decoded by request_decode_transfers() */
		c.why = "transfers is decoded as a whole";
	}
	if (e == PROTO_OK)
		e = request_fields(&c);
	if (e == PROTO_OK && proto_op_is_command(cmd->op))
		e = request_key(&c);
	if (e == PROTO_OK && proto_op_is_command(cmd->op))
		e = request_dry_run(&c);
	if (e == PROTO_OK && proto_op_is_command(cmd->op))
		request_fp(&c);
	if (why)
		*why = e == PROTO_OK ? NULL : c.why;
	return e;
}

/* ---- transfers ---- */

/* One item of "transfers" into *cmd, as a single transfer. */
static proto_err_t request_transfer_item(const msgpack_object *item, uint64_t id,
                                         ledger_cmd_t *cmd, const char **why)
{
	memset(cmd, 0, sizeof(*cmd));
	cmd->op = PROTO_OP_TRANSFER;
	cmd->id = id;
	request_ctx_t c = { .map = item, .cmd = cmd };
	proto_err_t e = PROTO_OK;
	if (item->type != MSGPACK_OBJECT_MAP)
		e = request_bad(&c, "each of transfers must be a map");
	if (e == PROTO_OK)
		e = request_transfer(&c);
	if (e == PROTO_OK)
		e = request_key(&c);
	if (e == PROTO_OK)
		request_fp(&c);
	*why = c.why;
	return e;
}

/* "atomic": absent or nil (false) or a boolean. */
static int request_atomic(const msgpack_object *map, bool *atomic)
{
	const msgpack_object *o = msg_get(map, "atomic");
	*atomic = false;
	if (!o || o->type == MSGPACK_OBJECT_NIL)
		return 0;
	if (o->type != MSGPACK_OBJECT_BOOLEAN)
		return -EINVAL;
	*atomic = o->via.boolean;
	return 0;
}

proto_err_t request_decode_transfers(const msgpack_object *map, request_transfers_t *out,
                                     uint32_t *bad_index, const char **why)
{
	proto_op_t op;
	const char *w = NULL;
	uint32_t bad = UINT32_MAX;
	memset(out, 0, sizeof(*out));
	const msgpack_object *list = NULL;
	if (proto_peek(map, &out->id, &op) != PROTO_OK || op != PROTO_OP_TRANSFERS)
		w = "a request is a map with an unsigned integer id and the op transfers";
	else if (request_atomic(map, &out->atomic) < 0)
		w = "atomic must be a boolean";
	else if (msg_get(map, "dry_run"))
		w = "transfers takes no dry_run: send each as a transfer with dry_run";
	else if (!(list = msg_get(map, "transfers")) || list->type != MSGPACK_OBJECT_ARRAY)
		w = "transfers must be an array of transfers";
	else if (list->via.array.size < 1 || list->via.array.size > REQUEST_TRANSFERS_MAX)
		w = "transfers must hold 1 to 8192 transfers";
	else if (!(out->items = calloc(list->via.array.size, sizeof(*out->items))))
		w = "out of memory";
	for (uint32_t i = 0; !w && i < list->via.array.size; i++) {
		if (request_transfer_item(&list->via.array.ptr[i], out->id, &out->items[i], &w) !=
		    PROTO_OK)
			bad = i;
	}
	if (bad_index)
		*bad_index = bad;
	if (why)
		*why = w;
	if (w) {
		request_transfers_free(out);
		return PROTO_E_BAD_REQUEST;
	}
	out->count = list->via.array.size;
	return PROTO_OK;
}

void request_transfers_free(request_transfers_t *t)
{
	free(t->items);
	t->items = NULL;
	t->count = 0;
}
