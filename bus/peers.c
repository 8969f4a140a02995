/*
 * peers.c - the bus's links to its four peers (docs/peers.md): each a
 * link_t that reconnects with back-off; hello, and each peer's messages.
 */
#include "hub.h"

#include "config.h"
#include "log.h"
#include "peer.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const peer_names[PEER_COUNT] = { "resolver", "logger", "snapshotter",
	                                            "mailer" };

const char *peer_name(peer_role_t role)
{
	return peer_names[role];
}

bool peer_up(const hub_t *h, peer_role_t role)
{
	return h->peers[role].link.up && h->peers[role].hello;
}

/* After a logger restart: everything not yet durable is sent again. */
static void peers_resend_pending(hub_t *h, uint64_t logger_hwm)
{
	for (size_t i = 0; i < h->pending.count; i++) {
		pending_event_t *p = fifo_peek(&h->pending, i);
		if (p->seq <= logger_hwm)
			continue;
		route_append_event(h, p->seq, p->ev.p, p->ev.n);
	}
}

static void peers_hello(hub_t *h, peer_t *p, const msgpack_object *msg)
{
	p->hello = true;
	p->hwm = 0;
	p->pid = 0;
	msg_get_u64(msg, "hwm", &p->hwm);
	msg_get_u64(msg, "pid", &p->pid);
	log_info("%s connected (hwm %llu)", peer_name(p->role), (unsigned long long)p->hwm);
	switch (p->role) {
	case PEER_LOGGER:
		msg_get_strcpy(msg, "head", p->head, sizeof(p->head));
		if (!h->boot_known) {
			h->boot_known = true;
			h->boot_durable = p->hwm;
		}
		msg_buf_reset(&h->batch[PEER_LOGGER].items);
		h->batch[PEER_LOGGER].n = 0;
		/* a new logger holding every event has nothing left to fail on */
		if (p->hwm >= h->last_seq)
			h->log_fault = false;
		peers_resend_pending(h, p->hwm);
		route_durable(h, p->hwm);
		events_logger_back(h);
		break;
	case PEER_SNAPSHOTTER:
		msg_get_u64(msg, "snapshot", &p->snapshot_seq);
		break;
	default:
		break;
	}
	recovery_peer_hello(h, p, msg);
	recovery_check(h);
}

static void peers_message(hub_t *h, peer_t *p, const msgpack_object *msg)
{
	const msgpack_object *t = msg_get(msg, "t");
	if (t && msg_str_eq(t, "hello")) {
		peers_hello(h, p, msg);
	} else if (t && msg_str_eq(t, "res")) {
		route_results(h, msg_get(msg, "items"));
	} else if (t && msg_str_eq(t, "replayed")) {
		uint64_t hwm = 0;
		msg_get_u64(msg, "hwm", &hwm);
		recovery_replayed(h, hwm);
	} else if (t && msg_str_eq(t, "loaded")) {
		recovery_loaded(h, msg);
	} else if (t && msg_str_eq(t, "durable")) {
		uint64_t seq = 0;
		msg_get_u64(msg, "seq", &seq);
		msg_get_strcpy(msg, "head", p->head, sizeof(p->head));
		p->hwm = seq;
		if (h->log_fault)
			log_info("the log is writable again (durable %llu): taking commands",
			         (unsigned long long)seq);
		h->log_fault = false; /* a write went through: the disk is back */
		route_durable(h, seq);
	} else if (t && msg_str_eq(t, "read")) {
		events_read_result(h, msg);
	} else if (t && msg_str_eq(t, "fault")) {
		const char *m = "";
		size_t n = 0;
		msg_get_str(msg, "message", &m, &n);
		log_warn("logger fault: %.*s; commands get unavailable until the log is "
		         "writable again", (int)n, m);
		h->log_fault = true;
	} else if (t && msg_str_eq(t, "refused")) {
		const char *m = "";
		size_t n = 0;
		msg_get_str(msg, "message", &m, &n);
		log_warn("%s refused this bus: %.*s", peer_name(p->role), (int)n, m);
	} else if (t && msg_str_eq(t, "ack")) {
		msg_get_u64(msg, "hwm", &p->hwm);
		msg_get_u64(msg, "snapshot", &p->snapshot_seq);
		if (p->role == PEER_MAILER)
			mail_ack(h, p->hwm);
	} else {
		log_warn("unknown message from %s: ignored", peer_name(p->role));
	}
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
		log_warn("undecodable frame from %s: ignored", peer_name(p->role));
	msgpack_zone_destroy(&zone);
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
	log_warn("%s disconnected", peer_name(p->role));
	if (p->role == PEER_RESOLVER)
		route_resolver_lost(h);
	else if (p->role == PEER_LOGGER) {
		events_logger_lost(h);
		route_logger_lost(h);
	} else if (p->role == PEER_SNAPSHOTTER)
		h->snap_next = 0;
	else if (p->role == PEER_MAILER)
		mail_down(h);
}

void peers_start(hub_t *h, const char *run_dir)
{
	for (int r = 0; r < PEER_COUNT; r++) {
		peer_t *p = &h->peers[r];
		p->hub = h;
		p->role = (peer_role_t)r;
		p->link.data = p;
		char name[32];
		snprintf(name, sizeof(name), "%s.sock", peer_names[r]);
		char *path = config_path(run_dir, name);
		if (!path || link_start(&p->link, h->loop, path, peers_on_frame, peers_on_up,
		                        peers_on_down) < 0) {
			log_error("out of memory starting the peer links");
			exit(EXIT_FAILURE);
		}
		free(path);
	}
}
