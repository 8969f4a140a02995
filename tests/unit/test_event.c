/*
 * test_event.c - the msgpack encoding of events: round trips for every type,
 * and rejection of events with missing or mistyped fields.
 */
#include "event.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <string.h>

#define A1 1000000000000001ULL
#define A2 9876543210987654ULL

static msg_buf_t buf;

static void setup(void)
{
	msg_buf_init(&buf);
}

static void teardown(void)
{
	msg_buf_free(&buf);
}

TestSuite(event, .init = setup, .fini = teardown);

static ledger_event_t make(ledger_event_type_t type)
{
	ledger_event_t ev;
	memset(&ev, 0, sizeof(ev));
	ev.seq = 42;
	ev.ts_ms = 1700000000123LL;
	ev.type = type;
	ev.account = A1;
	switch (type) {
	case LEDGER_EV_ACCOUNT_OPENED:
		strcpy(ev.email, "one@example.com");
		strcpy(ev.pwhash, "$argon2id$v=19$m=65536,t=2,p=1$c2FsdA$aGFzaA");
		ev.amount = LEDGER_OPEN_BALANCE;
		for (int i = 0; i < LEDGER_CODE_HASH_BYTES; i++)
			ev.code_hash[i] = (uint8_t)(i * 7 + 1);
		break;
	case LEDGER_EV_CODE_REISSUED:
		memset(ev.code_hash, 0xab, sizeof(ev.code_hash));
		break;
	case LEDGER_EV_MONEY_TRANSFERRED:
		ev.to = A2;
		ev.amount = LEDGER_AMOUNT_MAX;
		break;
	case LEDGER_EV_MONEY_WITHDRAWN:
		ev.amount = 1;
		break;
	case LEDGER_EV_PRIMARY_CHANGED:
		ev.account = 0; /* it has no account */
		strcpy(ev.node, "standby-b:/var/lib/esbank");
		break;
	default:
		break;
	}
	return ev;
}

static void with_key(ledger_event_t *ev)
{
	ev->has_key = true;
	memset(ev->key, 'K', LEDGER_KEY_BYTES_MAX);
	ev->key_len = LEDGER_KEY_BYTES_MAX;
	for (int i = 0; i < LEDGER_FP_BYTES; i++)
		ev->fp[i] = (uint8_t)(0xf0 + i);
}

static void round_trip(const ledger_event_t *in)
{
	ledger_event_t out;
	msg_buf_reset(&buf);
	event_pack(&buf.pk, in);
	cr_assert_eq(event_decode_bytes(buf.sb.data, buf.sb.size, &out), 0, "%s",
		     ledger_event_type_name(in->type));
	cr_assert_eq(out.seq, in->seq);
	cr_assert_eq(out.ts_ms, in->ts_ms);
	cr_assert_eq(out.type, in->type);
	cr_assert_eq(out.account, in->account);
	cr_assert_eq(out.to, in->to);
	cr_assert_eq(out.amount, in->amount);
	cr_assert_str_eq(out.email, in->email);
	cr_assert_str_eq(out.pwhash, in->pwhash);
	cr_assert_eq(memcmp(out.code_hash, in->code_hash, LEDGER_CODE_HASH_BYTES), 0);
	cr_assert_eq(out.has_key, in->has_key);
	cr_assert_eq(out.key_len, in->key_len);
	cr_assert_eq(memcmp(out.key, in->key, in->key_len), 0);
	cr_assert_eq(memcmp(out.fp, in->fp, LEDGER_FP_BYTES), 0);
	cr_assert_str_eq(out.node, in->node);
}

Test(event, round_trip_every_type)
{
	for (int t = LEDGER_EV_ACCOUNT_OPENED; t <= LEDGER_EV_ACCOUNT_ERASED; t++) {
		ledger_event_t ev = make((ledger_event_type_t)t);
		round_trip(&ev);
		with_key(&ev);
		round_trip(&ev);
	}
}

