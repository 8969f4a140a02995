/*
 * out.c - the replicator's messages to the bus (docs/peers.md, Replicator):
 *   {"t":"hello","role":"replicator","hwm":N,"pid":P,"head":hex,"mode":M,
 *    "stream":NAME,"stream_seq":Q,"replicas":R,"node":NAME,"fault":text?}
 *   ("fault" when a primary cannot publish now: the fault not yet cleared
 *   by a replication, or fenced; a fenced one's hello is followed by
 *   "fenced" again)
 *   {"t":"replicated","seq":N,"stream_seq":Q}
 *   {"t":"fault","message":text}
 *   {"t":"fenced","primary":NAME-or-nil,"message":text}
 *   {"t":"follow","first":S,"events":[bin,...],"stream_seq":Q}
 *   {"t":"promoted","c":cid,"seq":S}  or  {"t":"promoted","c":cid,"error":E,"message":text}
 *   {"t":"primary","node":NAME,"seq":N}
 * Each is sent only to the bound bus session once it was greeted; without
 * one it is dropped (the next hello carries the state).
 */
#include "replicator.h"

#include "diag.h"
#include "protocol.h"

#include <sodium.h>
#include <stdio.h>

void out_hex(const uint8_t h[LOGFILE_HASH_BYTES], char out[REPL_HEX_BYTES])
{
	sodium_bin2hex(out, REPL_HEX_BYTES, h, LOGFILE_HASH_BYTES);
}

static conn_t *out_bus(repl_t *r)
{
	conn_t *bus = peer_bus(&r->bus);
	return bus && r->greeted ? bus : NULL;
}

void out_hello(repl_t *r, conn_t *bus)
{
	char hex[REPL_HEX_BYTES];
	bool primary = r->mode == REPL_MODE_PRIMARY;
	bool fault = primary && (r->fault_sent || r->fenced);
	uint64_t hwm = primary ? r->acked_seq : r->tail.last;
	out_hex(primary ? r->acked_chain : r->tail.head, hex);
	msgpack_packer *pk = peer_hello_begin(&r->bus, bus, hwm, 6 + fault);
	msg_pack_kv_str(pk, PEER_F_HEAD, hex);
	msg_pack_kv_str(pk, PEER_F_MODE, primary ? PEER_MODE_PRIMARY : PEER_MODE_STANDBY);
	msg_pack_kv_str(pk, PEER_F_STREAM, r->cfg.stream);
	msg_pack_kv_u64(pk, PEER_F_STREAM_SEQ, primary ? r->stream_seq : r->stream_last_seen);
	msg_pack_kv_u64(pk, PEER_F_REPLICAS, r->cfg.replicas);
	msg_pack_kv_str(pk, PEER_F_NODE, r->cfg.node);
	if (fault)
		msg_pack_kv_str(pk, PEER_F_FAULT, r->fault_why);
	conn_pack_end(bus);
	r->greeted = true;
	diag_info("bus connected; hello (%s) with hwm %llu%s%s", primary ? "primary" : "standby",
	         (unsigned long long)hwm, fault ? "; fault: " : "", fault ? r->fault_why : "");
	if (!primary && *r->primary) /* the primary known before this session */
		out_primary(r, r->primary, r->primary_seq);
	if (primary && r->fenced)
		out_fenced(r, r->primary, r->fault_why);
}

void out_maybe_hello(repl_t *r)
{
	conn_t *bus = peer_bus(&r->bus);
	if (!bus || r->greeted || !r->ready)
		return;
	/* a faulted one says so at once (its acked hwm is a lower bound, and the
	 * bus takes no command until a replicated clears the fault) */
	if (r->mode == REPL_MODE_PRIMARY && !r->fenced && !r->fault_sent &&
	    (r->inflight > 0 || r->resyncing))
		return;
	out_hello(r, bus);
}

void out_replicated(repl_t *r)
{
	conn_t *bus = out_bus(r);
	if (!bus)
		return;
	msgpack_packer *pk = conn_pack_begin(bus);
	msgpack_pack_map(pk, 3);
	msg_pack_kv_str(pk, PEER_T, PEER_MSG_REPLICATED);
	msg_pack_kv_u64(pk, PEER_F_SEQ, r->acked_seq);
	msg_pack_kv_u64(pk, PEER_F_STREAM_SEQ, r->stream_seq);
	conn_pack_end(bus);
}

