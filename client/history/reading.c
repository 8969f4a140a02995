/*
 * reading.c - what the offline history tools share (see reading.h):
 * rebuilding the state at a point of history, time arguments and account
 * printing. The tools are replay.c, audit.c and whatif.c; history.c
 * dispatches to them.
 *
 * Rebuilding: the newest snapshot at or before the point is loaded, then
 * logfile_scan() reads the log from its start. Records up to the snapshot are
 * only chain-checked (the chain hash at the snapshot's seq must equal the one
 * the snapshot recorded, or the snapshot is skipped and the rebuild starts
 * again from an older one); later records are decoded, checked with
 * ledger_check_event() and applied until the point is passed.
 */
#include "reading.h"

#include "currency.h"
#include "event.h"
#include "diag.h"
#include "output.h"
#include "pii.h"
#include "snapfile.h"

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#define HISTORY_PATH_MAX 4096
#define HISTORY_TIME_TEXT_MAX 40

/* --- choosing a snapshot ------------------------------------------------- */

/* Is the snapshot's state at or before the point? */
static bool history_snapshot_fits(const ledger_t *l, const history_point_t *at)
{
	if (at->by_time)
		return ledger_last_ts(l) <= at->ts_ms;
	return ledger_last_seq(l) <= at->seq;
}

/*
 * Loads the newest valid snapshot below seq below that fits the point into
 * *snap and *l; false when there is none (then start from the empty state).
 */
static bool history_pick_snapshot(const char *data_dir, const history_point_t *at,
				  uint64_t below, snapfile_t *snap, ledger_t **l)
{
	uint64_t seqs[SNAPFILE_LIST_MAX];
	int n = snapfile_list(data_dir, seqs, SNAPFILE_LIST_MAX);

	for (int i = 0; i < n; i++) {
		if (seqs[i] >= below || (!at->by_time && seqs[i] > at->seq))
			continue;
		int rc = snapfile_read(data_dir, seqs[i], snap);
		if (rc == 0)
			rc = snapfile_to_ledger(snap, l);
		if (rc < 0) {
			fprintf(stderr, "esbank: snapshot %" PRIu64 " skipped: %s\n", seqs[i],
				strerror(-rc));
			snapfile_free(snap);
			continue;
		}
		if (history_snapshot_fits(*l, at))
			return true;
		ledger_free(*l);
		snapfile_free(snap);
	}
	*l = NULL;
	return false;
}

/* --- replaying the log ----------------------------------------------------- */

typedef struct {
	const history_point_t *at;
	history_state_t *st;
	uint64_t snap_seq;
	uint8_t snap_chain[LOGFILE_HASH_BYTES];
	bool snap_checked;
	int exit_code;    /* set with -ECANCELED */
	progress_t prog;
} history_rebuild_t;

static int history_fail(history_rebuild_t *rb, int exit_code)
{
	rb->exit_code = exit_code;
	return -ECANCELED;
}

/* A record at or before the snapshot: only its chain hash matters. */
static int history_skip_record(history_rebuild_t *rb, const logfile_record_t *r)
{
	if (r->seq < rb->snap_seq)
		return 0;
	if (memcmp(r->hash, rb->snap_chain, LOGFILE_HASH_BYTES) != 0)
		return -ESTALE;
	rb->snap_checked = true;
	memcpy(rb->st->hash, r->hash, LOGFILE_HASH_BYTES);
	return 0;
}

static int history_rebuild_cb(const logfile_record_t *r, void *arg)
{
	history_rebuild_t *rb = arg;
	ledger_event_t ev;

	progress_update(&rb->prog, r->offset);
	if (r->seq <= rb->snap_seq)
		return history_skip_record(rb, r);
	if (!rb->at->by_time && r->seq > rb->at->seq)
		return 1;
	if (event_decode_bytes(r->body, r->len, &ev) < 0 || ev.seq != r->seq) {
		fprintf(stderr, "esbank: the event at seq %" PRIu64 " (offset %" PRIu64 ") is "
			"not a valid event (see esbank audit)\n", r->seq, r->offset);
		return history_fail(rb, EXIT_USAGE);
	}
	if (rb->at->by_time && ev.ts_ms > rb->at->ts_ms)
		return 1;
	proto_err_t e = ledger_check_event(rb->st->ledger, &ev);
	if (e != PROTO_OK) {
		fprintf(stderr, "esbank: the event at seq %" PRIu64 " (offset %" PRIu64 ") breaks "
			"the rules: %s (see esbank audit)\n", r->seq, r->offset, proto_err_name(e));
		return history_fail(rb, EXIT_USAGE);
	}
	if (ledger_apply(rb->st->ledger, &ev, NULL) < 0) {
		fprintf(stderr, "esbank: out of memory\n");
		return history_fail(rb, EXIT_TEMPORARY);
	}
	rb->st->events++;
	memcpy(rb->st->hash, r->hash, LOGFILE_HASH_BYTES);
	return 0;
}

