/*
 * pwhash.c - password work in libuv's thread pool, so that argon2id never
 * stalls the loop: hashing for open_account, and verifying for authenticate
 * and for a keyed open_account retry. A job owns copies of everything it
 * needs (the request's bytes are gone by the time it finishes); the
 * password copy is wiped when the job ends.
 *
 * A hash job for open_account also draws the new account's number and data
 * key on the loop and writes the key into a slot of DATA/keys reserved
 * there, with its fdatasync, in the pool after argon2id (keys.c says why):
 * the key is on disk before the event that needs it is made.
 */
#include "resolver.h"

#include "diag.h"
#include "pii.h"
#include "request.h"

#include <assert.h>
#include <errno.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef enum { PW_JOB_HASH, PW_JOB_VERIFY } pw_job_kind_t;

typedef struct {
	uv_work_t work;
	resolver_t *r;
	pw_job_kind_t kind;
	uint64_t cid;
	uint64_t epoch;                       /* r->epoch when the job began */
	ledger_cmd_t cmd;                     /* strings re-pointed at the copies */
	char email[LEDGER_EMAIL_BYTES_MAX + 1];
	char email_id[LEDGER_EMAIL_ID_CHARS + 1];
	char key[LEDGER_KEY_BYTES_MAX + 1];
	char password[LEDGER_PASSWORD_BYTES_MAX + 1];
	char hash[LEDGER_PWHASH_BYTES_MAX];   /* made, or to verify against */
	bool has_prior;                       /* keyed open_account retry */
	ledger_key_entry_t prior;
	bool account_known;                   /* authenticate */
	int rc;
	resolver_newkey_t nk;                 /* hash: the new account and its key */
	uint32_t key_slot;                    /* hash: DATA/keys slot reserved */
	int key_rc;                           /* hash: writing the key */
} pw_job_t;

static pw_job_t *pw_job_new(resolver_t *r, pw_job_kind_t kind, uint64_t cid,
                            const ledger_cmd_t *cmd)
{
	assert(cmd->email_len <= LEDGER_EMAIL_BYTES_MAX && cmd->key_len <= LEDGER_KEY_BYTES_MAX &&
	       cmd->password_len <= LEDGER_PASSWORD_BYTES_MAX);
	pw_job_t *j = calloc(1, sizeof(*j));
	if (!j)
		return NULL;
	j->r = r;
	j->kind = kind;
	j->cid = cid;
	j->epoch = r->epoch;
	j->cmd = *cmd;
	memcpy(j->email, cmd->email ? cmd->email : "", cmd->email_len);
	j->cmd.email = j->email;
	if (cmd->email_id) {
		memcpy(j->email_id, cmd->email_id, sizeof(j->email_id));
		j->cmd.email_id = j->email_id;
	}
	memcpy(j->key, cmd->key ? cmd->key : "", cmd->key_len);
	j->cmd.key = j->key;
	memcpy(j->password, cmd->password ? cmd->password : "", cmd->password_len);
	j->cmd.password = j->password;
	j->work.data = j;
	return j;
}

static void pw_job_free(pw_job_t *j)
{
	sodium_memzero(j->password, sizeof(j->password));
	sodium_memzero(j->nk.key, sizeof(j->nk.key));
	j->r->jobs_running--;
	free(j);
}

static void pw_job_work(uv_work_t *w)
{
	pw_job_t *j = w->data;
	const ledger_cmd_t *c = &j->cmd;
	if (j->kind == PW_JOB_HASH) {
		j->rc = crypto_pwhash_str(j->hash, c->password, c->password_len,
		                          j->r->cost.opslimit, j->r->cost.memlimit);
		j->key_rc = keystore_write_slot(j->r->keys.fd, j->key_slot, j->nk.account,
		                                j->nk.key);
	} else
		j->rc = crypto_pwhash_str_verify(j->hash, c->password, c->password_len);
}

static void pw_job_verified(pw_job_t *j)
{
	resolver_t *r = j->r;
	if (j->has_prior && j->cmd.dry_run) {
		if (j->rc == 0)
			r->dry_duplicate_cb(r, j->cid, j->cmd.id, &j->prior);
		else
			r->dry_error_cb(r, j->cid, j->cmd.id, PROTO_E_KEY_CONFLICT);
		return;
	}
	if (j->has_prior) {
		if (j->rc == 0)
			r->duplicate_cb(r, j->cid, j->cmd.id, &j->prior);
		else
			resolver_emit_error(r, j->cid, j->cmd.id, PROTO_E_KEY_CONFLICT,
			                    proto_err_text(PROTO_E_KEY_CONFLICT));
		return;
	}
	if (j->rc == 0 && j->account_known) {
		msg_buf_t reply;
		msg_buf_init(&reply);
		proto_pack_ok(&reply.pk, j->cmd.id, 0);
		resolver_emit(r, j->cid, ledger_last_seq(r->ledger), &reply, NULL, NULL);
		msg_buf_free(&reply);
		return;
	}
	resolver_emit_error(r, j->cid, j->cmd.id, PROTO_E_AUTH_FAILED,
	                    proto_err_text(PROTO_E_AUTH_FAILED));
}

