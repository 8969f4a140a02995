/*
 * blocking.c - the blocking API of esbank.h: a wire_t link, one call at a
 * time, one function per op, and a blocking subscription.
 */
#include "esbank.h"
#include "reply.h"
#include "reqpack.h"
#include "wire.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

struct esbank {
	wire_t wire;
	int timeout_ms;
};

int esbank_connect(const char *where, esbank_t **out, char *why, size_t why_size)
{
	esbank_t *c = calloc(1, sizeof(*c));

	*out = NULL;
	if (!c)
		return -ENOMEM;
	c->timeout_ms = WIRE_REPLY_TIMEOUT_MS;
	int rc = wire_open(&c->wire, where, 1, why, why_size);
	if (rc < 0) {
		wire_close(&c->wire);
		free(c);
		return rc;
	}
	*out = c;
	return 0;
}

void esbank_close(esbank_t *c)
{
	if (!c)
		return;
	wire_close(&c->wire);
	free(c);
}

void esbank_set_timeout(esbank_t *c, int timeout_ms)
{
	c->timeout_ms = timeout_ms;
}

/* Sends req; its id in *id. */
static int blocking_send(esbank_t *c, const esbank_request_t *req, uint64_t *id)
{
	msgpack_packer *pk = wire_request(&c->wire, req->op, req->nfields, id);
	libreq_pack_fields(pk, req);
	return wire_send(&c->wire);
}

/* Waits for the next frame of id and copies it into *reply. */
static int blocking_take(esbank_t *c, uint64_t id, int timeout_ms, esbank_reply_t *reply)
{
	msgpack_object obj;
	int rc = wire_wait(&c->wire, id, timeout_ms, &obj);
	if (rc == 0)
		rc = reply_fill(reply, c->wire.body, c->wire.body_len);
	return rc;
}

int esbank_call(esbank_t *c, const esbank_request_t *req, esbank_reply_t *reply)
{
	uint64_t id;

	memset(reply, 0, sizeof(*reply));
	int rc = blocking_send(c, req, &id);
	if (rc == 0)
		rc = blocking_take(c, id, c->timeout_ms, reply);
	return rc;
}

int esbank_subscribe(esbank_t *c, uint64_t from, esbank_event_fn event_fn, void *arg,
		     esbank_reply_t *refusal)
{
	esbank_request_t req = { .op = "subscribe" };
	esbank_reply_t frame;
	uint64_t id;

	if (from)
		req.fields[req.nfields++] = (esbank_field_t){ .name = "from", .num = (int64_t)from };
	int rc = blocking_send(c, &req, &id);
	if (rc == 0)
		rc = blocking_take(c, id, c->timeout_ms, &frame);
	if (rc < 0)
		return rc;
	if (!frame.ok) {
		if (refusal)
			*refusal = frame;
		else
			esbank_reply_free(&frame);
		return -EPROTO;
	}
	esbank_reply_free(&frame);
	while (rc == 0) {
		msgpack_object obj;
		rc = wire_wait(&c->wire, id, -1, &obj);
		if (rc < 0)
			break;
		esbank_reply_t ev;
		rc = reply_event(&ev, c->wire.body, c->wire.body_len);
		if (rc == 1) {
			rc = event_fn(&ev, arg);
			esbank_reply_free(&ev);
		}
	}
	return rc;
}

int esbank_open_account(esbank_t *c, const char *email, const char *password,
			const char *key, esbank_reply_t *reply)
{
	esbank_request_t req;
	esbank_req_open_account(&req, email, password, key);
	return esbank_call(c, &req, reply);
}

int esbank_verify_account(esbank_t *c, const char *account, const char *code,
			  const char *key, esbank_reply_t *reply)
{
	esbank_request_t req;
	esbank_req_verify_account(&req, account, code, key);
	return esbank_call(c, &req, reply);
}

int esbank_reissue_code(esbank_t *c, const char *account, const char *key,
			esbank_reply_t *reply)
{
	esbank_request_t req;
	esbank_req_reissue_code(&req, account, key);
	return esbank_call(c, &req, reply);
}

int esbank_transfer(esbank_t *c, const char *from, const char *to, int64_t amount_cents,
		    const char *key, esbank_reply_t *reply)
{
	esbank_request_t req;
	esbank_req_transfer(&req, from, to, amount_cents, key);
	return esbank_call(c, &req, reply);
}

int esbank_withdraw(esbank_t *c, const char *account, int64_t amount_cents, const char *key,
		    esbank_reply_t *reply)
{
	esbank_request_t req;
	esbank_req_withdraw(&req, account, amount_cents, key);
	return esbank_call(c, &req, reply);
}

int esbank_get_account(esbank_t *c, const char *account, esbank_reply_t *reply)
{
	esbank_request_t req;
	esbank_req_get_account(&req, account);
	return esbank_call(c, &req, reply);
}

int esbank_authenticate(esbank_t *c, const char *account, const char *password,
			esbank_reply_t *reply)
{
	esbank_request_t req;
	esbank_req_authenticate(&req, account, password);
	return esbank_call(c, &req, reply);
}

int esbank_sum_transactions(esbank_t *c, int year, int month, int day, esbank_reply_t *reply)
{
	esbank_request_t req;
	esbank_req_sum_transactions(&req, year, month, day);
	return esbank_call(c, &req, reply);
}

int esbank_inactive_users(esbank_t *c, int days, esbank_reply_t *reply)
{
	esbank_request_t req;
	esbank_req_inactive_users(&req, days);
	return esbank_call(c, &req, reply);
}

int esbank_events(esbank_t *c, uint64_t from, uint64_t limit, esbank_reply_t *reply)
{
	esbank_request_t req;
	esbank_req_events(&req, from, limit);
	return esbank_call(c, &req, reply);
}

int esbank_statement(esbank_t *c, const char *account, int64_t since_ms, int64_t until_ms,
		     uint64_t after_seq, uint64_t limit, esbank_reply_t *reply)
{
	esbank_request_t req;
	esbank_req_statement(&req, account, since_ms, until_ms, after_seq, limit);
	return esbank_call(c, &req, reply);
}

int esbank_status(esbank_t *c, esbank_reply_t *reply)
{
	esbank_request_t req;
	esbank_req_status(&req);
	return esbank_call(c, &req, reply);
}

int esbank_ping(esbank_t *c, esbank_reply_t *reply)
{
	esbank_request_t req;
	esbank_req_ping(&req);
	return esbank_call(c, &req, reply);
}

int esbank_promote(esbank_t *c, esbank_reply_t *reply)
{
	esbank_request_t req;
	esbank_req_promote(&req);
	return esbank_call(c, &req, reply);
}
