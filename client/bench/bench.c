/*
 * bench.c - `esbank bench`: a load generator for the client protocol (see
 * bench.h and PROTOCOL.md).
 *
 * Phases, all on one libuv loop over --connections framed connections:
 *   connect  every connection to bus.sock;
 *   open     --accounts open_account requests, pipelined (--inflight per
 *            connection), emails "bench-<tag>-<i>@bench.example" with a random
 *            tag per run so runs never collide;
 *   mail     the verification codes are read from the Maildir outbox: the
 *            mailer names each file after the event's seq (common/mailname.h),
 *            which the open_account reply carries, and the body
 *            holds ".../api/verify?account_number=<16 digits>&code=<code>"
 *            (code URL-encoded). new/ and cur/ are scanned every
 *            BENCH_MAIL_POLL_MS until every account has its code, giving up
 *            after BENCH_MAIL_WAIT_MS without finding a new one;
 *   verify   verify_account for every account, pipelined;
 *   load     transfers, withdrawals and get_account in the --mix proportions.
 *
 * Requests in flight live in per-connection slots; a request's id encodes
 * its slot and the slot's generation (id = gen x inflight + slot + 1), so a
 * reply finds its request in O(1) and a reply to a slot's earlier request
 * is recognised. Id 0 is never used: the server answers with it a request it
 * could not read, which would be a bug of this program.
 */
#include "bench.h"

#include "conn.h"
#include "histogram.h"
#include "log.h"
#include "mailname.h"
#include "msg.h"
#include "output.h"

#include <assert.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <sodium.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>
#include <uv.h>

#define BENCH_CONNECTIONS_MAX    1000 /* the bus admits 1024 clients */
#define BENCH_INFLIGHT_MAX       8192 /* the bus's limit per connection */
#define BENCH_ACCOUNTS_MAX       1000000
#define BENCH_COUNT_MAX          1000000000000ull
#define BENCH_DURATION_S_MAX     86400.0
#define BENCH_DURATION_S_DEFAULT 10.0
#define BENCH_RATE_MAX           10000000.0
#define BENCH_WEIGHT_MAX         1000000
#define BENCH_PASSWORD           "bench-password"
#define BENCH_EMAIL_MAX          64
#define BENCH_ACCOUNT_BYTES      16
#define BENCH_CODE_MAX           128   /* the mailer's MESSAGE_CODE_BYTES_MAX */
#define BENCH_MAIL_BYTES_MAX     16384 /* the mailer writes at most 8192 */
#define BENCH_MAIL_POLL_MS       20
#define BENCH_MAIL_WAIT_MS       30000
#define BENCH_PATH_MAX           4096
#define BENCH_TRANSFER_CENTS_MAX 100
#define BENCH_WITHDRAW_CENTS     1
#define BENCH_TICK_MS            1
#define BENCH_PROGRESS_MS        250
#define BENCH_WATCHDOG_MS        1000
#define BENCH_STALL_MS           30000 /* no reply this long: give up */
#define BENCH_ZONE_CHUNK_BYTES   4096
#define BENCH_LAT_HIGHEST_NS     (60ull * 1000000000ull)
#define BENCH_LAT_DIGITS         2
#define BENCH_PROGRESS_BAR       30
#define BENCH_NS_PER_S           1000000000ull

typedef enum {
	BENCH_OP_TRANSFER,
	BENCH_OP_WITHDRAW,
	BENCH_OP_GET_ACCOUNT,
	BENCH_LOAD_OPS,
	BENCH_OP_OPEN = BENCH_LOAD_OPS,
	BENCH_OP_VERIFY,
} bench_op_t;

static const char *const bench_op_names[] = {"transfer", "withdraw", "get_account", "open_account",
					     "verify_account"};

/* Outcome 0 is ok; then the error codes of PROTOCOL.md; last, anything else. */
static const char *const bench_outcomes[] = {
    "ok",
    "bad_frame",
    "bad_request",
    "unknown_op",
    "not_found",
    "already_exists",
    "already_verified",
    "wrong_code",
    "not_verified",
    "insufficient_funds",
    "invalid_amount",
    "same_account",
    "key_conflict",
    "auth_failed",
    "unavailable",
    "overloaded",
    "internal",
    "other",
};
#define BENCH_OUTCOMES      (sizeof(bench_outcomes) / sizeof(bench_outcomes[0]))
#define BENCH_OUTCOME_OK    0
#define BENCH_OUTCOME_OTHER (BENCH_OUTCOMES - 1)

typedef enum {
	BENCH_PHASE_CONNECT,
	BENCH_PHASE_OPEN,
	BENCH_PHASE_MAIL,
	BENCH_PHASE_VERIFY,
	BENCH_PHASE_LOAD,
	BENCH_PHASE_DONE,
} bench_phase_t;

typedef struct {
	uint64_t connections, inflight, count, accounts;
	double duration_s, rate; /* rate 0: closed loop */
	unsigned weights[BENCH_LOAD_OPS];
	unsigned weight_total;
	bool setup_only, json;
	const char *sock_path, *data_dir;
} bench_config_t;

typedef struct {
	char number[BENCH_ACCOUNT_BYTES + 1];
	uint64_t seq; /* of its account_opened event: names its mail */
	char *code;   /* from the mail, until verified */
} bench_account_t;

typedef struct {
	uint64_t seq;
	uint32_t index;
} bench_by_seq_t;

typedef struct {
	uint64_t t0_ns; /* sent, or due (open loop) */
	uint64_t gen;
	uint32_t account;
	uint8_t op;
	bool busy;
} bench_slot_t;

typedef struct bench bench_t;

typedef struct {
	conn_t conn;
	bench_t *b;
	uv_connect_t creq;
	bench_slot_t *slots; /* cfg.inflight of them */
	uint32_t *free;      /* free slot numbers, a stack */
	uint32_t nfree;
	bool inited;
	msgpack_zone zone;
} bench_conn_t;

struct bench {
	bench_config_t cfg;
	uv_loop_t *loop;
	bench_conn_t *conns;
	uint64_t conns_up;
	uv_timer_t tick, progress, watchdog, mail;
	uv_signal_t sigint;
	bench_phase_t phase;
	int rc;
	bench_account_t *acct;
	bench_by_seq_t *by_seq;
	uint64_t next, done; /* setup: requests sent, replies (or codes) got */
	uint64_t issued, completed, outstanding;
	bool stopping, interrupted, progress_on;
	uint64_t setup_start_ns, setup_ns, start_ns, end_ns, deadline_ns;
	uint64_t last_reply_ns, mail_found_ns, mail_seen, prog_ns, prog_completed;
	size_t rr; /* next connection tried by the open-loop scheduler */
	uint64_t rng;
	char tag[17];
	uint64_t outcomes[BENCH_LOAD_OPS][BENCH_OUTCOMES];
	histogram_t lat[BENCH_LOAD_OPS + 1]; /* per op, then all */
};

