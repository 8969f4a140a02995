/*
 * peers.c - the bus's links to its four peers (docs/peers.md): each a
 * link_t that reconnects with back-off and opens its session with the bus
 * hello; the peer's hello, and each peer's messages, dispatched by name to
 * the file of their concern (routes, recovery, reads, the snapshotter's and
 * the mailer's feeds), which each keep their own state. What the logger's
 * link says of the log (its hwm and head, a write fault) is kept here.
 */
#include "hub.h"

#include "config.h"
#include "diag.h"
#include "protocol.h"
#include "peer.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>


/* The logger's hello: a new logger session, maybe a restarted logger. */
static void peers_logger_hello(hub_t *h, const msgpack_object *msg)
{
	peers_t *ps = &h->peers;
	msg_get_strcpy(msg, PEER_F_HEAD, ps->logger_head, sizeof(ps->logger_head));
	mail_logger_up(h, ps->logger_hwm);
	batches_discard(h, PEER_LOGGER);
	/* a new logger holding every event has nothing left to fail on */
	if (ps->logger_hwm >= h->routes.last_seq)
		ps->log_fault = false;
	route_logger_up(h, ps->logger_hwm); /* everything not yet durable, again */
	if (h->recovery.role == BUS_ROLE_PRIMARY)
		repl_judge(h);
	route_durable(h, repl_bound(h, ps->logger_hwm));
	if (h->recovery.state != BUS_LIVE)
		recovery_check(h);
	clientreads_logger_back(h);
}

static void peers_on_hello(hub_t *h, peer_t *p, const msgpack_object *msg)
{
	uint64_t hwm = 0;
	p->hello = true;
	p->pid = 0;
	msg_get_u64(msg, PEER_F_HWM, &hwm);
	msg_get_u64(msg, PEER_F_PID, &p->pid);
	diag_info("%s connected (hwm %llu)", peer_name(p->role), (unsigned long long)hwm);
	switch (p->role) {
	case PEER_RESOLVER:
		recovery_resolver_up(h, msg);
		break;
	case PEER_LOGGER:
		h->peers.logger_hwm = hwm;
		h->peers.logger_end = hwm;
		msg_get_u64(msg, PEER_F_END, &h->peers.logger_end);
		peers_logger_hello(h, msg);
		break;
	case PEER_SNAPSHOTTER:
		snapfeed_up(h, msg);
		break;
	case PEER_MAILER:
		mail_up(h, msg);
		break;
	case PEER_REPLICATOR:
		repl_up(h, msg);
		route_durable(h, repl_bound(h, h->peers.logger_hwm));
		if (repl_stalled(h))
			route_refuse_held_queries(h);
		break;
	default:
		break;
	}
	recovery_check(h);
}

static void peers_on_res(hub_t *h, peer_t *p, const msgpack_object *msg)
{
	if (route_results(h, msg_get(msg, PEER_F_ITEMS)) == -EPROTO)
		link_reset(&p->link); /* a gap: recovery rebuilds the resolver */
}

/*
 * A standby becomes the primary once its takeover record is applied: checked
 * when the resolver reports applying events, and when the replicator's
 * "promoted" comes, since the record may come through the follow (and be
 * applied) before that message does.
 */
static void peers_promotion_check(hub_t *h)
{
	uint64_t takeover = h->repl.takeover_seq;
	if (repl_promotion_applied(h, h->routes.resolver_hwm)) {
		recovery_set_role(h, BUS_ROLE_PRIMARY);
		repl_now_primary(h, takeover);
		mail_promoted(h, takeover);
		recovery_check(h);
	}
}

static void peers_on_replayed(hub_t *h, peer_t *p, const msgpack_object *msg)
{
	(void)p;
	uint64_t hwm = 0;
	msg_get_u64(msg, PEER_F_HWM, &hwm);
	recovery_replayed(h, hwm);
	peers_promotion_check(h);
}

static void peers_on_loaded(hub_t *h, peer_t *p, const msgpack_object *msg)
{
	(void)p;
	recovery_loaded(h, msg);
}

