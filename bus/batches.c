/*
 * batches.c - every message the bus sends to a peer. The items for each
 * peer are packed into one message per loop iteration (the hub's uv_check
 * handle calls batches_flush): one "req" to the resolver, one "append" to
 * the logger, one "events" to the snapshotter, one "mail" to the mailer,
 * one "append" to the replicator (a primary), one "replay" to the resolver
 * (a standby's followed events, once durable) (docs/peers.md has each message field by field). A batch about to pass
 * BUS_BATCH_BYTES_MAX is sent at once and a new one begun. Control messages
 * and forwarded log reads are sent at once, outside the batches.
 *
 * It reads the peers' links (peers.c writes them) and writes only batches_t.
 */
#include "hub.h"

#include "protocol.h"

/* Each peer's batch message: {"t": type, field: [items...]}. */
static const struct {
	const char *type;
	const char *field;
} batches_names[PEER_COUNT] = {
	[PEER_RESOLVER] = { PEER_MSG_REQ, PEER_F_ITEMS },
	[PEER_LOGGER] = { PEER_MSG_APPEND, PEER_F_EVENTS },
	[PEER_SNAPSHOTTER] = { PEER_MSG_EVENTS, PEER_F_EVENTS },
	[PEER_MAILER] = { PEER_MSG_MAIL, PEER_F_ITEMS },
	[PEER_REPLICATOR] = { PEER_MSG_APPEND, PEER_F_EVENTS },
};

void batches_init(hub_t *h)
{
	for (int r = 0; r < PEER_COUNT; r++)
		msg_buf_init(&h->batches.of[r].items);
	msg_buf_init(&h->batches.replay.items);
}

/*
 * Sends role's batch as one frame and empties it (dropped when the peer is
 * not up: see docs/peers.md for who catches up how). partial: sent early
 * because it is full; the snapshotter's batch then carries no "head" (that
 * hash belongs to durable_seq, not to its last event).
 */
static void batches_send(hub_t *h, peer_role_t role, bool partial)
{
	bus_batch_t *b = &h->batches.of[role];
	if (b->n == 0)
		return;
	peer_t *p = &h->peers.peer[role];
	if (p->link.up && p->hello) {
		conn_t *c = &p->link.conn;
		msgpack_packer *pk = conn_pack_begin(c);
		bool head = role == PEER_SNAPSHOTTER && h->peers.logger_head[0] && !partial;
		bool first = role == PEER_LOGGER || role == PEER_REPLICATOR;
		msgpack_pack_map(pk, 2 + first + head);
		msg_pack_kv_str(pk, PEER_T, batches_names[role].type);
		if (first)
			msg_pack_kv_u64(pk, PEER_F_FIRST, h->batches.first[role]);
		if (head) /* the log's hash at the batch's last event: durable_seq */
			msg_pack_kv_str(pk, PEER_F_HEAD, h->peers.logger_head);
		msg_pack_str(pk, batches_names[role].field);
		msgpack_pack_array(pk, b->n);
		msg_buf_append(&c->out, b->items.sb.data, b->items.sb.size);
		conn_pack_end(c);
	}
	msg_buf_reset(&b->items);
	b->n = 0;
}

msgpack_packer *batches_add(hub_t *h, peer_role_t role, size_t item_bytes)
{
	bus_batch_t *b = &h->batches.of[role];
	if (b->items.sb.size + item_bytes > BUS_BATCH_BYTES_MAX)
		batches_send(h, role, true);
	b->n++;
	return &b->items.pk;
}

void batches_add_append(hub_t *h, uint64_t seq, const char *ev, size_t n)
{
	msgpack_packer *pk = batches_add(h, PEER_LOGGER, n + BUS_BATCH_ITEM_OVERHEAD);
	if (h->batches.of[PEER_LOGGER].n == 1)
		h->batches.first[PEER_LOGGER] = seq;
	msg_pack_binn(pk, ev, n);
}

void batches_add_repl(hub_t *h, uint64_t seq, const char *ev, size_t n)
{
	msgpack_packer *pk = batches_add(h, PEER_REPLICATOR, n + BUS_BATCH_ITEM_OVERHEAD);
	if (h->batches.of[PEER_REPLICATOR].n == 1)
		h->batches.first[PEER_REPLICATOR] = seq;
	msg_pack_binn(pk, ev, n);
}

