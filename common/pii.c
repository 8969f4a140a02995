/* pii.c - sealing personal data with an account's key (format in pii.h). */
#include "pii.h"

#include <assert.h>
#include <errno.h>
#include <sodium.h>
#include <string.h>

#define PII_AD_BYTES 16

/* The associated data: account and seq, u64 big-endian each (the nonce's first 16 bytes). */
static void pii_ad(uint64_t account, uint64_t seq, uint8_t ad[PII_NONCE_BYTES])
{
	ledger_sealed_nonce(account, seq, ad);
}

void pii_new_key(uint8_t key[KEYSTORE_KEY_BYTES])
{
	crypto_aead_xchacha20poly1305_ietf_keygen(key);
}

size_t pii_seal(const uint8_t key[KEYSTORE_KEY_BYTES], uint64_t account, uint64_t seq,
                const char *text, size_t n, uint8_t *out)
{
	assert(n <= LEDGER_EMAIL_BYTES_MAX);
	uint8_t ad[PII_NONCE_BYTES];
	pii_ad(account, seq, ad);
	memcpy(out, ad, PII_NONCE_BYTES); /* derived: each key seals one message (pii.h) */
	unsigned long long clen = 0;
	crypto_aead_xchacha20poly1305_ietf_encrypt(out + PII_NONCE_BYTES, &clen,
	                                           (const unsigned char *)text, n, ad, PII_AD_BYTES,
	                                           NULL, out, key);
	return PII_NONCE_BYTES + (size_t)clen;
}

int pii_open(const uint8_t key[KEYSTORE_KEY_BYTES], uint64_t account, uint64_t seq,
             const uint8_t *sealed, size_t len, char out[LEDGER_EMAIL_BYTES_MAX + 1])
{
	if (len < PII_NONCE_BYTES + PII_TAG_BYTES || len > PII_SEALED_BYTES_MAX)
		return -EBADMSG;
	uint8_t ad[PII_NONCE_BYTES];
	pii_ad(account, seq, ad);
	unsigned long long n = 0;
	if (crypto_aead_xchacha20poly1305_ietf_decrypt((unsigned char *)out, &n, NULL,
	                                               sealed + PII_NONCE_BYTES,
	                                               len - PII_NONCE_BYTES, ad, PII_AD_BYTES,
	                                               sealed, key) != 0)
		return -EBADMSG;
	out[n] = '\0';
	return 0;
}

/* Opens a sealed email with account's key from ks. */
static int pii_open_stored(const keystore_t *ks, uint64_t account, uint64_t seq,
                           const uint8_t *sealed, size_t len, char out[LEDGER_EMAIL_BYTES_MAX + 1])
{
	uint8_t key[KEYSTORE_KEY_BYTES];
	if (!ks || keystore_get(ks, account, key) < 0)
		return -ENOENT;
	int rc = pii_open(key, account, seq, sealed, len, out);
	sodium_memzero(key, sizeof(key));
	return rc;
}

int pii_event_email(const keystore_t *ks, const ledger_event_t *ev,
                    char out[LEDGER_EMAIL_BYTES_MAX + 1])
{
	assert(ev->type == LEDGER_EV_ACCOUNT_OPENED);
	if (!ev->has_email_hash) {
		memcpy(out, ev->email, strlen(ev->email) + 1);
		return 0;
	}
	return pii_open_stored(ks, ev->account, ev->seq, ev->email_enc, ev->email_enc_len, out);
}

/* An account's email from its sealed form (n bytes; 0: plain, -errno: unreadable). */
static int pii_email_of(const keystore_t *ks, const ledger_account_t *a, const uint8_t *sealed,
                        long n, char out[LEDGER_EMAIL_BYTES_MAX + 1])
{
	if (n < 0)
		return (int)n;
	if (n == 0) { /* opened before sealing: the identity is the email */
		ledger_account_identity(a, out);
		return 0;
	}
	return pii_open_stored(ks, a->number, a->opened_seq, sealed, (size_t)n, out);
}

int pii_account_email(const keystore_t *ks, const ledger_account_t *a,
                      char out[LEDGER_EMAIL_BYTES_MAX + 1])
{
	if (a->erased)
		return -ENOENT;
	uint8_t sealed[LEDGER_SEALED_BYTES_MAX];
	return pii_email_of(ks, a, sealed, (long)ledger_account_sealed(a, sealed), out);
}

int pii_ledger_email(const keystore_t *ks, const ledger_t *l, const ledger_account_t *a,
                     char out[LEDGER_EMAIL_BYTES_MAX + 1])
{
	if (a->erased)
		return -ENOENT;
	uint8_t sealed[LEDGER_SEALED_BYTES_MAX];
	return pii_email_of(ks, a, sealed, ledger_account_sealed_in(l, a, sealed), out);
}
