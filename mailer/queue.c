/*
 * queue.c - the mailer's delivery scheduler (see queue.h).
 */
#include "queue.h"
#include "diag.h"

#include <errno.h>
#include <inttypes.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define QUEUE_SHIFT_MAX 30

/* One delivery in flight: the transport's job first, so one cast finds the rest. */
typedef struct {
	transport_job_t tj;
	queue_t *q;
	queue_job_t *job;
} queue_delivery_t;

static int64_t queue_wall_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- lists and the hash ---- */

static void queue_push(queue_list_t *l, queue_job_t *j)
{
	j->next = NULL;
	j->prev = l->tail;
	if (l->tail)
		l->tail->next = j;
	else
		l->head = j;
	l->tail = j;
}

static void queue_unlink(queue_list_t *l, queue_job_t *j)
{
	if (j->prev)
		j->prev->next = j->next;
	else
		l->head = j->next;
	if (j->next)
		j->next->prev = j->prev;
	else
		l->tail = j->prev;
	j->next = j->prev = NULL;
}

static queue_job_t **queue_bucket(const queue_t *q, uint64_t seq)
{
	return &q->buckets[seq & (QUEUE_BUCKETS - 1)];
}

bool queue_has(const queue_t *q, uint64_t seq)
{
	for (queue_job_t *j = *queue_bucket(q, seq); j; j = j->hnext)
		if (j->seq == seq)
			return true;
	return false;
}

static void queue_forget(queue_t *q, queue_job_t *job)
{
	for (queue_job_t **p = queue_bucket(q, job->seq); *p; p = &(*p)->hnext) {
		if (*p == job) {
			*p = job->hnext;
			break;
		}
	}
	q->jobs--;
	free(job);
}

/* ---- dispatching ---- */

static void queue_on_kick(uv_idle_t *idle);

static void queue_kick(queue_t *q)
{
	if (!q->stopping)
		uv_idle_start(&q->kick, queue_on_kick);
}

static void queue_on_done(transport_job_t *tj, transport_status_t st, const char *reason);

/* Reads job's spool file and hands it to the transport. */
static void queue_start(queue_t *q, queue_job_t *job)
{
	queue_delivery_t *d = malloc(sizeof(*d));
	int rc = d ? spool_read(q->spool, SPOOL_QUEUE, job->seq, &d->tj.entry) : -ENOMEM;
	if (rc < 0) {
		diag_error("spool file of mail %" PRIu64 ": %s; left alone", job->seq, strerror(-rc));
		free(d);
		queue_forget(q, job);
		return;
	}
	d->tj.done = queue_on_done;
	d->q = q;
	d->job = job;
	q->inflight++;
	transport_send(q->transport, &d->tj);
}

static void queue_on_kick(uv_idle_t *idle)
{
	queue_t *q = idle->data;
	int rc = spool_sync(q->spool);
	if (rc < 0)
		diag_error("fsync of the spool: %s", strerror(-rc));
	for (size_t n = 0; n < QUEUE_DISPATCH_BATCH_MAX; n++) {
		if (q->stopping || !q->ready.head || q->inflight >= q->cfg->inflight_max) {
			uv_idle_stop(idle);
			return;
		}
		queue_job_t *job = q->ready.head;
		queue_unlink(&q->ready, job);
		queue_start(q, job);
	}
}

/* ---- outcomes ---- */

static void queue_on_retry_timer(uv_timer_t *t);

/* Arms the retry timer for the earliest waiting mail. */
static void queue_arm_retry(queue_t *q)
{
	uint64_t now = uv_now(q->loop), first = UINT64_MAX;
	for (queue_job_t *j = q->waiting.head; j; j = j->next)
		if (j->next_ms < first)
			first = j->next_ms;
	if (first == UINT64_MAX || q->stopping)
		uv_timer_stop(&q->retry_timer);
	else
		uv_timer_start(&q->retry_timer, queue_on_retry_timer, first > now ? first - now : 0,
		               0);
}

