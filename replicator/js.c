/*
 * js.c - everything that calls nats.c (NATS and JetStream), and the inbox
 * through which nats.c's threads report to the loop.
 *
 * The streams (created when absent; an existing one is used as it is), both
 * file storage, replicas N (--replicas), deny_delete, deny_purge, no limits
 * (nothing is ever discarded), max_msg_size 1 MiB:
 *   NAME (--stream), subject NAME.log: log records (batch.c). Nothing else
 *     writes there: the replicator predicts its sequences (the fence).
 *   NAME_MAIL, subject NAME.receipts: mail receipts, one message per bus
 *     "receipts" message, the msgpack map {"seqs":[S,...]}: the seqs of the
 *     events whose mail the primary's mailer delivered (or buried in dead/).
 *     Published with core NATS (no ack awaited; docs/replication.md, "Mail
 *     across failover", says what a lost one costs).
 * Each NAME.log message carries the headers
 *   Nats-Msg-Id: <first seq>-<last seq>            (de-duplication)
 *   Nats-Expected-Last-Sequence: <stream seq>      (the fence; 0 for an
 *                                                   empty stream)
 * The heartbeat, outside the stream (core NATS, NAME.hb), every
 * REPL_HEARTBEAT_MS while primary: the text "<replicated seq> <node>".
 *
 * Threads: js_connect, js_read_tail, js_find, js_get, js_publish_sync and
 * js_follow_start wait for replies and run on a worker thread only;
 * js_publish_async and js_heartbeat do not wait (the loop calls them). The
 * callbacks below run on nats.c's threads: each turns what it got into a
 * js_note_t on the inbox and wakes the loop with uv_async_send. A follow
 * callback waits while REPL_FOLLOW_BYTES_MAX of followed data is not taken
 * yet (back-pressure onto the consumer's flow control).
 */
#include "replicator.h"

#include "diag.h"
#include "msg.h"
#include "protocol.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define JS_HDR_MSG_ID "Nats-Msg-Id"
#define JS_HDR_EXPECT "Nats-Expected-Last-Sequence"
#define JS_CONNECT_TIMEOUT_MS 2000
#define JS_RECONNECT_WAIT_MS 250
#define JS_WRITE_DEADLINE_MS 2000 /* a write to a server that reads nothing fails by then */
#define JS_HB_BYTES_MAX (REPL_NODE_BYTES_MAX + 24)

/* A follow subscription's closure, freed by nats.c's on-complete callback once
 * the last message handler of the closed subscription has returned. */
typedef struct {
	repl_t *r;
	uint64_t gen;
} js_follow_closure_t;

/* --- the inbox -------------------------------------------------------- */

int js_inbox_init(repl_t *r, uv_async_cb cb)
{
	js_inbox_t *in = &r->inbox;
	pthread_mutex_init(&in->lock, NULL);
	pthread_cond_init(&in->room, NULL);
	in->wake.data = r;
	return uv_async_init(r->loop, &in->wake, cb);
}

static void js_push(repl_t *r, js_note_t *n)
{
	js_inbox_t *in = &r->inbox;
	pthread_mutex_lock(&in->lock);
	if (in->closing) {
		pthread_mutex_unlock(&in->lock);
		natsMsg_Destroy(n->msg);
		free(n);
		return;
	}
	if (in->tail)
		in->tail->next = n;
	else
		in->head = n;
	in->tail = n;
	pthread_mutex_unlock(&in->lock);
	uv_async_send(&in->wake);
}

js_note_t *js_inbox_take(repl_t *r)
{
	js_inbox_t *in = &r->inbox;
	pthread_mutex_lock(&in->lock);
	js_note_t *n = in->head;
	in->head = in->tail = NULL;
	pthread_mutex_unlock(&in->lock);
	return n;
}

void js_note_free(repl_t *r, js_note_t *n)
{
	if (n->msg) {
		pthread_mutex_lock(&r->inbox.lock);
		r->inbox.follow_bytes -= (size_t)natsMsg_GetDataLength(n->msg);
		pthread_cond_broadcast(&r->inbox.room);
		pthread_mutex_unlock(&r->inbox.lock);
		natsMsg_Destroy(n->msg);
	}
	free(n);
}

