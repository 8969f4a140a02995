/*
 * test_request.c - decoding requests: every bad_request class of PROTOCOL.md,
 * the fingerprint, and the reply packers.
 */
#include "request.h"

#include <criterion/criterion.h>
#include <string.h>

static msgpack_sbuffer sb;
static msgpack_packer pk;
static msgpack_zone zone;
static msgpack_object obj;
static ledger_cmd_t cmd;
static const char *why;

static void setup(void)
{
	msgpack_sbuffer_init(&sb);
	msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
	msgpack_zone_init(&zone, 4096);
}

static void teardown(void)
{
	msgpack_sbuffer_destroy(&sb);
	msgpack_zone_destroy(&zone);
}

TestSuite(request, .init = setup, .fini = teardown);

/* Starts a request map of n entries. */
static void map(uint32_t n)
{
	msgpack_sbuffer_clear(&sb);
	msgpack_pack_map(&pk, n);
}

static void key(const char *k)
{
	msg_pack_str(&pk, k);
}

static void kv_str(const char *k, const char *v)
{
	msg_pack_kv_str(&pk, k, v);
}

static void kv_u64(const char *k, uint64_t v)
{
	msg_pack_kv_u64(&pk, k, v);
}

static void kv_i64(const char *k, int64_t v)
{
	msg_pack_kv_i64(&pk, k, v);
}

/* A request header: id 7 and op; n more entries follow. */
static void req(const char *op, uint32_t n)
{
	map(2 + n);
	kv_u64("id", 7);
	kv_str("op", op);
}

static proto_err_t decode(void)
{
	size_t off = 0;
	cr_assert_eq(msgpack_unpack(sb.data, sb.size, &off, &zone, &obj), MSGPACK_UNPACK_SUCCESS);
	why = NULL;
	proto_err_t e = request_decode(&obj, &cmd, &why);
	if (e != PROTO_OK) {
		cr_assert_not_null(why, "an error must come with a reason");
		cr_assert_gt(strlen(why), 5);
	}
	return e;
}

static void expect_bad(const char *what)
{
	cr_assert_eq(decode(), PROTO_E_BAD_REQUEST, "%s should be bad_request", what);
}

/* ---- id and op ---- */

Test(request, op_names)
{
	for (proto_op_t op = PROTO_OP_OPEN_ACCOUNT; op <= PROTO_OP_PING; op++) {
		const char *name = proto_op_name(op);
		cr_assert_not_null(name);
		cr_assert_eq(proto_op_parse(name, strlen(name)), op);
	}
	cr_assert_eq(proto_op_parse("transfe", 7), PROTO_OP_NONE);
	cr_assert(proto_op_is_command(PROTO_OP_WITHDRAW));
	cr_assert(proto_op_is_command(PROTO_OP_OPEN_ACCOUNT));
	cr_assert_not(proto_op_is_command(PROTO_OP_GET_ACCOUNT));
	cr_assert_not(proto_op_is_command(PROTO_OP_NONE));
}

Test(request, missing_id)
{
	map(1);
	kv_str("op", "ping");
	expect_bad("missing id");
	cr_assert_eq(cmd.id, 0);
}

Test(request, negative_id)
{
	map(2);
	kv_i64("id", -1);
	kv_str("op", "ping");
	expect_bad("negative id");
	cr_assert_eq(cmd.id, 0);
}

Test(request, string_id)
{
	map(2);
	kv_str("id", "7");
	kv_str("op", "ping");
	expect_bad("string id");
}

Test(request, float_id)
{
	map(2);
	key("id");
	msgpack_pack_double(&pk, 7.0);
	kv_str("op", "ping");
	expect_bad("float id");
}

Test(request, missing_op_keeps_id)
{
	map(1);
	kv_u64("id", 42);
	expect_bad("missing op");
	cr_assert_eq(cmd.id, 42, "the id is readable for the error reply");
}

Test(request, non_string_op)
{
	map(2);
	kv_u64("id", 42);
	kv_u64("op", 1);
	expect_bad("integer op");
	map(2);
	kv_u64("id", 42);
	key("op");
	msgpack_pack_bin(&pk, 4);
	msgpack_pack_bin_body(&pk, "ping", 4);
	expect_bad("binary op");
}

