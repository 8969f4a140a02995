/*
 * event.c - the msgpack encoding of an event (the format is described field
 * by field in event.h).
 *
 * Encoding: the map holds exactly "seq", "ts", "type", the type's fields in
 * the order event.h lists them (money_withdrawn's "balance" only when
 * has_balance), then "key" and "fp" when the command carried a key.
 * Integers use msgpack's smallest encoding (msgpack-c's default).
 *
 * Decoding is strict about the fields the type needs and ignores others:
 *   seq      unsigned integer >= 1
 *   ts       unsigned integer <= INT64_MAX
 *   type     one of the six names
 *   account, from, to   strings of 16 digits, first not 0
 *   email    string of at most 254 bytes without NUL
 *   balance, amount     unsigned integers <= INT64_MAX ("balance" is
 *                       optional in money_withdrawn: older logs lack it)
 *   pwhash   non-empty string shorter than LEDGER_PWHASH_BYTES, without NUL
 *   code_hash  string of 64 lowercase or uppercase hex digits
 *   node     string of 1..LEDGER_NODE_BYTES_MAX bytes without NUL
 *   key      optional string of 1..64 bytes; when present "fp" must be a
 *            string of 32 hex digits; "fp" without "key" is invalid
 * Anything else is -EINVAL. The domain rules (balances, seq order, the email
 * syntax) are checked by ledger_check_event(), not here.
 */
#include "event.h"

#include <assert.h>
#include <errno.h>
#include <string.h>

#define EVENT_DECODE_ZONE_BYTES 2048

void event_hex(const uint8_t *in, size_t n, char *out)
{
	static const char digits[] = "0123456789abcdef";
	for (size_t i = 0; i < n; i++) {
		out[2 * i] = digits[in[i] >> 4];
		out[2 * i + 1] = digits[in[i] & 0xf];
	}
	out[2 * n] = '\0';
}

