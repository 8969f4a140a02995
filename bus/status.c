/*
 * status.c - the protocol's "status": the bus's view of the group, read
 * from each concern's state (it writes none).
 */
#include "hub.h"

#include "protocol.h"

/* A peer's hwm, as the file of its concern keeps it. */
static uint64_t status_hwm(const hub_t *h, peer_role_t role)
{
	switch (role) {
	case PEER_RESOLVER: return h->routes.resolver_hwm;
	case PEER_LOGGER: return h->peers.logger_hwm;
	case PEER_SNAPSHOTTER: return h->snapfeed.hwm;
	case PEER_MAILER: return h->mail.hwm;
	case PEER_REPLICATOR: return h->repl.stream_hwm > h->repl.sent ? h->repl.stream_hwm
	                                                                : h->repl.sent;
	default: return 0;
	}
}

/* "stream": the replicated stream's name, last sequence and replicas. */
static void status_stream(const hub_t *h, msgpack_packer *pk)
{
	msg_pack_str(pk, "stream");
	msgpack_pack_map(pk, 3);
	msg_pack_kv_str(pk, "name", h->repl.stream);
	msg_pack_kv_u64(pk, "last_seq", h->repl.stream_seq);
	msg_pack_kv_u64(pk, "replicas", h->repl.replicas);
}

/* "replication": {"state": ok|fault|down, "fault": text-or-nil, "lag": N-or-nil,
 * "lag_ms": N-or-nil} (a standby's lag: repl_standby_lag). */
static void status_replication(const hub_t *h, msgpack_packer *pk)
{
	bool up = peer_up(h, PEER_REPLICATOR);
	bool fault = up && h->repl.fault;
	bool primary = h->recovery.role == BUS_ROLE_PRIMARY || h->recovery.role == BUS_ROLE_FENCED;
	msg_pack_str(pk, "replication");
	msgpack_pack_map(pk, 4);
	msg_pack_kv_str(pk, "state", !up ? "down" : fault ? "fault" : "ok");
	if (fault)
		msg_pack_kv_str(pk, "fault", h->repl.why);
	else
		msg_pack_kv_nil(pk, "fault");
	uint64_t last = h->routes.last_seq, done = h->repl.replicated, lag, lag_ms;
	if (primary) {
		msg_pack_kv_u64(pk, "lag", last > done ? last - done : 0);
		msg_pack_kv_nil(pk, "lag_ms");
	} else if (repl_standby_lag(h, h->routes.resolver_hwm, &lag, &lag_ms)) {
		msg_pack_kv_u64(pk, "lag", lag);
		msg_pack_kv_u64(pk, "lag_ms", lag_ms);
	} else {
		msg_pack_kv_nil(pk, "lag");
		msg_pack_kv_nil(pk, "lag_ms");
	}
}

void status_reply(hub_t *h, client_t *c, uint64_t id)
{
	bool live = h->recovery.state == BUS_LIVE;
	bool replicated = h->recovery.role != BUS_ROLE_SINGLE;
	int peers = replicated ? PEER_COUNT : PEER_REPLICATOR;
	msgpack_packer *pk = conn_pack_begin(&c->conn);
	proto_pack_ok(pk, id, 8 + 4 * replicated);
	msg_pack_kv_str(pk, "role", recovery_role_name(h->recovery.role));
	if (replicated) {
		msg_pack_kv_u64(pk, "replicated_seq", h->repl.replicated);
		status_replication(h, pk);
		status_stream(h, pk);
		if (h->repl.primary[0])
			msg_pack_kv_str(pk, "primary", h->repl.primary);
		else
			msg_pack_kv_nil(pk, "primary");
	}
	msg_pack_kv_str(pk, "state", live ? "live" : "recovering");
	msg_pack_kv_u64(pk, "last_seq", live ? h->routes.last_seq : h->routes.durable_seq);
	msg_pack_kv_u64(pk, "durable_seq", h->routes.durable_seq);
	msg_pack_kv_u64(pk, "snapshot_seq", h->snapfeed.snapshot_seq);
	msg_pack_kv_str(pk, "head_hash", h->peers.logger_head);
	msg_pack_kv_u64(pk, "uptime_ms", bus_now_ms() - h->started_ms);
	msg_pack_str(pk, "peers");
	msgpack_pack_map(pk, (uint32_t)peers);
	for (int r = 0; r < peers; r++) {
		const peer_t *p = &h->peers.peer[r];
		msg_pack_str(pk, peer_name((peer_role_t)r));
		bool logger = r == PEER_LOGGER;
		msgpack_pack_map(pk, 3 + logger);
		msg_pack_kv_bool(pk, "connected", peer_up(h, (peer_role_t)r));
		msg_pack_kv_u64(pk, "hwm", status_hwm(h, (peer_role_t)r));
		msg_pack_kv_u64(pk, "pid", p->pid);
		if (logger) /* the log cannot be written: commands get unavailable */
			msg_pack_kv_bool(pk, "fault", h->peers.log_fault);
	}
	conn_pack_end(&c->conn);
	clients_check_backlog(c);
}
