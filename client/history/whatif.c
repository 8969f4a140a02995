/*
 * whatif.c - esbank whatif: what the bank would look like had other commands
 * been made. It rebuilds the state after event --at SEQ (history.h), applies
 * the hypothetical commands of --inject FILE with the real rules, and with
 * --then-rest re-checks every later real event, as the command it came from,
 * against that altered state. It reports each injected command's outcome,
 * the real events that would then have been rejected, and every balance
 * next to the real one. Nothing is written to DATA.
 *
 * FILE holds JSON lines, one command of PROTOCOL.md per line (blank lines
 * and lines starting with '#' are skipped):
 *   {"op":"withdraw","account":"1234567890123456","amount":90000}
 * Each line is converted to msgpack and decoded with request_decode() (every
 * bad_request rule; "id" may be left out), checked with ledger_check(), and
 * turned into an event as the resolver would, with these stand-ins for what
 * the log cannot know:
 *   - time: an injected event takes the time of the state it is applied to
 *     (the ts of event SEQ, or of the last event applied);
 *   - open_account: the number is the line's "account" (16 digits) when
 *     given, else one derived from the email (BLAKE2b, 16 digits, the next
 *     free one); the password hash is the placeholder WHATIF_PWHASH; the
 *     verification code is WHATIF_CODE;
 *   - verify_account: for accounts of the real history the code is unknown
 *     (the log keeps only its hash), so any code is taken for them as long
 *     as the account's code is still the real one; a hypothetical account
 *     needs WHATIF_CODE.
 * A later real event is re-checked as its command: the same op, accounts,
 * amount, email and idempotency key (with its fingerprint), at the time it
 * really happened (or the altered state's last time if later); verify takes
 * the real code, which is wrong only if a reissue changed the code. Accepted
 * ones are applied with the next seq of the altered history (a withdrawal
 * with the balance after it in that history); rejected ones
 * are reported with their real seq and the error code; a repeated key is
 * reported as a duplicate (answered, not applied).
 *
 * Balances are compared with the real state at SEQ, or, with --then-rest,
 * with the real state at the end of the log.
 *
 * --json prints one object:
 *   {"at", "compared_with_seq", "injected": [{"line", "op", "ok", "seq" |
 *    "error", "message"}], "rest": {"rejected": [{"seq", "type", "error",
 *    "of_seq" (a duplicate's: error "duplicate"), "event"}], "checked",
 *    "accepted", "rejected_count", "duplicates"} (with --then-rest),
 *    "accounts": [{"account", "real", "whatif", "difference"}] ("real" and
 *    "whatif" as get_account's fields, null where the account does not
 *    exist), "totals": {"real", "whatif"}}
 */
#include "history.h"
#include "reading.h"

#include "currency.h"
#include "event.h"
#include "diag.h"
#include "msg.h"
#include "output.h"
#include "request.h"
#include "snapfile.h"

#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>

#define WHATIF_LINE_MAX (64 * 1024)
#define WHATIF_INJECT_MAX 100000      /* commands in one FILE */
#define WHATIF_REPORT_MAX 1000000     /* rejected events listed */
#define WHATIF_PWHASH "$whatif$no-password$"
#define WHATIF_CODE "whatif"
#define WHATIF_ACCOUNT_FIRST 1000000000000000ULL
#define WHATIF_ACCOUNT_SPAN 9000000000000000ULL
#define WHATIF_JSON_DEPTH_MAX 16

const config_opt_t history_whatif_opts[] = {
	{ .name = "data", .env = "ESBANK_DATA", .def = HISTORY_DATA_DEFAULT,
	  .help = "the data directory to read (never written)" },
	{ .name = "at", .help = "the sequence number after which the commands are made" },
	{ .name = "inject", .help = "file of JSON lines, one command of the protocol each" },
	{ .name = "then-rest", .is_flag = true,
	  .help = "then re-check the real events after --at as commands" },
	{ 0 },
};

typedef struct {
	bool json;
	ledger_t *real;          /* the real state, moved on with the real events */
	ledger_t *alt;           /* the altered state */
	uint64_t at;
	bool first_item;
	/* --then-rest */
	uint64_t checked, accepted, rejected, duplicates;
	int exit_code;
	progress_t prog;
} whatif_t;