Test(event, hex_helpers)
{
	uint8_t in[3] = { 0x00, 0x9f, 0xff }, out[3];
	char hex[7];
	event_hex(in, 3, hex);
	cr_assert_str_eq(hex, "009fff");
	cr_assert(event_unhex("009FfF", 6, out, 3));
	cr_assert_eq(memcmp(in, out, 3), 0);
	cr_assert_not(event_unhex("009ff", 5, out, 3), "odd length");
	cr_assert_not(event_unhex("009fffaa", 8, out, 3), "too long");
	cr_assert_not(event_unhex("009fgf", 6, out, 3), "not hex");
	for (int c = 0; c < 256; c++) { /* every byte, as the high and as the low digit */
		char two[3] = { (char)c, '0', '\0' }, low[3] = { '0', (char)c, '\0' };
		int v = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 :
		        c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
		cr_assert_eq(event_unhex(two, 2, out, 1), v >= 0, "byte %d", c);
		if (v >= 0)
			cr_assert_eq(out[0], v << 4);
		cr_assert_eq(event_unhex(low, 2, out, 1), v >= 0, "byte %d", c);
		if (v >= 0)
			cr_assert_eq(out[0], v);
	}
}

/* Decodes the packed event after the field named drop is left out or, when
 * replace is set, given the value packed by replace. */
static int decode_altered(const ledger_event_t *ev, const char *field,
			  void (*replace)(msgpack_packer *pk))
{
	ledger_event_t out;
	msgpack_zone zone;
	msgpack_object obj;
	msg_buf_reset(&buf);
	event_pack(&buf.pk, ev);
	msgpack_zone_init(&zone, 4096);
	cr_assert_eq(msg_decode_map(buf.sb.data, buf.sb.size, &zone, &obj), 0);
	msg_buf_t b2;
	msg_buf_init(&b2);
	uint32_t n = obj.via.map.size, keep = 0;
	for (uint32_t i = 0; i < n; i++)
		keep += !msg_str_eq(&obj.via.map.ptr[i].key, field) || replace;
	cr_assert_eq(keep, replace ? n : n - 1, "field %s is packed", field);
	msgpack_pack_map(&b2.pk, keep);
	for (uint32_t i = 0; i < n; i++) {
		const msgpack_object_kv *kv = &obj.via.map.ptr[i];
		if (!msg_str_eq(&kv->key, field)) {
			msgpack_pack_object(&b2.pk, kv->key);
			msgpack_pack_object(&b2.pk, kv->val);
		} else if (replace) {
			msgpack_pack_object(&b2.pk, kv->key);
			replace(&b2.pk);
		}
	}
	int rc = event_decode_bytes(b2.sb.data, b2.sb.size, &out);
	msg_buf_free(&b2);
	msgpack_zone_destroy(&zone);
	return rc;
}

static void put_str_123(msgpack_packer *pk) { msg_pack_str(pk, "123"); }
static void put_int(msgpack_packer *pk) { msgpack_pack_uint64(pk, 1000000000000001ULL); }
static void put_neg(msgpack_packer *pk) { msgpack_pack_int64(pk, -1); }
static void put_nil(msgpack_packer *pk) { msgpack_pack_nil(pk); }
static void put_zero(msgpack_packer *pk) { msgpack_pack_uint64(pk, 0); }
static void put_float(msgpack_packer *pk) { msgpack_pack_double(pk, 1.0); }
static void put_huge(msgpack_packer *pk) { msgpack_pack_uint64(pk, UINT64_MAX); }
static void put_bad_type(msgpack_packer *pk) { msg_pack_str(pk, "money_printed"); }
static void put_short_hex(msgpack_packer *pk) { msg_pack_str(pk, "abcd"); }
static void put_empty(msgpack_packer *pk) { msg_pack_str(pk, ""); }

