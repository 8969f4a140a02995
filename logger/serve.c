/*
 * serve.c - the logger's side of the peer protocol (docs/peers.md, Logger).
 *
 * In:  {"t":"append","first":S,"events":[bin, ...]}
 *      {"t":"read","c":cid,"from":S,"limit":K,"bytes":B}
 *      {"t":"statement",...} (statement.c)
 * Out: {"t":"hello","role":"logger","hwm":N,"pid":P,"head":hex,"end":E?}
 *      {"t":"durable","seq":N,"head":hex}
 *      {"t":"read","c":cid,"first":S,"events":[bin, ...],"last":D,
 *       "prev":hex,"head":hex}
 *      {"t":"fault","message":text}
 *
 * Only the bound bus session (common/peer.h) reaches these handlers.
 * While the log's start-up check runs (lg->check, logger.c) the hello's
 * hwm is the verified prefix and "end" the log's last seq, "durable" follows
 * the prefix, reads stop at it (lf.last_seq), and appends are ignored (the
 * session ends when the check does: the bus sends them again).
 * An append whose events are not all bins of 1..LOGFILE_RECORD_BODY_MAX bytes
 * is dropped whole. Events at or below the highest sequence number held (on
 * disk or pending) are skipped; a gap (an event after accepted_seq + 1) ends
 * the bus session with the rest of the batch unread: the bus reconnects, the
 * hello tells it the durable hwm, and it sends again every event after it.
 * Dropping the batch and carrying on instead would leave every later append
 * refused while the bus waits for a durable that never comes. A read reply holds at most B bytes of event bodies and
 * K events, and never more than LOGGER_READ_BYTES_MAX with the per-event
 * overhead, so the frame stays under FRAME_BODY_MAX; `limit` and `bytes` are
 * optional (no limit but the frame's). In a read reply, "prev" is the chain
 * hash of record S - 1 (64 hex digits, all zeros for S = 1; absent when
 * S - 1 is past the durable end), so a reader can check that a state it holds
 * at S - 1 belongs to this log; "head" is the chain hash of the last event
 * returned (absent when none was). Reads run on the loop thread: recent
 * events are in the page cache, and a read is bounded by one frame.
 */
#include "logger.h"
#include "diag.h"
#include "protocol.h"

#include <errno.h>
#include <sodium.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

static void logger_hex(const uint8_t h[LOGFILE_HASH_BYTES], char out[LOGGER_HEX_BYTES])
{
	sodium_bin2hex(out, LOGGER_HEX_BYTES, h, LOGFILE_HASH_BYTES);
}

void logger_send_hello(logger_t *lg, conn_t *bus)
{
	char hex[LOGGER_HEX_BYTES];
	logger_hex(lg->lf.head_hash, hex);
	msgpack_packer *pk = peer_hello_begin(&lg->bus, bus, lg->lf.last_seq, lg->check ? 2 : 1);
	msg_pack_kv_str(pk, PEER_F_HEAD, hex);
	if (lg->check) /* the log's check goes on: durable grows up to end */
		msg_pack_kv_u64(pk, PEER_F_END, lg->check_end);
	conn_pack_end(bus);
	lg->greeted = true;
	diag_info("bus connected; hello with hwm %llu%s", (unsigned long long)lg->lf.last_seq,
	         lg->check ? " (the log's check goes on)" : "");
}

void logger_broadcast_durable(logger_t *lg)
{
	char hex[LOGGER_HEX_BYTES];
	conn_t *bus = peer_bus(&lg->bus);
	if (!bus || !lg->greeted)
		return;
	logger_hex(lg->lf.head_hash, hex);
	msgpack_packer *pk = conn_pack_begin(bus);
	msgpack_pack_map(pk, 3);
	msg_pack_kv_str(pk, PEER_T, PEER_MSG_DURABLE);
	msg_pack_kv_u64(pk, PEER_F_SEQ, lg->lf.last_seq);
	msg_pack_kv_str(pk, PEER_F_HEAD, hex);
	conn_pack_end(bus);
}

void logger_broadcast_fault(logger_t *lg, const char *message)
{
	conn_t *bus = peer_bus(&lg->bus);
	if (!bus || !lg->greeted)
		return;
	peer_send_fault(bus, message);
}