/* --- cloning and comparing states --------------------------------------- */

static ledger_t *whatif_clone(const ledger_t *l)
{
	msg_buf_t b;
	ledger_t *out = ledger_new();

	msg_buf_init(&b);
	ledger_pack(l, &b.pk);
	if (out && ledger_unpack(out, b.sb.data, b.sb.size) < 0) {
		ledger_free(out);
		out = NULL;
	}
	msg_buf_free(&b);
	return out;
}

/* --- JSON to msgpack ---------------------------------------------------------- */

static int whatif_pack_json(msgpack_packer *pk, const json_t *j, int depth);

static int whatif_pack_object(msgpack_packer *pk, const json_t *j, int depth)
{
	const char *k;
	json_t *v;

	msgpack_pack_map(pk, (uint32_t)json_object_size(j));
	json_object_foreach((json_t *)j, k, v) {
		msg_pack_str(pk, k);
		if (whatif_pack_json(pk, v, depth + 1) < 0)
			return -EINVAL;
	}
	return 0;
}

static int whatif_pack_json(msgpack_packer *pk, const json_t *j, int depth)
{
	if (depth > WHATIF_JSON_DEPTH_MAX)
		return -EINVAL;
	switch (json_typeof(j)) {
	case JSON_OBJECT:
		return whatif_pack_object(pk, j, depth);
	case JSON_ARRAY:
		msgpack_pack_array(pk, (uint32_t)json_array_size(j));
		for (size_t i = 0; i < json_array_size(j); i++)
			if (whatif_pack_json(pk, json_array_get(j, i), depth + 1) < 0)
				return -EINVAL;
		return 0;
	case JSON_STRING:
		msg_pack_strn(pk, json_string_value(j), json_string_length(j));
		return 0;
	case JSON_INTEGER:
		msgpack_pack_int64(pk, json_integer_value(j));
		return 0;
	case JSON_REAL:
		msgpack_pack_double(pk, json_real_value(j));
		return 0;
	case JSON_TRUE:
		msgpack_pack_true(pk);
		return 0;
	case JSON_FALSE:
		msgpack_pack_false(pk);
		return 0;
	default:
		msgpack_pack_nil(pk);
		return 0;
	}
}

/* --- injected commands ------------------------------------------------------------ */

/* The number a hypothetical account gets: the line's, or one derived from the email. */
static uint64_t whatif_new_number(const ledger_t *l, const json_t *line, const char *email)
{
	const char *given = json_string_value(json_object_get(line, "account"));
	uint64_t n, h;

	if (given && ledger_account_parse(given, strlen(given), &n))
		return n;
	crypto_generichash((unsigned char *)&h, sizeof(h), (const unsigned char *)email,
			   strlen(email), NULL, 0);
	n = WHATIF_ACCOUNT_FIRST + h % WHATIF_ACCOUNT_SPAN;
	while (ledger_find(l, n))
		n = n + 1 < WHATIF_ACCOUNT_FIRST + WHATIF_ACCOUNT_SPAN ? n + 1 : WHATIF_ACCOUNT_FIRST;
	return n;
}

/* The event the resolver would make of a checked command, with the stand-ins above. */
static void whatif_event_of(const whatif_t *w, const ledger_cmd_t *cmd, const json_t *line,
			    ledger_event_t *ev)
{
	uint8_t code_hash[LEDGER_CODE_HASH_BYTES];
	char email[LEDGER_EMAIL_BYTES_MAX + 1] = "";
	ledger_inputs_t in = { .ts_ms = ledger_last_ts(w->alt), .pwhash = WHATIF_PWHASH,
			       .code_hash = code_hash };

	crypto_generichash(code_hash, sizeof(code_hash), (const unsigned char *)WHATIF_CODE,
			   strlen(WHATIF_CODE), NULL, 0);
	if (cmd->op == PROTO_OP_OPEN_ACCOUNT) {
		ledger_email_valid(cmd->email, cmd->email_len, email);
		in.account = whatif_new_number(w->alt, line, email);
	}
	ledger_event_from_cmd(w->alt, cmd, &in, ev);
}

