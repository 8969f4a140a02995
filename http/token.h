/*
 * token.h - signed, expiring bearer tokens for the HTTP gateway.
 *
 * A token is printable text:
 *
 *     v1.<account>.<expiry>.<mac>
 *
 * <account> is the account number (decimal digits), <expiry> the Unix time in
 * seconds after which the token is refused, and <mac> the base64url (no
 * padding) crypto_auth (HMAC-SHA-512-256) of everything before the last dot,
 * keyed with the gateway's secret. The secret is DATA/http.secret: exactly
 * TOKEN_KEY_BYTES random bytes, mode 0600, created on first start.
 */
#ifndef ESBANK_HTTP_TOKEN_H
#define ESBANK_HTTP_TOKEN_H

#include <sodium.h>
#include <stddef.h>
#include <stdint.h>

#define TOKEN_SECRET_FILE "http.secret"
#define TOKEN_KEY_BYTES crypto_auth_KEYBYTES
#define TOKEN_ACCOUNT_MAX 32   /* digits in the account field */
#define TOKEN_TEXT_MAX 160     /* whole token, with its NUL */
#define TOKEN_TTL_DEFAULT_S 3600

typedef struct {
	unsigned char key[TOKEN_KEY_BYTES];
	uint64_t ttl_s;
} token_ctx_t;

/*
 * Reads the secret from data_dir/http.secret, creating it (atomically, via a
 * temporary file and link()) when it does not exist. Returns 0, -EINVAL when
 * the file exists with the wrong size, or another negative errno.
 */
int token_load_secret(token_ctx_t *t, const char *data_dir);

/*
 * Writes a token for account, valid until now_s + ttl_s, into out (NUL-
 * terminated). Returns 0, or -EINVAL when account is not 1 to
 * TOKEN_ACCOUNT_MAX digits or out is too small.
 */
int token_make(const token_ctx_t *t, const char *account, uint64_t now_s, char *out,
               size_t out_size);

/*
 * Checks tok[0..n): its MAC (in constant time), then its expiry against
 * now_s. On success copies the account into account (account_size bytes at
 * least TOKEN_ACCOUNT_MAX + 1) and returns 0. Returns -EBADMSG for a token
 * that is malformed or not signed with our key, -EKEYEXPIRED when expired.
 */
int token_verify(const token_ctx_t *t, const char *tok, size_t n, uint64_t now_s,
                 char *account, size_t account_size);

#endif