const char bench_details[] =
    "Prepares --accounts verified accounts (opened over bus.sock with the password\n"
    "\"bench-password\"; the codes are read from the mails in DATA/mail/outbox/new),\n"
    "then sends transfers of 1 cent to $1 between random accounts, withdrawals of\n"
    "1 cent and get_account queries in the proportions of --mix. Closed loop by\n"
    "default: each connection keeps --inflight requests outstanding. With --rate,\n"
    "open loop: R requests/s in total on a fixed schedule, latency counted from\n"
    "the time a request was due (a request waits for a free slot when --inflight\n"
    "are outstanding). Prints throughput, counts by op and by outcome, and latency\n"
    "p50, p90, p99, p99.9 and max; --json prints one object with all figures.\n"
    "Start the server with --pwhash-cost min, or setup takes a while (argon2id).\n"
    "Exit status: 0 when every request got an ok reply (insufficient_funds is\n"
    "counted but allowed), 111 when the server cannot be reached, stops answering\n"
    "or replies unavailable/overloaded/internal, 101 for any other error reply.";

const config_opt_t bench_opts[] = {
    {.name = "connections", .def = "4", .help = "connections to bus.sock"},
    {.name = "inflight", .def = "256", .help = "requests outstanding per connection, at most"},
    {.name = "duration", .help = "seconds of load (default: 10)"},
    {.name = "count", .help = "send this many requests instead of running for --duration"},
    {.name = "accounts", .def = "1000", .help = "accounts prepared for the load"},
    {.name = "mix",
     .def = "transfer=90,withdraw=5,get_account=5",
     .help = "relative weights of the ops"},
    {.name = "rate", .help = "open loop: R requests/s in total, on a schedule"},
    {.name = "setup-only",
     .is_flag = true,
     .help = "prepare the accounts, print their numbers, stop"},
    {.name = "data",
     .env = "ESBANK_DATA",
     .def = "./var/data",
     .help = "the server's data directory (mails: DATA/mail/outbox)"},
    {0},
};

static void bench_shutdown(bench_t *b);