/* A real account whose code is still the real one: any code is taken (see the top). */
static bool whatif_code_unknown(const whatif_t *w, const ledger_cmd_t *cmd)
{
	const ledger_account_t *r = ledger_find(w->real, cmd->account);
	const ledger_account_t *a = ledger_find(w->alt, cmd->account);
	return r && a && memcmp(r->code_hash, a->code_hash, LEDGER_CODE_HASH_BYTES) == 0;
}

static void whatif_item_sep(whatif_t *w)
{
	if (!w->first_item)
		putchar(',');
	w->first_item = false;
}

static void whatif_say_injected(whatif_t *w, size_t lineno, const char *op, proto_err_t e,
				const char *why, const ledger_event_t *ev, int64_t balance)
{
	char buf[CURRENCY_TEXT_MAX], num[LEDGER_ACCOUNT_DIGITS + 1];
	bool ok = e == PROTO_OK;

	if (w->json) {
		whatif_item_sep(w);
		printf("{\"line\":%zu,\"op\":", lineno);
		output_json_string(stdout, op, strlen(op));
		printf(",\"ok\":%s", ok ? "true" : "false");
		if (ok)
			printf(",\"seq\":%" PRIu64, ev->seq);
		if (ok && ev->type == LEDGER_EV_ACCOUNT_OPENED)
			printf(",\"account\":\"%s\"", (ledger_account_format(ev->account, num), num));
		if (!ok)
			printf(",\"error\":\"%s\",\"message\":", proto_err_name(e));
		if (!ok)
			output_json_string(stdout, why, strlen(why));
		putchar('}');
		return;
	}
	printf("  line %-4zu %-15s ", lineno, op);
	if (!ok && strcmp(why, proto_err_name(e)) != 0) {
		printf("rejected: %s (%s)\n", proto_err_name(e), why);
	} else if (!ok) {
		printf("rejected: %s\n", proto_err_name(e));
	} else if (ev->type == LEDGER_EV_ACCOUNT_OPENED) {
		ledger_account_format(ev->account, num);
		printf("applied as seq %" PRIu64 ": account %s\n", ev->seq, num);
	} else if (ev->type == LEDGER_EV_MONEY_TRANSFERRED ||
		   ev->type == LEDGER_EV_MONEY_WITHDRAWN) {
		printf("applied as seq %" PRIu64 ": balance %s\n", ev->seq,
		       currency_format(balance, buf));
	} else {
		printf("applied as seq %" PRIu64 "\n", ev->seq);
	}
}

/* Checks and applies one decoded command; the error, PROTO_OK or PROTO_DUPLICATE. */
static proto_err_t whatif_apply_cmd(whatif_t *w, const ledger_cmd_t *cmd, const json_t *line,
				     ledger_event_t *ev, int64_t *balance)
{
	ledger_key_entry_t prior;
	ledger_result_t res = { 0 };

	proto_err_t e = ledger_check(w->alt, cmd, &prior);
	if (e == PROTO_E_WRONG_CODE && whatif_code_unknown(w, cmd))
		e = PROTO_OK;
	if (e != PROTO_OK)
		return e;
	whatif_event_of(w, cmd, line, ev);
	e = ledger_check_event(w->alt, ev);
	if (e != PROTO_OK)
		return e;
	if (ledger_apply(w->alt, ev, &res) < 0)
		return PROTO_E_INTERNAL;
	*balance = res.balance;
	return PROTO_OK;
}

/* One line of FILE: decode, check, apply, report. */
static void whatif_inject_line(whatif_t *w, size_t lineno, json_t *line)
{
	msg_buf_t b;
	msgpack_zone zone;
	msgpack_object map;
	ledger_cmd_t cmd;
	ledger_event_t ev;
	const char *why = "the line is not a JSON object";
	const char *op = json_string_value(json_object_get(line, "op"));
	int64_t balance = 0;
	proto_err_t e = PROTO_E_BAD_REQUEST;

	if (json_is_object(line) && !json_object_get(line, "id"))
		json_object_set_new(line, "id", json_integer((json_int_t)lineno));
	msg_buf_init(&b);
	msgpack_zone_init(&zone, 1024);
	if (json_is_object(line) && whatif_pack_json(&b.pk, line, 0) == 0 &&
	    msg_decode_map(b.sb.data, b.sb.size, &zone, &map) == 0)
		e = request_decode(&map, &cmd, &why);
	char email_id[LEDGER_EMAIL_ID_CHARS + 1];
	if (e == PROTO_OK && cmd.op == PROTO_OP_OPEN_ACCOUNT)
		history_email_id(&cmd, email_id); /* already_exists of sealed emails too */
	if (e == PROTO_OK && !proto_op_is_command(cmd.op)) {
		e = PROTO_E_UNKNOWN_OP;
		why = "only commands can be injected";
	}
	if (e == PROTO_OK) {
		e = whatif_apply_cmd(w, &cmd, line, &ev, &balance);
		why = e == PROTO_DUPLICATE ? "the key was used before: done once only"
					    : proto_err_name(e);
	}
	whatif_say_injected(w, lineno, op ? op : "?", e, why ? why : "", &ev, balance);
	msgpack_zone_destroy(&zone);
	msg_buf_free(&b);
}

