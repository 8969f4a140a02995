/*
 * keys.c - the key store DATA/keys (common/keystore.h) carried to the
 * standbys through a third stream, NAME_KEYS (its format in jskeys.c;
 * docs/privacy.md, "Replication").
 *
 * Why a stream with one message per subject and purge: a key sent through
 * the log stream would stay there for ever (deny_purge, and the chain
 * forbids it anyway); NAME_KEYS keeps one message per subject
 * (NAME.keys.<account>), so erasing an account is purging its subject. Why
 * not a key-value bucket: a bucket is the same thing on 2.9 (a stream with
 * max_msgs_per_subject), with delete markers the standbys would have to
 * read; a plain stream is what the rest of the replicator already uses.
 *
 * Primary (publish.c runs these as a job before a log message is sent):
 * each account_opened event of a message queues "put the account's key"
 * and each account_erased "purge the account's subject", in the events'
 * order; the job reads each key from the local DATA/keys (the resolver
 * wrote and fdatasync'd it before the event left the resolver) and
 * publishes it, waiting for the stream's ack, or purges, and only then is
 * the log message published. So no event is in the log stream without its
 * key in NAME_KEYS, and no account_erased is in the log stream while its
 * key is still in NAME_KEYS. The purge comes before the erasure's log
 * message, not after its ack, for the same reason the resolver destroys the
 * local key before the event is sent on: a crash between the two then
 * leaves a key missing (the account reads as erased; erase_account may be
 * sent again), never a key that outlives an erasure. A resend (restart,
 * resync) puts and purges again: both are idempotent; a key the local store
 * no longer has (erased since) is skipped.
 *
 * The secret: at start-up the primary publishes DATA/keys's secret on
 * NAME.keys.secret if the stream has none (expected no message on the
 * subject: two primaries cannot both put one); if the stream holds another,
 * the group's emails hash differently from the stream's history: the
 * replicator stops with a clear error (exit 100).
 *
 * Standby: `--rejoin` (before the group starts) makes DATA/keys hold the
 * stream's secret (keystore_adopt_secret: created when missing, refused
 * when it holds keys under another secret). While following, a job reads
 * NAME_KEYS from the last message read on (every tick) and writes the keys
 * it lacks into DATA/keys: on a standby the replicator is the only one that
 * appends, the resolver only destroys (a replayed account_erased). After
 * writing a key, the job checks the key is still in the stream; if it was
 * purged meanwhile, it destroys it again (the resolver may have replayed the
 * account_erased before the key was written: the purge came before that
 * event). A promotion runs the same read to the stream's end before the
 * takeover record, then the replicator stops writing (keys_writer false,
 * under keys_lock): the resolver's next keystore_reserve() catches up with
 * the slots appended, and from then on it is the only appender.
 */
#include "replicator.h"

#include "config.h"
#include "diag.h"
#include "event.h"

#include <errno.h>
#include <inttypes.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define KEYS_PURGE_BIT (1ull << 63) /* an op: the account, or'ed with this for a purge */

static int keys_open_checked(repl_t *r, char *text, size_t text_len);

int keys_note_event(repl_msg_t *m, const char *body, size_t len)
{
	ledger_event_t ev;
	if (!memmem(body, len, "account_", 8)) /* the type of both: most events are not */
		return 0;
	if (event_decode_bytes(body, len, &ev) < 0)
		return 0; /* not an event the keys care about (the logger checked it) */
	int rc = 0;
	if (ev.type == LEDGER_EV_ACCOUNT_OPENED && ev.has_email_hash)
		rc = repl_seqs_add(&m->keys, ev.account);
	else if (ev.type == LEDGER_EV_ACCOUNT_ERASED)
		rc = repl_seqs_add(&m->keys, ev.account | KEYS_PURGE_BIT);
	sodium_memzero(&ev, sizeof(ev));
	return rc;
}

/* ---- primary ---- */

/* The local key of account into key: 0 or -ENOENT (the slots appended since
 * the last read are looked at first, then, on a primary, every slot). */
static int keys_local(repl_t *r, uint64_t account, uint8_t key[KEYSTORE_KEY_BYTES])
{
	int rc = keystore_get(&r->keys, account, key);
	if (rc == -ENOENT && keystore_catch_up(&r->keys) == 0)
		rc = keystore_get(&r->keys, account, key);
	if (rc == -ENOENT && r->mode == REPL_MODE_PRIMARY && keystore_rescan(&r->keys) == 0)
		rc = keystore_get(&r->keys, account, key); /* rare: erased since, most likely */
	return rc;
}

