/*
 * statementcmd.c - the statement subcommand (see statementcmd.h).
 *
 * Pages of at most PROTO_STATEMENT_LIMIT_MAX entries are asked for with
 * after_seq set to the last seq of the page before, until "more" is false;
 * every entry must have a seq above the one before, or the listing stops
 * with an error. --month and --since/--until become the op's since and
 * until (until exclusive: --until's time is included).
 */
#include "statementcmd.h"

#include "currency.h"
#include "diag.h"
#include "output.h"
#include "protocol.h"
#include "reading.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#define STATEMENTCMD_TYPE_WIDTH 11

typedef struct {
	bool has_since, has_until;
	int64_t since_ms, until_ms; /* until exclusive */
	bool csv;
	uint64_t after_seq;
	uint64_t printed;
} statementcmd_t;

/* --month YYYY-MM: the month's first ms and the next month's. */
static int statementcmd_month(const char *v, statementcmd_t *s)
{
	int y, m;
	char end;
	if (sscanf(v, "%4d-%2d%c", &y, &m, &end) != 2 || y < 1970 || m < 1 || m > 12) {
		fprintf(stderr, "esbank: --month: '%s' is not a month: write 2026-11\n", v);
		return EXIT_USAGE;
	}
	struct tm a = { .tm_year = y - 1900, .tm_mon = m - 1, .tm_mday = 1 };
	struct tm b = { .tm_year = y - 1900 + (m == 12), .tm_mon = m % 12, .tm_mday = 1 };
	s->since_ms = (int64_t)timegm(&a) * 1000;
	s->until_ms = (int64_t)timegm(&b) * 1000;
	s->has_since = s->has_until = true;
	return 0;
}

static int statementcmd_period(const config_opt_t *opts, statementcmd_t *s)
{
	const char *month = config_get(opts, "month");
	if (month && (config_get(opts, "since") || config_get(opts, "until"))) {
		fprintf(stderr, "esbank: --month or --since/--until, not both\n");
		return EXIT_USAGE;
	}
	if (month)
		return statementcmd_month(month, s);
	int rc = history_opt_time(opts, "since", false, &s->has_since, &s->since_ms);
	if (rc == 0)
		rc = history_opt_time(opts, "until", true, &s->has_until, &s->until_ms);
	if (rc == 0 && s->has_until)
		s->until_ms++; /* the op's until is exclusive */
	if (rc == 0 && s->has_since && s->has_until && s->since_ms >= s->until_ms) {
		fprintf(stderr, "esbank: --since must be before --until\n");
		return EXIT_USAGE;
	}
	return rc;
}

/* Cents as CSV dollars: -1234 -> -12.34. */
static void statementcmd_csv_amount(int64_t cents)
{
	uint64_t a = cents < 0 ? 0 - (uint64_t)cents : (uint64_t)cents;
	printf("%s%" PRIu64 ".%02" PRIu64, cents < 0 ? "-" : "", a / 100, a % 100);
}

static const char *statementcmd_type(const char *t, size_t n)
{
	if (n == 17 && memcmp(t, "money_transferred", n) == 0)
		return "transfer";
	if (n == 15 && memcmp(t, "money_withdrawn", n) == 0)
		return "withdrawal";
	if (n == 14 && memcmp(t, "account_opened", n) == 0)
		return "opening";
	return "other";
}

/* One entry as a table line or a CSV row. */
static void statementcmd_entry(const statementcmd_t *s, const msgpack_object *e)
{
	uint64_t seq = 0;
	int64_t ts = 0, amount = 0, balance = 0;
	const char *type = "", *cp = "";
	size_t tn = 0, cn = 0;
	char when[OUTPUT_TIME_MAX], a[CURRENCY_TEXT_MAX], b[CURRENCY_TEXT_MAX];
	msg_get_u64(e, "seq", &seq);
	msg_get_i64(e, "ts", &ts);
	msg_get_str(e, "type", &type, &tn);
	msg_get_i64(e, "amount", &amount);
	msg_get_i64(e, "balance", &balance);
	msg_get_str(e, "counterparty", &cp, &cn);
	output_time(ts, false, when);
	if (s->csv) {
		printf("%" PRIu64 ",%s,%s,", seq, when, statementcmd_type(type, tn));
		statementcmd_csv_amount(amount);
		printf(",%.*s,", (int)cn, cp);
		statementcmd_csv_amount(balance);
		printf("\n");
		return;
	}
	printf("%8" PRIu64 "  %-20s  %-*s %14s %14s  %.*s\n", seq, when, STATEMENTCMD_TYPE_WIDTH,
	       statementcmd_type(type, tn), currency_format(amount, a), currency_format(balance, b),
	       (int)cn, cp);
}