static void queue_on_retry_timer(uv_timer_t *t)
{
	queue_t *q = t->data;
	uint64_t now = uv_now(q->loop);
	queue_job_t *j = q->waiting.head;
	while (j) {
		queue_job_t *next = j->next;
		if (j->next_ms <= now) {
			queue_unlink(&q->waiting, j);
			queue_push(&q->ready, j);
		}
		j = next;
	}
	queue_arm_retry(q);
	queue_kick(q);
}

static uint64_t queue_backoff(const queue_config_t *cfg, uint32_t attempts)
{
	uint32_t shift = attempts > 0 ? attempts - 1 : 0;
	if (shift > QUEUE_SHIFT_MAX)
		shift = QUEUE_SHIFT_MAX;
	uint64_t d = cfg->retry_min_ms << shift;
	if (d > cfg->retry_max_ms || d >> shift != cfg->retry_min_ms)
		d = cfg->retry_max_ms;
	uint64_t half = d / 2;
	uint32_t span = half + 1 > UINT32_MAX ? UINT32_MAX : (uint32_t)(half + 1);
	return d - half + randombytes_uniform(span); /* 50..100% of d */
}

static void queue_bury(queue_t *q, queue_job_t *job, spool_entry_t *e, const char *reason)
{
	int rc = spool_bury(q->spool, e, reason, job->attempts);
	if (rc < 0) {
		diag_error("moving mail %" PRIu64 " to dead/: %s; retried", job->seq, strerror(-rc));
		job->next_ms = uv_now(q->loop) + q->cfg->retry_max_ms;
		queue_push(&q->waiting, job);
		queue_arm_retry(q);
		return;
	}
	diag_warn("mail %" PRIu64 " to %s is dead: %s", job->seq, e->to, e->reason);
	q->dead++;
	uint64_t seq = job->seq;
	queue_forget(q, job);
	if (q->on_done)
		q->on_done(q, seq);
}

static void queue_retry(queue_t *q, queue_job_t *job, spool_entry_t *e, const char *reason)
{
	int64_t age = queue_wall_ms() - job->accepted_ms;
	if (age > (int64_t)q->cfg->max_age_ms) {
		char why[SPOOL_REASON_BYTES_MAX];
		snprintf(why, sizeof(why), "gave up after %" PRIu32 " attempts in %" PRId64
		         " s; last: %s", job->attempts, age / 1000, reason);
		queue_bury(q, job, e, why);
		return;
	}
	uint64_t delay = queue_backoff(q->cfg, job->attempts);
	q->retried++;
	diag_info("mail %" PRIu64 ": %s; attempt %" PRIu32 " failed, next in %" PRIu64 " ms",
	         job->seq, reason, job->attempts, delay);
	job->next_ms = uv_now(q->loop) + delay;
	queue_push(&q->waiting, job);
	queue_arm_retry(q);
}

static void queue_on_done(transport_job_t *tj, transport_status_t st, const char *reason)
{
	queue_delivery_t *d = (queue_delivery_t *)tj;
	queue_t *q = d->q;
	queue_job_t *job = d->job;
	q->inflight--;
	job->attempts++;
	uint64_t seq = job->seq;
	if (st == TRANSPORT_SENT) {
		int rc = spool_remove(q->spool, job->seq);
		if (rc < 0)
			diag_error("removing sent mail %" PRIu64 " from the queue: %s", job->seq,
			          strerror(-rc));
		q->sent++;
		queue_forget(q, job);
		if (q->on_done)
			q->on_done(q, seq);
	} else if (st == TRANSPORT_FAILED) {
		queue_bury(q, job, &tj->entry, reason);
	} else {
		queue_retry(q, job, &tj->entry, reason);
	}
	free(d);
	queue_kick(q);
	if (q->stopping && q->inflight == 0 && q->on_drained)
		q->on_drained(q);
}

/* ---- taking up spooled mails ---- */

