/*
 * test_maildir.c - the mailer's message composing (mailer/message.c) and
 * Maildir delivery (mailer/maildir.c), linked with the mailer's library
 * (tests/meson.build).
 */
#include "maildir.h"
#include "message.h"

#include <criterion/criterion.h>
#include <dirent.h>
#include <errno.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#define T_ACCOUNT 1234567890123456ULL
#define T_TS_MS 1700000000123LL /* Tue, 14 Nov 2023 22:13:20 UTC */

static char text[MESSAGE_BYTES_MAX];
static size_t text_len;

static message_t t_verify(void)
{
	return (message_t){
		.from = "esbank <noreply@bank.example>", .to = "alice@example.com",
		.public_url = "http://127.0.0.1:4000", .msgid_domain = "bank.example",
		.type = LEDGER_EV_ACCOUNT_OPENED, .seq = 42, .ts_ms = T_TS_MS,
		.account = T_ACCOUNT, .code = "AbC-_d09",
	};
}

static message_t t_withdraw(void)
{
	message_t m = t_verify();
	m.type = LEDGER_EV_MONEY_WITHDRAWN;
	m.code = NULL;
	m.amount = 123456;
	m.balance = 100000000;
	return m;
}

static void t_compose(const message_t *m)
{
	cr_assert_eq(message_compose(m, text, sizeof(text), &text_len), 0);
	cr_assert_lt(text_len, sizeof(text));
	text[text_len] = '\0';
}

/* The header block (up to the blank line), NUL-terminated in a static copy. */
static const char *t_headers(void)
{
	static char h[MESSAGE_BYTES_MAX];
	const char *end = strstr(text, "\r\n\r\n");
	cr_assert_not_null(end);
	memcpy(h, text, (size_t)(end - text) + 2);
	h[end - text + 2] = '\0';
	return h;
}

Test(message, verification_headers)
{
	message_t m = t_verify();
	t_compose(&m);
	const char *h = t_headers();
	cr_assert(strncmp(h, "From: esbank <noreply@bank.example>\r\n", 37) == 0);
	cr_assert_not_null(strstr(h, "\r\nTo: alice@example.com\r\n"));
	cr_assert_not_null(strstr(h, "\r\nSubject: Verify your esbank account\r\n"));
	cr_assert_not_null(strstr(h, "\r\nDate: Tue, 14 Nov 2023 22:13:20 +0000\r\n"));
	cr_assert_not_null(
		strstr(h, "\r\nMessage-ID: <esbank-42-1234567890123456@bank.example>\r\n"));
	cr_assert_not_null(strstr(h, "\r\nMIME-Version: 1.0\r\n"));
	cr_assert_not_null(strstr(h, "\r\nContent-Type: text/plain; charset=UTF-8\r\n"));
	cr_assert_not_null(strstr(h, "\r\nContent-Transfer-Encoding: 8bit\r\n"));
}

Test(message, every_line_ends_in_crlf)
{
	message_t ms[] = { t_verify(), t_withdraw() };
	for (size_t k = 0; k < 2; k++) {
		t_compose(&ms[k]);
		cr_assert_gt(text_len, 2);
		cr_assert(text[text_len - 2] == '\r' && text[text_len - 1] == '\n');
		for (size_t i = 0; i < text_len; i++) {
			if (text[i] == '\n')
				cr_assert_eq(text[i - 1], '\r', "bare LF at %zu", i);
			if (text[i] == '\r')
				cr_assert_eq(text[i + 1], '\n', "bare CR at %zu", i);
		}
	}
}

Test(message, verification_link)
{
	message_t m = t_verify();
	t_compose(&m);
	cr_assert_not_null(strstr(text, "\r\nhttp://127.0.0.1:4000/api/verify?"
	                                "account_number=1234567890123456&code=AbC-_d09\r\n"));
	/* A trailing slash on the public URL does not double; odd bytes are escaped. */
	m.public_url = "https://bank.example/";
	m.code = "a+b/c=d e";
	m.type = LEDGER_EV_CODE_REISSUED;
	t_compose(&m);
	cr_assert_not_null(strstr(text, "https://bank.example/api/verify?account_number="
	                                "1234567890123456&code=a%2Bb%2Fc%3Dd%20e\r\n"));
	cr_assert_not_null(strstr(text, "Subject: Verify your esbank account\r\n"));
}