/* Skips blank lines and comments. */
static bool whatif_blank(const char *s)
{
	s += strspn(s, " \t\r\n");
	return *s == '\0' || *s == '#';
}

static int whatif_inject(whatif_t *w, const char *path)
{
	char line[WHATIF_LINE_MAX];
	size_t lineno = 0, n = 0;
	FILE *f = strcmp(path, "-") == 0 ? stdin : fopen(path, "r");

	if (!f) {
		fprintf(stderr, "esbank: cannot open %s: %s\n", path, strerror(errno));
		return EXIT_USAGE;
	}
	while (fgets(line, sizeof(line), f) && n < WHATIF_INJECT_MAX) {
		json_error_t err;
		lineno++;
		if (whatif_blank(line))
			continue;
		json_t *j = json_loads(line, JSON_DISABLE_EOF_CHECK, &err);
		if (!j && !w->json)
			printf("  line %-4zu not JSON: %s\n", lineno, err.text);
		else if (!j)
			whatif_say_injected(w, lineno, "?", PROTO_E_BAD_REQUEST, "not JSON", NULL, 0);
		else
			whatif_inject_line(w, lineno, j);
		json_decref(j);
		n++;
	}
	if (f != stdin)
		fclose(f);
	return 0;
}

/* --- the rest of the real history ----------------------------------------------- */

/*
 * The command a real event came from. A sealed email is opened with
 * DATA/keys when its key is there (so that an injected open_account of it
 * is already_exists), and its hash is the email_id; an erasure is taken as
 * forced (whether it was is not logged).
 */
static void whatif_cmd_of(const ledger_event_t *ev, ledger_cmd_t *cmd,
			  char email[LEDGER_EMAIL_BYTES_MAX + 1], char id[LEDGER_EMAIL_ID_CHARS + 1])
{
	static const char pw[] = "whatif-password";
	bool opened = ev->type == LEDGER_EV_ACCOUNT_OPENED;

	memset(cmd, 0, sizeof(*cmd));
	cmd->op = ev->type == LEDGER_EV_ACCOUNT_OPENED ? PROTO_OP_OPEN_ACCOUNT
		: ev->type == LEDGER_EV_ACCOUNT_VERIFIED ? PROTO_OP_VERIFY_ACCOUNT
		: ev->type == LEDGER_EV_CODE_REISSUED ? PROTO_OP_REISSUE_CODE
		: ev->type == LEDGER_EV_MONEY_TRANSFERRED ? PROTO_OP_TRANSFER
		: ev->type == LEDGER_EV_ACCOUNT_ERASED ? PROTO_OP_ERASE_ACCOUNT
		: PROTO_OP_WITHDRAW;
	cmd->force = true;
	cmd->account = ev->account;
	cmd->account_valid = true;
	cmd->to = ev->to;
	cmd->to_valid = ev->type == LEDGER_EV_MONEY_TRANSFERRED;
	cmd->amount = ev->amount;
	cmd->email = opened && history_event_email(ev, email) ? email : ev->email;
	cmd->email_len = strlen(cmd->email);
	if (opened && ev->has_email_hash) {
		ledger_email_id(ev->email_hash, id);
		cmd->email_id = id;
	}
	cmd->password = pw;
	cmd->password_len = sizeof(pw) - 1;
	cmd->has_key = ev->has_key;
	cmd->key = ev->key;
	cmd->key_len = ev->key_len;
	memcpy(cmd->fp, ev->fp, LEDGER_FP_BYTES);
}

