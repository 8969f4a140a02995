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
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define LEDGER_SNAP_ACCOUNT_FIELDS 12 /* version 3's; 11 in version 2, 8 in version 1 */

/* Where the body is read, and what its "pw_prefixes" became in this ledger. */
typedef struct {
	const char *buf;
	size_t len, off;
	msgpack_zone zone;
	uint8_t pw_ids[LEDGER_PW_PREFIXES_MAX]; /* the snapshot's prefix k+1 is the ledger's pw_ids[k] */
	uint32_t pw_n;
} ledger_reader_t;

/* ---- snapshot encoding (see the top of ledger.c) ---- */

static void ledger_pack_bool(msgpack_packer *pk, bool b)
{
	if (b)
		msgpack_pack_true(pk);
	else
		msgpack_pack_false(pk);
}

/* The identity: a sealed account's keyed hash as its 32 bytes, else the
 * plain email or "" (erased). */
static void ledger_pack_identity(msgpack_packer *pk, const ledger_account_t *a)
{
	char id[LEDGER_EMAIL_BYTES_MAX + 1];
	if (!a->erased && a->enc_len)
		msg_pack_binn(pk, a->rec, LEDGER_EMAIL_HASH_BYTES);
	else
		msg_pack_strn(pk, id, ledger_account_identity(a, id));
}

/* The password hash: compact (prefix number, salt, hash) when kept so, else its string. */
static void ledger_pack_pwhash(const ledger_t *l, msgpack_packer *pk, const ledger_account_t *a)
{
	uint8_t compact[LEDGER_PW_COMPACT_BYTES];
	char pwhash[LEDGER_PWHASH_BYTES_MAX];
	size_t n = ledger_record_pw_compact(a, compact);
	if (n) {
		msg_pack_binn(pk, compact, n);
		return;
	}
	ledger_account_pwhash(l, a, pwhash);
	msg_pack_str(pk, pwhash);
}

static void ledger_pack_account(const ledger_t *l, msgpack_packer *pk, const ledger_account_t *a)
{
	uint8_t sealed[LEDGER_SEALED_BYTES_MAX];
	long sealed_len = ledger_account_sealed_in(l, a, sealed);
	assert(sealed_len >= 0); /* the snapshotter's ledger keeps them in memory */
	bool derived = (a->seal_flags & LEDGER_SEAL_NONCE_DERIVED) && sealed_len > 0;
	size_t skip = derived ? LEDGER_NONCE_BYTES : 0;
	msgpack_pack_array(pk, LEDGER_SNAP_ACCOUNT_FIELDS);
	msgpack_pack_uint64(pk, a->number);
	ledger_pack_identity(pk, a);
	ledger_pack_pwhash(l, pk, a);
	msg_pack_binn(pk, a->code_hash, LEDGER_CODE_HASH_BYTES);
	msgpack_pack_int64(pk, a->balance);
	msgpack_pack_int64(pk, a->opened_at_ms);
	msgpack_pack_int64(pk, a->last_activity_ms);
	ledger_pack_bool(pk, a->verified);
	msg_pack_binn(pk, sealed + skip, (size_t)sealed_len - skip);
	msgpack_pack_uint64(pk, a->opened_seq);
	ledger_pack_bool(pk, a->erased);
	ledger_pack_bool(pk, derived);
}

