/*
 * bulkroute.c - POST /api/money_transfers: bulk transfers from the
 * logged-in account, one protocol "transfers" request (docs/protocol.md).
 *
 *   POST /api/money_transfers {"transfers": [{"to", "amount", "key"?}, ...],
 *                              "atomic": false?}, bearer
 *     -> 200 {"results": [{"ok": true, "seq", "balance"} |
 *                          {"ok": false, "error", "message"}, ...]}
 *        in request order, each checked as POST /api/money_transfer is;
 *        atomic and an item fails: that item's status (422, 404, ...) and
 *        {"error", "message", "index"}, nothing applied.
 *
 * Each item's "key" (1 to IDEMKEY_BYTES_MAX bytes) is scoped to the
 * logged-in account like an Idempotency-Key (idemkey.h); the header itself
 * is refused here (400): a retry is safe item by item. The body limit of
 * every route (HTTP_BODY_BYTES_MAX, 64 KiB: about a thousand transfers)
 * holds; larger files go through the socket protocol (esbank transfer
 * --file) or several requests. An empty list, more than BULK_ITEMS_MAX
 * items or a malformed item is 400 for the whole request.
 */
#include "bulkroute.h"

#include "routekit.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define BULK_ITEMS_MAX ESBANK_TRANSFERS_MAX

/* The items' strings (the account numbers' text lives in the JSON body). */
typedef struct {
	esbank_transfer_t *items;
	char (*keys)[IDEMKEY_SENT_MAX + 1];
	size_t n;
} bulk_t;

static void bulk_free(bulk_t *b)
{
	free(b->items);
	free(b->keys);
}

static int bulk_bad(http_req_t *req, size_t i, const char *what)
{
	char msg[160];
	snprintf(msg, sizeof(msg), "transfers[%zu]: %s", i, what);
	respond_error(req, 400, "bad_request", msg);
	return -EINVAL;
}

/* Reads item i ({"to","amount","key"?}) of the body into b. */
static int bulk_item(http_req_t *req, json_t *it, size_t i, bulk_t *b)
{
	json_t *to = json_object_get(it, "to"), *amount = json_object_get(it, "amount");
	json_t *key = json_object_get(it, "key");
	if (!json_is_object(it))
		return bulk_bad(req, i, "must be an object");
	if (!json_is_string(to) || strlen(json_string_value(to)) != json_string_length(to))
		return bulk_bad(req, i, "\"to\" must be a string");
	if (!json_is_integer(amount))
		return bulk_bad(req, i, "\"amount\" must be an integer (cents)");
	esbank_transfer_t *t = &b->items[i];
	*t = (esbank_transfer_t){ .from = req->account, .to = json_string_value(to),
		                  .amount_cents = (int64_t)json_integer_value(amount) };
	if (!key)
		return 0;
	if (!json_is_string(key) ||
	    idemkey_make(IDEMKEY_ACCOUNT, req->account, strlen(req->account), json_string_value(key),
	                 json_string_length(key), b->keys[i]) < 0)
		return bulk_bad(req, i, "\"key\" must be a string of 1 to 64 bytes");
	t->key = b->keys[i];
	return 0;
}

/* Reads the body's list into b; answers 400 and returns -EINVAL when it is bad. */
static int bulk_read(http_req_t *req, json_t *body, bulk_t *b)
{
	json_t *list = json_object_get(body, "transfers");
	size_t n = json_array_size(list);
	if (!json_is_array(list) || n == 0 || n > BULK_ITEMS_MAX) {
		char msg[96];
		snprintf(msg, sizeof(msg), "\"transfers\" must be an array of 1 to %d transfers",
		         BULK_ITEMS_MAX);
		respond_error(req, 400, "bad_request", msg);
		return -EINVAL;
	}
	b->items = calloc(n, sizeof(*b->items));
	b->keys = calloc(n, sizeof(*b->keys));
	if (!b->items || !b->keys) {
		respond_error(req, 503, "overloaded", "out of memory; retry later");
		return -ENOMEM;
	}
	b->n = n;
	for (size_t i = 0; i < n; i++)
		if (bulk_item(req, json_array_get(list, i), i, b) < 0)
			return -EINVAL;
	return 0;
}

/* "atomic": absent, or a boolean; answers 400 otherwise. */
static int bulk_atomic(http_req_t *req, json_t *body, bool *atomic)
{
	json_t *v = json_object_get(body, "atomic");
	*atomic = v && json_is_true(v);
	if (v && !json_is_boolean(v)) {
		respond_error(req, 400, "bad_request", "\"atomic\" must be a boolean");
		return -EINVAL;
	}
	return 0;
}

/* An atomic batch refused: the failing item's status, code, message and index. */
static void reply_bulk(esbank_async_t *a, int status, const esbank_reply_t *reply, void *ctx)
{
	http_req_t *req = ctx;
	(void)a;
	int64_t index;
	if (status == 0 && !reply->ok && esbank_reply_get_int(reply, "index", &index) == 0) {
		json_t *j = reply_fields(reply);
		respond_json(req, route_error_status(reply->error), j, NULL);
		return;
	}
	char code[ROUTE_ERROR_CODE_MAX];
	if (!reply_failed(req, status, reply, false, code))
		respond_json(req, 200, reply_fields(reply), dry_header(req));
}

void route_transfers(gateway_t *gw, http_req_t *req)
{
	if (route_auth(gw, req) < 0)
		return;
	if (req->idempotency_key.present) {
		respond_error(req, 400, "bad_request",
		              "bulk transfers take a \"key\" per transfer, not Idempotency-Key");
		return;
	}
	json_t *body = body_object(req);
	if (!body)
		return;
	bulk_t b = { 0 };
	bool atomic;
	int dry;
	if (bulk_atomic(req, body, &atomic) == 0 && bulk_read(req, body, &b) == 0 &&
	    (dry = route_dry(req)) >= 0) {
		esbank_request_t r;
		esbank_req_transfers(&r, b.items, b.n, atomic);
		add_dry(&r, dry);
		route_call(gw, req, &r, BUSCALL_TIMEOUT_MS, reply_bulk);
	}
	bulk_free(&b);
	json_decref(body);
}
