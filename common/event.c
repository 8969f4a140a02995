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
 *   email    string of at most 254 bytes without NUL (old logs), or else
 *   email_hash  string of 64 hex digits and
 *   email_enc   bin of LEDGER_SEALED_BYTES_MIN..LEDGER_SEALED_BYTES_MAX bytes
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

/* account_opened's email: sealed (hash and ciphertext), or plain in stand-ins. */
static void event_pack_email(msgpack_packer *pk, const ledger_event_t *ev)
{
	if (!ev->has_email_hash) {
		msg_pack_kv_str(pk, "email", ev->email);
		return;
	}
	assert(ev->email_enc_len >= LEDGER_SEALED_BYTES_MIN &&
	       ev->email_enc_len <= LEDGER_SEALED_BYTES_MAX);
	event_pack_hex(pk, "email_hash", ev->email_hash, LEDGER_EMAIL_HASH_BYTES);
	msg_pack_kv_bin(pk, "email_enc", ev->email_enc, ev->email_enc_len);
}

static uint32_t event_type_fields(ledger_event_type_t t, bool has_balance)
{
	static const uint32_t n[] = {
		[LEDGER_EV_ACCOUNT_OPENED] = 5,	   [LEDGER_EV_ACCOUNT_VERIFIED] = 1,
		[LEDGER_EV_CODE_REISSUED] = 2,	   [LEDGER_EV_MONEY_TRANSFERRED] = 3,
		[LEDGER_EV_MONEY_WITHDRAWN] = 2,    [LEDGER_EV_PRIMARY_CHANGED] = 1,
		[LEDGER_EV_ACCOUNT_ERASED] = 1,
	};
	return n[t] + (t == LEDGER_EV_MONEY_WITHDRAWN && has_balance);
}

