/*
 * ledger_record.c - an account's variable-sized data in the strings arena
 * (the account's rec, ledger.h), packed so that a million accounts fit in
 * little memory (docs/performance.md's memory row):
 *
 *   rec = identity (id_len bytes) || password hash || sealed email (enc_len bytes)
 *
 *   identity   a plain account's lower-cased email (id_len 3..254 bytes); a
 *              sealed account's keyed email hash as its 32 raw bytes (its
 *              identity string is their 64 hex digits); nothing when erased
 *   password   pw_prefix 0: the argon2id string as given (pw_len bytes);
 *              pw_prefix k > 0: the string's parameters "$argon2id$...$"
 *              are the ledger's k-th interned prefix, then the 16-byte salt
 *              and the 32-byte hash its Base64 (no padding) decodes to (the
 *              string is kept this way only when it re-encodes to itself)
 *   sealed     LEDGER_SEAL_NONCE_DERIVED: ciphertext || tag only, the
 *              nonce being ledger_sealed_nonce(number, opened_seq); else the
 *              whole sealed form nonce || ciphertext || tag (events sealed
 *              with a random nonce); LEDGER_SEAL_STORED: instead of those
 *              bytes, the 8-byte reference (native order) the ledger's
 *              sealed store gave for them (enc_len is still their length);
 *              nothing when plain or erased
 *
 * No NULs, no alignment: the arena holds bytes. Pure.
 */
#include "ledger_impl.h"

#include <assert.h>
#include <errno.h>
#include <sodium.h>
#include <string.h>

#define LEDGER_PW_SALT_BYTES 16
#define LEDGER_PW_HASH_BYTES 32
#define LEDGER_PW_SALT_CHARS 22 /* Base64 of 16 bytes, no padding */
#define LEDGER_PW_HASH_CHARS 43 /* Base64 of 32 bytes, no padding */
_Static_assert(LEDGER_PW_BIN_BYTES == LEDGER_PW_SALT_BYTES + LEDGER_PW_HASH_BYTES, "salt || hash");

void ledger_sealed_nonce(uint64_t account, uint64_t seq, uint8_t nonce[LEDGER_NONCE_BYTES])
{
	memset(nonce, 0, LEDGER_NONCE_BYTES);
	for (int i = 7; i >= 0; i--, account >>= 8, seq >>= 8) {
		nonce[i] = (uint8_t)account;
		nonce[8 + i] = (uint8_t)seq;
	}
}

static const char ledger_b64_chars[] =
	"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/*
 * A Base64 character's value + 1, 0 if it is none: a table, since a
 * snapshot load decodes 65 characters of every account's password hash
 * (the branches of a range test cost 15% of a 1,000,000-account load).
 * Not constant-time: hashes, not keys.
 */
static const uint8_t ledger_b64_values[256] = {
	['A'] = 1, ['B'] = 2, ['C'] = 3, ['D'] = 4, ['E'] = 5, ['F'] = 6, ['G'] = 7,
	['H'] = 8, ['I'] = 9, ['J'] = 10, ['K'] = 11, ['L'] = 12, ['M'] = 13, ['N'] = 14,
	['O'] = 15, ['P'] = 16, ['Q'] = 17, ['R'] = 18, ['S'] = 19, ['T'] = 20, ['U'] = 21,
	['V'] = 22, ['W'] = 23, ['X'] = 24, ['Y'] = 25, ['Z'] = 26,
	['a'] = 27, ['b'] = 28, ['c'] = 29, ['d'] = 30, ['e'] = 31, ['f'] = 32, ['g'] = 33,
	['h'] = 34, ['i'] = 35, ['j'] = 36, ['k'] = 37, ['l'] = 38, ['m'] = 39, ['n'] = 40,
	['o'] = 41, ['p'] = 42, ['q'] = 43, ['r'] = 44, ['s'] = 45, ['t'] = 46, ['u'] = 47,
	['v'] = 48, ['w'] = 49, ['x'] = 50, ['y'] = 51, ['z'] = 52,
	['0'] = 53, ['1'] = 54, ['2'] = 55, ['3'] = 56, ['4'] = 57, ['5'] = 58, ['6'] = 59,
	['7'] = 60, ['8'] = 61, ['9'] = 62, ['+'] = 63, ['/'] = 64,
};

