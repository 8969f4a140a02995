/* status.c - the protocol's "status": the bus's view of the group. */
#include "hub.h"

#include "protocol.h"

void status_reply(hub_t *h, client_t *c, uint64_t id)
{
	msgpack_packer *pk = conn_pack_begin(&c->conn);
	proto_pack_ok(pk, id, 7);
	msg_pack_kv_str(pk, "state", h->state == BUS_LIVE ? "live" : "recovering");
	msg_pack_kv_u64(pk, "last_seq", h->state == BUS_LIVE ? h->last_seq : h->durable_seq);
	msg_pack_kv_u64(pk, "durable_seq", h->durable_seq);
	msg_pack_kv_u64(pk, "snapshot_seq", h->peers[PEER_SNAPSHOTTER].snapshot_seq);
	msg_pack_kv_str(pk, "head_hash", h->peers[PEER_LOGGER].head);
	msg_pack_kv_u64(pk, "uptime_ms", hub_now_ms() - h->started_ms);
	msg_pack_str(pk, "peers");
	msgpack_pack_map(pk, PEER_COUNT);
	for (int r = 0; r < PEER_COUNT; r++) {
		const peer_t *p = &h->peers[r];
		msg_pack_str(pk, peer_name((peer_role_t)r));
		bool logger = r == PEER_LOGGER;
		msgpack_pack_map(pk, 3 + logger);
		msg_pack_kv_bool(pk, "connected", peer_up(h, (peer_role_t)r));
		msg_pack_kv_u64(pk, "hwm", p->hwm);
		msg_pack_kv_u64(pk, "pid", p->pid);
		if (logger) /* the log cannot be written: commands get unavailable */
			msg_pack_kv_bool(pk, "fault", h->log_fault);
	}
	conn_pack_end(&c->conn);
	hub_check_backlog(c);
}