Test(request, unknown_op)
{
	req("frobnicate", 0);
	cr_assert_eq(decode(), PROTO_E_UNKNOWN_OP);
	cr_assert_eq(cmd.id, 7);
	uint64_t id;
	proto_op_t op;
	cr_assert_eq(proto_peek(&obj, &id, &op), PROTO_E_UNKNOWN_OP);
	cr_assert_eq(id, 7);
	req("PING", 0);
	cr_assert_eq(decode(), PROTO_E_UNKNOWN_OP, "op names are case-sensitive");
}

Test(request, not_a_map)
{
	msgpack_sbuffer_clear(&sb);
	msgpack_pack_array(&pk, 0);
	size_t off = 0;
	msgpack_unpack(sb.data, sb.size, &off, &zone, &obj);
	cr_assert_eq(request_decode(&obj, &cmd, NULL), PROTO_E_BAD_REQUEST);
}

Test(request, peek_ok_and_ignored_keys)
{
	map(4);
	key("id");
	msgpack_pack_int8(&pk, 9); /* any integer encoding of a value in range */
	msgpack_pack_int(&pk, 5); /* a non-string key is ignored */
	msgpack_pack_int(&pk, 6);
	kv_str("op", "ping");
	kv_str("whatever", "x");
	uint64_t id;
	proto_op_t op;
	size_t off = 0;
	msgpack_unpack(sb.data, sb.size, &off, &zone, &obj);
	cr_assert_eq(proto_peek(&obj, &id, &op), PROTO_OK);
	cr_assert_eq(id, 9);
	cr_assert_eq(op, PROTO_OP_PING);
	cr_assert_eq(request_decode(&obj, &cmd, NULL), PROTO_OK);
}

/* ---- transfer and withdraw ---- */

static void transfer_with_amount(void (*pack_amount)(void))
{
	req("transfer", 3);
	kv_str("from", "1000000000000001");
	kv_str("to", "2000000000000002");
	key("amount");
	pack_amount();
}

static void amount_float(void) { msgpack_pack_double(&pk, 10.0); }
static void amount_string(void) { msgpack_pack_str(&pk, 2); msgpack_pack_str_body(&pk, "10", 2); }
static void amount_nil(void) { msgpack_pack_nil(&pk); }
static void amount_bool(void) { msgpack_pack_true(&pk); }
static void amount_neg(void) { msgpack_pack_int64(&pk, -5); }
static void amount_huge(void) { msgpack_pack_uint64(&pk, UINT64_MAX); }
static void amount_ok(void) { msgpack_pack_uint8(&pk, 250); }

Test(request, transfer_ok)
{
	transfer_with_amount(amount_ok);
	cr_assert_eq(decode(), PROTO_OK);
	cr_assert_eq(cmd.op, PROTO_OP_TRANSFER);
	cr_assert_eq(cmd.id, 7);
	cr_assert(cmd.account_valid && cmd.to_valid);
	cr_assert_eq(cmd.account, 1000000000000001ULL);
	cr_assert_eq(cmd.to, 2000000000000002ULL);
	cr_assert_eq(cmd.amount, 250);
	cr_assert_not(cmd.has_key);
}

Test(request, amount_not_an_integer)
{
	transfer_with_amount(amount_float);
	expect_bad("float amount");
	cr_assert(strstr(why, "integer") != NULL, "message: %s", why);
	transfer_with_amount(amount_string);
	expect_bad("string amount");
	transfer_with_amount(amount_nil);
	expect_bad("nil amount");
	transfer_with_amount(amount_bool);
	expect_bad("bool amount");
	req("transfer", 2);
	kv_str("from", "1000000000000001");
	kv_str("to", "2000000000000002");
	expect_bad("missing amount");
}

Test(request, amount_out_of_range_is_for_the_ledger)
{
	transfer_with_amount(amount_neg);
	cr_assert_eq(decode(), PROTO_OK);
	cr_assert_eq(cmd.amount, -5);
	transfer_with_amount(amount_huge);
	cr_assert_eq(decode(), PROTO_OK);
	cr_assert_gt(cmd.amount, LEDGER_AMOUNT_MAX);
	req("withdraw", 2);
	kv_str("account", "1000000000000001");
	kv_u64("amount", 0);
	cr_assert_eq(decode(), PROTO_OK);
	cr_assert_eq(cmd.amount, 0);
}

