/*
 * replay.c - esbank replay: the state as it was after a sequence number or
 * at a time, rebuilt from DATA (see history.h): every account or one, and
 * the totals.
 *
 * --json prints one object:
 *   {"seq", "ts", "head_hash", "snapshot_seq", "events_replayed",
 *    "accounts": [get_account's fields per account, in opening order],
 *    "totals": {"accounts", "verified", "balance", "withdrawn", "transactions"}}
 * (with --account, "accounts" holds that one account only).
 */
#include "history.h"
#include "reading.h"

#include "currency.h"
#include "diag.h"
#include "output.h"

#include <inttypes.h>
#include <string.h>

const config_opt_t history_replay_opts[] = {
	{ .name = "data", .env = "ESBANK_DATA", .def = HISTORY_DATA_DEFAULT,
	  .help = "the data directory to read (never written)" },
	{ .name = "until", .help = "the state after this sequence number (default: the end)" },
	{ .name = "until-time", .help = "the state after the last event at or before this "
					"UTC time" },
	{ .name = "account", .help = "show only this account" },
	{ 0 },
};

typedef struct {
	size_t verified;
	bool first;
	uint64_t only;  /* --account, or 0 */
} replay_print_t;

static int replay_count_verified(const ledger_account_t *a, void *arg)
{
	replay_print_t *p = arg;
	p->verified += a->verified;
	return 0;
}

static int replay_json_account(const ledger_account_t *a, void *arg)
{
	replay_print_t *p = arg;
	if (p->only && a->number != p->only)
		return 0;
	if (!p->first)
		putchar(',');
	p->first = false;
	history_account_json(stdout, a);
	return 0;
}

static int replay_human_account(const ledger_account_t *a, void *arg)
{
	(void)arg;
	history_account_line(a);
	return 0;
}

static void replay_json(const history_state_t *st, uint64_t only)
{
	char hex[HISTORY_HASH_HEX_MAX];
	const ledger_t *l = st->ledger;
	replay_print_t p = { .first = true, .only = only };

	ledger_each_account(l, replay_count_verified, &p);
	printf("{\"seq\":%" PRIu64 ",\"ts\":%" PRId64 ",\"head_hash\":\"%s\",\"snapshot_seq\":%"
	       PRIu64 ",\"events_replayed\":%" PRIu64 ",\"accounts\":[", ledger_last_seq(l),
	       ledger_last_ts(l), history_hash_hex(st->hash, hex), st->snapshot_seq, st->events);
	ledger_each_account(l, replay_json_account, &p);
	printf("],\"totals\":{\"accounts\":%zu,\"verified\":%zu,\"balance\":%" PRId64
	       ",\"withdrawn\":%" PRId64 ",\"transactions\":%" PRId64 "}}\n",
	       ledger_account_count(l), p.verified, ledger_total_balance(l),
	       ledger_total_withdrawn(l), ledger_sum_transactions(l, 0, 0, 0));
}

static void replay_human_head(const history_state_t *st)
{
	char hex[HISTORY_HASH_HEX_MAX], when[OUTPUT_TIME_MAX];
	const ledger_t *l = st->ledger;

	output_pair("State at seq", "%" PRIu64, ledger_last_seq(l));
	output_pair("Time", "%s", ledger_last_seq(l) ? output_time(ledger_last_ts(l), true, when)
						     : "-");
	output_pair("Chain hash", "%s", history_hash_hex(st->hash, hex));
	if (st->snapshot_seq)
		output_pair("Rebuilt from", "snapshot %" PRIu64 " + %" PRIu64 " events",
			    st->snapshot_seq, st->events);
	else
		output_pair("Rebuilt from", "the log: %" PRIu64 " events", st->events);
}

static void replay_human_totals(const ledger_t *l)
{
	char buf[CURRENCY_TEXT_MAX];
	replay_print_t p = { 0 };

	ledger_each_account(l, replay_count_verified, &p);
	output_pair("Accounts", "%zu (%zu verified)", ledger_account_count(l), p.verified);
	output_pair("Total balance", "%s", currency_format(ledger_total_balance(l), buf));
	output_pair("Withdrawn", "%s", currency_format(ledger_total_withdrawn(l), buf));
	output_pair("Transactions", "%s", currency_format(ledger_sum_transactions(l, 0, 0, 0),
							  buf));
}

static void replay_human_one(const ledger_account_t *a)
{
	char num[LEDGER_ACCOUNT_DIGITS + 1], buf[CURRENCY_TEXT_MAX], when[OUTPUT_TIME_MAX];
	char email[LEDGER_EMAIL_BYTES_MAX + 1];

	ledger_account_format(a->number, num);
	output_pair("Account", "%s", num);
	output_pair("Email", "%s", history_account_email(a, email) ? email : "(erased)");
	output_pair("Balance", "%s", currency_format(a->balance, buf));
	output_pair("Verified", "%s", a->verified ? "yes" : "no");
	output_pair("Opened", "%s", output_time(a->opened_at_ms, false, when));
	output_pair("Last activity", "%s", a->last_activity_ms ?
		    output_time(a->last_activity_ms, false, when) : "-");
}

static void replay_human(const history_state_t *st, const ledger_account_t *only)
{
	replay_human_head(st);
	putchar('\n');
	if (only) {
		replay_human_one(only);
		return;
	}
	if (ledger_account_count(st->ledger)) {
		history_account_line(NULL);
		ledger_each_account(st->ledger, replay_human_account, NULL);
		putchar('\n');
	}
	replay_human_totals(st->ledger);
}

/* Reads --until / --until-time into *at; 0 or EXIT_USAGE. */
static int replay_point(const config_opt_t *opts, history_point_t *at)
{
	bool by_seq;

	*at = (history_point_t){ .seq = UINT64_MAX };
	int rc = history_opt_time(opts, "until-time", true, &at->by_time, &at->ts_ms);
	by_seq = config_get(opts, "until") != NULL;
	if (rc == 0 && by_seq && config_u64(opts, "until", &at->seq) < 0)
		rc = EXIT_USAGE;
	if (rc == 0 && by_seq && at->by_time) {
		fprintf(stderr, "esbank: give --until or --until-time, not both\n");
		rc = EXIT_USAGE;
	}
	return rc;
}

int replay_run(const config_opt_t *opts, bool json)
{
	history_point_t at;
	history_state_t st;
	uint64_t only = 0;
	bool has_only;

	int rc = replay_point(opts, &at);
	if (rc == 0)
		rc = history_opt_account(opts, "account", &has_only, &only);
	if (rc == 0)
		rc = history_rebuild(config_get(opts, "data"), &at, &st);
	if (rc)
		return rc;
	const ledger_account_t *a = has_only ? ledger_find(st.ledger, only) : NULL;
	if (has_only && !a) {
		fprintf(stderr, "esbank: account %s did not exist at seq %" PRIu64 "\n",
			config_get(opts, "account"), ledger_last_seq(st.ledger));
		rc = EXIT_USAGE;
	} else if (json) {
		replay_json(&st, only);
	} else {
		replay_human(&st, a);
	}
	history_state_free(&st);
	return rc;
}
