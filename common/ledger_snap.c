/*
 * ledger_snap.c - the snapshot codec of the state: ledger_pack() and
 * ledger_unpack(). The encoding, field by field, and its validity rules are
 * at the top of ledger.c, next to the layout they mirror. Pure.
 */
#include "ledger_impl.h"
#include "be.h"
#include "msg.h"

#include <assert.h>
#include <errno.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- snapshot encoding (see the top of the file) ---- */

static void ledger_pack_bool(msgpack_packer *pk, bool b)
{
	if (b)
		msgpack_pack_true(pk);
	else
		msgpack_pack_false(pk);
}

static void ledger_pack_account(const ledger_t *l, msgpack_packer *pk, const ledger_account_t *a)
{
	char id[LEDGER_EMAIL_BYTES_MAX + 1], pwhash[LEDGER_PWHASH_BYTES_MAX];
	uint8_t sealed[LEDGER_SEALED_BYTES_MAX];
	long sealed_len = ledger_account_sealed_in(l, a, sealed);
	assert(sealed_len >= 0); /* the snapshotter's ledger keeps them in memory */
	ledger_account_identity(a, id);
	ledger_account_pwhash(l, a, pwhash);
	msgpack_pack_array(pk, 11);
	msgpack_pack_uint64(pk, a->number);
	msg_pack_str(pk, id);
	msg_pack_str(pk, pwhash);
	msg_pack_binn(pk, a->code_hash, LEDGER_CODE_HASH_BYTES);
	msgpack_pack_int64(pk, a->balance);
	msgpack_pack_int64(pk, a->opened_at_ms);
	msgpack_pack_int64(pk, a->last_activity_ms);
	ledger_pack_bool(pk, a->verified);
	msg_pack_binn(pk, sealed, (size_t)sealed_len);
	msgpack_pack_uint64(pk, a->opened_seq);
	ledger_pack_bool(pk, a->erased);
}

void ledger_pack(const ledger_t *l, msgpack_packer *pk)
{
	assert(l && pk);
	msgpack_pack_map(pk, 7);
	msg_pack_kv_u64(pk, "v", LEDGER_SNAPSHOT_VERSION);
	msg_pack_kv_u64(pk, "last_seq", l->last_seq);
	msg_pack_kv_i64(pk, "last_ts", l->last_ts);
	msg_pack_str(pk, "accounts");
	msgpack_pack_array(pk, l->accounts_n);
	for (uint32_t i = 0; i < l->accounts_n; i++)
		ledger_pack_account(l, pk, &l->accounts[i]);
	msg_pack_str(pk, "keys");
	msgpack_pack_array(pk, l->keys_n);
	for (uint32_t i = 0; i < l->keys_n; i++) {
		const ledger_key_rec_t *r = &l->keys[ledger_keys_slot(l, i)];
		msgpack_pack_array(pk, 6);
		msg_pack_binn(pk, r->key, r->len);
		msgpack_pack_uint64(pk, (uint64_t)r->entry.op);
		msgpack_pack_uint64(pk, r->entry.seq);
		msgpack_pack_uint64(pk, r->entry.account);
		msgpack_pack_int64(pk, r->entry.balance);
		msg_pack_binn(pk, r->entry.fp, LEDGER_FP_BYTES);
	}
	msg_pack_str(pk, "sums");
	msgpack_pack_array(pk, l->sums.used);
	for (uint32_t i = 0; l->sums.tags && i <= l->sums.mask; i++) {
		if (!l->sums.tags[i])
			continue;
		msgpack_pack_array(pk, 2);
		msgpack_pack_uint64(pk, l->sums.tags[i]);
		msgpack_pack_int64(pk, l->sums.totals[i]);
	}
	msg_pack_kv_i64(pk, "moved", l->moved_total);
}

static bool ledger_obj_i64(const msgpack_object *o, int64_t min, int64_t *v)
{
	if (o->type == MSGPACK_OBJECT_POSITIVE_INTEGER && o->via.u64 <= INT64_MAX)
		*v = (int64_t)o->via.u64;
	else if (o->type == MSGPACK_OBJECT_NEGATIVE_INTEGER)
		*v = o->via.i64;
	else
		return false;
	return *v >= min;
}

