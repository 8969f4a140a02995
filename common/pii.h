/*
 * pii.h - personal data sealed with its account's data key: today the email
 * of account_opened. XChaCha20-Poly1305 (IETF), the account number and the
 * event's seq (u64 big-endian each) as associated data, so a sealed email
 * cannot be moved to another account or event. The 24-byte nonce is derived
 * from the same two (ledger_sealed_nonce: account, seq, 8 zero bytes), so
 * that the resolver need not keep it in memory: safe only because every
 * data key is drawn for one account_opened event and seals exactly one
 * message, its email (a nonce must never repeat under one key; the key is
 * wiped once that event is sealed). Events sealed before (with a random
 * nonce, stored in front of the ciphertext as now) open the same way.
 *
 * Sealed form (the "email_enc" bin of an event, common/event.h):
 *   24-byte nonce || ciphertext (as long as the email) || 16-byte tag
 */
#ifndef ESBANK_PII_H
#define ESBANK_PII_H

#include <stddef.h>
#include <stdint.h>

#include "keystore.h"
#include "ledger.h"

#define PII_NONCE_BYTES LEDGER_NONCE_BYTES
#define PII_TAG_BYTES 16
#define PII_SEALED_BYTES_MIN (PII_NONCE_BYTES + PII_TAG_BYTES + LEDGER_EMAIL_BYTES_MIN)
#define PII_SEALED_BYTES_MAX (PII_NONCE_BYTES + PII_TAG_BYTES + LEDGER_EMAIL_BYTES_MAX)

/* A new random data key. */
void pii_new_key(uint8_t key[KEYSTORE_KEY_BYTES]);

/*
 * Seals n (<= LEDGER_EMAIL_BYTES_MAX) bytes of text for account's event seq
 * into out (at least PII_SEALED_BYTES_MAX bytes); returns the sealed length.
 */
size_t pii_seal(const uint8_t key[KEYSTORE_KEY_BYTES], uint64_t account, uint64_t seq,
                const char *text, size_t n, uint8_t *out);

/*
 * Opens a sealed text into out, NUL-terminated (LEDGER_EMAIL_BYTES_MAX + 1
 * bytes). 0, or -EBADMSG when it is malformed, altered, or sealed for
 * another key, account or seq.
 */
int pii_open(const uint8_t key[KEYSTORE_KEY_BYTES], uint64_t account, uint64_t seq,
             const uint8_t *sealed, size_t len, char out[LEDGER_EMAIL_BYTES_MAX + 1]);

/*
 * Opens an account_opened event's email with the key store ks (may be NULL):
 * the email in out. Plaintext events (logs written before sealing) give
 * their email. -ENOENT when the key is gone (erased) or ks is NULL,
 * -EBADMSG when the sealed bytes do not open.
 */
int pii_event_email(const keystore_t *ks, const ledger_event_t *ev,
                    char out[LEDGER_EMAIL_BYTES_MAX + 1]);

/*
 * The same for an account of the state: -ENOENT also when it is erased.
 * For a ledger without a sealed store (ledger.h); else pii_ledger_email,
 * which may also return -EIO (the store could not read it back).
 */
int pii_account_email(const keystore_t *ks, const ledger_account_t *a,
                      char out[LEDGER_EMAIL_BYTES_MAX + 1]);
int pii_ledger_email(const keystore_t *ks, const ledger_t *l, const ledger_account_t *a,
                     char out[LEDGER_EMAIL_BYTES_MAX + 1]);

#endif