void js_inbox_close(repl_t *r)
{
	pthread_mutex_lock(&r->inbox.lock);
	r->inbox.closing = true;
	pthread_cond_broadcast(&r->inbox.room);
	pthread_mutex_unlock(&r->inbox.lock);
}

static js_note_t *js_note_new(js_note_kind_t kind)
{
	js_note_t *n = calloc(1, sizeof(*n));
	if (!n)
		diag_error("out of memory for a note from NATS: dropped");
	else
		n->kind = kind;
	return n;
}

/* --- callbacks on nats.c's threads -------------------------------------- */

static void js_disconnected_cb(natsConnection *nc, void *closure)
{
	js_note_t *n = js_note_new(JS_NOTE_DISCONNECTED);
	if (n)
		js_push(closure, n);
}

static void js_reconnected_cb(natsConnection *nc, void *closure)
{
	js_note_t *n = js_note_new(JS_NOTE_RECONNECTED);
	if (n)
		js_push(closure, n);
}

static void js_ack_cb(jsCtx *js, natsMsg *msg, jsPubAck *pa, jsPubAckErr *pae, void *closure)
{
	js_note_t *n = js_note_new(pa ? JS_NOTE_ACK : JS_NOTE_PUB_ERROR);
	const char *id = NULL;
	if (n && natsMsgHeader_Get(msg, JS_HDR_MSG_ID, &id) == NATS_OK &&
	    batch_parse_msg_id(id, &n->first, &n->last) == 0) {
		if (pa) {
			n->stream_seq = pa->Sequence;
			n->duplicate = pa->Duplicate;
		} else {
			n->err_code = (int)pae->ErrCode;
			snprintf(n->text, sizeof(n->text), "%s",
			         pae->ErrText ? pae->ErrText : natsStatus_GetText(pae->Err));
		}
		js_push(closure, n);
	} else {
		free(n);
	}
	natsMsg_Destroy(msg);
}

/* Waits for room for len more followed bytes; false when closing. */
static bool js_wait_room(repl_t *r, size_t len)
{
	js_inbox_t *in = &r->inbox;
	pthread_mutex_lock(&in->lock);
	while (!in->closing && in->follow_bytes > 0 && in->follow_bytes + len > REPL_FOLLOW_BYTES_MAX)
		pthread_cond_wait(&in->room, &in->lock);
	bool ok = !in->closing;
	if (ok)
		in->follow_bytes += len;
	pthread_mutex_unlock(&in->lock);
	return ok;
}

static void js_follow_cb(natsConnection *nc, natsSubscription *sub, natsMsg *msg, void *closure)
{
	js_follow_closure_t *fc = closure;
	jsMsgMetaData *meta = NULL;
	js_note_t *n = js_note_new(JS_NOTE_FOLLOW);
	if (!n || natsMsg_GetMetaData(&meta, msg) != NATS_OK ||
	    !js_wait_room(fc->r, (size_t)natsMsg_GetDataLength(msg))) {
		free(n);
		jsMsgMetaData_Destroy(meta);
		natsMsg_Destroy(msg);
		return;
	}
	n->stream_seq = meta->Sequence.Stream;
	n->pending = meta->NumPending;
	n->gen = fc->gen;
	n->msg = msg;
	jsMsgMetaData_Destroy(meta);
	js_push(fc->r, n);
}

static void js_hb_cb(natsConnection *nc, natsSubscription *sub, natsMsg *msg, void *closure)
{
	char text[JS_HB_BYTES_MAX], *sp;
	int len = natsMsg_GetDataLength(msg);
	js_note_t *n = len > 0 && len < (int)sizeof(text) ? js_note_new(JS_NOTE_HEARTBEAT) : NULL;
	if (n) {
		memcpy(text, natsMsg_GetData(msg), (size_t)len);
		text[len] = 0;
		n->last = strtoull(text, &sp, 10);
		snprintf(n->text, sizeof(n->text), "%s", *sp == ' ' ? sp + 1 : "");
		js_push(closure, n);
	}
	natsMsg_Destroy(msg);
}