/* A non-empty string of at most max bytes without NUL. */
static bool ledger_obj_text(const msgpack_object *o, size_t max)
{
	return o->type == MSGPACK_OBJECT_STR && o->via.str.size > 0 && o->via.str.size <= max &&
	       memchr(o->via.str.ptr, '\0', o->via.str.size) == NULL;
}

/* An identity (ledger.h): a valid email, already lower-cased, or 64 lowercase hex digits. */
static bool ledger_obj_email(const msgpack_object *o)
{
	char lower[LEDGER_EMAIL_BYTES_MAX + 1];
	if (o->type != MSGPACK_OBJECT_STR)
		return false;
	const char *s = o->via.str.ptr;
	size_t n = o->via.str.size;
	if (n == LEDGER_EMAIL_ID_CHARS && strspn(s, "0123456789abcdef") >= n)
		return true;
	return ledger_email_valid(s, n, lower) && memcmp(lower, s, n) == 0;
}

/* Version 2's fields 8..10: the sealed email, opened_seq, erased. */
static bool ledger_obj_sealed(const msgpack_object *f, size_t n, ledger_opening_t *o)
{
	if (n == 8)
		return ledger_obj_email(&f[1]);
	if (n != 11 || f[8].type != MSGPACK_OBJECT_BIN || f[8].via.bin.size > LEDGER_SEALED_BYTES_MAX ||
	    f[9].type != MSGPACK_OBJECT_POSITIVE_INTEGER || f[10].type != MSGPACK_OBJECT_BOOLEAN)
		return false;
	o->a.erased = f[10].via.boolean;
	o->a.opened_seq = f[9].via.u64;
	o->email_enc = (const uint8_t *)f[8].via.bin.ptr;
	o->email_enc_len = f[8].via.bin.size;
	bool hex = f[1].type == MSGPACK_OBJECT_STR && f[1].via.str.size == LEDGER_EMAIL_ID_CHARS &&
	           memchr(f[1].via.str.ptr, '@', f[1].via.str.size) == NULL;
	if (o->a.erased) /* nothing left of the email */
		return f[1].type == MSGPACK_OBJECT_STR && f[1].via.str.size == 0 && !o->email_enc_len;
	if (hex != (o->email_enc_len > 0))
		return false; /* sealed <=> a hash identity */
	return ledger_obj_email(&f[1]) &&
	       (!hex || o->email_enc_len >= LEDGER_SEALED_BYTES_MIN);
}

/* Reads an account's fields into *o; false if any is malformed. */
static bool ledger_obj_account(const msgpack_object *obj, ledger_opening_t *o)
{
	const msgpack_object *f = obj->via.array.ptr;
	if (obj->type != MSGPACK_OBJECT_ARRAY ||
	    (obj->via.array.size != 8 && obj->via.array.size != 11) ||
	    f[0].type != MSGPACK_OBJECT_POSITIVE_INTEGER || !ledger_number_ok(f[0].via.u64) ||
	    !ledger_obj_sealed(f, obj->via.array.size, o) ||
	    !ledger_obj_text(&f[2], LEDGER_PWHASH_BYTES_MAX - 1) ||
	    f[3].type != MSGPACK_OBJECT_BIN || f[3].via.bin.size != LEDGER_CODE_HASH_BYTES ||
	    !ledger_obj_i64(&f[4], 0, &o->a.balance) ||
	    !ledger_obj_i64(&f[5], 0, &o->a.opened_at_ms) ||
	    !ledger_obj_i64(&f[6], 0, &o->a.last_activity_ms) ||
	    f[7].type != MSGPACK_OBJECT_BOOLEAN)
		return false;
	o->a.number = f[0].via.u64;
	o->a.verified = f[7].via.boolean;
	memcpy(o->a.code_hash, f[3].via.bin.ptr, LEDGER_CODE_HASH_BYTES);
	o->email = f[1].via.str.ptr;
	o->email_len = f[1].via.str.size;
	o->pwhash = f[2].via.str.ptr;
	o->pwhash_len = f[2].via.str.size;
	return true;
}

