/*
 * jskeys.c - the calls of nats.c on the key stream NAME_KEYS (keys.c says
 * why it exists and who writes it). Every function here waits for a reply:
 * worker threads only.
 *
 * The stream NAME_KEYS: subjects NAME.keys.> (NAME.keys.secret and
 * NAME.keys.<account>, the account number in decimal), file storage,
 * replicas N (--replicas), one message kept per subject
 * (max_msgs_per_subject 1: a key put again replaces the old one),
 * deny_delete, purge allowed (an erased account's subject is purged),
 * max_msg_size 1 KiB. A message's data:
 *   NAME.keys.secret     32 bytes: the server secret of the keyed email hash
 *                        (DATA/keys's header, common/keystore.c)
 *   NAME.keys.<account>  32 bytes: the account's data key
 */
#include "replicator.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define JSKEYS_MSG_BYTES_MAX 1024

static void jskeys_subject(const repl_t *r, uint64_t account, char out[REPL_SUBJECT_BYTES_MAX])
{
	if (account == 0)
		snprintf(out, REPL_SUBJECT_BYTES_MAX, "%s.keys.secret", r->cfg.stream);
	else
		snprintf(out, REPL_SUBJECT_BYTES_MAX, "%s.keys.%" PRIu64, r->cfg.stream, account);
}

int jskeys_ensure(repl_t *r)
{
	jsErrCode jerr = 0;
	jsStreamInfo *si = NULL;
	natsStatus s = js_GetStreamInfo(&si, r->js, r->keys_stream, NULL, &jerr);
	if (s == NATS_OK || jerr != JSStreamNotFoundErr) {
		jsStreamInfo_Destroy(si);
		return s == NATS_OK ? 0 : -EIO;
	}
	char subject[REPL_SUBJECT_BYTES_MAX];
	snprintf(subject, sizeof(subject), "%s.keys.>", r->cfg.stream);
	const char *subjects[] = { subject };
	jsStreamConfig sc;
	jsStreamConfig_Init(&sc);
	sc.Name = r->keys_stream;
	sc.Subjects = subjects;
	sc.SubjectsLen = 1;
	sc.Storage = js_FileStorage;
	sc.Replicas = (int64_t)r->cfg.replicas;
	sc.MaxMsgsPerSubject = 1;
	sc.DenyDelete = true;
	sc.DenyPurge = false;
	sc.MaxMsgSize = JSKEYS_MSG_BYTES_MAX;
	s = js_AddStream(&si, r->js, &sc, NULL, &jerr);
	if (s != NATS_OK && jerr == JSStreamNameExistErr)
		s = NATS_OK; /* another replicator made it */
	jsStreamInfo_Destroy(si);
	return s == NATS_OK ? 0 : -EIO;
}

/* account 0: the secret. The message's data (32 bytes) into out: 0, -ENOENT, -EIO. */
int jskeys_read(repl_t *r, uint64_t account, uint8_t out[KEYSTORE_KEY_BYTES])
{
	char subject[REPL_SUBJECT_BYTES_MAX];
	jskeys_subject(r, account, subject);
	natsMsg *m = NULL;
	jsErrCode jerr = 0;
	natsStatus s = js_GetLastMsg(&m, r->js, r->keys_stream, subject, NULL, &jerr);
	int rc = s == NATS_OK ? 0 : jerr == JSNoMessageFoundErr || jerr == JSStreamNotFoundErr ?
	         -ENOENT : -EIO;
	if (rc == 0 && natsMsg_GetDataLength(m) != KEYSTORE_KEY_BYTES)
		rc = -EBADMSG;
	if (rc == 0)
		memcpy(out, natsMsg_GetData(m), KEYSTORE_KEY_BYTES);
	natsMsg_Destroy(m);
	return rc;
}

/* account 0: the secret, only if the stream has none yet (-EEXIST if it has). 0 or -errno. */
int jskeys_write(repl_t *r, uint64_t account, const uint8_t data[KEYSTORE_KEY_BYTES])
{
	char subject[REPL_SUBJECT_BYTES_MAX];
	jskeys_subject(r, account, subject);
	jsPubOptions po;
	jsPubOptions_Init(&po);
	po.MaxWait = REPL_PUBLISH_WAIT_MS;
	po.ExpectNoMessage = account == 0;
	jsPubAck *pa = NULL;
	jsErrCode jerr = 0;
	natsStatus s = js_Publish(&pa, r->js, subject, data, KEYSTORE_KEY_BYTES, &po, &jerr);
	jsPubAck_Destroy(pa);
	if (s == NATS_OK)
		return 0;
	return jerr == JSStreamWrongLastSequenceErr ? -EEXIST : -EIO;
}

int jskeys_purge(repl_t *r, uint64_t account)
{
	char subject[REPL_SUBJECT_BYTES_MAX];
	jskeys_subject(r, account, subject);
	jsOptions o;
	jsOptions_Init(&o);
	o.Wait = REPL_PUBLISH_WAIT_MS;
	o.Stream.Purge.Subject = subject;
	jsErrCode jerr = 0;
	return js_PurgeStream(r->js, r->keys_stream, &o, &jerr) == NATS_OK ? 0 : -EIO;
}

int jskeys_last(repl_t *r, uint64_t *last_q)
{
	jsErrCode jerr = 0;
	jsStreamInfo *si = NULL;
	natsStatus s = js_GetStreamInfo(&si, r->js, r->keys_stream, NULL, &jerr);
	if (s == NATS_OK)
		*last_q = si->State.LastSeq;
	jsStreamInfo_Destroy(si);
	return s == NATS_OK ? 0 : -EIO;
}

/* Message q: its account (0: the secret) and data. 0, -ENOENT (gone: replaced
 * or purged, or not a key), -EIO. */
int jskeys_get(repl_t *r, uint64_t q, uint64_t *account, uint8_t out[KEYSTORE_KEY_BYTES])
{
	natsMsg *m = NULL;
	jsErrCode jerr = 0;
	natsStatus s = js_GetMsg(&m, r->js, r->keys_stream, q, NULL, &jerr);
	if (s != NATS_OK)
		return jerr == JSNoMessageFoundErr ? -ENOENT : -EIO;
	char prefix[REPL_SUBJECT_BYTES_MAX];
	int plen = snprintf(prefix, sizeof(prefix), "%s.keys.", r->cfg.stream);
	const char *subj = natsMsg_GetSubject(m), *tail = subj + plen;
	char *end = NULL;
	int rc = strncmp(subj, prefix, (size_t)plen) == 0 &&
	         natsMsg_GetDataLength(m) == KEYSTORE_KEY_BYTES ? 0 : -ENOENT;
	if (rc == 0 && strcmp(tail, "secret") == 0) {
		*account = 0;
	} else if (rc == 0) {
		*account = strtoull(tail, &end, 10);
		if (*tail < '0' || *tail > '9' || *end || *account == 0)
			rc = -ENOENT;
	}
	if (rc == 0)
		memcpy(out, natsMsg_GetData(m), KEYSTORE_KEY_BYTES);
	natsMsg_Destroy(m);
	return rc;
}
