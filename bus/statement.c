/*
 * statement.c - the protocol's "statement": its bad_request checks here,
 * then {"t":"statement","c":cid,"account":A,"since":MS?,"until":MS?,
 * "after_seq":S?,"limit":L} to the logger (docs/peers.md), whose answer is
 * either an error code or the reply's key/value pairs packed in one bin,
 * which the bus puts after "id" and "ok" unread. Each waiting statement has
 * a slot with the cid it was sent with; the logger answers them in any
 * order. An answer for no slot (its logger session ended) is ignored.
 */
#include "hub.h"

#include "diag.h"
#include "protocol.h"

#include <string.h>

/* Decodes the request: PROTO_OK, or an error already answered. */
static bool statement_decode(hub_t *h, client_t *c, uint64_t id, const char *req, size_t n,
                             proto_statement_args_t *args)
{
	msgpack_zone zone;
	msgpack_zone_init(&zone, 1024);
	msgpack_object map;
	const char *why = NULL;
	proto_err_t e = PROTO_E_BAD_REQUEST;
	if (msg_decode_map(req, n, &zone, &map) == 0)
		e = proto_decode_statement_args(&map, args, &why);
	msgpack_zone_destroy(&zone);
	if (e == PROTO_OK && !args->account_valid) {
		e = PROTO_E_NOT_FOUND;
		why = "no such account";
	}
	if (e == PROTO_OK)
		return true;
	clients_send_error(h, clients_ref(c), id, e, why ? why : "invalid request");
	clients_done(h, clients_ref(c));
	return false;
}

static void statement_send(hub_t *h, uint64_t cid, const proto_statement_args_t *a)
{
	conn_t *lc = &h->peers.peer[PEER_LOGGER].link.conn;
	msgpack_packer *pk = conn_pack_begin(lc);
	msgpack_pack_map(pk, 4 + a->has_since + a->has_until + (a->after_seq > 0));
	msg_pack_kv_str(pk, PEER_T, PEER_MSG_STATEMENT);
	msg_pack_kv_u64(pk, PEER_F_CID, cid);
	msg_pack_kv_u64(pk, PEER_F_ACCOUNT, a->account);
	msg_pack_kv_u64(pk, PEER_F_LIMIT, a->limit);
	if (a->has_since)
		msg_pack_kv_i64(pk, PEER_F_SINCE, a->since_ms);
	if (a->has_until)
		msg_pack_kv_i64(pk, PEER_F_UNTIL, a->until_ms);
	if (a->after_seq > 0)
		msg_pack_kv_u64(pk, PEER_F_AFTER_SEQ, a->after_seq);
	conn_pack_end(lc);
}

static statement_wait_t *statement_free_slot(statements_t *st)
{
	for (int i = 0; i < BUS_STATEMENTS_MAX; i++)
		if (st->waits[i].cid == 0)
			return &st->waits[i];
	return NULL;
}

void statement_request(hub_t *h, client_t *c, uint64_t id, const char *req, size_t n)
{
	proto_statement_args_t args;
	if (!statement_decode(h, c, id, req, n, &args))
		return;
	statements_t *st = &h->statements;
	statement_wait_t *w = statement_free_slot(st);
	client_ref_t to = clients_ref(c);
	if (!peer_up(h, PEER_LOGGER)) {
		clients_send_error(h, to, id, PROTO_E_UNAVAILABLE, "the log is not reachable now");
		clients_done(h, to);
		return;
	}
	if (!w) {
		clients_send_error(h, to, id, PROTO_E_OVERLOADED, "too many statements at once");
		clients_done(h, to);
		return;
	}
	*w = (statement_wait_t){ .to = to, .req_id = id, .cid = ++st->next_cid };
	st->count++;
	statement_send(h, w->cid, &args);
	statements_assert(st);
}

/* The slot waiting for cid; NULL when none. */
static statement_wait_t *statement_find(statements_t *st, uint64_t cid)
{
	for (int i = 0; cid && i < BUS_STATEMENTS_MAX; i++)
		if (st->waits[i].cid == cid)
			return &st->waits[i];
	return NULL;
}

/* The reply: the logger's error, or id and ok then its packed pairs. */
static void statement_reply(hub_t *h, const statement_wait_t *w, const msgpack_object *msg)
{
	const char *err, *text = NULL, *body;
	size_t en, tn = 0, bn;
	uint64_t pairs;
	if (msg_get_str(msg, PEER_F_ERROR, &err, &en) == 0) {
		msg_get_str(msg, PEER_F_MESSAGE, &text, &tn);
		char why[256];
		snprintf(why, sizeof(why), "%.*s", (int)tn, text ? text : "");
		proto_err_t e = PROTO_E_INTERNAL;
		for (int i = PROTO_E_BAD_REQUEST; i <= PROTO_E_INTERNAL; i++)
			if (strlen(proto_err_name((proto_err_t)i)) == en &&
			    memcmp(proto_err_name((proto_err_t)i), err, en) == 0)
				e = (proto_err_t)i;
		clients_send_error(h, w->to, w->req_id, e, text ? why : NULL);
		return;
	}
	client_t *c = clients_get(h, w->to);
	if (!c)
		return;
	if (msg_get_u64(msg, PEER_F_N, &pairs) < 0 || pairs > 16 ||
	    msg_get_bin(msg, PEER_F_BODY, &body, &bn) < 0) {
		diag_error("malformed statement answer from the logger");
		clients_send_error(h, w->to, w->req_id, PROTO_E_INTERNAL, NULL);
		return;
	}
	msgpack_packer *pk = conn_pack_begin(&c->conn);
	proto_pack_ok(pk, w->req_id, (uint32_t)pairs);
	msg_buf_append(&c->conn.out, body, bn);
	conn_pack_end(&c->conn);
	clients_check_backlog(c);
}

void statement_result(hub_t *h, const msgpack_object *msg)
{
	statements_t *st = &h->statements;
	uint64_t cid = 0;
	msg_get_u64(msg, PEER_F_CID, &cid);
	statement_wait_t *w = statement_find(st, cid);
	if (!w) {
		diag_warn("a statement answer nobody waits for: ignored");
		return;
	}
	statement_wait_t done = *w;
	w->cid = 0;
	st->count--;
	statement_reply(h, &done, msg);
	clients_done(h, done.to);
	statements_assert(st);
}

void statement_logger_lost(hub_t *h)
{
	statements_t *st = &h->statements;
	for (int i = 0; i < BUS_STATEMENTS_MAX; i++) {
		statement_wait_t *w = &st->waits[i];
		if (w->cid == 0)
			continue;
		w->cid = 0;
		st->count--;
		clients_send_error(h, w->to, w->req_id, PROTO_E_UNAVAILABLE,
		                   "the log went away before answering; retry");
		clients_done(h, w->to);
	}
	statements_assert(st);
}
