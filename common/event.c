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

/* The largest event (see EVENT_BYTES_MAX): each key with its header, each value. */
_Static_assert(1 + (4 + 9) + (3 + 9) + (5 + 1 + 17) + (8 + 17) +
                       (11 + 2 + 2 * LEDGER_EMAIL_HASH_BYTES) + (10 + 3 + LEDGER_SEALED_BYTES_MAX) +
                       (8 + 9) + (7 + 2 + LEDGER_PWHASH_BYTES_MAX) +
                       (10 + 2 + 2 * LEDGER_CODE_HASH_BYTES) + (4 + 2 + LEDGER_KEY_BYTES_MAX) +
                       (3 + 1 + 2 * LEDGER_FP_BYTES) <= EVENT_BYTES_MAX,
               "EVENT_BYTES_MAX holds the largest event");

void event_hex(const uint8_t *in, size_t n, char *out)
{
	static const char digits[] = "0123456789abcdef";
	for (size_t i = 0; i < n; i++) {
		out[2 * i] = digits[in[i] >> 4];
		out[2 * i + 1] = digits[in[i] & 0xf];
	}
	out[2 * n] = '\0';
}

/*
 * A hex digit's value + 1, 0 if it is none: a table, since every opening
 * carries 128 hex digits (the email hash and the code hash) and the branches
 * of a range test were a fifth of the resolver's replay of openings (perf).
 */
static const uint8_t event_hex_values[256] = {
	['0'] = 1, ['1'] = 2, ['2'] = 3, ['3'] = 4, ['4'] = 5, ['5'] = 6, ['6'] = 7, ['7'] = 8,
	['8'] = 9, ['9'] = 10, ['a'] = 11, ['b'] = 12, ['c'] = 13, ['d'] = 14, ['e'] = 15,
	['f'] = 16, ['A'] = 11, ['B'] = 12, ['C'] = 13, ['D'] = 14, ['E'] = 15, ['F'] = 16,
};

bool event_unhex(const char *s, size_t slen, uint8_t *out, size_t n)
{
	if (slen != 2 * n)
		return false;
	for (size_t i = 0; i < n; i++) {
		unsigned hi = event_hex_values[(unsigned char)s[2 * i]];
		unsigned lo = event_hex_values[(unsigned char)s[2 * i + 1]];
		if (hi == 0 || lo == 0)
			return false;
		out[i] = (uint8_t)((hi - 1) << 4 | (lo - 1));
	}
	return true;
}

/* ---- packing: straight into bytes (event_out_t), as msgpack-c would ---- */

typedef struct {
	uint8_t *p; /* the next byte to write */
} event_out_t;

static void event_put_be(event_out_t *o, uint8_t tag, uint64_t v, int n)
{
	*o->p++ = tag;
	for (int i = n - 1; i >= 0; i--)
		*o->p++ = (uint8_t)(v >> (8 * i));
}

/* msgpack-c's msgpack_pack_uint64: the smallest encoding. */
static void event_put_uint(event_out_t *o, uint64_t v)
{
	if (v < 0x80)
		*o->p++ = (uint8_t)v;
	else if (v <= UINT8_MAX)
		event_put_be(o, 0xcc, v, 1);
	else if (v <= UINT16_MAX)
		event_put_be(o, 0xcd, v, 2);
	else if (v <= UINT32_MAX)
		event_put_be(o, 0xce, v, 4);
	else
		event_put_be(o, 0xcf, v, 8);
}

/* msgpack-c's msgpack_pack_int64: non-negative as uint, negative the smallest. */
static void event_put_int(event_out_t *o, int64_t v)
{
	if (v >= 0)
		event_put_uint(o, (uint64_t)v);
	else if (v >= -32)
		*o->p++ = (uint8_t)(int8_t)v;
	else if (v >= INT8_MIN)
		event_put_be(o, 0xd0, (uint64_t)v, 1);
	else if (v >= INT16_MIN)
		event_put_be(o, 0xd1, (uint64_t)v, 2);
	else if (v >= INT32_MIN)
		event_put_be(o, 0xd2, (uint64_t)v, 4);
	else
		event_put_be(o, 0xd3, (uint64_t)v, 8);
}

