/*
 * currency.h - amounts of money as people write them, and as integer cents.
 *
 * The wire carries amounts as integer cents (PROTOCOL.md); people write
 * dollars. Conversion is exact, with integer arithmetic only, never floating
 * point.
 *
 * Accepted text: an optional '$', then whole dollars (digits, optionally
 * grouped in threes by commas: "1,000" but not "1,00"), then optionally a '.'
 * and one or two digits of cents. "100" is 10000 cents, "12.5" is 1250,
 * "$1,000.00" is 100000, "0.01" is 1. Rejected: a sign, more than two
 * decimals, a bare '.', spaces, anything else, and values above
 * CURRENCY_CENTS_MAX.
 */
#ifndef ESBANK_CURRENCY_H
#define ESBANK_CURRENCY_H

#include <stddef.h>
#include <stdint.h>

/* Largest amount parsed, in cents: far above any valid amount, far from overflow. */
#define CURRENCY_CENTS_MAX 1000000000000000000LL /* 10^18 */
/* Bytes needed by currency_format() for any int64_t, NUL included. */
#define CURRENCY_TEXT_MAX 40

/*
 * Parses text (NUL-terminated) into *cents. Returns 0, or -EINVAL and sets
 * *why (may be NULL) to a static one-line explanation; *cents is then
 * untouched.
 */
int currency_parse(const char *text, int64_t *cents, const char **why);

/*
 * Writes cents as "$1,234.56" (negative as "-$1.00") into buf, which must
 * hold CURRENCY_TEXT_MAX bytes. Returns buf.
 */
char *currency_format(int64_t cents, char buf[CURRENCY_TEXT_MAX]);

#endif
