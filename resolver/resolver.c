/*
 * resolver.c - the resolver's side of the peer protocol (docs/peers.md):
 * hello, "req" batches in, "res" batches out, "replay" and "reset".
 *
 * One bus session at a time (common/peer.h): results go only to it. A
 * replay batch whose events do not follow the state's last seq (a gap) ends
 * the session, so the bus reconnects and replays from the hello's hwm.
 */
#include "resolver.h"

#include "config.h"
#include "event.h"
#include "figures.h"
#include "diag.h"
#include "protocol.h"
#include "request.h"
#include "snapfile.h"

#include <errno.h>
#include <malloc.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define RESOLVER_DUMMY_PASSWORD "esbank-no-such-account"

int resolver_pwcost_parse(const char *name, resolver_pwcost_t *out)
{
	if (name && strcmp(name, "interactive") == 0) {
		out->opslimit = crypto_pwhash_OPSLIMIT_INTERACTIVE;
		out->memlimit = crypto_pwhash_MEMLIMIT_INTERACTIVE;
	} else if (name && strcmp(name, "moderate") == 0) {
		out->opslimit = crypto_pwhash_OPSLIMIT_MODERATE;
		out->memlimit = crypto_pwhash_MEMLIMIT_MODERATE;
	} else if (name && strcmp(name, "min") == 0) {
		out->opslimit = crypto_pwhash_OPSLIMIT_MIN;
		out->memlimit = crypto_pwhash_MEMLIMIT_MIN;
	} else {
		return -EINVAL;
	}
	return 0;
}

/* {"t":"req","items":[{"c":cid,"r":bin}...]}: the results go out in one frame. */
static void resolver_on_req(conn_t *c, const msgpack_object *msg)
{
	resolver_t *r = c->data;
	const msgpack_object *items = msg_get(msg, PEER_F_ITEMS);
	if (!items || items->type != MSGPACK_OBJECT_ARRAY)
		return;
	for (uint32_t i = 0; i < items->via.array.size; i++) {
		const msgpack_object *it = &items->via.array.ptr[i];
		uint64_t cid;
		const char *req;
		size_t len;
		if (msg_get_u64(it, PEER_F_CID, &cid) < 0 ||
		    msg_get_bin(it, PEER_F_REQUEST, &req, &len) < 0) {
			diag_warn("req item without c or r: ignored");
			continue;
		}
		resolver_handle_request(r, cid, req, len);
	}
	resolver_flush(r);
}

static void resolver_send_replayed(resolver_t *r, conn_t *c)
{
	msgpack_packer *pk = conn_pack_begin(c);
	msgpack_pack_map(pk, 2);
	msg_pack_kv_str(pk, PEER_T, PEER_MSG_REPLAYED);
	msg_pack_kv_u64(pk, PEER_F_HWM, ledger_last_seq(r->ledger));
	conn_pack_end(c);
}

/* Applies one already-resolved event; false when it breaks the rules. */
static bool resolver_replay_one(resolver_t *r, const char *bytes, size_t len)
{
	ledger_event_t ev;
	if (event_decode_bytes(bytes, len, &ev) < 0) {
		diag_error("replay: an undecodable event after seq %llu",
		          (unsigned long long)ledger_last_seq(r->ledger));
		return false;
	}
	if (ev.seq <= ledger_last_seq(r->ledger))
		return true; /* already applied */
	if (ev.seq != ledger_last_seq(r->ledger) + 1) {
		char why[96];
		snprintf(why, sizeof(why), "replay: gap: event %llu after %llu",
		         (unsigned long long)ev.seq, (unsigned long long)ledger_last_seq(r->ledger));
		peer_drop(&r->session, why);
		return false;
	}
	proto_err_t e = ledger_check_event(r->ledger, &ev);
	if (e != PROTO_OK) {
		diag_error("replay: event %llu breaks the rules (%s)", (unsigned long long)ev.seq,
		          proto_err_name(e));
		return false;
	}
	if (ev.type == LEDGER_EV_ACCOUNT_ERASED && resolver_destroy_key(r, ev.account) < 0)
		return false;
	if (ledger_apply(r->ledger, &ev, NULL) < 0) {
		diag_error("replay: out of memory at seq %llu", (unsigned long long)ev.seq);
		return false;
	}
	return true;
}

static void resolver_on_replay(conn_t *c, const msgpack_object *msg)
{
	resolver_t *r = c->data;
	const msgpack_object *evs = msg_get(msg, PEER_F_EVENTS);
	if (evs && evs->type == MSGPACK_OBJECT_ARRAY) {
		for (uint32_t i = 0; i < evs->via.array.size; i++) {
			const msgpack_object *e = &evs->via.array.ptr[i];
			if (e->type != MSGPACK_OBJECT_BIN ||
			    !resolver_replay_one(r, e->via.bin.ptr, e->via.bin.size))
				break;
			r->stat_replayed++;
		}
	}
	resolver_send_replayed(r, c);
}

