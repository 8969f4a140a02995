/*
 * test_ledger.c - the domain rules: every rule and every error order of
 * PROTOCOL.md, idempotency keys, the money invariant and the read models.
 */
#include "ledger.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <inttypes.h>
#include <sodium.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#define A1 1000000000000001ULL
#define A2 2000000000000002ULL
#define A3 3000000000000003ULL
#define UNKNOWN 4000000000000004ULL
#define T0 1700000000000LL /* 2023-11-14T22:13:20Z */

static ledger_t *l;

/* An account's identity or password hash, in one of a few rotating buffers. */
static const char *id_of(const ledger_account_t *a)
{
	static char buf[4][LEDGER_EMAIL_BYTES_MAX + 1];
	static unsigned k;
	char *p = buf[k++ % 4];
	ledger_account_identity(a, p);
	return p;
}

static const char *pw_of(const ledger_t *led, const ledger_account_t *a)
{
	static char buf[4][LEDGER_PWHASH_BYTES_MAX];
	static unsigned k;
	char *p = buf[k++ % 4];
	ledger_account_pwhash(led, a, p);
	return p;
}

static size_t sealed_len(const ledger_account_t *a)
{
	uint8_t sealed[LEDGER_SEALED_BYTES_MAX];
	return ledger_account_sealed(a, sealed);
}

static void setup(void)
{
	l = ledger_new();
	cr_assert_not_null(l);
}

static void teardown(void)
{
	ledger_free(l);
}

TestSuite(ledger, .init = setup, .fini = teardown);

static int64_t utc_ms(int y, int mo, int d, int h, int mi, int s, int ms)
{
	struct tm tm = { .tm_year = y - 1900, .tm_mon = mo - 1, .tm_mday = d,
			 .tm_hour = h, .tm_min = mi, .tm_sec = s };
	return (int64_t)timegm(&tm) * 1000 + ms;
}

static void code_hash(const char *code, uint8_t out[LEDGER_CODE_HASH_BYTES])
{
	crypto_generichash(out, LEDGER_CODE_HASH_BYTES, (const unsigned char *)code,
			   strlen(code), NULL, 0);
}

static ledger_event_t next_event(ledger_event_type_t type, int64_t ts)
{
	ledger_event_t ev;
	memset(&ev, 0, sizeof(ev));
	ev.seq = ledger_last_seq(l) + 1;
	ev.ts_ms = ts ? ts : (ledger_last_ts(l) > T0 ? ledger_last_ts(l) : T0);
	ev.type = type;
	return ev;
}

static void apply_ok(const ledger_event_t *ev, ledger_result_t *res)
{
	cr_assert_eq(ledger_check_event(l, ev), PROTO_OK, "event %s rejected",
		     ledger_event_type_name(ev->type));
	cr_assert_eq(ledger_apply(l, ev, res), 0);
	cr_assert_eq(ledger_last_seq(l), ev->seq);
}

static void set_key(ledger_event_t *ev, const char *key, uint8_t fp_byte)
{
	ev->has_key = true;
	ev->key_len = strlen(key);
	memcpy(ev->key, key, ev->key_len);
	memset(ev->fp, fp_byte, LEDGER_FP_BYTES);
}

static void open_acct(uint64_t number, const char *email, const char *code)
{
	ledger_event_t ev = next_event(LEDGER_EV_ACCOUNT_OPENED, 0);
	ev.account = number;
	snprintf(ev.email, sizeof(ev.email), "%s", email);
	snprintf(ev.pwhash, sizeof(ev.pwhash), "$argon2id$v=19$m=8,t=1,p=1$fake");
	ev.amount = LEDGER_OPEN_BALANCE;
	code_hash(code, ev.code_hash);
	apply_ok(&ev, NULL);
}

static void verify_acct(uint64_t number)
{
	ledger_event_t ev = next_event(LEDGER_EV_ACCOUNT_VERIFIED, 0);
	ev.account = number;
	apply_ok(&ev, NULL);
}

static int64_t transfer_at(uint64_t from, uint64_t to, int64_t amount, int64_t ts)
{
	ledger_event_t ev = next_event(LEDGER_EV_MONEY_TRANSFERRED, ts);
	ev.account = from;
	ev.to = to;
	ev.amount = amount;
	ledger_result_t res;
	apply_ok(&ev, &res);
	return res.balance;
}

static int64_t withdraw_at(uint64_t account, int64_t amount, int64_t ts)
{
	ledger_event_t ev = next_event(LEDGER_EV_MONEY_WITHDRAWN, ts);
	ev.account = account;
	ev.amount = amount;
	ledger_result_t res;
	apply_ok(&ev, &res);
	return res.balance;
}

static ledger_event_t takeover(const char *node)
{
	ledger_event_t ev = next_event(LEDGER_EV_PRIMARY_CHANGED, 0);
	snprintf(ev.node, sizeof(ev.node), "%s", node);
	return ev;
}

/* A1, A2 verified; A3 open, not verified. */
static void three_accounts(void)
{
	open_acct(A1, "one@example.com", "code-1");
	open_acct(A2, "two@example.com", "code-2");
	open_acct(A3, "three@example.com", "code-3");
	verify_acct(A1);
	verify_acct(A2);
}

static ledger_cmd_t cmd_transfer(uint64_t from, uint64_t to, int64_t amount)
{
	ledger_cmd_t c = { .op = PROTO_OP_TRANSFER, .account = from, .account_valid = true,
			   .to = to, .to_valid = true, .amount = amount };
	return c;
}

static ledger_cmd_t cmd_withdraw(uint64_t account, int64_t amount)
{
	ledger_cmd_t c = { .op = PROTO_OP_WITHDRAW, .account = account, .account_valid = true,
			   .amount = amount };
	return c;
}

static ledger_cmd_t cmd_account(proto_op_t op, uint64_t account)
{
	ledger_cmd_t c = { .op = op, .account = account, .account_valid = true };
	return c;
}

static proto_err_t check(const ledger_cmd_t *c)
{
	ledger_key_entry_t prior;
	return ledger_check(l, c, &prior);
}

/* ---- names and account numbers ---- */

Test(ledger, err_and_type_names)
{
	cr_assert_str_eq(proto_err_name(PROTO_E_NOT_FOUND), "not_found");
	cr_assert_str_eq(proto_err_name(PROTO_E_INSUFFICIENT_FUNDS), "insufficient_funds");
	cr_assert_str_eq(proto_err_name(PROTO_E_KEY_CONFLICT), "key_conflict");
	cr_assert_str_eq(proto_err_name(PROTO_E_INVALID_AMOUNT), "invalid_amount");
	cr_assert_str_eq(ledger_event_type_name(LEDGER_EV_MONEY_WITHDRAWN), "money_withdrawn");
	cr_assert_null(ledger_event_type_name(0));
	cr_assert_eq(ledger_event_type_parse("account_opened", 14), LEDGER_EV_ACCOUNT_OPENED);
	cr_assert_eq(ledger_event_type_parse("account_opene", 13), 0);
	cr_assert_eq(ledger_event_type_parse("money_transferred", 17),
		     LEDGER_EV_MONEY_TRANSFERRED);
	cr_assert_eq(ledger_event_type_parse("primary_changed", 15), LEDGER_EV_PRIMARY_CHANGED);
	cr_assert_str_eq(ledger_event_type_name(LEDGER_EV_PRIMARY_CHANGED), "primary_changed");
}

Test(ledger, account_number_form)
{
	uint64_t n = 0;
	cr_assert(ledger_account_parse("1234567890123456", 16, &n));
	cr_assert_eq(n, 1234567890123456ULL);
	cr_assert(ledger_account_parse("9999999999999999", 16, &n));
	cr_assert_not(ledger_account_parse("0234567890123456", 16, &n), "leading zero");
	cr_assert_not(ledger_account_parse("123456789012345", 15, &n), "15 digits");
	cr_assert_not(ledger_account_parse("12345678901234567", 17, &n), "17 digits");
	cr_assert_not(ledger_account_parse("123456789012345a", 16, &n), "letter");
	cr_assert_not(ledger_account_parse("-123456789012345", 16, &n), "sign");
	char buf[LEDGER_ACCOUNT_DIGITS + 1];
	ledger_account_format(1000000000000000ULL, buf);
	cr_assert_str_eq(buf, "1000000000000000");
	ledger_account_format(A2, buf);
	cr_assert(ledger_account_parse(buf, strlen(buf), &n) && n == A2);
}

/* ---- open_account ---- */

Test(ledger, open_account_starts_with_opening_balance_unverified)
{
	open_acct(A1, "one@example.com", "c");
	const ledger_account_t *a = ledger_find(l, A1);
	cr_assert_not_null(a);
	cr_assert_eq(a->balance, LEDGER_OPEN_BALANCE);
	cr_assert_not(a->verified);
	cr_assert_eq(a->opened_at_ms, T0);
	cr_assert_eq(a->last_activity_ms, 0);
	cr_assert_str_eq(id_of(a), "one@example.com");
	cr_assert_eq(ledger_account_count(l), 1);
	cr_assert_eq(ledger_total_balance(l), LEDGER_OPEN_BALANCE);
}

Test(ledger, open_account_email_unique_case_insensitive)
{
	open_acct(A1, "one@example.com", "c");
	ledger_cmd_t c = { .op = PROTO_OP_OPEN_ACCOUNT, .email = "One@Example.COM",
			   .email_len = 15 };
	cr_assert_eq(check(&c), PROTO_E_ALREADY_EXISTS);
	c.email = "two@example.com";
	cr_assert_eq(check(&c), PROTO_OK);
	cr_assert_not_null(ledger_find_email(l, "ONE@example.com", 15));
	cr_assert_null(ledger_find_email(l, "one@example.co", 14));
}

/* ---- verify_account / reissue_code ---- */

Test(ledger, verify_account_order)
{
	open_acct(A1, "one@example.com", "right-code");
	ledger_cmd_t c = cmd_account(PROTO_OP_VERIFY_ACCOUNT, UNKNOWN);
	c.code = "wrong";
	c.code_len = 5;
	cr_assert_eq(check(&c), PROTO_E_NOT_FOUND);
	c.account_valid = false;
	c.account = A1;
	cr_assert_eq(check(&c), PROTO_E_NOT_FOUND, "an invalid account string is not_found");
	c.account_valid = true;
	cr_assert_eq(check(&c), PROTO_E_WRONG_CODE);
	c.code = "right-cod";
	c.code_len = 9;
	cr_assert_eq(check(&c), PROTO_E_WRONG_CODE, "prefix of the code");
	c.code = "right-code";
	c.code_len = 10;
	cr_assert_eq(check(&c), PROTO_OK);
	verify_acct(A1);
	cr_assert(ledger_find(l, A1)->verified);
	cr_assert_eq(check(&c), PROTO_E_ALREADY_VERIFIED);
	c.code = "wrong";
	c.code_len = 5;
	cr_assert_eq(check(&c), PROTO_E_ALREADY_VERIFIED, "already_verified before wrong_code");
}

Test(ledger, reissue_code_replaces_code)
{
	open_acct(A1, "one@example.com", "old-code");
	ledger_cmd_t r = cmd_account(PROTO_OP_REISSUE_CODE, UNKNOWN);
	cr_assert_eq(check(&r), PROTO_E_NOT_FOUND);
	r.account = A1;
	cr_assert_eq(check(&r), PROTO_OK);
	ledger_event_t ev = next_event(LEDGER_EV_CODE_REISSUED, 0);
	ev.account = A1;
	code_hash("new-code", ev.code_hash);
	apply_ok(&ev, NULL);
	ledger_cmd_t v = cmd_account(PROTO_OP_VERIFY_ACCOUNT, A1);
	v.code = "old-code";
	v.code_len = 8;
	cr_assert_eq(check(&v), PROTO_E_WRONG_CODE, "the old code stops working");
	v.code = "new-code";
	cr_assert_eq(check(&v), PROTO_OK);
	verify_acct(A1);
	cr_assert_eq(check(&r), PROTO_E_ALREADY_VERIFIED);
}