int queue_add(queue_t *q, uint64_t seq, int64_t accepted_ms)
{
	queue_job_t *job = calloc(1, sizeof(*job));
	if (!job)
		return -ENOMEM;
	job->seq = seq;
	job->accepted_ms = accepted_ms;
	queue_job_t **b = queue_bucket(q, seq);
	job->hnext = *b;
	*b = job;
	q->jobs++;
	q->queued++;
	queue_push(&q->ready, job);
	queue_kick(q);
	return 0;
}

/* Takes up queue/<seq> when unknown; a dead copy of it is removed. */
static int queue_take_file(queue_t *q, uint64_t seq, spool_entry_t *e)
{
	if (queue_has(q, seq))
		return 0;
	int rc = spool_read(q->spool, SPOOL_QUEUE, seq, e);
	if (rc == -ENOENT)
		return 0; /* sent or moved meanwhile */
	if (rc < 0) {
		diag_error("queue/%" PRIu64 ": %s; left alone", seq, strerror(-rc));
		return 0;
	}
	if (spool_exists(q->spool, SPOOL_DEAD, seq)) {
		char name[32];
		snprintf(name, sizeof(name), "%" PRIu64, seq);
		unlinkat(q->spool->dead_fd, name, 0);
	}
	return queue_add(q, seq, e->accepted_ms);
}

int queue_rescan(queue_t *q)
{
	uint64_t *seqs;
	size_t n;
	int rc = spool_list(q->spool, SPOOL_QUEUE, &seqs, &n);
	spool_entry_t *e = rc == 0 ? malloc(sizeof(*e)) : NULL;
	if (rc == 0 && !e)
		rc = -ENOMEM;
	size_t before = q->jobs;
	for (size_t i = 0; rc == 0 && i < n; i++)
		rc = queue_take_file(q, seqs[i], e);
	if (q->jobs > before)
		diag_info("took up %zu spooled mails", q->jobs - before);
	free(e);
	free(seqs);
	return rc;
}

static void queue_on_rescan(uv_timer_t *t)
{
	queue_t *q = t->data;
	int rc = queue_rescan(q);
	if (rc < 0)
		diag_error("rescanning the mail queue: %s", strerror(-rc));
}

int queue_init(queue_t *q, uv_loop_t *loop, const queue_config_t *cfg, spool_t *spool,
               transport_t *transport)
{
	memset(q, 0, sizeof(*q));
	q->cfg = cfg;
	q->loop = loop;
	q->spool = spool;
	q->transport = transport;
	q->buckets = calloc(QUEUE_BUCKETS, sizeof(*q->buckets));
	if (!q->buckets)
		return -ENOMEM;
	uv_idle_init(loop, &q->kick);
	uv_timer_init(loop, &q->retry_timer);
	uv_timer_init(loop, &q->rescan_timer);
	q->kick.data = q->retry_timer.data = q->rescan_timer.data = q;
	int rc = queue_rescan(q);
	if (rc == 0 && cfg->rescan_ms > 0)
		uv_timer_start(&q->rescan_timer, queue_on_rescan, cfg->rescan_ms, cfg->rescan_ms);
	return rc;
}

void queue_stop(queue_t *q, queue_cb on_drained)
{
	q->stopping = true;
	q->on_drained = on_drained;
	uv_idle_stop(&q->kick);
	uv_timer_stop(&q->retry_timer);
	uv_timer_stop(&q->rescan_timer);
	uv_close((uv_handle_t *)&q->kick, NULL);
	uv_close((uv_handle_t *)&q->retry_timer, NULL);
	uv_close((uv_handle_t *)&q->rescan_timer, NULL);
	int rc = spool_sync(q->spool);
	if (rc < 0)
		diag_error("fsync of the spool: %s", strerror(-rc));
	if (q->inflight == 0 && on_drained)
		on_drained(q);
}

void queue_free(queue_t *q)
{
	for (size_t i = 0; q->buckets && i < QUEUE_BUCKETS; i++) {
		queue_job_t *j = q->buckets[i];
		while (j) {
			queue_job_t *next = j->hnext;
			free(j);
			j = next;
		}
	}
	free(q->buckets);
	q->buckets = NULL;
}
