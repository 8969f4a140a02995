/*
 * audit.c - esbank audit: checks a whole data directory and prints the head
 * hash (the hash of the last record: it commits to the whole history, like a
 * commit id that can be written down and compared later).
 *
 * In one pass over DATA/events.log (logfile_scan) it checks, record by
 * record: the record format and the hash chain; that the sequence has no gap
 * or repeat; that the event decodes and its seq is the record's; that time
 * never goes back; that the event is valid under the rules when replayed in
 * order from the empty state (ledger_check_event) and, after applying it,
 * the money invariant (sum of balances == 100000 x accounts opened - total
 * withdrawn, counted from the events independently of the ledger). Every
 * snapshot in DATA/snapshots is checked when the replay reaches its seq: it
 * must read back (magic, version, checksum), record the log's chain hash at
 * its seq, and hold exactly the replayed state (compared as decoded msgpack,
 * the "sums" read model as a set since its order is a hash table's).
 *
 * The first problem, the one with the lowest seq, is reported with its seq
 * and byte offset in events.log (for a snapshot: the offset of the log record
 * at the snapshot's seq); the exit status is then 100. A problem in a
 * snapshot does not stop the log check; one in the log does.
 *
 * --json prints one object: {"ok", "last_seq", "head_hash", "file_bytes",
 * "first_ts", "last_ts", "snapshots_checked": [seq...], "accounts",
 * "balance", "withdrawn", and when not ok "problem": {"seq", "offset",
 * "what", and "snapshot" (its seq) for a snapshot problem}}.
 */
#include "history.h"
#include "reading.h"

#include "currency.h"
#include "event.h"
#include "diag.h"
#include "msg.h"
#include "output.h"
#include "snapfile.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define AUDIT_FIELD_MAX 64

const config_opt_t history_audit_opts[] = {
	{ .name = "data", .env = "ESBANK_DATA", .def = HISTORY_DATA_DEFAULT,
	  .help = "the data directory to check (never written)" },
	{ 0 },
};

typedef struct {
	bool found;
	uint64_t seq;
	uint64_t offset;
	bool in_snapshot;
	char what[AUDIT_WHAT_MAX];
} audit_problem_t;

typedef struct {
	const char *data_dir;
	ledger_t *ledger;
	uint64_t opened;        /* counted from the events */
	int64_t withdrawn;
	int64_t first_ts;
	uint64_t snaps[SNAPFILE_LIST_MAX]; /* ascending */
	int snaps_n, snaps_next;
	uint64_t checked[SNAPFILE_LIST_MAX];
	int checked_n;
	audit_problem_t problem;
	bool log_broken;        /* the log check stopped at a problem */
	uint64_t head_seq;      /* the last record that passed every check */
	uint8_t head[LOGFILE_HASH_BYTES];
	progress_t prog;
} audit_t;

static void audit_problem(audit_t *a, uint64_t seq, uint64_t offset, bool in_snapshot,
			  const char *fmt, ...) __attribute__((format(printf, 5, 6)));

static void audit_problem(audit_t *a, uint64_t seq, uint64_t offset, bool in_snapshot,
			  const char *fmt, ...)
{
	va_list ap;

	if (a->problem.found)
		return;
	a->problem = (audit_problem_t){ .found = true, .seq = seq, .offset = offset,
					.in_snapshot = in_snapshot };
	va_start(ap, fmt);
	vsnprintf(a->problem.what, sizeof(a->problem.what), fmt, ap);
	va_end(ap);
}

/* --- comparing states ------------------------------------------------------ */

static int audit_cmp_obj(const void *x, const void *y)
{
	const msgpack_object *a = x, *b = y;
	uint64_t ta = 0, tb = 0;

	if (a->type == MSGPACK_OBJECT_ARRAY && a->via.array.size > 0)
		ta = a->via.array.ptr[0].via.u64;
	if (b->type == MSGPACK_OBJECT_ARRAY && b->via.array.size > 0)
		tb = b->via.array.ptr[0].via.u64;
	return ta < tb ? -1 : ta > tb;
}

/* Two "sums" arrays hold the same [tag, total] pairs in any order. */
static bool audit_same_set(msgpack_object a, msgpack_object b)
{
	if (a.type != MSGPACK_OBJECT_ARRAY || b.type != MSGPACK_OBJECT_ARRAY ||
	    a.via.array.size != b.via.array.size)
		return false;
	qsort(a.via.array.ptr, a.via.array.size, sizeof(msgpack_object), audit_cmp_obj);
	qsort(b.via.array.ptr, b.via.array.size, sizeof(msgpack_object), audit_cmp_obj);
	return msgpack_object_equal(a, b);
}

