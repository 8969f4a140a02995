/*
 * commands.c - the subcommands: the table of names, arguments and options,
 * parsing of each one's command line, and the ops that send one request and
 * print one reply. The events log (log, log --follow) is in logcmd.c.
 *
 * Options may come before or after the positional arguments; --run and
 * --json are accepted after the subcommand name too.
 */
#include "commands.h"

#include "backup.h"
#include "bench.h"
#include "call.h"
#include "config.h"
#include "currency.h"
#include "logcmd.h"
#include "history.h"
#include "ledger.h"
#include "diag.h"
#include "logrepair.h"
#include "metricscmd.h"
#include "output.h"
#include "statementcmd.h"
#include "supervision.h"
#include "password.h"
#include "transferfile.h"

#include <assert.h>
#include <errno.h>
#include <inttypes.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define COMMAND_OPTS_MAX 16
#define COMMAND_HELP_WORDS_MAX 2
#define COMMAND_USAGE_MAX 2048
#define COMMAND_RUN_DEFAULT "./var/run"

typedef struct command command_t;

/* One run of a subcommand: its parsed options and arguments, its connection. */
typedef struct {
	const command_t *cmd;
	config_opt_t opts[COMMAND_OPTS_MAX];
	char **args;
	call_t call;
} cmd_t;

struct command {
	const char *name;
	const char *args;      /* positional arguments, for the usage line */
	const char *summary;
	const char *details;   /* further help, or NULL */
	int nargs;
	bool keyed;            /* a command: takes --key */
	bool password;         /* takes --password-stdin */
	const config_opt_t *extra; /* further options ending with {0}, or NULL */
	int (*run)(cmd_t *c);
};

/*
 * Prints a success reply as JSON; true when --json asked for that. A dry
 * run's reply is always printed so (with "dry_run": true): the sentences
 * below tell of things done.
 */
static bool cmd_json(cmd_t *c, const msgpack_object *reply)
{
	bool json = c->call.json || c->call.dry_run;
	if (json)
		output_json_line(reply, "id");
	return json;
}

static uint64_t cmd_seq(const msgpack_object *reply)
{
	uint64_t seq = 0;
	msg_get_u64(reply, "seq", &seq);
	return seq;
}

/* Parses an amount argument into cents; 0 or EXIT_USAGE after saying why. */
static int cmd_amount(const char *text, int64_t *cents)
{
	const char *why;

	if (currency_parse(text, cents, &why) == 0)
		return 0;
	fprintf(stderr, "esbank: invalid amount '%s': %s\n", text, why);
	return EXIT_USAGE;
}

/* Reads the password as --password-stdin says; 0 or EXIT_USAGE. */
static int cmd_with_password(cmd_t *c, bool confirm, char pw[PASSWORD_BYTES_MAX + 1],
			     size_t *pw_len)
{
	bool from_stdin = config_flag(c->opts, "password-stdin");
	return password_read(from_stdin, confirm, pw, pw_len) < 0 ? EXIT_USAGE : 0;
}

static int cmd_open(cmd_t *c)
{
	char pw[PASSWORD_BYTES_MAX + 1], account[OUTPUT_FIELD_MAX];
	size_t pw_len;
	msgpack_packer *pk;
	msgpack_object reply;

	int rc = cmd_with_password(c, true, pw, &pw_len);
	if (rc == 0)
		rc = call_begin(&c->call, "open_account", true, 2, &pk);
	if (rc == 0) {
		msg_pack_kv_str(pk, "email", c->args[0]);
		msg_pack_kv_strn(pk, "password", pw, pw_len);
		rc = call_finish(&c->call, RPC_REPLY_TIMEOUT_MS, &reply);
	}
	sodium_memzero(pw, sizeof(pw));
	if (rc || cmd_json(c, &reply))
		return rc;
	printf("%s\n", output_field(&reply, "account", account));
	if (isatty(STDERR_FILENO))
		fprintf(stderr, "Account opened (seq %" PRIu64 "). A verification code "
				"was emailed to %s;\nverify with: esbank verify %s CODE\n",
			cmd_seq(&reply), c->args[0], account);
	return 0;
}