void event_pack(msgpack_packer *pk, const ledger_event_t *ev)
{
	assert(pk && ev && ledger_event_type_name(ev->type) && ev->ts_ms >= 0);
	assert(!ev->has_key || (ev->key_len >= 1 && ev->key_len <= LEDGER_KEY_BYTES_MAX));
	bool sealed = ev->type == LEDGER_EV_ACCOUNT_OPENED && ev->has_email_hash;
	msgpack_pack_map(pk, 3 + event_type_fields(ev->type, ev->has_balance) + sealed +
	                         (ev->has_key ? 2 : 0));
	msg_pack_kv_u64(pk, "seq", ev->seq);
	msg_pack_kv_u64(pk, "ts", (uint64_t)ev->ts_ms);
	msg_pack_kv_str(pk, "type", ledger_event_type_name(ev->type));
	switch (ev->type) {
	case LEDGER_EV_ACCOUNT_OPENED:
		event_pack_account(pk, "account", ev->account);
		event_pack_email(pk, ev);
		msg_pack_kv_i64(pk, "balance", ev->amount);
		msg_pack_kv_str(pk, "pwhash", ev->pwhash);
		event_pack_hex(pk, "code_hash", ev->code_hash, LEDGER_CODE_HASH_BYTES);
		break;
	case LEDGER_EV_ACCOUNT_VERIFIED:
	case LEDGER_EV_ACCOUNT_ERASED:
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

/*
 * The keys decoding reads, found in one walk over the map (event_fields):
 * the first occurrence of each key counts, as with msg_get().
 */
typedef enum {
	EVENT_F_SEQ, EVENT_F_TS, EVENT_F_TYPE, EVENT_F_ACCOUNT, EVENT_F_FROM, EVENT_F_TO,
	EVENT_F_AMOUNT, EVENT_F_BALANCE, EVENT_F_EMAIL, EVENT_F_PWHASH, EVENT_F_CODE_HASH,
	EVENT_F_NODE, EVENT_F_KEY, EVENT_F_FP, EVENT_F_EMAIL_HASH, EVENT_F_EMAIL_ENC,
	EVENT_F_COUNT_MAX
} event_field_t;

typedef struct {
	const msgpack_object *v[EVENT_F_COUNT_MAX];
} event_fields_t;

/* The names of the fields, by event_field_t. */
static const struct {
	const char *name;
	size_t len;
} event_field_names[EVENT_F_COUNT_MAX] = {
#define EVENT_FIELD(f, lit) [f] = { lit, sizeof(lit) - 1 }
	EVENT_FIELD(EVENT_F_SEQ, "seq"),	 EVENT_FIELD(EVENT_F_TS, "ts"),
	EVENT_FIELD(EVENT_F_TYPE, "type"),	 EVENT_FIELD(EVENT_F_ACCOUNT, "account"),
	EVENT_FIELD(EVENT_F_FROM, "from"),	 EVENT_FIELD(EVENT_F_TO, "to"),
	EVENT_FIELD(EVENT_F_AMOUNT, "amount"),	 EVENT_FIELD(EVENT_F_BALANCE, "balance"),
	EVENT_FIELD(EVENT_F_EMAIL, "email"),	 EVENT_FIELD(EVENT_F_PWHASH, "pwhash"),
	EVENT_FIELD(EVENT_F_CODE_HASH, "code_hash"), EVENT_FIELD(EVENT_F_NODE, "node"),
	EVENT_FIELD(EVENT_F_KEY, "key"),	 EVENT_FIELD(EVENT_F_FP, "fp"),
	EVENT_FIELD(EVENT_F_EMAIL_HASH, "email_hash"), EVENT_FIELD(EVENT_F_EMAIL_ENC, "email_enc"),
#undef EVENT_FIELD
};

/* The field a key names, or EVENT_F_COUNT_MAX for one decoding ignores. */
static event_field_t event_field_of(const char *s, size_t n)
{
	for (unsigned f = 0; f < EVENT_F_COUNT_MAX; f++)
		if (event_field_names[f].len == n && event_field_names[f].name[0] == s[0] &&
		    memcmp(event_field_names[f].name, s, n) == 0)
			return (event_field_t)f;
	return EVENT_F_COUNT_MAX;
}

/* One walk over the map: each known key's first value (NULL when absent). */
static void event_fields(const msgpack_object *map, event_fields_t *f)
{
	memset(f, 0, sizeof(*f));
	for (uint32_t i = 0; i < map->via.map.size; i++) {
		const msgpack_object *k = &map->via.map.ptr[i].key;
		if (k->type != MSGPACK_OBJECT_STR)
			continue;
		event_field_t which = event_field_of(k->via.str.ptr, k->via.str.size);
		if (which != EVENT_F_COUNT_MAX && !f->v[which])
			f->v[which] = &map->via.map.ptr[i].val;
	}
}

/* A string field: 0, -ENOENT when absent, -EINVAL when not a string. */
static int event_str(const event_fields_t *f, event_field_t which, const char **s, size_t *n)
{
	const msgpack_object *o = f->v[which];
	if (!o)
		return -ENOENT;
	if (o->type != MSGPACK_OBJECT_STR)
		return -EINVAL;
	*s = o->via.str.ptr;
	*n = o->via.str.size;
	return 0;
}

static int event_u64(const event_fields_t *f, event_field_t which, uint64_t *v)
{
	const msgpack_object *o = f->v[which];
	if (!o || o->type != MSGPACK_OBJECT_POSITIVE_INTEGER)
		return -EINVAL;
	*v = o->via.u64;
	return 0;
}

static int event_get_account(const event_fields_t *f, event_field_t which, uint64_t *number)
{
	const char *s;
	size_t n;
	if (event_str(f, which, &s, &n) < 0 || !ledger_account_parse(s, n, number))
		return -EINVAL;
	return 0;
}

static int event_get_amount(const event_fields_t *f, event_field_t which, int64_t *v)
{
	uint64_t u;
	if (event_u64(f, which, &u) < 0 || u > INT64_MAX)
		return -EINVAL;
	*v = (int64_t)u;
	return 0;
}

static int event_get_hex(const event_fields_t *f, event_field_t which, uint8_t *out, size_t n)
{
	const char *s;
	size_t len;
	if (event_str(f, which, &s, &len) < 0 || !event_unhex(s, len, out, n))
		return -EINVAL;
	return 0;
}

/* A string of 1 to dst_size - 1 bytes without NUL, copied NUL-terminated. */
static int event_get_text(const event_fields_t *f, event_field_t which, char *dst,
			  size_t dst_size)
{
	const char *s;
	size_t n;
	if (event_str(f, which, &s, &n) < 0 || n == 0 || n >= dst_size ||
	    memchr(s, '\0', n) != NULL)
		return -EINVAL;
	memcpy(dst, s, n);
	dst[n] = '\0';
	return 0;
}

/* money_withdrawn's optional "balance" (older logs lack it). */
static int event_get_balance(const event_fields_t *f, ledger_event_t *ev)
{
	if (!f->v[EVENT_F_BALANCE])
		return 0;
	ev->has_balance = true;
	return event_get_amount(f, EVENT_F_BALANCE, &ev->balance);
}

/* account_opened's email: "email" (plain, old logs) or email_hash + email_enc. */
static int event_get_email(const event_fields_t *f, ledger_event_t *ev)
{
	if (f->v[EVENT_F_EMAIL])
		return event_get_text(f, EVENT_F_EMAIL, ev->email, sizeof(ev->email));
	const msgpack_object *o = f->v[EVENT_F_EMAIL_ENC];
	if (!o || o->type != MSGPACK_OBJECT_BIN || o->via.bin.size < LEDGER_SEALED_BYTES_MIN ||
	    o->via.bin.size > LEDGER_SEALED_BYTES_MAX)
		return -EINVAL;
	memcpy(ev->email_enc, o->via.bin.ptr, o->via.bin.size);
	ev->email_enc_len = o->via.bin.size;
	ev->has_email_hash = true;
	return event_get_hex(f, EVENT_F_EMAIL_HASH, ev->email_hash, LEDGER_EMAIL_HASH_BYTES);
}

static int event_decode_fields(const event_fields_t *f, ledger_event_t *ev)
{
	switch (ev->type) {
	case LEDGER_EV_ACCOUNT_OPENED:
		if (event_get_account(f, EVENT_F_ACCOUNT, &ev->account) ||
		    event_get_email(f, ev) ||
		    event_get_amount(f, EVENT_F_BALANCE, &ev->amount) ||
		    event_get_text(f, EVENT_F_PWHASH, ev->pwhash, sizeof(ev->pwhash)))
			return -EINVAL;
		return event_get_hex(f, EVENT_F_CODE_HASH, ev->code_hash, LEDGER_CODE_HASH_BYTES);
	case LEDGER_EV_ACCOUNT_VERIFIED:
	case LEDGER_EV_ACCOUNT_ERASED:
		return event_get_account(f, EVENT_F_ACCOUNT, &ev->account);
	case LEDGER_EV_CODE_REISSUED:
		if (event_get_account(f, EVENT_F_ACCOUNT, &ev->account))
			return -EINVAL;
		return event_get_hex(f, EVENT_F_CODE_HASH, ev->code_hash, LEDGER_CODE_HASH_BYTES);
	case LEDGER_EV_MONEY_TRANSFERRED:
		if (event_get_account(f, EVENT_F_FROM, &ev->account) ||
		    event_get_account(f, EVENT_F_TO, &ev->to))
			return -EINVAL;
		return event_get_amount(f, EVENT_F_AMOUNT, &ev->amount);
	case LEDGER_EV_MONEY_WITHDRAWN:
		if (event_get_account(f, EVENT_F_ACCOUNT, &ev->account) ||
		    event_get_amount(f, EVENT_F_AMOUNT, &ev->amount))
			return -EINVAL;
		return event_get_balance(f, ev);
	case LEDGER_EV_PRIMARY_CHANGED:
		return event_get_text(f, EVENT_F_NODE, ev->node, sizeof(ev->node));
	}
	return -EINVAL;
}

static int event_decode_key(const event_fields_t *f, ledger_event_t *ev)
{
	const char *s;
	size_t n;
	int rc = event_str(f, EVENT_F_KEY, &s, &n);
	if (rc == -ENOENT)
		return f->v[EVENT_F_FP] ? -EINVAL : 0;
	if (rc < 0 || n < 1 || n > LEDGER_KEY_BYTES_MAX)
		return -EINVAL;
	memcpy(ev->key, s, n);
	ev->key[n] = '\0';
	ev->key_len = n;
	ev->has_key = true;
	return event_get_hex(f, EVENT_F_FP, ev->fp, LEDGER_FP_BYTES);
}

int event_decode(const msgpack_object *map, ledger_event_t *ev)
{
	assert(ev);
	memset(ev, 0, sizeof(*ev));
	if (!map || map->type != MSGPACK_OBJECT_MAP)
		return -EINVAL;
	event_fields_t f;
	event_fields(map, &f);
	uint64_t ts;
	const char *s;
	size_t n;
	if (event_u64(&f, EVENT_F_SEQ, &ev->seq) < 0 || ev->seq == 0)
		return -EINVAL;
	if (event_u64(&f, EVENT_F_TS, &ts) < 0 || ts > INT64_MAX)
		return -EINVAL;
	ev->ts_ms = (int64_t)ts;
	if (event_str(&f, EVENT_F_TYPE, &s, &n) < 0)
		return -EINVAL;
	ev->type = ledger_event_type_parse(s, n);
	if (ev->type == 0 || event_decode_fields(&f, ev) < 0 || event_decode_key(&f, ev) < 0)
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