Test(request, account_fields_must_be_strings)
{
	req("transfer", 3);
	kv_u64("from", 1000000000000001ULL);
	kv_str("to", "2000000000000002");
	kv_u64("amount", 1);
	expect_bad("integer from");
	req("transfer", 3);
	kv_str("from", "1000000000000001");
	kv_u64("to", 2000000000000002ULL);
	kv_u64("amount", 1);
	expect_bad("integer to");
	req("withdraw", 1);
	kv_u64("amount", 1);
	expect_bad("missing account");
	req("get_account", 1);
	kv_u64("account", 1000000000000001ULL);
	expect_bad("get_account with an integer account");
	req("reissue_code", 0);
	expect_bad("reissue_code without account");
}

Test(request, account_string_of_other_form_is_invalid_not_bad)
{
	const char *forms[] = { "123", "0000000000000001", "10000000000000010", "abcdefghijklmnop",
				"" };
	for (size_t i = 0; i < sizeof(forms) / sizeof(forms[0]); i++) {
		req("get_account", 1);
		kv_str("account", forms[i]);
		cr_assert_eq(decode(), PROTO_OK, "%s", forms[i]);
		cr_assert_not(cmd.account_valid, "%s", forms[i]);
	}
}

Test(request, equal_invalid_accounts_compare_equal)
{
	req("transfer", 3);
	kv_str("from", "xyz");
	kv_str("to", "xyz");
	kv_u64("amount", 1);
	cr_assert_eq(decode(), PROTO_OK);
	cr_assert_eq(cmd.account, cmd.to);
	req("transfer", 3);
	kv_str("from", "xyz");
	kv_str("to", "xyw");
	kv_u64("amount", 1);
	cr_assert_eq(decode(), PROTO_OK);
	cr_assert_neq(cmd.account, cmd.to);
}

/* ---- idempotency key ---- */

static void withdraw_with_key(const char *k, size_t n)
{
	req("withdraw", 3);
	kv_str("account", "1000000000000001");
	kv_u64("amount", 5);
	key("key");
	msg_pack_strn(&pk, k, n);
}

Test(request, key_lengths)
{
	char k[80];
	memset(k, 'k', sizeof(k));
	withdraw_with_key(k, 0);
	expect_bad("empty key");
	withdraw_with_key(k, 65);
	expect_bad("65-byte key");
	withdraw_with_key(k, 64);
	cr_assert_eq(decode(), PROTO_OK);
	cr_assert(cmd.has_key);
	cr_assert_eq(cmd.key_len, 64);
	withdraw_with_key(k, 1);
	cr_assert_eq(decode(), PROTO_OK);
	cr_assert_eq(cmd.key_len, 1);
}

Test(request, key_must_be_a_string)
{
	req("withdraw", 3);
	kv_str("account", "1000000000000001");
	kv_u64("amount", 5);
	kv_u64("key", 5);
	expect_bad("integer key");
	req("withdraw", 3);
	kv_str("account", "1000000000000001");
	kv_u64("amount", 5);
	key("key");
	msgpack_pack_nil(&pk);
	expect_bad("nil key");
}

Test(request, key_on_query_is_ignored)
{
	req("get_account", 2);
	kv_str("account", "1000000000000001");
	kv_u64("key", 5);
	cr_assert_eq(decode(), PROTO_OK);
	cr_assert_not(cmd.has_key);
}

/* ---- open_account: emails and passwords ---- */

static proto_err_t open_with(const char *email, size_t email_n, size_t password_n)
{
	static char pw[2000];
	memset(pw, 'p', sizeof(pw));
	req("open_account", 2);
	key("email");
	msg_pack_strn(&pk, email, email_n);
	key("password");
	msg_pack_strn(&pk, pw, password_n);
	return decode();
}

static void bad_email(const char *email)
{
	cr_assert_eq(open_with(email, strlen(email), 12), PROTO_E_BAD_REQUEST, "email '%s'",
		     email);
}