void keys_publish_work(uv_work_t *w)
{
	repl_job_t *j = w->data;
	repl_t *r = j->r;
	uint8_t key[KEYSTORE_KEY_BYTES];
	j->out = 0;
	pthread_mutex_lock(&r->keys_lock); /* a standby's follow job may just be ending */
	int rc = r->keys_open ? 0 : keys_open_checked(r, j->text, sizeof(j->text));
	if (rc < 0 && rc != -ENOENT) {
		pthread_mutex_unlock(&r->keys_lock);
		j->result = rc;
		return;
	}
	for (size_t i = 0; i < j->seqs.n; i++, j->out++) {
		uint64_t op = j->seqs.v[i], account = op & ~KEYS_PURGE_BIT;
		rc = 0;
		if (op & KEYS_PURGE_BIT) {
			rc = jskeys_purge(r, account);
		} else if (r->keys_open && keys_local(r, account, key) == 0) {
			rc = jskeys_write(r, account, key);
		} else {
			diag_warn("keys: account %" PRIu64 " has no key in DATA/keys (erased since?): "
			         "none published", account);
		}
		if (rc < 0) {
			snprintf(j->text, sizeof(j->text), "%s the key of account %" PRIu64 " in %s: %s",
			         op & KEYS_PURGE_BIT ? "purging" : "publishing", account,
			         r->keys_stream, nats_GetLastError(NULL));
			j->result = rc;
			break;
		}
	}
	pthread_mutex_unlock(&r->keys_lock);
	sodium_memzero(key, sizeof(key));
}

/* ---- start-up (worker thread) ---- */

static int keys_open_local(repl_t *r, char *text, size_t text_len)
{
	char path[4096];
	snprintf(path, sizeof(path), "%s/%s", r->cfg.data_dir, KEYSTORE_FILE);
	if (access(path, F_OK) < 0) {
		snprintf(text, text_len, "%s is not there yet (the resolver creates it)", path);
		return -ENOENT;
	}
	int rc = keystore_open(&r->keys, r->cfg.data_dir, r->mode == REPL_MODE_STANDBY);
	if (rc < 0)
		snprintf(text, text_len, "cannot open %s: %s", path,
		         rc == -EINVAL ? "not a key store (damaged?)" : strerror(-rc));
	return rc;
}

/* Opens DATA/keys and checks the secret with the stream's (publishing it
 * on a primary if the stream has none): 0, -ENOENT (no DATA/keys yet),
 * -EEXIST (another secret), -errno (text says). */
static int keys_open_checked(repl_t *r, char *text, size_t text_len)
{
	uint8_t secret[KEYSTORE_SECRET_BYTES];
	int rc = r->keys_open ? 0 : keys_open_local(r, text, text_len);
	if (rc < 0)
		return rc;
	r->keys_open = true;
	rc = jskeys_ensure(r);
	if (rc == 0)
		rc = jskeys_read(r, 0, secret);
	if (rc == -ENOENT && r->mode == REPL_MODE_PRIMARY) {
		rc = jskeys_write(r, 0, r->keys.secret);
		if (rc == -EEXIST) /* another primary put one first */
			rc = jskeys_read(r, 0, secret);
		else if (rc == 0)
			memcpy(secret, r->keys.secret, sizeof(secret));
	}
	if (rc == -ENOENT) { /* a standby of a stream that has no secret yet */
		r->keys_writer = true;
		return 0;
	}
	if (rc < 0) {
		snprintf(text, text_len, "cannot read the secret in %s: %s", r->keys_stream,
		         nats_GetLastError(NULL));
		return rc;
	}
	bool same = sodium_memcmp(secret, r->keys.secret, sizeof(secret)) == 0;
	sodium_memzero(secret, sizeof(secret));
	if (!same) {
		snprintf(text, text_len, "%s/%s and the stream %s hold different secrets: this data "
		         "directory is not of the bank in the stream", r->cfg.data_dir, KEYSTORE_FILE,
		         r->keys_stream);
		keystore_close(&r->keys);
		r->keys_open = false;
		return -EEXIST;
	}
	r->keys_writer = r->mode == REPL_MODE_STANDBY;
	return 0;
}

int keys_start(repl_t *r, char *text, size_t text_len)
{
	int rc = keys_open_checked(r, text, text_len);
	if (rc == -ENOENT) /* the resolver makes it; looked for again before each use */
		diag_info("keys: %s", text);
	return rc == -ENOENT ? 0 : rc;
}

/* ---- --rejoin: the standby's DATA/keys takes the stream's secret ---- */