static int cmd_verify(cmd_t *c)
{
	msgpack_packer *pk;
	msgpack_object reply;

	int rc = call_begin(&c->call, "verify_account", true, 2, &pk);
	if (rc)
		return rc;
	msg_pack_kv_str(pk, "account", c->args[0]);
	msg_pack_kv_str(pk, "code", c->args[1]);
	rc = call_finish(&c->call, RPC_REPLY_TIMEOUT_MS, &reply);
	if (rc || cmd_json(c, &reply))
		return rc;
	printf("Account %s is verified (seq %" PRIu64 ").\n", c->args[0], cmd_seq(&reply));
	return 0;
}

static int cmd_reissue(cmd_t *c)
{
	msgpack_packer *pk;
	msgpack_object reply;

	int rc = call_begin(&c->call, "reissue_code", true, 1, &pk);
	if (rc)
		return rc;
	msg_pack_kv_str(pk, "account", c->args[0]);
	rc = call_finish(&c->call, RPC_REPLY_TIMEOUT_MS, &reply);
	if (rc || cmd_json(c, &reply))
		return rc;
	printf("A new verification code was emailed for account %s (seq %" PRIu64 ").\n"
	       "The previous code no longer works.\n",
	       c->args[0], cmd_seq(&reply));
	return 0;
}

/* --file FILE [--batch N] [--atomic]: transferfile.c; 0 or EXIT_USAGE. */
static int cmd_transfer_file(cmd_t *c, const char *path)
{
	const char *b = config_get(c->opts, "batch");
	char *end = NULL;
	unsigned long long batch = b ? strtoull(b, &end, 10) : TRANSFERFILE_BATCH_DEFAULT;
	if (b && (*b == '\0' || *end != '\0' || batch < 1 || batch > LEDGER_BATCH_MAX)) {
		fprintf(stderr, "esbank: --batch must be 1 to %d\n", LEDGER_BATCH_MAX);
		return EXIT_USAGE;
	}
	if (c->call.key) {
		fprintf(stderr, "esbank: with --file, keys are the file's fourth column\n");
		return EXIT_USAGE;
	}
	return transferfile_run(&c->call, path, (size_t)batch, config_flag(c->opts, "atomic"));
}

static int cmd_transfer(cmd_t *c)
{
	char amount[CURRENCY_TEXT_MAX], balance[OUTPUT_FIELD_MAX];
	msgpack_packer *pk;
	msgpack_object reply;
	int64_t cents;

	const char *file = config_get(c->opts, "file");
	if (file)
		return cmd_transfer_file(c, file);
	if (config_get(c->opts, "batch") || config_flag(c->opts, "atomic")) {
		fprintf(stderr, "esbank: --batch and --atomic go with --file\n");
		return EXIT_USAGE;
	}
	int rc = cmd_amount(c->args[2], &cents);
	if (rc == 0)
		rc = call_begin(&c->call, "transfer", true, 3, &pk);
	if (rc)
		return rc;
	msg_pack_kv_str(pk, "from", c->args[0]);
	msg_pack_kv_str(pk, "to", c->args[1]);
	msg_pack_kv_i64(pk, "amount", cents);
	rc = call_finish(&c->call, RPC_REPLY_TIMEOUT_MS, &reply);
	if (rc || cmd_json(c, &reply))
		return rc;
	printf("Transferred %s from %s to %s (seq %" PRIu64 ").\n",
	       currency_format(cents, amount), c->args[0], c->args[1], cmd_seq(&reply));
	printf("Balance of %s is now %s.\n", c->args[0],
	       output_amount(&reply, "balance", balance));
	return 0;
}