/* Sends the resolver's "replay" batch (dropped when it is not up: recovery replays). */
static void batches_send_replay(hub_t *h)
{
	bus_batch_t *b = &h->batches.replay;
	peer_t *p = &h->peers.peer[PEER_RESOLVER];
	if (b->n && p->link.up && p->hello) {
		conn_t *c = &p->link.conn;
		msgpack_packer *pk = conn_pack_begin(c);
		msgpack_pack_map(pk, 2);
		msg_pack_kv_str(pk, PEER_T, PEER_MSG_REPLAY);
		msg_pack_str(pk, PEER_F_EVENTS);
		msgpack_pack_array(pk, b->n);
		msg_buf_append(&c->out, b->items.sb.data, b->items.sb.size);
		conn_pack_end(c);
	}
	msg_buf_reset(&b->items);
	b->n = 0;
}

void batches_add_replay(hub_t *h, const char *ev, size_t n)
{
	bus_batch_t *b = &h->batches.replay;
	if (b->items.sb.size + n + BUS_BATCH_ITEM_OVERHEAD > BUS_BATCH_BYTES_MAX)
		batches_send_replay(h);
	b->n++;
	msg_pack_binn(&b->items.pk, ev, n);
}

void batches_discard(hub_t *h, peer_role_t role)
{
	if (role == PEER_RESOLVER) {
		msg_buf_reset(&h->batches.replay.items);
		h->batches.replay.n = 0;
	}
	msg_buf_reset(&h->batches.of[role].items);
	h->batches.of[role].n = 0;
}

void batches_flush(hub_t *h)
{
	if (h->batches.replay.n) /* before queries: their answers may rest on it */
		batches_send_replay(h);
	for (int r = 0; r < PEER_COUNT; r++)
		batches_send(h, (peer_role_t)r, false);
	batches_assert(&h->batches);
}

void batches_send_control(hub_t *h, peer_role_t role, const char *type, uint64_t max)
{
	conn_t *c = &h->peers.peer[role].link.conn;
	msgpack_packer *pk = conn_pack_begin(c);
	msgpack_pack_map(pk, max ? 2 : 1);
	msg_pack_kv_str(pk, PEER_T, type);
	if (max)
		msg_pack_kv_u64(pk, PEER_F_MAX, max);
	conn_pack_end(c);
}

void batches_send_seqs(hub_t *h, peer_role_t role, const char *type,
                       const msgpack_object *seqs)
{
	conn_t *c = &h->peers.peer[role].link.conn;
	msgpack_packer *pk = conn_pack_begin(c);
	msgpack_pack_map(pk, 2);
	msg_pack_kv_str(pk, PEER_T, type);
	msg_pack_str(pk, PEER_F_SEQS);
	msgpack_pack_array(pk, seqs->via.array.size);
	for (uint32_t i = 0; i < seqs->via.array.size; i++)
		msgpack_pack_uint64(pk, seqs->via.array.ptr[i].via.u64);
	conn_pack_end(c);
}

void batches_pack_events(msgpack_packer *pk, const msgpack_object *evs)
{
	msg_pack_str(pk, PEER_F_EVENTS);
	msgpack_pack_array(pk, evs->via.array.size);
	for (uint32_t i = 0; i < evs->via.array.size; i++) {
		const msgpack_object_bin *ev = &evs->via.array.ptr[i].via.bin;
		msg_pack_binn(pk, ev->ptr, ev->size);
	}
}

void batches_forward(hub_t *h, peer_role_t role, const char *type, const msgpack_object *msg,
                     bool with_head)
{
	conn_t *c = &h->peers.peer[role].link.conn;
	const msgpack_object *evs = msg_get(msg, PEER_F_EVENTS);
	const char *head;
	size_t head_n;
	with_head = with_head && msg_get_str(msg, PEER_F_HEAD, &head, &head_n) == 0;
	msgpack_packer *pk = conn_pack_begin(c);
	msgpack_pack_map(pk, 2 + with_head);
	msg_pack_kv_str(pk, PEER_T, type);
	if (with_head)
		msg_pack_kv_strn(pk, PEER_F_HEAD, head, head_n);
	batches_pack_events(pk, evs);
	conn_pack_end(c);
}