Test(event, every_required_field_is_required)
{
	static const char *const fields[][8] = {
		[LEDGER_EV_ACCOUNT_OPENED] = { "seq", "ts", "type", "account", "email", "balance",
					       "pwhash", "code_hash" },
		[LEDGER_EV_ACCOUNT_VERIFIED] = { "seq", "ts", "type", "account" },
		[LEDGER_EV_CODE_REISSUED] = { "seq", "ts", "type", "account", "code_hash" },
		[LEDGER_EV_MONEY_TRANSFERRED] = { "seq", "ts", "type", "from", "to", "amount" },
		[LEDGER_EV_MONEY_WITHDRAWN] = { "seq", "ts", "type", "account", "amount" },
		[LEDGER_EV_PRIMARY_CHANGED] = { "seq", "ts", "type", "node" },
	};
	for (int t = LEDGER_EV_ACCOUNT_OPENED; t <= LEDGER_EV_PRIMARY_CHANGED; t++) {
		ledger_event_t ev = make((ledger_event_type_t)t);
		const char *name = ledger_event_type_name(ev.type);
		for (int f = 0; f < 8 && fields[t][f]; f++) {
			const char *field = fields[t][f];
			cr_assert_eq(decode_altered(&ev, field, NULL), -EINVAL, "%s without %s",
				     name, field);
			cr_assert_eq(decode_altered(&ev, field, put_nil), -EINVAL,
				     "%s with nil %s", name, field);
		}
	}
}

Test(event, mistyped_fields)
{
	ledger_event_t tr = make(LEDGER_EV_MONEY_TRANSFERRED);
	cr_assert_eq(decode_altered(&tr, "from", put_int), -EINVAL, "account as integer");
	cr_assert_eq(decode_altered(&tr, "to", put_str_123), -EINVAL, "account of 3 digits");
	cr_assert_eq(decode_altered(&tr, "amount", put_neg), -EINVAL, "negative amount");
	cr_assert_eq(decode_altered(&tr, "amount", put_float), -EINVAL, "float amount");
	cr_assert_eq(decode_altered(&tr, "amount", put_str_123), -EINVAL, "string amount");
	cr_assert_eq(decode_altered(&tr, "amount", put_huge), -EINVAL, "amount above INT64_MAX");
	cr_assert_eq(decode_altered(&tr, "seq", put_zero), -EINVAL, "seq 0");
	cr_assert_eq(decode_altered(&tr, "seq", put_neg), -EINVAL, "negative seq");
	cr_assert_eq(decode_altered(&tr, "ts", put_huge), -EINVAL, "ts above INT64_MAX");
	cr_assert_eq(decode_altered(&tr, "ts", put_str_123), -EINVAL, "string ts");
	cr_assert_eq(decode_altered(&tr, "type", put_bad_type), -EINVAL, "unknown type");
	cr_assert_eq(decode_altered(&tr, "type", put_int), -EINVAL, "integer type");
	ledger_event_t op = make(LEDGER_EV_ACCOUNT_OPENED);
	cr_assert_eq(decode_altered(&op, "code_hash", put_short_hex), -EINVAL, "short hash");
	cr_assert_eq(decode_altered(&op, "email", put_empty), -EINVAL, "empty email");
	cr_assert_eq(decode_altered(&op, "email", put_int), -EINVAL, "integer email");
	cr_assert_eq(decode_altered(&op, "pwhash", put_empty), -EINVAL, "empty pwhash");
	cr_assert_eq(decode_altered(&op, "balance", put_neg), -EINVAL, "negative balance");
	cr_assert_eq(decode_altered(&op, "email", put_str_123), 0, "syntax is the ledger's");
}

Test(event, key_and_fp)
{
	ledger_event_t ev = make(LEDGER_EV_MONEY_WITHDRAWN);
	with_key(&ev);
	cr_assert_eq(decode_altered(&ev, "fp", NULL), -EINVAL, "key without fp");
	cr_assert_eq(decode_altered(&ev, "fp", put_short_hex), -EINVAL, "short fp");
	cr_assert_eq(decode_altered(&ev, "key", put_empty), -EINVAL, "empty key");
	cr_assert_eq(decode_altered(&ev, "key", put_int), -EINVAL, "integer key");
	cr_assert_eq(decode_altered(&ev, "key", NULL), -EINVAL, "fp without key");
	ledger_event_t plain = make(LEDGER_EV_MONEY_WITHDRAWN);
	msg_buf_reset(&buf);
	event_pack(&buf.pk, &plain);
	cr_assert_null(memmem(buf.sb.data, buf.sb.size, "key", 3), "no key when none");
}