void history_say_problem(const logfile_scan_report_t *rep)
{
	fprintf(stderr, "esbank: events.log: seq %" PRIu64 " at byte offset %" PRIu64 ": %s",
		rep->seq, rep->offset, logfile_problem_text(rep->problem));
	if (rep->problem == LOGFILE_PROBLEM_SEQ)
		fprintf(stderr, " (found %" PRIu64 ")", rep->found_seq);
	fputc('\n', stderr);
}

/* What the scan's end means: 0 (done), 1 (try an older snapshot) or an exit code. */
static int history_scan_end(const char *data_dir, history_rebuild_t *rb, int rc,
			    const logfile_scan_report_t *rep)
{
	if (rc == -ESTALE || (rc == 0 && rb->snap_seq && !rb->snap_checked)) {
		fprintf(stderr, "esbank: snapshot %" PRIu64 " skipped: it does not match the "
			"log's hash at its seq\n", rb->snap_seq);
		return 1;
	}
	if (rc == -ECANCELED)
		return rb->exit_code;
	if (rc == -EBADMSG && rep->problem == LOGFILE_PROBLEM_TRUNCATED &&
	    rep->offset == rep->end_offset) {
		rb->st->log_torn = true;
		fprintf(stderr, "esbank: warning: the log ends inside a record at offset %" PRIu64
			" (a torn tail: the state ends at seq %" PRIu64 ")\n", rep->offset,
			rep->last_seq);
	} else if (rc == -EBADMSG) {
		history_say_problem(rep);
		fprintf(stderr, "esbank: the log is damaged before the point asked for; see "
			"esbank audit\n");
		return EXIT_USAGE;
	} else if (rc < 0) {
		fprintf(stderr, "esbank: cannot read %s/%s: %s\n", data_dir, LOGFILE_NAME,
			strerror(-rc));
		return rc == -ENOENT ? EXIT_USAGE : EXIT_TEMPORARY;
	}
	if (rb->snap_seq && !rb->snap_checked)
		return 1;
	return 0;
}

static uint64_t history_log_bytes(const char *data_dir)
{
	char path[HISTORY_PATH_MAX];
	struct stat st;

	snprintf(path, sizeof(path), "%s/%s", data_dir, LOGFILE_NAME);
	return stat(path, &st) == 0 ? (uint64_t)st.st_size : 0;
}

/* One attempt from the newest snapshot below seq below: 0, 1 (again) or an exit code. */
static int history_rebuild_from(const char *data_dir, const history_point_t *at,
				 uint64_t *below, history_state_t *out)
{
	history_rebuild_t rb = { .at = at, .st = out };
	logfile_scan_report_t rep;
	snapfile_t snap = { 0 };

	memset(out, 0, sizeof(*out));
	if (history_pick_snapshot(data_dir, at, *below, &snap, &out->ledger)) {
		rb.snap_seq = out->snapshot_seq = snap.seq;
		memcpy(rb.snap_chain, snap.chain, LOGFILE_HASH_BYTES);
		snapfile_free(&snap);
	} else if (!(out->ledger = ledger_new())) {
		fprintf(stderr, "esbank: out of memory\n");
		return EXIT_TEMPORARY;
	}
	progress_start(&rb.prog, "replay", history_log_bytes(data_dir));
	int rc = logfile_scan(data_dir, &rep, history_rebuild_cb, &rb);
	progress_end(&rb.prog);
	out->log_last_seq = rep.last_seq;
	rc = history_scan_end(data_dir, &rb, rc, &rep);
	if (rc != 0)
		history_state_free(out);
	if (rc == 1)
		*below = rb.snap_seq;
	return rc;
}

