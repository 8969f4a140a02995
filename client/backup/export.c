/*
 * export.c - esbank export events|accounts --format jsonl|csv: DATA's
 * history or state for other tools, read-only (logfile_scan, or
 * history_rebuild for the accounts), safe while the server runs.
 *
 * Each row is a list of named text cells in a fixed column order; a cell
 * that does not apply is absent (JSON: left out; CSV: empty). Columns:
 *   events:   seq, type, ts (RFC 3339 UTC with milliseconds), account, from,
 *             to, amount (cents), balance (cents; money_withdrawn), email,
 *             node (primary_changed), key; with --with-secrets also pwhash,
 *             code_hash (64 hex)
 *   accounts: number, email, verified, balance (cents), opened_at,
 *             last_activity (RFC 3339; empty when none); with --with-secrets
 *             also pwhash, code_hash
 * JSON lines: one object per row; numbers and booleans unquoted, the rest
 * strings. CSV (RFC 4180): a header line, then one line per row, CRLF line
 * ends; a cell holding a comma, quote, CR or LF is quoted with quotes doubled.
 * A text cell (an email, a key) that begins with =, +, -, @, TAB or CR gets
 * a leading ' so that a spreadsheet opening the file shows it as text
 * instead of running it as a formula (CSV injection); numbers never do.
 */
#include "backup.h"

#include "diag.h"
#include "event.h"
#include "history.h"
#include "logfile.h"
#include "output.h"
#include "reading.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#define EXPORT_COLS_MAX 13
#define EXPORT_CELL_MAX 300 /* above every field: a node name, an email, a pwhash */

const config_opt_t export_opts[] = {
	{ .name = "data", .env = "ESBANK_DATA", .def = HISTORY_DATA_DEFAULT,
	  .help = "the data directory to read (never written)" },
	{ .name = "format", .def = "jsonl", .help = "jsonl (default) or csv" },
	{ .name = "with-secrets", .is_flag = true,
	  .help = "include password hashes and verification code hashes" },
	{ 0 },
};

typedef struct {
	const char *name;
	bool quoted;   /* JSON: a string (else a number or boolean) */
} export_col_t;

static const export_col_t export_event_cols[] = {
	{ "seq", false }, { "type", true }, { "ts", true }, { "account", true },
	{ "from", true }, { "to", true }, { "amount", false }, { "balance", false },
	{ "email", true }, { "node", true }, { "key", true }, { "pwhash", true },
	{ "code_hash", true },
};
static const export_col_t export_account_cols[] = {
	{ "number", true }, { "email", true }, { "verified", false }, { "balance", false },
	{ "opened_at", true }, { "last_activity", true }, { "pwhash", true },
	{ "code_hash", true },
};
#define EXPORT_SECRET_COLS 2 /* the last two columns of each table */

typedef struct {
	bool csv, secrets;
	const ledger_t *ledger;              /* export_accounts: the state read */
	const export_col_t *cols;
	size_t ncols;                        /* without the secret columns unless asked */
	const char *cell[EXPORT_COLS_MAX];   /* NULL: absent */
	char text[EXPORT_COLS_MAX][EXPORT_CELL_MAX];
	uint64_t rows;
} export_t;

/* --- writing rows ----------------------------------------------------------- */

/* A spreadsheet runs a cell that starts with one of these as a formula. */
#define EXPORT_CSV_FORMULA_LEADS "=+-@\t\r"

static void export_csv_cell(const char *s, bool text)
{
	bool guard = text && *s && strchr(EXPORT_CSV_FORMULA_LEADS, *s);
	if (!strpbrk(s, ",\"\r\n")) {
		if (guard)
			putchar('\'');
		fputs(s, stdout);
		return;
	}
	putchar('"');
	if (guard)
		putchar('\'');
	for (; *s; s++) {
		if (*s == '"')
			putchar('"');
		putchar(*s);
	}
	putchar('"');
}

static void export_header(const export_t *x)
{
	if (!x->csv)
		return;
	for (size_t i = 0; i < x->ncols; i++)
		printf("%s%s", i ? "," : "", x->cols[i].name);
	printf("\r\n");
}

