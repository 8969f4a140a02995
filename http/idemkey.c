/* idemkey.c - the Idempotency-Key scoped to its user (see idemkey.h). */
#include "idemkey.h"

#include <errno.h>
#include <sodium.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#define IDEMKEY_DOMAIN "esbank-http-key-1"
#define IDEMKEY_HASH_BYTES 32
#define IDEMKEY_FOLD_CHUNK 256

static bool idemkey_digits(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (s[i] < '0' || s[i] > '9')
			return false;
	return n > 0;
}

/* Hashes who, with ASCII letters lower-cased when fold. */
static void idemkey_hash_who(crypto_generichash_state *st, const char *who, size_t n, bool fold)
{
	unsigned char len[4] = { (unsigned char)n, (unsigned char)(n >> 8),
		                 (unsigned char)(n >> 16), (unsigned char)(n >> 24) };
	crypto_generichash_update(st, len, sizeof(len));
	unsigned char buf[IDEMKEY_FOLD_CHUNK];
	for (size_t off = 0; off < n; off += sizeof(buf)) {
		size_t k = n - off < sizeof(buf) ? n - off : sizeof(buf);
		for (size_t i = 0; i < k; i++) {
			unsigned char c = (unsigned char)who[off + i];
			buf[i] = fold && c >= 'A' && c <= 'Z' ? (unsigned char)(c | 0x20) : c;
		}
		crypto_generichash_update(st, buf, k);
	}
}

static int idemkey_hashed(idemkey_scope_t scope, const char *who, size_t who_len,
                          const char *key, size_t key_len, char out[IDEMKEY_SENT_MAX + 1])
{
	crypto_generichash_state st;
	unsigned char tag = (unsigned char)scope;
	unsigned char h[IDEMKEY_HASH_BYTES];
	crypto_generichash_init(&st, NULL, 0, sizeof(h));
	crypto_generichash_update(&st, (const unsigned char *)IDEMKEY_DOMAIN,
	                          sizeof(IDEMKEY_DOMAIN) - 1);
	crypto_generichash_update(&st, &tag, 1);
	idemkey_hash_who(&st, who, who_len, scope == IDEMKEY_EMAIL);
	crypto_generichash_update(&st, (const unsigned char *)key, key_len);
	crypto_generichash_final(&st, h, sizeof(h));
	out[0] = '~';
	sodium_bin2base64(out + 1, IDEMKEY_SENT_MAX, h, sizeof(h),
	                  sodium_base64_VARIANT_URLSAFE_NO_PADDING);
	return (int)strlen(out);
}

int idemkey_make(idemkey_scope_t scope, const char *who, size_t who_len, const char *key,
                 size_t key_len, char out[IDEMKEY_SENT_MAX + 1])
{
	if (key_len == 0 || key_len > IDEMKEY_BYTES_MAX)
		return -EINVAL;
	if (scope == IDEMKEY_ACCOUNT && idemkey_digits(who, who_len) &&
	    who_len + 1 + key_len <= IDEMKEY_SENT_MAX) {
		memcpy(out, who, who_len);
		out[who_len] = '/';
		memcpy(out + who_len + 1, key, key_len);
		out[who_len + 1 + key_len] = '\0';
		return (int)(who_len + 1 + key_len);
	}
	return idemkey_hashed(scope, who, who_len, key, key_len, out);
}
