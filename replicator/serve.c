/*
 * serve.c - the bus session's messages to the replicator (docs/peers.md,
 * Replicator), and the notes from nats.c's threads, handed to the file that
 * owns what they change.
 *
 * In:  {"t":"append","first":S,"events":[bin,...],"prev":hex}   (primary)
 *      {"t":"from","seq":S}                                     (standby)
 *      {"t":"promote","c":cid}                                  (standby)
 *      {"t":"receipts","seqs":[S,...]}                          (primary)
 * receipts: the seqs whose mail this group's mailer delivered; published
 * as {"seqs":[S,...]} on NAME.receipts (js.c) while primary and not fenced,
 * else dropped. At most REPL_RECEIPT_SEQS_MAX seqs, each a positive integer:
 * anything else is dropped whole.
 * An append whose events are not all bins of 1..LOGFILE_RECORD_BODY_MAX
 * bytes is dropped whole; events at or below the highest accepted seq are
 * skipped; a gap ends the session (the bus reconnects, the hello gives the
 * replicated hwm, and it sends again from there), as the logger does.
 */
#include "replicator.h"

#include "diag.h"
#include "protocol.h"

#include <errno.h>
#include <stdint.h>

static void serve_on_append(conn_t *bus, const msgpack_object *m)
{
	repl_t *r = bus->data;
	uint64_t first;
	char prev[REPL_HEX_BYTES];
	const msgpack_object *evs = msg_get(m, PEER_F_EVENTS);
	if (msg_get_u64(m, PEER_F_FIRST, &first) < 0 || first == 0 || logfile_check_bodies(evs) < 0 ||
	    first > UINT64_MAX - evs->via.array.size) {
		diag_warn("append: malformed message ignored");
		return;
	}
	bool has_prev = msg_get_strcpy(m, PEER_F_PREV, prev, sizeof(prev)) == 0;
	if (r->mode != REPL_MODE_PRIMARY && !r->fenced) {
		diag_warn("append: not primary; ignored");
		return;
	}
	if (publish_append(r, first, evs, has_prev ? prev : NULL) == -EPIPE) {
		peer_drop(&r->bus, "append: a gap in the events");
		return;
	}
	if (r->pending_bytes > REPL_PENDING_BYTES_MAX && !r->paused) {
		diag_warn("%zu bytes of events wait for the stream; pausing the bus", r->pending_bytes);
		conn_pause(bus);
		r->paused = true;
	}
}

static void serve_on_from(conn_t *bus, const msgpack_object *m)
{
	repl_t *r = bus->data;
	uint64_t seq;
	if (msg_get_u64(m, PEER_F_SEQ, &seq) < 0 || seq == 0) {
		diag_warn("from: malformed message ignored");
		return;
	}
	follow_from(r, seq);
}

static void serve_on_promote(conn_t *bus, const msgpack_object *m)
{
	repl_t *r = bus->data;
	uint64_t cid = 0;
	if (msg_get_u64(m, PEER_F_CID, &cid) < 0) {
		diag_warn("promote: malformed message ignored");
		return;
	}
	promote_start(r, cid);
}

static int serve_check_seqs(const msgpack_object *seqs)
{
	if (!seqs || seqs->type != MSGPACK_OBJECT_ARRAY || seqs->via.array.size == 0 ||
	    seqs->via.array.size > REPL_RECEIPT_SEQS_MAX)
		return -EINVAL;
	for (uint32_t i = 0; i < seqs->via.array.size; i++) {
		const msgpack_object *q = &seqs->via.array.ptr[i];
		if (q->type != MSGPACK_OBJECT_POSITIVE_INTEGER || q->via.u64 == 0)
			return -EINVAL;
	}
	return 0;
}

static void serve_on_receipts(conn_t *bus, const msgpack_object *m)
{
	repl_t *r = bus->data;
	const msgpack_object *seqs = msg_get(m, PEER_F_SEQS);
	if (serve_check_seqs(seqs) < 0) {
		diag_warn("receipts: malformed message ignored");
		return;
	}
	if (r->mode != REPL_MODE_PRIMARY || r->fenced || !r->ready)
		return; /* not the primary: its deliveries are no one's receipts */
	msgpack_sbuffer sb;
	msgpack_sbuffer_init(&sb);
	msgpack_packer pk;
	msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
	msgpack_pack_map(&pk, 1);
	msg_pack_str(&pk, PEER_F_SEQS);
	msgpack_pack_array(&pk, seqs->via.array.size);
	for (uint32_t i = 0; i < seqs->via.array.size; i++)
		msgpack_pack_uint64(&pk, seqs->via.array.ptr[i].via.u64);
	if (js_receipts(r, sb.data, sb.size) < 0)
		diag_warn("receipts for %u mails not published (NATS unreachable)",
		          seqs->via.array.size);
	msgpack_sbuffer_destroy(&sb);
}

const peer_handler_t repl_handlers[] = {
	{ PEER_MSG_RECEIPTS, serve_on_receipts },
	{ PEER_MSG_APPEND, serve_on_append },
	{ PEER_MSG_FROM, serve_on_from },
	{ PEER_MSG_PROMOTE, serve_on_promote },
	{ NULL, NULL },
};

static void serve_note(repl_t *r, js_note_t *n)
{
	switch (n->kind) {
	case JS_NOTE_ACK:
		publish_ack(r, n);
		break;
	case JS_NOTE_PUB_ERROR:
		publish_error(r, n);
		break;
	case JS_NOTE_FOLLOW:
		follow_message(r, n);
		break;
	case JS_NOTE_HEARTBEAT:
		follow_heartbeat(r, n);
		break;
	case JS_NOTE_DISCONNECTED:
		diag_warn("disconnected from NATS");
		/* Before ready, the start-up is still trying (it may drop a first
		 * connection that timed out): no hello yet, and a fault set now would
		 * outlive the start-up that then succeeds, with nothing to clear it. */
		if (r->mode == REPL_MODE_PRIMARY && r->ready && !r->fenced && !r->fault_sent)
			out_fault(r, "the connection to NATS is lost");
		break;
	case JS_NOTE_RECONNECTED:
		diag_info("reconnected to NATS");
		publish_reconnected(r);
		break;
	}
}

void serve_notes(repl_t *r, js_note_t *n)
{
	for (js_note_t *next; n; n = next) {
		next = n->next;
		if (!r->stopping)
			serve_note(r, n);
		js_note_free(r, n);
	}
	out_maybe_hello(r);
}