/* ---- transfer ---- */

Test(ledger, transfer_invalid_amount_first)
{
	three_accounts();
	ledger_cmd_t c = cmd_transfer(A1, A1, 0);
	cr_assert_eq(check(&c), PROTO_E_INVALID_AMOUNT, "invalid amount and same account");
	c = cmd_transfer(UNKNOWN, A3, -1);
	cr_assert_eq(check(&c), PROTO_E_INVALID_AMOUNT, "invalid amount and unknown from");
	c = cmd_transfer(A1, A2, LEDGER_AMOUNT_MAX + 1);
	cr_assert_eq(check(&c), PROTO_E_INVALID_AMOUNT, "10^12 + 1");
	c = cmd_transfer(A1, A2, INT64_MAX);
	cr_assert_eq(check(&c), PROTO_E_INVALID_AMOUNT);
	c = cmd_transfer(A1, A2, INT64_MIN);
	cr_assert_eq(check(&c), PROTO_E_INVALID_AMOUNT);
	c = cmd_transfer(A1, A2, LEDGER_AMOUNT_MAX);
	cr_assert_eq(check(&c), PROTO_E_INSUFFICIENT_FUNDS, "10^12 is a valid amount");
	c = cmd_transfer(A1, A2, 1);
	cr_assert_eq(check(&c), PROTO_OK, "1 is a valid amount");
}

Test(ledger, transfer_same_account_before_not_found)
{
	three_accounts();
	ledger_cmd_t c = cmd_transfer(UNKNOWN, UNKNOWN, 5);
	cr_assert_eq(check(&c), PROTO_E_SAME_ACCOUNT);
	c = cmd_transfer(A3, A3, 5);
	cr_assert_eq(check(&c), PROTO_E_SAME_ACCOUNT, "same_account before not_verified");
	c = cmd_transfer(77, 77, 5);
	c.account_valid = c.to_valid = false;
	cr_assert_eq(check(&c), PROTO_E_SAME_ACCOUNT, "two equal invalid strings");
	c.to = 78;
	cr_assert_eq(check(&c), PROTO_E_NOT_FOUND, "two different invalid strings");
	c = cmd_transfer(A1, A1, 5);
	c.to_valid = false;
	cr_assert_eq(check(&c), PROTO_E_NOT_FOUND, "a valid and an invalid string differ");
}

Test(ledger, transfer_not_found_from_then_to)
{
	three_accounts();
	ledger_cmd_t c = cmd_transfer(UNKNOWN, UNKNOWN + 1, 5);
	cr_assert_eq(check(&c), PROTO_E_NOT_FOUND);
	c = cmd_transfer(UNKNOWN, A1, 5);
	cr_assert_eq(check(&c), PROTO_E_NOT_FOUND);
	c = cmd_transfer(A1, UNKNOWN, 5);
	cr_assert_eq(check(&c), PROTO_E_NOT_FOUND);
	c = cmd_transfer(A3, UNKNOWN, 5);
	cr_assert_eq(check(&c), PROTO_E_NOT_FOUND, "unverified from, unknown to: not_found");
	c = cmd_transfer(UNKNOWN, A3, 5);
	cr_assert_eq(check(&c), PROTO_E_NOT_FOUND);
}

Test(ledger, transfer_not_verified_before_insufficient_funds)
{
	three_accounts();
	ledger_cmd_t c = cmd_transfer(A3, A1, LEDGER_OPEN_BALANCE + 1);
	cr_assert_eq(check(&c), PROTO_E_NOT_VERIFIED, "unverified from, insufficient funds");
	c = cmd_transfer(A1, A3, LEDGER_OPEN_BALANCE + 1);
	cr_assert_eq(check(&c), PROTO_E_NOT_VERIFIED, "unverified to, insufficient funds");
	c = cmd_transfer(A1, A3, 5);
	cr_assert_eq(check(&c), PROTO_E_NOT_VERIFIED);
	c = cmd_transfer(A1, A2, LEDGER_OPEN_BALANCE + 1);
	cr_assert_eq(check(&c), PROTO_E_INSUFFICIENT_FUNDS);
}

Test(ledger, transfer_whole_balance)
{
	three_accounts();
	ledger_cmd_t c = cmd_transfer(A1, A2, LEDGER_OPEN_BALANCE);
	cr_assert_eq(check(&c), PROTO_OK);
	int64_t ts = T0 + 5000;
	cr_assert_eq(transfer_at(A1, A2, LEDGER_OPEN_BALANCE, ts), 0, "balance of from, after");
	cr_assert_eq(ledger_find(l, A1)->balance, 0);
	cr_assert_eq(ledger_find(l, A2)->balance, 2 * LEDGER_OPEN_BALANCE);
	cr_assert_eq(ledger_find(l, A1)->last_activity_ms, ts, "sender's last activity");
	cr_assert_eq(ledger_find(l, A2)->last_activity_ms, ts, "receiver's last activity");
	cr_assert_eq(ledger_find(l, A3)->last_activity_ms, 0);
	c = cmd_transfer(A1, A2, 1);
	cr_assert_eq(check(&c), PROTO_E_INSUFFICIENT_FUNDS);
	cr_assert_eq(ledger_total_balance(l), 3 * LEDGER_OPEN_BALANCE);
}

/* ---- withdraw ---- */

Test(ledger, withdraw_order)
{
	three_accounts();
	ledger_cmd_t c = cmd_withdraw(UNKNOWN, 0);
	cr_assert_eq(check(&c), PROTO_E_INVALID_AMOUNT, "invalid amount and unknown account");
	c = cmd_withdraw(A3, LEDGER_AMOUNT_MAX + 1);
	cr_assert_eq(check(&c), PROTO_E_INVALID_AMOUNT);
	c = cmd_withdraw(UNKNOWN, 5);
	cr_assert_eq(check(&c), PROTO_E_NOT_FOUND);
	c = cmd_withdraw(A3, LEDGER_OPEN_BALANCE + 1);
	cr_assert_eq(check(&c), PROTO_E_NOT_VERIFIED, "unverified with insufficient funds");
	c = cmd_withdraw(A1, LEDGER_OPEN_BALANCE + 1);
	cr_assert_eq(check(&c), PROTO_E_INSUFFICIENT_FUNDS);
	c = cmd_withdraw(A1, LEDGER_OPEN_BALANCE);
	cr_assert_eq(check(&c), PROTO_OK);
}

Test(ledger, withdraw_whole_balance)
{
	three_accounts();
	cr_assert_eq(withdraw_at(A1, LEDGER_OPEN_BALANCE, T0 + 1), 0);
	cr_assert_eq(ledger_find(l, A1)->balance, 0);
	cr_assert_eq(ledger_find(l, A1)->last_activity_ms, T0 + 1);
	cr_assert_eq(ledger_total_withdrawn(l), LEDGER_OPEN_BALANCE);
	cr_assert_eq(ledger_total_balance(l), 2 * LEDGER_OPEN_BALANCE);
	ledger_cmd_t c = cmd_withdraw(A1, 1);
	cr_assert_eq(check(&c), PROTO_E_INSUFFICIENT_FUNDS);
}

/* ---- queries ---- */

Test(ledger, query_checks)
{
	three_accounts();
	ledger_cmd_t c = cmd_account(PROTO_OP_GET_ACCOUNT, A3);
	cr_assert_eq(check(&c), PROTO_OK);
	c.account = UNKNOWN;
	cr_assert_eq(check(&c), PROTO_E_NOT_FOUND);
	c.account_valid = false;
	c.account = A3;
	cr_assert_eq(check(&c), PROTO_E_NOT_FOUND);
	c = cmd_account(PROTO_OP_AUTHENTICATE, UNKNOWN);
	cr_assert_eq(check(&c), PROTO_E_AUTH_FAILED, "unknown account is auth_failed");
	c.account = A1;
	cr_assert_eq(check(&c), PROTO_OK, "the caller then verifies the password");
	ledger_cmd_t s = { .op = PROTO_OP_SUM_TRANSACTIONS };
	cr_assert_eq(check(&s), PROTO_OK);
}

/* ---- idempotency keys ---- */

static ledger_cmd_t keyed(ledger_cmd_t c, const char *key, uint8_t fp_byte)
{
	c.has_key = true;
	c.key = key;
	c.key_len = strlen(key);
	memset(c.fp, fp_byte, LEDGER_FP_BYTES);
	return c;
}

Test(ledger, duplicate_returns_prior_even_after_state_changed)
{
	three_accounts();
	ledger_cmd_t c = keyed(cmd_transfer(A1, A2, 60000), "k1", 0xaa);
	cr_assert_eq(check(&c), PROTO_OK);
	ledger_event_t ev = next_event(LEDGER_EV_MONEY_TRANSFERRED, 0);
	ev.account = A1;
	ev.to = A2;
	ev.amount = 60000;
	set_key(&ev, "k1", 0xaa);
	apply_ok(&ev, NULL);
	uint64_t seq = ev.seq;
	withdraw_at(A1, 40000, 0);
	ledger_key_entry_t prior;
	memset(&prior, 0, sizeof(prior));
	cr_assert_eq(ledger_check(l, &c, &prior), PROTO_DUPLICATE,
		     "a retry is a duplicate although funds no longer suffice");
	cr_assert_eq(prior.seq, seq);
	cr_assert_eq(prior.balance, 40000, "the original balance after");
	cr_assert_eq(prior.op, PROTO_OP_TRANSFER);
	const ledger_key_entry_t *e = ledger_find_key(l, "k1", 2);
	cr_assert_not_null(e);
	cr_assert_eq(e->seq, seq);
}

Test(ledger, duplicate_open_account_returns_account)
{
	ledger_event_t ev = next_event(LEDGER_EV_ACCOUNT_OPENED, 0);
	ev.account = A1;
	strcpy(ev.email, "one@example.com");
	strcpy(ev.pwhash, "$argon2id$x");
	ev.amount = LEDGER_OPEN_BALANCE;
	set_key(&ev, "open-1", 0x11);
	apply_ok(&ev, NULL);
	ledger_cmd_t c = keyed((ledger_cmd_t){ .op = PROTO_OP_OPEN_ACCOUNT,
					       .email = "one@example.com", .email_len = 15 },
			       "open-1", 0x11);
	ledger_key_entry_t prior;
	cr_assert_eq(ledger_check(l, &c, &prior), PROTO_DUPLICATE,
		     "not already_exists: the key is looked up first");
	cr_assert_eq(prior.account, A1);
	cr_assert_eq(prior.seq, 1);
}