/* --- connecting (worker thread) ----------------------------------------- */

static int js_status(natsStatus s, char *text, size_t text_len, const char *what)
{
	if (s == NATS_OK)
		return 0;
	snprintf(text, text_len, "%s: %s", what, natsStatus_GetText(s));
	return -EIO;
}

static natsStatus js_options(repl_t *r, natsOptions **out)
{
	char urls[1024];
	const char *list[REPL_URLS_MAX];
	int n = 0;
	snprintf(urls, sizeof(urls), "%s", r->cfg.nats_urls);
	for (char *save = NULL, *u = strtok_r(urls, ",", &save); u && n < REPL_URLS_MAX;
	     u = strtok_r(NULL, ",", &save))
		list[n++] = u;
	natsStatus s = natsOptions_Create(out);
	if (s == NATS_OK)
		s = natsOptions_SetServers(*out, list, n);
	if (s == NATS_OK)
		s = natsOptions_SetMaxReconnect(*out, -1);
	if (s == NATS_OK)
		s = natsOptions_SetReconnectWait(*out, JS_RECONNECT_WAIT_MS);
	if (s == NATS_OK)
		s = natsOptions_SetTimeout(*out, JS_CONNECT_TIMEOUT_MS);
	/* Publishes are written at once by the caller (the loop thread) instead
	 * of by nats.c's flusher thread, which waits ~1 ms to gather more: that
	 * millisecond was in every acknowledgement (scripts/bench.d/jsbaseline.c
	 * measures both). A server that stops reading can then block the loop in
	 * write(), but only for JS_WRITE_DEADLINE_MS: then the connection is
	 * broken (a disconnect: a fault) and reconnected. */
	if (s == NATS_OK)
		s = natsOptions_SetSendAsap(*out, true);
	if (s == NATS_OK)
		s = natsOptions_SetWriteDeadline(*out, JS_WRITE_DEADLINE_MS);
	if (s == NATS_OK)
		s = natsOptions_SetDisconnectedCB(*out, js_disconnected_cb, r);
	if (s == NATS_OK)
		s = natsOptions_SetReconnectedCB(*out, js_reconnected_cb, r);
	return s;
}

/* Creates stream name with its one subject when absent (an existing one is used as it is). */
static natsStatus js_ensure_stream(repl_t *r, const char *name, const char *subject,
                                   jsErrCode *jerr)
{
	jsStreamInfo *si = NULL;
	natsStatus s = js_GetStreamInfo(&si, r->js, name, NULL, jerr);
	if (s == NATS_OK || *jerr != JSStreamNotFoundErr) {
		jsStreamInfo_Destroy(si);
		return s;
	}
	const char *subjects[] = { subject };
	jsStreamConfig sc;
	jsStreamConfig_Init(&sc);
	sc.Name = name;
	sc.Subjects = subjects;
	sc.SubjectsLen = 1;
	sc.Storage = js_FileStorage;
	sc.Replicas = (int64_t)r->cfg.replicas;
	sc.DenyDelete = true;
	sc.DenyPurge = true;
	sc.MaxMsgSize = 1024 * 1024;
	sc.Discard = js_DiscardNew; /* with no limits set nothing is discarded; a limit
	                             * added later refuses new messages, never drops old */
	s = js_AddStream(&si, r->js, &sc, NULL, jerr);
	if (s != NATS_OK && *jerr == JSStreamNameExistErr) /* another replicator made it */
		s = js_GetStreamInfo(&si, r->js, name, NULL, jerr);
	jsStreamInfo_Destroy(si);
	return s;
}

