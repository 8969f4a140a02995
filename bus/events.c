/*
 * events.c - the protocol's "events" and "subscribe", served from the
 * logger's durable log. A subscriber first reads old events from the logger
 * (reading = true), then takes live events as route_durable() passes them;
 * next_seq makes sure each event reaches it exactly once, in order.
 */
#include "hub.h"

#include "log.h"
#include "protocol.h"

static void events_send_read(hub_t *h, uint64_t from, uint64_t limit)
{
	conn_t *c = &h->peers[PEER_LOGGER].link.conn;
	msgpack_packer *pk = conn_pack_begin(c);
	msgpack_pack_map(pk, 5);
	msg_pack_kv_str(pk, "t", "read");
	msg_pack_kv_u64(pk, "c", 0);
	msg_pack_kv_u64(pk, "from", from);
	msg_pack_kv_u64(pk, "limit", limit);
	msg_pack_kv_u64(pk, "bytes", BUS_READ_BYTES_MAX);
	conn_pack_end(c);
}

int events_read(hub_t *h, read_kind_t kind, uint64_t from, uint64_t limit, pending_read_t *rd)
{
	if (!peer_up(h, PEER_LOGGER))
		return -1;
	pending_read_t *r = fifo_push(&h->reads);
	if (!r)
		return -1;
	*r = *rd;
	r->kind = kind;
	events_send_read(h, from, limit);
	return 0;
}

/* limit 0 asks only for last_seq: answered here, without a read. */
static void events_reply_empty(hub_t *h, client_t *c, uint64_t id)
{
	msgpack_packer *pk = conn_pack_begin(&c->conn);
	proto_pack_ok(pk, id, 2);
	msg_pack_str(pk, "events");
	msgpack_pack_array(pk, 0);
	msg_pack_kv_u64(pk, "last_seq", h->durable_seq);
	conn_pack_end(&c->conn);
	hub_check_backlog(c);
	hub_request_done(h, hub_client_ref(c));
}

void events_request(hub_t *h, client_t *c, uint64_t id, uint64_t from, uint64_t limit)
{
	pending_read_t rd = { .to = hub_client_ref(c), .req_id = id };
	if (limit == 0) {
		events_reply_empty(h, c, id);
		return;
	}
	if (events_read(h, READ_EVENTS, from ? from : 1, limit, &rd) < 0) {
		hub_send_error(h, rd.to, id, PROTO_E_UNAVAILABLE, "the log is not reachable now");
		hub_request_done(h, rd.to);
	}
}

static void events_sub_read(hub_t *h, subscriber_t *s)
{
	pending_read_t rd = { .to = s->to, .req_id = s->req_id, .sub = s };
	s->reading = events_read(h, READ_SUBSCRIBE, s->next_seq, BUS_READ_EVENTS_MAX, &rd) == 0;
}

void events_subscribe(hub_t *h, client_t *c, uint64_t id, bool has_from, uint64_t from)
{
	client_ref_t to = hub_client_ref(c);
	subscriber_t *s = NULL;
	for (int i = 0; i < BUS_SUBSCRIBERS_MAX && !s; i++)
		if (!h->subs[i].active || !hub_client(h, h->subs[i].to))
			s = &h->subs[i];
	hub_request_done(h, to);
	if (!s) {
		hub_send_error(h, to, id, PROTO_E_OVERLOADED, "too many subscribers");
		return;
	}
	*s = (subscriber_t){ .to = to, .req_id = id, .active = true };
	s->next_seq = has_from ? (from ? from : 1) : h->durable_seq + 1;
	msg_buf_t b;
	msg_buf_init(&b);
	proto_pack_ok(&b.pk, id, 0);
	hub_send_raw(h, to, b.sb.data, b.sb.size);
	msg_buf_free(&b);
	if (s->next_seq <= h->durable_seq)
		events_sub_read(h, s);
}

