/*
 * idemkey.h - the HTTP Idempotency-Key, scoped to the user it belongs to
 * before it reaches the bank.
 *
 * The bank has one namespace of idempotency keys for all its clients
 * (PROTOCOL.md: "key", 1 to 64 bytes), and the gateway is one client
 * serving many users. Sent as is, a key would be shared by all of them:
 * user B, sending the key user A used, would get key_conflict (learning
 * that someone used it) or, for the same command, A's reply. So the key
 * the bank sees is the user's key within a scope:
 *   IDEMKEY_ACCOUNT  the logged-in account (transfer, withdraw)
 *   IDEMKEY_EMAIL    the email of an account being opened (ASCII letters
 *                    lower-cased, as the bank does), since no one is
 *                    logged in yet
 *   IDEMKEY_VERIFY   the account_number of a verification link
 * and it is written, in at most 64 bytes:
 *   <account> "/" <key>        IDEMKEY_ACCOUNT, when the account is all
 *                              digits and the whole fits in 64 bytes
 *                              (readable in the log: "4417...9012/order-1")
 *   "~" base64url(BLAKE2b-256("esbank-http-key-1" | u8 scope |
 *       u32 little-endian length | who | key)), without padding: 44 bytes,
 *                              otherwise
 * The two forms cannot meet (a digit or '~' first; an account has no '/'),
 * and two hashed keys meet only by a BLAKE2b collision. A key the
 * command-line client sends straight to the bus is not scoped: a local
 * client could send a scoped key on purpose, but it is trusted anyway.
 * The header's value must be 1 to IDEMKEY_BYTES_MAX bytes, else 400.
 */
#ifndef ESBANK_HTTP_IDEMKEY_H
#define ESBANK_HTTP_IDEMKEY_H

#include "ledger.h"

#include <stddef.h>

#define IDEMKEY_BYTES_MAX 64                 /* the Idempotency-Key header */
#define IDEMKEY_SENT_MAX LEDGER_KEY_BYTES_MAX /* the key sent to the bank */

typedef enum {
	IDEMKEY_ACCOUNT = 'a',
	IDEMKEY_EMAIL = 'e',
	IDEMKEY_VERIFY = 'v',
} idemkey_scope_t;

/*
 * Writes the key the bank sees for key[0..key_len) of the user who[0..who_len)
 * in scope into out (NUL-terminated). Returns its length (1 to
 * IDEMKEY_SENT_MAX), or -EINVAL when key_len is 0 or above IDEMKEY_BYTES_MAX.
 */
int idemkey_make(idemkey_scope_t scope, const char *who, size_t who_len, const char *key,
                 size_t key_len, char out[IDEMKEY_SENT_MAX + 1]);

#endif
