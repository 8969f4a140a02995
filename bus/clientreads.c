/*
 * clientreads.c - the protocol's "events" and "subscribe", served from the
 * logger's durable log through the read pipeline (reads.c). A subscriber
 * first reads old events from the logger (reading = true), then takes live
 * events as they become durable (clientreads_live); next_seq makes sure each
 * event reaches it exactly once, in order.
 */
#include "hub.h"

#include "diag.h"
#include "protocol.h"

/* Every slot's flag agrees with the count (a full scan: not on the live path). */
static void clientreads_assert_count(const clientreads_t *cr)
{
	int n = 0;
	for (int i = 0; i < BUS_SUBSCRIBERS_MAX; i++)
		n += cr->subs[i].active;
	assert(n == cr->active);
	clientreads_assert(cr);
}

/* Decodes the fields of events / subscribe (bad_request checks included). */
static bool clientreads_decode(hub_t *h, client_t *c, uint64_t id, const char *req, size_t n,
                               proto_read_args_t *cmd)
{
	msgpack_zone zone;
	msgpack_zone_init(&zone, 1024);
	msgpack_object map;
	const char *why = NULL;
	proto_err_t e = PROTO_E_BAD_REQUEST;
	uint64_t req_id;
	proto_op_t op;
	if (msg_decode_map(req, n, &zone, &map) == 0 && proto_peek(&map, &req_id, &op) == PROTO_OK &&
	    (op == PROTO_OP_EVENTS || op == PROTO_OP_SUBSCRIBE))
		e = proto_decode_read_args(&map, op, cmd, &why);
	msgpack_zone_destroy(&zone);
	if (e == PROTO_OK)
		return true;
	clients_send_error(h, clients_ref(c), id, e, why ? why : "invalid request");
	clients_done(h, clients_ref(c));
	return false;
}

/* limit 0 asks only for last_seq: answered here, without a read. */
static void clientreads_reply_empty(hub_t *h, client_t *c, uint64_t id)
{
	msgpack_packer *pk = conn_pack_begin(&c->conn);
	proto_pack_ok(pk, id, 2);
	msg_pack_str(pk, "events");
	msgpack_pack_array(pk, 0);
	msg_pack_kv_u64(pk, "last_seq", h->routes.durable_seq);
	conn_pack_end(&c->conn);
	clients_check_backlog(c);
	clients_done(h, clients_ref(c));
}

/* A read for "events" answered: the reply, or unavailable (logger gone). */
static void clientreads_on_events(hub_t *h, const bus_read_t *rd, const msgpack_object *msg)
{
	if (!msg) {
		clients_send_error(h, rd->to, rd->req_id, PROTO_E_UNAVAILABLE,
		                   "the log is not reachable now");
		clients_done(h, rd->to);
		return;
	}
	client_t *c = clients_get(h, rd->to);
	if (!c)
		return;
	const msgpack_object *evs = msg_get(msg, PEER_F_EVENTS);
	uint64_t last = 0;
	msg_get_u64(msg, PEER_F_LAST, &last);
	msgpack_packer *pk = conn_pack_begin(&c->conn);
	msgpack_pack_map(pk, 4);
	msg_pack_kv_u64(pk, "id", rd->req_id);
	msg_pack_kv_bool(pk, "ok", true);
	msg_pack_str(pk, "events");
	msgpack_pack_array(pk, evs->via.array.size);
	for (uint32_t i = 0; i < evs->via.array.size; i++)
		msg_buf_append(&c->conn.out, evs->via.array.ptr[i].via.bin.ptr,
		               evs->via.array.ptr[i].via.bin.size);
	msg_pack_kv_u64(pk, "last_seq", last);
	conn_pack_end(&c->conn);
	clients_check_backlog(c);
	clients_done(h, rd->to);
}

void clientreads_events(hub_t *h, client_t *c, uint64_t id, const char *req, size_t n)
{
	proto_read_args_t cmd;
	if (!clientreads_decode(h, c, id, req, n, &cmd))
		return;
	uint64_t from = cmd.has_from ? cmd.from_seq : 1;
	if (cmd.limit == 0) {
		clientreads_reply_empty(h, c, id);
		return;
	}
	bus_read_t rd = { .on_result = clientreads_on_events, .to = clients_ref(c), .req_id = id };
	if (reads_send(h, from ? from : 1, cmd.limit, &rd) < 0) {
		clients_send_error(h, rd.to, id, PROTO_E_UNAVAILABLE,
		                   "the log is not reachable now");
		clients_done(h, rd.to);
	}
}