int js_connect(repl_t *r, char *text, size_t text_len)
{
	natsOptions *o = NULL;
	jsErrCode jerr = 0;
	natsStatus s = js_options(r, &o);
	if (s == NATS_OK)
		s = natsConnection_Connect(&r->nc, o);
	natsOptions_Destroy(o);
	if (s != NATS_OK)
		return js_status(s, text, text_len, "connecting to NATS");
	jsOptions jo;
	jsOptions_Init(&jo);
	jo.Wait = REPL_PUBLISH_WAIT_MS;
	jo.PublishAsync.AckHandler = js_ack_cb;
	jo.PublishAsync.AckHandlerClosure = r;
	jo.PublishAsync.MaxPending = 4 * REPL_INFLIGHT_MAX;
	s = natsConnection_JetStream(&r->js, r->nc, &jo);
	if (s == NATS_OK)
		s = js_ensure_stream(r, r->cfg.stream, r->log_subject, &jerr);
	if (s == NATS_OK)
		s = js_ensure_stream(r, r->mail_stream, r->receipts_subject, &jerr);
	if (s == NATS_OK && r->cfg.mode == REPL_MODE_STANDBY)
		s = natsConnection_Subscribe(&r->hb_sub, r->nc, r->hb_subject, js_hb_cb, r);
	if (s != NATS_OK) {
		snprintf(text, text_len, "the stream %s: %s (JetStream error %d)", r->cfg.stream,
		         nats_GetLastError(NULL), (int)jerr);
		js_close(r);
		return -EIO;
	}
	return 0;
}

void js_close(repl_t *r)
{
	js_follow_stop(r);
	if (r->hb_sub) {
		natsSubscription_Unsubscribe(r->hb_sub);
		natsSubscription_Destroy(r->hb_sub);
		r->hb_sub = NULL;
	}
	jsCtx_Destroy(r->js);
	r->js = NULL;
	if (r->nc)
		natsConnection_Close(r->nc);
	natsConnection_Destroy(r->nc);
	r->nc = NULL;
}

/* --- reading the stream (worker thread) --------------------------------- */

typedef struct {
	repl_tail_t *t;
} js_tail_scan_t;

static int js_tail_cb(uint64_t seq, const char *body, size_t len,
                      const uint8_t hash[LOGFILE_HASH_BYTES], void *arg)
{
	repl_tail_t *t = arg;
	t->last = seq;
	memcpy(t->head, hash, LOGFILE_HASH_BYTES);
	batch_takeover_node(body, len, t->primary, sizeof(t->primary));
	return 0;
}

int js_read_tail(repl_t *r, repl_tail_t *out)
{
	jsStreamInfo *si = NULL;
	natsMsg *m = NULL;
	jsErrCode jerr = 0;
	memset(out, 0, sizeof(*out));
	natsStatus s = js_GetLastMsg(&m, r->js, r->cfg.stream, r->log_subject, NULL, &jerr);
	if (s != NATS_OK && jerr != JSNoMessageFoundErr)
		return -EIO;
	int rc = 0;
	if (m)
		rc = batch_decode(natsMsg_GetData(m), (size_t)natsMsg_GetDataLength(m), NULL,
		                  js_tail_cb, out);
	natsMsg_Destroy(m);
	s = js_GetStreamInfo(&si, r->js, r->cfg.stream, NULL, &jerr);
	if (s == NATS_OK)
		out->stream_seq = si->State.LastSeq;
	jsStreamInfo_Destroy(si);
	if (rc < 0)
		diag_error("the stream's last message is not a valid batch of records");
	return s != NATS_OK ? -EIO : rc;
}

void js_last_primary(repl_t *r, repl_tail_t *t, unsigned back_max)
{
	for (uint64_t q = t->stream_seq; q >= 1 && back_max > 0 && !*t->primary; q--, back_max--) {
		natsMsg *m = NULL;
		repl_tail_t scratch = { 0 };
		if (js_get(r, q, &m) == 0 &&
		    batch_decode(natsMsg_GetData(m), (size_t)natsMsg_GetDataLength(m), NULL,
		                 js_tail_cb, &scratch) == 0)
			memcpy(t->primary, scratch.primary, sizeof(t->primary));
		natsMsg_Destroy(m);
	}
}

