/*
 * reads.c - the one read pipeline to the logger: {"t":"read","c":0,"from":S,
 * "limit":K,"bytes":BUS_READ_BYTES_MAX} out, one answer back per read, in
 * order (docs/peers.md). A malformed answer (no "events" array) is logged
 * and its read forgotten; an answer with an event that is not bin is
 * forgotten silently; either way its callback does not run.
 */
#include "hub.h"

#include "diag.h"
#include "protocol.h"

#include <errno.h>
#include <string.h>

void reads_init(hub_t *h)
{
	bus_fifo_init(&h->reads.queue, sizeof(bus_read_t));
}

static void reads_send_one(hub_t *h, uint64_t from, uint64_t limit)
{
	conn_t *c = &h->peers.peer[PEER_LOGGER].link.conn;
	msgpack_packer *pk = conn_pack_begin(c);
	msgpack_pack_map(pk, 5);
	msg_pack_kv_str(pk, PEER_T, PEER_MSG_READ);
	msg_pack_kv_u64(pk, PEER_F_CID, 0);
	msg_pack_kv_u64(pk, PEER_F_FROM, from);
	msg_pack_kv_u64(pk, PEER_F_LIMIT, limit);
	msg_pack_kv_u64(pk, PEER_F_BYTES, BUS_READ_BYTES_MAX);
	conn_pack_end(c);
}

int reads_send(hub_t *h, uint64_t from, uint64_t limit, const bus_read_t *rd)
{
	assert(rd->on_result);
	if (!peer_up(h, PEER_LOGGER))
		return -ENOTCONN;
	bus_read_t *r = bus_fifo_push(&h->reads.queue);
	if (!r)
		return -ENOMEM;
	*r = *rd;
	reads_send_one(h, from, limit);
	return 0;
}

/* True when msg's "events" is an array of bin; logs when there is none. */
static bool reads_valid(const msgpack_object *msg)
{
	const msgpack_object *evs = msg_get(msg, PEER_F_EVENTS);
	if (!evs || evs->type != MSGPACK_OBJECT_ARRAY) {
		diag_error("malformed read result from the logger");
		return false;
	}
	for (uint32_t i = 0; i < evs->via.array.size; i++)
		if (evs->via.array.ptr[i].type != MSGPACK_OBJECT_BIN)
			return false;
	return true;
}

void reads_result(hub_t *h, const msgpack_object *msg)
{
	if (h->reads.queue.count == 0) {
		diag_warn("a read result nobody asked for: ignored");
		return;
	}
	bus_read_t rd = *(bus_read_t *)bus_fifo_peek(&h->reads.queue, 0);
	bus_fifo_pop(&h->reads.queue);
	if (reads_valid(msg))
		rd.on_result(h, &rd, msg);
}

void reads_logger_lost(hub_t *h)
{
	while (h->reads.queue.count) {
		bus_read_t rd = *(bus_read_t *)bus_fifo_peek(&h->reads.queue, 0);
		bus_fifo_pop(&h->reads.queue);
		rd.on_result(h, &rd, NULL);
	}
}

const msgpack_object *reads_events(const msgpack_object *msg, uint64_t *first)
{
	*first = 0;
	msg_get_u64(msg, PEER_F_FIRST, first);
	return msg_get(msg, PEER_F_EVENTS);
}

bool reads_prev_is(const msgpack_object *msg, const char *chain)
{
	const char *prev;
	size_t n;
	if (msg_get_str(msg, PEER_F_PREV, &prev, &n) < 0)
		return false;
	return n == strlen(chain) && memcmp(prev, chain, n) == 0;
}