Test(event, long_strings_rejected)
{
	ledger_event_t ev = make(LEDGER_EV_ACCOUNT_OPENED);
	msg_buf_reset(&buf);
	msgpack_pack_map(&buf.pk, 8);
	msg_pack_kv_u64(&buf.pk, "seq", 1);
	msg_pack_kv_u64(&buf.pk, "ts", 1);
	msg_pack_kv_str(&buf.pk, "type", "account_opened");
	msg_pack_kv_str(&buf.pk, "account", "1000000000000001");
	char big[300];
	memset(big, 'a', sizeof(big));
	big[1] = '@';
	msg_pack_kv_strn(&buf.pk, "email", big, 255);
	msg_pack_kv_u64(&buf.pk, "balance", LEDGER_OPEN_BALANCE);
	msg_pack_kv_str(&buf.pk, "pwhash", ev.pwhash);
	msg_pack_kv_str(&buf.pk, "code_hash",
			"0000000000000000000000000000000000000000000000000000000000000000");
	cr_assert_eq(event_decode_bytes(buf.sb.data, buf.sb.size, &ev), -EINVAL, "email of 255");
}

Test(event, unknown_keys_ignored_and_garbage_rejected)
{
	ledger_event_t ev = make(LEDGER_EV_ACCOUNT_VERIFIED), out;
	msg_buf_reset(&buf);
	msgpack_pack_map(&buf.pk, 5);
	msg_pack_kv_u64(&buf.pk, "seq", ev.seq);
	msg_pack_kv_u64(&buf.pk, "ts", (uint64_t)ev.ts_ms);
	msg_pack_kv_str(&buf.pk, "type", "account_verified");
	msg_pack_kv_str(&buf.pk, "account", "1000000000000001");
	msg_pack_kv_str(&buf.pk, "future_field", "x");
	cr_assert_eq(event_decode_bytes(buf.sb.data, buf.sb.size, &out), 0);
	cr_assert_eq(out.account, A1);
	cr_assert_eq(event_decode_bytes(buf.sb.data, buf.sb.size - 1, &out), -EBADMSG, "torn");
	msg_buf_reset(&buf);
	msgpack_pack_array(&buf.pk, 1);
	msgpack_pack_int(&buf.pk, 1);
	cr_assert_eq(event_decode_bytes(buf.sb.data, buf.sb.size, &out), -EBADMSG, "array");
}

Test(event, packed_shape)
{
	ledger_event_t ev = make(LEDGER_EV_MONEY_TRANSFERRED);
	msgpack_zone zone;
	msgpack_object obj;
	msg_buf_reset(&buf);
	event_pack(&buf.pk, &ev);
	msgpack_zone_init(&zone, 1024);
	cr_assert_eq(msg_decode_map(buf.sb.data, buf.sb.size, &zone, &obj), 0);
	cr_assert_eq(obj.via.map.size, 6);
	const char *s;
	size_t n;
	cr_assert_eq(msg_get_str(&obj, "to", &s, &n), 0);
	cr_assert(n == 16 && memcmp(s, "9876543210987654", 16) == 0);
	uint64_t v;
	cr_assert_eq(msg_get_u64(&obj, "amount", &v), 0);
	cr_assert_eq(v, (uint64_t)LEDGER_AMOUNT_MAX);
	cr_assert_null(msg_get(&obj, "pwhash"));
	msgpack_zone_destroy(&zone);
}