static int cmd_withdraw(cmd_t *c)
{
	char amount[CURRENCY_TEXT_MAX], balance[OUTPUT_FIELD_MAX];
	msgpack_packer *pk;
	msgpack_object reply;
	int64_t cents;

	int rc = cmd_amount(c->args[1], &cents);
	if (rc == 0)
		rc = call_begin(&c->call, "withdraw", true, 2, &pk);
	if (rc)
		return rc;
	msg_pack_kv_str(pk, "account", c->args[0]);
	msg_pack_kv_i64(pk, "amount", cents);
	rc = call_finish(&c->call, RPC_REPLY_TIMEOUT_MS, &reply);
	if (rc || cmd_json(c, &reply))
		return rc;
	printf("Withdrew %s from %s (seq %" PRIu64 ").\n", currency_format(cents, amount),
	       c->args[0], cmd_seq(&reply));
	printf("Balance of %s is now %s.\n", c->args[0],
	       output_amount(&reply, "balance", balance));
	return 0;
}

static int cmd_erase(cmd_t *c)
{
	msgpack_packer *pk;
	msgpack_object reply;
	bool force = config_flag(c->opts, "force");

	int rc = call_begin(&c->call, "erase_account", true, 1 + force, &pk);
	if (rc)
		return rc;
	msg_pack_kv_str(pk, "account", c->args[0]);
	if (force)
		msg_pack_kv_bool(pk, "force", true);
	rc = call_finish(&c->call, RPC_REPLY_TIMEOUT_MS, &reply);
	if (rc || cmd_json(c, &reply))
		return rc;
	printf("The personal data of account %s is erased (seq %" PRIu64 "): its key is "
	       "destroyed,\nits email can no longer be read, and no more mail is sent to it.\n",
	       c->args[0], cmd_seq(&reply));
	return 0;
}

static int cmd_show(cmd_t *c)
{
	msgpack_packer *pk;
	msgpack_object reply;

	int rc = call_begin(&c->call, "get_account", false, 1, &pk);
	if (rc)
		return rc;
	msg_pack_kv_str(pk, "account", c->args[0]);
	rc = call_finish(&c->call, RPC_REPLY_TIMEOUT_MS, &reply);
	if (rc || cmd_json(c, &reply))
		return rc;
	output_account(&reply);
	return 0;
}

static int cmd_login_check(cmd_t *c)
{
	char pw[PASSWORD_BYTES_MAX + 1];
	size_t pw_len;
	msgpack_packer *pk;
	msgpack_object reply;

	int rc = cmd_with_password(c, false, pw, &pw_len);
	if (rc == 0)
		rc = call_begin(&c->call, "authenticate", false, 2, &pk);
	if (rc == 0) {
		msg_pack_kv_str(pk, "account", c->args[0]);
		msg_pack_kv_strn(pk, "password", pw, pw_len);
		rc = call_finish(&c->call, RPC_REPLY_TIMEOUT_MS, &reply);
	}
	sodium_memzero(pw, sizeof(pw));
	if (rc || cmd_json(c, &reply))
		return rc;
	printf("Password accepted for account %s.\n", c->args[0]);
	return 0;
}

/* Reads the unsigned option name into *v when given; 0, or EXIT_USAGE. */
static int cmd_opt_u64(cmd_t *c, const char *name, uint64_t lo, uint64_t hi, uint64_t *v,
		       bool *given)
{
	*given = config_get(c->opts, name) != NULL;
	if (!*given)
		return 0;
	if (config_u64(c->opts, name, v) < 0)
		return EXIT_USAGE;
	if (*v < lo || *v > hi) {
		fprintf(stderr, "esbank: --%s must be from %" PRIu64 " to %" PRIu64 "\n", name, lo,
			hi);
		return EXIT_USAGE;
	}
	return 0;
}