/*
 * Compares two ledger_pack() maps; true when equal, else false with the
 * name of the first field that differs in field.
 */
static bool audit_state_same(const msgpack_object *a, const msgpack_object *b,
			     char field[AUDIT_FIELD_MAX])
{
	snprintf(field, AUDIT_FIELD_MAX, "the number of fields");
	if (a->via.map.size != b->via.map.size)
		return false;
	for (uint32_t i = 0; i < a->via.map.size; i++) {
		const msgpack_object_kv *kv = &a->via.map.ptr[i];
		snprintf(field, AUDIT_FIELD_MAX, "%.*s", (int)kv->key.via.str.size,
			 kv->key.via.str.ptr);
		const msgpack_object *other = msg_get(b, field);
		if (!other)
			return false;
		bool same = strcmp(field, "sums") == 0 ? audit_same_set(kv->val, *other)
						       : msgpack_object_equal(kv->val, *other);
		if (!same)
			return false;
	}
	return true;
}

/* Compares the snapshot's body with the replayed state; true when they are equal. */
static bool audit_compare_state(const ledger_t *l, const snapfile_t *snap,
				char field[AUDIT_FIELD_MAX])
{
	msg_buf_t mine;
	msgpack_zone zone;
	msgpack_object a, b;
	bool same = false;

	snprintf(field, AUDIT_FIELD_MAX, "its body, which does not decode");
	msg_buf_init(&mine);
	ledger_pack(l, &mine.pk);
	msgpack_zone_init(&zone, 4096);
	if (msg_decode_map(snap->body, snap->body_len, &zone, &b) == 0 &&
	    msg_decode_map(mine.sb.data, mine.sb.size, &zone, &a) == 0)
		same = audit_state_same(&a, &b, field);
	msgpack_zone_destroy(&zone);
	msg_buf_free(&mine);
	return same;
}

/* --- snapshots ------------------------------------------------------------------ */

static void audit_snapshot(audit_t *a, uint64_t seq, uint64_t offset,
			   const uint8_t hash[LOGFILE_HASH_BYTES])
{
	snapfile_t snap;
	char field[AUDIT_FIELD_MAX];

	int rc = snapfile_read(a->data_dir, seq, &snap);
	a->checked[a->checked_n++] = seq;
	if (rc < 0) {
		audit_problem(a, seq, offset, true, "snapshot %" PRIu64 " cannot be read: %s",
			      seq, rc == -EBADMSG ? "damaged (bad magic, size or checksum)"
						  : strerror(-rc));
		return;
	}
	if (memcmp(snap.chain, hash, LOGFILE_HASH_BYTES) != 0) {
		audit_problem(a, seq, offset, true, "snapshot %" PRIu64 " records a chain hash "
			      "that is not the log's at its seq", seq);
	} else if (!audit_compare_state(a->ledger, &snap, field)) {
		audit_problem(a, seq, offset, true, "snapshot %" PRIu64 " differs from the "
			      "replay at its seq (in \"%s\")", seq, field);
	}
	snapfile_free(&snap);
}

static void audit_snapshots_at(audit_t *a, uint64_t seq, uint64_t offset,
			       const uint8_t hash[LOGFILE_HASH_BYTES])
{
	while (a->snaps_next < a->snaps_n && a->snaps[a->snaps_next] <= seq) {
		uint64_t s = a->snaps[a->snaps_next++];
		if (s == seq)
			audit_snapshot(a, s, offset, hash);
	}
}

static void audit_list_snapshots(audit_t *a)
{
	uint64_t desc[SNAPFILE_LIST_MAX];
	int n = snapfile_list(a->data_dir, desc, SNAPFILE_LIST_MAX);

	for (int i = 0; i < n; i++)
		a->snaps[i] = desc[n - 1 - i];
	a->snaps_n = n > 0 ? n : 0;
}

/* --- the log ------------------------------------------------------------------------ */

static void audit_count(audit_t *a, const ledger_event_t *ev)
{
	if (ev->type == LEDGER_EV_ACCOUNT_OPENED)
		a->opened++;
	else if (ev->type == LEDGER_EV_MONEY_WITHDRAWN)
		a->withdrawn += ev->amount;
}