static void resolver_on_reset(conn_t *c, const msgpack_object *msg)
{
	resolver_t *r = c->data;
	(void)msg;
	diag_warn("reset: dropping the state at seq %llu to rebuild it from the log",
	         (unsigned long long)ledger_last_seq(r->ledger));
	ledger_t *fresh = ledger_new();
	if (!fresh) {
		diag_error("reset: out of memory");
		exit(EXIT_TEMPORARY); /* the state would no longer match the log */
	}
	ledger_free(r->ledger);
	r->ledger = fresh;
	resolver_sealed_truncate(r);
	resolver_sealed_attach(r, fresh);
	r->epoch++;
	resolver_send_replayed(r, c);
}

/* Tries the snapshots at or below max, newest first; true when one loaded. */
static bool resolver_load_snapshot(resolver_t *r, uint64_t max, snapfile_t *snap)
{
	uint64_t seqs[SNAPFILE_LIST_MAX];
	int n = snapfile_list(r->data_dir, seqs, SNAPFILE_LIST_MAX);
	for (int i = 0; i < n; i++) {
		if (seqs[i] > max)
			continue;
		ledger_t *l = ledger_new();
		int rc = snapfile_read(r->data_dir, seqs[i], snap);
		if (rc == 0 && !l)
			rc = -ENOMEM;
		if (rc == 0 && ledger_last_seq(r->ledger) == 0)
			resolver_sealed_truncate(r); /* the state being replaced refers to nothing */
		if (rc == 0) {
			resolver_sealed_attach(r, l);
			rc = snapfile_into_ledger(snap, l);
		}
		if (rc == 0) {
			ledger_free(r->ledger);
			r->ledger = l;
			return true;
		}
		ledger_free(l);
		diag_warn("snapshot %llu skipped: %s", (unsigned long long)seqs[i],
		         rc == -EPROTONOSUPPORT ? "unknown version"
		         : rc == -EINVAL        ? "its state does not decode"
		                                : strerror(-rc));
		snapfile_free(snap);
	}
	return false;
}

/* {"t":"load","max":D} -> {"t":"loaded","hwm":S,"chain":hex} (S = 0: none). */
static void resolver_on_load(conn_t *c, const msgpack_object *msg)
{
	resolver_t *r = c->data;
	uint64_t max = 0;
	msg_get_u64(msg, PEER_F_MAX, &max);
	snapfile_t snap = { 0 };
	uint64_t t0 = uv_hrtime();
	r->epoch++;
	bool loaded = resolver_load_snapshot(r, max, &snap);
	msgpack_packer *pk = conn_pack_begin(c);
	msgpack_pack_map(pk, 2 + loaded);
	msg_pack_kv_str(pk, PEER_T, PEER_MSG_LOADED);
	msg_pack_kv_u64(pk, PEER_F_HWM, loaded ? snap.seq : 0);
	if (loaded) {
		char hex[2 * LOGFILE_HASH_BYTES + 1];
		event_hex(snap.chain, LOGFILE_HASH_BYTES, hex);
		msg_pack_kv_str(pk, PEER_F_CHAIN, hex);
		diag_info("loaded the snapshot at %llu (%zu accounts) in %.1f ms",
		         (unsigned long long)snap.seq, ledger_account_count(r->ledger),
		         (double)(uv_hrtime() - t0) / 1e6);
	}
	conn_pack_end(c);
	snapfile_free(&snap);
	malloc_trim(0); /* give back the snapshot's decoding memory (issue 7: B/account) */
}

static int resolver_count_key(const char *key, size_t n, const ledger_key_entry_t *e, void *arg)
{
	(void)key, (void)n, (void)e;
	(*(size_t *)arg)++;
	return 0;
}

static void resolver_write_figures(FILE *f, void *data)
{
	const resolver_t *r = data;
	size_t keys = 0;
	ledger_each_key(r->ledger, resolver_count_key, &keys);
	figures_gauge(f, "esbank_resolver_accounts", "Accounts in the state.",
	              (double)ledger_account_count(r->ledger));
	figures_gauge(f, "esbank_resolver_keys", "Idempotency keys remembered.", (double)keys);
	figures_gauge(f, "esbank_resolver_last_seq", "The last event applied to the state.",
	              (double)ledger_last_seq(r->ledger));
	figures_counter(f, "esbank_resolver_replayed_events_total",
	                "Events applied by replay from the log.", r->stat_replayed);
	figures_gauge(f, "esbank_resolver_password_jobs", "Password hashing jobs running.",
	              r->jobs_running);
}

