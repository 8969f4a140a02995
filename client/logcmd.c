/*
 * logcmd.c - the log subcommand (see logcmd.h).
 *
 * A listing reads pages of at most REQUEST_EVENTS_LIMIT_MAX events (the
 * server may send fewer, to fit a frame) and goes on from the seq after the
 * last one it got, as PROTOCOL.md says; it stops at the last_seq of the
 * first page, so a busy server cannot keep it going for ever. Every event
 * must have a seq above the one before, or the listing stops with an error.
 */
#include "logcmd.h"

#include "reading.h"
#include "diag.h"
#include "output.h"
#include "request.h"

#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>

static volatile sig_atomic_t logcmd_stopped;

static void logcmd_on_signal(int sig)
{
	(void)sig;
	logcmd_stopped = 1;
}

int logcmd_filter_parse(const config_opt_t *opts, logcmd_filter_t *f)
{
	const char *type = config_get(opts, "type");

	*f = (logcmd_filter_t){ 0 };
	if (type) {
		f->type = ledger_event_type_parse(type, strlen(type));
		if (!f->type) {
			fprintf(stderr, "esbank: --type: unknown event type '%s'\n", type);
			return EXIT_USAGE;
		}
	}
	int rc = history_opt_account(opts, "account", &f->has_account, &f->account);
	if (rc == 0)
		rc = history_opt_time(opts, "since", false, &f->has_since, &f->since_ms);
	if (rc == 0)
		rc = history_opt_time(opts, "until", true, &f->has_until, &f->until_ms);
	return rc;
}

static bool logcmd_has_account(const msgpack_object *ev, uint64_t account)
{
	static const char *const keys[] = { "account", "from", "to" };
	char want[LEDGER_ACCOUNT_DIGITS + 1];

	ledger_account_format(account, want);
	for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
		const msgpack_object *v = msg_get(ev, keys[i]);
		if (v && msg_str_eq(v, want))
			return true;
	}
	return false;
}

/* Does ev pass the filter? */
static bool logcmd_pass(const logcmd_filter_t *f, const msgpack_object *ev)
{
	const char *type;
	size_t n;
	int64_t ts = 0;

	if (f->type && (msg_get_str(ev, "type", &type, &n) < 0 ||
			ledger_event_type_parse(type, n) != f->type))
		return false;
	if (f->has_account && !logcmd_has_account(ev, f->account))
		return false;
	if ((f->has_since || f->has_until) && msg_get_i64(ev, "ts", &ts) < 0)
		return false;
	return !(f->has_since && ts < f->since_ms) && !(f->has_until && ts > f->until_ms);
}

/* Times never go back: past --until nothing more can pass. */
static bool logcmd_past_until(const logcmd_filter_t *f, const msgpack_object *ev)
{
	int64_t ts;
	return f->has_until && msg_get_i64(ev, "ts", &ts) == 0 && ts > f->until_ms;
}

static void logcmd_print(const call_t *c, const msgpack_object *ev)
{
	if (c->json)
		output_json_line(ev, NULL);
	else
		output_event(ev);
}

typedef struct {
	uint64_t next;    /* seq to ask for next */
	uint64_t left;    /* events still to print */
	uint64_t end;     /* last seq to print: the first page's last_seq */
	uint64_t printed;
	const logcmd_filter_t *filter;
	bool done;        /* past --until */
} logcmd_range_t;

/* Prints one page; *got is how many events it held. */
static int logcmd_page(call_t *c, logcmd_range_t *r, bool first, uint32_t *got)
{
	uint64_t want = r->left < REQUEST_EVENTS_LIMIT_MAX ? r->left : REQUEST_EVENTS_LIMIT_MAX;
	msgpack_packer *pk;
	msgpack_object reply;
	uint64_t last_seq;

	int rc = call_begin(c, "events", false, 2, &pk);
	if (rc)
		return rc;
	msg_pack_kv_u64(pk, "from", r->next);
	msg_pack_kv_u64(pk, "limit", want);
	rc = call_finish(c, RPC_REPLY_TIMEOUT_MS, &reply);
	if (rc)
		return rc;
	const msgpack_object *evs = msg_get(&reply, "events");
	bool shaped = evs && evs->type == MSGPACK_OBJECT_ARRAY &&
		      msg_get_u64(&reply, "last_seq", &last_seq) == 0;
	if (!shaped)
		return call_fail_protocol(c, "the reply has no \"events\" array or \"last_seq\"");
	if (first)
		r->end = last_seq;
	*got = evs->via.array.size;
	for (uint32_t i = 0; i < evs->via.array.size && r->left > 0; i++) {
		const msgpack_object *ev = &evs->via.array.ptr[i];
		uint64_t seq;
		if (msg_get_u64(ev, "seq", &seq) < 0 || seq < r->next)
			return call_fail_protocol(c, "the server sent events out of order");
		r->next = seq + 1;
		r->done = logcmd_past_until(r->filter, ev);
		if (r->done)
			break;
		if (!logcmd_pass(r->filter, ev))
			continue;
		logcmd_print(c, ev);
		r->left--;
		r->printed++;
	}
	return 0;
}

int logcmd_list(call_t *c, uint64_t from, uint64_t limit, const logcmd_filter_t *f)
{
	logcmd_range_t r = { .next = from, .left = limit, .filter = f };
	uint32_t got;
	bool first = true;

	do {
		int rc = logcmd_page(c, &r, first, &got);
		if (rc)
			return rc;
		first = false;
	} while (got > 0 && r.left > 0 && r.next <= r.end && !r.done);
	if (r.printed == 0 && !c->json)
		printf("No events from seq %" PRIu64 " on (last seq: %" PRIu64 ").\n", from,
		       r.end);
	return 0;
}

static void logcmd_catch_signals(void)
{
	struct sigaction sa = { .sa_handler = logcmd_on_signal };

	/* No SA_RESTART: the blocking wait returns EINTR and the loop ends. */
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
}

int logcmd_follow(call_t *c, bool has_from, uint64_t from, uint64_t limit,
		  const logcmd_filter_t *f)
{
	msgpack_packer *pk;
	msgpack_object reply;

	logcmd_catch_signals();
	int rc = call_begin(c, "subscribe", false, has_from, &pk);
	if (rc)
		return rc;
	if (has_from)
		msg_pack_kv_u64(pk, "from", from);
	rc = rpc_send(&c->rpc);
	if (rc < 0)
		return call_fail_protocol(c, strerror(-rc));
	while (limit > 0 && !logcmd_stopped) {
		rc = call_next(c, &reply);
		if (rc == -EINTR)
			continue;
		if (rc)
			return rc;
		const msgpack_object *ev = msg_get(&reply, "event");
		if (!ev)
			continue; /* the {"ok": true} that comes first */
		if (logcmd_past_until(f, ev))
			break;
		if (!logcmd_pass(f, ev))
			continue;
		logcmd_print(c, ev);
		limit--;
	}
	return 0;
}