static void events_send_one(hub_t *h, subscriber_t *s, const char *ev, size_t n)
{
	client_t *c = hub_client(h, s->to);
	if (!c) {
		s->active = false;
		return;
	}
	msgpack_packer *pk = conn_pack_begin(&c->conn);
	msgpack_pack_map(pk, 2);
	msg_pack_kv_u64(pk, "id", s->req_id);
	msg_pack_str(pk, "event");
	msg_buf_append(&c->conn.out, ev, n);
	conn_pack_end(&c->conn);
	s->next_seq++;
	hub_check_backlog(c);
}

void events_live(hub_t *h, uint64_t seq, const bytes_t *ev)
{
	for (int i = 0; i < BUS_SUBSCRIBERS_MAX; i++) {
		subscriber_t *s = &h->subs[i];
		if (s->active && !s->reading && s->next_seq == seq)
			events_send_one(h, s, ev->p, ev->n);
	}
}

static void events_reply_read(hub_t *h, const pending_read_t *rd, const msgpack_object *evs,
                              uint64_t last)
{
	client_t *c = hub_client(h, rd->to);
	if (!c)
		return;
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
	hub_check_backlog(c);
	hub_request_done(h, rd->to);
}

static void events_sub_result(hub_t *h, subscriber_t *s, uint64_t first,
                              const msgpack_object *evs)
{
	if (!s->active)
		return;
	for (uint32_t i = 0; i < evs->via.array.size && s->active; i++)
		if (first + i == s->next_seq)
			events_send_one(h, s, evs->via.array.ptr[i].via.bin.ptr,
			                evs->via.array.ptr[i].via.bin.size);
	s->reading = false;
	if (s->active && s->next_seq <= h->durable_seq)
		events_sub_read(h, s);
}

void events_read_result(hub_t *h, const msgpack_object *msg)
{
	if (h->reads.count == 0) {
		log_warn("a read result nobody asked for: ignored");
		return;
	}
	pending_read_t rd = *(pending_read_t *)fifo_peek(&h->reads, 0);
	fifo_pop(&h->reads);
	const msgpack_object *evs = msg_get(msg, "events");
	uint64_t first = 0, last = 0;
	msg_get_u64(msg, "first", &first);
	msg_get_u64(msg, "last", &last);
	if (!evs || evs->type != MSGPACK_OBJECT_ARRAY) {
		log_error("malformed read result from the logger");
		return;
	}
	for (uint32_t i = 0; i < evs->via.array.size; i++)
		if (evs->via.array.ptr[i].type != MSGPACK_OBJECT_BIN)
			return;
	switch (rd.kind) {
	case READ_EVENTS: events_reply_read(h, &rd, evs, last); break;
	case READ_SUBSCRIBE: events_sub_result(h, rd.sub, first, evs); break;
	case READ_REPLAY: recovery_read_result(h, msg); break;
	case READ_SNAPSHOTTER: recovery_snapshotter_read(h, msg); break;
	case READ_MAILER: mail_read_result(h, msg); break;
	}
}

void events_logger_lost(hub_t *h)
{
	while (h->reads.count) {
		pending_read_t *rd = fifo_peek(&h->reads, 0);
		if (rd->kind == READ_EVENTS) {
			hub_send_error(h, rd->to, rd->req_id, PROTO_E_UNAVAILABLE,
			               "the log is not reachable now");
			hub_request_done(h, rd->to);
		} else if (rd->kind == READ_SUBSCRIBE) {
			rd->sub->reading = false;
		}
		fifo_pop(&h->reads);
	}
	if (h->rec_phase == REC_REPLAY)
		h->rec_phase = REC_IDLE;
	h->snap_next = 0;
	h->mail_next = 0;
	h->mail_streaming = false;
}

void events_logger_back(hub_t *h)
{
	for (int i = 0; i < BUS_SUBSCRIBERS_MAX; i++) {
		subscriber_t *s = &h->subs[i];
		if (s->active && !s->reading && s->next_seq <= h->durable_seq)
			events_sub_read(h, s);
	}
}