Test(ledger, key_conflict_on_other_arguments_or_op)
{
	three_accounts();
	ledger_event_t ev = next_event(LEDGER_EV_MONEY_WITHDRAWN, 0);
	ev.account = A1;
	ev.amount = 100;
	set_key(&ev, "k", 0x01);
	apply_ok(&ev, NULL);
	ledger_cmd_t c = keyed(cmd_withdraw(A1, 101), "k", 0x02);
	cr_assert_eq(check(&c), PROTO_E_KEY_CONFLICT, "different arguments");
	c = keyed(cmd_transfer(A1, A2, 100), "k", 0x01);
	cr_assert_eq(check(&c), PROTO_E_KEY_CONFLICT, "different op, same fingerprint");
	c = keyed(cmd_withdraw(A1, 0), "k", 0x02);
	cr_assert_eq(check(&c), PROTO_E_KEY_CONFLICT, "key_conflict before invalid_amount");
	c = keyed(cmd_withdraw(A1, 100), "k", 0x01);
	cr_assert_eq(check(&c), PROTO_DUPLICATE);
	c = keyed(cmd_withdraw(A1, 100), "K", 0x01);
	cr_assert_eq(check(&c), PROTO_OK, "keys are case-sensitive");
	ledger_event_t again = next_event(LEDGER_EV_MONEY_WITHDRAWN, 0);
	again.account = A1;
	again.amount = 1;
	set_key(&again, "k", 0x01);
	cr_assert_eq(ledger_check_event(l, &again), PROTO_E_KEY_CONFLICT,
		     "an event may not reuse a remembered key");
}

Test(ledger, rejected_command_does_not_use_up_key)
{
	three_accounts();
	ledger_cmd_t c = keyed(cmd_withdraw(A3, 100), "k", 0x05);
	cr_assert_eq(check(&c), PROTO_E_NOT_VERIFIED);
	cr_assert_null(ledger_find_key(l, "k", 1));
	ledger_cmd_t other = keyed(cmd_withdraw(A1, 100), "k", 0x06);
	cr_assert_eq(check(&other), PROTO_OK, "the key is still free for another command");
	cr_assert_eq(check(&c), PROTO_E_NOT_VERIFIED, "a retry gets the rule's error again");
}

Test(ledger, keys_max_constant)
{
	cr_assert_geq(LEDGER_KEYS_MAX, 1000000u, "the protocol requires 1,000,000 keys");
}

static int collect_key(const char *key, size_t n, const ledger_key_entry_t *e, void *arg)
{
	char *out = arg;
	strncat(out, key, n);
	strcat(out, ",");
	(void)e;
	return 0;
}

static void reissue_keyed(uint64_t account, const char *key)
{
	ledger_event_t ev = next_event(LEDGER_EV_CODE_REISSUED, 0);
	ev.account = account;
	set_key(&ev, key, 0x33);
	apply_ok(&ev, NULL);
}

Test(ledger, key_eviction_fifo)
{
	ledger_set_keys_max(l, 3);
	open_acct(A3, "three@example.com", "c");
	reissue_keyed(A3, "a");
	reissue_keyed(A3, "b");
	reissue_keyed(A3, "c");
	cr_assert_not_null(ledger_find_key(l, "a", 1));
	reissue_keyed(A3, "d");
	cr_assert_null(ledger_find_key(l, "a", 1), "the oldest key is evicted");
	cr_assert_not_null(ledger_find_key(l, "b", 1));
	cr_assert_not_null(ledger_find_key(l, "d", 1));
	char order[64] = "";
	ledger_each_key(l, collect_key, order);
	cr_assert_str_eq(order, "b,c,d,");
	reissue_keyed(A3, "a");
	cr_assert_eq(ledger_find_key(l, "a", 1)->seq, ledger_last_seq(l), "an evicted key is new");
	cr_assert_null(ledger_find_key(l, "b", 1));
}

Test(ledger, key_eviction_many_keys_stay_findable)
{
	enum { KEEP = 1000, TOTAL = 5000 };
	ledger_set_keys_max(l, KEEP);
	open_acct(A3, "three@example.com", "c");
	char key[32];
	for (int i = 0; i < TOTAL; i++) {
		snprintf(key, sizeof(key), "key-%d", i);
		reissue_keyed(A3, key);
	}
	for (int i = 0; i < TOTAL; i++) {
		snprintf(key, sizeof(key), "key-%d", i);
		const ledger_key_entry_t *e = ledger_find_key(l, key, strlen(key));
		if (i < TOTAL - KEEP) {
			cr_assert_null(e, "%s should be evicted", key);
		} else {
			cr_assert_not_null(e, "%s should be kept", key);
			cr_assert_eq(e->seq, (uint64_t)i + 2);
		}
	}
}

Test(ledger, key_eviction_full_scale, .timeout = 60)
{
	open_acct(A3, "three@example.com", "c");
	char key[32];
	for (uint32_t i = 0; i <= LEDGER_KEYS_MAX; i++) {
		ledger_event_t ev = next_event(LEDGER_EV_CODE_REISSUED, 0);
		ev.account = A3;
		set_key(&ev, "", 0x44);
		ev.key_len = (size_t)snprintf(ev.key, sizeof(ev.key), "k%u", i);
		cr_assert_eq(ledger_apply(l, &ev, NULL), 0);
	}
	cr_assert_null(ledger_find_key(l, "k0", 2), "only the first key is evicted");
	cr_assert_not_null(ledger_find_key(l, "k1", 2));
	snprintf(key, sizeof(key), "k%u", LEDGER_KEYS_MAX);
	cr_assert_not_null(ledger_find_key(l, key, strlen(key)));
}

/* ---- replay checks ---- */

Test(ledger, check_event_rejects_broken_history)
{
	three_accounts();
	ledger_event_t ev = next_event(LEDGER_EV_MONEY_WITHDRAWN, 0);
	ev.account = A1;
	ev.amount = 10;
	ev.seq += 1;
	cr_assert_neq(ledger_check_event(l, &ev), PROTO_OK, "gap in seq");
	ev.seq -= 2;
	cr_assert_neq(ledger_check_event(l, &ev), PROTO_OK, "repeated seq");
	ev.seq += 1;
	ev.ts_ms = ledger_last_ts(l) - 1;
	cr_assert_neq(ledger_check_event(l, &ev), PROTO_OK, "time going back");
	ev.ts_ms = ledger_last_ts(l);
	cr_assert_eq(ledger_check_event(l, &ev), PROTO_OK);
	ev.account = A3;
	cr_assert_eq(ledger_check_event(l, &ev), PROTO_E_NOT_VERIFIED);
	ev.account = UNKNOWN;
	cr_assert_eq(ledger_check_event(l, &ev), PROTO_E_NOT_FOUND);
	ev.account = A1;
	ev.amount = LEDGER_OPEN_BALANCE + 1;
	cr_assert_eq(ledger_check_event(l, &ev), PROTO_E_INSUFFICIENT_FUNDS);
	ev.type = LEDGER_EV_MONEY_TRANSFERRED;
	ev.amount = 5;
	ev.to = A1;
	cr_assert_eq(ledger_check_event(l, &ev), PROTO_E_SAME_ACCOUNT);
	ev.to = A3;
	cr_assert_eq(ledger_check_event(l, &ev), PROTO_E_NOT_VERIFIED);
	ev.type = 99;
	cr_assert_neq(ledger_check_event(l, &ev), PROTO_OK, "unknown type");
}

Test(ledger, check_event_rejects_bad_openings)
{
	open_acct(A1, "one@example.com", "c");
	ledger_event_t ev = next_event(LEDGER_EV_ACCOUNT_OPENED, 0);
	ev.account = A2;
	strcpy(ev.email, "two@example.com");
	strcpy(ev.pwhash, "$argon2id$x");
	ev.amount = LEDGER_OPEN_BALANCE;
	cr_assert_eq(ledger_check_event(l, &ev), PROTO_OK);
	ev.account = A1;
	cr_assert_eq(ledger_check_event(l, &ev), PROTO_E_ALREADY_EXISTS, "number taken");
	ev.account = 123;
	cr_assert_neq(ledger_check_event(l, &ev), PROTO_OK, "not 16 digits");
	ev.account = A2;
	strcpy(ev.email, "one@example.com");
	cr_assert_eq(ledger_check_event(l, &ev), PROTO_E_ALREADY_EXISTS, "email taken");
	strcpy(ev.email, "Two@example.com");
	cr_assert_neq(ledger_check_event(l, &ev), PROTO_OK, "not lower-cased");
	strcpy(ev.email, "two-example.com");
	cr_assert_neq(ledger_check_event(l, &ev), PROTO_OK, "not an email");
	strcpy(ev.email, "two@example.com");
	ev.amount = LEDGER_OPEN_BALANCE + 1;
	cr_assert_neq(ledger_check_event(l, &ev), PROTO_OK, "wrong opening balance");
	ev.amount = LEDGER_OPEN_BALANCE;
	ev.pwhash[0] = '\0';
	cr_assert_neq(ledger_check_event(l, &ev), PROTO_OK, "no password hash");
	ev.type = LEDGER_EV_ACCOUNT_VERIFIED;
	ev.account = A1;
	cr_assert_eq(ledger_check_event(l, &ev), PROTO_OK);
	verify_acct(A1);
	ev.seq++;
	cr_assert_eq(ledger_check_event(l, &ev), PROTO_E_ALREADY_VERIFIED);
}

/* ---- money invariant ---- */

static int sum_balances(const ledger_account_t *a, void *arg)
{
	int64_t *sum = arg;
	cr_assert_geq(a->balance, 0);
	*sum += a->balance;
	return 0;
}

Test(ledger, money_invariant_under_random_history)
{
	enum { ACCOUNTS = 50, STEPS = 5000 };
	uint64_t rng = 12345;
	char email[64];
	for (int i = 0; i < ACCOUNTS; i++) {
		snprintf(email, sizeof(email), "user%d@example.com", i);
		open_acct(A1 + (uint64_t)i, email, "c");
		if (i % 5 != 0)
			verify_acct(A1 + (uint64_t)i);
	}
	int64_t withdrawn = 0;
	for (int step = 0; step < STEPS; step++) {
		rng = rng * 6364136223846793005ULL + 1442695040888963407ULL;
		uint64_t from = A1 + (rng >> 33) % ACCOUNTS, to = A1 + (rng >> 20) % ACCOUNTS;
		int64_t amount = (int64_t)((rng >> 40) % 60000) - 5;
		bool wd = (rng >> 10) % 4 == 0;
		ledger_cmd_t c = wd ? cmd_withdraw(from, amount) : cmd_transfer(from, to, amount);
		if (check(&c) != PROTO_OK)
			continue;
		if (wd) {
			withdraw_at(from, amount, 0);
			withdrawn += amount;
		} else {
			transfer_at(from, to, amount, 0);
		}
		int64_t sum = 0;
		ledger_each_account(l, sum_balances, &sum);
		cr_assert_eq(sum, ledger_total_balance(l));
		cr_assert_eq(sum, LEDGER_OPEN_BALANCE * ACCOUNTS - withdrawn);
	}
	cr_assert_eq(ledger_total_withdrawn(l), withdrawn);
	cr_assert_gt(withdrawn, 0, "the history withdrew something");
}

/* ---- read models ---- */