Test(request, bad_emails)
{
	bad_email("userexample.com");
	bad_email("user@@example.com");
	bad_email("us@er@example.com");
	bad_email("@example.com");
	bad_email("user@");
	bad_email("us er@example.com");
	bad_email("user@example.com ");
	bad_email("user\t@example.com");
	bad_email("user\x01@example.com");
	bad_email("user\x7f@example.com");
	bad_email("user\n@example.com");
	bad_email("a@");
	bad_email("@");
	bad_email("user\xc2\xa0@example.com");    /* U+00A0 no-break space */
	bad_email("user\xe2\x80\x83@example.com"); /* U+2003 em space */
	bad_email("user\xc2\x85@example.com");    /* U+0085 next line */
	bad_email("user\xff@example.com");        /* not UTF-8 */
	cr_assert_eq(open_with("a\0b@c.d", 7, 12), PROTO_E_BAD_REQUEST, "NUL byte");
}

Test(request, email_lengths)
{
	char e[300];
	memset(e, 'a', sizeof(e));
	e[1] = '@';
	cr_assert_eq(open_with(e, 3, 12), PROTO_OK, "3 bytes");
	cr_assert_eq(open_with(e, 2, 12), PROTO_E_BAD_REQUEST, "2 bytes");
	cr_assert_eq(open_with(e, 254, 12), PROTO_OK, "254 bytes");
	cr_assert_eq(open_with(e, 255, 12), PROTO_E_BAD_REQUEST, "255 bytes");
	req("open_account", 2);
	kv_u64("email", 5);
	kv_str("password", "password1");
	expect_bad("integer email");
	req("open_account", 1);
	kv_str("password", "password1");
	expect_bad("missing email");
}

Test(request, password_lengths)
{
	cr_assert_eq(open_with("a@b.c", 5, 7), PROTO_E_BAD_REQUEST, "7 bytes");
	cr_assert_eq(open_with("a@b.c", 5, 8), PROTO_OK, "8 bytes");
	cr_assert_eq(cmd.password_len, 8);
	cr_assert_eq(open_with("a@b.c", 5, 1024), PROTO_OK, "1024 bytes");
	cr_assert_eq(open_with("a@b.c", 5, 1025), PROTO_E_BAD_REQUEST, "1025 bytes");
	req("open_account", 2);
	kv_str("email", "a@b.c");
	kv_u64("password", 12345678);
	expect_bad("integer password");
	req("open_account", 1);
	kv_str("email", "a@b.c");
	expect_bad("missing password");
}

/* ---- verify_account, authenticate ---- */

Test(request, verify_account_code)
{
	req("verify_account", 2);
	kv_str("account", "1000000000000001");
	kv_str("code", "abc");
	cr_assert_eq(decode(), PROTO_OK);
	cr_assert_eq(cmd.code_len, 3);
	cr_assert_eq(memcmp(cmd.code, "abc", 3), 0);
	req("verify_account", 1);
	kv_str("account", "1000000000000001");
	expect_bad("missing code");
	req("verify_account", 2);
	kv_str("account", "1000000000000001");
	kv_u64("code", 123);
	expect_bad("integer code");
	char code[REQUEST_CODE_BYTES_MAX + 1];
	memset(code, 'c', sizeof(code));
	req("verify_account", 2);
	kv_str("account", "1000000000000001");
	msg_pack_kv_strn(&pk, "code", code, REQUEST_CODE_BYTES_MAX + 1);
	expect_bad("overlong code");
	req("verify_account", 2);
	kv_str("account", "1000000000000001");
	msg_pack_kv_strn(&pk, "code", code, REQUEST_CODE_BYTES_MAX);
	cr_assert_eq(decode(), PROTO_OK);
}

Test(request, authenticate_has_no_password_length_rule)
{
	req("authenticate", 2);
	kv_str("account", "1000000000000001");
	kv_str("password", "x");
	cr_assert_eq(decode(), PROTO_OK, "a short password is auth_failed later, not bad");
	req("authenticate", 2);
	kv_str("account", "1000000000000001");
	kv_str("password", "");
	cr_assert_eq(decode(), PROTO_OK);
	req("authenticate", 1);
	kv_str("account", "1000000000000001");
	expect_bad("missing password");
	req("authenticate", 2);
	kv_str("account", "1000000000000001");
	kv_u64("password", 5);
	expect_bad("integer password");
	req("authenticate", 1);
	kv_str("password", "password");
	expect_bad("missing account");
}

/* ---- queries ---- */