/* n bytes as Base64 without padding, NUL-terminated, into out. */
static void ledger_b64_encode(const uint8_t *p, size_t n, char *out)
{
	uint32_t acc = 0;
	int bits = 0;
	for (size_t i = 0; i < n; i++) {
		acc = acc << 8 | p[i];
		for (bits += 8; bits >= 6; bits -= 6)
			*out++ = ledger_b64_chars[(acc >> (bits - 6)) & 63];
	}
	if (bits)
		*out++ = ledger_b64_chars[(acc << (6 - bits)) & 63];
	*out = '\0';
}

/*
 * n Base64 characters (no padding) at s that decode to exactly bin_len
 * bytes and encode back to themselves (the bits left over are zero).
 * libsodium's constant-time codec cost ~0.85 s per million accounts here.
 */
static bool ledger_b64_exact(const char *s, size_t n, uint8_t *bin, size_t bin_len)
{
	if (n != (bin_len * 8 + 5) / 6)
		return false;
	uint32_t acc = 0;
	int bits = 0;
	size_t o = 0;
	for (size_t i = 0; i < n; i++) {
		uint32_t v = ledger_b64_values[(unsigned char)s[i]];
		if (v == 0)
			return false;
		acc = acc << 6 | (v - 1);
		bits += 6;
		if (bits >= 8) {
			bits -= 8;
			bin[o++] = (uint8_t)(acc >> bits);
		}
	}
	return o == bin_len && (acc & ((1u << bits) - 1)) == 0;
}

/* The interned prefix's number (1..), interning it when new; 0 when full. */
uint8_t ledger_record_prefix(ledger_t *l, const char *p, size_t n)
{
	assert(n <= LEDGER_PW_PREFIX_BYTES_MAX);
	for (uint32_t i = 0; i < l->pw_prefixes_n; i++)
		if (l->pw_prefix_len[i] == n && memcmp(l->pw_prefixes[i], p, n) == 0)
			return (uint8_t)(i + 1);
	if (l->pw_prefixes_n == LEDGER_PW_PREFIXES_MAX)
		return 0;
	memcpy(l->pw_prefixes[l->pw_prefixes_n], p, n);
	l->pw_prefix_len[l->pw_prefixes_n] = (uint8_t)n;
	return (uint8_t)++l->pw_prefixes_n;
}

/* The compact form of "PREFIX$SALT$HASH" into bin; its prefix id, 0 if it has none. */
static uint8_t ledger_pw_compact(ledger_t *l, const char *s, size_t n, uint8_t bin[LEDGER_PW_BIN_BYTES])
{
	const size_t tail = LEDGER_PW_SALT_CHARS + 1 + LEDGER_PW_HASH_CHARS;
	if (n <= tail || n - tail > LEDGER_PW_PREFIX_BYTES_MAX || s[n - tail - 1] != '$' ||
	    s[n - LEDGER_PW_HASH_CHARS - 1] != '$' || strncmp(s, "$argon2", 7) != 0)
		return 0;
	const char *salt = s + n - tail, *hash = s + n - LEDGER_PW_HASH_CHARS;
	if (!ledger_b64_exact(salt, LEDGER_PW_SALT_CHARS, bin, LEDGER_PW_SALT_BYTES) ||
	    !ledger_b64_exact(hash, LEDGER_PW_HASH_CHARS, bin + LEDGER_PW_SALT_BYTES,
	                      LEDGER_PW_HASH_BYTES))
		return 0;
	return ledger_record_prefix(l, s, n - tail);
}

size_t ledger_record_bytes_max(const ledger_opening_t *o)
{
	assert(o->email_len + o->pwhash_len + o->email_enc_len <= LEDGER_RECORD_BYTES_MAX);
	return o->email_len + o->pwhash_len + o->email_enc_len;
}