Test(ledger, sum_transactions_across_boundaries)
{
	three_accounts();
	transfer_at(A1, A2, 100, utc_ms(2023, 12, 31, 23, 59, 59, 999));
	withdraw_at(A2, 20, utc_ms(2024, 1, 1, 0, 0, 0, 0));
	transfer_at(A2, A1, 3, utc_ms(2024, 2, 29, 12, 0, 0, 0));
	transfer_at(A1, A2, 4000, utc_ms(2024, 2, 29, 23, 59, 59, 999));
	withdraw_at(A1, 50000, utc_ms(2024, 3, 1, 0, 0, 0, 0));
	cr_assert_eq(ledger_sum_transactions(l, 0, 0, 0), 54123, "all time");
	cr_assert_eq(ledger_sum_transactions(l, 2023, 0, 0), 100);
	cr_assert_eq(ledger_sum_transactions(l, 2024, 0, 0), 54023);
	cr_assert_eq(ledger_sum_transactions(l, 2022, 0, 0), 0);
	cr_assert_eq(ledger_sum_transactions(l, 2023, 12, 0), 100);
	cr_assert_eq(ledger_sum_transactions(l, 2024, 1, 0), 20);
	cr_assert_eq(ledger_sum_transactions(l, 2024, 2, 0), 4003);
	cr_assert_eq(ledger_sum_transactions(l, 2024, 3, 0), 50000);
	cr_assert_eq(ledger_sum_transactions(l, 2023, 12, 31), 100);
	cr_assert_eq(ledger_sum_transactions(l, 2024, 1, 1), 20);
	cr_assert_eq(ledger_sum_transactions(l, 2024, 2, 29), 4003);
	cr_assert_eq(ledger_sum_transactions(l, 2024, 3, 1), 50000);
	cr_assert_eq(ledger_sum_transactions(l, 2024, 2, 28), 0);
	cr_assert_eq(ledger_sum_transactions(l, 2024, 2, 30), 0, "no such day");
	cr_assert_eq(ledger_sum_transactions(l, 2023, 2, 29), 0);
	cr_assert_eq(ledger_sum_transactions(l, 1969, 12, 31), 0);
	cr_assert_eq(ledger_sum_transactions(l, 9999, 12, 31), 0);
}

Test(ledger, sum_transactions_far_dates)
{
	three_accounts();
	transfer_at(A1, A2, 7, utc_ms(2100, 3, 1, 0, 0, 0, 0));
	transfer_at(A1, A2, 8, utc_ms(2400, 2, 29, 1, 0, 0, 0));
	cr_assert_eq(ledger_sum_transactions(l, 2100, 3, 1), 7);
	cr_assert_eq(ledger_sum_transactions(l, 2100, 2, 0), 0);
	cr_assert_eq(ledger_sum_transactions(l, 2400, 2, 29), 8);
}

Test(ledger, inactive_users)
{
	three_accounts();
	int64_t now = T0 + 100 * LEDGER_DAY_MS;
	transfer_at(A1, A2, 10, now - 31 * LEDGER_DAY_MS);
	withdraw_at(A2, 10, now - 29 * LEDGER_DAY_MS);
	/* A1: last 31 days ago; A2: 29 days ago; A3: never */
	cr_assert_eq(ledger_inactive_users(l, 30, now), 2);
	cr_assert_eq(ledger_inactive_users(l, 31, now), 1, "activity exactly 31 days ago counts");
	cr_assert_eq(ledger_inactive_users(l, 28, now), 3);
	cr_assert_eq(ledger_inactive_users(l, 0, now), 3);
	cr_assert_eq(ledger_inactive_users(l, 1000000, now), 1, "the never-active account");
	cr_assert_eq(ledger_inactive_users(l, INT64_MAX, now), 1);
	transfer_at(A1, A2, 1, now);
	cr_assert_eq(ledger_inactive_users(l, 0, now), 1, "activity at now is not before now");
}

Test(ledger, last_activity_and_result)
{
	three_accounts();
	ledger_event_t ev = next_event(LEDGER_EV_MONEY_WITHDRAWN, T0 + 10);
	ev.account = A2;
	ev.amount = 1234;
	ledger_result_t res = { .balance = -1 };
	apply_ok(&ev, &res);
	cr_assert_eq(res.balance, LEDGER_OPEN_BALANCE - 1234);
	cr_assert_eq(ledger_find(l, A2)->last_activity_ms, T0 + 10);
	cr_assert_eq(ledger_last_ts(l), T0 + 10);
	cr_assert_eq(ledger_find(l, A1)->last_activity_ms, 0, "verification is no activity");
}

Test(ledger, many_accounts_found_after_growth)
{
	enum { N = 3000 };
	char email[64];
	for (uint64_t i = 0; i < N; i++) {
		snprintf(email, sizeof(email), "u%" PRIu64 "@x.org", i);
		open_acct(A1 + i * 7919, email, "c");
	}
	cr_assert_eq(ledger_account_count(l), N);
	for (uint64_t i = 0; i < N; i++) {
		snprintf(email, sizeof(email), "U%" PRIu64 "@X.ORG", i);
		const ledger_account_t *a = ledger_find_email(l, email, strlen(email));
		cr_assert_not_null(a);
		cr_assert_eq(a->number, A1 + i * 7919);
		cr_assert_eq(ledger_find(l, A1 + i * 7919), a);
	}
	cr_assert_null(ledger_find(l, A1 + 1));
}

/* ---- snapshot encoding ---- */

static int compare_account(const ledger_account_t *a, void *arg)
{
	const ledger_t *other = arg;
	const ledger_account_t *b = ledger_find(other, a->number);
	cr_assert_not_null(b);
	cr_assert_eq(a->balance, b->balance);
	cr_assert_eq(a->verified, b->verified);
	cr_assert_eq(a->opened_at_ms, b->opened_at_ms);
	cr_assert_eq(a->last_activity_ms, b->last_activity_ms);
	cr_assert_str_eq(id_of(a), id_of(b));
	cr_assert_str_eq(pw_of(l, a), pw_of(other, b));
	cr_assert_eq(memcmp(a->code_hash, b->code_hash, LEDGER_CODE_HASH_BYTES), 0);
	cr_assert_eq(ledger_find_email(other, id_of(a), strlen(id_of(a))), b);
	uint8_t sa[LEDGER_SEALED_BYTES_MAX], sb[LEDGER_SEALED_BYTES_MAX];
	size_t na = ledger_account_sealed(a, sa);
	cr_assert_eq(na, ledger_account_sealed(b, sb));
	cr_assert_eq(memcmp(sa, sb, na), 0);
	return 0;
}

/* ledger_unpack() of obj's bytes (an edited decoded snapshot, packed again). */
static int unpack_object(ledger_t *copy, const msgpack_object *obj)
{
	msgpack_sbuffer sb;
	msgpack_packer pk;
	msgpack_sbuffer_init(&sb);
	msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
	cr_assert_eq(msgpack_pack_object(&pk, *obj), 0);
	int rc = ledger_unpack(copy, sb.data, sb.size);
	msgpack_sbuffer_destroy(&sb);
	return rc;
}

static ledger_t *copy_through_snapshot(int *rc_out, size_t cut)
{
	msgpack_sbuffer sb;
	msgpack_packer pk;
	msgpack_zone zone;
	msgpack_object obj;
	msgpack_sbuffer_init(&sb);
	msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
	ledger_pack(l, &pk);
	msgpack_zone_init(&zone, 4096);
	size_t off = 0;
	cr_assert_eq(msgpack_unpack(sb.data, sb.size, &off, &zone, &obj), MSGPACK_UNPACK_SUCCESS);
	if (cut)
		obj.via.map.size -= (uint32_t)cut; /* drops the last entries */
	ledger_t *copy = ledger_new();
	*rc_out = unpack_object(copy, &obj);
	msgpack_zone_destroy(&zone);
	msgpack_sbuffer_destroy(&sb);
	return copy;
}

Test(ledger, snapshot_round_trip)
{
	three_accounts();
	int64_t ts = utc_ms(2024, 5, 6, 7, 8, 9, 0);
	ledger_event_t ev = next_event(LEDGER_EV_MONEY_TRANSFERRED, ts);
	ev.account = A1;
	ev.to = A2;
	ev.amount = 777;
	set_key(&ev, "t1", 0x77);
	apply_ok(&ev, NULL);
	withdraw_at(A2, 333, utc_ms(2024, 6, 1, 0, 0, 0, 0));
	ledger_event_t tk = takeover("standby-b");
	apply_ok(&tk, NULL); /* the snapshot's last event may be a takeover */
	int rc;
	ledger_t *copy = copy_through_snapshot(&rc, 0);
	cr_assert_eq(rc, 0);
	cr_assert_eq(ledger_account_count(copy), 3);
	cr_assert_eq(ledger_last_seq(copy), ledger_last_seq(l));
	cr_assert_eq(ledger_last_ts(copy), ledger_last_ts(l));
	cr_assert_eq(ledger_total_balance(copy), ledger_total_balance(l));
	cr_assert_eq(ledger_total_withdrawn(copy), 333);
	ledger_each_account(l, compare_account, copy);
	const ledger_key_entry_t *k = ledger_find_key(copy, "t1", 2);
	cr_assert_not_null(k);
	cr_assert_eq(k->seq, ev.seq);
	cr_assert_eq(k->balance, LEDGER_OPEN_BALANCE - 777);
	cr_assert_eq(k->op, PROTO_OP_TRANSFER);
	cr_assert_eq(ledger_sum_transactions(copy, 2024, 5, 6), 777);
	cr_assert_eq(ledger_sum_transactions(copy, 2024, 6, 0), 333);
	cr_assert_eq(ledger_sum_transactions(copy, 0, 0, 0), 1110);
	ev = next_event(LEDGER_EV_MONEY_WITHDRAWN, 0);
	ev.account = A1;
	ev.amount = 5;
	cr_assert_eq(ledger_check_event(copy, &ev), PROTO_OK, "the copy goes on from there");
	cr_assert_eq(ledger_apply(copy, &ev, NULL), 0);
	ledger_free(copy);
}

Test(ledger, snapshot_incomplete_is_rejected)
{
	three_accounts();
	int rc;
	ledger_t *copy = copy_through_snapshot(&rc, 1);
	cr_assert_eq(rc, -EINVAL, "a snapshot without its last field");
	ledger_free(copy);
}

/* Packs l, lets edit change the decoded map, and loads it into a new ledger
 * that remembers keys_max keys; *rc_out gets ledger_unpack()'s answer. */
static ledger_t *copy_edited(int *rc_out, size_t keys_max, void (*edit)(msgpack_object *map))
{
	msgpack_sbuffer sb;
	msgpack_packer pk;
	msgpack_zone zone;
	msgpack_object obj;
	msgpack_sbuffer_init(&sb);
	msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
	ledger_pack(l, &pk);
	msgpack_zone_init(&zone, 4096);
	size_t off = 0;
	cr_assert_eq(msgpack_unpack(sb.data, sb.size, &off, &zone, &obj), MSGPACK_UNPACK_SUCCESS);
	if (edit)
		edit(&obj);
	ledger_t *copy = ledger_new();
	ledger_set_keys_max(copy, keys_max);
	*rc_out = unpack_object(copy, &obj);
	msgpack_zone_destroy(&zone);
	msgpack_sbuffer_destroy(&sb);
	return copy;
}

static msgpack_object_array *list_of(msgpack_object *map, const char *name)
{
	for (uint32_t i = 0; i < map->via.map.size; i++) {
		msgpack_object_kv *kv = &map->via.map.ptr[i];
		if (kv->key.via.str.size == strlen(name) &&
		    memcmp(kv->key.via.str.ptr, name, strlen(name)) == 0)
			return &kv->val.via.array;
	}
	cr_assert_fail("no %s in the snapshot", name);
	return NULL;
}

static void second_account_takes_first_number(msgpack_object *map)
{
	msgpack_object_array *a = list_of(map, "accounts");
	a->ptr[1].via.array.ptr[0] = a->ptr[0].via.array.ptr[0];
}

static void second_account_takes_first_email(msgpack_object *map)
{
	msgpack_object_array *a = list_of(map, "accounts");
	a->ptr[1].via.array.ptr[1] = a->ptr[0].via.array.ptr[1];
}

static void second_key_takes_first_key(msgpack_object *map)
{
	msgpack_object_array *k = list_of(map, "keys");
	k->ptr[1].via.array.ptr[0] = k->ptr[0].via.array.ptr[0];
}