Test(request, sum_transactions_fields)
{
	req("sum_transactions", 0);
	cr_assert_eq(decode(), PROTO_OK);
	cr_assert(cmd.year == 0 && cmd.month == 0 && cmd.day == 0);
	req("sum_transactions", 3);
	kv_u64("year", 2024);
	kv_u64("month", 2);
	kv_u64("day", 29);
	cr_assert_eq(decode(), PROTO_OK);
	cr_assert(cmd.year == 2024 && cmd.month == 2 && cmd.day == 29);
	req("sum_transactions", 1);
	kv_u64("month", 2);
	expect_bad("month without year");
	req("sum_transactions", 2);
	kv_u64("year", 2024);
	kv_u64("day", 2);
	expect_bad("day without month");
	req("sum_transactions", 2);
	kv_u64("year", 2024);
	kv_u64("month", 13);
	expect_bad("month 13");
	req("sum_transactions", 2);
	kv_u64("year", 2024);
	kv_u64("month", 0);
	expect_bad("month 0");
	req("sum_transactions", 3);
	kv_u64("year", 2024);
	kv_u64("month", 1);
	kv_u64("day", 32);
	expect_bad("day 32");
	req("sum_transactions", 1);
	kv_i64("year", -2024);
	expect_bad("negative year");
	req("sum_transactions", 1);
	kv_str("year", "2024");
	expect_bad("string year");
	req("sum_transactions", 1);
	kv_u64("year", 0);
	expect_bad("year 0");
}

Test(request, sum_transactions_nil_is_absent)
{
	req("sum_transactions", 2);
	kv_u64("year", 2023);
	key("month");
	msgpack_pack_nil(&pk);
	cr_assert_eq(decode(), PROTO_OK);
	cr_assert(cmd.year == 2023 && cmd.month == 0);
}

Test(request, inactive_users_days)
{
	req("inactive_users", 0);
	cr_assert_eq(decode(), PROTO_OK);
	cr_assert_eq(cmd.days, LEDGER_INACTIVE_DAYS_DEFAULT);
	req("inactive_users", 1);
	kv_u64("days", 0);
	cr_assert_eq(decode(), PROTO_OK);
	cr_assert_eq(cmd.days, 0);
	req("inactive_users", 1);
	kv_u64("days", UINT64_MAX);
	cr_assert_eq(decode(), PROTO_OK);
	cr_assert_eq(cmd.days, REQUEST_DAYS_MAX);
	req("inactive_users", 1);
	kv_i64("days", -1);
	expect_bad("negative days");
}

Test(request, events_limits)
{
	req("events", 0);
	cr_assert_eq(decode(), PROTO_OK);
	cr_assert_eq(cmd.from_seq, 1);
	cr_assert_eq(cmd.limit, REQUEST_EVENTS_LIMIT_DEFAULT);
	req("events", 2);
	kv_u64("from", 55);
	kv_u64("limit", 20000);
	cr_assert_eq(decode(), PROTO_OK);
	cr_assert_eq(cmd.from_seq, 55);
	cr_assert(cmd.has_from);
	cr_assert_eq(cmd.limit, REQUEST_EVENTS_LIMIT_MAX);
	req("events", 1);
	kv_u64("limit", 0);
	cr_assert_eq(decode(), PROTO_OK);
	cr_assert_eq(cmd.limit, 0);
	req("events", 1);
	kv_i64("from", -3);
	expect_bad("negative from");
	req("events", 1);
	kv_str("limit", "5");
	expect_bad("string limit");
}

Test(request, subscribe_from)
{
	req("subscribe", 0);
	cr_assert_eq(decode(), PROTO_OK);
	cr_assert_not(cmd.has_from);
	req("subscribe", 1);
	kv_u64("from", 5);
	cr_assert_eq(decode(), PROTO_OK);
	cr_assert(cmd.has_from);
	cr_assert_eq(cmd.from_seq, 5);
}

/* ---- fingerprint ---- */

static void fp_of_transfer(const char *from, const char *to, uint64_t amount, uint64_t id,
			   uint8_t fp[LEDGER_FP_BYTES])
{
	map(5);
	kv_u64("id", id);
	kv_str("op", "transfer");
	kv_str("from", from);
	kv_str("to", to);
	kv_u64("amount", amount);
	cr_assert_eq(decode(), PROTO_OK);
	memcpy(fp, cmd.fp, LEDGER_FP_BYTES);
}

