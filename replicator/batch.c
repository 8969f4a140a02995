/*
 * batch.c - the stream message: what one JetStream message on NAME.log holds.
 *
 * A message is one or more log records back to back, byte for byte as in
 * events.log (common/logfile.c, "record"), with no batch header:
 *   0  4  len   body length, 1 <= len <= LOGFILE_RECORD_BODY_MAX (big-endian)
 *   4  8  seq   the event's sequence number (big-endian)
 *   12 len body one event: one msgpack map
 *   .. 32 hash  the chain hash: BLAKE2b-256 of prev hash || seq || len || body
 * Valid: at least one record; every record whole; seqs consecutive; every
 * hash chained to the record before it (for the first record: to the last
 * record of the stream message before, when the reader knows it); the
 * message ends exactly after its last record. So the hash chain goes on
 * through the stream, and the last record's hash is the stream's head.
 * A message that is not valid is refused whole (-EBADMSG): a standby stops
 * following there rather than write it into its log.
 *
 * Headers (set by js.c): Nats-Msg-Id "<first seq>-<last seq>" (this file's
 * batch_msg_id) and Nats-Expected-Last-Sequence, the stream sequence of the
 * message before (the fence).
 *
 * The takeover record's event (batch_takeover_event) is a msgpack map
 *   {"seq":S,"ts":ms,"type":"primary_changed","node":NAME}
 * that changes no balance.
 *
 * Pure: no I/O; the hash is checked by encoding the record again with
 * logfile_encode() and comparing bytes, so there is one record encoder.
 */
#include "replicator.h"

#include "msg.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define BATCH_RECORD_HEAD_BYTES 12 /* len + seq */
#define BATCH_EVENT_TYPE "primary_changed"

static uint64_t batch_get_be(const unsigned char *p, int n)
{
	uint64_t v = 0;
	for (int i = 0; i < n; i++)
		v = v << 8 | p[i];
	return v;
}

/* Checks the record at p (at most avail bytes) chained to chain; its length or -EBADMSG. */
static long batch_check_record(const unsigned char *p, size_t avail, uint64_t want_seq,
                               uint8_t chain[LOGFILE_HASH_BYTES], char **scratch,
                               size_t *cap)
{
	if (avail < BATCH_RECORD_HEAD_BYTES)
		return -EBADMSG;
	uint64_t len = batch_get_be(p, 4), seq = batch_get_be(p + 4, 8);
	if (len == 0 || len > LOGFILE_RECORD_BODY_MAX || (want_seq && seq != want_seq) || seq == 0)
		return -EBADMSG;
	size_t rec_len = BATCH_RECORD_HEAD_BYTES + len + LOGFILE_HASH_BYTES;
	if (avail < rec_len)
		return -EBADMSG;
	size_t used = 0;
	int r = logfile_encode(seq, (const char *)p + BATCH_RECORD_HEAD_BYTES, len, chain,
	                       scratch, &used, cap);
	if (r < 0 || used != rec_len || memcmp(*scratch, p, rec_len) != 0)
		return -EBADMSG;
	return (long)rec_len;
}

int batch_decode(const char *buf, size_t len, const uint8_t *prev, batch_record_cb cb,
                 void *arg)
{
	const unsigned char *p = (const unsigned char *)buf;
	uint8_t chain[LOGFILE_HASH_BYTES];
	char *scratch = NULL;
	size_t cap = 0, at = 0;
	uint64_t seq = 0;
	int r = len == 0 ? -EBADMSG : 0;
	while (r == 0 && at < len) {
		if (at == 0 && !prev) {
			/* the first record's predecessor is not known: take its hash on trust */
			uint64_t l = len < BATCH_RECORD_HEAD_BYTES ? 0 : batch_get_be(p, 4);
			if (l == 0 || l > LOGFILE_RECORD_BODY_MAX ||
			    len < BATCH_RECORD_HEAD_BYTES + l + LOGFILE_HASH_BYTES) {
				r = -EBADMSG;
				break;
			}
			seq = batch_get_be(p + 4, 8);
			const unsigned char *h = p + BATCH_RECORD_HEAD_BYTES + l;
			memcpy(chain, h, LOGFILE_HASH_BYTES);
			r = seq == 0 ? -EBADMSG : cb(seq, buf + BATCH_RECORD_HEAD_BYTES, l, chain, arg);
			at = BATCH_RECORD_HEAD_BYTES + l + LOGFILE_HASH_BYTES;
			seq++;
			continue;
		}
		if (at == 0)
			memcpy(chain, prev, LOGFILE_HASH_BYTES);
		long n = batch_check_record(p + at, len - at, seq, chain, &scratch, &cap);
		if (n < 0) {
			r = (int)n;
			break;
		}
		uint64_t s = batch_get_be(p + at + 4, 8), l = batch_get_be(p + at, 4);
		r = cb(s, buf + at + BATCH_RECORD_HEAD_BYTES, l, chain, arg);
		at += (size_t)n;
		seq = s + 1;
	}
	free(scratch);
	return r;
}

void batch_msg_id(uint64_t first, uint64_t last, char out[REPL_MSG_ID_BYTES_MAX])
{
	snprintf(out, REPL_MSG_ID_BYTES_MAX, "%" PRIu64 "-%" PRIu64, first, last);
}

int batch_parse_msg_id(const char *id, uint64_t *first, uint64_t *last)
{
	char *end;
	if (!id || *id < '0' || *id > '9')
		return -EINVAL;
	errno = 0;
	unsigned long long a = strtoull(id, &end, 10);
	if (errno || *end != '-' || end[1] < '0' || end[1] > '9')
		return -EINVAL;
	unsigned long long b = strtoull(end + 1, &end, 10);
	if (errno || *end || a == 0 || b < a)
		return -EINVAL;
	*first = a;
	*last = b;
	return 0;
}

int batch_takeover_event(uint64_t seq, uint64_t ts_ms, const char *node, char *buf, size_t cap)
{
	msgpack_sbuffer sb;
	msgpack_sbuffer_init(&sb);
	msgpack_packer pk;
	msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
	msgpack_pack_map(&pk, 4);
	msg_pack_kv_u64(&pk, "seq", seq);
	msg_pack_kv_u64(&pk, "ts", ts_ms);
	msg_pack_kv_str(&pk, "type", BATCH_EVENT_TYPE);
	msg_pack_kv_str(&pk, "node", node);
	int r = sb.size <= cap ? (int)sb.size : -E2BIG;
	if (r > 0)
		memcpy(buf, sb.data, sb.size);
	msgpack_sbuffer_destroy(&sb);
	return r;
}

bool batch_takeover_node(const char *body, size_t len, char *out, size_t out_len)
{
	msgpack_zone zone;
	msgpack_object m;
	bool found = false;
	if (!msgpack_zone_init(&zone, 1024))
		return false;
	if (msg_decode_map(body, len, &zone, &m) == 0) {
		const msgpack_object *t = msg_get(&m, "type");
		found = t && msg_str_eq(t, BATCH_EVENT_TYPE) &&
		        msg_get_strcpy(&m, "node", out, out_len) == 0;
	}
	msgpack_zone_destroy(&zone);
	return found;
}