/* verify_account with the real code: ledger_check's order, the code compared by hash. */
static proto_err_t whatif_check_verify(const whatif_t *w, const ledger_event_t *real_ev,
					const ledger_cmd_t *cmd, ledger_key_entry_t *prior)
{
	const ledger_key_entry_t *k = cmd->has_key ? ledger_find_key(w->alt, cmd->key,
								      cmd->key_len) : NULL;
	if (k && (k->op != cmd->op || memcmp(k->fp, cmd->fp, LEDGER_FP_BYTES) != 0))
		return PROTO_E_KEY_CONFLICT;
	if (k) {
		*prior = *k;
		return PROTO_DUPLICATE;
	}
	const ledger_account_t *a = ledger_find(w->alt, real_ev->account);
	const ledger_account_t *r = ledger_find(w->real, real_ev->account);
	if (!a)
		return PROTO_E_NOT_FOUND;
	if (a->verified)
		return PROTO_E_ALREADY_VERIFIED;
	if (!r || memcmp(a->code_hash, r->code_hash, LEDGER_CODE_HASH_BYTES) != 0)
		return PROTO_E_WRONG_CODE;
	return PROTO_OK;
}

/*
 * A withdrawal records the balance after it, which ledger_check_event()
 * holds it to: in the altered history that is the altered balance, not the
 * real one (else every withdrawal from an account an injection touched
 * failed as bad_request). ledger_check() found the account and the funds.
 */
static void whatif_balance_after(const whatif_t *w, ledger_event_t *ev)
{
	const ledger_account_t *a = ledger_find(w->alt, ev->account);

	ev->has_balance = true;
	ev->balance = a->balance - ev->amount;
}

/* Re-checks a real event as its command against the altered state; applies it if accepted. */
static proto_err_t whatif_recheck(whatif_t *w, const ledger_event_t *real_ev,
				   ledger_key_entry_t *prior)
{
	ledger_cmd_t cmd;
	ledger_event_t ev = *real_ev;
	char email[LEDGER_EMAIL_BYTES_MAX + 1], email_id[LEDGER_EMAIL_ID_CHARS + 1];

	whatif_cmd_of(real_ev, &cmd, email, email_id);
	proto_err_t e = real_ev->type == LEDGER_EV_PRIMARY_CHANGED ? PROTO_OK /* no command */
		: cmd.op == PROTO_OP_VERIFY_ACCOUNT ? whatif_check_verify(w, real_ev, &cmd, prior)
		: ledger_check(w->alt, &cmd, prior);
	if (e != PROTO_OK)
		return e;
	ev.seq = ledger_last_seq(w->alt) + 1;
	if (ev.ts_ms < ledger_last_ts(w->alt))
		ev.ts_ms = ledger_last_ts(w->alt);
	if (ev.type == LEDGER_EV_MONEY_WITHDRAWN)
		whatif_balance_after(w, &ev);
	e = ledger_check_event(w->alt, &ev);
	if (e == PROTO_OK && ledger_apply(w->alt, &ev, NULL) < 0)
		e = PROTO_E_INTERNAL;
	return e;
}

static void whatif_say_rejected(whatif_t *w, const logfile_record_t *r,
				const ledger_event_t *ev, proto_err_t e,
				const ledger_key_entry_t *prior)
{
	char a[LEDGER_ACCOUNT_DIGITS + 1], b[LEDGER_ACCOUNT_DIGITS + 1], amt[CURRENCY_TEXT_MAX];
	const char *type = ledger_event_type_name(ev->type);

	if (w->json) {
		msgpack_zone zone;
		msgpack_object obj;
		whatif_item_sep(w);
		printf("{\"seq\":%" PRIu64 ",\"type\":\"%s\"", r->seq, type);
		if (e == PROTO_DUPLICATE)
			printf(",\"error\":\"duplicate\",\"of_seq\":%" PRIu64, prior->seq);
		else
			printf(",\"error\":\"%s\"", proto_err_name(e));
		msgpack_zone_init(&zone, 1024);
		if (msg_decode_map(r->body, r->len, &zone, &obj) == 0) {
			printf(",\"event\":");
			output_json_value(stdout, &obj);
		}
		msgpack_zone_destroy(&zone);
		putchar('}');
		return;
	}
	ledger_account_format(ev->account, a);
	printf("  seq %-8" PRIu64 " %-17s %s", r->seq, type, a);
	if (ev->type == LEDGER_EV_MONEY_TRANSFERRED) /* only a transfer has a `to` */
		printf(" -> %s", (ledger_account_format(ev->to, b), b));
	if (ev->type == LEDGER_EV_MONEY_TRANSFERRED || ev->type == LEDGER_EV_MONEY_WITHDRAWN)
		printf(" %s", currency_format(ev->amount, amt));
	if (e == PROTO_DUPLICATE)
		printf("  duplicate of seq %" PRIu64 " (not applied)\n", prior->seq);
	else
		printf("  rejected: %s\n", proto_err_name(e));
}