/*
 * Adds one account, checking that its number and email are new with the
 * same probes that find their slots (ledger_unpack_reserve sized the array
 * and indexes, so only the strings may need room).
 */
static int ledger_unpack_account(ledger_t *l, const msgpack_object *obj)
{
	ledger_opening_t o = { 0 };
	if (!ledger_obj_account(obj, &o))
		return -EINVAL;
	o.number_frag = (uint32_t)ledger_mix64(o.a.number);
	o.email_frag = (uint32_t)ledger_hash_bytes(o.email, o.email_len, true);
	uint32_t pos = ledger_probe_number(l, o.a.number, o.number_frag);
	if (l->by_number.slots[pos].item != 0)
		return -EINVAL;
	pos = ledger_probe_email(l, o.email, o.email_len, o.email_frag);
	if (o.email_len && l->by_email.slots[pos].item != 0)
		return -EINVAL;
	int rc = ledger_account_reserve(l, o.email_len + o.pwhash_len + o.email_enc_len + 3);
	if (rc < 0)
		return rc;
	ledger_account_add(l, &o);
	return 0;
}

static int ledger_unpack_key(ledger_t *l, const msgpack_object *o)
{
	const msgpack_object *f = o->via.array.ptr;
	ledger_key_entry_t e = { 0 };
	if (o->type != MSGPACK_OBJECT_ARRAY || o->via.array.size != 6 ||
	    f[0].type != MSGPACK_OBJECT_BIN || f[0].via.bin.size < 1 ||
	    f[0].via.bin.size > LEDGER_KEY_BYTES_MAX ||
	    f[1].type != MSGPACK_OBJECT_POSITIVE_INTEGER || f[1].via.u64 > PROTO_OP_WITHDRAW ||
	    !proto_op_is_command((proto_op_t)f[1].via.u64) ||
	    f[2].type != MSGPACK_OBJECT_POSITIVE_INTEGER ||
	    f[3].type != MSGPACK_OBJECT_POSITIVE_INTEGER ||
	    !ledger_obj_i64(&f[4], 0, &e.balance) ||
	    f[5].type != MSGPACK_OBJECT_BIN || f[5].via.bin.size != LEDGER_FP_BYTES)
		return -EINVAL;
	const char *key = f[0].via.bin.ptr;
	size_t n = f[0].via.bin.size;
	uint32_t frag = (uint32_t)ledger_hash_bytes(key, n, false);
	if (l->by_key.slots[ledger_probe_key(l, key, n, frag)].item != 0)
		return -EINVAL;
	int rc = ledger_keys_reserve(l);
	if (rc < 0)
		return rc;
	ledger_key_rec_t *r = ledger_keys_put(l, key, n, frag);
	r->entry.op = (proto_op_t)f[1].via.u64;
	r->entry.seq = f[2].via.u64;
	r->entry.account = f[3].via.u64;
	r->entry.balance = e.balance;
	memcpy(r->entry.fp, f[5].via.bin.ptr, LEDGER_FP_BYTES);
	return 0;
}

static int ledger_unpack_sum(ledger_t *l, const msgpack_object *o)
{
	const msgpack_object *f = o->via.array.ptr;
	int64_t total;
	if (o->type != MSGPACK_OBJECT_ARRAY || o->via.array.size != 2 ||
	    f[0].type != MSGPACK_OBJECT_POSITIVE_INTEGER || f[0].via.u64 < SUM_YEAR ||
	    f[0].via.u64 > (SUM_DAY | (SUM_YEAR - 1)) || !ledger_obj_i64(&f[1], 1, &total) ||
	    ledger_sums_get(&l->sums, f[0].via.u64) != 0)
		return -EINVAL;
	int rc = ledger_sums_reserve(&l->sums);
	if (rc == 0)
		ledger_sums_add(&l->sums, f[0].via.u64, total);
	return rc;
}