/* Reads --year, --month, --day; month needs year, day needs month. */
static int cmd_period(cmd_t *c, uint64_t ymd[3], bool has[3])
{
	static const char *const names[3] = { "year", "month", "day" };
	static const uint64_t hi[3] = { 9999, 12, 31 };

	for (int i = 0; i < 3; i++) {
		int rc = cmd_opt_u64(c, names[i], 1, hi[i], &ymd[i], &has[i]);
		if (rc)
			return rc;
		if (i > 0 && has[i] && !has[i - 1]) {
			fprintf(stderr, "esbank: --%s needs --%s\n", names[i], names[i - 1]);
			return EXIT_USAGE;
		}
	}
	return 0;
}

static int cmd_report_sum(cmd_t *c)
{
	static const char *const names[3] = { "year", "month", "day" };
	char sum[OUTPUT_FIELD_MAX], period[32] = "all time";
	uint64_t ymd[3] = { 0 };
	bool has[3];
	msgpack_packer *pk;
	msgpack_object reply;

	int rc = cmd_period(c, ymd, has);
	if (rc == 0)
		rc = call_begin(&c->call, "sum_transactions", false,
				has[0] + has[1] + has[2], &pk);
	if (rc)
		return rc;
	for (int i = 0; i < 3 && has[i]; i++)
		msg_pack_kv_u64(pk, names[i], ymd[i]);
	rc = call_finish(&c->call, RPC_REPLY_TIMEOUT_MS, &reply);
	if (rc || cmd_json(c, &reply))
		return rc;
	if (has[2])
		snprintf(period, sizeof(period), "%04u-%02u-%02u (UTC)", (unsigned)ymd[0],
			 (unsigned)ymd[1], (unsigned)ymd[2]);
	else if (has[1])
		snprintf(period, sizeof(period), "%04u-%02u (UTC)", (unsigned)ymd[0],
			 (unsigned)ymd[1]);
	else if (has[0])
		snprintf(period, sizeof(period), "%04u (UTC)", (unsigned)ymd[0]);
	printf("Transfers and withdrawals, %s: %s\n", period, output_amount(&reply, "sum", sum));
	return 0;
}

static int cmd_report_inactive(cmd_t *c)
{
	uint64_t days = LEDGER_INACTIVE_DAYS_DEFAULT, total;
	bool has_days;
	msgpack_packer *pk;
	msgpack_object reply;

	int rc = cmd_opt_u64(c, "days", 0, INT32_MAX, &days, &has_days);
	if (rc == 0)
		rc = call_begin(&c->call, "inactive_users", false, has_days, &pk);
	if (rc)
		return rc;
	if (has_days)
		msg_pack_kv_u64(pk, "days", days);
	rc = call_finish(&c->call, RPC_REPLY_TIMEOUT_MS, &reply);
	if (rc || cmd_json(c, &reply))
		return rc;
	if (msg_get_u64(&reply, "total", &total) < 0)
		return call_fail_protocol(&c->call, "the reply has no \"total\"");
	printf("%" PRIu64 " account%s with no transfer or withdrawal in the last %" PRIu64
	       " day%s\n",
	       total, total == 1 ? "" : "s", days, days == 1 ? "" : "s");
	return 0;
}

static int cmd_log(cmd_t *c)
{
	uint64_t from = 1, limit = UINT64_MAX;
	bool has_from, has_limit;
	logcmd_filter_t filter;

	int rc = cmd_opt_u64(c, "from", 1, UINT64_MAX, &from, &has_from);
	if (rc == 0)
		rc = cmd_opt_u64(c, "limit", 1, UINT64_MAX, &limit, &has_limit);
	if (rc == 0)
		rc = logcmd_filter_parse(c->opts, &filter);
	if (rc)
		return rc;
	if (config_flag(c->opts, "follow"))
		return logcmd_follow(&c->call, has_from, from, limit, &filter);
	return logcmd_list(&c->call, from, limit, &filter);
}

static int cmd_statement(cmd_t *c)
{
	return statementcmd_run(&c->call, c->opts, c->args[0]);
}