static int whatif_rest_cb(const logfile_record_t *r, void *arg)
{
	whatif_t *w = arg;
	ledger_event_t ev;
	ledger_key_entry_t prior;

	progress_update(&w->prog, r->offset);
	if (r->seq <= w->at)
		return 0;
	if (event_decode_bytes(r->body, r->len, &ev) < 0 ||
	    ledger_check_event(w->real, &ev) != PROTO_OK) {
		fprintf(stderr, "esbank: the event at seq %" PRIu64 " (offset %" PRIu64 ") is "
			"not valid (see esbank audit)\n", r->seq, r->offset);
		w->exit_code = EXIT_USAGE;
		return 1;
	}
	proto_err_t e = whatif_recheck(w, &ev, &prior);
	if (ledger_apply(w->real, &ev, NULL) < 0)
		return -ENOMEM;
	w->checked++;
	w->accepted += e == PROTO_OK;
	w->duplicates += e == PROTO_DUPLICATE;
	w->rejected += e != PROTO_OK && e != PROTO_DUPLICATE;
	if (e != PROTO_OK && w->rejected + w->duplicates <= WHATIF_REPORT_MAX)
		whatif_say_rejected(w, r, &ev, e, &prior);
	return 0;
}

static int whatif_rest(whatif_t *w, const char *data_dir)
{
	logfile_scan_report_t rep;

	if (w->json)
		printf(",\"rest\":{\"rejected\":[");
	else
		printf("\nReal events after seq %" PRIu64 ", re-checked as commands:\n", w->at);
	w->first_item = true;
	progress_start(&w->prog, "whatif", 0);
	int rc = logfile_scan(data_dir, &rep, whatif_rest_cb, w);
	progress_end(&w->prog);
	if (rc == -EBADMSG && !(rep.problem == LOGFILE_PROBLEM_TRUNCATED &&
				rep.offset == rep.end_offset)) {
		history_say_problem(&rep);
		return EXIT_USAGE;
	}
	if (rc < 0 && rc != -EBADMSG) {
		fprintf(stderr, "esbank: cannot read the log: %s\n", strerror(-rc));
		return EXIT_TEMPORARY;
	}
	if (w->json)
		printf("],\"checked\":%" PRIu64 ",\"accepted\":%" PRIu64 ",\"rejected_count\":%"
		       PRIu64 ",\"duplicates\":%" PRIu64 "}", w->checked, w->accepted,
		       w->rejected, w->duplicates);
	else
		printf("  %" PRIu64 " checked: %" PRIu64 " accepted, %" PRIu64 " rejected, %"
		       PRIu64 " duplicates\n", w->checked, w->accepted, w->rejected,
		       w->duplicates);
	return w->exit_code;
}

/* --- comparing balances ------------------------------------------------------------ */

static void whatif_side_json(const ledger_account_t *a)
{
	if (a)
		history_account_json(stdout, a);
	else
		fputs("null", stdout);
}

static void whatif_compare_one(whatif_t *w, uint64_t number, const ledger_account_t *r,
			       const ledger_account_t *a)
{
	char num[LEDGER_ACCOUNT_DIGITS + 1], rb[CURRENCY_TEXT_MAX], ab[CURRENCY_TEXT_MAX];
	char db[CURRENCY_TEXT_MAX];
	int64_t diff = (a ? a->balance : 0) - (r ? r->balance : 0);

	ledger_account_format(number, num);
	if (w->json) {
		whatif_item_sep(w);
		printf("{\"account\":\"%s\",\"real\":", num);
		whatif_side_json(r);
		printf(",\"whatif\":");
		whatif_side_json(a);
		printf(",\"difference\":%" PRId64 "}", diff);
		return;
	}
	printf("  %-16s  %16s  %16s  %s%s\n", num, r ? currency_format(r->balance, rb) : "-",
	       a ? currency_format(a->balance, ab) : "-", diff > 0 ? "+" : "",
	       diff ? currency_format(diff, db) : "same");
}