/* Checks one event in order; false after recording a problem. */
static bool audit_event(audit_t *a, const logfile_record_t *r, ledger_event_t *ev)
{
	int64_t last_ts = ledger_last_ts(a->ledger);
	proto_err_t e;

	if (event_decode_bytes(r->body, r->len, ev) < 0) {
		audit_problem(a, r->seq, r->offset, false, "the record does not hold a valid "
			      "event");
		return false;
	}
	if (ev->seq != r->seq) {
		audit_problem(a, r->seq, r->offset, false, "the event says seq %" PRIu64,
			      ev->seq);
		return false;
	}
	if (r->seq > 1 && ev->ts_ms < last_ts) {
		audit_problem(a, r->seq, r->offset, false, "time goes back: ts %" PRId64
			      " after %" PRId64, ev->ts_ms, last_ts);
		return false;
	}
	e = ledger_check_event(a->ledger, ev);
	if (e != PROTO_OK) {
		audit_problem(a, r->seq, r->offset, false, "the %s event breaks the rules: %s",
			      ledger_event_type_name(ev->type), proto_err_name(e));
		return false;
	}
	return true;
}

static int audit_record_cb(const logfile_record_t *r, void *arg)
{
	audit_t *a = arg;
	ledger_event_t ev;

	progress_update(&a->prog, r->offset);
	if (!audit_event(a, r, &ev)) {
		a->log_broken = true;
		return 1;
	}
	if (ledger_apply(a->ledger, &ev, NULL) < 0)
		return -ENOMEM;
	audit_count(a, &ev);
	if (r->seq == 1)
		a->first_ts = ev.ts_ms;
	int64_t want = (int64_t)a->opened * LEDGER_OPEN_BALANCE - a->withdrawn;
	if (ledger_total_balance(a->ledger) != want) {
		audit_problem(a, r->seq, r->offset, false, "the money invariant is broken: "
			      "balances %" PRId64 " != %" PRId64, ledger_total_balance(a->ledger),
			      want);
		a->log_broken = true;
		return 1;
	}
	a->head_seq = r->seq;
	memcpy(a->head, r->hash, LOGFILE_HASH_BYTES);
	audit_snapshots_at(a, r->seq, r->offset, r->hash);
	return 0;
}

/* The sum of every balance, added up account by account. */
static int audit_add_balance(const ledger_account_t *acc, void *arg)
{
	*(int64_t *)arg += acc->balance;
	return 0;
}

/* After the scan: the log's own problem, snapshots past its end, the final sum. */
static void audit_finish(audit_t *a, int rc, const logfile_scan_report_t *rep)
{
	int64_t sum = 0;

	if (rc == -EBADMSG) {
		a->log_broken = true;
		audit_problem(a, rep->seq, rep->offset, false, "%s%s",
			      logfile_problem_text(rep->problem),
			      rep->problem == LOGFILE_PROBLEM_TRUNCATED ? " (a torn tail?)" : "");
		if (rep->problem == LOGFILE_PROBLEM_SEQ)
			snprintf(a->problem.what + strlen(a->problem.what),
				 sizeof(a->problem.what) - strlen(a->problem.what),
				 ": found %" PRIu64, rep->found_seq);
	}
	if (a->log_broken)
		return;
	if (a->snaps_next < a->snaps_n)
		audit_problem(a, a->snaps[a->snaps_next], rep->end_offset, true,
			      "snapshot %" PRIu64 " is past the end of the log (seq %" PRIu64 ")",
			      a->snaps[a->snaps_next], a->head_seq);
	ledger_each_account(a->ledger, audit_add_balance, &sum);
	if (sum != ledger_total_balance(a->ledger))
		audit_problem(a, a->head_seq, rep->end_offset, false, "the balances add up "
			      "to %" PRId64 ", not %" PRId64, sum, ledger_total_balance(a->ledger));
}

/* --- output ---------------------------------------------------------------------------- */

static void audit_print_json(const audit_t *a, const logfile_scan_report_t *rep)
{
	char hex[HISTORY_HASH_HEX_MAX];

	printf("{\"ok\":%s,\"last_seq\":%" PRIu64 ",\"head_hash\":\"%s\",\"file_bytes\":%" PRIu64
	       ",\"first_ts\":%" PRId64 ",\"last_ts\":%" PRId64 ",\"snapshots_checked\":[",
	       a->problem.found ? "false" : "true", a->head_seq, history_hash_hex(a->head, hex),
	       rep->file_bytes, a->first_ts, ledger_last_ts(a->ledger));
	for (int i = 0; i < a->checked_n; i++)
		printf("%s%" PRIu64, i ? "," : "", a->checked[i]);
	printf("],\"accounts\":%zu,\"balance\":%" PRId64 ",\"withdrawn\":%" PRId64,
	       ledger_account_count(a->ledger), ledger_total_balance(a->ledger),
	       ledger_total_withdrawn(a->ledger));
	if (a->problem.found) {
		printf(",\"problem\":{\"seq\":%" PRIu64 ",\"offset\":%" PRIu64 ",\"what\":",
		       a->problem.seq, a->problem.offset);
		output_json_string(stdout, a->problem.what, strlen(a->problem.what));
		if (a->problem.in_snapshot)
			printf(",\"snapshot\":%" PRIu64, a->problem.seq);
		putchar('}');
	}
	printf("}\n");
}

