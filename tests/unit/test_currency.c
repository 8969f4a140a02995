/*
 * test_currency.c - the client's exact dollars <-> cents conversion.
 *
 * currency.c belongs to the client program, not to common/: the test links the
 * client's library (tests/meson.build).
 */
#include "currency.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>

static int64_t parse_ok(const char *text)
{
	int64_t cents = -1;
	const char *why = NULL;
	int rc = currency_parse(text, &cents, &why);
	cr_assert_eq(rc, 0, "'%s' rejected: %s", text, why ? why : "?");
	return cents;
}

static const char *parse_bad(const char *text)
{
	int64_t cents = 12345;
	const char *why = NULL;
	int rc = currency_parse(text, &cents, &why);
	cr_assert_eq(rc, -EINVAL, "'%s' accepted as %lld", text, (long long)cents);
	cr_assert_eq(cents, 12345, "'%s' changed the output on failure", text);
	cr_assert_not_null(why, "'%s' gave no reason", text);
	return why;
}

Test(currency_parse, whole_dollars)
{
	cr_assert_eq(parse_ok("100"), 10000);
	cr_assert_eq(parse_ok("0"), 0);
	cr_assert_eq(parse_ok("1"), 100);
	cr_assert_eq(parse_ok("007"), 700);
}

Test(currency_parse, cents)
{
	cr_assert_eq(parse_ok("12.50"), 1250);
	cr_assert_eq(parse_ok("12.5"), 1250);
	cr_assert_eq(parse_ok("0.01"), 1);
	cr_assert_eq(parse_ok("0.1"), 10);
	cr_assert_eq(parse_ok("0.99"), 99);
	cr_assert_eq(parse_ok("19.99"), 1999);
	cr_assert_eq(parse_ok("3.00"), 300);
}

Test(currency_parse, exact_where_floating_point_is_not)
{
	/* 0.29 * 100 == 28.999999999999996 in binary floating point. */
	cr_assert_eq(parse_ok("0.29"), 29);
	cr_assert_eq(parse_ok("1.15"), 115);
	cr_assert_eq(parse_ok("4.35"), 435);
	cr_assert_eq(parse_ok("10000000000"), 1000000000000LL);
	cr_assert_eq(parse_ok("92233720368547.75"), 9223372036854775LL);
}

Test(currency_parse, dollar_sign_and_commas)
{
	cr_assert_eq(parse_ok("$1,000.00"), 100000);
	cr_assert_eq(parse_ok("$100"), 10000);
	cr_assert_eq(parse_ok("1,000"), 100000);
	cr_assert_eq(parse_ok("12,345,678.9"), 1234567890);
	cr_assert_eq(parse_ok("$0.01"), 1);
	cr_assert_eq(parse_ok("999,999"), 99999900);
}

Test(currency_parse, rejects_more_than_two_decimals)
{
	cr_assert_not_null(strstr(parse_bad("1.234"), "two decimals"));
	cr_assert_not_null(strstr(parse_bad("0.001"), "two decimals"));
	cr_assert_not_null(strstr(parse_bad("1.500"), "two decimals"));
}

Test(currency_parse, rejects_negative)
{
	cr_assert_not_null(strstr(parse_bad("-5"), "negative"));
	cr_assert_not_null(strstr(parse_bad("-$5.00"), "negative"));
	cr_assert_not_null(strstr(parse_bad("$-5"), "negative"));
	cr_assert_not_null(strstr(parse_bad("-0.01"), "negative"));
}

Test(currency_parse, rejects_garbage)
{
	static const char *const bad[] = {
		"", "$", ".", ".5", "1.", "$.50", "abc", "12abc", "1.2.3", "+5", " 5", "5 ",
		"1e3", "0x10", "12.5x", "$$5", "5$", "1,2", "1,00", "1,0000", "1234,567",
		",100", "1,", "1,,000", "1,000,00", "1.-5", "NaN", "inf", "١٢",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		parse_bad(bad[i]);
}

Test(currency_parse, rejects_too_large_without_overflow)
{
	cr_assert_eq(parse_ok("10000000000000000"), CURRENCY_CENTS_MAX);
	cr_assert_not_null(strstr(parse_bad("10000000000000000.01"), "too large"));
	cr_assert_not_null(strstr(parse_bad("10000000000000001"), "too large"));
	cr_assert_not_null(strstr(parse_bad("18446744073709551617"), "too large"));
	cr_assert_not_null(strstr(parse_bad("99999999999999999999999999999"), "too large"));
}

static void format_is(int64_t cents, const char *want)
{
	char buf[CURRENCY_TEXT_MAX];
	cr_assert_str_eq(currency_format(cents, buf), want);
}

Test(currency_format, groups_and_cents)
{
	format_is(0, "$0.00");
	format_is(1, "$0.01");
	format_is(10, "$0.10");
	format_is(99, "$0.99");
	format_is(100, "$1.00");
	format_is(1250, "$12.50");
	format_is(99999, "$999.99");
	format_is(100000, "$1,000.00");
	format_is(123456789, "$1,234,567.89");
	format_is(100000000000000LL, "$1,000,000,000,000.00");
}

Test(currency_format, negative_and_extremes)
{
	format_is(-1, "-$0.01");
	format_is(-100000, "-$1,000.00");
	format_is(INT64_MAX, "$92,233,720,368,547,758.07");
	format_is(INT64_MIN, "-$92,233,720,368,547,758.08");
}

Test(currency, format_then_parse_round_trips)
{
	static const int64_t values[] = { 0, 1, 9, 10, 99, 100, 101, 999, 1000, 99999, 100000,
					  100001, 123456789, 1000000000000LL, CURRENCY_CENTS_MAX };
	for (size_t i = 0; i < sizeof(values) / sizeof(values[0]); i++) {
		char buf[CURRENCY_TEXT_MAX];
		cr_assert_eq(parse_ok(currency_format(values[i], buf)), values[i], "%s", buf);
	}
}
