/*
 * statement.c - the logger keeps the account index (index.c) and answers
 * the bus's statements from it (docs/peers.md, Logger).
 *
 * In:  {"t":"statement","c":cid,"account":A,"since":MS?,"until":MS?,
 *       "after_seq":S?,"limit":L}
 * Out: {"t":"statement","c":cid,"n":5,"body":bin}, body being five
 *       key/value pairs of the client's reply, packed: "account" (16-digit
 *       string), "opening_balance", "closing_balance", "entries" (array of
 *       maps "seq","ts","type","amount","counterparty" (string or nil),
 *       "balance"), "more"; or {"t":"statement","c":cid,"error":code,
 *       "message":text} with code not_found, unavailable, overloaded or
 *       internal.
 *
 * cid is an integer; A is the account as a number; L is 1..INDEX_PAGE_MAX.
 * A malformed statement is logged and ignored. The index holds durable
 * events only: each batch is folded in after its fdatasync, and its entries
 * are written with one pwrite (never fsync'd: the index is derived, see
 * index.c). A statement walks the index in libuv's thread pool, at most
 * LOGGER_STATEMENTS_MAX at once, so a long history never stalls the loop
 * (appends and acknowledgements). The reply's entries stop where the frame
 * would pass LOGGER_STATEMENT_BYTES_MAX ("more" is then true).
 */
#include "logger.h"
#include "diag.h"
#include "ledger.h"
#include "protocol.h"

#include <assert.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The record layout of common/logfile.c: len (4), seq (8), body, hash (32). */
#define LOGGER_RECORD_HEAD_BYTES 12
#define LOGGER_RECORD_TAIL_BYTES 32
#define LOGGER_STATEMENT_FIELDS 5
/* Room in the reply's buffer beyond the entries: the other fields and the
 * entry that passes the limit before it is taken back. */
#define LOGGER_STATEMENT_SLACK_BYTES 4096

typedef struct {
	uv_work_t work;
	logger_t *lg;
	uint64_t session;
	uint64_t cid;
	uint64_t account;
	uint64_t last;     /* the account's last entry */
	index_t ix;        /* a copy: fd and written only, for the worker */
	index_query_t q;
	index_page_t page;
	int result;
	msg_buf_t body;    /* the packed key/value pairs */
} logger_stmt_t;

int logger_index_open(logger_t *lg, const char *dir)
{
	index_report_t rep;
	index_t ix;
	return logger_index_adopt(lg, dir, index_open(&ix, dir, &lg->lf, &rep), &ix, &rep);
}

int logger_index_adopt(logger_t *lg, const char *dir, int r, index_t *ix,
                       const index_report_t *rep_in)
{
	index_report_t rep = *rep_in;
	if (r == 0)
		lg->index = *ix;
	if (r < 0) {
		diag_error("cannot open the account index %s/%s: %s; statements are unavailable",
		          dir, INDEX_FILE_NAME, strerror(-r));
		return r;
	}
	lg->index_ok = true;
	if (rep.created || rep.cut_entries || rep.caught_up)
		diag_info("account index: %s%llu entries cut, %llu events folded in from the log; "
		         "%llu entries", rep.created ? "(re)built; " : "",
		         (unsigned long long)rep.cut_entries, (unsigned long long)rep.caught_up,
		         (unsigned long long)lg->index.entries);
	return 0;
}

void logger_index_close(logger_t *lg)
{
	if (!lg->index_ok)
		return;
	int r = lg->index_damaged ? 0 : index_save_table(&lg->index);
	if (lg->index_damaged)
		diag_warn("the account index is damaged: the next start scans it and rebuilds");
	else if (r < 0)
		diag_warn("cannot save the account index's table (%s): the next start scans it",
		         strerror(-r));
	index_close(&lg->index);
	lg->index_ok = false;
}

static uint32_t logger_be32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static uint64_t logger_be64(const uint8_t *p)
{
	return (uint64_t)logger_be32(p) << 32 | logger_be32(p + 4);
}

