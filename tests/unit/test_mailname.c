/*
 * test_mailname.c - the name of a mail in the Maildir outbox
 * (common/mailname.c): written by the mailer, its seq read back by
 * `esbank bench`.
 */
#include "mailname.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>

#define T_TS_MS 1700000000123LL /* Tue, 14 Nov 2023 22:13:20 UTC */

Test(mailname, name_is_deterministic)
{
	char a[MAILNAME_MAX + 1], b[MAILNAME_MAX + 1];
	mailname_format(a, T_TS_MS, 42, "host");
	mailname_format(b, T_TS_MS, 42, "host");
	cr_assert_str_eq(a, "1700000000.esbank-42.host");
	cr_assert_str_eq(a, b);
	mailname_format(a, T_TS_MS, 42, "a/b:c");
	cr_assert_str_eq(a, "1700000000.esbank-42.a\\057b\\072c");
	mailname_format(a, T_TS_MS, 42, "");
	cr_assert_str_eq(a, "1700000000.esbank-42.localhost");
}

Test(mailname, a_long_host_is_cut)
{
	char host[300], name[MAILNAME_MAX + 1];
	memset(host, 'h', sizeof(host) - 1);
	host[sizeof(host) - 1] = '\0';
	mailname_format(name, T_TS_MS, 1, host);
	size_t host_len = strlen(name) - strlen("1700000000.esbank-1.");
	cr_assert(host_len <= MAILNAME_HOST_MAX && host_len > MAILNAME_HOST_MAX - 4, "%zu", host_len);
}

Test(mailname, the_seq_written_is_read_back)
{
	char name[MAILNAME_MAX + 1], moved[MAILNAME_MAX + 8];
	uint64_t seq = 0;
	mailname_format(name, T_TS_MS, 18446744073709551615ull, "a:b");
	cr_assert_eq(mailname_seq(name, &seq), 0);
	cr_assert_eq(seq, 18446744073709551615ull);
	snprintf(moved, sizeof(moved), "%s:2,S", name); /* as a mail client moves it to cur/ */
	cr_assert_eq(mailname_seq(moved, &seq), 0);
	cr_assert_eq(seq, 18446744073709551615ull);
}

Test(mailname, names_that_are_not_ours_are_refused)
{
	static const char *const bad[] = {
		"1700000000.M1P2.host", "1700000000.esbank-.host", "1700000000.esbank-12",
		"1700000000.esbank-12x.host", ".esbank-", "",
	};
	uint64_t seq = 7;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		cr_assert_eq(mailname_seq(bad[i], &seq), -EINVAL, "%s", bad[i]);
	cr_assert_eq(seq, 7);
}