static int ledger_hex_value(char c)
{
	return c <= '9' ? c - '0' : c - 'a' + 10;
}

/* The identity's bytes as kept: a hash identity's raw bytes, else itself. */
static size_t ledger_record_identity(const ledger_opening_t *o, uint8_t *out)
{
	if (o->email_enc_len == 0) {
		memcpy(out, o->email, o->email_len);
		return o->email_len;
	}
	assert(o->email_len == LEDGER_EMAIL_ID_CHARS);
	for (size_t i = 0; i < LEDGER_EMAIL_HASH_BYTES; i++) /* checked: lowercase hex */
		out[i] = (uint8_t)(ledger_hex_value(o->email[2 * i]) << 4 |
		                   ledger_hex_value(o->email[2 * i + 1]));
	return LEDGER_EMAIL_HASH_BYTES;
}

void ledger_set_sealed_store(ledger_t *l, const ledger_sealed_store_t *s)
{
	assert(l && s && s->put && s->get && s->wipe);
	l->sealed = *s;
}

/* The bytes the record holds for the sealed email: the store's reference, or the bytes. */
static size_t ledger_record_sealed_bytes(const ledger_account_t *a)
{
	return (a->seal_flags & LEDGER_SEAL_STORED) ? sizeof(uint64_t) : a->enc_len;
}

/*
 * The sealed email as kept: without its nonce when the nonce is the derived
 * one; in the sealed store when the ledger has one that takes it, the
 * record then holding its reference. Returns the record's bytes.
 */
static size_t ledger_record_sealed(ledger_t *l, ledger_account_t *a, const ledger_opening_t *o,
                                   uint8_t *out)
{
	uint8_t nonce[LEDGER_NONCE_BYTES];
	ledger_sealed_nonce(a->number, a->opened_seq, nonce);
	bool derived = o->email_enc_len > LEDGER_NONCE_BYTES &&
	               memcmp(o->email_enc, nonce, LEDGER_NONCE_BYTES) == 0;
	size_t skip = derived ? LEDGER_NONCE_BYTES : 0;
	const uint8_t *p = o->email_enc + skip;
	a->enc_len = (uint16_t)(o->email_enc_len - skip);
	a->seal_flags = derived ? LEDGER_SEAL_NONCE_DERIVED : 0;
	uint64_t ref = l->sealed.put ? l->sealed.put(l->sealed.arg, p, a->enc_len) : 0;
	if (ref)
		a->seal_flags |= LEDGER_SEAL_STORED;
	memcpy(out, ref ? (const uint8_t *)&ref : p, ledger_record_sealed_bytes(a));
	return ledger_record_sealed_bytes(a);
}

void ledger_record_put(ledger_t *l, ledger_account_t *a, const ledger_opening_t *o)
{
	uint8_t rec[LEDGER_RECORD_BYTES_MAX];
	uint8_t *p = rec;
	a->id_len = (uint8_t)ledger_record_identity(o, p);
	p += a->id_len;
	if (o->pw_bin) {
		a->pw_prefix = o->pw_prefix;
		memcpy(p, o->pw_bin, LEDGER_PW_BIN_BYTES);
	} else {
		a->pw_prefix = ledger_pw_compact(l, o->pwhash, o->pwhash_len, p);
	}
	a->pw_len = a->pw_prefix ? LEDGER_PW_BIN_BYTES : (uint8_t)o->pwhash_len;
	if (!a->pw_prefix)
		memcpy(p, o->pwhash, o->pwhash_len);
	p += a->pw_len;
	a->enc_len = 0;
	a->seal_flags = 0;
	if (o->email_enc_len)
		p += ledger_record_sealed(l, a, o, p);
	a->rec = ledger_strings_bytes(l, rec, (size_t)(p - rec));
	sodium_memzero(rec, sizeof(rec));
}

