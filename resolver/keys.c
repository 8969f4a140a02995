/*
 * keys.c - the resolver's side of erasure (docs/privacy.md): DATA/keys
 * (common/keystore.h) opened for writing, the keyed hash of an email for
 * already_exists, an account_opened event's email sealed with the
 * account's key, an account's email opened again, and a key destroyed.
 *
 * Why the resolver writes the key store, and not the logger: the resolver
 * draws the key, and it writes and fdatasyncs the key's slot in the thread
 * pool beside argon2id (pwhash.c), before the account_opened event leaves
 * it. So a key is on disk before the event that needs it can even reach the
 * logger, with no ordering between two processes, and the fsync costs no
 * latency that argon2id does not already cost. A key whose event is never
 * logged (the resolver died, or was reset) stays as an orphan slot: a random
 * key that opens nothing.
 *
 * A key is destroyed when erase_account is resolved, before its event is
 * sent on: if a crash then takes the unacknowledged account_erased event,
 * the account is not marked erased but its email cannot be read any more
 * (get_account answers "erased": true; erase_account may be sent again).
 * Erasure errs on the side of forgetting. A replayed account_erased
 * destroys the key too (a key store restored from an older backup).
 *
 * On a standby the replicator appends the keys it follows from the stream
 * (replicator/keys.c) and the resolver never appends: a key it does not
 * know is looked for among the slots appended since (keystore_catch_up)
 * before it answers that the email is gone, and before it destroys a key.
 */
#include "resolver.h"

#include "config.h"
#include "diag.h"
#include "pii.h"

#include <errno.h>
#include <sodium.h>
#include <string.h>

int resolver_keys_open(resolver_t *r)
{
	int rc = config_mkdirs(r->data_dir, 0700);
	if (rc == 0)
		rc = keystore_open(&r->keys, r->data_dir, true);
	if (rc < 0) {
		diag_error("cannot open the key store %s/%s: %s", r->data_dir, KEYSTORE_FILE,
		           rc == -EINVAL ? "not a key store (damaged?)" : strerror(-rc));
		return rc;
	}
	if (r->keys.bad_slots)
		diag_warn("key store: %u torn slot(s) ignored (keys of events never logged)",
		          r->keys.bad_slots);
	return 0;
}

void resolver_email_id(const resolver_t *r, ledger_cmd_t *cmd,
                       char id[LEDGER_EMAIL_ID_CHARS + 1])
{
	char lower[LEDGER_EMAIL_BYTES_MAX + 1];
	uint8_t hash[LEDGER_EMAIL_HASH_BYTES];
	if (!ledger_email_valid(cmd->email, cmd->email_len, lower))
		return; /* request_decode refused it already */
	keystore_email_hash(&r->keys, lower, strlen(lower), hash);
	ledger_email_id(hash, id);
	cmd->email_id = id;
	sodium_memzero(lower, sizeof(lower));
}

void resolver_seal_email(const resolver_t *r, ledger_event_t *ev,
                         const uint8_t key[KEYSTORE_KEY_BYTES])
{
	size_t n = strlen(ev->email);
	keystore_email_hash(&r->keys, ev->email, n, ev->email_hash);
	ev->email_enc_len = pii_seal(key, ev->account, ev->seq, ev->email, n, ev->email_enc);
	ev->has_email_hash = true;
	sodium_memzero(ev->email, sizeof(ev->email));
}

int resolver_account_email(const resolver_t *r, const ledger_account_t *a,
                           char out[LEDGER_EMAIL_BYTES_MAX + 1])
{
	int rc = pii_ledger_email(&r->keys, r->ledger, a, out);
	if (rc != -ENOENT || a->erased)
		return rc;
	/* a standby's replicator may have appended it: the store is ours to
	 * re-index (r is const for the ledger's sake, not the key store's) */
	keystore_t *ks = (keystore_t *)&r->keys;
	uint32_t before = ks->index_used;
	if (keystore_catch_up(ks) < 0 || ks->index_used == before)
		return rc;
	return pii_ledger_email(&r->keys, r->ledger, a, out);
}

int resolver_destroy_key(resolver_t *r, uint64_t account)
{
	int rc = keystore_catch_up(&r->keys);
	if (rc == 0)
		rc = keystore_destroy(&r->keys, account);
	if (rc == -ENOENT)
		return 0; /* opened before sealing, or destroyed before */
	if (rc < 0)
		diag_error("cannot destroy the key of account %016llu: %s",
		           (unsigned long long)account, strerror(-rc));
	return rc;
}
