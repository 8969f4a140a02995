/*
 * reqpack.c - the esbank_req_*() builders: each op's fields with the names
 * of docs/protocol.md, and their packing (reqpack.h).
 */
#include "reqpack.h"

#include "msg.h"

#include <assert.h>
#include <string.h>

static void req_start(esbank_request_t *r, const char *op)
{
	memset(r, 0, sizeof(*r));
	r->op = op;
}

static void req_str(esbank_request_t *r, const char *name, const char *s)
{
	esbank_req_add_str(r, name, s, 0);
}

static void req_num(esbank_request_t *r, const char *name, int64_t v)
{
	esbank_req_add_int(r, name, v);
}

void esbank_req_start(esbank_request_t *r, const char *op)
{
	req_start(r, op);
}

void esbank_req_add_str(esbank_request_t *r, const char *name, const char *s, size_t len)
{
	assert(r->nfields < ESBANK_REQUEST_FIELDS_MAX);
	assert(s);
	r->fields[r->nfields++] = (esbank_field_t){ .name = name, .str = s, .len = len };
}

void esbank_req_add_int(esbank_request_t *r, const char *name, int64_t value)
{
	assert(r->nfields < ESBANK_REQUEST_FIELDS_MAX);
	r->fields[r->nfields++] = (esbank_field_t){ .name = name, .num = value };
}

void esbank_req_add_bool(esbank_request_t *r, const char *name, bool value)
{
	assert(r->nfields < ESBANK_REQUEST_FIELDS_MAX);
	r->fields[r->nfields++] =
		(esbank_field_t){ .name = name, .num = value, .len = ESBANK_FIELD_BOOL };
}

static void req_key(esbank_request_t *r, const char *key)
{
	if (key)
		req_str(r, "key", key);
}

void esbank_req_open_account(esbank_request_t *r, const char *email, const char *password,
			     const char *key)
{
	req_start(r, "open_account");
	req_str(r, "email", email);
	req_str(r, "password", password);
	req_key(r, key);
}

void esbank_req_verify_account(esbank_request_t *r, const char *account, const char *code,
			       const char *key)
{
	req_start(r, "verify_account");
	req_str(r, "account", account);
	req_str(r, "code", code);
	req_key(r, key);
}

void esbank_req_reissue_code(esbank_request_t *r, const char *account, const char *key)
{
	req_start(r, "reissue_code");
	req_str(r, "account", account);
	req_key(r, key);
}

void esbank_req_transfer(esbank_request_t *r, const char *from, const char *to,
			 int64_t amount_cents, const char *key)
{
	req_start(r, "transfer");
	req_str(r, "from", from);
	req_str(r, "to", to);
	req_num(r, "amount", amount_cents);
	req_key(r, key);
}

void esbank_req_withdraw(esbank_request_t *r, const char *account, int64_t amount_cents,
			 const char *key)
{
	req_start(r, "withdraw");
	req_str(r, "account", account);
	req_num(r, "amount", amount_cents);
	req_key(r, key);
}

void esbank_req_transfers(esbank_request_t *r, const esbank_transfer_t *items, size_t n,
			  bool atomic)
{
	req_start(r, "transfers");
	assert(r->nfields < ESBANK_REQUEST_FIELDS_MAX);
	r->fields[r->nfields++] = (esbank_field_t){
		.name = "transfers", .items = items, .num = (int64_t)n, .len = ESBANK_FIELD_TRANSFERS
	};
	if (atomic)
		esbank_req_add_bool(r, "atomic", true);
}

void esbank_req_get_account(esbank_request_t *r, const char *account)
{
	req_start(r, "get_account");
	req_str(r, "account", account);
}

void esbank_req_authenticate(esbank_request_t *r, const char *account, const char *password)
{
	req_start(r, "authenticate");
	req_str(r, "account", account);
	req_str(r, "password", password);
}

void esbank_req_sum_transactions(esbank_request_t *r, int year, int month, int day)
{
	req_start(r, "sum_transactions");
	if (year)
		req_num(r, "year", year);
	if (month)
		req_num(r, "month", month);
	if (day)
		req_num(r, "day", day);
}

void esbank_req_inactive_users(esbank_request_t *r, int days)
{
	req_start(r, "inactive_users");
	if (days >= 0)
		req_num(r, "days", days);
}

void esbank_req_events(esbank_request_t *r, uint64_t from, uint64_t limit)
{
	req_start(r, "events");
	if (from)
		req_num(r, "from", (int64_t)from);
	if (limit)
		req_num(r, "limit", (int64_t)limit);
}

void esbank_req_statement(esbank_request_t *r, const char *account, int64_t since_ms,
			  int64_t until_ms, uint64_t after_seq, uint64_t limit)
{
	req_start(r, "statement");
	req_str(r, "account", account);
	if (since_ms)
		req_num(r, "since", since_ms);
	if (until_ms)
		req_num(r, "until", until_ms);
	if (after_seq)
		req_num(r, "after_seq", (int64_t)after_seq);
	if (limit)
		req_num(r, "limit", (int64_t)limit);
}

void esbank_req_status(esbank_request_t *r)
{
	req_start(r, "status");
}

void esbank_req_ping(esbank_request_t *r)
{
	req_start(r, "ping");
}

void esbank_req_promote(esbank_request_t *r)
{
	req_start(r, "promote");
}

/* The array of a bulk request: one map per transfer (key only when given). */
static void req_pack_transfers(msgpack_packer *pk, const esbank_field_t *f)
{
	const esbank_transfer_t *t = f->items;
	msg_pack_str(pk, f->name);
	msgpack_pack_array(pk, (uint32_t)f->num);
	for (int64_t i = 0; i < f->num; i++) {
		msgpack_pack_map(pk, t[i].key ? 4 : 3);
		msg_pack_kv_str(pk, "from", t[i].from);
		msg_pack_kv_str(pk, "to", t[i].to);
		if (t[i].amount_cents < 0)
			msg_pack_kv_i64(pk, "amount", t[i].amount_cents);
		else
			msg_pack_kv_u64(pk, "amount", (uint64_t)t[i].amount_cents);
		if (t[i].key)
			msg_pack_kv_str(pk, "key", t[i].key);
	}
}

void libreq_pack_fields(msgpack_packer *pk, const esbank_request_t *req)
{
	for (unsigned i = 0; i < req->nfields; i++) {
		const esbank_field_t *f = &req->fields[i];
		if (f->len == ESBANK_FIELD_TRANSFERS && !f->str)
			req_pack_transfers(pk, f);
		else if (f->str)
			msg_pack_kv_strn(pk, f->name, f->str, f->len ? f->len : strlen(f->str));
		else if (f->len == ESBANK_FIELD_BOOL)
			msg_pack_kv_bool(pk, f->name, f->num != 0);
		else if (f->num < 0)
			msg_pack_kv_i64(pk, f->name, f->num);
		else
			msg_pack_kv_u64(pk, f->name, (uint64_t)f->num);
	}
}