static void email_gets_upper_case(msgpack_object *map)
{
	static const char upper[] = "Two@example.com";
	msgpack_object_array *a = list_of(map, "accounts");
	a->ptr[1].via.array.ptr[1].via.str.ptr = upper;
}

static void pwhash_gets_a_nul(msgpack_object *map)
{
	static const char nul[] = "$argon2id$\0fake";
	msgpack_object_array *a = list_of(map, "accounts");
	a->ptr[1].via.array.ptr[2].via.str.ptr = nul;
	a->ptr[1].via.array.ptr[2].via.str.size = sizeof(nul) - 1;
}

/* The map with one more entry: a copy of its entry named name, or, when
 * name is NULL, an unknown field "extra" holding 5. */
static void map_gains_entry(msgpack_object *map, const char *name)
{
	static msgpack_object_kv kv[16];
	uint32_t n = map->via.map.size;
	cr_assert_lt(n, 16);
	memcpy(kv, map->via.map.ptr, n * sizeof(kv[0]));
	kv[n].key = (msgpack_object){ .type = MSGPACK_OBJECT_STR,
	                              .via.str = { .size = 5, .ptr = "extra" } };
	kv[n].val = (msgpack_object){ .type = MSGPACK_OBJECT_POSITIVE_INTEGER, .via.u64 = 5 };
	for (uint32_t i = 0; name && i < n; i++)
		if (kv[i].key.via.str.size == strlen(name) &&
		    memcmp(kv[i].key.via.str.ptr, name, strlen(name)) == 0)
			kv[n] = kv[i];
	map->via.map.ptr = kv;
	map->via.map.size = n + 1;
}

static void keys_twice(msgpack_object *map)
{
	map_gains_entry(map, "keys");
}

static void last_seq_twice(msgpack_object *map)
{
	map_gains_entry(map, "last_seq");
}

static void an_unknown_field(msgpack_object *map)
{
	map_gains_entry(map, NULL);
}

Test(ledger, snapshot_with_a_field_twice_is_rejected_and_an_unknown_one_skipped)
{
	three_accounts();
	reissue_keyed(A3, "k1");
	int rc;
	ledger_t *copy = copy_edited(&rc, LEDGER_KEYS_MAX, keys_twice);
	cr_assert_eq(rc, -EINVAL, "\"keys\" twice");
	ledger_free(copy);
	copy = copy_edited(&rc, LEDGER_KEYS_MAX, last_seq_twice);
	cr_assert_eq(rc, -EINVAL, "\"last_seq\" twice");
	ledger_free(copy);
	copy = copy_edited(&rc, LEDGER_KEYS_MAX, an_unknown_field);
	cr_assert_eq(rc, 0, "an unknown field is skipped");
	cr_assert_eq(ledger_account_count(copy), 3);
	cr_assert_not_null(ledger_find_key(copy, "k1", 2));
	ledger_free(copy);
}

/* The state's snapshot bytes into sb (msgpack_sbuffer_destroy after), and pk on sb. */
static void pack_state(msgpack_sbuffer *sb, msgpack_packer *pk)
{
	msgpack_sbuffer_init(sb);
	msgpack_packer_init(pk, sb, msgpack_sbuffer_write);
	ledger_pack(l, pk);
}

Test(ledger, snapshot_with_bytes_after_the_map_is_rejected)
{
	three_accounts();
	msgpack_sbuffer sb;
	msgpack_packer pk;
	pack_state(&sb, &pk);
	msgpack_pack_nil(&pk);
	ledger_t *copy = ledger_new();
	cr_assert_eq(ledger_unpack(copy, sb.data, sb.size), -EINVAL);
	ledger_free(copy);
	copy = ledger_new();
	cr_assert_eq(ledger_unpack(copy, sb.data, sb.size - 1), 0, "without the extra byte");
	cr_assert_eq(ledger_account_count(copy), 3);
	ledger_free(copy);
	msgpack_sbuffer_destroy(&sb);
}

Test(ledger, snapshot_with_a_duplicate_or_malformed_entry_is_rejected)
{
	three_accounts();
	reissue_keyed(A3, "k1");
	reissue_keyed(A3, "k2");
	void (*edits[])(msgpack_object *) = {
		second_account_takes_first_number, second_account_takes_first_email,
		second_key_takes_first_key, email_gets_upper_case, pwhash_gets_a_nul,
	};
	int rc;
	ledger_t *copy = copy_edited(&rc, LEDGER_KEYS_MAX, NULL);
	cr_assert_eq(rc, 0, "the unedited snapshot loads");
	ledger_free(copy);
	for (size_t i = 0; i < sizeof(edits) / sizeof(edits[0]); i++) {
		copy = copy_edited(&rc, LEDGER_KEYS_MAX, edits[i]);
		cr_assert_eq(rc, -EINVAL, "edit %zu", i);
		ledger_free(copy);
	}
}

Test(ledger, snapshot_with_more_keys_than_kept_keeps_the_newest)
{
	open_acct(A3, "three@example.com", "c");
	const char *keys[] = { "a", "b", "c", "d", "e" };
	for (size_t i = 0; i < 5; i++)
		reissue_keyed(A3, keys[i]);
	int rc;
	ledger_t *copy = copy_edited(&rc, 3, NULL);
	cr_assert_eq(rc, 0);
	char order[64] = "";
	ledger_each_key(copy, collect_key, order);
	cr_assert_str_eq(order, "c,d,e,");
	cr_assert_null(ledger_find_key(copy, "b", 1));
	cr_assert_eq(ledger_find_key(copy, "e", 1)->seq, ledger_find_key(l, "e", 1)->seq);
	ledger_event_t ev = next_event(LEDGER_EV_CODE_REISSUED, 0);
	ev.account = A3;
	set_key(&ev, "f", 0x33);
	cr_assert_eq(ledger_check_event(copy, &ev), PROTO_OK);
	cr_assert_eq(ledger_apply(copy, &ev, NULL), 0);
	order[0] = '\0';
	ledger_each_key(copy, collect_key, order);
	cr_assert_str_eq(order, "d,e,f,", "the loaded ring evicts in order");
	ledger_free(copy);
}

/* Emails are hashed 8 bytes at a time: every length and case position. */
Test(ledger, email_lookup_folds_ascii_at_every_position)
{
	char email[64], query[64];
	for (int n = 3; n <= 40; n++) {
		memset(email, 'a' + n % 26, (size_t)n);
		email[n / 2] = '@';
		email[n] = '\0';
		open_acct(A1 + (uint64_t)n, email, "c");
	}
	for (int n = 3; n <= 40; n++) {
		const char *stored = id_of(ledger_find(l, A1 + (uint64_t)n));
		cr_assert_eq(strlen(stored), (size_t)n);
		for (int i = 0; i < n; i++) {
			memcpy(query, stored, (size_t)n);
			query[i] = (char)(query[i] == '@' ? '@' : query[i] - 'a' + 'A');
			const ledger_account_t *a = ledger_find_email(l, query, (size_t)n);
			cr_assert_not_null(a, "length %d, upper case at %d", n, i);
			cr_assert_eq(a->number, A1 + (uint64_t)n);
		}
		cr_assert_null(ledger_find_email(l, stored, (size_t)n - 1));
	}
	open_acct(A2, "j\xc3\xb6rg@example.com", "c"); /* jörg: only ASCII folds */
	cr_assert_not_null(ledger_find_email(l, "J\xc3\xb6RG@EXAMPLE.COM", 17));
	cr_assert_null(ledger_find_email(l, "j\xc3\x96rg@example.com", 17), "Ö is not ö");
}

/* Strings live in chunks: many accounts fill several, none moves. */
Test(ledger, account_strings_stay_put_as_accounts_are_added, .timeout = 60)
{
	enum { N = 20000 };
	char email[64];
	open_acct(A1, "first@example.com", "c");
	const ledger_account_t *first = ledger_find(l, A1);
	const uint8_t *first_rec = first->rec;
	for (uint64_t i = 1; i < N; i++) {
		ledger_event_t ev = next_event(LEDGER_EV_ACCOUNT_OPENED, 0);
		ev.account = A1 + i;
		snprintf(ev.email, sizeof(ev.email), "customer.%07" PRIu64 "@example.com", i);
		snprintf(ev.pwhash, sizeof(ev.pwhash),
			 "$argon2id$v=19$m=65536,t=2,p=1$%022" PRIu64 "$%043" PRIu64, i, i);
		ev.amount = LEDGER_OPEN_BALANCE;
		cr_assert_eq(ledger_apply(l, &ev, NULL), 0);
	}
	first = ledger_find(l, A1);
	cr_assert_eq(first->rec, first_rec, "strings are never moved");
	cr_assert_str_eq(id_of(first), "first@example.com");
	char pwhash[LEDGER_PWHASH_BYTES_MAX];
	for (uint64_t i = 1; i < N; i++) {
		snprintf(email, sizeof(email), "customer.%07" PRIu64 "@example.com", i);
		snprintf(pwhash, sizeof(pwhash), "$argon2id$v=19$m=65536,t=2,p=1$%022" PRIu64
			 "$%043" PRIu64, i, i);
		const ledger_account_t *a = ledger_find_email(l, email, strlen(email));
		cr_assert_not_null(a);
		cr_assert_eq(a->number, A1 + i);
		cr_assert_str_eq(pw_of(l, a), pwhash);
	}
	int rc;
	ledger_t *copy = copy_edited(&rc, LEDGER_KEYS_MAX, NULL);
	cr_assert_eq(rc, 0);
	cr_assert_eq(ledger_account_count(copy), N);
	ledger_each_account(l, compare_account, copy);
	ledger_free(copy);
}

Test(ledger, email_lower_cased)
{
	char out[LEDGER_EMAIL_BYTES_MAX + 1];
	cr_assert(ledger_email_valid("John.Doe@Example.COM", 20, out));
	cr_assert_str_eq(out, "john.doe@example.com");
	cr_assert(ledger_email_valid("J\xc3\x89@x.org", 9, out), "UTF-8 letters are allowed");
	cr_assert_str_eq(out, "j\xc3\x89@x.org", "only ASCII is folded");
	cr_assert(ledger_email_valid("a@b", 3, NULL), "out may be NULL");
}

Test(ledger, event_from_cmd_open_then_withdraw)
{
	uint8_t h[LEDGER_CODE_HASH_BYTES];
	code_hash("c0de", h);
	ledger_cmd_t cmd = { .op = PROTO_OP_OPEN_ACCOUNT, .email = "Ann@Example.COM",
			     .email_len = 15, .has_key = true, .key = "k-1", .key_len = 3 };
	memset(cmd.fp, 7, LEDGER_FP_BYTES);
	ledger_inputs_t in = { .ts_ms = T0, .account = A1, .pwhash = "$argon2id$fake",
			       .code_hash = h };
	ledger_event_t ev;
	ledger_event_from_cmd(l, &cmd, &in, &ev);
	cr_assert_eq(ev.type, LEDGER_EV_ACCOUNT_OPENED);
	cr_assert_eq(ev.seq, 1);
	cr_assert_eq(ev.ts_ms, T0);
	cr_assert_eq(ev.account, A1);
	cr_assert_eq(ev.amount, LEDGER_OPEN_BALANCE);
	cr_assert_str_eq(ev.email, "ann@example.com", "stored lower-cased");
	cr_assert_str_eq(ev.pwhash, "$argon2id$fake");
	cr_assert_eq(memcmp(ev.code_hash, h, sizeof(h)), 0);
	cr_assert(ev.has_key && ev.key_len == 3 && strcmp(ev.key, "k-1") == 0);
	cr_assert_eq(ev.fp[0], 7);
	apply_ok(&ev, NULL);
	verify_acct(A1);

	ledger_cmd_t wd = { .op = PROTO_OP_WITHDRAW, .account = A1, .account_valid = true,
			    .amount = 2500 };
	ledger_inputs_t later = { .ts_ms = T0 + 1 };
	ledger_event_from_cmd(l, &wd, &later, &ev);
	cr_assert_eq(ev.type, LEDGER_EV_MONEY_WITHDRAWN);
	cr_assert_eq(ev.seq, 3);
	cr_assert(!ev.has_key);
	cr_assert(ev.has_balance, "a withdrawal records the balance after it");
	cr_assert_eq(ev.balance, LEDGER_OPEN_BALANCE - 2500);
	apply_ok(&ev, NULL);
	cr_assert_eq(ledger_find(l, A1)->balance, LEDGER_OPEN_BALANCE - 2500);
}