static int cmd_status(cmd_t *c)
{
	msgpack_packer *pk;
	msgpack_object reply;

	int rc = call_begin(&c->call, "status", false, 0, &pk);
	if (rc == 0)
		rc = call_finish(&c->call, RPC_REPLY_TIMEOUT_MS, &reply);
	if (rc || cmd_json(c, &reply))
		return rc;
	runstate_t sup;
	supervision_read(c->call.sock_path, &sup);
	output_status(&reply, &sup);
	return 0;
}

static int cmd_metrics(cmd_t *c)
{
	return metrics_run(&c->call);
}

static int64_t cmd_now_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static int cmd_ping(cmd_t *c)
{
	msgpack_packer *pk;
	msgpack_object reply;

	int rc = call_begin(&c->call, "ping", false, 0, &pk);
	if (rc)
		return rc;
	int64_t start_us = cmd_now_us();
	rc = call_finish(&c->call, RPC_REPLY_TIMEOUT_MS, &reply);
	if (rc || cmd_json(c, &reply))
		return rc;
	int64_t us = cmd_now_us() - start_us;
	printf("pong from %s in %" PRId64 ".%03" PRId64 " ms\n", c->call.sock_path, us / 1000,
	       us % 1000);
	return 0;
}

static int cmd_promote(cmd_t *c)
{
	msgpack_packer *pk;
	msgpack_object reply;
	uint64_t seq = 0;

	int rc = call_begin(&c->call, "promote", false, 0, &pk);
	if (rc == 0)
		rc = call_finish(&c->call, RPC_REPLY_TIMEOUT_MS, &reply);
	if (rc || cmd_json(c, &reply))
		return rc;
	msg_get_u64(&reply, "seq", &seq);
	printf("promoted: this group is the primary; takeover record %" PRIu64 "\n", seq);
	return 0;
}

static int cmd_bench(cmd_t *c)
{
	return bench_run(c->opts, c->call.sock_path, c->call.json);
}

/* log-repair: cuts DATA's log at its first damage (logrepair.c). */
static int cmd_log_repair(cmd_t *c)
{
	return logrepair_run(c->opts, c->call.json);
}

/* backup, restore, export: copies of DATA (client/backup/). */
static int cmd_backup(cmd_t *c)
{
	return backup_run(c->opts, c->call.json);
}

static int cmd_restore(cmd_t *c)
{
	return restore_run(c->opts, c->call.json);
}

static int cmd_export(cmd_t *c)
{
	return export_run(c->opts, c->args[0]);
}

/* replay, audit, whatif: read DATA directly (history.c). */
static int cmd_history(cmd_t *c)
{
	return history_run(c->cmd->name, c->opts);
}

static const config_opt_t cmd_sum_opts[] = {
	{ .name = "year", .help = "only this year (UTC)" },
	{ .name = "month", .help = "only this month, 1 to 12 (needs --year)" },
	{ .name = "day", .help = "only this day of the month (needs --month)" },
	{ 0 },
};

static const config_opt_t cmd_inactive_opts[] = {
	{ .name = "days", .help = "the period without activity (default: 30)" },
	{ 0 },
};

static const config_opt_t cmd_transfer_opts[] = {
	{ .name = "file", .help = "the transfers of a CSV file (- for stdin), one a line: "
	  "from,to,amount[,key]" },
	{ .name = "batch", .help = "with --file: transfers per request, 1 to 8192 (default: 1000)" },
	{ .name = "atomic", .is_flag = true,
	  .help = "with --file: each request all or none (see docs/protocol.md, transfers)" },
	{ 0 },
};

static const config_opt_t cmd_erase_opts[] = {
	{ .name = "force", .is_flag = true, .help = "erase even though the balance is not zero" },
	{ 0 },
};

static const config_opt_t cmd_log_opts[] = {
	{ .name = "from",
	  .help = "first sequence number (default: 1; with --follow: the next new event)" },
	{ .name = "limit", .help = "print at most this many events (default: all)" },
	{ .name = "follow", .is_flag = true, .help = "keep printing events as they happen" },
	LOGCMD_FILTER_OPTS,
	{ 0 },
};

static const config_opt_t cmd_statement_opts[] = {
	STATEMENTCMD_OPTS,
	{ 0 },
};