void ledger_pack(const ledger_t *l, msgpack_packer *pk)
{
	assert(l && pk);
	msgpack_pack_map(pk, 8);
	msg_pack_kv_u64(pk, "v", LEDGER_SNAPSHOT_VERSION);
	msg_pack_kv_u64(pk, "last_seq", l->last_seq);
	msg_pack_kv_i64(pk, "last_ts", l->last_ts);
	msg_pack_str(pk, "pw_prefixes");
	msgpack_pack_array(pk, l->pw_prefixes_n);
	for (uint32_t i = 0; i < l->pw_prefixes_n; i++)
		msg_pack_strn(pk, l->pw_prefixes[i], l->pw_prefix_len[i]);
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

/* Reads an account's fields (version 1's 8 or 2's 11, or version 3's made
 * like them by ledger_obj_v3) into *o; false if any is malformed. */
static bool ledger_obj_account(const msgpack_object *f, uint32_t n, ledger_opening_t *o)
{
	if ((n != 8 && n != 11) ||
	    f[0].type != MSGPACK_OBJECT_POSITIVE_INTEGER || !ledger_number_ok(f[0].via.u64) ||
	    !ledger_obj_sealed(f, n, o) ||
	    (!o->pw_bin && !ledger_obj_text(&f[2], LEDGER_PWHASH_BYTES_MAX - 1)) ||
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
	if (!o->pw_bin) {
		o->pwhash = f[2].via.str.ptr;
		o->pwhash_len = f[2].via.str.size;
	}
	return true;
}

/* Room for what a version 3 account becomes in version 2's shape. */
typedef struct {
	msgpack_object f[11];
	char id[LEDGER_EMAIL_ID_CHARS + 1];
	uint8_t sealed[LEDGER_SEALED_BYTES_MAX];
} ledger_v2_shape_t;

/*
 * A version 3 account (ledger.c) in version 2's shape: a 32-byte identity as
 * its hex digits, the sealed email with its derived nonce again; a compact
 * password hash goes to o (its prefix number mapped to this ledger's).
 */
static bool ledger_obj_v3(const ledger_reader_t *r, const msgpack_object *f,
                          ledger_v2_shape_t *v2, ledger_opening_t *o)
{
	memcpy(v2->f, f, sizeof(v2->f));
	if (f[1].type == MSGPACK_OBJECT_BIN) {
		if (f[1].via.bin.size != LEDGER_EMAIL_HASH_BYTES)
			return false;
		ledger_email_id((const uint8_t *)f[1].via.bin.ptr, v2->id);
		v2->f[1] = (msgpack_object){ .type = MSGPACK_OBJECT_STR,
		                             .via.str = { LEDGER_EMAIL_ID_CHARS, v2->id } };
	}
	if (f[2].type == MSGPACK_OBJECT_BIN) {
		const uint8_t *p = (const uint8_t *)f[2].via.bin.ptr;
		if (f[2].via.bin.size != LEDGER_PW_COMPACT_BYTES || p[0] == 0 || p[0] > r->pw_n)
			return false;
		o->pw_prefix = r->pw_ids[p[0] - 1];
		o->pw_bin = p + 1;
		o->pwhash_len = LEDGER_PW_BIN_BYTES;
	}
	if (f[11].type != MSGPACK_OBJECT_BOOLEAN || f[8].type != MSGPACK_OBJECT_BIN)
		return false;
	if (f[11].via.boolean) {
		size_t n = f[8].via.bin.size;
		if (f[9].type != MSGPACK_OBJECT_POSITIVE_INTEGER || n == 0 ||
		    n > LEDGER_SEALED_BYTES_MAX - LEDGER_NONCE_BYTES)
			return false;
		ledger_sealed_nonce(f[0].via.u64, f[9].via.u64, v2->sealed);
		memcpy(v2->sealed + LEDGER_NONCE_BYTES, f[8].via.bin.ptr, n);
		v2->f[8].via.bin.ptr = (const char *)v2->sealed;
		v2->f[8].via.bin.size = (uint32_t)(n + LEDGER_NONCE_BYTES);
	}
	return true;
}

/*
 * Adds one account, checking that its number and email are new with the
 * same probes that find their slots (ledger_unpack_accounts sized the array
 * and indexes, so only the strings may need room).
 */
static int ledger_unpack_account(ledger_t *l, const ledger_reader_t *r, const msgpack_object *obj)
{
	ledger_opening_t o = { 0 };
	ledger_v2_shape_t v2;
	const msgpack_object *f = obj->via.array.ptr;
	uint32_t n = obj->via.array.size;
	if (obj->type != MSGPACK_OBJECT_ARRAY)
		return -EINVAL;
	if (n == LEDGER_SNAP_ACCOUNT_FIELDS) {
		if (!ledger_obj_v3(r, f, &v2, &o))
			return -EINVAL;
		f = v2.f;
		n = 11;
	}
	if (!ledger_obj_account(f, n, &o))
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

static int ledger_unpack_key(ledger_t *l, const ledger_reader_t *rd, const msgpack_object *o)
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

static int ledger_unpack_sum(ledger_t *l, const ledger_reader_t *rd, const msgpack_object *o)
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
			      int (*item)(ledger_t *l, const ledger_reader_t *r,
			                  const msgpack_object *o))
{
	msgpack_object o;
	for (uint32_t i = 0; i < n; i++) {
		if (!ledger_read_next(r, &o))
			return -EINVAL;
		int rc = item(l, r, &o);
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

/* The argon2id parameter strings, interned in this ledger as they come:
 * "$argon2" ... "$", as ledger_record.c keeps them. Before "accounts". */
static int ledger_unpack_pw_prefixes(ledger_t *l, ledger_reader_t *r)
{
	uint32_t n;
	msgpack_object o;
	if (!ledger_read_head(r, false, &n) || n > LEDGER_PW_PREFIXES_MAX)
		return -EINVAL;
	for (r->pw_n = 0; r->pw_n < n; r->pw_n++) {
		if (!ledger_read_next(r, &o) || !ledger_obj_text(&o, LEDGER_PW_PREFIX_BYTES_MAX) ||
		    o.via.str.size < 8 || memcmp(o.via.str.ptr, "$argon2", 7) != 0 ||
		    o.via.str.ptr[o.via.str.size - 1] != '$')
			return -EINVAL;
		r->pw_ids[r->pw_n] = ledger_record_prefix(l, o.via.str.ptr, o.via.str.size);
		if (r->pw_ids[r->pw_n] == 0)
			return -EINVAL;
	}
	return 0;
}

static int ledger_unpack_sums(ledger_t *l, ledger_reader_t *r)
{
	uint32_t n;
	if (!ledger_read_head(r, false, &n))
		return -EINVAL;
	return ledger_unpack_list(l, r, n, ledger_unpack_sum);
}

/* The map's fields, in ledger_pack's order; each must appear exactly once. */
enum { LEDGER_F_V, LEDGER_F_LAST_SEQ, LEDGER_F_LAST_TS, LEDGER_F_PW_PREFIXES,
       LEDGER_F_ACCOUNTS, LEDGER_F_KEYS, LEDGER_F_SUMS, LEDGER_F_MOVED, LEDGER_F_N };
static const char *const ledger_fields[LEDGER_F_N] = {
	"v", "last_seq", "last_ts", "pw_prefixes", "accounts", "keys", "sums", "moved",
};
#define LEDGER_F_OPTIONAL (1u << LEDGER_F_PW_PREFIXES) /* version 3 only */

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
		return uint && o.via.u64 >= 1 && o.via.u64 <= LEDGER_SNAPSHOT_VERSION ? 0 : -EINVAL;
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
	case LEDGER_F_PW_PREFIXES:
		return ledger_unpack_pw_prefixes(l, r);
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
	return (seen | LEDGER_F_OPTIONAL) == (1u << LEDGER_F_N) - 1 && r->off == r->len ? 0
	                                                                               : -EINVAL;
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
