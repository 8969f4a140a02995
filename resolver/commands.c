/*
 * commands.c - resolving checked commands into events.
 *
 * Here the non-deterministic parts of an event are chosen (time, account
 * number, verification code), ledger_event_from_cmd() makes the event of
 * them (the same step the offline what-if takes), it is applied with the
 * same ledger_apply() that replay uses, and the result item carries the
 * event for the logger, the reply for the client and, for the types that
 * send mail, the mail details (the code travels there, never in the event).
 * An account_opened event carries its email sealed (keys.c), never plain;
 * the mail details carry it plain, beside the event, never logged. An
 * account_erased event's item carries {"account", "erased": true} as its
 * mail details, so that the bus takes it to the mailer, which forgets the
 * address.
 */
#include "resolver.h"

#include "event.h"
#include "diag.h"
#include "pii.h"
#include "request.h"

#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Makes a new code (URL-safe text) and the hash the state keeps of it. */
static void resolver_new_code(char code[RESOLVER_CODE_CHARS_MAX],
                              uint8_t hash[LEDGER_CODE_HASH_BYTES])
{
	unsigned char raw[RESOLVER_CODE_BYTES];
	randombytes_buf(raw, sizeof(raw));
	sodium_bin2base64(code, RESOLVER_CODE_CHARS_MAX, raw, sizeof(raw),
	                  sodium_base64_VARIANT_URLSAFE_NO_PADDING);
	crypto_generichash(hash, LEDGER_CODE_HASH_BYTES, (const unsigned char *)code,
	                   strlen(code), NULL, 0);
	sodium_memzero(raw, sizeof(raw));
}

/*
 * The mail details: {to, account, code | balance}, or {account, erased} for
 * an erasure. False when there is nothing to mail: the account's email is
 * erased (or its key is gone).
 */
static bool resolver_pack_mail(const resolver_t *r, msg_buf_t *mail, const ledger_event_t *ev,
                               const char *code, const ledger_result_t *res)
{
	char num[LEDGER_ACCOUNT_DIGITS + 1], to[LEDGER_EMAIL_BYTES_MAX + 1];
	ledger_account_format(ev->account, num);
	if (ev->type == LEDGER_EV_ACCOUNT_ERASED) {
		msgpack_pack_map(&mail->pk, 2);
		msg_pack_kv_str(&mail->pk, "account", num);
		msg_pack_kv_bool(&mail->pk, "erased", true);
		return true;
	}
	if (resolver_account_email(r, ledger_find(r->ledger, ev->account), to) < 0)
		return false;
	msgpack_pack_map(&mail->pk, 3);
	msg_pack_kv_str(&mail->pk, "to", to);
	msg_pack_kv_str(&mail->pk, "account", num);
	if (code)
		msg_pack_kv_str(&mail->pk, "code", code);
	else
		msg_pack_kv_i64(&mail->pk, "balance", res->balance);
	sodium_memzero(to, sizeof(to));
	return true;
}

/*
 * Applies ev and emits its item: the reply {id, ok, seq, + account or
 * balance}, the event and, when mail_account is set, the mail.
 */
static void resolver_commit(resolver_t *r, uint64_t cid, uint64_t id, ledger_event_t *ev,
                            const char *code, bool with_mail, bool with_balance)
{
	ledger_result_t res = { 0 };
	if (ledger_apply(r->ledger, ev, &res) < 0) {
		resolver_emit_error(r, cid, id, PROTO_E_INTERNAL, "out of memory");
		return;
	}
	msg_buf_t *reply = &r->cmd_reply, *evb = &r->cmd_ev, *mail = &r->cmd_mail;
	msg_buf_reset(reply);
	msg_buf_reset(evb);
	msg_buf_reset(mail);
	bool opened = ev->type == LEDGER_EV_ACCOUNT_OPENED;
	proto_pack_ok(&reply->pk, id, 1 + (opened || with_balance));
	msg_pack_kv_u64(&reply->pk, "seq", ev->seq);
	if (opened) {
		char num[LEDGER_ACCOUNT_DIGITS + 1];
		ledger_account_format(ev->account, num);
		msg_pack_kv_str(&reply->pk, "account", num);
	} else if (with_balance) {
		msg_pack_kv_i64(&reply->pk, "balance", res.balance);
	}
	event_pack(&evb->pk, ev);
	if (with_mail)
		with_mail = resolver_pack_mail(r, mail, ev, code, &res);
	resolver_emit(r, cid, ev->seq, reply, evb, with_mail ? mail : NULL);
	if (with_mail) /* its address and code do not stay in the reused buffer */
		sodium_memzero(mail->sb.data, mail->sb.size);
}

void resolver_emit_duplicate(resolver_t *r, uint64_t cid, uint64_t id,
                             const ledger_key_entry_t *prior)
{
	msg_buf_t reply;
	msg_buf_init(&reply);
	bool opened = prior->op == PROTO_OP_OPEN_ACCOUNT;
	bool money = prior->op == PROTO_OP_TRANSFER || prior->op == PROTO_OP_WITHDRAW;
	proto_pack_ok(&reply.pk, id, 1 + (opened || money));
	msg_pack_kv_u64(&reply.pk, "seq", prior->seq);
	if (opened) {
		char num[LEDGER_ACCOUNT_DIGITS + 1];
		ledger_account_format(prior->account, num);
		msg_pack_kv_str(&reply.pk, "account", num);
	} else if (money) {
		msg_pack_kv_i64(&reply.pk, "balance", prior->balance);
	}
	resolver_emit(r, cid, prior->seq, &reply, NULL, NULL);
	msg_buf_free(&reply);
}