/* DATA/keys, read-only, for the emails the tools print (history_keys_open). */
static keystore_t history_keys = { .fd = -1 };
static bool history_keys_tried;

void history_keys_open(const char *data_dir)
{
	if (history_keys_tried)
		return;
	history_keys_tried = true;
	int rc = keystore_open(&history_keys, data_dir, false);
	if (rc < 0 && rc != -ENOENT)
		fprintf(stderr, "esbank: %s/%s: %s: sealed emails are not shown\n", data_dir,
			KEYSTORE_FILE, rc == -EINVAL ? "not a key store" : strerror(-rc));
}

static const keystore_t *history_keystore(void)
{
	return history_keys.fd >= 0 ? &history_keys : NULL;
}

const char *history_account_email(const ledger_account_t *a, char buf[LEDGER_EMAIL_BYTES_MAX + 1])
{
	return pii_account_email(history_keystore(), a, buf) == 0 ? buf : NULL;
}

const char *history_event_email(const ledger_event_t *ev, char buf[LEDGER_EMAIL_BYTES_MAX + 1])
{
	return pii_event_email(history_keystore(), ev, buf) == 0 ? buf : NULL;
}

void history_email_id(ledger_cmd_t *cmd, char id[LEDGER_EMAIL_ID_CHARS + 1])
{
	char lower[LEDGER_EMAIL_BYTES_MAX + 1];
	uint8_t hash[LEDGER_EMAIL_HASH_BYTES];
	if (!history_keystore() || !ledger_email_valid(cmd->email, cmd->email_len, lower))
		return;
	keystore_email_hash(history_keystore(), lower, strlen(lower), hash);
	ledger_email_id(hash, id);
	cmd->email_id = id;
}

int history_rebuild(const char *data_dir, const history_point_t *at, history_state_t *out)
{
	uint64_t below = UINT64_MAX;
	int rc;

	history_keys_open(data_dir);
	while ((rc = history_rebuild_from(data_dir, at, &below, out)) == 1)
		;
	if (rc != 0)
		return rc;
	if (!at->by_time && at->seq != UINT64_MAX && ledger_last_seq(out->ledger) < at->seq) {
		fprintf(stderr, "esbank: the log ends at seq %" PRIu64 ", before seq %" PRIu64 "\n",
			ledger_last_seq(out->ledger), at->seq);
		history_state_free(out);
		return EXIT_USAGE;
	}
	return 0;
}

void history_state_free(history_state_t *s)
{
	if (s->ledger)
		ledger_free(s->ledger);
	s->ledger = NULL;
}

/* --- arguments ---------------------------------------------------------------- */

static bool history_all_digits(const char *s)
{
	if (!*s)
		return false;
	for (; *s; s++)
		if (*s < '0' || *s > '9')
			return false;
	return true;
}

/* Parses the clock part "HH:MM[:SS[.mmm]]" at s; *span_ms is its precision. */
static int history_parse_clock(const char *s, struct tm *tm, int64_t *ms, int64_t *span_ms)
{
	int n = 0, frac = 0;

	if (sscanf(s, "%2d:%2d%n", &tm->tm_hour, &tm->tm_min, &n) != 2)
		return -EINVAL;
	*span_ms = 60000;
	s += n;
	if (*s == ':') {
		if (sscanf(s, ":%2d%n", &tm->tm_sec, &n) != 1)
			return -EINVAL;
		s += n;
		*span_ms = 1000;
		if (*s == '.') {
			if (sscanf(s, ".%3d%n", &frac, &n) != 1 || n != 4)
				return -EINVAL;
			s += n;
			*ms = frac;
			*span_ms = 1;
		}
	}
	if (*s == 'Z')
		s++;
	return *s ? -EINVAL : 0;
}