Test(message, withdrawal_amounts)
{
	message_t m = t_withdraw();
	t_compose(&m);
	cr_assert_not_null(strstr(text, "\r\nSubject: Withdrawal from your esbank account\r\n"));
	cr_assert_not_null(strstr(text, "$1,234.56 was withdrawn"));
	cr_assert_not_null(strstr(text, "new balance is $1,000,000.00."));
	cr_assert_null(strstr(text, "/api/verify"));
}

Test(message, currency)
{
	struct { int64_t cents; const char *want; } cases[] = {
		{ 0, "$0.00" }, { 5, "$0.05" }, { 100, "$1.00" }, { 99999, "$999.99" },
		{ 100000, "$1,000.00" }, { 123456789, "$1,234,567.89" },
		{ 1000000000000LL, "$10,000,000,000.00" }, { -150, "-$1.50" },
		{ INT64_MIN, "-$92,233,720,368,547,758.08" },
	};
	char buf[MESSAGE_MONEY_BYTES];
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		cr_assert_eq(message_format_cents(cases[i].cents, buf, sizeof(buf)), 0);
		cr_assert_str_eq(buf, cases[i].want);
	}
	cr_assert_eq(message_format_cents(100000, buf, 5), -ENOBUFS);
}

Test(message, message_id_is_stable)
{
	message_t m = t_verify();
	t_compose(&m);
	char first[MESSAGE_BYTES_MAX];
	memcpy(first, text, text_len + 1);
	t_compose(&m);
	cr_assert_str_eq(text, first, "same event, same bytes");
	m.seq = 43;
	t_compose(&m);
	cr_assert_not_null(strstr(text, "Message-ID: <esbank-43-1234567890123456@bank.example>"));
}

Test(message, header_injection_refused)
{
	const char *bad_to[] = { "alice@example.com\r\nBcc: eve@evil.example",
	                         "alice@example.com\nBcc: eve@evil.example",
	                         "alice@example.com\r", "a b@example.com", "<a@b.c>",
	                         "a@b.c, eve@evil.example", "noatsign", "@example.com",
	                         "a@", "a@b@c" };
	for (size_t i = 0; i < sizeof(bad_to) / sizeof(bad_to[0]); i++) {
		message_t m = t_verify();
		m.to = bad_to[i];
		int rc = message_compose(&m, text, sizeof(text), &text_len);
		cr_assert_eq(rc, -EINVAL, "case %zu", i);
	}
	message_t m = t_verify();
	m.from = "esbank <x@y>\r\nBcc: eve@evil.example";
	cr_assert_eq(message_compose(&m, text, sizeof(text), &text_len), -EINVAL);
	m = t_verify();
	m.public_url = "http://x/\r\nBcc: eve@evil.example";
	cr_assert_eq(message_compose(&m, text, sizeof(text), &text_len), -EINVAL);
}

Test(message, refuses_bad_input)
{
	message_t m = t_verify();
	m.code = NULL;
	cr_assert_eq(message_compose(&m, text, sizeof(text), &text_len), -EINVAL);
	m = t_verify();
	m.type = LEDGER_EV_MONEY_TRANSFERRED;
	cr_assert_eq(message_compose(&m, text, sizeof(text), &text_len), -EINVAL);
	m = t_verify();
	cr_assert_eq(message_compose(&m, text, 100, &text_len), -ENOBUFS);
}

Test(message, date_and_domain)
{
	char d[MESSAGE_DATE_BYTES];
	message_format_date(0, d);
	cr_assert_str_eq(d, "Thu, 01 Jan 1970 00:00:00 +0000");
	message_format_date(951782400000LL, d); /* leap day 2000 */
	cr_assert_str_eq(d, "Tue, 29 Feb 2000 00:00:00 +0000");
	char dom[MESSAGE_DOMAIN_BYTES_MAX];
	message_msgid_domain("esbank <noreply@bank.example>", dom, sizeof(dom));
	cr_assert_str_eq(dom, "bank.example");
	message_msgid_domain("noreply@host", dom, sizeof(dom));
	cr_assert_str_eq(dom, "host");
	message_msgid_domain("esbank", dom, sizeof(dom));
	cr_assert_str_eq(dom, "localhost");
}

/* ---- Maildir ---- */

static char t_dir[256];

static void t_mkdtemp(void)
{
	snprintf(t_dir, sizeof(t_dir), "/tmp/test_maildir.XXXXXX");
	cr_assert_not_null(mkdtemp(t_dir));
}

static void t_rm_rf(void)
{
	char cmd[300];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", t_dir);
	cr_assert_eq(system(cmd), 0);
}

