/*
 * message.c - the RFC 5322 text of esbank's mails (see message.h).
 *
 * Format of a composed message (every line ends in CRLF, none is longer than
 * 998 bytes, the body is UTF-8 sent as 8bit):
 *   From: <from, as configured>
 *   To: <recipient address>
 *   Subject: <fixed text per event type>
 *   Date: <event ts, RFC 5322, UTC>
 *   Message-ID: <esbank-SEQ-ACCOUNT@domain>
 *   MIME-Version: 1.0
 *   Content-Type: text/plain; charset=UTF-8
 *   Content-Transfer-Encoding: 8bit
 *   <empty line>
 *   <body>
 * The Message-ID depends only on the event and the From domain, so a mail
 * written twice for one event carries the same id (receivers can drop it).
 */
#include "message.h"

#include <assert.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#define MESSAGE_ADDR_BYTES_MIN 3
#define MESSAGE_ADDR_BYTES_MAX 254

/* An output buffer that remembers when something did not fit. */
typedef struct {
	char *p;
	size_t cap;
	size_t len;
	bool overflow;
} message_buf_t;

__attribute__((format(printf, 2, 3)))
static void message_put(message_buf_t *b, const char *fmt, ...)
{
	if (b->overflow)
		return;
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(b->p + b->len, b->cap - b->len, fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= b->cap - b->len) {
		b->overflow = true;
		return;
	}
	b->len += (size_t)n;
}

bool message_type_sends(ledger_event_type_t type)
{
	return type == LEDGER_EV_ACCOUNT_OPENED || type == LEDGER_EV_CODE_REISSUED ||
	       type == LEDGER_EV_MONEY_WITHDRAWN;
}

bool message_header_safe(const char *s)
{
	for (const unsigned char *p = (const unsigned char *)s; *p; p++)
		if (*p < 0x20 || *p == 0x7f)
			return false;
	return true;
}

int message_address_check(const char *addr)
{
	size_t n = strlen(addr);
	if (n < MESSAGE_ADDR_BYTES_MIN || n > MESSAGE_ADDR_BYTES_MAX)
		return -EINVAL;
	const char *at = strchr(addr, '@');
	if (!at || at == addr || at[1] == '\0' || strchr(at + 1, '@'))
		return -EINVAL;
	if (!message_header_safe(addr) || strpbrk(addr, " <>,;:\"()[]\\"))
		return -EINVAL;
	return 0;
}

int message_format_cents(int64_t cents, char *buf, size_t cap)
{
	/* Magnitude as unsigned so that INT64_MIN is fine too. */
	uint64_t mag = cents < 0 ? (uint64_t)0 - (uint64_t)cents : (uint64_t)cents;
	char digits[24];
	int nd = snprintf(digits, sizeof(digits), "%llu", (unsigned long long)(mag / 100));
	char grouped[32];
	size_t g = 0;
	for (int i = 0; i < nd; i++) {
		if (i > 0 && (nd - i) % 3 == 0)
			grouped[g++] = ',';
		grouped[g++] = digits[i];
	}
	grouped[g] = '\0';
	int n = snprintf(buf, cap, "%s$%s.%02u", cents < 0 ? "-" : "", grouped,
	                 (unsigned)(mag % 100));
	return (n < 0 || (size_t)n >= cap) ? -ENOBUFS : 0;
}

void message_format_date(int64_t ts_ms, char buf[MESSAGE_DATE_BYTES])
{
	static const char *const days[] = { "Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat" };
	static const char *const months[] = { "Jan", "Feb", "Mar", "Apr", "May", "Jun",
	                                      "Jul", "Aug", "Sep", "Oct", "Nov", "Dec" };
	time_t secs = (time_t)(ts_ms / 1000);
	struct tm tm;
	if (!gmtime_r(&secs, &tm)) {
		secs = 0;
		gmtime_r(&secs, &tm);
	}
	snprintf(buf, MESSAGE_DATE_BYTES, "%s, %02d %s %04d %02d:%02d:%02d +0000",
	         days[tm.tm_wday], tm.tm_mday, months[tm.tm_mon], tm.tm_year + 1900,
	         tm.tm_hour, tm.tm_min, tm.tm_sec);
}

static bool message_unreserved(unsigned char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
	       c == '-' || c == '.' || c == '_' || c == '~';
}

int message_url_encode(const char *s, size_t n, char *out, size_t cap)
{
	static const char hex[] = "0123456789ABCDEF";
	size_t o = 0;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		size_t need = message_unreserved(c) ? 1 : 3;
		if (o + need >= cap)
			return -ENOBUFS;
		if (need == 1) {
			out[o++] = (char)c;
			continue;
		}
		out[o++] = '%';
		out[o++] = hex[c >> 4];
		out[o++] = hex[c & 15];
	}
	if (o >= cap)
		return -ENOBUFS;
	out[o] = '\0';
	return 0;
}

