/* queries.c - state queries: get_account, sum_transactions, inactive_users. */
#include "resolver.h"

#include "request.h"

static void resolver_get_account(resolver_t *r, uint64_t cid, const ledger_cmd_t *cmd)
{
	const ledger_account_t *a = cmd->account_valid ? ledger_find(r->ledger, cmd->account) : NULL;
	if (!a) {
		resolver_emit_error(r, cid, cmd->id, PROTO_E_NOT_FOUND, "no such account");
		return;
	}
	msg_buf_t reply;
	msg_buf_init(&reply);
	msgpack_packer *pk = &reply.pk;
	char num[LEDGER_ACCOUNT_DIGITS + 1], email[LEDGER_EMAIL_BYTES_MAX + 1];
	ledger_account_format(a->number, num);
	bool has_email = resolver_account_email(r, a, email) == 0;
	proto_pack_ok(pk, cmd->id, 6);
	msg_pack_kv_str(pk, "account", num);
	if (has_email)
		msg_pack_kv_str(pk, "email", email);
	else /* erased, or its key is gone: the same to the client */
		msg_pack_kv_bool(pk, "erased", true);
	msg_pack_kv_i64(pk, "balance", a->balance);
	msg_pack_kv_bool(pk, "verified", a->verified);
	msg_pack_kv_i64(pk, "opened_at", a->opened_at_ms);
	if (a->last_activity_ms)
		msg_pack_kv_i64(pk, "last_activity", a->last_activity_ms);
	else
		msg_pack_kv_nil(pk, "last_activity");
	resolver_emit(r, cid, ledger_last_seq(r->ledger), &reply, NULL, NULL);
	msg_buf_free(&reply);
}

static void resolver_reply_number(resolver_t *r, uint64_t cid, uint64_t id, const char *field,
                                  int64_t value)
{
	msg_buf_t reply;
	msg_buf_init(&reply);
	proto_pack_ok(&reply.pk, id, 1);
	msg_pack_kv_i64(&reply.pk, field, value);
	resolver_emit(r, cid, ledger_last_seq(r->ledger), &reply, NULL, NULL);
	msg_buf_free(&reply);
}

void resolver_run_query(resolver_t *r, uint64_t cid, const ledger_cmd_t *cmd)
{
	switch (cmd->op) {
	case PROTO_OP_GET_ACCOUNT:
		resolver_get_account(r, cid, cmd);
		break;
	case PROTO_OP_AUTHENTICATE: {
		const ledger_account_t *a =
			cmd->account_valid ? ledger_find(r->ledger, cmd->account) : NULL;
		/* an unknown account costs the same as a wrong password */
		resolver_verify_then_reply(r, cid, cmd, a, NULL);
		break;
	}
	case PROTO_OP_SUM_TRANSACTIONS:
		resolver_reply_number(r, cid, cmd->id, "sum",
		                      ledger_sum_transactions(r->ledger, cmd->year, cmd->month,
		                                              cmd->day));
		break;
	case PROTO_OP_INACTIVE_USERS:
		resolver_reply_number(r, cid, cmd->id, "total",
		                      (int64_t)ledger_inactive_users(r->ledger, cmd->days,
		                                                     resolver_now_ms(r)));
		break;
	default:
		resolver_emit_error(r, cid, cmd->id, PROTO_E_UNKNOWN_OP,
		                    "the resolver does not serve this op");
		break;
	}
}