void out_fault(repl_t *r, const char *message)
{
	r->fault_sent = true;
	snprintf(r->fault_why, sizeof(r->fault_why), "%s", message);
	conn_t *bus = out_bus(r);
	if (!bus)
		return;
	peer_send_fault(bus, message);
}

void out_fenced(repl_t *r, const char *primary, const char *message)
{
	if (message != r->fault_why)
		snprintf(r->fault_why, sizeof(r->fault_why), "%s", message);
	if (primary != r->primary)
		snprintf(r->primary, sizeof(r->primary), "%s", primary ? primary : "");
	conn_t *bus = out_bus(r);
	if (!bus)
		return;
	msgpack_packer *pk = conn_pack_begin(bus);
	msgpack_pack_map(pk, 3);
	msg_pack_kv_str(pk, PEER_T, PEER_MSG_FENCED);
	if (primary && *primary)
		msg_pack_kv_str(pk, PEER_F_PRIMARY, primary);
	else
		msg_pack_kv_nil(pk, PEER_F_PRIMARY);
	msg_pack_kv_str(pk, PEER_F_MESSAGE, message);
	conn_pack_end(bus);
}

void out_follow(repl_t *r, uint64_t first, const char *const *bodies, const size_t *lens,
                uint32_t n, uint64_t stream_seq)
{
	conn_t *bus = out_bus(r);
	if (!bus || n == 0)
		return;
	msgpack_packer *pk = conn_pack_begin(bus);
	msgpack_pack_map(pk, 4);
	msg_pack_kv_str(pk, PEER_T, PEER_MSG_FOLLOW);
	msg_pack_kv_u64(pk, PEER_F_FIRST, first);
	msg_pack_str(pk, PEER_F_EVENTS);
	msgpack_pack_array(pk, n);
	for (uint32_t i = 0; i < n; i++)
		msg_pack_binn(pk, bodies[i], lens[i]);
	msg_pack_kv_u64(pk, PEER_F_STREAM_SEQ, stream_seq);
	conn_pack_end(bus);
}

void out_promoted(repl_t *r, uint64_t cid, uint64_t seq, const char *error,
                  const char *message)
{
	conn_t *bus = out_bus(r);
	if (!bus)
		return;
	msgpack_packer *pk = conn_pack_begin(bus);
	msgpack_pack_map(pk, error ? 4 : 3);
	msg_pack_kv_str(pk, PEER_T, PEER_MSG_PROMOTED);
	msg_pack_kv_u64(pk, PEER_F_CID, cid);
	if (error) {
		msg_pack_kv_str(pk, PEER_F_ERROR, error);
		msg_pack_kv_str(pk, PEER_F_MESSAGE, message);
	} else {
		msg_pack_kv_u64(pk, PEER_F_SEQ, seq);
	}
	conn_pack_end(bus);
}

void out_receipts(repl_t *r, const repl_seqs_t *set)
{
	conn_t *bus = out_bus(r);
	for (size_t i = 0; bus && i < set->n; i += REPL_RECEIPT_SEQS_MAX) {
		size_t n = set->n - i < REPL_RECEIPT_SEQS_MAX ? set->n - i : REPL_RECEIPT_SEQS_MAX;
		msgpack_packer *pk = conn_pack_begin(bus);
		msgpack_pack_map(pk, 2);
		msg_pack_kv_str(pk, PEER_T, PEER_MSG_RECEIPTS);
		msg_pack_str(pk, PEER_F_SEQS);
		msgpack_pack_array(pk, (uint32_t)n);
		for (size_t k = 0; k < n; k++)
			msgpack_pack_uint64(pk, set->v[i + k]);
		conn_pack_end(bus);
	}
}

static void out_primary_msg(repl_t *r, const char *node, uint64_t seq, bool heartbeat)
{
	conn_t *bus = out_bus(r);
	if (!bus)
		return;
	msgpack_packer *pk = conn_pack_begin(bus);
	msgpack_pack_map(pk, 3 + heartbeat);
	msg_pack_kv_str(pk, PEER_T, PEER_MSG_PRIMARY);
	msg_pack_kv_str(pk, PEER_F_NODE, node);
	msg_pack_kv_u64(pk, PEER_F_SEQ, seq);
	if (heartbeat)
		msg_pack_kv_u64(pk, PEER_F_HWM, seq);
	conn_pack_end(bus);
}

void out_primary(repl_t *r, const char *node, uint64_t seq)
{
	out_primary_msg(r, node, seq, false);
}

void out_heartbeat(repl_t *r, const char *node, uint64_t seq)
{
	out_primary_msg(r, node, seq, true);
}