Test(request, fingerprint_of_transfer)
{
	uint8_t a[LEDGER_FP_BYTES], b[LEDGER_FP_BYTES];
	const char *x = "1000000000000001", *y = "2000000000000002";
	fp_of_transfer(x, y, 100, 1, a);
	fp_of_transfer(x, y, 100, 2, b);
	cr_assert_eq(memcmp(a, b, sizeof(a)), 0, "the id is not part of it");
	fp_of_transfer(x, y, 101, 1, b);
	cr_assert_neq(memcmp(a, b, sizeof(a)), 0, "amount");
	fp_of_transfer(y, x, 100, 1, b);
	cr_assert_neq(memcmp(a, b, sizeof(a)), 0, "direction");
	static const uint8_t zero[LEDGER_FP_BYTES];
	cr_assert_neq(memcmp(a, zero, sizeof(a)), 0);
}

Test(request, fingerprint_of_withdraw_differs_from_transfer_op)
{
	uint8_t a[LEDGER_FP_BYTES];
	req("withdraw", 2);
	kv_str("account", "1000000000000001");
	kv_u64("amount", 100);
	cr_assert_eq(decode(), PROTO_OK);
	memcpy(a, cmd.fp, sizeof(a));
	req("withdraw", 3);
	kv_str("account", "1000000000000001");
	kv_u64("amount", 100);
	kv_str("key", "some-key");
	cr_assert_eq(decode(), PROTO_OK);
	cr_assert_eq(memcmp(a, cmd.fp, sizeof(a)), 0, "the key is not part of it");
	req("withdraw", 2);
	kv_str("account", "1000000000000001");
	kv_u64("amount", 99);
	cr_assert_eq(decode(), PROTO_OK);
	cr_assert_neq(memcmp(a, cmd.fp, sizeof(a)), 0);
}

Test(request, fingerprint_of_open_account_ignores_password_and_case)
{
	uint8_t a[LEDGER_FP_BYTES];
	req("open_account", 2);
	kv_str("email", "Me@Example.com");
	kv_str("password", "password-one");
	cr_assert_eq(decode(), PROTO_OK);
	memcpy(a, cmd.fp, sizeof(a));
	req("open_account", 2);
	kv_str("email", "me@example.com");
	kv_str("password", "password-two");
	cr_assert_eq(decode(), PROTO_OK);
	cr_assert_eq(memcmp(a, cmd.fp, sizeof(a)), 0);
	req("open_account", 2);
	kv_str("email", "me2@example.com");
	kv_str("password", "password-one");
	cr_assert_eq(decode(), PROTO_OK);
	cr_assert_neq(memcmp(a, cmd.fp, sizeof(a)), 0);
}

Test(request, fingerprint_of_verify_includes_code)
{
	uint8_t a[LEDGER_FP_BYTES];
	req("verify_account", 2);
	kv_str("account", "1000000000000001");
	kv_str("code", "code-a");
	cr_assert_eq(decode(), PROTO_OK);
	memcpy(a, cmd.fp, sizeof(a));
	req("verify_account", 2);
	kv_str("account", "1000000000000001");
	kv_str("code", "code-b");
	cr_assert_eq(decode(), PROTO_OK);
	cr_assert_neq(memcmp(a, cmd.fp, sizeof(a)), 0);
}

/* ---- replies ---- */

static const msgpack_object *reply(void)
{
	size_t off = 0;
	cr_assert_eq(msgpack_unpack(sb.data, sb.size, &off, &zone, &obj), MSGPACK_UNPACK_SUCCESS);
	cr_assert_eq(off, sb.size);
	cr_assert_eq(obj.type, MSGPACK_OBJECT_MAP);
	return &obj;
}

Test(request, pack_error)
{
	msgpack_sbuffer_clear(&sb);
	proto_pack_error(&pk, 12, PROTO_E_INSUFFICIENT_FUNDS, "not enough money");
	const msgpack_object *m = reply();
	uint64_t id;
	bool ok = true;
	const char *s;
	size_t n;
	cr_assert_eq(m->via.map.size, 4);
	cr_assert_eq(msg_get_u64(m, "id", &id), 0);
	cr_assert_eq(id, 12);
	cr_assert_eq(msg_get_bool(m, "ok", &ok), 0);
	cr_assert_not(ok);
	cr_assert_eq(msg_get_str(m, "error", &s, &n), 0);
	cr_assert(n == 18 && memcmp(s, "insufficient_funds", n) == 0);
	cr_assert_eq(msg_get_str(m, "message", &s, &n), 0);
	cr_assert(n == 16 && memcmp(s, "not enough money", n) == 0);
	msgpack_sbuffer_clear(&sb);
	proto_pack_error(&pk, 0, PROTO_E_BAD_REQUEST, NULL);
	m = reply();
	cr_assert_eq(msg_get_str(m, "message", &s, &n), 0, "a message even when none is given");
	cr_assert_gt(n, 0);
}