int keys_rejoin(repl_t *r)
{
	uint8_t secret[KEYSTORE_SECRET_BYTES];
	int rc = jskeys_read(r, 0, secret);
	if (rc == -ENOENT) {
		diag_info("rejoin: %s holds no secret yet: %s/%s is left as it is", r->keys_stream,
		         r->cfg.data_dir, KEYSTORE_FILE);
		return 0;
	}
	if (rc < 0) {
		diag_error("rejoin: cannot read the secret in %s: %s", r->keys_stream,
		          nats_GetLastError(NULL));
		return rc;
	}
	rc = config_mkdirs(r->cfg.data_dir, 0700);
	if (rc == 0)
		rc = keystore_adopt_secret(r->cfg.data_dir, secret);
	sodium_memzero(secret, sizeof(secret));
	if (rc == -EEXIST)
		diag_error("rejoin: %s/%s holds keys under another secret than the stream %s's: this "
		          "data directory is not of the bank in the stream (nothing changed)",
		          r->cfg.data_dir, KEYSTORE_FILE, r->keys_stream);
	else if (rc < 0)
		diag_error("rejoin: cannot write %s/%s: %s", r->cfg.data_dir, KEYSTORE_FILE,
		          strerror(-rc));
	return rc;
}

/* ---- standby: follow NAME_KEYS into DATA/keys (worker thread) ---- */

static int keys_apply(repl_t *r, uint64_t account, const uint8_t data[KEYSTORE_KEY_BYTES])
{
	uint8_t have[KEYSTORE_KEY_BYTES];
	if (account == 0) {
		if (sodium_memcmp(data, r->keys.secret, KEYSTORE_SECRET_BYTES) == 0)
			return 0;
		diag_error("keys: the stream's secret is not this standby's (%s/%s was made before "
		          "the primary published it): stop this group, remove %s/%s if it holds no "
		          "key, and start it again", r->cfg.data_dir, KEYSTORE_FILE, r->cfg.data_dir,
		          KEYSTORE_FILE);
		r->keys_writer = false;
		return -EEXIST;
	}
	int rc = keys_local(r, account, have);
	bool same = rc == 0 && sodium_memcmp(have, data, KEYSTORE_KEY_BYTES) == 0;
	sodium_memzero(have, sizeof(have));
	if (same)
		return 0;
	rc = keystore_put(&r->keys, account, data);
	if (rc < 0)
		return rc;
	rc = jskeys_read(r, account, have);
	bool kept = rc == 0 && sodium_memcmp(have, data, KEYSTORE_KEY_BYTES) == 0;
	sodium_memzero(have, sizeof(have));
	if (rc == -ENOENT || (rc == 0 && !kept)) /* purged (erased) or replaced meanwhile */
	{
		int d = keystore_destroy(&r->keys, account);
		return d == -ENOENT ? 0 : d;
	}
	return rc;
}

int keys_follow_all(repl_t *r)
{
	uint64_t last = 0;
	uint8_t data[KEYSTORE_KEY_BYTES];
	char text[REPL_TEXT_BYTES_MAX];
	pthread_mutex_lock(&r->keys_lock);
	int rc = r->keys_open ? 0 : keys_open_checked(r, text, sizeof(text));
	if (rc == -ENOENT) /* no DATA/keys yet: nothing to write into */
		rc = 0;
	else if (rc < 0)
		diag_warn("keys: %s", text);
	if (rc == 0 && r->keys_writer)
		rc = jskeys_last(r, &last);
	while (rc == 0 && r->keys_open && r->keys_writer && r->keys_q < last) {
		uint64_t account = 0;
		rc = jskeys_get(r, r->keys_q + 1, &account, data);
		if (rc == 0)
			rc = keys_apply(r, account, data);
		if (rc == -ENOENT || rc == -EEXIST)
			rc = 0; /* gone (purged or replaced), or the secret said so */
		if (rc == 0)
			r->keys_q++;
	}
	sodium_memzero(data, sizeof(data));
	pthread_mutex_unlock(&r->keys_lock);
	return rc;
}

void keys_stop_writing(repl_t *r)
{
	pthread_mutex_lock(&r->keys_lock);
	r->keys_writer = false;
	pthread_mutex_unlock(&r->keys_lock);
}

static void keys_follow_work(uv_work_t *w)
{
	repl_job_t *j = w->data;
	j->result = keys_follow_all(j->r);
}

static void keys_follow_done(uv_work_t *w, int status)
{
	repl_job_t *j = w->data;
	j->busy = false;
	if (j->result < 0 && !j->r->stopping)
		diag_warn("keys: cannot follow %s now (%s): trying again", j->r->keys_stream,
		          strerror(-j->result));
}

void keys_follow_tick(repl_t *r)
{
	if (r->mode != REPL_MODE_STANDBY || !r->ready || r->keys_follow_job.busy || r->promote_job.busy)
		return;
	repl_job_start(r, &r->keys_follow_job, keys_follow_work, keys_follow_done);
}