/* The takeover record of replication: exactly seq, ts, type and node. */
Test(event, primary_changed_shape_and_node)
{
	ledger_event_t ev = make(LEDGER_EV_PRIMARY_CHANGED), out;
	msgpack_zone zone;
	msgpack_object obj;
	msg_buf_reset(&buf);
	event_pack(&buf.pk, &ev);
	msgpack_zone_init(&zone, 1024);
	cr_assert_eq(msg_decode_map(buf.sb.data, buf.sb.size, &zone, &obj), 0);
	cr_assert_eq(obj.via.map.size, 4);
	const char *s;
	size_t n;
	cr_assert_eq(msg_get_str(&obj, "type", &s, &n), 0);
	cr_assert(n == 15 && memcmp(s, "primary_changed", 15) == 0);
	cr_assert_eq(msg_get_str(&obj, "node", &s, &n), 0);
	cr_assert(n == strlen(ev.node) && memcmp(s, ev.node, n) == 0);
	cr_assert_null(msg_get(&obj, "account"));
	msgpack_zone_destroy(&zone);

	cr_assert_eq(decode_altered(&ev, "node", put_empty), -EINVAL, "empty node");
	cr_assert_eq(decode_altered(&ev, "node", put_int), -EINVAL, "node not a string");
	memset(ev.node, 'n', LEDGER_NODE_BYTES_MAX);
	ev.node[LEDGER_NODE_BYTES_MAX] = '\0';
	round_trip(&ev);
	msg_buf_reset(&buf);
	msgpack_pack_map(&buf.pk, 4);
	msg_pack_kv_u64(&buf.pk, "seq", 1);
	msg_pack_kv_u64(&buf.pk, "ts", 1);
	msg_pack_kv_str(&buf.pk, "type", "primary_changed");
	char big[LEDGER_NODE_BYTES_MAX + 1];
	memset(big, 'n', sizeof(big));
	msg_pack_kv_strn(&buf.pk, "node", big, sizeof(big));
	cr_assert_eq(event_decode_bytes(buf.sb.data, buf.sb.size, &out), -EINVAL, "node of 256");
}

/* account_opened with a sealed email (email_hash, email_enc), and the plain shape of old logs */
Test(event, sealed_and_plain_openings)
{
	ledger_event_t ev = make(LEDGER_EV_ACCOUNT_OPENED), out;
	memset(ev.email, 0, sizeof(ev.email));
	ev.has_email_hash = true;
	memset(ev.email_hash, 0x3c, LEDGER_EMAIL_HASH_BYTES);
	ev.email_enc_len = LEDGER_SEALED_BYTES_MAX;
	for (size_t i = 0; i < ev.email_enc_len; i++)
		ev.email_enc[i] = (uint8_t)i;
	round_trip(&ev);
	msg_buf_reset(&buf);
	event_pack(&buf.pk, &ev);
	cr_assert_null(memmem(buf.sb.data, buf.sb.size, "\xa5" "email", 6), "no plain email key");
	cr_assert_eq(event_decode_bytes(buf.sb.data, buf.sb.size, &out), 0);
	cr_assert(out.has_email_hash && out.email_enc_len == ev.email_enc_len);
	cr_assert_eq(memcmp(out.email_enc, ev.email_enc, ev.email_enc_len), 0);
	cr_assert_eq(memcmp(out.email_hash, ev.email_hash, LEDGER_EMAIL_HASH_BYTES), 0);
	ledger_event_t plain = make(LEDGER_EV_ACCOUNT_OPENED);
	msg_buf_reset(&buf);
	event_pack(&buf.pk, &plain);
	cr_assert_eq(event_decode_bytes(buf.sb.data, buf.sb.size, &out), 0);
	cr_assert(!out.has_email_hash && strcmp(out.email, "one@example.com") == 0);
}

/* ---- event_encode against msgpack-c, the fast decoding against the general ---- */

static void ref_account(msgpack_packer *pk, const char *name, uint64_t number)
{
	char digits[LEDGER_ACCOUNT_DIGITS + 1];
	ledger_account_format(number, digits);
	msg_pack_kv_str(pk, name, digits);
}

static void ref_hex(msgpack_packer *pk, const char *name, const uint8_t *p, size_t n)
{
	char hex[2 * LEDGER_CODE_HASH_BYTES + 1];
	event_hex(p, n, hex);
	msg_pack_kv_str(pk, name, hex);
}