/*
 * The body is read one list item at a time (ledger_unpack_list): decoding
 * the whole map into msgpack objects first cost a tree of twelve 24-byte
 * objects per account (860 MB of peak memory and about a third of the load
 * time at a million accounts). msgpack-c has no pull parser, so the map and
 * array headers around the items are read here; each item and each scalar
 * is decoded by msgpack_unpack into one zone, cleared in between.
 */
typedef struct {
	const char *buf;
	size_t len, off;
	msgpack_zone zone;
} ledger_reader_t;

#define LEDGER_READER_ZONE_BYTES 4096

/* A map's or an array's header at the reader (msgpack's fix, 16- and
 * 32-bit forms): its count; false when the next object is not one. */
static bool ledger_read_head(ledger_reader_t *r, bool map, uint32_t *n)
{
	const unsigned char *p = (const unsigned char *)r->buf + r->off;
	size_t left = r->len - r->off;
	unsigned char fix = map ? 0x80 : 0x90, w16 = map ? 0xde : 0xdc, w32 = map ? 0xdf : 0xdd;
	if (left >= 1 && (p[0] & 0xf0) == fix) {
		*n = p[0] & 0x0f;
		r->off += 1;
	} else if (left >= 3 && p[0] == w16) {
		*n = (uint32_t)p[1] << 8 | p[2];
		r->off += 3;
	} else if (left >= 5 && p[0] == w32) {
		*n = be_get_u32(p + 1);
		r->off += 5;
	} else {
		return false;
	}
	return true;
}

/* The next whole object, decoded into the reader's zone (valid until the next call). */
static bool ledger_read_next(ledger_reader_t *r, msgpack_object *o)
{
	msgpack_zone_clear(&r->zone);
	msgpack_unpack_return rc = msgpack_unpack(r->buf, r->len, &r->off, &r->zone, o);
	return rc == MSGPACK_UNPACK_SUCCESS || rc == MSGPACK_UNPACK_EXTRA_BYTES;
}

static int ledger_unpack_list(ledger_t *l, ledger_reader_t *r, uint32_t n,
			      int (*item)(ledger_t *l, const msgpack_object *o))
{
	msgpack_object o;
	for (uint32_t i = 0; i < n; i++) {
		if (!ledger_read_next(r, &o))
			return -EINVAL;
		int rc = item(l, &o);
		if (rc < 0)
			return rc;
	}
	return 0;
}

/* Sizes the accounts and their indexes for the list's length, so that
 * loading never rehashes, then loads them. */
static int ledger_unpack_accounts(ledger_t *l, ledger_reader_t *r)
{
	uint32_t n;
	if (!ledger_read_head(r, false, &n))
		return -EINVAL;
	int rc = ledger_accounts_reserve(l, n);
	if (rc == 0)
		rc = ledger_index_reserve(&l->by_number, n);
	if (rc == 0)
		rc = ledger_index_reserve(&l->by_email, n);
	return rc < 0 ? rc : ledger_unpack_list(l, r, n, ledger_unpack_account);
}

/* Likewise for the keys (at most keys_max of them are remembered). */
static int ledger_unpack_keys(ledger_t *l, ledger_reader_t *r)
{
	uint32_t n;
	if (!ledger_read_head(r, false, &n))
		return -EINVAL;
	uint32_t keys = n > l->keys_max ? l->keys_max : n;
	int rc = ledger_index_reserve(&l->by_key, keys);
	if (rc == 0 && keys > 0)
		rc = ledger_keys_grow(l, keys);
	return rc < 0 ? rc : ledger_unpack_list(l, r, n, ledger_unpack_key);
}

static int ledger_unpack_sums(ledger_t *l, ledger_reader_t *r)
{
	uint32_t n;
	if (!ledger_read_head(r, false, &n))
		return -EINVAL;
	return ledger_unpack_list(l, r, n, ledger_unpack_sum);
}