/* A str (fixstr, str8, str16: every event string is far below 64 KiB). */
static void event_put_str(event_out_t *o, const char *s, size_t n)
{
	assert(n <= UINT16_MAX);
	if (n < 32)
		*o->p++ = (uint8_t)(0xa0 | n);
	else if (n <= UINT8_MAX)
		event_put_be(o, 0xd9, n, 1);
	else
		event_put_be(o, 0xda, n, 2);
	memcpy(o->p, s, n);
	o->p += n;
}

static void event_put_bin(event_out_t *o, const uint8_t *b, size_t n)
{
	assert(n <= UINT16_MAX);
	if (n <= UINT8_MAX)
		event_put_be(o, 0xc4, n, 1);
	else
		event_put_be(o, 0xc5, n, 2);
	memcpy(o->p, b, n);
	o->p += n;
}

/* A key: a string literal, its length known at compile time. */
#define EVENT_PUT_KEY(o, lit) event_put_str((o), (lit), sizeof(lit) - 1)

/* An account number as its 16 digits, two at a time (ledger_account_format). */
static void event_put_account(event_out_t *o, const char *key, size_t key_len, uint64_t number)
{
	static const char pairs[] = "00010203040506070809101112131415161718192021222324"
	                            "25262728293031323334353637383940414243444546474849"
	                            "50515253545556575859606162636465666768697071727374"
	                            "75767778798081828384858687888990919293949596979899";
	assert(number >= 1000000000000000ULL && number <= 9999999999999999ULL);
	event_put_str(o, key, key_len);
	*o->p++ = (uint8_t)(0xa0 | LEDGER_ACCOUNT_DIGITS);
	for (int i = LEDGER_ACCOUNT_DIGITS - 2; i >= 0; i -= 2) {
		memcpy(o->p + i, pairs + 2 * (number % 100), 2);
		number /= 100;
	}
	o->p += LEDGER_ACCOUNT_DIGITS;
}

#define EVENT_PUT_ACCOUNT(o, lit, n) event_put_account((o), (lit), sizeof(lit) - 1, (n))

static void event_put_hex(event_out_t *o, const uint8_t *p, size_t n)
{
	char hex[2 * LEDGER_CODE_HASH_BYTES + 1];
	assert(n <= LEDGER_CODE_HASH_BYTES);
	event_hex(p, n, hex);
	event_put_str(o, hex, 2 * n);
}