Test(ledger, event_from_cmd_reissue_and_transfer)
{
	open_acct(A1, "a@x.org", "one");
	open_acct(A2, "b@x.org", "two");
	uint8_t h[LEDGER_CODE_HASH_BYTES];
	code_hash("three", h);
	ledger_cmd_t re = { .op = PROTO_OP_REISSUE_CODE, .account = A2, .account_valid = true };
	ledger_inputs_t in = { .ts_ms = ledger_last_ts(l), .code_hash = h };
	ledger_event_t ev;
	cr_assert_eq(ledger_check(l, &re, NULL), PROTO_OK);
	ledger_event_from_cmd(l, &re, &in, &ev);
	cr_assert_eq(ev.type, LEDGER_EV_CODE_REISSUED);
	apply_ok(&ev, NULL);
	cr_assert_eq(memcmp(ledger_find(l, A2)->code_hash, h, sizeof(h)), 0);

	verify_acct(A1);
	verify_acct(A2);
	ledger_cmd_t tr = { .op = PROTO_OP_TRANSFER, .account = A1, .account_valid = true,
			    .to = A2, .to_valid = true, .amount = 100 };
	cr_assert_eq(ledger_check(l, &tr, NULL), PROTO_OK);
	ledger_event_from_cmd(l, &tr, &in, &ev);
	cr_assert_eq(ev.type, LEDGER_EV_MONEY_TRANSFERRED);
	cr_assert(ev.account == A1 && ev.to == A2 && ev.amount == 100 && !ev.has_balance);
	apply_ok(&ev, NULL);
	cr_assert_eq(ledger_find(l, A2)->balance, LEDGER_OPEN_BALANCE + 100);
}

/* A replication takeover record moves seq and time and nothing else. */
Test(ledger, primary_changed_changes_no_balance)
{
	three_accounts();
	transfer_at(A1, A2, 250, 0);
	int64_t total = ledger_total_balance(l);
	ledger_event_t ev = takeover("standby-b");
	ev.ts_ms = ledger_last_ts(l) + 5;
	ledger_result_t res = { .balance = -1 };
	apply_ok(&ev, &res);
	cr_assert_eq(res.balance, 0);
	cr_assert_eq(ledger_last_ts(l), ev.ts_ms);
	cr_assert_eq(ledger_total_balance(l), total);
	cr_assert_eq(ledger_account_count(l), 3);
	cr_assert_eq(ledger_find(l, A1)->balance, LEDGER_OPEN_BALANCE - 250);
	cr_assert_eq(ledger_find(l, A2)->balance, LEDGER_OPEN_BALANCE + 250);
	cr_assert_eq(transfer_at(A2, A1, 50, 0), LEDGER_OPEN_BALANCE + 200, "commands go on");
}

Test(ledger, primary_changed_rules)
{
	ledger_event_t ev = takeover("");
	cr_assert_eq(ledger_check_event(l, &ev), PROTO_E_BAD_REQUEST, "empty node");
	ev = takeover("n");
	memset(ev.node, 'n', sizeof(ev.node));
	cr_assert_eq(ledger_check_event(l, &ev), PROTO_E_BAD_REQUEST, "node not terminated");
	ev = takeover("n");
	set_key(&ev, "k1", 1);
	cr_assert_eq(ledger_check_event(l, &ev), PROTO_E_BAD_REQUEST, "a takeover has no key");
	ev = takeover("n");
	ev.seq++;
	cr_assert_eq(ledger_check_event(l, &ev), PROTO_E_BAD_REQUEST, "a gap");
	ev = takeover("a");
	apply_ok(&ev, NULL);
	ev = takeover("b");
	ev.ts_ms = ledger_last_ts(l) - 1;
	cr_assert_eq(ledger_check_event(l, &ev), PROTO_E_BAD_REQUEST, "time goes back");
	ev = takeover("b");
	apply_ok(&ev, NULL);
	cr_assert_eq(ledger_last_seq(l), 2, "two takeovers in a row");
}

/* ---- the atomic batch check (ledger_batch.c) ---- */

static ledger_cmd_t batch_key(ledger_cmd_t c, const char *key, uint8_t fp_byte)
{
	c.has_key = true;
	c.key = key;
	c.key_len = strlen(key);
	memset(c.fp, fp_byte, sizeof(c.fp));
	return c;
}

Test(ledger, batch_checks_each_against_the_ones_before)
{
	three_accounts();
	uint64_t last = ledger_last_seq(l);
	int64_t b1 = ledger_find(l, A1)->balance, b2 = ledger_find(l, A2)->balance;
	uint32_t bad;
	/* A1's funds run out only because of the items before */
	ledger_cmd_t funds[] = { cmd_transfer(A1, A2, b1 - 10), cmd_transfer(A1, A2, 10),
				 cmd_transfer(A1, A2, 1) };
	cr_assert_eq(ledger_check_batch(l, funds, 3, &bad), PROTO_E_INSUFFICIENT_FUNDS);
	cr_assert_eq(bad, 2);
	cr_assert_eq(ledger_check_batch(l, funds, 2, &bad), PROTO_OK);
	cr_assert_eq(bad, UINT32_MAX);
	/* A2 may pass on what the batch gave it */
	ledger_cmd_t onward[] = { cmd_transfer(A1, A2, b1), cmd_transfer(A2, A1, b1 + b2) };
	cr_assert_eq(ledger_check_batch(l, onward, 2, &bad), PROTO_OK);
	/* the other rules, in a single transfer's order */
	ledger_cmd_t rules[] = { cmd_transfer(A1, A2, 1), cmd_transfer(A1, A3, 1) };
	cr_assert_eq(ledger_check_batch(l, rules, 2, &bad), PROTO_E_NOT_VERIFIED);
	cr_assert_eq(bad, 1);
	/* nothing was applied */
	cr_assert_eq(ledger_last_seq(l), last);
	cr_assert_eq(ledger_find(l, A1)->balance, b1);
}

Test(ledger, batch_keys_in_the_batch_and_in_the_state)
{
	three_accounts();
	uint32_t bad;
	/* the same key twice in the batch, same fingerprint: a retry, no funds needed twice */
	int64_t b1 = ledger_find(l, A1)->balance;
	ledger_cmd_t retry[] = { batch_key(cmd_transfer(A1, A2, b1), "k", 1),
				 batch_key(cmd_transfer(A1, A2, b1), "k", 1) };
	cr_assert_eq(ledger_check_batch(l, retry, 2, &bad), PROTO_OK);
	ledger_cmd_t conflict[] = { batch_key(cmd_transfer(A1, A2, 5), "k", 1),
				    batch_key(cmd_transfer(A1, A2, 6), "k", 2) };
	cr_assert_eq(ledger_check_batch(l, conflict, 2, &bad), PROTO_E_KEY_CONFLICT);
	cr_assert_eq(bad, 1);
	/* a key the state holds: a retry passes whatever the funds, another is a conflict */
	ledger_event_t ev = next_event(LEDGER_EV_MONEY_TRANSFERRED, T0);
	ev.account = A1;
	ev.to = A2;
	ev.amount = b1;
	set_key(&ev, "held", 3);
	apply_ok(&ev, NULL);
	ledger_cmd_t again[] = { batch_key(cmd_transfer(A1, A2, b1), "held", 3) };
	cr_assert_eq(ledger_check_batch(l, again, 1, &bad), PROTO_OK);
	ledger_cmd_t other[] = { cmd_transfer(A2, A1, 1), batch_key(cmd_transfer(A1, A2, 1), "held", 4) };
	cr_assert_eq(ledger_check_batch(l, other, 2, &bad), PROTO_E_KEY_CONFLICT);
	cr_assert_eq(bad, 1);
}

/* ---- sealed emails and erasure (issue 16 item 1) ---- */

#define S1 1000000000000101ULL
#define S2 1000000000000102ULL

static void open_sealed(uint64_t number, uint8_t hash_byte)
{
	ledger_event_t ev = next_event(LEDGER_EV_ACCOUNT_OPENED, 0);
	ev.account = number;
	ev.has_email_hash = true;
	memset(ev.email_hash, hash_byte, LEDGER_EMAIL_HASH_BYTES);
	ev.email_enc_len = LEDGER_SEALED_BYTES_MIN + 10;
	memset(ev.email_enc, 0xab, ev.email_enc_len);
	snprintf(ev.pwhash, sizeof(ev.pwhash), "$argon2id$v=19$m=8,t=1,p=1$fake");
	ev.amount = LEDGER_OPEN_BALANCE;
	code_hash("c", ev.code_hash);
	apply_ok(&ev, NULL);
}

static ledger_cmd_t erase_cmd(uint64_t number, bool force)
{
	ledger_cmd_t c = { .op = PROTO_OP_ERASE_ACCOUNT, .account = number, .account_valid = true,
	                   .force = force };
	return c;
}

static void erase_ok(uint64_t number)
{
	ledger_event_t ev = next_event(LEDGER_EV_ACCOUNT_ERASED, 0);
	ev.account = number;
	apply_ok(&ev, NULL);
}

Test(ledger, sealed_account_erased_releases_its_email)
{
	char id[LEDGER_EMAIL_ID_CHARS + 1];
	uint8_t h[LEDGER_EMAIL_HASH_BYTES];
	memset(h, 0x5e, sizeof(h));
	ledger_email_id(h, id);
	open_sealed(S1, 0x5e);
	const ledger_account_t *a = ledger_find(l, S1);
	cr_assert(a && sealed_len(a) == LEDGER_SEALED_BYTES_MIN + 10);
	cr_assert_eq(a->opened_seq, ledger_last_seq(l));
	cr_assert_str_eq(id_of(a), id, "the identity is the hash's hex");
	ledger_cmd_t open = { .op = PROTO_OP_OPEN_ACCOUNT, .email = "x@y.z", .email_len = 5,
	                      .email_id = id };
	cr_assert_eq(ledger_check(l, &open, NULL), PROTO_E_ALREADY_EXISTS);
	ledger_cmd_t c = erase_cmd(S2, false);
	cr_assert_eq(ledger_check(l, &c, NULL), PROTO_E_NOT_FOUND);
	c = erase_cmd(S1, false);
	cr_assert_eq(ledger_check(l, &c, NULL), PROTO_E_BALANCE_NOT_ZERO);
	c = erase_cmd(S1, true);
	cr_assert_eq(ledger_check(l, &c, NULL), PROTO_OK);
	int64_t total = ledger_total_balance(l);
	erase_ok(S1);
	a = ledger_find(l, S1);
	cr_assert(a->erased && sealed_len(a) == 0 && id_of(a)[0] == '\0');
	cr_assert_eq(a->balance, LEDGER_OPEN_BALANCE, "the money stays");
	cr_assert_eq(ledger_total_balance(l), total);
	cr_assert_eq(ledger_check(l, &c, NULL), PROTO_E_ALREADY_ERASED);
	ledger_event_t again = next_event(LEDGER_EV_ACCOUNT_ERASED, 0);
	again.account = S1;
	cr_assert_eq(ledger_check_event(l, &again), PROTO_E_ALREADY_ERASED);
	cr_assert_eq(ledger_check(l, &open, NULL), PROTO_OK, "the email may open again");
	open_sealed(S2, 0x5e);
	cr_assert_eq(ledger_find_email(l, id, LEDGER_EMAIL_ID_CHARS), ledger_find(l, S2));
}