size_t ledger_account_identity(const ledger_account_t *a, char out[LEDGER_EMAIL_BYTES_MAX + 1])
{
	assert(a);
	if (a->erased) {
		out[0] = '\0';
		return 0;
	}
	if (a->enc_len == 0) {
		memcpy(out, a->rec, a->id_len);
		out[a->id_len] = '\0';
		return a->id_len;
	}
	ledger_email_id(a->rec, out);
	return LEDGER_EMAIL_ID_CHARS;
}

void ledger_account_pwhash(const ledger_t *l, const ledger_account_t *a,
                           char out[LEDGER_PWHASH_BYTES_MAX])
{
	assert(l && a);
	const uint8_t *p = a->rec + a->id_len;
	if (!a->pw_prefix) {
		memcpy(out, p, a->pw_len);
		out[a->pw_len] = '\0';
		return;
	}
	size_t k = a->pw_prefix - 1u, n = l->pw_prefix_len[k];
	memcpy(out, l->pw_prefixes[k], n);
	ledger_b64_encode(p, LEDGER_PW_SALT_BYTES, out + n);
	n += LEDGER_PW_SALT_CHARS;
	out[n++] = '$';
	ledger_b64_encode(p + LEDGER_PW_SALT_BYTES, LEDGER_PW_HASH_BYTES, out + n);
}

/* The compact password hash, prefix number first (0 bytes when it is kept as a string). */
size_t ledger_record_pw_compact(const ledger_account_t *a, uint8_t out[LEDGER_PW_COMPACT_BYTES])
{
	if (!a->pw_prefix)
		return 0;
	out[0] = a->pw_prefix;
	memcpy(out + 1, a->rec + a->id_len, LEDGER_PW_BIN_BYTES);
	return LEDGER_PW_COMPACT_BYTES;
}

static const uint8_t *ledger_record_sealed_at(const ledger_account_t *a)
{
	return a->rec + a->id_len + a->pw_len;
}

long ledger_account_sealed_in(const ledger_t *l, const ledger_account_t *a,
                              uint8_t out[LEDGER_SEALED_BYTES_MAX])
{
	assert(l && a);
	if (a->enc_len == 0)
		return 0;
	size_t skip = (a->seal_flags & LEDGER_SEAL_NONCE_DERIVED) ? LEDGER_NONCE_BYTES : 0;
	if (skip)
		ledger_sealed_nonce(a->number, a->opened_seq, out);
	const uint8_t *p = ledger_record_sealed_at(a);
	if (!(a->seal_flags & LEDGER_SEAL_STORED))
		memcpy(out + skip, p, a->enc_len);
	else {
		uint64_t ref;
		memcpy(&ref, p, sizeof(ref));
		if (l->sealed.get(l->sealed.arg, ref, out + skip, a->enc_len) < 0)
			return -EIO;
	}
	return (long)(skip + a->enc_len);
}

size_t ledger_account_sealed(const ledger_account_t *a, uint8_t out[LEDGER_SEALED_BYTES_MAX])
{
	assert(a && !(a->seal_flags & LEDGER_SEAL_STORED));
	if (a->enc_len == 0)
		return 0;
	size_t skip = (a->seal_flags & LEDGER_SEAL_NONCE_DERIVED) ? LEDGER_NONCE_BYTES : 0;
	if (skip)
		ledger_sealed_nonce(a->number, a->opened_seq, out);
	memcpy(out + skip, ledger_record_sealed_at(a), a->enc_len);
	return skip + a->enc_len;
}

void ledger_record_erase(const ledger_t *l, ledger_account_t *a)
{
	uint8_t *sealed = a->rec + a->id_len + a->pw_len;
	if (a->seal_flags & LEDGER_SEAL_STORED) {
		uint64_t ref;
		memcpy(&ref, sealed, sizeof(ref));
		l->sealed.wipe(l->sealed.arg, ref, a->enc_len);
	}
	sodium_memzero(a->rec, a->id_len); /* id_len stays: the password hash follows */
	sodium_memzero(sealed, ledger_record_sealed_bytes(a));
	a->enc_len = 0;
	a->seal_flags = 0;
	a->erased = true;
}
