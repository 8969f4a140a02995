/*
 * hold.c - the hold queue: requests wait here while the bus is recovering
 * (recovery.c), and go to the resolver in arrival order once it is live.
 * A full queue, or a request held too long, gets `unavailable`.
 */
#include "hub.h"

#include "protocol.h"

void hold_init(hub_t *h)
{
	bus_fifo_init(&h->hold.held, sizeof(held_request_t));
}

void hold_request(hub_t *h, client_ref_t from, uint64_t id, bool command, const char *req,
                  size_t n)
{
	hold_t *q = &h->hold;
	held_request_t *r = q->held.count < BUS_HELD_MAX ? bus_fifo_push(&q->held) : NULL;
	if (!r) {
		clients_send_error(h, from, id, PROTO_E_UNAVAILABLE,
		                   "the server is recovering; retry later");
		clients_done(h, from);
		return;
	}
	r->from = from;
	r->req_id = id;
	r->since_ms = bus_now_ms();
	r->command = command;
	bus_bytes_copy(&r->req, req, n);
	hold_assert(q);
}

/* Drops the oldest held request (its bytes freed). */
static void hold_pop(hold_t *q)
{
	held_request_t *r = bus_fifo_peek(&q->held, 0);
	bus_bytes_free(&r->req);
	bus_fifo_pop(&q->held);
}

void hold_release(hub_t *h)
{
	hold_t *q = &h->hold;
	while (q->held.count && h->recovery.state == BUS_LIVE) {
		held_request_t *r = bus_fifo_peek(&q->held, 0);
		if (clients_get(h, r->from) && r->command && h->recovery.role != BUS_ROLE_SINGLE &&
		    repl_refuse(h, r->from, r->req_id)) {
			clients_done(h, r->from);
		} else if (clients_get(h, r->from) && r->command && h->peers.log_fault) {
			clients_send_error(h, r->from, r->req_id, PROTO_E_UNAVAILABLE,
			                   "the event log cannot be written just now; retry later");
			clients_done(h, r->from);
		} else if (clients_get(h, r->from)) {
			route_to_resolver(h, r->from, r->req_id, r->req.p, r->req.n);
		}
		hold_pop(q);
	}
	hold_assert(q);
}

void hold_tick(hub_t *h)
{
	hold_t *q = &h->hold;
	uint64_t now = bus_now_ms();
	while (q->held.count) {
		held_request_t *r = bus_fifo_peek(&q->held, 0);
		if (now - r->since_ms < BUS_HOLD_MS_MAX)
			break;
		clients_send_error(h, r->from, r->req_id, PROTO_E_UNAVAILABLE,
		                   "the server is recovering; retry later");
		clients_done(h, r->from);
		hold_pop(q);
	}
	hold_assert(q);
}