/* The map's fields, in ledger_pack's order; each must appear exactly once. */
enum { LEDGER_F_V, LEDGER_F_LAST_SEQ, LEDGER_F_LAST_TS, LEDGER_F_ACCOUNTS, LEDGER_F_KEYS,
       LEDGER_F_SUMS, LEDGER_F_MOVED, LEDGER_F_N };
static const char *const ledger_fields[LEDGER_F_N] = {
	"v", "last_seq", "last_ts", "accounts", "keys", "sums", "moved",
};

static int ledger_field_of(const msgpack_object *key)
{
	for (int f = 0; f < LEDGER_F_N; f++)
		if (msg_str_eq(key, ledger_fields[f]))
			return f;
	return LEDGER_F_N; /* unknown: its value is skipped */
}

/* A scalar field's value (an unknown field's is read and ignored). */
static int ledger_unpack_scalar(ledger_t *l, ledger_reader_t *r, int f)
{
	msgpack_object o;
	int64_t v;
	if (!ledger_read_next(r, &o))
		return -EINVAL;
	if (f == LEDGER_F_N)
		return 0;
	bool uint = o.type == MSGPACK_OBJECT_POSITIVE_INTEGER;
	if (f == LEDGER_F_V)
		return uint && (o.via.u64 == LEDGER_SNAPSHOT_VERSION || o.via.u64 == 1) ? 0 : -EINVAL;
	if (f == LEDGER_F_LAST_SEQ) {
		l->last_seq = o.via.u64;
		return uint ? 0 : -EINVAL;
	}
	if (!ledger_obj_i64(&o, 0, &v))
		return -EINVAL;
	if (f == LEDGER_F_LAST_TS)
		l->last_ts = v;
	else
		l->moved_total = v;
	return 0;
}

static int ledger_unpack_field(ledger_t *l, ledger_reader_t *r, int f)
{
	switch (f) {
	case LEDGER_F_ACCOUNTS:
		return ledger_unpack_accounts(l, r);
	case LEDGER_F_KEYS:
		return ledger_unpack_keys(l, r);
	case LEDGER_F_SUMS:
		return ledger_unpack_sums(l, r);
	default:
		return ledger_unpack_scalar(l, r, f);
	}
}

static int ledger_unpack_map(ledger_t *l, ledger_reader_t *r)
{
	uint32_t n, seen = 0;
	msgpack_object key;
	if (!ledger_read_head(r, true, &n))
		return -EINVAL;
	for (uint32_t i = 0; i < n; i++) {
		if (!ledger_read_next(r, &key))
			return -EINVAL;
		int f = ledger_field_of(&key);
		if (f < LEDGER_F_N && (seen & 1u << f))
			return -EINVAL; /* a field twice */
		if (f < LEDGER_F_N)
			seen |= 1u << f;
		int rc = ledger_unpack_field(l, r, f);
		if (rc < 0)
			return rc;
	}
	return seen == (1u << LEDGER_F_N) - 1 && r->off == r->len ? 0 : -EINVAL;
}

int ledger_unpack(ledger_t *l, const char *buf, size_t len)
{
	assert(l && buf && l->last_seq == 0 && l->accounts_n == 0 && l->keys_n == 0);
	/*
	 * msg_check() first (found by tests/fuzz/fuzz_snapfile): msgpack-c
	 * allocates a container from its declared count, so a damaged body with
	 * a right checksum (or one written by a buggy version) whose array
	 * header claims 2^31 elements made this allocate 16 GB.
	 */
	if (msg_check(buf, len) < 0)
		return -EINVAL;
	ledger_reader_t r = { .buf = buf, .len = len };
	if (!msgpack_zone_init(&r.zone, LEDGER_READER_ZONE_BYTES))
		return -ENOMEM;
	int rc = ledger_unpack_map(l, &r);
	msgpack_zone_destroy(&r.zone);
	if (rc < 0)
		return rc;
	int64_t opened = (int64_t)l->accounts_n * LEDGER_OPEN_BALANCE;
	if (l->total_balance > opened)
		return -EINVAL;
	l->total_withdrawn = opened - l->total_balance;
	return 0;
}
