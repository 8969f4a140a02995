/*
 * token.c - bearer tokens and the secret that signs them (see token.h for
 * the token text).
 *
 * File format of DATA/http.secret: exactly TOKEN_KEY_BYTES bytes from
 * randombytes_buf(), nothing else, mode 0600. A file of any other size is
 * refused (the gateway stops: exit 100) rather than silently replaced, since
 * replacing it would log every user out. A secret readable by others is
 * tightened to 0600 with a warning.
 */
#include "token.h"

#include "config.h"
#include "diag.h"

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define TOKEN_VERSION "v1"
#define TOKEN_MAC_TEXT_MAX (sodium_base64_ENCODED_LEN(crypto_auth_BYTES, \
	sodium_base64_VARIANT_URLSAFE_NO_PADDING))

static int token_read_secret(token_ctx_t *t, const char *path)
{
	int fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	struct stat st;
	int rc = 0;
	if (fstat(fd, &st) < 0) {
		rc = -errno;
		goto out;
	}
	if (st.st_size != TOKEN_KEY_BYTES) {
		diag_error("%s: %lld bytes, want %d", path, (long long)st.st_size, TOKEN_KEY_BYTES);
		rc = -EINVAL;
		goto out;
	}
	if ((st.st_mode & 077) != 0) {
		diag_warn("%s: readable by others; setting mode 0600", path);
		if (fchmod(fd, 0600) < 0)
			diag_warn("%s: chmod: %s", path, strerror(errno));
	}
	ssize_t got = read(fd, t->key, sizeof(t->key));
	if (got != (ssize_t)sizeof(t->key))
		rc = got < 0 ? -errno : -EIO;
out:
	close(fd);
	return rc;
}

static int token_fsync_dir(const char *dir)
{
	int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	int rc = fsync(fd) < 0 ? -errno : 0;
	close(fd);
	return rc;
}

/* Writes a fresh secret to a temporary file and links it into place. */
static int token_create_secret(const char *dir, const char *path)
{
	char tmp[4096];
	unsigned char key[TOKEN_KEY_BYTES];
	if (snprintf(tmp, sizeof(tmp), "%s.tmp.%ld", path, (long)getpid()) >= (int)sizeof(tmp))
		return -ENAMETOOLONG;
	int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0)
		return -errno;
	randombytes_buf(key, sizeof(key));
	int rc = 0;
	if (write(fd, key, sizeof(key)) != (ssize_t)sizeof(key) || fsync(fd) < 0)
		rc = errno ? -errno : -EIO;
	close(fd);
	sodium_memzero(key, sizeof(key));
	if (rc == 0 && link(tmp, path) < 0 && errno != EEXIST)
		rc = -errno; /* EEXIST: another start won the race; read theirs */
	unlink(tmp);
	if (rc == 0)
		rc = token_fsync_dir(dir);
	return rc;
}

int token_load_secret(token_ctx_t *t, const char *data_dir)
{
	char *path = config_path(data_dir, TOKEN_SECRET_FILE);
	if (!path)
		return -ENOMEM;
	int rc = token_read_secret(t, path);
	if (rc == -ENOENT) {
		rc = token_create_secret(data_dir, path);
		if (rc == 0) {
			diag_info("created %s", path);
			rc = token_read_secret(t, path);
		}
	}
	if (rc < 0)
		diag_error("token secret %s: %s", path, strerror(-rc));
	free(path);
	return rc;
}

static bool token_account_ok(const char *s, size_t n)
{
	if (n == 0 || n > TOKEN_ACCOUNT_MAX)
		return false;
	for (size_t i = 0; i < n; i++)
		if (s[i] < '0' || s[i] > '9')
			return false;
	return true;
}

int token_make(const token_ctx_t *t, const char *account, uint64_t now_s, char *out,
               size_t out_size)
{
	if (!token_account_ok(account, strlen(account)))
		return -EINVAL;
	int n = snprintf(out, out_size, TOKEN_VERSION ".%s.%llu", account,
	                 (unsigned long long)(now_s + t->ttl_s));
	if (n < 0 || (size_t)n + 1 + TOKEN_MAC_TEXT_MAX > out_size)
		return -EINVAL;
	unsigned char mac[crypto_auth_BYTES];
	crypto_auth(mac, (const unsigned char *)out, (size_t)n, t->key);
	out[n] = '.';
	sodium_bin2base64(out + n + 1, out_size - (size_t)n - 1, mac, sizeof(mac),
	                  sodium_base64_VARIANT_URLSAFE_NO_PADDING);
	return 0;
}

/* Parses "v1.<account>.<expiry>" (signed part, already authenticated). */
static int token_parse_claims(const char *s, size_t n, char *account, size_t account_size,
                              uint64_t *expiry)
{
	size_t vlen = strlen(TOKEN_VERSION);
	if (n <= vlen + 1 || memcmp(s, TOKEN_VERSION ".", vlen + 1) != 0)
		return -EBADMSG;
	const char *acct = s + vlen + 1;
	const char *dot = memchr(acct, '.', n - vlen - 1);
	if (!dot || !token_account_ok(acct, (size_t)(dot - acct)) ||
	    (size_t)(dot - acct) >= account_size)
		return -EBADMSG;
	uint64_t exp = 0;
	const char *p = dot + 1;
	if (p == s + n || s + n - p > 19)
		return -EBADMSG;
	for (; p < s + n; p++) {
		if (*p < '0' || *p > '9')
			return -EBADMSG;
		exp = exp * 10 + (uint64_t)(*p - '0');
	}
	memcpy(account, acct, (size_t)(dot - acct));
	account[dot - acct] = '\0';
	*expiry = exp;
	return 0;
}

int token_verify(const token_ctx_t *t, const char *tok, size_t n, uint64_t now_s,
                 char *account, size_t account_size)
{
	if (n == 0 || n >= TOKEN_TEXT_MAX)
		return -EBADMSG;
	const char *dot = NULL;
	for (size_t i = n; i > 0; i--) {
		if (tok[i - 1] == '.') {
			dot = tok + i - 1;
			break;
		}
	}
	if (!dot)
		return -EBADMSG;
	unsigned char mac[crypto_auth_BYTES];
	size_t mac_len = 0;
	const char *end = NULL;
	if (sodium_base642bin(mac, sizeof(mac), dot + 1, (size_t)(tok + n - dot - 1), NULL,
	                      &mac_len, &end, sodium_base64_VARIANT_URLSAFE_NO_PADDING) != 0 ||
	    mac_len != sizeof(mac) || end != tok + n)
		return -EBADMSG;
	if (crypto_auth_verify(mac, (const unsigned char *)tok, (size_t)(dot - tok), t->key) != 0)
		return -EBADMSG;
	uint64_t expiry;
	if (token_parse_claims(tok, (size_t)(dot - tok), account, account_size, &expiry) < 0)
		return -EBADMSG;
	return now_s >= expiry ? -EKEYEXPIRED : 0;
}
