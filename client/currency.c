/*
 * currency.c - exact conversion between written dollars and integer cents
 * (see currency.h for the accepted text). Integer arithmetic only.
 */
#include "currency.h"

#include <errno.h>
#include <stdbool.h>
#include <string.h>

#define CURRENCY_GROUP_DIGITS 3
#define CURRENCY_DECIMALS_MAX 2
#define CURRENCY_COMMA_HELP "misplaced comma (write 1,000.00 or 1000)"

static int currency_fail(const char **why, const char *message)
{
	if (why)
		*why = message;
	return -EINVAL;
}

static bool currency_is_digit(char c)
{
	return c >= '0' && c <= '9';
}

/*
 * Reads whole dollars from *p, advancing it past them. Commas, when used,
 * must split the digits into groups of three after a first group of 1 to 3.
 */
static int currency_dollars(const char **p, uint64_t *out, const char **why)
{
	const uint64_t dollars_max = CURRENCY_CENTS_MAX / 100;
	const char *s = *p;
	uint64_t v = 0;
	size_t digits = 0, group = 0;
	bool grouped = false;

	for (;; s++) {
		if (currency_is_digit(*s)) {
			unsigned d = (unsigned)(*s - '0');
			if (v > (dollars_max - d) / 10)
				return currency_fail(why, "amount is too large");
			v = v * 10 + d;
			digits++;
			group++;
		} else if (*s == ',') {
			bool bad_group = grouped ? group != CURRENCY_GROUP_DIGITS
						 : group > CURRENCY_GROUP_DIGITS;
			if (digits == 0 || bad_group)
				return currency_fail(why, CURRENCY_COMMA_HELP);
			grouped = true;
			group = 0;
		} else {
			break;
		}
	}
	if (digits == 0)
		return currency_fail(why, "expected digits, like 12.50");
	if (grouped && group != CURRENCY_GROUP_DIGITS)
		return currency_fail(why, CURRENCY_COMMA_HELP);
	*p = s;
	*out = v;
	return 0;
}

/* Reads ".D" or ".DD" (or nothing) from *p into cents. */
static int currency_cents(const char **p, uint64_t *out, const char **why)
{
	const char *s = *p;
	uint64_t c = 0;
	size_t n = 0;

	if (*s != '.') {
		*out = 0;
		return 0;
	}
	for (s++; currency_is_digit(*s); s++, n++)
		if (n < CURRENCY_DECIMALS_MAX)
			c = c * 10 + (uint64_t)(*s - '0');
	if (n == 0)
		return currency_fail(why, "a decimal point must be followed by one or two digits");
	if (n > CURRENCY_DECIMALS_MAX)
		return currency_fail(why, "more than two decimals (the smallest unit is a cent)");
	if (n == 1)
		c *= 10;
	*p = s;
	*out = c;
	return 0;
}

int currency_parse(const char *text, int64_t *cents, const char **why)
{
	const char *s = text;
	uint64_t dollars, frac;

	if (*text == '\0')
		return currency_fail(why, "empty amount");
	if (*s == '$')
		s++;
	if (*s == '-')
		return currency_fail(why, "amount must not be negative");
	if (currency_dollars(&s, &dollars, why) < 0)
		return -EINVAL;
	if (currency_cents(&s, &frac, why) < 0)
		return -EINVAL;
	if (*s != '\0')
		return currency_fail(why, "not an amount: write it like 100, 12.50 or $1,000.00");
	uint64_t total = dollars * 100 + frac;
	if (total > (uint64_t)CURRENCY_CENTS_MAX)
		return currency_fail(why, "amount is too large");
	*cents = (int64_t)total;
	return 0;
}

char *currency_format(int64_t cents, char buf[CURRENCY_TEXT_MAX])
{
	uint64_t mag = cents < 0 ? -(uint64_t)cents : (uint64_t)cents;
	uint64_t dollars = mag / 100;
	char rev[CURRENCY_TEXT_MAX];
	size_t n = 0, out = 0;

	rev[n++] = (char)('0' + mag % 10);
	rev[n++] = (char)('0' + mag / 10 % 10);
	rev[n++] = '.';
	for (size_t d = 0; d == 0 || dollars > 0; d++, dollars /= 10) {
		if (d > 0 && d % CURRENCY_GROUP_DIGITS == 0)
			rev[n++] = ',';
		rev[n++] = (char)('0' + dollars % 10);
	}
	if (cents < 0)
		buf[out++] = '-';
	buf[out++] = '$';
	while (n > 0)
		buf[out++] = rev[--n];
	buf[out] = '\0';
	return buf;
}
