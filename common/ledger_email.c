/*
 * ledger_email.c - what an email address is, for the rules (PROTOCOL.md):
 * 3 to 254 bytes, exactly one '@' with text on both sides, no whitespace or
 * control characters (in ASCII and, for well-formed UTF-8, also the Unicode
 * C1 controls and space separators), no malformed UTF-8. The stored form
 * has its ASCII letters lower-cased; other letters are kept as sent.
 * The request decoder and the ledger's event checks both ask this file,
 * which also writes a sealed email's identity in the ledger's email index:
 * the hex of its keyed hash (ledger_email_id).
 */
#include "ledger.h"

/* Decodes one UTF-8 sequence at s[*i]; -1 if malformed. */
static int32_t ledger_utf8_next(const char *s, size_t n, size_t *i)
{
	uint8_t c = (uint8_t)s[*i];
	int len = c < 0x80 ? 1 : c < 0xc2 ? 0 : c < 0xe0 ? 2 : c < 0xf0 ? 3 : c < 0xf5 ? 4 : 0;
	if (len == 0 || *i + (size_t)len > n)
		return -1;
	int32_t cp = len == 1 ? c : c & (0x7f >> len);
	for (int k = 1; k < len; k++) {
		uint8_t cc = (uint8_t)s[*i + (size_t)k];
		if ((cc & 0xc0) != 0x80)
			return -1;
		cp = (cp << 6) | (cc & 0x3f);
	}
	static const int32_t min_cp[] = { 0, 0, 0x80, 0x800, 0x10000 };
	if (cp < min_cp[len] || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
		return -1;
	*i += (size_t)len;
	return cp;
}

static bool ledger_cp_is_space_or_control(int32_t cp)
{
	if (cp <= 0x20 || (cp >= 0x7f && cp <= 0xa0))
		return true;
	return cp == 0x1680 || (cp >= 0x2000 && cp <= 0x200a) || cp == 0x2028 || cp == 0x2029 ||
	       cp == 0x202f || cp == 0x205f || cp == 0x3000 || cp == 0xfeff;
}

bool ledger_email_valid(const char *s, size_t n, char out[LEDGER_EMAIL_BYTES_MAX + 1])
{
	if (!s || n < LEDGER_EMAIL_BYTES_MIN || n > LEDGER_EMAIL_BYTES_MAX)
		return false;
	size_t at = n, ats = 0;
	for (size_t i = 0; i < n;) {
		if (s[i] == '@') {
			at = i;
			ats++;
		}
		int32_t cp = ledger_utf8_next(s, n, &i);
		if (cp < 0 || ledger_cp_is_space_or_control(cp))
			return false;
	}
	if (ats != 1 || at == 0 || at == n - 1)
		return false;
	if (out) {
		for (size_t i = 0; i < n; i++)
			out[i] = (s[i] >= 'A' && s[i] <= 'Z') ? (char)(s[i] - 'A' + 'a') : s[i];
		out[n] = '\0';
	}
	return true;
}

void ledger_email_id(const uint8_t hash[LEDGER_EMAIL_HASH_BYTES],
                     char out[LEDGER_EMAIL_ID_CHARS + 1])
{
	static const char digits[] = "0123456789abcdef";
	for (size_t i = 0; i < LEDGER_EMAIL_HASH_BYTES; i++) {
		out[2 * i] = digits[hash[i] >> 4];
		out[2 * i + 1] = digits[hash[i] & 0xf];
	}
	out[LEDGER_EMAIL_ID_CHARS] = '\0';
}