static int t_count(const char *sub)
{
	char path[512];
	snprintf(path, sizeof(path), "%s/outbox/%s", t_dir, sub);
	DIR *d = opendir(path);
	cr_assert_not_null(d, "%s", path);
	int n = 0;
	struct dirent *de;
	while ((de = readdir(d)) != NULL)
		n += de->d_name[0] != '.';
	closedir(d);
	return n;
}

static void t_open(maildir_t *md)
{
	char root[512];
	snprintf(root, sizeof(root), "%s/outbox", t_dir);
	cr_assert_eq(maildir_open(md, root), 0);
}

Test(maildir, delivers_once, .init = t_mkdtemp, .fini = t_rm_rf)
{
	maildir_t md;
	t_open(&md);
	cr_assert_eq(t_count("tmp") + t_count("new") + t_count("cur"), 0);
	char name[MAILDIR_NAME_MAX + 1];
	mailname_format(name, T_TS_MS, 7, "host");
	cr_assert_eq(maildir_deliver(&md, name, "hello\r\n", 7), 0);
	cr_assert_eq(t_count("new"), 1);
	cr_assert_eq(t_count("tmp"), 0);
	char path[600];
	snprintf(path, sizeof(path), "%s/outbox/new/%s", t_dir, name);
	struct stat st;
	cr_assert_eq(stat(path, &st), 0);
	cr_assert_eq(st.st_size, 7);
	/* A resend (after a restart) is found and not written again. */
	cr_assert_eq(maildir_deliver(&md, name, "other\r\n", 7), 1);
	cr_assert_eq(t_count("new"), 1);
	cr_assert_eq(stat(path, &st), 0);
	cr_assert_eq(st.st_size, 7);
	maildir_close(&md);
}

Test(maildir, duplicate_in_cur_is_skipped, .init = t_mkdtemp, .fini = t_rm_rf)
{
	maildir_t md;
	t_open(&md);
	char name[MAILDIR_NAME_MAX + 1], from[600], to[700];
	mailname_format(name, T_TS_MS, 8, "host");
	cr_assert_eq(maildir_deliver(&md, name, "x", 1), 0);
	/* A mail client has read it: new/NAME -> cur/NAME:2,S */
	snprintf(from, sizeof(from), "%s/outbox/new/%s", t_dir, name);
	snprintf(to, sizeof(to), "%s/outbox/cur/%s:2,S", t_dir, name);
	cr_assert_eq(rename(from, to), 0);
	cr_assert_eq(maildir_deliver(&md, name, "x", 1), 1);
	cr_assert_eq(t_count("new"), 0);
	/* A name that merely starts the same is another mail. */
	mailname_format(name, T_TS_MS, 80, "host");
	cr_assert_eq(maildir_deliver(&md, name, "y", 1), 0);
	cr_assert_eq(t_count("new"), 1);
	maildir_close(&md);
}

Test(maildir, hwm_round_trip, .init = t_mkdtemp, .fini = t_rm_rf)
{
	char path[512];
	snprintf(path, sizeof(path), "%s/hwm", t_dir);
	uint64_t hwm = 99;
	cr_assert_eq(maildir_hwm_read(path, &hwm), 0);
	cr_assert_eq(hwm, 0, "a missing file means 0");
	cr_assert_eq(maildir_hwm_write(path, 12345), 0);
	cr_assert_eq(maildir_hwm_read(path, &hwm), 0);
	cr_assert_eq(hwm, 12345);
	cr_assert_eq(maildir_hwm_write(path, 12346), 0);
	cr_assert_eq(maildir_hwm_read(path, &hwm), 0);
	cr_assert_eq(hwm, 12346);
	char tmp[600];
	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	cr_assert_neq(access(tmp, F_OK), 0, "no temp file left behind");
}

Test(maildir, hwm_garbage_is_an_error, .init = t_mkdtemp, .fini = t_rm_rf)
{
	char path[512];
	snprintf(path, sizeof(path), "%s/hwm", t_dir);
	const char *bad[] = { "", "12", "x\n", "12x\n", "-1\n", "\n", "1\n2\n" };
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		FILE *f = fopen(path, "w");
		cr_assert_not_null(f);
		fputs(bad[i], f);
		fclose(f);
		uint64_t hwm = 5;
		cr_assert_eq(maildir_hwm_read(path, &hwm), -EBADMSG, "case %zu", i);
	}
}