static void peers_on_durable(hub_t *h, peer_t *p, const msgpack_object *msg)
{
	(void)p;
	peers_t *ps = &h->peers;
	uint64_t seq = 0;
	msg_get_u64(msg, PEER_F_SEQ, &seq);
	msg_get_strcpy(msg, PEER_F_HEAD, ps->logger_head, sizeof(ps->logger_head));
	ps->logger_hwm = seq;
	if (ps->log_fault)
		diag_info("the log is writable again (durable %llu): taking commands",
		         (unsigned long long)seq);
	ps->log_fault = false; /* a write went through: the disk is back */
	route_durable(h, repl_bound(h, seq));
	if (h->recovery.state != BUS_LIVE) {
		recovery_durable(h);
		recovery_check(h);
	}
}

static void peers_on_read(hub_t *h, peer_t *p, const msgpack_object *msg)
{
	(void)p;
	reads_result(h, msg);
}

static void peers_on_statement(hub_t *h, peer_t *p, const msgpack_object *msg)
{
	if (p->role == PEER_LOGGER)
		statement_result(h, msg);
}

static void peers_on_fault(hub_t *h, peer_t *p, const msgpack_object *msg)
{
	if (p->role == PEER_REPLICATOR) {
		repl_fault(h, msg);
		if (repl_stalled(h))
			route_refuse_held_queries(h);
		return;
	}
	const char *m = "";
	size_t n = 0;
	msg_get_str(msg, PEER_F_MESSAGE, &m, &n);
	diag_warn("logger fault: %.*s; commands get unavailable until the log is "
	         "writable again", (int)n, m);
	h->peers.log_fault = true;
}

static void peers_on_refused(hub_t *h, peer_t *p, const msgpack_object *msg)
{
	(void)h;
	const char *m = "";
	size_t n = 0;
	msg_get_str(msg, PEER_F_MESSAGE, &m, &n);
	diag_warn("%s refused this bus: %.*s", peer_name(p->role), (int)n, m);
}

static void peers_on_ack(hub_t *h, peer_t *p, const msgpack_object *msg)
{
	if (p->role == PEER_SNAPSHOTTER)
		snapfeed_ack(h, msg);
	else if (p->role == PEER_MAILER)
		mail_ack(h, msg);
}

static void peers_on_delivered(hub_t *h, peer_t *p, const msgpack_object *msg)
{
	if (p->role == PEER_MAILER)
		mail_delivered(h, msg);
}

static void peers_on_replicated(hub_t *h, peer_t *p, const msgpack_object *msg)
{
	(void)p;
	repl_replicated(h, msg);
	route_durable(h, repl_bound(h, h->peers.logger_hwm));
	if (h->recovery.state != BUS_LIVE)
		recovery_check(h);
	else if (h->repl.sent < h->routes.last_seq)
		repl_check(h); /* events logged during a fault are caught up from the log */
}

/* Another primary wrote: nothing held or later is acknowledged here. */
static void peers_on_fenced(hub_t *h, peer_t *p, const msgpack_object *msg)
{
	(void)p;
	if (h->recovery.role != BUS_ROLE_PRIMARY)
		return;
	repl_fenced(h, msg);
	recovery_set_role(h, BUS_ROLE_FENCED);
	route_refuse_held(h);
}

static void peers_on_follow(hub_t *h, peer_t *p, const msgpack_object *msg)
{
	(void)p;
	const msgpack_object *evs;
	uint32_t skip;
	if (repl_follow(h, msg, h->routes.last_seq, &skip, &evs) == 0)
		route_followed(h, evs, skip);
}

static void peers_on_promoted(hub_t *h, peer_t *p, const msgpack_object *msg)
{
	(void)p;
	repl_promoted(h, msg);
	peers_promotion_check(h);
}

static void peers_on_receipts(hub_t *h, peer_t *p, const msgpack_object *msg)
{
	if (p->role == PEER_REPLICATOR)
		mail_receipts(h, msg);
}

static void peers_on_primary(hub_t *h, peer_t *p, const msgpack_object *msg)
{
	(void)p;
	repl_primary(h, msg);
}

static void peers_on_figures(hub_t *h, peer_t *p, const msgpack_object *msg)
{
	gather_figures(h, p->role, msg);
}

typedef void (*peers_msg_fn)(hub_t *h, peer_t *p, const msgpack_object *msg);