/* The packer event.c had before event_encode (msgpack-c's packer, field by field). */
static void ref_pack(msgpack_packer *pk, const ledger_event_t *ev)
{
	static const uint32_t fields[] = { 0, 5, 1, 2, 3, 2, 1, 1 };
	bool sealed = ev->type == LEDGER_EV_ACCOUNT_OPENED && ev->has_email_hash;
	msgpack_pack_map(pk, 3 + fields[ev->type] + (ev->type == LEDGER_EV_MONEY_WITHDRAWN &&
	                                             ev->has_balance) + sealed + 2 * ev->has_key);
	msg_pack_kv_u64(pk, "seq", ev->seq);
	msg_pack_kv_u64(pk, "ts", (uint64_t)ev->ts_ms);
	msg_pack_kv_str(pk, "type", ledger_event_type_name(ev->type));
	switch (ev->type) {
	case LEDGER_EV_ACCOUNT_OPENED:
		ref_account(pk, "account", ev->account);
		if (sealed) {
			ref_hex(pk, "email_hash", ev->email_hash, LEDGER_EMAIL_HASH_BYTES);
			msg_pack_kv_bin(pk, "email_enc", ev->email_enc, ev->email_enc_len);
		} else {
			msg_pack_kv_str(pk, "email", ev->email);
		}
		msg_pack_kv_i64(pk, "balance", ev->amount);
		msg_pack_kv_str(pk, "pwhash", ev->pwhash);
		ref_hex(pk, "code_hash", ev->code_hash, LEDGER_CODE_HASH_BYTES);
		break;
	case LEDGER_EV_CODE_REISSUED:
		ref_account(pk, "account", ev->account);
		ref_hex(pk, "code_hash", ev->code_hash, LEDGER_CODE_HASH_BYTES);
		break;
	case LEDGER_EV_MONEY_TRANSFERRED:
		ref_account(pk, "from", ev->account);
		ref_account(pk, "to", ev->to);
		msg_pack_kv_i64(pk, "amount", ev->amount);
		break;
	case LEDGER_EV_MONEY_WITHDRAWN:
		ref_account(pk, "account", ev->account);
		msg_pack_kv_i64(pk, "amount", ev->amount);
		if (ev->has_balance)
			msg_pack_kv_i64(pk, "balance", ev->balance);
		break;
	case LEDGER_EV_PRIMARY_CHANGED:
		msg_pack_kv_str(pk, "node", ev->node);
		break;
	default:
		ref_account(pk, "account", ev->account);
		break;
	}
	if (ev->has_key) {
		msg_pack_kv_strn(pk, "key", ev->key, ev->key_len);
		ref_hex(pk, "fp", ev->fp, LEDGER_FP_BYTES);
	}
}

static uint64_t rng_state = 0x9e3779b97f4a7c15ULL;

static uint64_t rng(void)
{
	rng_state ^= rng_state << 13;
	rng_state ^= rng_state >> 7;
	rng_state ^= rng_state << 17;
	return rng_state;
}

/* An integer around one of msgpack's size boundaries. */
static uint64_t rng_uint(uint64_t max)
{
	static const uint64_t edges[] = { 1, 127, 128, 255, 256, 65535, 65536, 4294967295ULL,
	                                  4294967296ULL, 1765000000000ULL };
	uint64_t v = edges[rng() % 10] + rng() % 3 - 1;
	v = v == 0 ? 1 : v;
	return v > max ? max : v;
}

static void rng_text(char *dst, size_t n)
{
	for (size_t i = 0; i < n; i++)
		dst[i] = (char)('a' + rng() % 26);
	dst[n] = '\0';
}