static const command_t cmd_table[] = {
	{ "open", "EMAIL", "open an account; prints its number", "The password is asked "
	  "twice on the terminal, or read as one line from stdin with\n--password-stdin. "
	  "A verification code is emailed to EMAIL.", 1, true, true, NULL, cmd_open },
	{ "verify", "ACCOUNT CODE", "verify an account with the code from its email", NULL, 2,
	  true, false, NULL, cmd_verify },
	{ "reissue", "ACCOUNT", "email a new verification code (the old one stops working)",
	  NULL, 1, true, false, NULL, cmd_reissue },
	{ "transfer", "FROM TO AMOUNT", "move money between two verified accounts", "AMOUNT "
	  "is in dollars: 100, 12.50, $1,000.00 (at most two decimals).\nWith --file FILE "
	  "(no FROM TO AMOUNT): every line of FILE, from,to,amount[,key],\nsent in "
	  "'transfers' requests; refused lines and a summary are printed\n(--json: one "
	  "object per line, then the summary); exit 100 if any was refused.", 3, true, false,
	  cmd_transfer_opts, cmd_transfer },
	{ "withdraw", "ACCOUNT AMOUNT", "take money out of a verified account", "AMOUNT is in "
	  "dollars: 100, 12.50, $1,000.00 (at most two decimals).", 2, true, false, NULL,
	  cmd_withdraw },
	{ "erase", "ACCOUNT", "erase an account's personal data (its email), for good",
	  "The account's key is destroyed: its email cannot be read again by any tool,\n"
	  "snapshot or export, and no more mail is sent to it. Balances and the audit\n"
	  "still work. The balance must be zero unless --force. docs/privacy.md says what\n"
	  "is and is not erased.", 1, true, false, cmd_erase_opts, cmd_erase },
	{ "show", "ACCOUNT", "show an account: email, balance, dates", NULL, 1, false, false,
	  NULL, cmd_show },
	{ "login-check", "ACCOUNT", "check an account's password", "The password is asked on "
	  "the terminal, or read as one line from stdin with\n--password-stdin.", 1, false,
	  true, NULL, cmd_login_check },
	{ "report sum", "", "total of transfers and withdrawals, all time or in a period",
	  NULL, 0, false, false, cmd_sum_opts, cmd_report_sum },
	{ "report inactive", "", "count accounts without transfers or withdrawals lately",
	  NULL, 0, false, false, cmd_inactive_opts, cmd_report_inactive },
	{ "log", "", "print the events (the audit log)", "With --json, one JSON object per "
	  "event per line. --follow prints events as\nthey become durable until interrupted.",
	  0, false, false, cmd_log_opts, cmd_log },
	{ "statement", "ACCOUNT", "an account's transactions and running balance",
	  STATEMENTCMD_HELP, 1, false, false, cmd_statement_opts, cmd_statement },
	{ "status", "", "show the server's state, sequence numbers and peers", NULL, 0, false,
	  false, NULL, cmd_status },
	{ "ping", "", "check that the server answers", NULL, 0, false, false, NULL, cmd_ping },
	{ "metrics", "", "every program's figures, in the Prometheus text format", NULL, 0,
	  false, false, NULL, cmd_metrics },
	{ "replay", "", "the state at a point of history, read from DATA", HISTORY_REPLAY_HELP,
	  0, false, false, history_replay_opts, cmd_history },
	{ "audit", "", "check DATA's log and snapshots; print the head hash", HISTORY_AUDIT_HELP,
	  0, false, false, history_audit_opts, cmd_history },
	{ "whatif", "", "replay DATA with hypothetical commands injected", HISTORY_WHATIF_HELP,
	  0, false, false, history_whatif_opts, cmd_history },
	{ "log-repair", "", "cut DATA's damaged log, keeping a copy of every byte cut",
	  LOGREPAIR_HELP, 0, false, false, logrepair_opts, cmd_log_repair },
	{ "backup", "", "copy a running bank's DATA into a new directory, audited",
	  BACKUP_HELP, 0, false, false, backup_opts, cmd_backup },
	{ "restore", "", "put a backup into a data directory no group runs on",
	  RESTORE_HELP, 0, false, false, restore_opts, cmd_restore },
	{ "export", "events|accounts", "print DATA's events or accounts as JSON lines or CSV",
	  EXPORT_HELP, 1, false, false, export_opts, cmd_export },
	{ "bench", "", "load generator: throughput and latency of many requests",
	  bench_details, 0, false, false, bench_opts, cmd_bench },
	{ "promote", "", "make this standby group the primary (fenced takeover)", NULL, 0,
	  false, false, NULL, cmd_promote },
};