static void audit_print_human(const audit_t *a, const logfile_scan_report_t *rep)
{
	char hex[HISTORY_HASH_HEX_MAX], t0[OUTPUT_TIME_MAX], t1[OUTPUT_TIME_MAX];
	char bal[CURRENCY_TEXT_MAX], wd[CURRENCY_TEXT_MAX];
	const ledger_t *l = a->ledger;

	output_pair("Log", "%s/%s, %" PRIu64 " bytes", a->data_dir, LOGFILE_NAME,
		    rep->file_bytes);
	if (a->head_seq)
		output_pair("Events", "%" PRIu64 " good, %s to %s", a->head_seq,
			    output_time(a->first_ts, true, t0),
			    output_time(ledger_last_ts(l), true, t1));
	else
		output_pair("Events", "none good");
	output_pair("Snapshots", "%d checked", a->checked_n);
	output_pair("Money", "%zu accounts, balances %s, withdrawn %s",
		    ledger_account_count(l), currency_format(ledger_total_balance(l), bal),
		    currency_format(ledger_total_withdrawn(l), wd));
	output_pair("Head hash", "%s (seq %" PRIu64 ")", history_hash_hex(a->head, hex),
		    a->head_seq);
	if (!a->problem.found)
		printf("\nAudit passed: chain, sequence, times, rules, money and snapshots "
		       "check out.\n");
}

/*
 * Runs the whole check of a.data_dir into *a (its ledger allocated here).
 * Returns 0 (a->problem says whether it passed), or an exit code after
 * saying why on stderr when the log cannot be read.
 */
static int audit_check(audit_t *a, logfile_scan_report_t *rep)
{
	struct stat st;
	char path[4096];

	a->ledger = ledger_new();
	if (!a->ledger) {
		fprintf(stderr, "esbank: out of memory\n");
		return EXIT_TEMPORARY;
	}
	audit_list_snapshots(a);
	snprintf(path, sizeof(path), "%s/%s", a->data_dir, LOGFILE_NAME);
	progress_start(&a->prog, "audit", stat(path, &st) == 0 ? (uint64_t)st.st_size : 0);
	int rc = logfile_scan(a->data_dir, rep, audit_record_cb, a);
	progress_end(&a->prog);
	if (rc < 0 && rc != -EBADMSG) {
		fprintf(stderr, "esbank: cannot read %s: %s\n", path, strerror(-rc));
		return rc == -ENOENT ? EXIT_USAGE : EXIT_TEMPORARY;
	}
	audit_finish(a, rc, rep);
	return 0;
}

int audit_data(const char *data_dir, audit_summary_t *out)
{
	audit_t a = { .data_dir = data_dir };
	logfile_scan_report_t rep;

	int rc = audit_check(&a, &rep);
	if (rc == 0) {
		*out = (audit_summary_t){ .ok = !a.problem.found, .last_seq = a.head_seq,
					  .problem_seq = a.problem.seq,
					  .accounts = ledger_account_count(a.ledger),
					  .balance = ledger_total_balance(a.ledger) };
		memcpy(out->head_hash, a.head, LOGFILE_HASH_BYTES);
		snprintf(out->what, sizeof(out->what), "%s", a.problem.what);
	}
	ledger_free(a.ledger);
	return rc;
}

int audit_run(const config_opt_t *opts, bool json)
{
	audit_t a = { .data_dir = config_get(opts, "data") };
	logfile_scan_report_t rep;

	int rc = audit_check(&a, &rep);
	if (rc) {
		ledger_free(a.ledger);
		return rc;
	}
	if (json)
		audit_print_json(&a, &rep);
	else
		audit_print_human(&a, &rep);
	if (a.problem.found)
		fprintf(stderr, "esbank: audit failed at seq %" PRIu64 ", byte offset %" PRIu64
			": %s\n", a.problem.seq, a.problem.offset, a.problem.what);
	ledger_free(a.ledger);
	return a.problem.found ? EXIT_USAGE : 0;
}