int js_get(repl_t *r, uint64_t stream_seq, natsMsg **out)
{
	jsErrCode jerr = 0;
	natsStatus s = js_GetMsg(out, r->js, r->cfg.stream, stream_seq, NULL, &jerr);
	if (s == NATS_OK)
		return 0;
	return jerr == JSNoMessageFoundErr ? -ENOENT : -EIO;
}

/* The records first..last of stream message q (its msg id). */
static int js_get_span(repl_t *r, uint64_t q, uint64_t *first, uint64_t *last)
{
	natsMsg *m = NULL;
	const char *id = NULL;
	int rc = js_get(r, q, &m);
	if (rc == 0 && (natsMsgHeader_Get(m, JS_HDR_MSG_ID, &id) != NATS_OK ||
	                batch_parse_msg_id(id, first, last) < 0))
		rc = -EBADMSG;
	natsMsg_Destroy(m);
	return rc;
}

int js_find(repl_t *r, uint64_t seq, uint64_t last_q, uint64_t *stream_seq)
{
	uint64_t lo = 1, hi = last_q;
	while (lo <= hi) {
		uint64_t mid = lo + (hi - lo) / 2, first, last;
		int rc = js_get_span(r, mid, &first, &last);
		if (rc < 0)
			return rc;
		if (seq < first)
			hi = mid - 1;
		else if (seq > last)
			lo = mid + 1;
		else {
			*stream_seq = mid;
			return 0;
		}
	}
	*stream_seq = lo; /* past the end: the next message */
	return 0;
}

/* --- receipts ------------------------------------------------------------ */

/* Adds the seqs of one NAME_MAIL message ({"seqs":[S,...]}) to set. */
static int js_receipts_add(const char *p, size_t n, repl_seqs_t *set)
{
	msgpack_zone zone;
	msgpack_object map;
	msgpack_zone_init(&zone, 1024);
	int rc = msg_decode_map(p, n, &zone, &map);
	const msgpack_object *seqs = rc == 0 ? msg_get(&map, PEER_F_SEQS) : NULL;
	if (!seqs || seqs->type != MSGPACK_OBJECT_ARRAY)
		rc = -EBADMSG;
	for (uint32_t i = 0; rc == 0 && i < seqs->via.array.size; i++) {
		if (seqs->via.array.ptr[i].type != MSGPACK_OBJECT_POSITIVE_INTEGER)
			continue;
		rc = repl_seqs_add(set, seqs->via.array.ptr[i].via.u64);
	}
	msgpack_zone_destroy(&zone);
	return rc;
}

int js_read_receipts(repl_t *r, repl_seqs_t *set)
{
	jsErrCode jerr = 0;
	jsStreamInfo *si = NULL;
	if (js_GetStreamInfo(&si, r->js, r->mail_stream, NULL, &jerr) != NATS_OK)
		return -EIO;
	uint64_t first = si->State.FirstSeq, last = si->State.LastSeq;
	jsStreamInfo_Destroy(si);
	for (uint64_t q = first ? first : 1; q <= last; q++) {
		natsMsg *m = NULL;
		natsStatus s = js_GetMsg(&m, r->js, r->mail_stream, q, NULL, &jerr);
		if (s != NATS_OK && jerr == JSNoMessageFoundErr)
			continue;
		if (s != NATS_OK)
			return -EIO;
		int rc = js_receipts_add(natsMsg_GetData(m), (size_t)natsMsg_GetDataLength(m), set);
		natsMsg_Destroy(m);
		if (rc == -ENOMEM)
			return rc;
		if (rc < 0)
			diag_warn("%s message %" PRIu64 " is not a receipt: skipped", r->mail_stream, q);
	}
	return 0;
}

/* --- publishing --------------------------------------------------------- */

static natsStatus js_message(repl_t *r, const repl_msg_t *m, natsMsg **out)
{
	char id[REPL_MSG_ID_BYTES_MAX], expect[24];
	batch_msg_id(m->first, m->last, id);
	snprintf(expect, sizeof(expect), "%" PRIu64, m->expect);
	natsStatus s = natsMsg_Create(out, r->log_subject, NULL, m->buf, (int)m->len);
	if (s == NATS_OK)
		s = natsMsgHeader_Set(*out, JS_HDR_MSG_ID, id);
	if (s == NATS_OK)
		s = natsMsgHeader_Set(*out, JS_HDR_EXPECT, expect);
	return s;
}