Test(request, pack_ok)
{
	msgpack_sbuffer_clear(&sb);
	proto_pack_ok(&pk, 99, 1);
	msg_pack_kv_u64(&pk, "seq", 5);
	const msgpack_object *m = reply();
	uint64_t v;
	bool ok = false;
	cr_assert_eq(m->via.map.size, 3);
	cr_assert_eq(msg_get_u64(m, "id", &v), 0);
	cr_assert_eq(v, 99);
	cr_assert_eq(msg_get_bool(m, "ok", &ok), 0);
	cr_assert(ok);
	cr_assert_eq(msg_get_u64(m, "seq", &v), 0);
	cr_assert_eq(v, 5);
}

/* ---- transfers (the bulk op) ---- */

static request_transfers_t bulk;
static uint32_t bulk_bad;

static proto_err_t decode_bulk(void)
{
	size_t off = 0;
	cr_assert_eq(msgpack_unpack(sb.data, sb.size, &off, &zone, &obj), MSGPACK_UNPACK_SUCCESS);
	why = NULL;
	proto_err_t e = request_decode_transfers(&obj, &bulk, &bulk_bad, &why);
	if (e != PROTO_OK) {
		cr_assert_not_null(why);
		cr_assert_null(bulk.items);
	}
	return e;
}

/* One item: from 1000000000000001, to 2000000000000002, amount, key or NULL. */
static void bulk_item(int64_t amount, const char *k)
{
	msgpack_pack_map(&pk, 3 + (k != NULL));
	kv_str("from", "1000000000000001");
	kv_str("to", "2000000000000002");
	kv_i64("amount", amount);
	if (k)
		kv_str("key", k);
}

Test(request, transfers_items_are_single_transfers)
{
	req("transfers", 2);
	key("transfers");
	msgpack_pack_array(&pk, 2);
	bulk_item(250, NULL);
	bulk_item(250, "k-1");
	msg_pack_kv_bool(&pk, "atomic", true);
	cr_assert_eq(decode_bulk(), PROTO_OK);
	cr_assert_eq(bulk.count, 2);
	cr_assert(bulk.atomic);
	cr_assert_eq(bulk.id, 7);
	cr_assert_eq(bulk.items[0].op, PROTO_OP_TRANSFER);
	cr_assert_eq(bulk.items[0].id, 7);
	cr_assert_eq(bulk.items[0].amount, 250);
	cr_assert(bulk.items[1].has_key && bulk.items[1].key_len == 3);
	/* the fingerprint is a single transfer's: one key means the same in both ops */
	uint8_t fp[LEDGER_FP_BYTES];
	memcpy(fp, bulk.items[1].fp, sizeof(fp));
	request_transfers_free(&bulk);
	req("transfer", 4);
	kv_str("from", "1000000000000001");
	kv_str("to", "2000000000000002");
	kv_i64("amount", 250);
	kv_str("key", "k-1");
	cr_assert_eq(decode(), PROTO_OK);
	cr_assert_eq(memcmp(cmd.fp, fp, sizeof(fp)), 0);
}

