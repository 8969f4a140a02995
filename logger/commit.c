/*
 * commit.c - group commit for esbank-logger.
 *
 * Events are encoded into the pending batch as they arrive. When no write is
 * in flight, the pending batch becomes the in-flight batch and one worker of
 * libuv's thread pool writes it with one pwrite and one fdatasync
 * (logfile_write); events arriving meanwhile collect in the next pending
 * batch. So the fsync never runs on the event loop and its cost is shared by
 * every event that arrived while the previous one ran.
 *
 * On a failed write the file has been cut back; the batch goes back in front
 * of the pending events, a fault is reported once, and the write is retried
 * after LOGGER_RETRY_MIN_MS, doubling up to LOGGER_RETRY_MAX_MS, until the
 * disk takes it. Nothing is acknowledged in the meantime.
 */
#include "logger.h"
#include "diag.h"

#include <assert.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Fixed buckets of the figures (common/figures.h): 50 us .. 1 s; 1 .. 8192 events. */
static const uint64_t logger_fsync_bounds_us[] = {
	50, 100, 250, 500, 1000, 2500, 5000, 10000, 25000, 50000, 100000, 250000, 500000, 1000000,
};
static const uint64_t logger_batch_bounds[] = {
	1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8192,
};
#define LOGGER_BOUNDS_N(a) (sizeof(a) / sizeof((a)[0]))

/* A fill ahead of the log's end finished: a batch may have waited for it. */
static void logger_prealloc_done_cb(logger_prealloc_t *pa)
{
	logger_commit_kick(pa->data);
}

int logger_commit_init(logger_t *lg, const logger_commit_cbs_t *cbs)
{
	figures_hist_init(&lg->fsync_us, logger_fsync_bounds_us,
	                  LOGGER_BOUNDS_N(logger_fsync_bounds_us), 1e6);
	figures_hist_init(&lg->batch_events, logger_batch_bounds,
	                  LOGGER_BOUNDS_N(logger_batch_bounds), 1);
	lg->commit_cbs = *cbs;
	lg->accepted_seq = lg->lf.last_seq;
	memcpy(lg->accepted_chain, lg->lf.head_hash, LOGFILE_HASH_BYTES);
	lg->retry_ms = LOGGER_RETRY_MIN_MS;
	logger_prealloc_init(&lg->prealloc, lg->loop, &lg->lf, logger_prealloc_done_cb, lg);
	if (lg->lf.checkpoint_seq)
		diag_info("events 1..%llu unchanged since the last clean stop (events.chk): their "
		          "hashes taken as stored (esbank audit computes every one)",
		          (unsigned long long)lg->lf.checkpoint_seq);
	return uv_timer_init(lg->loop, &lg->retry_timer);
}

/* A clean stop: the zeros cut, then the checkpoint of the log as it is. */
void logger_commit_free(logger_t *lg)
{
	logger_prealloc_free(&lg->prealloc);
	if (lg->lf.fd >= 0 && !lg->busy) {
		int r = logfile_save_checkpoint(&lg->lf);
		if (r < 0)
			diag_warn("no checkpoint of the log (%s): the next start hashes every event",
			          strerror(-r));
	}
	free(lg->pending.buf);
	free(lg->inflight.buf);
	memset(&lg->pending, 0, sizeof(lg->pending));
	memset(&lg->inflight, 0, sizeof(lg->inflight));
}

int logger_commit_add(logger_t *lg, uint64_t seq, const char *body, size_t len)
{
	assert(seq == lg->accepted_seq + 1);
	logger_batch_t *b = &lg->pending;
	int r = logfile_encode(seq, body, len, lg->accepted_chain, &b->buf, &b->len, &b->cap);
	if (r < 0)
		return r;
	lg->accepted_seq = seq;
	b->events++;
	b->last_seq = seq;
	memcpy(b->head, lg->accepted_chain, LOGFILE_HASH_BYTES);
	return 0;
}

static uint64_t logger_now_ns(void)
{
	return uv_hrtime();
}

static void logger_work_cb(uv_work_t *w)
{
	logger_t *lg = w->data;
	uint64_t t0 = logger_now_ns();
	lg->write_result = logfile_write(&lg->lf, lg->at, lg->inflight.buf, lg->inflight.len);
	lg->write_ns = logger_now_ns() - t0;
}

/* Puts the failed in-flight batch back in front of the pending events. */
static int logger_requeue(logger_t *lg)
{
	logger_batch_t *in = &lg->inflight, *p = &lg->pending;
	if (p->len > 0) {
		if (in->cap - in->len < p->len) {
			char *n = realloc(in->buf, in->len + p->len);
			if (!n)
				return -ENOMEM;
			in->buf = n;
			in->cap = in->len + p->len;
		}
		memcpy(in->buf + in->len, p->buf, p->len);
		in->len += p->len;
		in->events += p->events;
		in->last_seq = p->last_seq;
		memcpy(in->head, p->head, LOGFILE_HASH_BYTES);
	}
	logger_batch_t t = *p;
	*p = *in;
	*in = t;
	in->len = 0;
	in->events = 0;
	return 0;
}

static void logger_retry_cb(uv_timer_t *t)
{
	logger_t *lg = t->data;
	lg->faulted = false; /* it is set again if this attempt fails too */
	logger_commit_kick(lg);
}