int js_publish_async(repl_t *r, const repl_msg_t *m)
{
	natsMsg *msg = NULL;
	jsPubOptions po;
	jsPubOptions_Init(&po);
	po.MaxWait = REPL_PUBLISH_WAIT_MS;
	natsStatus s = js_message(r, m, &msg);
	if (s == NATS_OK)
		s = js_PublishMsgAsync(r->js, &msg, &po);
	natsMsg_Destroy(msg);
	return s == NATS_OK ? 0 : -EIO;
}

int js_publish_sync(repl_t *r, const repl_msg_t *m, uint64_t *stream_seq, char *text,
                    size_t text_len)
{
	natsMsg *msg = NULL;
	jsPubAck *pa = NULL;
	jsErrCode jerr = 0;
	natsStatus s = js_message(r, m, &msg);
	if (s == NATS_OK)
		s = js_PublishMsg(&pa, r->js, msg, NULL, &jerr);
	natsMsg_Destroy(msg);
	int rc = 0;
	if (s != NATS_OK) {
		snprintf(text, text_len, "%s", nats_GetLastError(NULL));
		rc = jerr == JSStreamWrongLastSequenceErr ? -EEXIST : -EIO;
	} else if (pa->Duplicate) {
		snprintf(text, text_len, "the stream already had message %" PRIu64 "-%" PRIu64,
		         m->first, m->last);
		rc = -EEXIST;
	} else {
		*stream_seq = pa->Sequence;
	}
	jsPubAck_Destroy(pa);
	return rc;
}

int js_receipts(repl_t *r, const char *buf, size_t len)
{
	if (!r->nc || len > INT32_MAX)
		return -EINVAL;
	natsStatus s = natsConnection_Publish(r->nc, r->receipts_subject, buf, (int)len);
	return s == NATS_OK ? 0 : -EIO;
}

int js_heartbeat(repl_t *r, uint64_t seq)
{
	char text[JS_HB_BYTES_MAX];
	int n = snprintf(text, sizeof(text), "%" PRIu64 " %s", seq, r->cfg.node);
	if (!r->nc || n < 0 || (size_t)n >= sizeof(text))
		return -EINVAL;
	return natsConnection_Publish(r->nc, r->hb_subject, text, n) == NATS_OK ? 0 : -EIO;
}

/* --- following ---------------------------------------------------------- */

int js_follow_start(repl_t *r, uint64_t stream_seq, uint64_t gen)
{
	js_follow_stop(r);
	js_follow_closure_t *fc = malloc(sizeof(*fc));
	if (!fc)
		return -ENOMEM;
	*fc = (js_follow_closure_t){ .r = r, .gen = gen };
	jsSubOptions so;
	jsSubOptions_Init(&so);
	so.Stream = r->cfg.stream;
	so.Ordered = true;
	so.Config.DeliverPolicy = js_DeliverByStartSequence;
	so.Config.OptStartSeq = stream_seq;
	jsErrCode jerr = 0;
	natsStatus s = js_Subscribe(&r->follow_sub, r->js, r->log_subject, js_follow_cb, fc, NULL,
	                            &so, &jerr);
	if (s == NATS_OK)
		s = natsSubscription_SetOnCompleteCB(r->follow_sub, free, fc);
	if (s != NATS_OK) {
		diag_warn("following %s from stream sequence %" PRIu64 ": %s (JetStream error %d)",
		         r->log_subject, stream_seq, nats_GetLastError(NULL), (int)jerr);
		if (!r->follow_sub)
			free(fc);
		js_follow_stop(r); /* fc is lost if the on-complete callback was not set */
		return -EIO;
	}
	return 0;
}

void js_follow_stop(repl_t *r)
{
	if (!r->follow_sub)
		return;
	natsSubscription_Unsubscribe(r->follow_sub);
	natsSubscription_Destroy(r->follow_sub);
	r->follow_sub = NULL;
}