/* The number drawn with the key, or (drawn twice meanwhile: ~never) a new one and key. */
static int resolver_new_account(resolver_t *r, const resolver_newkey_t *nk, resolver_newkey_t *out)
{
	*out = *nk;
	if (!ledger_find(r->ledger, nk->account))
		return 0;
	out->account = resolver_new_account_number(r->ledger);
	pii_new_key(out->key);
	return keystore_put(&r->keys, out->account, out->key);
}

void resolver_open_account(resolver_t *r, uint64_t cid, const ledger_cmd_t *cmd,
                           const char *pwhash, const resolver_newkey_t *nk)
{
	ledger_key_entry_t prior;
	proto_err_t e = ledger_check(r->ledger, cmd, &prior); /* the state moved meanwhile */
	if (e == PROTO_DUPLICATE) {
		const ledger_account_t *a = ledger_find(r->ledger, prior.account);
		resolver_verify_then_reply(r, cid, cmd, a, &prior);
		return;
	}
	if (e != PROTO_OK) {
		resolver_emit_error(r, cid, cmd->id, e, proto_err_text(e));
		return;
	}
	resolver_newkey_t k;
	if (resolver_new_account(r, nk, &k) < 0) {
		resolver_emit_error(r, cid, cmd->id, PROTO_E_INTERNAL, "the key store failed");
		return;
	}
	ledger_inputs_t in = { .ts_ms = resolver_now_ms(r), .pwhash = pwhash, .account = k.account };
	char code[RESOLVER_CODE_CHARS_MAX];
	uint8_t code_hash[LEDGER_CODE_HASH_BYTES];
	resolver_new_code(code, code_hash);
	in.code_hash = code_hash;
	ledger_event_t ev;
	ledger_event_from_cmd(r->ledger, cmd, &in, &ev);
	resolver_seal_email(r, &ev, k.key);
	sodium_memzero(k.key, sizeof(k.key));
	resolver_commit(r, cid, cmd->id, &ev, code, true, false);
	sodium_memzero(code, sizeof(code));
}

/* verify_account, reissue_code, transfer, withdraw: nothing slow to wait for. */
static void resolver_resolve_now(resolver_t *r, uint64_t cid, const ledger_cmd_t *cmd)
{
	ledger_inputs_t in = { .ts_ms = resolver_now_ms(r) };
	char code[RESOLVER_CODE_CHARS_MAX] = "";
	uint8_t code_hash[LEDGER_CODE_HASH_BYTES];
	bool reissue = cmd->op == PROTO_OP_REISSUE_CODE;
	if (reissue) {
		resolver_new_code(code, code_hash);
		in.code_hash = code_hash;
	}
	ledger_event_t ev;
	ledger_event_from_cmd(r->ledger, cmd, &in, &ev);
	bool erase = cmd->op == PROTO_OP_ERASE_ACCOUNT;
	if (erase && resolver_destroy_key(r, ev.account) < 0) {
		resolver_emit_error(r, cid, cmd->id, PROTO_E_INTERNAL,
		                    "the account's key could not be destroyed; nothing was erased");
		return;
	}
	bool money = cmd->op == PROTO_OP_TRANSFER || cmd->op == PROTO_OP_WITHDRAW;
	bool mail = reissue || cmd->op == PROTO_OP_WITHDRAW || erase;
	resolver_commit(r, cid, cmd->id, &ev, reissue ? code : NULL, mail, money);
	sodium_memzero(code, sizeof(code));
}

void resolver_run_command(resolver_t *r, uint64_t cid, const ledger_cmd_t *cmd)
{
	ledger_key_entry_t prior;
	proto_err_t e = ledger_check(r->ledger, cmd, &prior);
	if (e == PROTO_DUPLICATE && cmd->op == PROTO_OP_OPEN_ACCOUNT) {
		/* the password is not in the fingerprint: compare it with the hash */
		const ledger_account_t *a = ledger_find(r->ledger, prior.account);
		resolver_verify_then_reply(r, cid, cmd, a, &prior);
		return;
	}
	if (e == PROTO_DUPLICATE) {
		resolver_emit_duplicate(r, cid, cmd->id, &prior);
		return;
	}
	if (e != PROTO_OK) {
		resolver_emit_error(r, cid, cmd->id, e, proto_err_text(e));
		return;
	}
	switch (cmd->op) {
	case PROTO_OP_OPEN_ACCOUNT:
		resolver_hash_then_open(r, cid, cmd);
		break;
	case PROTO_OP_VERIFY_ACCOUNT:
	case PROTO_OP_REISSUE_CODE:
	case PROTO_OP_TRANSFER:
	case PROTO_OP_WITHDRAW:
	case PROTO_OP_ERASE_ACCOUNT:
		resolver_resolve_now(r, cid, cmd);
		break;
	default:
		resolver_emit_error(r, cid, cmd->id, PROTO_E_INTERNAL, "not a command");
		break;
	}
}