void logger_index_batch(logger_t *lg, const char *buf, size_t len)
{
	if (!lg->index_ok || lg->index.broken)
		return;
	const uint8_t *p = (const uint8_t *)buf, *end = p + len;
	while (end - p > LOGGER_RECORD_HEAD_BYTES) {
		uint32_t n = logger_be32(p);
		uint64_t seq = logger_be64(p + 4);
		if (seq == lg->index.last_seq + 1 &&
		    index_add(&lg->index, seq, (const char *)p + LOGGER_RECORD_HEAD_BYTES, n) < 0) {
			diag_error("out of memory indexing event %llu: statements are unavailable "
			          "until the next start", (unsigned long long)seq);
			lg->index.broken = true;
			return;
		}
		p += LOGGER_RECORD_HEAD_BYTES + n + LOGGER_RECORD_TAIL_BYTES;
	}
	int r = index_flush(&lg->index);
	if (r < 0)
		diag_warn("cannot write the account index (%s)%s", strerror(-r),
		         lg->index.broken ? ": statements are unavailable until the next start"
		                          : ": tried again with the next batch");
}

/* Packs out[i] as the client's entry map. */
static void logger_pack_entry(msgpack_packer *pk, const index_entry_t *e)
{
	char cp[24];
	const char *type = ledger_event_type_name((ledger_event_type_t)e->type);
	msgpack_pack_map(pk, 6);
	msg_pack_kv_u64(pk, "seq", e->seq);
	msg_pack_kv_i64(pk, "ts", e->ts_ms);
	msg_pack_kv_str(pk, "type", type ? type : "unknown");
	msg_pack_kv_i64(pk, "amount", e->amount);
	if (e->counterparty) {
		snprintf(cp, sizeof(cp), "%llu", (unsigned long long)e->counterparty);
		msg_pack_kv_str(pk, "counterparty", cp);
	} else {
		msg_pack_kv_nil(pk, "counterparty");
	}
	msg_pack_kv_i64(pk, "balance", e->balance);
}

/* The reply's key/value pairs into st->body, entries cut to fit a frame:
 * packed in place behind an array32 header whose count is set at the end. */
static void logger_pack_page(logger_stmt_t *st)
{
	char acct[24];
	msgpack_packer *pk = &st->body.pk;
	msgpack_sbuffer *sb = &st->body.sb;
	bool more = st->page.more;
	snprintf(acct, sizeof(acct), "%llu", (unsigned long long)st->account);
	msg_pack_kv_str(pk, "account", acct);
	msg_pack_kv_i64(pk, "opening_balance", st->page.opening_balance);
	msg_pack_kv_i64(pk, "closing_balance", st->page.closing_balance);
	msg_pack_str(pk, "entries");
	static const char array32[5] = { (char)0xdd, 0, 0, 0, 0 };
	msg_buf_append(&st->body, array32, sizeof(array32));
	size_t head = sb->size - 4, start = sb->size, n = 0;
	for (; n < st->page.n; n++) {
		size_t before = sb->size;
		logger_pack_entry(pk, &st->page.out[n]);
		if (sb->size - start > LOGGER_STATEMENT_BYTES_MAX) {
			sb->size = before;
			more = true;
			break;
		}
	}
	for (int i = 0; i < 4; i++)
		sb->data[head + i] = (char)(n >> (24 - 8 * i));
	msg_pack_kv_bool(pk, "more", more);
}

static void logger_stmt_work_cb(uv_work_t *w)
{
	logger_stmt_t *st = w->data;
	char *room = malloc(LOGGER_STATEMENT_BYTES_MAX + LOGGER_STATEMENT_SLACK_BYTES);
	if (room) { /* one allocation for the whole reply: no growing by copies */
		free(st->body.sb.data);
		st->body.sb.data = room;
		st->body.sb.alloc = LOGGER_STATEMENT_BYTES_MAX + LOGGER_STATEMENT_SLACK_BYTES;
		st->body.sb.size = 0;
	}
	st->page.out = malloc(st->q.limit * sizeof(*st->page.out));
	st->result = st->page.out ? index_walk(&st->ix, st->last, &st->q, &st->page) : -ENOMEM;
	if (st->result == 0)
		logger_pack_page(st);
	free(st->page.out);
	st->page.out = NULL;
}

static void logger_stmt_error(logger_t *lg, conn_t *bus, uint64_t cid, proto_err_t e,
                              const char *message)
{
	msgpack_packer *pk = conn_pack_begin(bus);
	msgpack_pack_map(pk, 4);
	msg_pack_kv_str(pk, PEER_T, PEER_MSG_STATEMENT);
	msg_pack_kv_u64(pk, PEER_F_CID, cid);
	msg_pack_kv_str(pk, PEER_F_ERROR, proto_err_name(e));
	msg_pack_kv_str(pk, PEER_F_MESSAGE, message);
	conn_pack_end(bus);
	(void)lg;
}