/* Drops every event not durable: a failed batch of an earlier session. */
static void logger_drop_unwritten(logger_t *lg)
{
	diag_warn("dropping %zu events of an earlier bus session that failed to be written",
	         lg->inflight.events + lg->pending.events);
	lg->inflight.len = lg->inflight.events = 0;
	lg->pending.len = lg->pending.events = 0;
	lg->accepted_seq = lg->lf.last_seq;
	memcpy(lg->accepted_chain, lg->lf.head_hash, LOGFILE_HASH_BYTES);
}

static void logger_write_failed(logger_t *lg)
{
	int err = lg->write_result;
	if (lg->inflight_session != lg->session) {
		logger_drop_unwritten(lg);
		return;
	}
	diag_error("writing %zu events (seq %llu..%llu) to the log failed: %s; retry in %llu ms",
	          lg->inflight.events, (unsigned long long)(lg->lf.last_seq + 1),
	          (unsigned long long)lg->inflight.last_seq, strerror(-err),
	          (unsigned long long)lg->retry_ms);
	lg->stat_write_errors++;
	if (logger_requeue(lg) < 0) {
		diag_error("out of memory keeping unwritten events");
		abort();
	}
	if (!lg->fault_sent) {
		char msg[128];
		snprintf(msg, sizeof(msg), "cannot write the event log: %s", strerror(-err));
		lg->commit_cbs.fault_cb(lg, msg);
		lg->fault_sent = true;
	}
	lg->faulted = true;
	lg->retry_timer.data = lg;
	uv_timer_start(&lg->retry_timer, logger_retry_cb, lg->retry_ms, 0);
	lg->retry_ms *= 2;
	if (lg->retry_ms > LOGGER_RETRY_MAX_MS)
		lg->retry_ms = LOGGER_RETRY_MAX_MS;
}

static void logger_write_done(logger_t *lg)
{
	logger_batch_t *in = &lg->inflight;
	if (logfile_commit(&lg->lf, in->buf, in->len, in->last_seq, in->head) < 0) {
		diag_error("out of memory indexing the log");
		abort();
	}
	if (lg->fault_sent)
		diag_info("the event log is writable again; durable up to %llu",
		         (unsigned long long)lg->lf.last_seq);
	lg->fault_sent = false;
	lg->retry_ms = LOGGER_RETRY_MIN_MS;
	lg->stat_batches++;
	lg->stat_events += in->events;
	lg->stat_write_ns += lg->write_ns;
	figures_hist_observe(&lg->fsync_us, lg->write_ns / 1000);
	figures_hist_observe(&lg->batch_events, in->events);
	diag_debug("batch: %zu events, %zu bytes, write+fdatasync %.3f ms, durable %llu",
	          in->events, in->len, (double)lg->write_ns / 1e6,
	          (unsigned long long)lg->lf.last_seq);
	in->len = 0;
	in->events = 0;
	lg->commit_cbs.durable_cb(lg);
}

static void logger_after_work_cb(uv_work_t *w, int status)
{
	logger_t *lg = w->data;
	assert(lg->busy && status == 0);
	lg->busy = false;
	bool written = lg->write_result == 0;
	const char *buf = lg->inflight.buf;
	size_t len = lg->inflight.len;
	if (written)
		logger_write_done(lg);
	else
		logger_write_failed(lg);
	lg->commit_cbs.written_cb(lg);
	logger_commit_kick(lg);
	/* After the durable went out and the next write started: the batch's
	 * bytes stay where they are until the next event is accepted (a kick only
	 * swaps the buffers), and no event is accepted before this returns. */
	if (written)
		lg->commit_cbs.batch_cb(lg, buf, len);
}

void logger_commit_kick(logger_t *lg)
{
	if (lg->busy || lg->faulted || lg->stopping || lg->pending.len == 0)
		return;
	uint64_t end = logfile_batch_end(&lg->lf, lg->lf.size_bytes, lg->pending.len);
	if (logger_prealloc_blocks(&lg->prealloc, end))
		return; /* zeros are being written there; kicked again after */
	logger_prealloc_kick(&lg->prealloc, end);
	logger_batch_t t = lg->inflight;
	lg->inflight = lg->pending;
	lg->pending = t;
	assert(lg->pending.len == 0);
	lg->at = lg->lf.size_bytes;
	lg->busy = true;
	lg->inflight_session = lg->session;
	lg->work.data = lg;
	int r = uv_queue_work(lg->loop, &lg->work, logger_work_cb, logger_after_work_cb);
	assert(r == 0);
	(void)r;
}

void logger_commit_forget(logger_t *lg)
{
	if (lg->pending.events > 0)
		diag_info("forgetting %zu events that were not yet durable (new bus session)",
		         lg->pending.events);
	lg->session++;
	lg->pending.len = 0;
	lg->pending.events = 0;
	uv_timer_stop(&lg->retry_timer);
	lg->faulted = false;
	lg->fault_sent = false;
	lg->retry_ms = LOGGER_RETRY_MIN_MS;
	const logger_batch_t *in = &lg->inflight;
	lg->accepted_seq = lg->busy ? in->last_seq : lg->lf.last_seq;
	memcpy(lg->accepted_chain, lg->busy ? in->head : lg->lf.head_hash, LOGFILE_HASH_BYTES);
}
