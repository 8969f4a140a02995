/*
 * hub.c - the top of esbank-bus: starts every part, routes each client
 * request by its op (ping and status here, metrics to gather.c, events and subscribe to
 * clientreads.c, statement to statement.c (the logger answers), promote to repl.c, the
 * rest to the resolver, or to the hold queue while the bus is recovering), and runs the
 * loop's tick and per-iteration flush.
 */
#include "hub.h"

#include "protocol.h"

static void hub_ping(hub_t *h, client_t *c, uint64_t id)
{
	msg_buf_t b;
	msg_buf_init(&b);
	proto_pack_ok(&b.pk, id, 0);
	clients_send(h, clients_ref(c), b.sb.data, b.sb.size);
	msg_buf_free(&b);
	clients_done(h, clients_ref(c));
}

/* A command or query: to the resolver when live, else held. */
static void hub_resolve(hub_t *h, client_t *c, uint64_t id, int op, const char *req, size_t n)
{
	if (h->recovery.role != BUS_ROLE_SINGLE && proto_op_is_command((proto_op_t)op) &&
	    repl_refuse(h, clients_ref(c), id)) {
		clients_done(h, clients_ref(c)); /* not_primary, or unreplicated: unavailable */
	} else if (h->peers.log_fault && proto_op_is_command((proto_op_t)op)) {
		/* the log cannot be written: nothing new may be acknowledged */
		clients_send_error(h, clients_ref(c), id, PROTO_E_UNAVAILABLE,
		                   "the event log cannot be written just now; retry later");
		clients_done(h, clients_ref(c));
	} else if (h->recovery.state != BUS_LIVE || !peer_up(h, PEER_RESOLVER)) {
		hold_request(h, clients_ref(c), id, proto_op_is_command((proto_op_t)op), req, n);
	} else {
		route_to_resolver(h, clients_ref(c), id, req, n);
	}
}

/* The routing of client requests by op (DESIGN.md's table: routes.c). */
static void hub_on_request(hub_t *h, client_t *c, uint64_t id, int op, const char *req, size_t n)
{
	switch ((proto_op_t)op) {
	case PROTO_OP_PING:
		hub_ping(h, c, id);
		break;
	case PROTO_OP_STATUS:
		status_reply(h, c, id);
		clients_done(h, clients_ref(c));
		break;
	case PROTO_OP_EVENTS:
		clientreads_events(h, c, id, req, n);
		break;
	case PROTO_OP_SUBSCRIBE:
		clientreads_subscribe(h, c, id, req, n);
		break;
	case PROTO_OP_STATEMENT:
		statement_request(h, c, id, req, n);
		break;
	case PROTO_OP_METRICS:
		gather_request(h, clients_ref(c), id);
		break;
	case PROTO_OP_PROMOTE:
		repl_promote(h, clients_ref(c), id);
		break;
	default:
		hub_resolve(h, c, id, op, req, n);
		break;
	}
	hub_assert(h);
}

static void hub_on_tick(uv_timer_t *t)
{
	hold_tick(t->data);
	gather_tick(t->data);
	hub_assert(t->data);
}

static void hub_on_check(uv_check_t *k)
{
	batches_flush(k->data);
	hub_assert(k->data);
}

int hub_start(hub_t *h, uv_loop_t *loop, const char *run_dir, long allow_gid,
              size_t out_bytes_max, bus_role_t role)
{
	h->loop = loop;
	h->started_ms = bus_now_ms();
	batches_init(h);
	reads_init(h);
	routes_init(h);
	mail_init(h);
	hold_init(h);
	recovery_init(h, role);
	int rc = gather_init(h, run_dir);
	if (rc < 0)
		return rc;
	rc = clients_start(h, run_dir, allow_gid, out_bytes_max, hub_on_request);
	if (rc < 0)
		return rc;
	uv_check_init(loop, &h->batcher);
	h->batcher.data = h;
	uv_check_start(&h->batcher, hub_on_check);
	uv_timer_init(loop, &h->ticker);
	h->ticker.data = h;
	uv_timer_start(&h->ticker, hub_on_tick, BUS_TICK_MS, BUS_TICK_MS);
	rc = peers_start(h, run_dir);
	hub_assert(h);
	return rc;
}

void hub_stop(hub_t *h)
{
	clients_stop(h);
}