static void logger_stmt_after_cb(uv_work_t *w, int status)
{
	logger_stmt_t *st = w->data;
	logger_t *lg = st->lg;
	lg->statements--;
	lg->index_damaged |= st->result == -EBADMSG;
	conn_t *bus = peer_bus(&lg->bus);
	if (status == 0 && bus && lg->greeted && st->session == lg->session) {
		if (st->result < 0) {
			diag_error("statement of %llu: the index cannot be read (%s)",
			          (unsigned long long)st->account, strerror(-st->result));
			logger_stmt_error(lg, bus, st->cid, PROTO_E_INTERNAL,
			                  "the account index cannot be read");
		} else {
			msgpack_packer *pk = conn_pack_begin(bus);
			msgpack_pack_map(pk, 4);
			msg_pack_kv_str(pk, PEER_T, PEER_MSG_STATEMENT);
			msg_pack_kv_u64(pk, PEER_F_CID, st->cid);
			msg_pack_kv_u64(pk, PEER_F_N, LOGGER_STATEMENT_FIELDS);
			msg_pack_kv_bin(pk, PEER_F_BODY, st->body.sb.data, st->body.sb.size);
			conn_pack_end(bus);
		}
	}
	msg_buf_free(&st->body);
	free(st);
}

/* Reads the statement's fields: false when malformed. */
static bool logger_stmt_decode(const msgpack_object *m, logger_stmt_t *st)
{
	uint64_t limit;
	st->q = (index_query_t){ .since_ms = INT64_MIN, .until_ms = INT64_MAX };
	return msg_get_u64(m, PEER_F_CID, &st->cid) == 0 &&
	       msg_get_u64(m, PEER_F_ACCOUNT, &st->account) == 0 &&
	       msg_get_u64(m, PEER_F_LIMIT, &limit) == 0 && limit >= 1 &&
	       limit <= INDEX_PAGE_MAX && (st->q.limit = (size_t)limit) &&
	       msg_get_i64(m, PEER_F_SINCE, &st->q.since_ms) != -EINVAL &&
	       msg_get_i64(m, PEER_F_UNTIL, &st->q.until_ms) != -EINVAL &&
	       msg_get_u64(m, PEER_F_AFTER_SEQ, &st->q.after_seq) != -EINVAL;
}

/* Why a statement cannot be answered now; NULL when it can. */
static const char *logger_stmt_unavailable(const logger_t *lg)
{
	if (lg->indexjob.state != LOGGER_INDEX_DONE)
		return "the account index is being opened after the logger's start; retry in a "
		       "few seconds";
	if (!lg->index_ok || lg->index.broken)
		return "the account index is not usable; it is rebuilt at the logger's next start";
	if (lg->index.written != lg->index.entries)
		return "the account index is behind the log (a write failed); retry later";
	return NULL;
}

void logger_on_statement(conn_t *bus, const msgpack_object *m)
{
	logger_t *lg = bus->data;
	logger_stmt_t key = { 0 };
	if (!logger_stmt_decode(m, &key)) {
		diag_warn("statement: malformed message ignored");
		return;
	}
	const char *why = logger_stmt_unavailable(lg);
	int64_t balance;
	if (why) {
		logger_stmt_error(lg, bus, key.cid, PROTO_E_UNAVAILABLE, why);
	} else if (lg->statements >= LOGGER_STATEMENTS_MAX) {
		logger_stmt_error(lg, bus, key.cid, PROTO_E_OVERLOADED, "too many statements at once");
	} else if (!index_lookup(&lg->index, key.account, &key.last, &balance)) {
		logger_stmt_error(lg, bus, key.cid, PROTO_E_NOT_FOUND, "no such account");
	} else {
		logger_stmt_t *st = malloc(sizeof(*st));
		if (!st) {
			logger_stmt_error(lg, bus, key.cid, PROTO_E_OVERLOADED, "out of memory");
			return;
		}
		*st = key;
		st->lg = lg;
		st->session = lg->session;
		st->ix = (index_t){ .fd = lg->index.fd, .written = lg->index.written,
			            .map = lg->index.map };
		st->work.data = st;
		msg_buf_init(&st->body);
		lg->statements++;
		int r = uv_queue_work(lg->loop, &st->work, logger_stmt_work_cb, logger_stmt_after_cb);
		assert(r == 0);
		(void)r;
	}
}