#define CMD_COUNT (sizeof(cmd_table) / sizeof(cmd_table[0]))

static void cmd_list(FILE *f, const char *prefix)
{
	for (size_t i = 0; i < CMD_COUNT; i++)
		if (strncmp(cmd_table[i].name, prefix, strlen(prefix)) == 0)
			fprintf(f, "  %-16s %-15s %s\n", cmd_table[i].name, cmd_table[i].args,
				cmd_table[i].summary);
}

void commands_list(FILE *f)
{
	cmd_list(f, "");
}

/* "report" alone: the usage of its two subcommands. */
static int cmd_report_usage(FILE *f, int exit_code)
{
	fprintf(f, "usage: esbank [--run DIR] [--json] report sum|inactive [OPTIONS]\n\n");
	cmd_list(f, "report ");
	fprintf(f, "\nSee 'esbank report sum --help' and 'esbank report inactive --help'.\n");
	return exit_code;
}

/* Finds the command that argv names; *words is 2 for "report sum", else 1. */
static const command_t *cmd_find(int argc, char **argv, int *words)
{
	char name[64];

	*words = 1;
	snprintf(name, sizeof(name), "%s", argv[0]);
	if (strcmp(argv[0], "report") == 0 && argc > 1) {
		snprintf(name, sizeof(name), "report %s", argv[1]);
		*words = 2;
	}
	for (size_t i = 0; i < CMD_COUNT; i++)
		if (strcmp(cmd_table[i].name, name) == 0)
			return &cmd_table[i];
	return NULL;
}

static int cmd_unknown(int argc, char **argv)
{
	if (strcmp(argv[0], "report") != 0) {
		fprintf(stderr, "esbank: unknown subcommand '%s' (see esbank --help)\n", argv[0]);
		return EXIT_USAGE;
	}
	if (argc > 1 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0))
		return cmd_report_usage(stdout, 0);
	if (argc > 1)
		fprintf(stderr, "esbank: unknown report '%s'\n", argv[1]);
	return cmd_report_usage(stderr, EXIT_USAGE);
}

static void cmd_setup_opts(cmd_t *c, const commands_global_t *g)
{
	const command_t *cmd = c->cmd;
	config_opt_t *o = c->opts;

	*o++ = (config_opt_t){ .name = "run", .env = "ESBANK_RUN", .def = COMMAND_RUN_DEFAULT,
			       .help = "run directory holding bus.sock", .value = g->run_dir };
	*o++ = (config_opt_t){ .name = "json", .is_flag = true, .value = g->json ? "1" : NULL,
			       .help = "print JSON objects, one per line" };
	if (cmd->keyed)
		*o++ = (config_opt_t){ .name = "key",
				       .help = "idempotency key, 1 to 64 bytes: a retry with it "
					       "is done at most once" };
	if (cmd->keyed)
		*o++ = (config_opt_t){ .name = "dry-run", .is_flag = true,
				       .help = "check the command against the live state and print "
					       "what it would answer (JSON, \"dry_run\": true); change "
					       "nothing" };
	if (cmd->password)
		*o++ = (config_opt_t){ .name = "password-stdin", .is_flag = true,
				       .help = "read the password as one line from stdin" };
	for (const config_opt_t *e = cmd->extra; e && e->name; e++)
		*o++ = *e;
	assert(o < c->opts + COMMAND_OPTS_MAX);
	*o = (config_opt_t){ 0 };
}