static int whatif_compare_real(const ledger_account_t *r, void *arg)
{
	whatif_t *w = arg;
	whatif_compare_one(w, r->number, r, ledger_find(w->alt, r->number));
	return 0;
}

static int whatif_compare_alt(const ledger_account_t *a, void *arg)
{
	whatif_t *w = arg;
	if (!ledger_find(w->real, a->number))
		whatif_compare_one(w, a->number, NULL, a);
	return 0;
}

static void whatif_compare(whatif_t *w)
{
	char rb[CURRENCY_TEXT_MAX], ab[CURRENCY_TEXT_MAX];

	if (w->json) {
		printf(",\"compared_with_seq\":%" PRIu64 ",\"accounts\":[", ledger_last_seq(w->real));
	} else {
		printf("\nBalances, real at seq %" PRIu64 " and what if:\n", ledger_last_seq(w->real));
		printf("  %-16s  %16s  %16s  %s\n", "ACCOUNT", "REAL", "WHAT IF", "DIFFERENCE");
	}
	w->first_item = true;
	ledger_each_account(w->real, whatif_compare_real, w);
	ledger_each_account(w->alt, whatif_compare_alt, w);
	if (w->json)
		printf("],\"totals\":{\"real\":%" PRId64 ",\"whatif\":%" PRId64 "}}\n",
		       ledger_total_balance(w->real), ledger_total_balance(w->alt));
	else
		printf("  %-16s  %16s  %16s\n", "total", currency_format(ledger_total_balance(w->real),
		       rb), currency_format(ledger_total_balance(w->alt), ab));
}

/* --- the subcommand -------------------------------------------------------------------- */

static int whatif_setup(whatif_t *w, const config_opt_t *opts, history_state_t *st)
{
	history_point_t at = { 0 };

	if (!config_get(opts, "at") || !config_get(opts, "inject")) {
		fprintf(stderr, "esbank: whatif needs --at SEQ and --inject FILE\n");
		return EXIT_USAGE;
	}
	if (config_u64(opts, "at", &at.seq) < 0)
		return EXIT_USAGE;
	int rc = history_rebuild(config_get(opts, "data"), &at, st);
	if (rc)
		return rc;
	w->at = at.seq;
	w->alt = st->ledger;
	w->real = whatif_clone(st->ledger);
	if (!w->real) {
		fprintf(stderr, "esbank: out of memory\n");
		return EXIT_TEMPORARY;
	}
	return 0;
}

static void whatif_head(whatif_t *w, const history_state_t *st)
{
	char hex[HISTORY_HASH_HEX_MAX], when[OUTPUT_TIME_MAX];

	if (w->json) {
		printf("{\"at\":%" PRIu64 ",\"at_hash\":\"%s\",\"injected\":[", w->at,
		       history_hash_hex(st->hash, hex));
		return;
	}
	printf("What if, after seq %" PRIu64 " (%s, chain hash %s):\n", w->at,
	       w->at ? output_time(ledger_last_ts(w->alt), true, when) : "the start",
	       history_hash_hex(st->hash, hex));
}

int whatif_run(const config_opt_t *opts, bool json)
{
	whatif_t w = { .json = json, .first_item = true };
	history_state_t st = { 0 };

	int rc = whatif_setup(&w, opts, &st);
	if (rc == 0) {
		whatif_head(&w, &st);
		rc = whatif_inject(&w, config_get(opts, "inject"));
	}
	if (rc == 0 && json)
		putchar(']');
	if (rc == 0 && config_flag(opts, "then-rest"))
		rc = whatif_rest(&w, config_get(opts, "data"));
	if (rc == 0)
		whatif_compare(&w);
	else if (json && w.alt)
		printf("}\n");
	if (w.real)
		ledger_free(w.real);
	history_state_free(&st);
	return rc;
}