/* Accepts events first.. in order; returns how many were new. */
static uint32_t logger_accept_events(logger_t *lg, uint64_t first, const msgpack_object *evs)
{
	uint32_t added = 0;
	for (uint32_t i = 0; i < evs->via.array.size; i++) {
		uint64_t seq = first + i;
		if (seq <= lg->accepted_seq)
			continue;
		if (seq != lg->accepted_seq + 1) {
			char why[96];
			snprintf(why, sizeof(why), "append: gap: event %llu after %llu",
			         (unsigned long long)seq, (unsigned long long)lg->accepted_seq);
			peer_drop(&lg->bus, why);
			break;
		}
		const msgpack_object_bin *b = &evs->via.array.ptr[i].via.bin;
		int r = logger_commit_add(lg, seq, b->ptr, b->size);
		if (r < 0) {
			diag_error("append: event %llu refused (%s); the rest of the batch dropped",
			          (unsigned long long)seq, strerror(-r));
			break;
		}
		added++;
	}
	return added;
}

static void logger_on_append(conn_t *bus, const msgpack_object *m)
{
	logger_t *lg = bus->data;
	uint64_t first;
	const msgpack_object *evs = msg_get(m, PEER_F_EVENTS);
	if (msg_get_u64(m, PEER_F_FIRST, &first) < 0 || first == 0 || logfile_check_bodies(evs) < 0 ||
	    first > UINT64_MAX - evs->via.array.size) {
		diag_warn("append: malformed message ignored");
		return;
	}
	if (lg->check) { /* nothing is written before the log is checked whole */
		if (!lg->check_skipped)
			diag_info("append during the log's check ignored: the bus sends it again");
		lg->check_skipped = true;
		return;
	}
	logger_indexjob_kick(lg);
	logger_accept_events(lg, first, evs);
	if (lg->pending.len > LOGGER_PENDING_BYTES_MAX && !lg->paused) {
		diag_warn("%zu bytes of events wait for the disk; pausing the bus",
		         lg->pending.len);
		conn_pause(bus);
		lg->paused = true;
	}
	logger_commit_kick(lg);
}

typedef struct {
	msg_buf_t *buf;
	size_t used;   /* body bytes plus per-event overhead */
	uint32_t n;
	uint64_t last; /* seq of the last event read */
} logger_reader_t;

static int logger_read_cb(uint64_t seq, const char *body, size_t len, void *arg)
{
	logger_reader_t *rd = arg;
	if (len + LOGGER_READ_ITEM_OVERHEAD > LOGGER_READ_BYTES_MAX - rd->used)
		return 1;
	msg_pack_binn(&rd->buf->pk, body, len);
	rd->used += len + LOGGER_READ_ITEM_OVERHEAD;
	rd->n++;
	rd->last = seq;
	return 0;
}

/* The chain hash of record seq as hex; false if it is not known. */
static bool logger_hash_known(const logger_t *lg, uint64_t seq, char hex[LOGGER_HEX_BYTES])
{
	uint8_t h[LOGFILE_HASH_BYTES];
	if (!logfile_hash_at(&lg->lf, seq, h))
		return false;
	logger_hex(h, hex);
	return true;
}

static void logger_reply_read(logger_t *lg, conn_t *bus, const msgpack_object *cid,
                              uint64_t first, const logger_reader_t *rd)
{
	char prev[LOGGER_HEX_BYTES], head[LOGGER_HEX_BYTES];
	bool has_prev = logger_hash_known(lg, first - 1, prev);
	bool has_head = rd->n > 0 && logger_hash_known(lg, rd->last, head);
	msgpack_packer *pk = conn_pack_begin(bus);
	msgpack_pack_map(pk, 5 + has_prev + has_head);
	msg_pack_kv_str(pk, PEER_T, PEER_MSG_READ);
	msg_pack_str(pk, PEER_F_CID);
	msgpack_pack_object(pk, *cid);
	msg_pack_kv_u64(pk, PEER_F_FIRST, first);
	msg_pack_str(pk, PEER_F_EVENTS);
	msgpack_pack_array(pk, rd->n);
	pk->callback(pk->data, rd->buf->sb.data, rd->buf->sb.size); /* the packed bins */
	msg_pack_kv_u64(pk, PEER_F_LAST, lg->lf.last_seq);
	if (has_prev)
		msg_pack_kv_str(pk, PEER_F_PREV, prev);
	if (has_head)
		msg_pack_kv_str(pk, PEER_F_HEAD, head);
	conn_pack_end(bus);
}