static void cmd_usage(const command_t *cmd, char *buf, size_t size)
{
	int n = snprintf(buf, size, "usage: esbank [--run DIR] [--json] %s%s%s%s%s%s\n\n%s.%s%s\n",
			 cmd->name, *cmd->args ? " " : "", cmd->args,
			 cmd->keyed ? " [--key KEY] [--dry-run]" : "",
			 cmd->password ? " [--password-stdin]" : "",
			 cmd->extra ? " [OPTIONS]" : "",
			 cmd->summary, cmd->details ? "\n" : "", cmd->details ? cmd->details : "");
	char *first = strstr(buf, "\n\n");
	if (n > 0 && first && first[2] >= 'a' && first[2] <= 'z')
		first[2] = (char)(first[2] - 'a' + 'A');
}

/* Checks the argument count and --key, and finds the socket. */
static int cmd_setup_call(cmd_t *c, int npos)
{
	const command_t *cmd = c->cmd;
	const char *key = cmd->keyed ? config_get(c->opts, "key") : NULL;

	bool file_only = config_get(c->opts, "file") && npos == 0; /* transfer --file */
	if (npos != cmd->nargs && !file_only) {
		if (cmd->nargs == 0)
			fprintf(stderr, "esbank: %s takes no arguments", cmd->name);
		else
			fprintf(stderr, "esbank: %s needs %s", cmd->name, cmd->args);
		fprintf(stderr, " (see esbank %s --help)\n", cmd->name);
		return EXIT_USAGE;
	}
	if (key && (key[0] == '\0' || strlen(key) > LEDGER_KEY_BYTES_MAX)) {
		fprintf(stderr, "esbank: --key must be 1 to %d bytes\n", LEDGER_KEY_BYTES_MAX);
		return EXIT_USAGE;
	}
	c->call.key = key;
	c->call.dry_run = cmd->keyed && config_flag(c->opts, "dry-run");
	if (c->call.dry_run && file_only) {
		fprintf(stderr, "esbank: --dry-run does not go with --file (transfers takes no "
				"dry_run)\n");
		return EXIT_USAGE;
	}
	c->call.json = config_flag(c->opts, "json");
	c->call.sock_path = config_path(config_get(c->opts, "run"), "bus.sock");
	if (!c->call.sock_path) {
		fprintf(stderr, "esbank: out of memory\n");
		return EXIT_TEMPORARY;
	}
	return 0;
}

int commands_run(const commands_global_t *g, int argc, char **argv)
{
	char usage[COMMAND_USAGE_MAX];
	int words, npos;
	cmd_t c = { 0 };

	c.cmd = cmd_find(argc, argv, &words);
	if (!c.cmd)
		return cmd_unknown(argc, argv);
	cmd_setup_opts(&c, g);
	cmd_usage(c.cmd, usage, sizeof(usage));
	c.args = argv + words - 1;
	int rc = config_parse(c.opts, argc - words + 1, c.args, usage, &npos);
	if (rc != 0)
		return rc > 0 ? 0 : EXIT_USAGE;
	rc = cmd_setup_call(&c, npos);
	if (rc == 0)
		rc = c.cmd->run(&c);
	call_close(&c.call);
	free((char *)c.call.sock_path);
	return rc;
}

int commands_help(const commands_global_t *g, int argc, char **argv)
{
	char *help_argv[COMMAND_HELP_WORDS_MAX + 2];

	if (argc > COMMAND_HELP_WORDS_MAX) {
		fprintf(stderr, "esbank: help takes a subcommand name\n");
		return EXIT_USAGE;
	}
	for (int i = 0; i < argc; i++)
		help_argv[i] = argv[i];
	help_argv[argc] = "--help";
	help_argv[argc + 1] = NULL;
	return commands_run(g, argc + 1, help_argv);
}