Test(ledger, plain_account_erased_and_both_shapes_in_a_snapshot)
{
	open_acct(A1, "plain@old.example", "c1");
	open_sealed(S1, 0x11);
	open_sealed(S2, 0x22);
	ledger_cmd_t open = { .op = PROTO_OP_OPEN_ACCOUNT, .email = "PLAIN@old.example",
	                      .email_len = 17 };
	cr_assert_eq(ledger_check(l, &open, NULL), PROTO_E_ALREADY_EXISTS);
	erase_ok(A1);
	erase_ok(S1);
	cr_assert_eq(ledger_check(l, &open, NULL), PROTO_OK);
	cr_assert_null(ledger_find_email(l, "plain@old.example", 17));

	msgpack_sbuffer sb;
	msgpack_packer pk;
	msgpack_sbuffer_init(&sb);
	msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
	ledger_pack(l, &pk);
	cr_assert_null(memmem(sb.data, sb.size, "plain@old.example", 17),
	               "no plain email of an erased account in a snapshot");
	msgpack_sbuffer_destroy(&sb);

	int rc;
	ledger_t *copy = copy_through_snapshot(&rc, 0);
	cr_assert_eq(rc, 0);
	const ledger_account_t *p = ledger_find(copy, A1), *s1 = ledger_find(copy, S1),
	                       *s2 = ledger_find(copy, S2), *o2 = ledger_find(l, S2);
	cr_assert(p && p->erased && id_of(p)[0] == '\0' && sealed_len(p) == 0);
	cr_assert(s1 && s1->erased && sealed_len(s1) == 0);
	uint8_t a2[LEDGER_SEALED_BYTES_MAX], b2[LEDGER_SEALED_BYTES_MAX];
	size_t n2 = ledger_account_sealed(o2, b2);
	cr_assert(s2 && !s2->erased && ledger_account_sealed(s2, a2) == n2 && n2 > 0);
	cr_assert_eq(memcmp(a2, b2, n2), 0);
	cr_assert_eq(s2->opened_seq, o2->opened_seq);
	cr_assert_eq(ledger_find_email(copy, id_of(s2), strlen(id_of(s2))), s2);
	ledger_free(copy);
}

/* ---- the packed account record (ledger_record.c, docs/performance.md's memory row) ---- */

/* Opens a sealed account whose sealed email starts with nonce (NULL: the derived one). */
static void open_sealed_with(uint64_t number, const uint8_t *nonce, const char *pwhash)
{
	ledger_event_t ev = next_event(LEDGER_EV_ACCOUNT_OPENED, 0);
	ev.account = number;
	ev.has_email_hash = true;
	memset(ev.email_hash, (int)(number & 0xff), LEDGER_EMAIL_HASH_BYTES);
	ev.email_enc_len = LEDGER_SEALED_BYTES_MIN + 20;
	for (size_t i = 0; i < ev.email_enc_len; i++)
		ev.email_enc[i] = (uint8_t)(i * 7 + number);
	if (nonce)
		memcpy(ev.email_enc, nonce, LEDGER_NONCE_BYTES);
	else
		ledger_sealed_nonce(number, ev.seq, ev.email_enc);
	snprintf(ev.pwhash, sizeof(ev.pwhash), "%s", pwhash);
	ev.amount = LEDGER_OPEN_BALANCE;
	code_hash("c", ev.code_hash);
	apply_ok(&ev, NULL);
	uint8_t back[LEDGER_SEALED_BYTES_MAX];
	cr_assert_eq(ledger_account_sealed(ledger_find(l, number), back), ev.email_enc_len);
	cr_assert_eq(memcmp(back, ev.email_enc, ev.email_enc_len), 0,
	             "the sealed email reads back as the event held it");
}

Test(ledger, sealed_nonce_is_account_and_seq)
{
	uint8_t n[LEDGER_NONCE_BYTES];
	ledger_sealed_nonce(0x0102030405060708ULL, 0x1112131415161718ULL, n);
	const uint8_t want[LEDGER_NONCE_BYTES] = { 1, 2, 3, 4, 5, 6, 7, 8, 0x11, 0x12, 0x13, 0x14,
	                                           0x15, 0x16, 0x17, 0x18 };
	cr_assert_eq(memcmp(n, want, sizeof(want)), 0);
}

Test(ledger, derived_and_random_nonces_both_read_back_and_survive_a_snapshot)
{
	uint8_t random_nonce[LEDGER_NONCE_BYTES];
	memset(random_nonce, 0x9c, sizeof(random_nonce));
	open_sealed_with(S1, NULL, "$argon2id$v=19$m=65536,t=2,p=1$mv9EbWS4Vpkkttenp40RXw$owJb34pcCZzauJxvSZ1x8V35URCZ9DNWCqa+vlMcYgg");
	open_sealed_with(S2, random_nonce, "$argon2id$v=19$m=8,t=1,p=1$fake");
	cr_assert(ledger_find(l, S1)->seal_flags & LEDGER_SEAL_NONCE_DERIVED, "a derived nonce is not kept");
	cr_assert_not(ledger_find(l, S2)->seal_flags & LEDGER_SEAL_NONCE_DERIVED,
	              "a random nonce (older events) is kept");
	int rc;
	ledger_t *copy = copy_through_snapshot(&rc, 0);
	cr_assert_eq(rc, 0);
	ledger_each_account(l, compare_account, copy);
	cr_assert(ledger_find(copy, S1)->seal_flags & LEDGER_SEAL_NONCE_DERIVED);
	ledger_free(copy);
	erase_ok(S1);
	uint8_t back[LEDGER_SEALED_BYTES_MAX];
	cr_assert_eq(ledger_account_sealed(ledger_find(l, S1), back), 0);
	cr_assert_str_eq(pw_of(l, ledger_find(l, S1)), "$argon2id$v=19$m=65536,t=2,p=1$mv9EbWS4Vpkkttenp40RXw$owJb34pcCZzauJxvSZ1x8V35URCZ9DNWCqa+vlMcYgg",
	                 "the password hash outlives the erasure");
}

Test(ledger, password_hashes_read_back_exactly_whatever_their_shape)
{
	static const char *const hashes[] = {
		"$argon2id$v=19$m=65536,t=2,p=1$mv9EbWS4Vpkkttenp40RXw$owJb34pcCZzauJxvSZ1x8V35URCZ9DNWCqa+vlMcYgg",
		"$argon2id$v=19$m=8,t=1,p=1$PjUSPKK74HNVh0w4FRgV9g$H8oq0ojCxHLz4hSSmsIY1m+Xer1J2NpDQjOT8cROz9c",
		/* not canonical: the salt's last character has bits that decoding drops */
		"$argon2id$v=19$m=8,t=1,p=1$PjUSPKK74HNVh0w4FRgV9h$H8oq0ojCxHLz4hSSmsIY1m+Xer1J2NpDQjOT8cROz9c",
		"$argon2id$v=19$m=8,t=1,p=1$PjUSPKK74HNVh0w4FRgV9g$H8oq0ojCxHLz4hSSmsIY1m+Xer1J2NpDQjOT8cROz9",
		"$argon2id$v=19$m=8,t=1,p=1$PjUSPKK74HNVh0w4FRgV9g=$H8oq0ojCxHLz4hSSmsIY1m+Xer1J2NpDQjOT8cROz9c",
		"$argon2i$v=19$m=8,t=1,p=1$PjUSPKK74HNVh0w4FRgV9g$H8oq0ojCxHLz4hSSmsIY1m+Xer1J2NpDQjOT8cROz9c",
		"$argon2id$v=19$m=8,t=1,p=1$fake",
		"$PjUSPKK74HNVh0w4FRgV9g$H8oq0ojCxHLz4hSSmsIY1m+Xer1J2NpDQjOT8cROz9c",
		"x",
	};
	size_t n = sizeof(hashes) / sizeof(hashes[0]);
	for (size_t i = 0; i < n; i++)
		open_sealed_with(S1 + i, NULL, hashes[i]);
	/* more parameter strings than the ledger interns: the rest kept whole */
	char many[LEDGER_PWHASH_BYTES_MAX];
	for (int m = 0; m < 40; m++) {
		snprintf(many, sizeof(many), "$argon2id$v=19$m=%d,t=1,p=1$PjUSPKK74HNVh0w4FRgV9g$"
		         "H8oq0ojCxHLz4hSSmsIY1m+Xer1J2NpDQjOT8cROz9c", 1000 + m);
		open_sealed_with(1000000000000300ULL + (uint64_t)m, NULL, many);
	}
	for (size_t i = 0; i < n; i++)
		cr_assert_str_eq(pw_of(l, ledger_find(l, S1 + i)), hashes[i]);
	for (int m = 0; m < 40; m++) {
		snprintf(many, sizeof(many), "$argon2id$v=19$m=%d,t=1,p=1$PjUSPKK74HNVh0w4FRgV9g$"
		         "H8oq0ojCxHLz4hSSmsIY1m+Xer1J2NpDQjOT8cROz9c", 1000 + m);
		cr_assert_str_eq(pw_of(l, ledger_find(l, 1000000000000300ULL + (uint64_t)m)), many);
	}
	int rc;
	ledger_t *copy = copy_through_snapshot(&rc, 0);
	cr_assert_eq(rc, 0);
	ledger_each_account(l, compare_account, copy);
	ledger_free(copy);
}

/* ---- a sealed store: the sealed emails kept outside the ledger's memory ---- */

typedef struct {
	uint8_t bytes[4096];
	size_t used;
	unsigned puts, wipes;
	bool full, broken;
} fake_store_t;

static uint64_t fake_put(void *arg, const uint8_t *p, size_t n)
{
	fake_store_t *s = arg;
	if (s->full || s->used + n > sizeof(s->bytes))
		return 0;
	memcpy(s->bytes + s->used, p, n);
	s->used += n;
	s->puts++;
	return s->used - n + 1;
}

static int fake_get(void *arg, uint64_t ref, uint8_t *out, size_t n)
{
	fake_store_t *s = arg;
	if (s->broken)
		return -EIO;
	memcpy(out, s->bytes + ref - 1, n);
	return 0;
}

static void fake_wipe(void *arg, uint64_t ref, size_t n)
{
	fake_store_t *s = arg;
	memset(s->bytes + ref - 1, 0, n);
	s->wipes++;
}