/* A correlation id is echoed as it came: an integer or a short string. */
static bool logger_cid_ok(const msgpack_object *cid)
{
	if (!cid)
		return false;
	switch (cid->type) {
	case MSGPACK_OBJECT_POSITIVE_INTEGER:
	case MSGPACK_OBJECT_NEGATIVE_INTEGER:
		return true;
	case MSGPACK_OBJECT_STR:
		return cid->via.str.size <= LOGGER_CID_BYTES_MAX;
	default:
		return false;
	}
}

static void logger_on_read(conn_t *bus, const msgpack_object *m)
{
	logger_t *lg = bus->data;
	uint64_t from, limit = UINT64_MAX, bytes = LOGGER_READ_BYTES_MAX;
	const msgpack_object *cid = msg_get(m, PEER_F_CID);
	if (!logger_cid_ok(cid) || msg_get_u64(m, PEER_F_FROM, &from) < 0 ||
	    msg_get_u64(m, PEER_F_LIMIT, &limit) == -EINVAL ||
	    msg_get_u64(m, PEER_F_BYTES, &bytes) == -EINVAL) {
		diag_warn("read: malformed message ignored");
		return;
	}
	if (from == 0)
		from = 1;
	if (bytes > LOGGER_READ_BYTES_MAX)
		bytes = LOGGER_READ_BYTES_MAX;
	if (limit > SIZE_MAX)
		limit = SIZE_MAX;
	msg_buf_reset(&lg->scratch);
	logger_reader_t rd = { .buf = &lg->scratch };
	long r = logfile_read(&lg->lf, from, (size_t)limit, (size_t)bytes, logger_read_cb, &rd);
	if (r < 0)
		diag_error("read from %llu: %s (sending the %u events read)",
		          (unsigned long long)from, strerror((int)-r), rd.n);
	logger_reply_read(lg, bus, cid, from, &rd);
}

/* {"t":"statement"}: answered by statement.c once the index is open. */
static void logger_on_statement_msg(conn_t *bus, const msgpack_object *m)
{
	logger_indexjob_kick(bus->data);
	logger_on_statement(bus, m);
}

static void logger_write_figures(FILE *f, void *data)
{
	const logger_t *lg = data;
	figures_counter(f, "esbank_logger_events_appended_total", "Events written and fsynced.",
	                lg->stat_events);
	figures_counter(f, "esbank_logger_batches_appended_total",
	                "Batches written, one pwrite and one fdatasync each.", lg->stat_batches);
	figures_counter(f, "esbank_logger_write_errors_total", "Batch writes that failed.",
	                lg->stat_write_errors);
	figures_histogram(f, "esbank_logger_fsync_seconds",
	                  "Time of one batch's pwrite and fdatasync.", &lg->fsync_us);
	figures_histogram(f, "esbank_logger_events_per_fsync", "Events in one fsynced batch.",
	                  &lg->batch_events);
	figures_gauge(f, "esbank_logger_durable_seq", "The last seq on disk.",
	              (double)lg->lf.last_seq);
	figures_gauge(f, "esbank_logger_fault", "1 while the log cannot be written (retrying).",
	              lg->faulted);
}

/* {"t":"figures"}: the logger's figures (common/figures.h). */
static void logger_on_figures(conn_t *bus, const msgpack_object *msg)
{
	(void)msg;
	if (figures_send(bus, logger_write_figures, bus->data) < 0)
		diag_warn("out of memory writing the figures");
}

const peer_handler_t logger_handlers[] = {
	{ PEER_MSG_FIGURES, logger_on_figures },
	{ PEER_MSG_APPEND, logger_on_append },
	{ PEER_MSG_READ, logger_on_read },
	{ PEER_MSG_STATEMENT, logger_on_statement_msg },
	{ NULL, NULL },
};
