/*
 * bulk.c - the "transfers" op (docs/protocol.md): many transfers resolved in
 * one step, each checked and applied exactly as a single transfer
 * (commands.c) would be, in order, each its own event; one reply with a
 * result per transfer.
 *
 * The clock is read once per request: its events share one ts. One buffer
 * packs every event of the request, each encoded on the stack by
 * event_encode() and copied in as a bin; it, the results' and the reply's
 * buffers are the resolver's, emptied and reused by each request.
 *
 * atomic: ledger_check_batch() checks them all against a scratch view
 * first; if one fails, nothing is applied and the reply names it. The
 * events go to the bus as "evs" lists of at most RESOLVER_BULK_EVS_BYTES_MAX
 * bytes, in items without a reply, then the last item with the reply
 * (docs/peers.md, Resolver): so one item stays far below a frame whatever
 * the batch's keys, and the reply itself (8,192 results of at most ~100
 * bytes) fits in one.
 */
#include "resolver.h"

#include "diag.h"
#include "event.h"
#include "request.h"

#include <stdio.h>

typedef struct {
	msg_buf_t *results; /* the packed result maps (r->bulk_results) */
	msg_buf_t *evs;     /* the packed events (bin each) not yet emitted (r->bulk_evs) */
	uint32_t evs_n;
	uint64_t evs_first;
	int64_t ts_ms;     /* one clock reading for the batch */
} resolver_bulk_t;

static void resolver_bulk_error(msg_buf_t *b, proto_err_t e)
{
	msgpack_pack_map(&b->pk, 3);
	msg_pack_kv_bool(&b->pk, "ok", false);
	msg_pack_kv_str(&b->pk, "error", proto_err_name(e));
	msg_pack_kv_str(&b->pk, "message", proto_err_text(e));
}

static void resolver_bulk_ok(msg_buf_t *b, uint64_t seq, int64_t balance)
{
	msgpack_pack_map(&b->pk, 3);
	msg_pack_kv_bool(&b->pk, "ok", true);
	msg_pack_kv_u64(&b->pk, "seq", seq);
	msg_pack_kv_i64(&b->pk, "balance", balance);
}

static void resolver_bulk_send_evs(resolver_t *r, uint64_t cid, resolver_bulk_t *k)
{
	if (k->evs_n)
		resolver_emit_events(r, cid, NULL, k->evs_first, k->evs, k->evs_n);
	msg_buf_reset(k->evs);
	k->evs_n = 0;
}

/* One transfer, as resolver_run_command() would take it; false: stop. */
static bool resolver_bulk_one(resolver_t *r, uint64_t cid, const ledger_cmd_t *cmd,
                              resolver_bulk_t *k)
{
	ledger_key_entry_t prior;
	proto_err_t e = ledger_check(r->ledger, cmd, &prior);
	if (e == PROTO_DUPLICATE) {
		resolver_bulk_ok(k->results, prior.seq, prior.balance);
		return true;
	}
	if (e != PROTO_OK) {
		resolver_bulk_error(k->results, e);
		return true;
	}
	ledger_inputs_t in = { .ts_ms = k->ts_ms };
	ledger_event_t ev;
	ledger_result_t res = { 0 };
	ledger_event_from_cmd(r->ledger, cmd, &in, &ev);
	if (ledger_apply(r->ledger, &ev, &res) < 0)
		return false;
	resolver_bulk_ok(k->results, ev.seq, res.balance);
	if (k->evs_n == 0)
		k->evs_first = ev.seq;
	uint8_t one[EVENT_BYTES_MAX];
	size_t n = event_encode(&ev, one);
	msgpack_pack_bin(&k->evs->pk, n);
	msgpack_pack_bin_body(&k->evs->pk, one, n);
	k->evs_n++;
	if (k->evs->sb.size >= RESOLVER_BULK_EVS_BYTES_MAX)
		resolver_bulk_send_evs(r, cid, k);
	return true;
}

/* Applies every transfer of t and emits the events and the reply. */
static void resolver_bulk_apply(resolver_t *r, uint64_t cid, const request_transfers_t *t)
{
	resolver_bulk_t k = { .results = &r->bulk_results, .evs = &r->bulk_evs };
	msg_buf_reset(k.results);
	msg_buf_reset(k.evs);
	k.ts_ms = resolver_now_ms(r);
	uint32_t i = 0;
	for (; i < t->count; i++)
		if (!resolver_bulk_one(r, cid, &t->items[i], &k))
			break;
	for (uint32_t j = i; j < t->count; j++) /* only after running out of memory */
		resolver_bulk_error(k.results, PROTO_E_INTERNAL);
	if (i < t->count)
		diag_error("transfers: out of memory at item %u of %u", i, t->count);
	msg_buf_t *reply = &r->bulk_reply;
	msg_buf_reset(reply);
	proto_pack_ok(&reply->pk, t->id, 1);
	msg_pack_str(&reply->pk, "results");
	msgpack_pack_array(&reply->pk, t->count);
	msg_buf_append(reply, k.results->sb.data, k.results->sb.size);
	resolver_emit_events(r, cid, reply, k.evs_first, k.evs, k.evs_n);
}

/* atomic and an item fails: {"id","ok":false,"error","message","index"}. */
static void resolver_bulk_refuse(resolver_t *r, uint64_t cid, uint64_t id, proto_err_t e,
                                 uint32_t index)
{
	char text[PROTO_MESSAGE_BYTES_MAX];
	snprintf(text, sizeof(text), "transfers[%u]: %s; nothing was applied", index,
	         proto_err_text(e));
	msg_buf_t reply;
	msg_buf_init(&reply);
	msgpack_pack_map(&reply.pk, 5);
	msg_pack_kv_u64(&reply.pk, "id", id);
	msg_pack_kv_bool(&reply.pk, "ok", false);
	msg_pack_kv_str(&reply.pk, "error", proto_err_name(e));
	msg_pack_kv_str(&reply.pk, "message", text);
	msg_pack_kv_u64(&reply.pk, "index", index);
	resolver_emit(r, cid, ledger_last_seq(r->ledger), &reply, NULL, NULL);
	msg_buf_free(&reply);
}

void resolver_run_transfers(resolver_t *r, uint64_t cid, const msgpack_object *map)
{
	request_transfers_t t;
	uint32_t bad;
	const char *why = NULL;
	if (request_decode_transfers(map, &t, &bad, &why) != PROTO_OK) {
		char text[PROTO_MESSAGE_BYTES_MAX];
		if (bad != UINT32_MAX)
			snprintf(text, sizeof(text), "transfers[%u]: %s", bad, why);
		else
			snprintf(text, sizeof(text), "%s", why);
		resolver_emit_error(r, cid, t.id, PROTO_E_BAD_REQUEST, text);
		return;
	}
	proto_err_t e = t.atomic ? ledger_check_batch(r->ledger, t.items, t.count, &bad) : PROTO_OK;
	if (e != PROTO_OK)
		resolver_bulk_refuse(r, cid, t.id, e, bad);
	else
		resolver_bulk_apply(r, cid, &t);
	request_transfers_free(&t);
}