Test(ledger, a_sealed_store_keeps_the_sealed_emails_and_gives_them_back)
{
	static fake_store_t fs;
	memset(&fs, 0, sizeof(fs));
	ledger_sealed_store_t store = { .arg = &fs, .put = fake_put, .get = fake_get,
	                                .wipe = fake_wipe };
	ledger_set_sealed_store(l, &store);
	uint8_t random_nonce[LEDGER_NONCE_BYTES];
	memset(random_nonce, 0x77, sizeof(random_nonce));
	open_acct(A1, "plain@old.example", "c"); /* plain: nothing to store */
	cr_assert_eq(fs.puts, 0);
	const uint64_t nums[] = { S1, S2 };
	const uint8_t *nonces[] = { NULL, random_nonce };
	uint8_t want[2][LEDGER_SEALED_BYTES_MAX];
	size_t want_len[2];
	for (int i = 0; i < 2; i++) {
		ledger_event_t e = next_event(LEDGER_EV_ACCOUNT_OPENED, 0);
		e.account = nums[i];
		e.has_email_hash = true;
		memset(e.email_hash, 0x30 + i, LEDGER_EMAIL_HASH_BYTES);
		e.email_enc_len = LEDGER_SEALED_BYTES_MIN + 5;
		for (size_t k = 0; k < e.email_enc_len; k++)
			e.email_enc[k] = (uint8_t)(k + 3 * i);
		if (nonces[i])
			memcpy(e.email_enc, nonces[i], LEDGER_NONCE_BYTES);
		else
			ledger_sealed_nonce(e.account, e.seq, e.email_enc);
		snprintf(e.pwhash, sizeof(e.pwhash), "$argon2id$v=19$m=8,t=1,p=1$fake");
		e.amount = LEDGER_OPEN_BALANCE;
		code_hash("c", e.code_hash);
		apply_ok(&e, NULL);
		memcpy(want[i], e.email_enc, e.email_enc_len);
		want_len[i] = e.email_enc_len;
	}
	cr_assert_eq(fs.puts, 2, "each sealed email went to the store");
	cr_assert_eq(fs.used, want_len[0] - LEDGER_NONCE_BYTES + want_len[1],
	             "a derived nonce is not stored, a random one is");
	uint8_t got[LEDGER_SEALED_BYTES_MAX];
	for (int i = 0; i < 2; i++) {
		const ledger_account_t *a = ledger_find(l, nums[i]);
		cr_assert(a->seal_flags & LEDGER_SEAL_STORED);
		cr_assert_eq(ledger_account_sealed_in(l, a, got), (long)want_len[i]);
		cr_assert_eq(memcmp(got, want[i], want_len[i]), 0);
	}
	/* a snapshot holds them whole; a ledger without a store keeps them in memory */
	int rc;
	ledger_t *copy = copy_through_snapshot(&rc, 0);
	cr_assert_eq(rc, 0);
	for (int i = 0; i < 2; i++) {
		const ledger_account_t *b = ledger_find(copy, nums[i]);
		cr_assert_not(b->seal_flags & LEDGER_SEAL_STORED);
		cr_assert_eq(ledger_account_sealed(b, got), want_len[i]);
		cr_assert_eq(memcmp(got, want[i], want_len[i]), 0);
	}
	ledger_free(copy);
	fs.broken = true;
	cr_assert_eq(ledger_account_sealed_in(l, ledger_find(l, S1), got), -EIO);
	fs.broken = false;
	erase_ok(S2);
	cr_assert_eq(fs.wipes, 1, "an erased account's sealed email is wiped in the store");
	cr_assert_eq(ledger_account_sealed_in(l, ledger_find(l, S2), got), 0);
	static const uint8_t zero[LEDGER_SEALED_BYTES_MAX];
	cr_assert_eq(memcmp(fs.bytes + want_len[0] - LEDGER_NONCE_BYTES, zero, want_len[1]), 0);
	/* a store that cannot take one: kept in memory */
	fs.full = true;
	open_sealed_with(S2 + 10, NULL, "$argon2id$v=19$m=8,t=1,p=1$fake");
	cr_assert_not(ledger_find(l, S2 + 10)->seal_flags & LEDGER_SEAL_STORED);
}

Test(ledger, packed_password_hashes_agree_with_libsodiums_base64)
{
	char salt[32], hash[64], pwhash[LEDGER_PWHASH_BYTES_MAX];
	uint8_t bytes[48];
	for (uint64_t i = 0; i < 200; i++) {
		randombytes_buf(bytes, sizeof(bytes));
		sodium_bin2base64(salt, sizeof(salt), bytes, 16, sodium_base64_VARIANT_ORIGINAL_NO_PADDING);
		sodium_bin2base64(hash, sizeof(hash), bytes + 16, 32,
		                  sodium_base64_VARIANT_ORIGINAL_NO_PADDING);
		snprintf(pwhash, sizeof(pwhash), "$argon2id$v=19$m=65536,t=2,p=1$%s$%s", salt, hash);
		open_sealed_with(1000000000000500ULL + i, NULL, pwhash);
		const ledger_account_t *a = ledger_find(l, 1000000000000500ULL + i);
		cr_assert(a->pw_prefix != 0, "kept in binary");
		cr_assert_str_eq(pw_of(l, a), pwhash);
	}
}

/* ---- snapshot version 3: compact forms, and version 2 still loads ---- */

#define V3_ACCOUNTS 6

/* Opens a sealed account the way the resolver does: a real-shaped argon2id
 * string (Base64 of random salt and hash, two parameter sets) and the
 * sealed email under the nonce derived from (number, seq). */
static void open_sealed_real(uint64_t number, int i)
{
	ledger_event_t ev = next_event(LEDGER_EV_ACCOUNT_OPENED, 0);
	uint8_t salt[16], hash[32];
	char salt64[32], hash64[64];
	ev.account = number;
	ev.has_email_hash = true;
	randombytes_buf(ev.email_hash, LEDGER_EMAIL_HASH_BYTES);
	ev.email_enc_len = LEDGER_SEALED_BYTES_MIN + (size_t)i;
	ledger_sealed_nonce(number, ev.seq, ev.email_enc);
	randombytes_buf(ev.email_enc + LEDGER_NONCE_BYTES, ev.email_enc_len - LEDGER_NONCE_BYTES);
	randombytes_buf(salt, sizeof(salt));
	randombytes_buf(hash, sizeof(hash));
	sodium_bin2base64(salt64, sizeof(salt64), salt, sizeof(salt),
	                  sodium_base64_VARIANT_ORIGINAL_NO_PADDING);
	sodium_bin2base64(hash64, sizeof(hash64), hash, sizeof(hash),
	                  sodium_base64_VARIANT_ORIGINAL_NO_PADDING);
	snprintf(ev.pwhash, sizeof(ev.pwhash), "$argon2id$v=19$m=%d,t=2,p=1$%s$%s",
	         i % 2 ? 65536 : 19456, salt64, hash64);
	ev.amount = LEDGER_OPEN_BALANCE;
	code_hash("c", ev.code_hash);
	apply_ok(&ev, NULL);
}

/* compare_account for the accounts not erased (an erased one has no email to find). */
static int compare_live_account(const ledger_account_t *a, void *arg)
{
	return a->erased ? 0 : compare_account(a, arg);
}

static void v3_accounts(void)
{
	open_acct(A1, "plain@old.example", "c1");
	for (int i = 0; i < V3_ACCOUNTS; i++)
		open_sealed_real(S1 + (uint64_t)i, i);
	erase_ok(S1 + 2);
}

Test(ledger, snapshot_v3_keeps_compact_forms_and_reads_back)
{
	v3_accounts();
	msgpack_sbuffer sb;
	msgpack_packer pk;
	pack_state(&sb, &pk);
	const ledger_account_t *s = ledger_find(l, S1);
	char hex[LEDGER_EMAIL_ID_CHARS + 1];
	strcpy(hex, id_of(s));
	cr_assert_null(memmem(sb.data, sb.size, hex, LEDGER_EMAIL_ID_CHARS),
	               "a hash identity is written as its bytes, not its hex");
	const char *params = "$argon2id$v=19$m=65536,t=2,p=1$";
	const char *at = memmem(sb.data, sb.size, params, strlen(params));
	cr_assert_not_null(at);
	cr_assert_null(memmem(at + 1, sb.size - (size_t)(at + 1 - sb.data), params, strlen(params)),
	               "the parameters are written once, in pw_prefixes");
	uint8_t nonce[LEDGER_NONCE_BYTES];
	ledger_sealed_nonce(S1 + 1, ledger_find(l, S1 + 1)->opened_seq, nonce);
	cr_assert_null(memmem(sb.data, sb.size, nonce, LEDGER_NONCE_BYTES),
	               "a derived nonce is not written");
	msgpack_sbuffer_destroy(&sb);

	int rc;
	ledger_t *copy = copy_through_snapshot(&rc, 0);
	cr_assert_eq(rc, 0);
	cr_assert_eq(ledger_account_count(copy), V3_ACCOUNTS + 1);
	ledger_each_account(l, compare_live_account, copy);
	cr_assert(ledger_find(copy, S1 + 2)->erased);
	ledger_free(copy);
}

/* The state packed the way version 2 wrote it (hex identities, password
 * hash strings, sealed emails with their nonce, 11 fields, no pw_prefixes). */
static void pack_v2_account(msgpack_packer *pk, const ledger_account_t *a)
{
	uint8_t sealed[LEDGER_SEALED_BYTES_MAX];
	size_t n = ledger_account_sealed(a, sealed);
	msgpack_pack_array(pk, 11);
	msgpack_pack_uint64(pk, a->number);
	const char *id = id_of(a), *pw = pw_of(l, a);
	msgpack_pack_str_with_body(pk, id, strlen(id));
	msgpack_pack_str_with_body(pk, pw, strlen(pw));
	msgpack_pack_bin_with_body(pk, a->code_hash, LEDGER_CODE_HASH_BYTES);
	msgpack_pack_int64(pk, a->balance);
	msgpack_pack_int64(pk, a->opened_at_ms);
	msgpack_pack_int64(pk, a->last_activity_ms);
	a->verified ? msgpack_pack_true(pk) : msgpack_pack_false(pk);
	msgpack_pack_bin_with_body(pk, sealed, n);
	msgpack_pack_uint64(pk, a->opened_seq);
	a->erased ? msgpack_pack_true(pk) : msgpack_pack_false(pk);
}

static int pack_v2_each(const ledger_account_t *a, void *arg)
{
	pack_v2_account(arg, a);
	return 0;
}

static void pack_v2_kv(msgpack_packer *pk, const char *k)
{
	msgpack_pack_str_with_body(pk, k, strlen(k));
}

Test(ledger, snapshot_v2_still_loads)
{
	v3_accounts();
	msgpack_sbuffer sb;
	msgpack_packer pk;
	msgpack_sbuffer_init(&sb);
	msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
	msgpack_pack_map(&pk, 7);
	pack_v2_kv(&pk, "v");
	msgpack_pack_uint64(&pk, 2);
	pack_v2_kv(&pk, "last_seq");
	msgpack_pack_uint64(&pk, ledger_last_seq(l));
	pack_v2_kv(&pk, "last_ts");
	msgpack_pack_int64(&pk, ledger_last_ts(l));
	pack_v2_kv(&pk, "accounts");
	msgpack_pack_array(&pk, (uint32_t)ledger_account_count(l));
	ledger_each_account(l, pack_v2_each, &pk);
	pack_v2_kv(&pk, "keys");
	msgpack_pack_array(&pk, 0);
	pack_v2_kv(&pk, "sums");
	msgpack_pack_array(&pk, 0);
	pack_v2_kv(&pk, "moved");
	msgpack_pack_int64(&pk, 0);
	ledger_t *copy = ledger_new();
	cr_assert_eq(ledger_unpack(copy, sb.data, sb.size), 0);
	cr_assert_eq(ledger_account_count(copy), V3_ACCOUNTS + 1);
	ledger_each_account(l, compare_live_account, copy);
	cr_assert(ledger_find(copy, S1 + 2)->erased);
	ledger_free(copy);
	msgpack_sbuffer_destroy(&sb);
}