int history_parse_time(const char *s, bool end, int64_t *ts_ms)
{
	struct tm tm = { 0 };
	int64_t ms = 0, span_ms = LEDGER_DAY_MS;
	int n = 0;

	if (history_all_digits(s) && strlen(s) > 8) {
		char *stop;
		unsigned long long v = strtoull(s, &stop, 10);
		if (*stop || v > INT64_MAX)
			return -EINVAL;
		*ts_ms = (int64_t)v;
		return 0;
	}
	if (sscanf(s, "%4d-%2d-%2d%n", &tm.tm_year, &tm.tm_mon, &tm.tm_mday, &n) != 3 || n != 10)
		return -EINVAL;
	if (s[n] == 'T' || s[n] == ' ') {
		if (history_parse_clock(s + n + 1, &tm, &ms, &span_ms) < 0)
			return -EINVAL;
	} else if (s[n] != '\0') {
		return -EINVAL;
	}
	if (tm.tm_mon < 1 || tm.tm_mon > 12 || tm.tm_mday < 1 || tm.tm_mday > 31 ||
	    tm.tm_hour > 23 || tm.tm_min > 59 || tm.tm_sec > 60)
		return -EINVAL;
	tm.tm_year -= 1900;
	tm.tm_mon -= 1;
	time_t t = timegm(&tm);
	*ts_ms = (int64_t)t * 1000 + ms + (end ? span_ms - 1 : 0);
	return 0;
}

int history_opt_time(const config_opt_t *opts, const char *name, bool end, bool *given,
		     int64_t *ts_ms)
{
	const char *v = config_get(opts, name);

	*given = v != NULL;
	if (!v || history_parse_time(v, end, ts_ms) == 0)
		return 0;
	fprintf(stderr, "esbank: --%s: '%s' is not a time: write 2024-05-01, "
		"2024-05-01T12:34:56Z or milliseconds since 1970 (UTC)\n", name, v);
	return EXIT_USAGE;
}

int history_opt_account(const config_opt_t *opts, const char *name, bool *given,
			uint64_t *number)
{
	const char *v = config_get(opts, name);

	*given = v != NULL;
	if (!v || ledger_account_parse(v, strlen(v), number))
		return 0;
	fprintf(stderr, "esbank: --%s: '%s' is not an account number (16 digits)\n", name, v);
	return EXIT_USAGE;
}

/* --- printing ------------------------------------------------------------------- */

char *history_hash_hex(const uint8_t hash[LOGFILE_HASH_BYTES], char buf[HISTORY_HASH_HEX_MAX])
{
	event_hex(hash, LOGFILE_HASH_BYTES, buf);
	return buf;
}

void history_account_json(FILE *f, const ledger_account_t *a)
{
	char num[LEDGER_ACCOUNT_DIGITS + 1], buf[LEDGER_EMAIL_BYTES_MAX + 1];
	const char *email = history_account_email(a, buf);

	ledger_account_format(a->number, num);
	fprintf(f, "{\"account\":\"%s\",", num);
	if (email) {
		fputs("\"email\":", f);
		output_json_string(f, email, strlen(email));
	} else {
		fputs("\"erased\":true", f);
	}
	fprintf(f, ",\"balance\":%" PRId64 ",\"verified\":%s,\"opened_at\":%" PRId64
		",\"last_activity\":", a->balance, a->verified ? "true" : "false",
		a->opened_at_ms);
	if (a->last_activity_ms)
		fprintf(f, "%" PRId64 "}", a->last_activity_ms);
	else
		fputs("null}", f);
}

void history_account_line(const ledger_account_t *a)
{
	char num[LEDGER_ACCOUNT_DIGITS + 1], bal[CURRENCY_TEXT_MAX], when[OUTPUT_TIME_MAX];
	char buf[LEDGER_EMAIL_BYTES_MAX + 1];

	if (!a) {
		printf("%-16s  %16s  %-8s  %-20s  %s\n", "ACCOUNT", "BALANCE", "VERIFIED",
		       "OPENED", "EMAIL");
		return;
	}
	ledger_account_format(a->number, num);
	/* Emails in the state passed ledger_email_valid(): nothing to escape. */
	printf("%-16s  %16s  %-8s  %-20s  %s\n", num, currency_format(a->balance, bal),
	       a->verified ? "yes" : "no", output_time(a->opened_at_ms, false, when),
	       history_account_email(a, buf) ? buf : "(erased)");
}