/* {"t":"figures"}: the resolver's figures (common/figures.h). */
static void resolver_on_figures(conn_t *c, const msgpack_object *msg)
{
	(void)msg;
	if (figures_send(c, resolver_write_figures, c->data) < 0)
		diag_warn("out of memory writing the figures");
}

static const peer_handler_t resolver_handlers[] = {
	{ PEER_MSG_FIGURES, resolver_on_figures },
	{ PEER_MSG_REQ, resolver_on_req },
	{ PEER_MSG_REPLAY, resolver_on_replay },
	{ PEER_MSG_RESET, resolver_on_reset },
	{ PEER_MSG_LOAD, resolver_on_load },
	{ NULL, NULL },
};

static void resolver_session_closed(peer_server_t *s, conn_t *c)
{
	resolver_t *r = s->data;
	(void)c;
	r->epoch++;
	msg_buf_reset(&r->items); /* results for the bus that left */
	r->item_count = 0;
}

static void resolver_send_hello(resolver_t *r, conn_t *c)
{
	peer_hello_begin(&r->session, c, ledger_last_seq(r->ledger), 0);
	conn_pack_end(c);
}

static void resolver_session_opened(peer_server_t *s, conn_t *c)
{
	resolver_t *r = s->data;
	r->epoch++;
	diag_info("bus connected (hwm %llu)", (unsigned long long)ledger_last_seq(r->ledger));
	resolver_send_hello(r, c);
}

int resolver_start(resolver_t *r, uv_loop_t *loop, const char *run_dir)
{
	r->loop = loop;
	r->ledger = ledger_new();
	if (!r->ledger)
		return -ENOMEM;
	msg_buf_init(&r->items);
	msg_buf_init(&r->cmd_reply);
	msg_buf_init(&r->cmd_ev);
	msg_buf_init(&r->cmd_mail);
	msg_buf_init(&r->bulk_results);
	msg_buf_init(&r->bulk_evs);
	msg_buf_init(&r->bulk_reply);
	if (!msgpack_zone_init(&r->req_zone, RESOLVER_REQ_ZONE_CHUNK_BYTES))
		return -ENOMEM;
	if (crypto_pwhash_str(r->dummy_hash, RESOLVER_DUMMY_PASSWORD,
	                      strlen(RESOLVER_DUMMY_PASSWORD), r->cost.opslimit,
	                      r->cost.memlimit) != 0)
		return -ENOMEM;
	int rc = config_mkdirs(run_dir, 0700);
	if (rc == 0)
		rc = resolver_keys_open(r);
	if (rc == 0)
		rc = resolver_sealed_open(r);
	if (rc < 0)
		return rc;
	resolver_sealed_attach(r, r->ledger);
	char *path = config_path(run_dir, "resolver.sock");
	if (!path)
		return -ENOMEM;
	r->hashed_cb = resolver_open_account;
	r->duplicate_cb = resolver_emit_duplicate;
	r->dry_duplicate_cb = resolver_dry_duplicate;
	r->dry_error_cb = resolver_dry_error;
	r->session.data = r;
	r->session.handlers = resolver_handlers;
	r->session.on_open = resolver_session_opened;
	r->session.on_close = resolver_session_closed;
	rc = peer_listen(&r->session, loop, PEER_ROLE_RESOLVER, path);
	if (rc == 0)
		diag_info("listening on %s", path);
	free(path);
	return rc;
}

void resolver_stop(resolver_t *r)
{
	peer_stop(&r->session);
}

void resolver_handle_request(resolver_t *r, uint64_t cid, const char *req, size_t len)
{
	msgpack_object map;
	uint64_t id = 0;
	proto_op_t op;
	if (msg_decode_map(req, len, &r->req_zone, &map) < 0) {
		resolver_emit_error(r, cid, 0, PROTO_E_BAD_REQUEST, "not one msgpack map");
		goto out;
	}
	proto_peek(&map, &id, &op);
	if (op == PROTO_OP_TRANSFERS) {
		resolver_run_transfers(r, cid, &map);
		goto out;
	}
	ledger_cmd_t cmd;
	const char *why = NULL;
	char email_id[LEDGER_EMAIL_ID_CHARS + 1];
	proto_err_t e = request_decode(&map, &cmd, &why);
	if (e != PROTO_OK) {
		resolver_emit_error(r, cid, id, e, why ? why : "invalid request");
		goto out;
	}
	if (cmd.op == PROTO_OP_OPEN_ACCOUNT)
		resolver_email_id(r, &cmd, email_id);
	if (proto_op_is_command(cmd.op) && cmd.dry_run)
		resolver_dry_run(r, cid, &cmd);
	else if (proto_op_is_command(cmd.op))
		resolver_run_command(r, cid, &cmd);
	else
		resolver_run_query(r, cid, &cmd);
out:
	msgpack_zone_clear(&r->req_zone);
}