Test(request, transfers_bad_request_for_the_whole)
{
	struct {
		const char *what;
		int items; /* -1: not an array */
		int bad_at;
		int atomic; /* 0 absent, 1 true, 2 an integer */
	} cases[] = {
		{ "empty", 0, -1, 0 },          { "8,193 items", 8193, -1, 0 },
		{ "not an array", -1, -1, 0 },  { "a malformed item", 5, 3, 0 },
		{ "atomic not a bool", 1, -1, 2 },
	};
	for (size_t c = 0; c < sizeof(cases) / sizeof(cases[0]); c++) {
		req("transfers", 1 + (cases[c].atomic != 0));
		key("transfers");
		if (cases[c].items < 0)
			msg_pack_str(&pk, "nope");
		else
			msgpack_pack_array(&pk, (uint32_t)cases[c].items);
		for (int i = 0; i < cases[c].items; i++) {
			if (i == cases[c].bad_at)
				bulk_item(1, ""); /* an empty key */
			else
				bulk_item(1, NULL);
		}
		if (cases[c].atomic == 2)
			kv_u64("atomic", 1);
		cr_assert_eq(decode_bulk(), PROTO_E_BAD_REQUEST, "%s", cases[c].what);
		cr_assert_eq(bulk_bad, cases[c].bad_at < 0 ? UINT32_MAX : (uint32_t)cases[c].bad_at,
			     "%s", cases[c].what);
	}
	/* 8,192 is allowed; request_decode() itself does not take the op */
	req("transfers", 1);
	key("transfers");
	msgpack_pack_array(&pk, REQUEST_TRANSFERS_MAX);
	for (int i = 0; i < REQUEST_TRANSFERS_MAX; i++)
		bulk_item(1, NULL);
	cr_assert_eq(decode_bulk(), PROTO_OK);
	cr_assert_eq(bulk.count, REQUEST_TRANSFERS_MAX);
	request_transfers_free(&bulk);
	cr_assert_eq(decode(), PROTO_E_BAD_REQUEST);
}

/* ---- dry_run (issue 16, item 3) ---- */

/* A withdraw with "dry_run" packed by pack (NULL: absent). */
static void withdraw_dry(void (*pack)(void))
{
	req("withdraw", 2 + (pack != NULL));
	kv_str("account", "1000000000000001");
	kv_i64("amount", 5);
	if (pack) {
		key("dry_run");
		pack();
	}
}

static void dry_true(void) { msgpack_pack_true(&pk); }
static void dry_false(void) { msgpack_pack_false(&pk); }
static void dry_int(void) { msgpack_pack_uint8(&pk, 1); }
static void dry_str(void) { msg_pack_str(&pk, "yes"); }
static void dry_nil(void) { msgpack_pack_nil(&pk); }

Test(request, dry_run_is_a_boolean)
{
	withdraw_dry(NULL);
	cr_assert_eq(decode(), PROTO_OK);
	cr_assert_not(cmd.dry_run);
	uint8_t fp[LEDGER_FP_BYTES];
	memcpy(fp, cmd.fp, sizeof(fp));
	withdraw_dry(dry_false);
	cr_assert_eq(decode(), PROTO_OK);
	cr_assert_not(cmd.dry_run);
	withdraw_dry(dry_true);
	cr_assert_eq(decode(), PROTO_OK);
	cr_assert(cmd.dry_run);
	/* not in the fingerprint: a dry run with a used key is a retry of it */
	cr_assert_eq(memcmp(cmd.fp, fp, sizeof(fp)), 0);
	withdraw_dry(dry_int);
	expect_bad("dry_run 1");
	cr_assert(strstr(why, "dry_run") != NULL, "message: %s", why);
	withdraw_dry(dry_str);
	expect_bad("dry_run \"yes\"");
	withdraw_dry(dry_nil);
	expect_bad("dry_run nil");
}

Test(request, dry_run_on_every_command)
{
	const char *ops[] = { "open_account", "verify_account", "reissue_code", "transfer" };
	for (size_t i = 0; i < sizeof(ops) / sizeof(ops[0]); i++) {
		req(ops[i], 5);
		kv_str("email", "a@example.com");
		kv_str("password", "password-1");
		kv_str("account", "1000000000000001");
		kv_str("code", "c");
		msg_pack_kv_bool(&pk, "dry_run", true);
		if (strcmp(ops[i], "transfer") == 0) {
			req(ops[i], 4);
			kv_str("from", "1000000000000001");
			kv_str("to", "2000000000000002");
			kv_i64("amount", 1);
			msg_pack_kv_bool(&pk, "dry_run", true);
		}
		cr_assert_eq(decode(), PROTO_OK, "%s: %s", ops[i], why ? why : "");
		cr_assert(cmd.dry_run, "%s", ops[i]);
	}
}

Test(request, transfers_refuses_dry_run)
{
	req("transfers", 2);
	key("transfers");
	msgpack_pack_array(&pk, 1);
	bulk_item(250, NULL);
	msg_pack_kv_bool(&pk, "dry_run", true);
	cr_assert_eq(decode_bulk(), PROTO_E_BAD_REQUEST);
}