/* account_opened's email: sealed (hash and ciphertext), or plain in stand-ins. */
static void event_put_email(event_out_t *o, const ledger_event_t *ev)
{
	if (!ev->has_email_hash) {
		EVENT_PUT_KEY(o, "email");
		event_put_str(o, ev->email, strnlen(ev->email, LEDGER_EMAIL_BYTES_MAX));
		return;
	}
	assert(ev->email_enc_len >= LEDGER_SEALED_BYTES_MIN &&
	       ev->email_enc_len <= LEDGER_SEALED_BYTES_MAX);
	EVENT_PUT_KEY(o, "email_hash");
	event_put_hex(o, ev->email_hash, LEDGER_EMAIL_HASH_BYTES);
	EVENT_PUT_KEY(o, "email_enc");
	event_put_bin(o, ev->email_enc, ev->email_enc_len);
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

static void event_put_fields(event_out_t *o, const ledger_event_t *ev)
{
	switch (ev->type) {
	case LEDGER_EV_ACCOUNT_OPENED:
		EVENT_PUT_ACCOUNT(o, "account", ev->account);
		event_put_email(o, ev);
		EVENT_PUT_KEY(o, "balance");
		event_put_int(o, ev->amount);
		EVENT_PUT_KEY(o, "pwhash");
		event_put_str(o, ev->pwhash, strnlen(ev->pwhash, sizeof(ev->pwhash)));
		EVENT_PUT_KEY(o, "code_hash");
		event_put_hex(o, ev->code_hash, LEDGER_CODE_HASH_BYTES);
		break;
	case LEDGER_EV_ACCOUNT_VERIFIED:
	case LEDGER_EV_ACCOUNT_ERASED:
		EVENT_PUT_ACCOUNT(o, "account", ev->account);
		break;
	case LEDGER_EV_CODE_REISSUED:
		EVENT_PUT_ACCOUNT(o, "account", ev->account);
		EVENT_PUT_KEY(o, "code_hash");
		event_put_hex(o, ev->code_hash, LEDGER_CODE_HASH_BYTES);
		break;
	case LEDGER_EV_MONEY_TRANSFERRED:
		EVENT_PUT_ACCOUNT(o, "from", ev->account);
		EVENT_PUT_ACCOUNT(o, "to", ev->to);
		EVENT_PUT_KEY(o, "amount");
		event_put_int(o, ev->amount);
		break;
	case LEDGER_EV_MONEY_WITHDRAWN:
		EVENT_PUT_ACCOUNT(o, "account", ev->account);
		EVENT_PUT_KEY(o, "amount");
		event_put_int(o, ev->amount);
		if (ev->has_balance) {
			EVENT_PUT_KEY(o, "balance");
			event_put_int(o, ev->balance);
		}
		break;
	case LEDGER_EV_PRIMARY_CHANGED:
		EVENT_PUT_KEY(o, "node");
		event_put_str(o, ev->node, strnlen(ev->node, LEDGER_NODE_BYTES_MAX));
		break;
	}
}

size_t event_encode(const ledger_event_t *ev, uint8_t out[EVENT_BYTES_MAX])
{
	assert(ev && ledger_event_type_name(ev->type) && ev->ts_ms >= 0);
	assert(!ev->has_key || (ev->key_len >= 1 && ev->key_len <= LEDGER_KEY_BYTES_MAX));
	bool sealed = ev->type == LEDGER_EV_ACCOUNT_OPENED && ev->has_email_hash;
	uint32_t fields = 3 + event_type_fields(ev->type, ev->has_balance) + sealed +
	                  (ev->has_key ? 2 : 0);
	event_out_t o = { out };
	*o.p++ = (uint8_t)(0x80 | fields); /* fixmap: at most 12 entries */
	EVENT_PUT_KEY(&o, "seq");
	event_put_uint(&o, ev->seq);
	EVENT_PUT_KEY(&o, "ts");
	event_put_uint(&o, (uint64_t)ev->ts_ms);
	EVENT_PUT_KEY(&o, "type");
	const char *type = ledger_event_type_name(ev->type);
	event_put_str(&o, type, strlen(type));
	event_put_fields(&o, ev);
	if (ev->has_key) {
		EVENT_PUT_KEY(&o, "key");
		event_put_str(&o, ev->key, ev->key_len);
		EVENT_PUT_KEY(&o, "fp");
		event_put_hex(&o, ev->fp, LEDGER_FP_BYTES);
	}
	size_t n = (size_t)(o.p - out);
	assert(n <= EVENT_BYTES_MAX);
	return n;
}

void event_pack(msgpack_packer *pk, const ledger_event_t *ev)
{
	assert(pk);
	uint8_t buf[EVENT_BYTES_MAX];
	size_t n = event_encode(ev, buf);
	msgpack_pack_str_body(pk, buf, n); /* raw bytes: the map encoded above */
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

/* The event from its fields, found by either walk below. */
static int event_decode_fields_of(const event_fields_t *f, ledger_event_t *ev)
{
	uint64_t ts;
	const char *s;
	size_t n;
	if (event_u64(f, EVENT_F_SEQ, &ev->seq) < 0 || ev->seq == 0)
		return -EINVAL;
	if (event_u64(f, EVENT_F_TS, &ts) < 0 || ts > INT64_MAX)
		return -EINVAL;
	ev->ts_ms = (int64_t)ts;
	if (event_str(f, EVENT_F_TYPE, &s, &n) < 0)
		return -EINVAL;
	ev->type = ledger_event_type_parse(s, n);
	if (ev->type == 0 || event_decode_fields(f, ev) < 0 || event_decode_key(f, ev) < 0)
		return -EINVAL;
	return 0;
}

int event_decode(const msgpack_object *map, ledger_event_t *ev)
{
	assert(ev);
	memset(ev, 0, sizeof(*ev));
	if (!map || map->type != MSGPACK_OBJECT_MAP)
		return -EINVAL;
	event_fields_t f;
	event_fields(map, &f);
	return event_decode_fields_of(&f, ev);
}

/*
 * ---- the bytes of an event in one walk (event_decode_bytes) ----
 * The events this program writes are maps whose keys are strings and whose
 * values are strings, bins or unsigned integers: those are read here straight
 * from the bytes, without msg_check() and msgpack_unpack() (two walks and a
 * zone per event). Anything else (another value type, a torn or trailing
 * byte) makes the fast walk give up, and the bytes go the general way, which
 * gives the answer for them: both ways agree on every input the fast one takes.
 */
typedef struct {
	const uint8_t *p, *end;
} event_in_t;

static bool event_take_be(event_in_t *in, int n, uint64_t *v)
{
	if (in->end - in->p < n)
		return false;
	*v = 0;
	for (int i = 0; i < n; i++)
		*v = *v << 8 | *in->p++;
	return true;
}

/* The length field of a str or bin header c (1, 2 or 4 bytes), then the body. */
static bool event_take_body(event_in_t *in, int len_bytes, uint64_t n, msgpack_object *o)
{
	if (len_bytes && !event_take_be(in, len_bytes, &n))
		return false;
	if ((uint64_t)(in->end - in->p) < n)
		return false;
	o->via.str.ptr = (const char *)in->p;
	o->via.str.size = (uint32_t)n;
	in->p += n;
	return true;
}

/* One string, bin or unsigned integer; false for anything else. */
static bool event_take_scalar(event_in_t *in, msgpack_object *o)
{
	if (in->p >= in->end)
		return false;
	uint8_t c = *in->p++;
	o->type = MSGPACK_OBJECT_STR;
	if (c <= 0x7f) {
		o->type = MSGPACK_OBJECT_POSITIVE_INTEGER;
		o->via.u64 = c;
		return true;
	}
	if (c >= 0xcc && c <= 0xcf) {
		o->type = MSGPACK_OBJECT_POSITIVE_INTEGER;
		return event_take_be(in, 1 << (c - 0xcc), &o->via.u64);
	}
	if (c >= 0xa0 && c <= 0xbf)
		return event_take_body(in, 0, c & 0x1f, o);
	if (c >= 0xd9 && c <= 0xdb)
		return event_take_body(in, 1 << (c - 0xd9), 0, o);
	if (c >= 0xc4 && c <= 0xc6) {
		msgpack_object s;
		if (!event_take_body(in, 1 << (c - 0xc4), 0, &s))
			return false;
		o->type = MSGPACK_OBJECT_BIN;
		o->via.bin.ptr = s.via.str.ptr;
		o->via.bin.size = s.via.str.size;
		return true;
	}
	return false;
}

static bool event_take_map_size(event_in_t *in, uint64_t *n)
{
	if (in->p >= in->end)
		return false;
	uint8_t c = *in->p++;
	if (c >= 0x80 && c <= 0x8f) {
		*n = c & 0x0f;
		return true;
	}
	return (c == 0xde || c == 0xdf) && event_take_be(in, c == 0xde ? 2 : 4, n);
}

/* The fields of the map in buf, values in vals; false: take the general way. */
static bool event_fast_fields(const char *buf, size_t len, msgpack_object *vals,
                              event_fields_t *f)
{
	event_in_t in = { (const uint8_t *)buf, (const uint8_t *)buf + len };
	uint64_t pairs;
	memset(f, 0, sizeof(*f));
	if (!event_take_map_size(&in, &pairs))
		return false;
	for (uint64_t i = 0; i < pairs; i++) {
		msgpack_object k, v;
		if (!event_take_scalar(&in, &k) || k.type != MSGPACK_OBJECT_STR ||
		    !event_take_scalar(&in, &v))
			return false;
		event_field_t which = event_field_of(k.via.str.ptr, k.via.str.size);
		if (which != EVENT_F_COUNT_MAX && !f->v[which]) {
			vals[which] = v;
			f->v[which] = &vals[which];
		}
	}
	return in.p == in.end;
}

int event_decode_bytes(const char *buf, size_t len, ledger_event_t *ev)
{
	assert(buf || len == 0);
	event_fields_t f;
	msgpack_object vals[EVENT_F_COUNT_MAX];
	if (len > 0 && event_fast_fields(buf, len, vals, &f)) {
		memset(ev, 0, sizeof(*ev));
		return event_decode_fields_of(&f, ev);
	}
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