static void pw_job_done(uv_work_t *w, int status)
{
	pw_job_t *j = w->data;
	resolver_t *r = j->r;
	if (j->epoch != r->epoch) {
		/* its bus session (or the state it checked) is gone: the cid would
		 * name another request of the next bus; that client gets unavailable */
		diag_warn("a password job of an earlier bus session finished: dropped");
	} else if (status < 0 || (j->kind == PW_JOB_HASH && j->rc != 0)) {
		diag_error("password hashing failed (out of memory?)");
		resolver_emit_error(j->r, j->cid, j->cmd.id, PROTO_E_INTERNAL,
		                    "password hashing failed");
	} else if (j->kind == PW_JOB_HASH && (j->key_rc < 0 ||
	           keystore_index_add(&r->keys, j->nk.account, j->key_slot) < 0)) {
		diag_error("cannot store a new account's key: %s",
		           strerror(j->key_rc < 0 ? -j->key_rc : ENOMEM));
		resolver_emit_error(r, j->cid, j->cmd.id, PROTO_E_INTERNAL,
		                    "the account's key could not be stored; nothing was opened");
	} else if (j->kind == PW_JOB_HASH) {
		j->r->hashed_cb(j->r, j->cid, &j->cmd, j->hash, &j->nk);
	} else {
		pw_job_verified(j);
	}
	pw_job_free(j);
	resolver_flush(r);
}

static void pw_job_queue(pw_job_t *j)
{
	j->r->jobs_running++;
	int rc = uv_queue_work(j->r->loop, &j->work, pw_job_work, pw_job_done);
	if (rc < 0) {
		resolver_emit_error(j->r, j->cid, j->cmd.id, PROTO_E_INTERNAL, uv_strerror(rc));
		pw_job_free(j);
	}
}

void resolver_hash_then_open(resolver_t *r, uint64_t cid, const ledger_cmd_t *cmd)
{
	pw_job_t *j = pw_job_new(r, PW_JOB_HASH, cid, cmd);
	if (!j) {
		resolver_emit_error(r, cid, cmd->id, PROTO_E_INTERNAL, "out of memory");
		return;
	}
	j->key_slot = keystore_reserve(&r->keys);
	if (j->key_slot == UINT32_MAX) {
		resolver_emit_error(r, cid, cmd->id, PROTO_E_INTERNAL, "the key store is full");
		r->jobs_running++; /* pw_job_free counts it down */
		pw_job_free(j);
		return;
	}
	j->nk.account = resolver_new_account_number(r->ledger);
	pii_new_key(j->nk.key);
	pw_job_queue(j);
}

void resolver_verify_then_reply(resolver_t *r, uint64_t cid, const ledger_cmd_t *cmd,
                                const ledger_account_t *a, const ledger_key_entry_t *prior)
{
	if (cmd->password_len > LEDGER_PASSWORD_BYTES_MAX) {
		/* open_account refuses longer passwords, so none can match; the
		 * answer is the same for every account, known or not */
		resolver_emit_error(r, cid, cmd->id,
		                    prior ? PROTO_E_KEY_CONFLICT : PROTO_E_AUTH_FAILED,
		                    proto_err_text(prior ? PROTO_E_KEY_CONFLICT
		                                             : PROTO_E_AUTH_FAILED));
		return;
	}
	pw_job_t *j = pw_job_new(r, PW_JOB_VERIFY, cid, cmd);
	if (!j) {
		resolver_emit_error(r, cid, cmd->id, PROTO_E_INTERNAL, "out of memory");
		return;
	}
	if (a) /* an unknown account is checked against the dummy hash */
		ledger_account_pwhash(r->ledger, a, j->hash);
	else
		snprintf(j->hash, sizeof(j->hash), "%s", r->dummy_hash);
	j->account_known = a != NULL;
	if (prior) {
		j->has_prior = true;
		j->prior = *prior;
	}
	pw_job_queue(j);
}