static ledger_event_t rng_event(int i)
{
	ledger_event_t ev = make((ledger_event_type_t)(LEDGER_EV_ACCOUNT_OPENED + i % 7));
	ev.seq = rng_uint(UINT64_MAX);
	ev.ts_ms = (int64_t)rng_uint(INT64_MAX);
	ev.account = 1000000000000000ULL + rng() % 9000000000000000ULL;
	ev.to = 1000000000000000ULL + rng() % 9000000000000000ULL;
	ev.amount = (int64_t)rng_uint(LEDGER_AMOUNT_MAX);
	ev.balance = (int64_t)rng_uint(INT64_MAX);
	ev.has_balance = ev.type == LEDGER_EV_MONEY_WITHDRAWN && rng() % 2;
	rng_text(ev.email, 3 + rng() % (LEDGER_EMAIL_BYTES_MAX - 2));
	rng_text(ev.pwhash, 1 + rng() % (LEDGER_PWHASH_BYTES_MAX - 1));
	rng_text(ev.node, 1 + rng() % LEDGER_NODE_BYTES_MAX);
	ev.has_email_hash = ev.type == LEDGER_EV_ACCOUNT_OPENED && rng() % 2;
	ev.email_enc_len = LEDGER_SEALED_BYTES_MIN +
	                   rng() % (LEDGER_SEALED_BYTES_MAX - LEDGER_SEALED_BYTES_MIN + 1);
	for (size_t b = 0; b < sizeof(ev.email_enc); b++)
		ev.email_enc[b] = (uint8_t)rng();
	if (ev.type != LEDGER_EV_PRIMARY_CHANGED && rng() % 2) {
		with_key(&ev);
		ev.key_len = 1 + rng() % LEDGER_KEY_BYTES_MAX;
	}
	return ev;
}

Test(event, encode_matches_msgpack_c_byte_for_byte)
{
	msg_buf_t ref;
	msg_buf_init(&ref);
	for (int i = 0; i < 20000; i++) {
		ledger_event_t ev = rng_event(i);
		uint8_t out[EVENT_BYTES_MAX];
		size_t n = event_encode(&ev, out);
		msg_buf_reset(&ref);
		ref_pack(&ref.pk, &ev);
		cr_assert_eq(n, ref.sb.size, "event %d (%s): %zu bytes, msgpack-c %zu", i,
		             ledger_event_type_name(ev.type), n, ref.sb.size);
		cr_assert_eq(memcmp(out, ref.sb.data, n), 0, "event %d (%s)", i,
		             ledger_event_type_name(ev.type));
	}
	msg_buf_free(&ref);
}

/* msg_decode_map + event_decode: the general way. */
static int general_decode(const char *b, size_t n, ledger_event_t *ev)
{
	msgpack_zone zone;
	msgpack_object map;
	msgpack_zone_init(&zone, 2048);
	int rc = msg_decode_map(b, n, &zone, &map) == 0 ? event_decode(&map, ev) : -EBADMSG;
	msgpack_zone_destroy(&zone);
	return rc;
}

static void agree(const char *b, size_t n, const char *what, size_t at)
{
	ledger_event_t fast, general;
	memset(&fast, 0, sizeof(fast));
	memset(&general, 0, sizeof(general));
	int rf = event_decode_bytes(b, n, &fast), rg = general_decode(b, n, &general);
	cr_assert_eq(rf, rg, "%s at %zu: %d vs %d", what, at, rf, rg);
	if (rf == 0)
		cr_assert_eq(memcmp(&fast, &general, sizeof(fast)), 0, "%s at %zu", what, at);
}

Test(event, fast_decoding_agrees_with_the_general_way)
{
	static const uint8_t subst[] = { 0x00, 0x01, 0x7f, 0x80, 0x8f, 0xa0, 0xbf, 0xc0, 0xc2,
	                                 0xc4, 0xc5, 0xcc, 0xcf, 0xd0, 0xd9, 0xda, 0xde, 0xdf,
	                                 0xe0, 0xff };
	for (int i = 0; i < 200; i++) {
		ledger_event_t ev = rng_event(i);
		msg_buf_reset(&buf);
		event_pack(&buf.pk, &ev);
		char *b = buf.sb.data;
		size_t n = buf.sb.size;
		for (size_t cut = 0; cut <= n; cut++)
			agree(b, cut, "cut", cut);
		for (size_t at = 0; at < n; at++) {
			uint8_t keep = (uint8_t)b[at];
			for (size_t s = 0; s < sizeof(subst); s++) {
				b[at] = (char)subst[s];
				agree(b, n, "byte", at);
			}
			b[at] = (char)keep;
		}
	}
}