static int event_hex_digit(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

bool event_unhex(const char *s, size_t slen, uint8_t *out, size_t n)
{
	if (slen != 2 * n)
		return false;
	for (size_t i = 0; i < n; i++) {
		int hi = event_hex_digit(s[2 * i]), lo = event_hex_digit(s[2 * i + 1]);
		if (hi < 0 || lo < 0)
			return false;
		out[i] = (uint8_t)(hi << 4 | lo);
	}
	return true;
}

/* ---- packing ---- */

static void event_pack_account(msgpack_packer *pk, const char *name, uint64_t number)
{
	char buf[LEDGER_ACCOUNT_DIGITS + 1];
	ledger_account_format(number, buf);
	msg_pack_kv_str(pk, name, buf);
}

static void event_pack_hex(msgpack_packer *pk, const char *name, const uint8_t *p, size_t n)
{
	char hex[2 * LEDGER_CODE_HASH_BYTES + 1];
	assert(n <= LEDGER_CODE_HASH_BYTES);
	event_hex(p, n, hex);
	msg_pack_kv_str(pk, name, hex);
}

static uint32_t event_type_fields(ledger_event_type_t t, bool has_balance)
{
	static const uint32_t n[] = {
		[LEDGER_EV_ACCOUNT_OPENED] = 5,	   [LEDGER_EV_ACCOUNT_VERIFIED] = 1,
		[LEDGER_EV_CODE_REISSUED] = 2,	   [LEDGER_EV_MONEY_TRANSFERRED] = 3,
		[LEDGER_EV_MONEY_WITHDRAWN] = 2,    [LEDGER_EV_PRIMARY_CHANGED] = 1,
	};
	return n[t] + (t == LEDGER_EV_MONEY_WITHDRAWN && has_balance);
}

void event_pack(msgpack_packer *pk, const ledger_event_t *ev)
{
	assert(pk && ev && ledger_event_type_name(ev->type) && ev->ts_ms >= 0);
	assert(!ev->has_key || (ev->key_len >= 1 && ev->key_len <= LEDGER_KEY_BYTES_MAX));
	msgpack_pack_map(pk, 3 + event_type_fields(ev->type, ev->has_balance) + (ev->has_key ? 2 : 0));
	msg_pack_kv_u64(pk, "seq", ev->seq);
	msg_pack_kv_u64(pk, "ts", (uint64_t)ev->ts_ms);
	msg_pack_kv_str(pk, "type", ledger_event_type_name(ev->type));
	switch (ev->type) {
	case LEDGER_EV_ACCOUNT_OPENED:
		event_pack_account(pk, "account", ev->account);
		msg_pack_kv_str(pk, "email", ev->email);
		msg_pack_kv_i64(pk, "balance", ev->amount);
		msg_pack_kv_str(pk, "pwhash", ev->pwhash);
		event_pack_hex(pk, "code_hash", ev->code_hash, LEDGER_CODE_HASH_BYTES);
		break;
	case LEDGER_EV_ACCOUNT_VERIFIED:
		event_pack_account(pk, "account", ev->account);
		break;
	case LEDGER_EV_CODE_REISSUED:
		event_pack_account(pk, "account", ev->account);
		event_pack_hex(pk, "code_hash", ev->code_hash, LEDGER_CODE_HASH_BYTES);
		break;
	case LEDGER_EV_MONEY_TRANSFERRED:
		event_pack_account(pk, "from", ev->account);
		event_pack_account(pk, "to", ev->to);
		msg_pack_kv_i64(pk, "amount", ev->amount);
		break;
	case LEDGER_EV_MONEY_WITHDRAWN:
		event_pack_account(pk, "account", ev->account);
		msg_pack_kv_i64(pk, "amount", ev->amount);
		if (ev->has_balance)
			msg_pack_kv_i64(pk, "balance", ev->balance);
		break;
	case LEDGER_EV_PRIMARY_CHANGED:
		msg_pack_kv_str(pk, "node", ev->node);
		break;
	}
	if (ev->has_key) {
		msg_pack_kv_strn(pk, "key", ev->key, ev->key_len);
		event_pack_hex(pk, "fp", ev->fp, LEDGER_FP_BYTES);
	}
}

/* ---- decoding: each helper returns 0 or -EINVAL ---- */

static int event_get_account(const msgpack_object *map, const char *name, uint64_t *number)
{
	const char *s;
	size_t n;
	if (msg_get_str(map, name, &s, &n) < 0 || !ledger_account_parse(s, n, number))
		return -EINVAL;
	return 0;
}

static int event_get_amount(const msgpack_object *map, const char *name, int64_t *v)
{
	uint64_t u;
	if (msg_get_u64(map, name, &u) < 0 || u > INT64_MAX)
		return -EINVAL;
	*v = (int64_t)u;
	return 0;
}

static int event_get_hex(const msgpack_object *map, const char *name, uint8_t *out, size_t n)
{
	const char *s;
	size_t len;
	if (msg_get_str(map, name, &s, &len) < 0 || !event_unhex(s, len, out, n))
		return -EINVAL;
	return 0;
}

/* A string of 1 to dst_size - 1 bytes without NUL, copied NUL-terminated. */
static int event_get_text(const msgpack_object *map, const char *name, char *dst,
			  size_t dst_size)
{
	const char *s;
	size_t n;
	if (msg_get_str(map, name, &s, &n) < 0 || n == 0 || n >= dst_size ||
	    memchr(s, '\0', n) != NULL)
		return -EINVAL;
	memcpy(dst, s, n);
	dst[n] = '\0';
	return 0;
}

/* money_withdrawn's optional "balance" (older logs lack it). */
static int event_get_balance(const msgpack_object *map, ledger_event_t *ev)
{
	if (!msg_get(map, "balance"))
		return 0;
	ev->has_balance = true;
	return event_get_amount(map, "balance", &ev->balance);
}

static int event_decode_fields(const msgpack_object *map, ledger_event_t *ev)
{
	switch (ev->type) {
	case LEDGER_EV_ACCOUNT_OPENED:
		if (event_get_account(map, "account", &ev->account) ||
		    event_get_text(map, "email", ev->email, sizeof(ev->email)) ||
		    event_get_amount(map, "balance", &ev->amount) ||
		    event_get_text(map, "pwhash", ev->pwhash, sizeof(ev->pwhash)))
			return -EINVAL;
		return event_get_hex(map, "code_hash", ev->code_hash, LEDGER_CODE_HASH_BYTES);
	case LEDGER_EV_ACCOUNT_VERIFIED:
		return event_get_account(map, "account", &ev->account);
	case LEDGER_EV_CODE_REISSUED:
		if (event_get_account(map, "account", &ev->account))
			return -EINVAL;
		return event_get_hex(map, "code_hash", ev->code_hash, LEDGER_CODE_HASH_BYTES);
	case LEDGER_EV_MONEY_TRANSFERRED:
		if (event_get_account(map, "from", &ev->account) ||
		    event_get_account(map, "to", &ev->to))
			return -EINVAL;
		return event_get_amount(map, "amount", &ev->amount);
	case LEDGER_EV_MONEY_WITHDRAWN:
		if (event_get_account(map, "account", &ev->account) ||
		    event_get_amount(map, "amount", &ev->amount))
			return -EINVAL;
		return event_get_balance(map, ev);
	case LEDGER_EV_PRIMARY_CHANGED:
		return event_get_text(map, "node", ev->node, sizeof(ev->node));
	}
	return -EINVAL;
}

static int event_decode_key(const msgpack_object *map, ledger_event_t *ev)
{
	const char *s;
	size_t n;
	int rc = msg_get_str(map, "key", &s, &n);
	if (rc == -ENOENT)
		return msg_get(map, "fp") ? -EINVAL : 0;
	if (rc < 0 || n < 1 || n > LEDGER_KEY_BYTES_MAX)
		return -EINVAL;
	memcpy(ev->key, s, n);
	ev->key[n] = '\0';
	ev->key_len = n;
	ev->has_key = true;
	return event_get_hex(map, "fp", ev->fp, LEDGER_FP_BYTES);
}

int event_decode(const msgpack_object *map, ledger_event_t *ev)
{
	assert(ev);
	memset(ev, 0, sizeof(*ev));
	if (!map || map->type != MSGPACK_OBJECT_MAP)
		return -EINVAL;
	uint64_t ts;
	const char *s;
	size_t n;
	if (msg_get_u64(map, "seq", &ev->seq) < 0 || ev->seq == 0)
		return -EINVAL;
	if (msg_get_u64(map, "ts", &ts) < 0 || ts > INT64_MAX)
		return -EINVAL;
	ev->ts_ms = (int64_t)ts;
	if (msg_get_str(map, "type", &s, &n) < 0)
		return -EINVAL;
	ev->type = ledger_event_type_parse(s, n);
	if (ev->type == 0 || event_decode_fields(map, ev) < 0 || event_decode_key(map, ev) < 0)
		return -EINVAL;
	return 0;
}

int event_decode_bytes(const char *buf, size_t len, ledger_event_t *ev)
{
	assert(buf || len == 0);
	msgpack_zone zone;
	msgpack_object map;
	if (!msgpack_zone_init(&zone, EVENT_DECODE_ZONE_BYTES))
		return -ENOMEM;
	int rc = msg_decode_map(buf, len, &zone, &map);
	if (rc == 0)
		rc = event_decode(&map, ev);
	else
		rc = -EBADMSG;
	msgpack_zone_destroy(&zone);
	return rc;
}
