/*
 * results.c - the resolver's results on their way to the bus (docs/peers.md,
 * Resolver): the "res" items that commands.c, queries.c and pwhash.c emit
 * are collected in r->items and sent as one frame
 *     {"t":"res","items":[{"c":cid,"w":seq,"reply":bin,"ev":bin?,"mail":bin?}, ...]}
 * (a "transfers" request's items carry "first":S,"evs":[bin,...] instead of
 * "ev", and all but its last item no reply)
 * when a "req" batch or a password job is done, or earlier when the next
 * item would take the frame past RESOLVER_RES_BYTES_MAX. Results produced
 * while no bus session is open are dropped (their clients retry). Also the
 * resolver's clock (resolver_now_ms).
 *
 * A leaf of the resolver: it calls only common/; the files that resolve
 * requests call it.
 */
#include "resolver.h"

#include "diag.h"
#include "protocol.h"

#include <time.h>

int64_t resolver_now_ms(const resolver_t *r)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	int64_t now = (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
	int64_t last = ledger_last_ts(r->ledger);
	return now < last ? last : now;
}

void resolver_flush(resolver_t *r)
{
	if (r->item_count == 0)
		return;
	conn_t *bus = peer_bus(&r->session);
	if (bus) {
		msgpack_packer *pk = conn_pack_begin(bus);
		msgpack_pack_map(pk, 2);
		msg_pack_kv_str(pk, PEER_T, PEER_MSG_RES);
		msg_pack_str(pk, PEER_F_ITEMS);
		msgpack_pack_array(pk, r->item_count);
		msgpack_pack_str_body(pk, r->items.sb.data, r->items.sb.size); /* raw items */
		conn_pack_end(bus);
	} else {
		diag_warn("no bus connected: %u results dropped (their clients will retry)",
		         r->item_count);
	}
	msg_buf_reset(&r->items);
	r->item_count = 0;
}

void resolver_emit(resolver_t *r, uint64_t cid, uint64_t wait_seq, const msg_buf_t *reply,
                   const msg_buf_t *ev, const msg_buf_t *mail)
{
	/*
	 * One "res" frame must stay within FRAME_BODY_MAX, or the bus refuses it
	 * and drops the link (found by test_limits: 15,000 replies to one "req"
	 * batch made a 3 MB frame): send what is collected first.
	 */
	size_t item_bytes = reply->sb.size + (ev ? ev->sb.size : 0) + (mail ? mail->sb.size : 0);
	if (r->items.sb.size + item_bytes + RESOLVER_ITEM_OVERHEAD > RESOLVER_RES_BYTES_MAX)
		resolver_flush(r);
	msgpack_packer *pk = &r->items.pk;
	msgpack_pack_map(pk, 3 + (ev != NULL) + (mail != NULL));
	msg_pack_kv_u64(pk, PEER_F_CID, cid);
	msg_pack_kv_u64(pk, PEER_F_WAIT_SEQ, wait_seq);
	msg_pack_kv_bin(pk, PEER_F_REPLY, reply->sb.data, reply->sb.size);
	if (ev)
		msg_pack_kv_bin(pk, PEER_F_EV, ev->sb.data, ev->sb.size);
	if (mail)
		msg_pack_kv_bin(pk, PEER_F_MAIL, mail->sb.data, mail->sb.size);
	r->item_count++;
}

void resolver_emit_events(resolver_t *r, uint64_t cid, const msg_buf_t *reply, uint64_t first,
                          const msg_buf_t *evs, uint32_t n)
{
	size_t item_bytes = (reply ? reply->sb.size : 0) + evs->sb.size;
	if (r->items.sb.size + item_bytes + RESOLVER_ITEM_OVERHEAD > RESOLVER_RES_BYTES_MAX)
		resolver_flush(r);
	msgpack_packer *pk = &r->items.pk;
	msgpack_pack_map(pk, 2 + (reply != NULL) + 2 * (n > 0));
	msg_pack_kv_u64(pk, PEER_F_CID, cid);
	msg_pack_kv_u64(pk, PEER_F_WAIT_SEQ, reply ? ledger_last_seq(r->ledger) : first + n - 1);
	if (reply)
		msg_pack_kv_bin(pk, PEER_F_REPLY, reply->sb.data, reply->sb.size);
	if (n > 0) {
		msg_pack_kv_u64(pk, PEER_F_FIRST, first);
		msg_pack_str(pk, PEER_F_EVS);
		msgpack_pack_array(pk, n);
		msgpack_pack_str_body(pk, evs->sb.data, evs->sb.size); /* raw bins */
	}
	r->item_count++;
}

void resolver_emit_error(resolver_t *r, uint64_t cid, uint64_t id, proto_err_t err,
                         const char *message)
{
	msg_buf_t reply;
	msg_buf_init(&reply);
	proto_pack_error(&reply.pk, id, err, message);
	resolver_emit(r, cid, ledger_last_seq(r->ledger), &reply, NULL, NULL);
	msg_buf_free(&reply);
}