static void export_row(export_t *x)
{
	bool first = true;

	if (!x->csv)
		putchar('{');
	for (size_t i = 0; i < x->ncols; i++) {
		const char *v = x->cell[i];
		if (x->csv) {
			if (i)
				putchar(',');
			if (v)
				export_csv_cell(v, x->cols[i].quoted);
			continue;
		}
		if (!v)
			continue;
		printf("%s\"%s\":", first ? "" : ",", x->cols[i].name);
		first = false;
		if (x->cols[i].quoted)
			output_json_string(stdout, v, strlen(v));
		else
			fputs(v, stdout);
	}
	fputs(x->csv ? "\r\n" : "}\n", stdout);
	memset(x->cell, 0, sizeof(x->cell));
	x->rows++;
}

/* Sets cell i to a formatted text. */
static void export_set(export_t *x, size_t i, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void export_set(export_t *x, size_t i, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(x->text[i], sizeof(x->text[i]), fmt, ap);
	va_end(ap);
	x->cell[i] = x->text[i];
}

static void export_set_time(export_t *x, size_t i, int64_t ts_ms)
{
	char t[OUTPUT_TIME_MAX];
	export_set(x, i, "%s", output_time(ts_ms, true, t));
}

static void export_set_hex(export_t *x, size_t i, const uint8_t *p, size_t n)
{
	event_hex(p, n, x->text[i]);
	x->cell[i] = x->text[i];
}

/* --- events ----------------------------------------------------------------- */

enum { EV_SEQ, EV_TYPE, EV_TS, EV_ACCOUNT, EV_FROM, EV_TO, EV_AMOUNT, EV_BALANCE,
       EV_EMAIL, EV_NODE, EV_KEY, EV_PWHASH, EV_CODE_HASH };

static void export_event_fields(export_t *x, const ledger_event_t *ev)
{
	bool transfer = ev->type == LEDGER_EV_MONEY_TRANSFERRED;

	if (ev->type != LEDGER_EV_PRIMARY_CHANGED)
		export_set(x, transfer ? EV_FROM : EV_ACCOUNT, "%016" PRIu64, ev->account);
	if (transfer)
		export_set(x, EV_TO, "%016" PRIu64, ev->to);
	if (transfer || ev->type == LEDGER_EV_MONEY_WITHDRAWN ||
	    ev->type == LEDGER_EV_ACCOUNT_OPENED)
		export_set(x, EV_AMOUNT, "%" PRId64, ev->amount);
	if (ev->type == LEDGER_EV_MONEY_WITHDRAWN && ev->has_balance)
		export_set(x, EV_BALANCE, "%" PRId64, ev->balance);
	char email[LEDGER_EMAIL_BYTES_MAX + 1];
	if (ev->type == LEDGER_EV_ACCOUNT_OPENED && history_event_email(ev, email))
		export_set(x, EV_EMAIL, "%s", email); /* none once erased: its key is gone */
	if (ev->type == LEDGER_EV_PRIMARY_CHANGED)
		export_set(x, EV_NODE, "%s", ev->node);
	if (ev->has_key)
		export_set(x, EV_KEY, "%.*s", (int)ev->key_len, ev->key);
	if (!x->secrets)
		return;
	if (ev->type == LEDGER_EV_ACCOUNT_OPENED)
		export_set(x, EV_PWHASH, "%s", ev->pwhash);
	if (ev->type == LEDGER_EV_ACCOUNT_OPENED || ev->type == LEDGER_EV_CODE_REISSUED)
		export_set_hex(x, EV_CODE_HASH, ev->code_hash, LEDGER_CODE_HASH_BYTES);
}

static int export_event_cb(const logfile_record_t *r, void *arg)
{
	export_t *x = arg;
	ledger_event_t ev;

	if (event_decode_bytes(r->body, r->len, &ev) < 0) {
		fprintf(stderr, "esbank: seq %" PRIu64 " (offset %" PRIu64 ") does not hold a "
			"valid event\n", r->seq, r->offset);
		return -EBADMSG;
	}
	export_set(x, EV_SEQ, "%" PRIu64, r->seq);
	export_set(x, EV_TYPE, "%s", ledger_event_type_name(ev.type));
	export_set_time(x, EV_TS, ev.ts_ms);
	export_event_fields(x, &ev);
	export_row(x);
	return 0;
}

static int export_events(export_t *x, const char *data)
{
	logfile_scan_report_t rep;

	export_header(x);
	history_keys_open(data);
	int rc = logfile_scan(data, &rep, export_event_cb, x);
	if (rc == -EBADMSG && rep.problem == LOGFILE_PROBLEM_TRUNCATED)
		rc = 0; /* a batch being written: the export ends before it */
	if (rc == -EBADMSG && rep.problem != LOGFILE_PROBLEM_NONE)
		history_say_problem(&rep);
	else if (rc < 0 && rc != -EBADMSG)
		fprintf(stderr, "esbank: cannot read %s/%s: %s\n", data, LOGFILE_NAME,
			strerror(-rc));
	return rc == 0 ? 0 : rc == -EBADMSG || rc == -ENOENT ? EXIT_USAGE : EXIT_TEMPORARY;
}

/* --- accounts --------------------------------------------------------------- */

enum { AC_NUMBER, AC_EMAIL, AC_VERIFIED, AC_BALANCE, AC_OPENED, AC_ACTIVITY, AC_PWHASH,
       AC_CODE_HASH };

static int export_account_cb(const ledger_account_t *a, void *arg)
{
	export_t *x = arg;

	export_set(x, AC_NUMBER, "%016" PRIu64, a->number);
	char email[LEDGER_EMAIL_BYTES_MAX + 1];
	if (history_account_email(a, email))
		export_set(x, AC_EMAIL, "%s", email);
	export_set(x, AC_VERIFIED, "%s", a->verified ? "true" : "false");
	export_set(x, AC_BALANCE, "%" PRId64, a->balance);
	export_set_time(x, AC_OPENED, a->opened_at_ms);
	if (a->last_activity_ms)
		export_set_time(x, AC_ACTIVITY, a->last_activity_ms);
	if (x->secrets) {
		char pwhash[LEDGER_PWHASH_BYTES_MAX];
		ledger_account_pwhash(x->ledger, a, pwhash);
		export_set(x, AC_PWHASH, "%s", pwhash);
		export_set_hex(x, AC_CODE_HASH, a->code_hash, LEDGER_CODE_HASH_BYTES);
	}
	export_row(x);
	return 0;
}

static int export_accounts(export_t *x, const char *data)
{
	history_point_t end = { .seq = UINT64_MAX };
	history_state_t st;

	int rc = history_rebuild(data, &end, &st);
	if (rc)
		return rc;
	export_header(x);
	x->ledger = st.ledger;
	ledger_each_account(st.ledger, export_account_cb, x);
	history_state_free(&st);
	return 0;
}

int export_run(const config_opt_t *opts, const char *what)
{
	const char *format = config_get(opts, "format"), *data = config_get(opts, "data");
	export_t x = { .csv = strcmp(format, "csv") == 0,
		       .secrets = config_flag(opts, "with-secrets") };
	bool events = strcmp(what, "events") == 0;

	if (!x.csv && strcmp(format, "jsonl") != 0) {
		fprintf(stderr, "esbank: --format is jsonl or csv, not \"%s\"\n", format);
		return EXIT_USAGE;
	}
	if (!events && strcmp(what, "accounts") != 0) {
		fprintf(stderr, "esbank: export events or accounts, not \"%s\"\n", what);
		return EXIT_USAGE;
	}
	x.cols = events ? export_event_cols : export_account_cols;
	x.ncols = events ? sizeof(export_event_cols) / sizeof(export_event_cols[0])
			 : sizeof(export_account_cols) / sizeof(export_account_cols[0]);
	if (!x.secrets)
		x.ncols -= EXPORT_SECRET_COLS;
	int rc = events ? export_events(&x, data) : export_accounts(&x, data);
	if (fflush(stdout) != 0) {
		fprintf(stderr, "esbank: writing the export: %s\n", strerror(errno));
		return EXIT_TEMPORARY;
	}
	return rc;
}
