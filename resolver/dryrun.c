/*
 * dryrun.c - the third row of the routing table: a command with
 * "dry_run": true (docs/protocol.md, "Dry runs") is checked against the
 * live state exactly as commands.c checks it and answered with the reply
 * the real command would get now, with "dry_run": true added: the would-be
 * seq (last seq + 1), account (a fresh number drawn and not kept) or
 * balance, or the error. Nothing is applied, no event or mail goes to the
 * bus and the key is not recorded; the item waits for the seq the state had
 * (its "w"), like a query's.
 *
 * open_account is answered without hashing the password (nothing is stored,
 * and its rules do not depend on the hash); a keyed retry of it still
 * compares the password with the account's hash in the thread pool
 * (pwhash.c calls resolver_dry_duplicate or resolver_dry_error back through
 * r->dry_duplicate_cb / r->dry_error_cb, which resolver.c registers), as
 * the real command does, so both answer the same.
 */
#include "resolver.h"

#include "protocol.h"

#include <string.h>

#define DRYRUN_KEY "dry_run"

static void dry_emit(resolver_t *r, uint64_t cid, msg_buf_t *reply)
{
	msg_pack_kv_bool(&reply->pk, DRYRUN_KEY, true);
	resolver_emit(r, cid, ledger_last_seq(r->ledger), reply, NULL, NULL);
	msg_buf_free(reply);
}

void resolver_dry_error(resolver_t *r, uint64_t cid, uint64_t id, proto_err_t err)
{
	msg_buf_t reply;
	msg_buf_init(&reply);
	msgpack_pack_map(&reply.pk, 5);
	msg_pack_kv_u64(&reply.pk, "id", id);
	msg_pack_kv_bool(&reply.pk, "ok", false);
	msg_pack_kv_str(&reply.pk, "error", proto_err_name(err));
	msg_pack_kv_str(&reply.pk, "message", proto_err_text(err));
	dry_emit(r, cid, &reply);
}

/* {id, ok, seq, account | balance?, dry_run}: as resolver_commit() packs. */
static void dry_ok(resolver_t *r, uint64_t cid, uint64_t id, uint64_t seq, proto_op_t op,
                   uint64_t account, int64_t balance)
{
	bool opened = op == PROTO_OP_OPEN_ACCOUNT;
	bool money = op == PROTO_OP_TRANSFER || op == PROTO_OP_WITHDRAW;
	msg_buf_t reply;
	msg_buf_init(&reply);
	proto_pack_ok(&reply.pk, id, 2 + (opened || money));
	msg_pack_kv_u64(&reply.pk, "seq", seq);
	if (opened) {
		char num[LEDGER_ACCOUNT_DIGITS + 1];
		ledger_account_format(account, num);
		msg_pack_kv_str(&reply.pk, "account", num);
	} else if (money) {
		msg_pack_kv_i64(&reply.pk, "balance", balance);
	}
	dry_emit(r, cid, &reply);
}

void resolver_dry_duplicate(resolver_t *r, uint64_t cid, uint64_t id,
                            const ledger_key_entry_t *prior)
{
	dry_ok(r, cid, id, prior->seq, prior->op, prior->account, prior->balance);
}

/* The event the command would make now, with stand-in hashes. */
static void dry_resolve(resolver_t *r, uint64_t cid, const ledger_cmd_t *cmd)
{
	uint8_t code_hash[LEDGER_CODE_HASH_BYTES] = { 0 };
	ledger_inputs_t in = { .ts_ms = resolver_now_ms(r), .pwhash = "", .code_hash = code_hash };
	if (cmd->op == PROTO_OP_OPEN_ACCOUNT)
		in.account = resolver_new_account_number(r->ledger); /* drawn, not kept */
	ledger_event_t ev;
	ledger_result_t res = { 0 };
	ledger_event_from_cmd(r->ledger, cmd, &in, &ev);
	ledger_preview(r->ledger, &ev, &res);
	dry_ok(r, cid, cmd->id, ev.seq, cmd->op, ev.account, res.balance);
}

void resolver_dry_run(resolver_t *r, uint64_t cid, const ledger_cmd_t *cmd)
{
	ledger_key_entry_t prior;
	proto_err_t e = ledger_check(r->ledger, cmd, &prior);
	if (e == PROTO_DUPLICATE && cmd->op == PROTO_OP_OPEN_ACCOUNT) {
		const ledger_account_t *a = ledger_find(r->ledger, prior.account);
		resolver_verify_then_reply(r, cid, cmd, a, &prior);
	} else if (e == PROTO_DUPLICATE) {
		resolver_dry_duplicate(r, cid, cmd->id, &prior);
	} else if (e != PROTO_OK) {
		resolver_dry_error(r, cid, cmd->id, e);
	} else {
		dry_resolve(r, cid, cmd);
	}
}