__attribute__((format(printf, 3, 4))) static void bench_fail(bench_t *b, int exit_code,
							     const char *fmt, ...)
{
	va_list ap;

	if (b->phase == BENCH_PHASE_DONE)
		return;
	if (b->progress_on)
		fputs("\r\033[K", stderr);
	fputs("esbank: bench: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	b->rc = exit_code;
	bench_shutdown(b);
}

/* xorshift64*: fast, and good enough to pick accounts and ops. */
static uint64_t bench_rand(bench_t *b)
{
	b->rng ^= b->rng >> 12;
	b->rng ^= b->rng << 25;
	b->rng ^= b->rng >> 27;
	return b->rng * 2685821657736338717ull;
}

static uint64_t bench_elapsed_ns(const bench_t *b, uint64_t since_ns)
{
	uint64_t now = uv_hrtime();
	return now > since_ns ? now - since_ns : 0;
}

/* ---- options ---- */

static int bench_opt_u64(const config_opt_t *opts, const char *name, uint64_t lo, uint64_t hi,
			 uint64_t *v)
{
	if (config_u64(opts, name, v) < 0)
		return EXIT_USAGE;
	if (*v >= lo && *v <= hi)
		return 0;
	fprintf(stderr, "esbank: --%s must be from %" PRIu64 " to %" PRIu64 "\n", name, lo, hi);
	return EXIT_USAGE;
}

static int bench_opt_double(const config_opt_t *opts, const char *name, double hi, double *v)
{
	const char *s = config_get(opts, name);
	char *end;

	errno = 0;
	*v = strtod(s, &end);
	if (errno == 0 && end != s && *end == '\0' && *v > 0 && *v <= hi)
		return 0;
	fprintf(stderr, "esbank: --%s wants a number above 0 and at most %g, not '%s'\n", name, hi,
		s);
	return EXIT_USAGE;
}

/* Parses "op=weight,op=weight"; ops left out get weight 0. */
static int bench_parse_mix(bench_config_t *cfg, const char *mix)
{
	char buf[256], *save = NULL;

	if (snprintf(buf, sizeof(buf), "%s", mix) >= (int)sizeof(buf))
		goto bad;
	for (char *item = strtok_r(buf, ",", &save); item; item = strtok_r(NULL, ",", &save)) {
		char *eq = strchr(item, '='), *end;
		int op = 0;
		if (!eq)
			goto bad;
		*eq = '\0';
		while (op < BENCH_LOAD_OPS && strcmp(item, bench_op_names[op]) != 0)
			op++;
		unsigned long w = strtoul(eq + 1, &end, 10);
		if (op == BENCH_LOAD_OPS || end == eq + 1 || *end || w > BENCH_WEIGHT_MAX)
			goto bad;
		cfg->weights[op] = (unsigned)w;
	}
	for (int op = 0; op < BENCH_LOAD_OPS; op++)
		cfg->weight_total += cfg->weights[op];
	if (cfg->weight_total > 0)
		return 0;
bad:
	fprintf(stderr,
		"esbank: --mix wants op=weight pairs separated by commas, ops "
		"transfer, withdraw, get_account (weights 0 to %d, not all 0), not '%s'\n",
		BENCH_WEIGHT_MAX, mix);
	return EXIT_USAGE;
}

static int bench_parse_limits(bench_config_t *cfg, const config_opt_t *opts)
{
	int rc = bench_opt_u64(opts, "connections", 1, BENCH_CONNECTIONS_MAX, &cfg->connections);
	if (rc == 0)
		rc = bench_opt_u64(opts, "inflight", 1, BENCH_INFLIGHT_MAX, &cfg->inflight);
	if (rc == 0)
		rc = bench_opt_u64(opts, "accounts", 1, BENCH_ACCOUNTS_MAX, &cfg->accounts);
	if (rc == 0 && config_get(opts, "count"))
		rc = bench_opt_u64(opts, "count", 1, BENCH_COUNT_MAX, &cfg->count);
	if (rc == 0 && config_get(opts, "duration"))
		rc = bench_opt_double(opts, "duration", BENCH_DURATION_S_MAX, &cfg->duration_s);
	if (rc == 0 && config_get(opts, "rate"))
		rc = bench_opt_double(opts, "rate", BENCH_RATE_MAX, &cfg->rate);
	if (rc)
		return rc;
	if (cfg->count && cfg->duration_s > 0) {
		fprintf(stderr, "esbank: give --duration or --count, not both\n");
		return EXIT_USAGE;
	}
	if (!cfg->count && cfg->duration_s == 0)
		cfg->duration_s = BENCH_DURATION_S_DEFAULT;
	return 0;
}

static int bench_parse(bench_config_t *cfg, const config_opt_t *opts, const char *sock_path)
{
	int rc = bench_parse_limits(cfg, opts);
	if (rc == 0)
		rc = bench_parse_mix(cfg, config_get(opts, "mix"));
	if (rc)
		return rc;
	if (cfg->weights[BENCH_OP_TRANSFER] && cfg->accounts < 2) {
		fprintf(stderr, "esbank: transfers need --accounts 2 or more\n");
		return EXIT_USAGE;
	}
	if (strlen(sock_path) >= sizeof(((struct sockaddr_un *)0)->sun_path)) {
		fprintf(stderr, "esbank: the socket path %s is too long\n", sock_path);
		return EXIT_USAGE;
	}
	cfg->setup_only = config_flag(opts, "setup-only");
	cfg->data_dir = config_get(opts, "data");
	cfg->sock_path = sock_path;
	return 0;
}

/* ---- requests and replies ---- */

static uint64_t bench_slot_take(bench_conn_t *bc, bench_op_t op, uint32_t account, uint64_t t0_ns)
{
	assert(bc->nfree > 0);
	uint32_t i = bc->free[--bc->nfree];
	bench_slot_t *s = &bc->slots[i];

	assert(!s->busy);
	*s = (bench_slot_t){
	    .t0_ns = t0_ns, .gen = s->gen, .account = account, .op = op, .busy = true};
	/* The watchdog counts from the later of the last reply and the first request. */
	if (bc->b->outstanding++ == 0)
		bc->b->last_reply_ns = uv_hrtime();
	return s->gen * bc->b->cfg.inflight + i + 1;
}

/* The slot that id names, or NULL when it names no request in flight. */
static bench_slot_t *bench_slot_find(bench_conn_t *bc, uint64_t id)
{
	uint64_t n = bc->b->cfg.inflight;

	if (id == 0)
		return NULL;
	bench_slot_t *s = &bc->slots[(id - 1) % n];
	return s->busy && s->gen == (id - 1) / n ? s : NULL;
}

static void bench_slot_put(bench_conn_t *bc, bench_slot_t *s)
{
	s->busy = false;
	s->gen++;
	bc->free[bc->nfree++] = (uint32_t)(s - bc->slots);
	bc->b->outstanding--;
}

static msgpack_packer *bench_begin(bench_conn_t *bc, const char *op, uint32_t nfields, uint64_t id)
{
	msgpack_packer *pk = conn_pack_begin(&bc->conn);
	msgpack_pack_map(pk, 2 + nfields);
	msg_pack_kv_str(pk, "op", op);
	msg_pack_kv_u64(pk, "id", id);
	return pk;
}

static void bench_send_setup(bench_t *b, bench_conn_t *bc, bench_op_t op, uint32_t i)
{
	uint64_t id = bench_slot_take(bc, op, i, uv_hrtime());
	msgpack_packer *pk = bench_begin(bc, bench_op_names[op], 2, id);

	if (op == BENCH_OP_OPEN) {
		char email[BENCH_EMAIL_MAX];
		snprintf(email, sizeof(email), "bench-%s-%" PRIu32 "@bench.example", b->tag, i);
		msg_pack_kv_str(pk, "email", email);
		msg_pack_kv_str(pk, "password", BENCH_PASSWORD);
	} else {
		msg_pack_kv_str(pk, "account", b->acct[i].number);
		msg_pack_kv_str(pk, "code", b->acct[i].code);
	}
	conn_pack_end(&bc->conn);
}

static bench_op_t bench_pick_op(bench_t *b)
{
	unsigned r = (unsigned)(bench_rand(b) % b->cfg.weight_total);
	int op = 0;

	while (r >= b->cfg.weights[op])
		r -= b->cfg.weights[op++];
	return (bench_op_t)op;
}

static void bench_send_load(bench_t *b, bench_conn_t *bc, uint64_t t0_ns)
{
	bench_op_t op = bench_pick_op(b);
	uint64_t id = bench_slot_take(bc, op, 0, t0_ns), n = b->cfg.accounts;
	uint64_t from = bench_rand(b) % n;
	msgpack_packer *pk;

	switch (op) {
	case BENCH_OP_TRANSFER: {
		uint64_t to = bench_rand(b) % (n - 1);
		to += to >= from;
		pk = bench_begin(bc, "transfer", 3, id);
		msg_pack_kv_str(pk, "from", b->acct[from].number);
		msg_pack_kv_str(pk, "to", b->acct[to].number);
		msg_pack_kv_i64(pk, "amount",
				1 + (int64_t)(bench_rand(b) % BENCH_TRANSFER_CENTS_MAX));
		break;
	}
	case BENCH_OP_WITHDRAW:
		pk = bench_begin(bc, "withdraw", 2, id);
		msg_pack_kv_str(pk, "account", b->acct[from].number);
		msg_pack_kv_i64(pk, "amount", BENCH_WITHDRAW_CENTS);
		break;
	default:
		pk = bench_begin(bc, "get_account", 1, id);
		msg_pack_kv_str(pk, "account", b->acct[from].number);
		break;
	}
	conn_pack_end(&bc->conn);
	b->issued++;
}

/* Closed loop: keeps every slot of bc busy until the count or the time is up. */
static void bench_fill_closed(bench_t *b, bench_conn_t *bc)
{
	while (bc->nfree > 0 && !b->stopping) {
		uint64_t now = uv_hrtime();
		if (b->cfg.count ? b->issued >= b->cfg.count : now >= b->deadline_ns) {
			b->stopping = true;
			break;
		}
		bench_send_load(b, bc, now);
	}
}

/* A connection with a free slot, taking them in turn; NULL when none has one. */
static bench_conn_t *bench_conn_free(bench_t *b)
{
	for (uint64_t k = 0; k < b->cfg.connections; k++) {
		bench_conn_t *bc = &b->conns[b->rr];
		b->rr = (b->rr + 1) % b->cfg.connections;
		if (bc->nfree > 0)
			return bc;
	}
	return NULL;
}

/* Open loop: sends every request that is due, as long as slots are free. */
static void bench_fill_scheduled(bench_t *b)
{
	uint64_t now = uv_hrtime();

	while (!b->stopping) {
		uint64_t due_ns = b->start_ns + (uint64_t)((double)b->issued * 1e9 / b->cfg.rate);
		if (b->cfg.count ? b->issued >= b->cfg.count : due_ns >= b->deadline_ns) {
			b->stopping = true;
			break;
		}
		bench_conn_t *bc = due_ns <= now ? bench_conn_free(b) : NULL;
		if (!bc)
			break;
		bench_send_load(b, bc, due_ns);
	}
}

static void bench_fill(bench_t *b, bench_conn_t *bc)
{
	switch (b->phase) {
	case BENCH_PHASE_OPEN:
	case BENCH_PHASE_VERIFY:
		while (bc->nfree > 0 && b->next < b->cfg.accounts)
			bench_send_setup(
			    b, bc, b->phase == BENCH_PHASE_OPEN ? BENCH_OP_OPEN : BENCH_OP_VERIFY,
			    (uint32_t)b->next++);
		break;
	case BENCH_PHASE_LOAD:
		if (b->cfg.rate > 0)
			bench_fill_scheduled(b);
		else
			bench_fill_closed(b, bc);
		break;
	default: break;
	}
}

static void bench_fill_all(bench_t *b)
{
	for (uint64_t k = 0; k < b->cfg.connections && b->phase != BENCH_PHASE_DONE; k++)
		bench_fill(b, &b->conns[k]);
}

static size_t bench_outcome(const msgpack_object *reply)
{
	bool ok = false;
	const char *code;
	size_t n;

	if (msg_get_bool(reply, "ok", &ok) == 0 && ok)
		return BENCH_OUTCOME_OK;
	if (msg_get_str(reply, "error", &code, &n) < 0)
		return BENCH_OUTCOME_OTHER;
	for (size_t i = 1; i < BENCH_OUTCOME_OTHER; i++)
		if (strlen(bench_outcomes[i]) == n && memcmp(bench_outcomes[i], code, n) == 0)
			return i;
	return BENCH_OUTCOME_OTHER;
}

static bool bench_outcome_temporary(size_t outcome)
{
	const char *code = bench_outcomes[outcome];
	return !strcmp(code, "unavailable") || !strcmp(code, "overloaded") ||
	       !strcmp(code, "internal");
}

/* A setup request was refused: the bench cannot go on. */
static void bench_fail_setup(bench_t *b, bench_op_t op, const msgpack_object *reply,
			     size_t outcome)
{
	char message[OUTPUT_FIELD_MAX];

	output_field(reply, "message", message);
	bench_fail(b, bench_outcome_temporary(outcome) ? EXIT_TEMPORARY : EXIT_BUG,
		   "%s failed during setup: %s (%s)", bench_op_names[op], message,
		   bench_outcomes[outcome]);
}

static bool bench_account_valid(const char *s)
{
	if (strlen(s) != BENCH_ACCOUNT_BYTES || s[0] < '1' || s[0] > '9')
		return false;
	for (const char *p = s; *p; p++)
		if (*p < '0' || *p > '9')
			return false;
	return true;
}

static void bench_mail_start(bench_t *b);
static void bench_load_start(bench_t *b);

static void bench_on_opened(bench_t *b, uint32_t i, const msgpack_object *reply)
{
	bench_account_t *a = &b->acct[i];

	if (msg_get_strcpy(reply, "account", a->number, sizeof(a->number)) < 0 ||
	    !bench_account_valid(a->number) || msg_get_u64(reply, "seq", &a->seq) < 0) {
		bench_fail(b, EXIT_TEMPORARY,
			   "open_account replied without a valid account "
			   "number and seq");
		return;
	}
	if (++b->done == b->cfg.accounts)
		bench_mail_start(b);
}

static void bench_on_verified(bench_t *b, uint32_t i)
{
	free(b->acct[i].code);
	b->acct[i].code = NULL;
	if (++b->done < b->cfg.accounts)
		return;
	b->setup_ns = bench_elapsed_ns(b, b->setup_start_ns);
	if (b->cfg.setup_only)
		bench_shutdown(b);
	else
		bench_load_start(b);
}

static void bench_on_load_reply(bench_t *b, const bench_slot_t *s, size_t outcome, uint64_t now_ns)
{
	uint64_t lat_ns = now_ns > s->t0_ns ? now_ns - s->t0_ns : 0;

	b->outcomes[s->op][outcome]++;
	histogram_record(&b->lat[s->op], lat_ns);
	histogram_record(&b->lat[BENCH_LOAD_OPS], lat_ns);
	b->completed++;
}

static void bench_finish_if_drained(bench_t *b)
{
	if (b->phase != BENCH_PHASE_LOAD || !b->stopping || b->outstanding > 0)
		return;
	b->end_ns = uv_hrtime();
	bench_shutdown(b);
}

/* Decodes one reply and finds its request; NULL after failing the bench. */
static bench_slot_t *bench_reply_slot(bench_conn_t *bc, const char *body, size_t len,
				      msgpack_object *reply)
{
	bench_t *b = bc->b;
	char code[OUTPUT_FIELD_MAX];
	uint64_t id;

	msgpack_zone_clear(&bc->zone);
	if (msg_decode_map(body, len, &bc->zone, reply) < 0 || msg_get_u64(reply, "id", &id) < 0) {
		bench_fail(b, EXIT_TEMPORARY,
			   "the server sent a reply that is not a msgpack "
			   "map with an id");
		return NULL;
	}
	if (id == 0) {
		bench_fail(b, EXIT_BUG, "the server could not read a request (%s)",
			   output_field(reply, "error", code));
		return NULL;
	}
	bench_slot_t *s = bench_slot_find(bc, id);
	if (!s)
		bench_fail(
		    b, EXIT_TEMPORARY,
		    "the server replied to id %" PRIu64 ", which names no request in flight", id);
	return s;
}

static void bench_on_frame(conn_t *c, const char *body, size_t len)
{
	bench_conn_t *bc = c->data;
	bench_t *b = bc->b;
	msgpack_object reply;

	bench_slot_t *s = bench_reply_slot(bc, body, len, &reply);
	if (!s)
		return;
	uint64_t now = uv_hrtime();
	bench_slot_t done = *s;
	size_t outcome = bench_outcome(&reply);
	b->last_reply_ns = now;
	bench_slot_put(bc, s);
	if (done.op >= BENCH_LOAD_OPS && outcome != BENCH_OUTCOME_OK)
		bench_fail_setup(b, (bench_op_t)done.op, &reply, outcome);
	else if (done.op == BENCH_OP_OPEN)
		bench_on_opened(b, done.account, &reply);
	else if (done.op == BENCH_OP_VERIFY)
		bench_on_verified(b, done.account);
	else
		bench_on_load_reply(b, &done, outcome, now);
	bench_fill(b, bc);
	bench_finish_if_drained(b);
}

/* ---- the mails ---- */

static int bench_by_seq_cmp(const void *x, const void *y)
{
	const bench_by_seq_t *a = x, *b = y;
	return a->seq < b->seq ? -1 : a->seq > b->seq;
}

/* The account whose account_opened event has seq and still needs its code. */
static bench_account_t *bench_account_by_seq(bench_t *b, uint64_t seq)
{
	bench_by_seq_t key = {.seq = seq};
	bench_by_seq_t *hit =
	    bsearch(&key, b->by_seq, b->cfg.accounts, sizeof(key), bench_by_seq_cmp);
	if (!hit || b->acct[hit->index].code)
		return NULL;
	return &b->acct[hit->index];
}

static int bench_hex(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* Copies the URL-encoded value at s (up to '&', space or line end) into code, decoded. */
static int bench_url_decode(const char *s, char code[BENCH_CODE_MAX + 1])
{
	size_t n = 0;

	for (; *s && !strchr("& \t\r\n", *s); s++) {
		char c = *s;
		if (c == '%') {
			int hi = bench_hex(s[1]), lo = hi < 0 ? -1 : bench_hex(s[2]);
			if (lo < 0)
				return -EINVAL;
			c = (char)(hi << 4 | lo);
			s += 2;
		}
		if (n == BENCH_CODE_MAX)
			return -EINVAL;
		code[n++] = c;
	}
	code[n] = '\0';
	return n ? 0 : -EINVAL;
}

/* Finds "account_number=<number>&code=<code>" in the mail text; 0 or -EINVAL. */
static int bench_mail_parse(const char *text, const char *number, char code[BENCH_CODE_MAX + 1])
{
	char want[64];

	snprintf(want, sizeof(want), "account_number=%s&code=", number);
	const char *p = strstr(text, want);
	return p ? bench_url_decode(p + strlen(want), code) : -EINVAL;
}

/* Reads the mail at path into text (NUL-terminated); 0 or -errno. */
static int bench_mail_read(const char *path, char text[BENCH_MAIL_BYTES_MAX + 1])
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	ssize_t n = read(fd, text, BENCH_MAIL_BYTES_MAX);
	int err = errno;
	close(fd);
	if (n < 0)
		return -err;
	text[n] = '\0';
	return 0;
}

/* Takes the code from the mail file name in dir, when it is one of ours. */
static void bench_mail_take(bench_t *b, const char *dir, const char *name)
{
	static char text[BENCH_MAIL_BYTES_MAX + 1];
	char path[BENCH_PATH_MAX], code[BENCH_CODE_MAX + 1];
	uint64_t seq;

	if (mailname_seq(name, &seq) < 0)
		return;
	bench_account_t *a = bench_account_by_seq(b, seq);
	if (!a || snprintf(path, sizeof(path), "%s/%s", dir, name) >= (int)sizeof(path))
		return;
	if (bench_mail_read(path, text) < 0 || bench_mail_parse(text, a->number, code) < 0)
		return;
	a->code = strdup(code);
	if (!a->code) {
		bench_fail(b, EXIT_TEMPORARY, "out of memory");
		return;
	}
	b->done++;
	b->mail_found_ns = uv_hrtime();
}

/* Takes our codes from the mails in outbox/sub; returns the number of mails seen. */
static uint64_t bench_mail_scan(bench_t *b, const char *sub)
{
	char dir[BENCH_PATH_MAX];
	struct dirent *e;
	uint64_t seen = 0;

	snprintf(dir, sizeof(dir), "%s/mail/outbox/%s", b->cfg.data_dir, sub);
	DIR *d = opendir(dir);
	if (!d)
		return 0;
	while ((e = readdir(d)) != NULL && b->done < b->cfg.accounts &&
	       b->phase == BENCH_PHASE_MAIL) {
		if (e->d_name[0] == '.')
			continue;
		seen++;
		bench_mail_take(b, dir, e->d_name);
	}
	closedir(d);
	return seen;
}

static void bench_verify_start(bench_t *b)
{
	uv_timer_stop(&b->mail);
	b->phase = BENCH_PHASE_VERIFY;
	b->next = b->done = 0;
	bench_fill_all(b);
}

static void bench_mail_cb(uv_timer_t *t)
{
	bench_t *b = t->data;

	uint64_t seen = bench_mail_scan(b, "new") + bench_mail_scan(b, "cur");
	if (b->phase != BENCH_PHASE_MAIL)
		return;
	/* The mailer may be busy with older mails: give up only when it writes none. */
	if (seen != b->mail_seen) {
		b->mail_seen = seen;
		b->mail_found_ns = uv_hrtime();
	}
	if (b->done == b->cfg.accounts) {
		bench_verify_start(b);
		return;
	}
	if (bench_elapsed_ns(b, b->mail_found_ns) / 1000000 < BENCH_MAIL_WAIT_MS)
		return;
	bench_fail(b, EXIT_TEMPORARY,
		   "no verification mail for %" PRIu64 " of %" PRIu64 " accounts in "
		   "%s/mail/outbox/new, and no new mail there for %d s: is --data (or "
		   "ESBANK_DATA) the server's data directory, and does it mail to the Maildir "
		   "(--mail maildir)?",
		   b->cfg.accounts - b->done, b->cfg.accounts, b->cfg.data_dir,
		   BENCH_MAIL_WAIT_MS / 1000);
}

static void bench_mail_start(bench_t *b)
{
	b->by_seq = malloc(b->cfg.accounts * sizeof(*b->by_seq));
	if (!b->by_seq) {
		bench_fail(b, EXIT_TEMPORARY, "out of memory");
		return;
	}
	for (uint64_t i = 0; i < b->cfg.accounts; i++)
		b->by_seq[i] = (bench_by_seq_t){.seq = b->acct[i].seq, .index = (uint32_t)i};
	qsort(b->by_seq, b->cfg.accounts, sizeof(*b->by_seq), bench_by_seq_cmp);
	b->phase = BENCH_PHASE_MAIL;
	b->done = 0;
	b->mail_found_ns = uv_hrtime();
	uv_timer_start(&b->mail, bench_mail_cb, 0, BENCH_MAIL_POLL_MS);
}

/* ---- the loop: connections, timers, phases ---- */

static void bench_progress_line(bench_t *b)
{
	static const char *const what[] = {"", "accounts opened", "codes found in mail",
					   "accounts verified"};
	uint64_t now = uv_hrtime();

	if (b->phase < BENCH_PHASE_LOAD) {
		fprintf(stderr, "\r\033[Ksetup: %" PRIu64 "/%" PRIu64 " %s", b->done,
			b->cfg.accounts, what[b->phase]);
		return;
	}
	double t = (double)(now - b->start_ns) / 1e9;
	double frac =
	    b->cfg.count ? (double)b->completed / (double)b->cfg.count : t / b->cfg.duration_s;
	double dt = (double)(now - b->prog_ns) / 1e9;
	double rate = dt > 0 ? (double)(b->completed - b->prog_completed) / dt : 0;
	char bar[BENCH_PROGRESS_BAR + 1];
	int full = (int)((frac > 1 ? 1 : frac) * BENCH_PROGRESS_BAR);
	memset(bar, '#', BENCH_PROGRESS_BAR);
	memset(bar + full, '.', BENCH_PROGRESS_BAR - full);
	bar[BENCH_PROGRESS_BAR] = '\0';
	fprintf(stderr, "\r\033[K[%s] %6.1f s %12" PRIu64 " ops %10.0f ops/s", bar, t,
		b->completed, rate);
	b->prog_ns = now;
	b->prog_completed = b->completed;
}

static void bench_progress_cb(uv_timer_t *t)
{
	bench_progress_line(t->data);
}

static void bench_tick_cb(uv_timer_t *t)
{
	bench_t *b = t->data;

	bench_fill_scheduled(b);
	bench_finish_if_drained(b);
}

static void bench_watchdog_cb(uv_timer_t *t)
{
	bench_t *b = t->data;

	if (b->outstanding == 0 ||
	    bench_elapsed_ns(b, b->last_reply_ns) / 1000000 < BENCH_STALL_MS)
		return;
	bench_fail(b, EXIT_TEMPORARY,
		   "no reply from the server for %d s, %" PRIu64 " requests outstanding",
		   BENCH_STALL_MS / 1000, b->outstanding);
}

static void bench_sigint_cb(uv_signal_t *h, int signum)
{
	bench_t *b = h->data;

	if (b->phase != BENCH_PHASE_LOAD || b->stopping) {
		bench_fail(b, EXIT_TEMPORARY, "interrupted");
		return;
	}
	b->interrupted = true;
	b->stopping = true;
	bench_finish_if_drained(b);
}

static void bench_load_start(bench_t *b)
{
	b->phase = BENCH_PHASE_LOAD;
	b->start_ns = b->prog_ns = uv_hrtime();
	b->deadline_ns = b->start_ns + (uint64_t)(b->cfg.duration_s * 1e9);
	if (b->cfg.rate > 0)
		uv_timer_start(&b->tick, bench_tick_cb, BENCH_TICK_MS, BENCH_TICK_MS);
	bench_fill_all(b);
	bench_finish_if_drained(b);
}

/* The codes are read from DATA/mail/outbox: fail before opening accounts when it is not there. */
static bool bench_outbox_exists(bench_t *b)
{
	char path[BENCH_PATH_MAX];
	struct stat st;

	snprintf(path, sizeof(path), "%s/mail/outbox/new", b->cfg.data_dir);
	if (stat(path, &st) == 0 && S_ISDIR(st.st_mode))
		return true;
	bench_fail(b, EXIT_USAGE,
		   "no Maildir at %s: give the server's data directory with --data or ESBANK_DATA",
		   path);
	return false;
}

static void bench_setup_start(bench_t *b)
{
	if (!bench_outbox_exists(b))
		return;
	b->phase = BENCH_PHASE_OPEN;
	b->setup_start_ns = b->last_reply_ns = uv_hrtime();
	uv_timer_start(&b->watchdog, bench_watchdog_cb, BENCH_WATCHDOG_MS, BENCH_WATCHDOG_MS);
	if (b->progress_on)
		uv_timer_start(&b->progress, bench_progress_cb, BENCH_PROGRESS_MS,
			       BENCH_PROGRESS_MS);
	bench_fill_all(b);
}

static void bench_on_close(conn_t *c)
{
	bench_conn_t *bc = c->data;

	msgpack_zone_destroy(&bc->zone);
	bench_fail(bc->b, EXIT_TEMPORARY, "the server closed a connection");
}

static void bench_connect_cb(uv_connect_t *req, int status)
{
	bench_conn_t *bc = req->data;
	bench_t *b = bc->b;

	if (b->phase == BENCH_PHASE_DONE)
		return;
	if (status == 0)
		status = conn_start(&bc->conn);
	if (status < 0) {
		bench_fail(b, EXIT_TEMPORARY, "cannot connect to %s: %s%s", b->cfg.sock_path,
			   uv_strerror(status),
			   status == UV_ENOENT || status == UV_ECONNREFUSED
			       ? "\nesbank: is esbankd running? (see --run or ESBANK_RUN)"
			       : "");
		return;
	}
	if (++b->conns_up == b->cfg.connections)
		bench_setup_start(b);
}

static int bench_conn_open(bench_t *b, bench_conn_t *bc)
{
	bc->b = b;
	bc->slots = calloc(b->cfg.inflight, sizeof(*bc->slots));
	bc->free = malloc(b->cfg.inflight * sizeof(*bc->free));
	if (!bc->slots || !bc->free || !msgpack_zone_init(&bc->zone, BENCH_ZONE_CHUNK_BYTES))
		return -ENOMEM;
	for (uint32_t i = 0; i < b->cfg.inflight; i++)
		bc->free[i] = (uint32_t)b->cfg.inflight - 1 - i;
	bc->nfree = (uint32_t)b->cfg.inflight;
	bc->conn.data = bc;
	conn_init(&bc->conn, b->loop, bench_on_frame, bench_on_close);
	uv_pipe_init(b->loop, &bc->conn.pipe, 0);
	bc->conn.pipe.data = &bc->conn;
	bc->creq.data = bc;
	bc->inited = true;
	uv_pipe_connect(&bc->creq, &bc->conn.pipe, b->cfg.sock_path, bench_connect_cb);
	return 0;
}

static void bench_shutdown(bench_t *b)
{
	b->phase = BENCH_PHASE_DONE;
	if (b->progress_on)
		fputs("\r\033[K", stderr);
	uv_handle_t *handles[] = {(uv_handle_t *)&b->tick, (uv_handle_t *)&b->progress,
				  (uv_handle_t *)&b->watchdog, (uv_handle_t *)&b->mail,
				  (uv_handle_t *)&b->sigint};
	for (size_t i = 0; i < sizeof(handles) / sizeof(handles[0]); i++)
		if (!uv_is_closing(handles[i]))
			uv_close(handles[i], NULL);
	for (uint64_t k = 0; k < b->cfg.connections; k++)
		if (b->conns[k].inited)
			conn_close(&b->conns[k].conn);
}

/* Sets up the loop's handles and starts connecting; 0 or -ENOMEM. */
static int bench_start(bench_t *b)
{
	uv_timer_t *timers[] = {&b->tick, &b->progress, &b->watchdog, &b->mail};

	b->loop = uv_default_loop();
	for (size_t i = 0; i < sizeof(timers) / sizeof(timers[0]); i++) {
		uv_timer_init(b->loop, timers[i]);
		timers[i]->data = b;
	}
	uv_signal_init(b->loop, &b->sigint);
	b->sigint.data = b;
	uv_signal_start(&b->sigint, bench_sigint_cb, SIGINT);
	for (uint64_t k = 0; k < b->cfg.connections; k++)
		if (bench_conn_open(b, &b->conns[k]) < 0)
			return -ENOMEM;
	return 0;
}

/* ---- the report ---- */

static uint64_t bench_op_total(const bench_t *b, int op)
{
	uint64_t n = 0;
	for (size_t o = 0; o < BENCH_OUTCOMES; o++)
		n += b->outcomes[op][o];
	return n;
}

static uint64_t bench_outcome_total(const bench_t *b, size_t outcome)
{
	uint64_t n = 0;
	for (int op = 0; op < BENCH_LOAD_OPS; op++)
		n += b->outcomes[op][outcome];
	return n;
}

static double bench_ms(uint64_t ns)
{
	return (double)ns / 1e6;
}

static void bench_text_latency(const char *name, uint64_t count, uint64_t ok, const histogram_t *h)
{
	printf("%-12s %10" PRIu64 " %10" PRIu64 " %8" PRIu64, name, count, ok, count - ok);
	if (count)
		printf(" %9.3f %9.3f %9.3f %9.3f %9.3f", bench_ms(histogram_percentile(h, 50)),
		       bench_ms(histogram_percentile(h, 90)),
		       bench_ms(histogram_percentile(h, 99)),
		       bench_ms(histogram_percentile(h, 99.9)), bench_ms(h->max));
	putchar('\n');
}

static void bench_text_head(const bench_t *b, double elapsed_s)
{
	const bench_config_t *cfg = &b->cfg;

	printf("Setup          %" PRIu64 " accounts opened and verified in %.2f s\n",
	       cfg->accounts, (double)b->setup_ns / 1e9);
	if (cfg->rate > 0)
		printf("Load           open loop, %.0f requests/s over %" PRIu64 " connection%s "
		       "(at most %" PRIu64 " in flight each)\n",
		       cfg->rate, cfg->connections, cfg->connections == 1 ? "" : "s",
		       cfg->inflight);
	else
		printf("Load           closed loop, %" PRIu64 " connection%s x %" PRIu64
		       " in flight\n",
		       cfg->connections, cfg->connections == 1 ? "" : "s", cfg->inflight);
	printf("Requests       %" PRIu64 " in %.2f s: %.0f ops/s%s\n", b->completed, elapsed_s,
	       elapsed_s > 0 ? (double)b->completed / elapsed_s : 0,
	       b->interrupted ? " (interrupted)" : "");
	printf("Outcomes      ");
	for (size_t o = 0; o < BENCH_OUTCOMES; o++) {
		uint64_t n = bench_outcome_total(b, o);
		if (n || o == BENCH_OUTCOME_OK)
			printf("%s %s %" PRIu64, o ? "," : "", bench_outcomes[o], n);
	}
	printf("\n\n");
}

static void bench_print_text(const bench_t *b, double elapsed_s)
{
	bench_text_head(b, elapsed_s);
	printf("%-12s %10s %10s %8s %9s %9s %9s %9s %9s\n", "op", "count", "ok", "errors",
	       "p50 ms", "p90 ms", "p99 ms", "p99.9 ms", "max ms");
	for (int op = 0; op < BENCH_LOAD_OPS; op++)
		if (b->cfg.weights[op])
			bench_text_latency(bench_op_names[op], bench_op_total(b, op),
					   b->outcomes[op][BENCH_OUTCOME_OK], &b->lat[op]);
	bench_text_latency("all", b->completed, bench_outcome_total(b, BENCH_OUTCOME_OK),
			   &b->lat[BENCH_LOAD_OPS]);
}

static void bench_json_latency(const histogram_t *h)
{
	printf(
	    "{\"p50\":%.1f,\"p90\":%.1f,\"p99\":%.1f,\"p99.9\":%.1f,\"max\":%.1f,"
	    "\"mean\":%.1f}",
	    (double)histogram_percentile(h, 50) / 1e3, (double)histogram_percentile(h, 90) / 1e3,
	    (double)histogram_percentile(h, 99) / 1e3, (double)histogram_percentile(h, 99.9) / 1e3,
	    (double)h->max / 1e3, histogram_mean(h) / 1e3);
}

static void bench_json_outcomes(const uint64_t *counts)
{
	putchar('{');
	for (size_t o = 0, first = 1; o < BENCH_OUTCOMES; o++) {
		if (!counts[o] && o != BENCH_OUTCOME_OK)
			continue;
		printf("%s\"%s\":%" PRIu64, first ? "" : ",", bench_outcomes[o], counts[o]);
		first = 0;
	}
	putchar('}');
}

static void bench_print_json(const bench_t *b, double elapsed_s)
{
	const bench_config_t *cfg = &b->cfg;
	uint64_t all[BENCH_OUTCOMES];

	printf("{\"mode\":\"%s\",\"connections\":%" PRIu64 ",\"inflight\":%" PRIu64,
	       cfg->rate > 0 ? "open" : "closed", cfg->connections, cfg->inflight);
	if (cfg->rate > 0)
		printf(",\"rate\":%.3f", cfg->rate);
	if (cfg->count)
		printf(",\"count\":%" PRIu64, cfg->count);
	else
		printf(",\"duration_s\":%.3f", cfg->duration_s);
	printf(",\"accounts\":%" PRIu64
	       ",\"setup_s\":%.3f,\"elapsed_s\":%.3f,\"requests\":%" PRIu64
	       ",\"ops_per_s\":%.1f,\"interrupted\":%s,\"outcomes\":",
	       cfg->accounts, (double)b->setup_ns / 1e9, elapsed_s, b->completed,
	       elapsed_s > 0 ? (double)b->completed / elapsed_s : 0,
	       b->interrupted ? "true" : "false");
	for (size_t o = 0; o < BENCH_OUTCOMES; o++)
		all[o] = bench_outcome_total(b, o);
	bench_json_outcomes(all);
	printf(",\"latency_us\":");
	bench_json_latency(&b->lat[BENCH_LOAD_OPS]);
	printf(",\"ops\":{");
	for (int op = 0, first = 1; op < BENCH_LOAD_OPS; op++) {
		if (!cfg->weights[op])
			continue;
		printf("%s\"%s\":{\"count\":%" PRIu64 ",\"outcomes\":", first ? "" : ",",
		       bench_op_names[op], bench_op_total(b, op));
		bench_json_outcomes(b->outcomes[op]);
		printf(",\"latency_us\":");
		bench_json_latency(&b->lat[op]);
		putchar('}');
		first = 0;
	}
	printf("}}\n");
}

static void bench_print_accounts(const bench_t *b)
{
	if (b->cfg.json) {
		printf("{\"setup_s\":%.3f,\"accounts\":[", (double)b->setup_ns / 1e9);
		for (uint64_t i = 0; i < b->cfg.accounts; i++)
			printf("%s\"%s\"", i ? "," : "", b->acct[i].number);
		printf("]}\n");
		return;
	}
	for (uint64_t i = 0; i < b->cfg.accounts; i++)
		printf("%s\n", b->acct[i].number);
	fprintf(stderr,
		"esbank: bench: %" PRIu64 " accounts opened and verified in %.2f s "
		"(password \"%s\")\n",
		b->cfg.accounts, (double)b->setup_ns / 1e9, BENCH_PASSWORD);
}

/* 0 when every load request got ok or insufficient_funds; else says why. */
static int bench_exit_code(const bench_t *b)
{
	uint64_t failed = 0;
	int rc = 0;

	for (size_t o = 1; o < BENCH_OUTCOMES; o++) {
		uint64_t n = bench_outcome_total(b, o);
		if (n == 0 || !strcmp(bench_outcomes[o], "insufficient_funds"))
			continue;
		failed += n;
		if (!bench_outcome_temporary(o))
			rc = EXIT_BUG;
		else if (rc == 0)
			rc = EXIT_TEMPORARY;
	}
	if (rc)
		fprintf(stderr, "esbank: bench: %" PRIu64 " requests failed (see the outcomes)\n",
			failed);
	return rc;
}

static int bench_report(const bench_t *b)
{
	if (b->cfg.setup_only) {
		bench_print_accounts(b);
		return 0;
	}
	double elapsed_s = (double)(b->end_ns - b->start_ns) / 1e9;
	if (b->cfg.json)
		bench_print_json(b, elapsed_s);
	else
		bench_print_text(b, elapsed_s);
	return bench_exit_code(b);
}

/* ---- setup and teardown ---- */

static int bench_alloc(bench_t *b)
{
	unsigned char tag[sizeof(b->tag) / 2];

	b->conns = calloc(b->cfg.connections, sizeof(*b->conns));
	b->acct = calloc(b->cfg.accounts, sizeof(*b->acct));
	if (!b->conns || !b->acct)
		return -ENOMEM;
	for (int op = 0; op <= BENCH_LOAD_OPS; op++)
		if (histogram_init(&b->lat[op], 1, BENCH_LAT_HIGHEST_NS, BENCH_LAT_DIGITS) < 0)
			return -ENOMEM;
	randombytes_buf(tag, sizeof(tag));
	sodium_bin2hex(b->tag, sizeof(b->tag), tag, sizeof(tag));
	randombytes_buf(&b->rng, sizeof(b->rng));
	b->rng |= 1; /* xorshift never leaves 0 */
	return 0;
}

static void bench_free(bench_t *b)
{
	for (uint64_t k = 0; b->conns && k < b->cfg.connections; k++) {
		free(b->conns[k].slots);
		free(b->conns[k].free);
	}
	for (uint64_t i = 0; b->acct && i < b->cfg.accounts; i++)
		free(b->acct[i].code);
	for (int op = 0; op <= BENCH_LOAD_OPS; op++)
		histogram_free(&b->lat[op]);
	free(b->conns);
	free(b->acct);
	free(b->by_seq);
	free(b);
}

int bench_run(const config_opt_t *opts, const char *sock_path, bool json)
{
	bench_t *b = calloc(1, sizeof(*b));

	if (!b || sodium_init() < 0) {
		fprintf(stderr, "esbank: bench: cannot start: out of memory\n");
		free(b);
		return EXIT_TEMPORARY;
	}
	b->cfg.json = json;
	int rc = bench_parse(&b->cfg, opts, sock_path);
	if (rc) {
		free(b);
		return rc;
	}
	b->progress_on = isatty(STDERR_FILENO);
	if (bench_alloc(b) < 0 || bench_start(b) < 0) {
		fprintf(stderr, "esbank: bench: out of memory\n");
		rc = EXIT_TEMPORARY;
		if (b->loop)
			bench_shutdown(b);
	}
	if (b->loop)
		uv_run(b->loop, UV_RUN_DEFAULT);
	if (rc == 0)
		rc = b->rc ? b->rc : bench_report(b);
	bench_free(b);
	return rc;
}
