/*
 * message.h - composing the RFC 5322 text of esbank's mails. Pure: no I/O,
 * no clock; everything arrives in message_t, so the same event always gives
 * the same bytes (and the same Message-ID).
 *
 * Two kinds of mail:
 *   account_opened, code_reissued: "Verify your esbank account", with the
 *       link <public_url>/api/verify?account_number=N&code=C;
 *   money_withdrawn: "Withdrawal from your esbank account", with the amount
 *       and the new balance as currency ($1,234.56).
 * Lines end in CRLF; every header value is checked for CR, LF and other
 * control characters so that no caller's text can add a header.
 */
#ifndef ESBANK_MAILER_MESSAGE_H
#define ESBANK_MAILER_MESSAGE_H

#include "ledger.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define MESSAGE_BYTES_MAX 8192       /* a whole composed message */
#define MESSAGE_URL_BYTES_MAX 512    /* public URL, keeps lines < 998 */
#define MESSAGE_CODE_BYTES_MAX 128   /* verification code */
#define MESSAGE_FROM_BYTES_MAX 512   /* From header value */
#define MESSAGE_DOMAIN_BYTES_MAX 256 /* right-hand side of Message-ID */
#define MESSAGE_DATE_BYTES 40        /* "Thu, 01 Jan 1970 00:00:00 +0000" */
#define MESSAGE_MONEY_BYTES 40       /* "-$92,233,720,368,547,758.08" */

/* One mail to compose. Strings are NUL-terminated and owned by the caller. */
typedef struct {
	const char *from;         /* From header value, e.g. "esbank <noreply@localhost>" */
	const char *to;           /* the recipient's bare address */
	const char *public_url;   /* base of the verification link */
	const char *msgid_domain; /* right-hand side of the Message-ID */
	ledger_event_type_t type; /* account_opened, code_reissued or money_withdrawn */
	uint64_t seq;
	int64_t ts_ms;
	uint64_t account;
	const char *code; /* verification mails only */
	int64_t amount;   /* money_withdrawn: cents withdrawn */
	int64_t balance;  /* money_withdrawn: cents after */
} message_t;

/* The Subject of the mail for an event type. */
const char *message_subject(ledger_event_type_t type);

/* True for the event types that send a mail. */
bool message_type_sends(ledger_event_type_t type);

/*
 * Writes the whole message (headers, blank line, body; CRLF line endings)
 * into out[0..cap) and sets *len (no NUL counted; one is written when it
 * fits). Returns 0; -EINVAL when an address, the URL, the code or the type
 * is not acceptable (a CR or LF in a header value, say); -ENOBUFS when the
 * text does not fit in cap bytes.
 */
int message_compose(const message_t *m, char *out, size_t cap, size_t *len);

/*
 * Checks a bare recipient address: 3..254 bytes, one '@' with text on both
 * sides, no whitespace, control characters or "<>,;:\"()[]\\". 0 or -EINVAL.
 */
int message_address_check(const char *addr);

/* True when s has no control character (CR, LF, NUL, DEL, ...). */
bool message_header_safe(const char *s);

/* "$1,234.56" (or "-$1.00") into buf; returns 0 or -ENOBUFS. */
int message_format_cents(int64_t cents, char *buf, size_t cap);

/* RFC 5322 date in UTC, "Tue, 02 Jan 2024 03:04:05 +0000", into buf. */
void message_format_date(int64_t ts_ms, char buf[MESSAGE_DATE_BYTES]);

/*
 * Percent-encodes s[0..n) (everything outside RFC 3986 unreserved
 * characters) into out[0..cap), NUL-terminated. 0 or -ENOBUFS.
 */
int message_url_encode(const char *s, size_t n, char *out, size_t cap);

/*
 * The domain for Message-IDs: the part after '@' of the From address (up to
 * '>'), or "localhost" when it has none. Written into out[0..cap).
 */
void message_msgid_domain(const char *from, char *out, size_t cap);

#endif