/* The messages a peer may send the bus, by name (docs/peers.md). */
static const struct {
	const char *type;
	peers_msg_fn fn;
} peers_msgs[] = {
	{ PEER_MSG_HELLO, peers_on_hello },
	{ PEER_MSG_RES, peers_on_res },
	{ PEER_MSG_REPLAYED, peers_on_replayed },
	{ PEER_MSG_LOADED, peers_on_loaded },
	{ PEER_MSG_DURABLE, peers_on_durable },
	{ PEER_MSG_READ, peers_on_read },
	{ PEER_MSG_STATEMENT, peers_on_statement },
	{ PEER_MSG_FAULT, peers_on_fault },
	{ PEER_MSG_REFUSED, peers_on_refused },
	{ PEER_MSG_ACK, peers_on_ack },
	{ PEER_MSG_DELIVERED, peers_on_delivered },
	{ PEER_MSG_REPLICATED, peers_on_replicated },
	{ PEER_MSG_FENCED, peers_on_fenced },
	{ PEER_MSG_FOLLOW, peers_on_follow },
	{ PEER_MSG_PROMOTED, peers_on_promoted },
	{ PEER_MSG_PRIMARY, peers_on_primary },
	{ PEER_MSG_RECEIPTS, peers_on_receipts },
	{ PEER_MSG_FIGURES, peers_on_figures },
};

static void peers_message(hub_t *h, peer_t *p, const msgpack_object *msg)
{
	const msgpack_object *t = msg_get(msg, PEER_T);
	for (size_t i = 0; t && i < sizeof(peers_msgs) / sizeof(peers_msgs[0]); i++) {
		if (msg_str_eq(t, peers_msgs[i].type)) {
			peers_msgs[i].fn(h, p, msg);
			return;
		}
	}
	diag_warn("unknown message from %s: ignored", peer_name(p->role));
}

static void peers_on_frame(conn_t *c, const char *body, size_t len)
{
	link_t *k = c->data;
	peer_t *p = k->data;
	msgpack_zone zone;
	msgpack_zone_init(&zone, 4096);
	msgpack_object msg;
	if (msg_decode_map(body, len, &zone, &msg) == 0)
		peers_message(p->hub, p, &msg);
	else
		diag_warn("undecodable frame from %s: ignored", peer_name(p->role));
	msgpack_zone_destroy(&zone);
	hub_assert(p->hub);
}

static void peers_on_up(link_t *k)
{
	peer_send_bus_hello(&k->conn); /* the peer answers with its own hello */
}

static void peers_on_down(link_t *k)
{
	peer_t *p = k->data;
	hub_t *h = p->hub;
	p->hello = false;
	diag_warn("%s disconnected", peer_name(p->role));
	if (p->role == PEER_RESOLVER) {
		route_resolver_lost(h);
		recovery_resolver_lost(h);
	} else if (p->role == PEER_LOGGER) {
		reads_logger_lost(h);
		statement_logger_lost(h);
		recovery_logger_lost(h);
		snapfeed_down(h);
		mail_logger_lost(h);
	} else if (p->role == PEER_SNAPSHOTTER) {
		snapfeed_down(h);
	} else if (p->role == PEER_MAILER) {
		mail_down(h);
	} else if (p->role == PEER_REPLICATOR) {
		repl_down(h);
		batches_discard(h, PEER_REPLICATOR);
	}
	hub_assert(h);
}

int peers_start(hub_t *h, const char *run_dir)
{
	for (int r = 0; r < PEER_COUNT; r++) {
		peer_t *p = &h->peers.peer[r];
		if (r == PEER_REPLICATOR && h->recovery.role == BUS_ROLE_SINGLE)
			continue; /* no replicator: its link never starts */
		p->hub = h;
		p->role = (peer_role_t)r;
		p->link.data = p;
		char name[32];
		snprintf(name, sizeof(name), "%s.sock", peer_name((peer_role_t)r));
		char *path = config_path(run_dir, name);
		if (!path)
			return -ENOMEM;
		int rc = link_start(&p->link, h->loop, path, peers_on_frame, peers_on_up,
		                    peers_on_down);
		free(path);
		if (rc < 0)
			return rc;
	}
	return 0;
}
