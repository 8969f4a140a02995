/*
 * event.h - the msgpack encoding of an event, as stored in the log and as
 * returned by the protocol's "events" and "subscribe".
 *
 * An event is one msgpack map:
 *   "seq"  uint    1, 2, 3, ... (no gaps)
 *   "ts"   uint    milliseconds since the Unix epoch, UTC, never decreasing
 *   "type" string  account_opened | account_verified | code_reissued |
 *                  money_transferred | money_withdrawn | primary_changed |
 *                  account_erased
 *   account_opened:    "account" str(16 digits), "email_hash" str (64 hex: the
 *                      keyed hash of the lower-cased email, common/keystore.h),
 *                      "email_enc" bin (the email sealed with the account's
 *                      key: nonce, ciphertext, tag; common/pii.h), "balance"
 *                      uint, "pwhash" str (argon2id), "code_hash" str (64 hex).
 *                      Logs written before emails were sealed have "email"
 *                      str (lower-cased) instead of email_hash and email_enc:
 *                      both shapes decode; an event with "email" is plain.
 *   account_erased:    "account" (its key is destroyed: email_enc no longer opens)
 *   account_verified:  "account"
 *   code_reissued:     "account", "code_hash"
 *   money_transferred: "from", "to", "amount"
 *   money_withdrawn:   "account", "amount", "balance" (uint, the account's
 *                      balance after; optional: events written before it
 *                      existed lack it)
 *   primary_changed:   "node" str (1..255 bytes: the replication group that
 *                      took over as primary; changes no balance, no "key")
 *   "key"  str     only when the command carried an idempotency key
 *   "fp"   str     with "key": 32 hex digits, the command's fingerprint
 * Unknown keys are ignored when decoding; a missing or mistyped field makes
 * the event invalid (-EINVAL). Never a password or a code in plain text, and
 * since sealing, never an email.
 */
#ifndef ESBANK_EVENT_H
#define ESBANK_EVENT_H

#include "ledger.h"
#include "msg.h"

/*
 * The most bytes one event takes (an account_opened with a sealed email of
 * LEDGER_EMAIL_BYTES_MAX, a pwhash of LEDGER_PWHASH_BYTES_MAX and a key of
 * LEDGER_KEY_BYTES_MAX takes under 800; event.c checks the bound).
 */
#define EVENT_BYTES_MAX 1024

/* Encodes ev as one msgpack map into out; returns its length. */
size_t event_encode(const ledger_event_t *ev, uint8_t out[EVENT_BYTES_MAX]);

/* Packs ev as one msgpack map (the bytes of event_encode). */
void event_pack(msgpack_packer *pk, const ledger_event_t *ev);

/* Decodes a map into *ev. Returns 0, or -EINVAL for an invalid event. */
int event_decode(const msgpack_object *map, ledger_event_t *ev);

/* Decodes raw bytes (one msgpack map) into *ev: 0, -EBADMSG or -EINVAL. */
int event_decode_bytes(const char *buf, size_t len, ledger_event_t *ev);

/* Lowercase hex of n bytes into out (2n+1 bytes). */
void event_hex(const uint8_t *in, size_t n, char *out);
/* Parses exactly 2n hex digits; false if malformed. */
bool event_unhex(const char *s, size_t slen, uint8_t *out, size_t n);

#endif