static void clientreads_on_sub(hub_t *h, const bus_read_t *rd, const msgpack_object *msg);

static void clientreads_sub_read(hub_t *h, subscriber_t *s)
{
	bus_read_t rd = { .on_result = clientreads_on_sub, .to = s->to, .req_id = s->req_id,
		          .arg = s };
	s->reading = reads_send(h, s->next_seq, BUS_READ_EVENTS_MAX, &rd) == 0;
}

/* A free subscriber slot (inactive, or its client gone); NULL when none. */
static subscriber_t *clientreads_free_sub(hub_t *h)
{
	for (int i = 0; i < BUS_SUBSCRIBERS_MAX; i++) {
		subscriber_t *s = &h->clientreads.subs[i];
		if (!s->active || !clients_get(h, s->to))
			return s;
	}
	return NULL;
}

void clientreads_subscribe(hub_t *h, client_t *c, uint64_t id, const char *req, size_t n)
{
	proto_read_args_t cmd;
	if (!clientreads_decode(h, c, id, req, n, &cmd))
		return;
	client_ref_t to = clients_ref(c);
	subscriber_t *s = clientreads_free_sub(h);
	clients_done(h, to);
	if (!s) {
		clients_send_error(h, to, id, PROTO_E_OVERLOADED, "too many subscribers");
		return;
	}
	uint64_t durable = h->routes.durable_seq;
	h->clientreads.active += !s->active; /* a slot whose client left stays counted */
	*s = (subscriber_t){ .to = to, .req_id = id, .active = true };
	clientreads_assert_count(&h->clientreads);
	s->next_seq = cmd.has_from ? (cmd.from_seq ? cmd.from_seq : 1) : durable + 1;
	msg_buf_t b;
	msg_buf_init(&b);
	proto_pack_ok(&b.pk, id, 0);
	clients_send(h, to, b.sb.data, b.sb.size);
	msg_buf_free(&b);
	if (s->next_seq <= durable)
		clientreads_sub_read(h, s);
}

static void clientreads_send_one(hub_t *h, subscriber_t *s, const char *ev, size_t n)
{
	client_t *c = clients_get(h, s->to);
	if (!c) {
		s->active = false;
		h->clientreads.active--;
		clientreads_assert(&h->clientreads);
		return;
	}
	msgpack_packer *pk = conn_pack_begin(&c->conn);
	msgpack_pack_map(pk, 2);
	msg_pack_kv_u64(pk, "id", s->req_id);
	msg_pack_str(pk, "event");
	msg_buf_append(&c->conn.out, ev, n);
	conn_pack_end(&c->conn);
	s->next_seq++;
	clients_check_backlog(c);
}

/*
 * Live events: the scan stops once every active slot was seen (subscribe
 * fills the lowest free slots first), and does not start without subscribers.
 */
void clientreads_live(hub_t *h, uint64_t seq, const bus_bytes_t *ev)
{
	clientreads_t *cr = &h->clientreads;
	for (int i = 0, left = cr->active; i < BUS_SUBSCRIBERS_MAX && left > 0; i++) {
		subscriber_t *s = &cr->subs[i];
		if (!s->active)
			continue;
		left--;
		if (!s->reading && s->next_seq == seq)
			clientreads_send_one(h, s, ev->p, ev->n);
	}
	clientreads_assert(cr);
}

/* A subscriber's read answered: the events it has not seen, then more. */
static void clientreads_on_sub(hub_t *h, const bus_read_t *rd, const msgpack_object *msg)
{
	subscriber_t *s = rd->arg;
	if (!msg) {
		s->reading = false;
		return;
	}
	if (!s->active)
		return;
	uint64_t first;
	const msgpack_object *evs = reads_events(msg, &first);
	for (uint32_t i = 0; i < evs->via.array.size && s->active; i++)
		if (first + i == s->next_seq)
			clientreads_send_one(h, s, evs->via.array.ptr[i].via.bin.ptr,
			                     evs->via.array.ptr[i].via.bin.size);
	s->reading = false;
	if (s->active && s->next_seq <= h->routes.durable_seq)
		clientreads_sub_read(h, s);
}

void clientreads_logger_back(hub_t *h)
{
	clientreads_assert_count(&h->clientreads);
	for (int i = 0; i < BUS_SUBSCRIBERS_MAX; i++) {
		subscriber_t *s = &h->clientreads.subs[i];
		if (s->active && !s->reading && s->next_seq <= h->routes.durable_seq)
			clientreads_sub_read(h, s);
	}
}