/* The period and the opening balance, before the first page's entries. */
static void statementcmd_head(const statementcmd_t *s, const char *account,
                              const msgpack_object *reply)
{
	char from[OUTPUT_TIME_MAX] = "the opening", to[OUTPUT_TIME_MAX] = "now";
	char bal[CURRENCY_TEXT_MAX];
	int64_t opening = 0;
	msg_get_i64(reply, "opening_balance", &opening);
	if (s->csv) {
		printf("seq,time,type,amount,counterparty,balance\n");
		return;
	}
	if (s->has_since)
		output_time(s->since_ms, false, from);
	if (s->has_until)
		output_time(s->until_ms, false, to);
	printf("Statement of account %s\nPeriod:           %s to %s%s\n", account, from, to,
	       s->has_until ? " (not included)" : "");
	printf("Opening balance:  %s\n\n", currency_format(opening, bal));
	printf("%8s  %-20s  %-*s %14s %14s  %s\n", "seq", "time (UTC)", STATEMENTCMD_TYPE_WIDTH,
	       "type", "amount", "balance", "counterparty");
}

static void statementcmd_tail(const statementcmd_t *s, const msgpack_object *reply)
{
	char bal[CURRENCY_TEXT_MAX];
	int64_t closing = 0;
	msg_get_i64(reply, "closing_balance", &closing);
	if (s->csv)
		return;
	if (s->printed == 0)
		printf("%8s  (no transactions in this period)\n", "");
	printf("\nClosing balance:  %s  (%" PRIu64 " transaction%s)\n",
	       currency_format(closing, bal), s->printed, s->printed == 1 ? "" : "s");
}

/* Asks for one page: 0 with *reply, or the exit code. */
static int statementcmd_ask(call_t *c, const char *account, const statementcmd_t *s,
                            msgpack_object *reply)
{
	msgpack_packer *pk;
	int rc = call_begin(c, "statement", false,
	                    3 + s->has_since + s->has_until, &pk);
	if (rc)
		return rc;
	msg_pack_kv_str(pk, "account", account);
	msg_pack_kv_u64(pk, "after_seq", s->after_seq);
	msg_pack_kv_u64(pk, "limit", PROTO_STATEMENT_LIMIT_MAX);
	if (s->has_since)
		msg_pack_kv_i64(pk, "since", s->since_ms);
	if (s->has_until)
		msg_pack_kv_i64(pk, "until", s->until_ms);
	return call_finish(c, RPC_REPLY_TIMEOUT_MS, reply);
}

/* Prints one page's entries; *more says whether another page follows. */
static int statementcmd_page(call_t *c, statementcmd_t *s, const msgpack_object *reply,
                             bool *more)
{
	const msgpack_object *es = msg_get(reply, "entries");
	if (!es || es->type != MSGPACK_OBJECT_ARRAY || msg_get_bool(reply, "more", more) < 0)
		return call_fail_protocol(c, "the reply has no \"entries\" array or \"more\"");
	for (uint32_t i = 0; i < es->via.array.size; i++) {
		const msgpack_object *e = &es->via.array.ptr[i];
		uint64_t seq;
		if (e->type != MSGPACK_OBJECT_MAP || msg_get_u64(e, "seq", &seq) < 0 ||
		    seq < s->after_seq || (seq == s->after_seq && s->printed))
			return call_fail_protocol(c, "the server sent entries out of order");
		s->after_seq = seq;
		s->printed++;
		if (!c->json)
			statementcmd_entry(s, e);
	}
	if (*more && es->via.array.size == 0)
		return call_fail_protocol(c, "the server said more but sent no entries");
	if (c->json)
		output_json_line(reply, "id");
	return 0;
}

int statementcmd_run(call_t *c, const config_opt_t *opts, const char *account)
{
	statementcmd_t s = { .csv = config_flag(opts, "csv") };
	int rc = statementcmd_period(opts, &s);
	if (rc)
		return rc;
	if (s.csv && c->json) {
		fprintf(stderr, "esbank: --csv or --json, not both\n");
		return EXIT_USAGE;
	}
	msgpack_object reply;
	bool more = true;
	for (bool first = true; rc == 0 && more; first = false) {
		rc = statementcmd_ask(c, account, &s, &reply);
		if (rc)
			break;
		if (first && !c->json)
			statementcmd_head(&s, account, &reply);
		rc = statementcmd_page(c, &s, &reply, &more);
		if (rc == 0 && !more && !c->json)
			statementcmd_tail(&s, &reply);
	}
	return rc;
}