void message_msgid_domain(const char *from, char *out, size_t cap)
{
	assert(cap > 0);
	const char *at = from ? strrchr(from, '@') : NULL;
	size_t n = 0;
	if (at) {
		at++;
		while (at[n] && strchr(">\"() \t\r\n", at[n]) == NULL)
			n++;
	}
	if (n == 0 || n >= cap) {
		snprintf(out, cap, "localhost");
		return;
	}
	memcpy(out, at, n);
	out[n] = '\0';
}

const char *message_subject(ledger_event_type_t type)
{
	if (type == LEDGER_EV_MONEY_WITHDRAWN)
		return "Withdrawal from your esbank account";
	return "Verify your esbank account";
}

static void message_headers(message_buf_t *b, const message_t *m, const char *account)
{
	char date[MESSAGE_DATE_BYTES];
	message_format_date(m->ts_ms, date);
	message_put(b, "From: %s\r\n", m->from);
	message_put(b, "To: %s\r\n", m->to);
	message_put(b, "Subject: %s\r\n", message_subject(m->type));
	message_put(b, "Date: %s\r\n", date);
	message_put(b, "Message-ID: <esbank-%llu-%s@%s>\r\n", (unsigned long long)m->seq,
	            account, m->msgid_domain);
	message_put(b, "MIME-Version: 1.0\r\n");
	message_put(b, "Content-Type: text/plain; charset=UTF-8\r\n");
	message_put(b, "Content-Transfer-Encoding: 8bit\r\n");
	message_put(b, "\r\n");
}

static int message_verify_body(message_buf_t *b, const message_t *m, const char *account)
{
	char code[MESSAGE_CODE_BYTES_MAX * 3 + 1];
	if (message_url_encode(m->code, strlen(m->code), code, sizeof(code)) < 0)
		return -EINVAL;
	size_t ulen = strlen(m->public_url);
	while (ulen > 0 && m->public_url[ulen - 1] == '/')
		ulen--;
	message_put(b, "Hello,\r\n\r\n");
	if (m->type == LEDGER_EV_ACCOUNT_OPENED)
		message_put(b, "Welcome to esbank! Your new account number is %s.\r\n", account);
	else
		message_put(b, "A new verification code was issued for your esbank "
		               "account %s;\r\nearlier links no longer work.\r\n", account);
	message_put(b, "Please verify your account by opening this link:\r\n\r\n");
	message_put(b, "%.*s/api/verify?account_number=%s&code=%s\r\n\r\n", (int)ulen,
	            m->public_url, account, code);
	message_put(b, "If you did not ask for an esbank account, you can ignore this "
	               "message.\r\n\r\n-- \r\nesbank\r\n");
	return 0;
}

static int message_withdraw_body(message_buf_t *b, const message_t *m, const char *account)
{
	char amount[MESSAGE_MONEY_BYTES], balance[MESSAGE_MONEY_BYTES];
	if (message_format_cents(m->amount, amount, sizeof(amount)) < 0 ||
	    message_format_cents(m->balance, balance, sizeof(balance)) < 0)
		return -EINVAL;
	message_put(b, "Hello,\r\n\r\n");
	message_put(b, "%s was withdrawn from your esbank account %s.\r\n", amount, account);
	message_put(b, "Your new balance is %s.\r\n\r\n", balance);
	message_put(b, "If you did not make this withdrawal, please contact us at once.\r\n"
	               "\r\n-- \r\nesbank\r\n");
	return 0;
}

static int message_check(const message_t *m)
{
	if (!message_type_sends(m->type) || message_address_check(m->to) < 0)
		return -EINVAL;
	if (!message_header_safe(m->from) || strlen(m->from) > MESSAGE_FROM_BYTES_MAX)
		return -EINVAL;
	if (!message_header_safe(m->msgid_domain) || strpbrk(m->msgid_domain, " <>@") ||
	    strlen(m->msgid_domain) >= MESSAGE_DOMAIN_BYTES_MAX)
		return -EINVAL;
	if (m->type == LEDGER_EV_MONEY_WITHDRAWN)
		return 0;
	if (!m->code || !*m->code || strlen(m->code) > MESSAGE_CODE_BYTES_MAX)
		return -EINVAL;
	if (!message_header_safe(m->public_url) || strlen(m->public_url) > MESSAGE_URL_BYTES_MAX)
		return -EINVAL;
	return 0;
}

int message_compose(const message_t *m, char *out, size_t cap, size_t *len)
{
	assert(m && out && len);
	int rc = message_check(m);
	if (rc < 0)
		return rc;
	char account[LEDGER_ACCOUNT_DIGITS + 1];
	snprintf(account, sizeof(account), "%016llu", (unsigned long long)m->account);
	message_buf_t b = { .p = out, .cap = cap, .len = 0, .overflow = cap == 0 };
	message_headers(&b, m, account);
	if (m->type == LEDGER_EV_MONEY_WITHDRAWN)
		rc = message_withdraw_body(&b, m, account);
	else
		rc = message_verify_body(&b, m, account);
	if (rc < 0)
		return rc;
	if (b.overflow)
		return -ENOBUFS;
	*len = b.len;
	return 0;
}
