/*
 * queue.h - the mailer's delivery scheduler: the spooled mails waiting in
 * DATA/mail/queue/, handed to the transport with at most inflight_max at
 * once, retried with exponential back-off and jitter, moved to
 * DATA/mail/dead/ when they fail for good or grow too old, and removed from
 * the spool once delivered.
 *
 * Per mail: spooled -> ready -> in flight -> sent (queue/<seq> unlinked,
 * queue/ fsync'd before the next dispatch) | dead (dead/<seq> written, then
 * queue/<seq> unlinked) | waiting (attempts + 1; ready again after
 * min(retry_max_ms, retry_min_ms * 2^(attempts-1)), jittered to 50..100%).
 * A mail is dead instead of waiting once now - accepted_ms > max_age_ms.
 *
 * The queue directory is rescanned every rescan_ms and on queue_rescan():
 * a file there that the queue does not know (a dead mail re-queued by
 * `esbank mail requeue`) is taken up.
 */
#ifndef ESBANK_MAILER_QUEUE_H
#define ESBANK_MAILER_QUEUE_H

#include "spool.h"
#include "transport.h"

#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#define QUEUE_BUCKETS 65536          /* hash of the known seqs (power of two) */
#define QUEUE_DISPATCH_BATCH_MAX 64  /* mails started per loop iteration */

typedef struct {
	uint64_t retry_min_ms;
	uint64_t retry_max_ms;
	uint64_t max_age_ms;
	uint64_t rescan_ms;
	uint32_t inflight_max;
} queue_config_t;

typedef struct queue_job queue_job_t;
struct queue_job {
	uint64_t seq;
	int64_t accepted_ms;   /* wall clock */
	uint64_t next_ms;      /* loop clock: ready again then */
	uint32_t attempts;
	queue_job_t *next, *prev; /* in ready or waiting, when not in flight */
	queue_job_t *hnext;
};

typedef struct {
	queue_job_t *head, *tail;
} queue_list_t;

typedef struct queue queue_t;
typedef void (*queue_cb)(queue_t *q);
/* A mail is done: delivered, or moved to dead/ (it will not be tried again). */
typedef void (*queue_done_cb)(queue_t *q, uint64_t seq);

struct queue {
	const queue_config_t *cfg;
	uv_loop_t *loop;
	spool_t *spool;
	transport_t *transport;
	uv_idle_t kick;
	uv_timer_t retry_timer, rescan_timer;
	queue_list_t ready, waiting;
	queue_job_t **buckets;
	size_t jobs, inflight;
	uint64_t sent, dead;
	uint64_t queued, retried; /* mails taken up, failed attempts to retry (figures) */
	bool stopping;
	queue_cb on_drained;   /* after queue_stop(), once nothing is in flight */
	queue_done_cb on_done; /* optional: each mail sent or dead, once its queue entry
	                        * is removed (the mailer's receipts) */
	void *data;
};

/* Sets up the queue and takes up the spooled mails. 0 or -errno. */
int queue_init(queue_t *q, uv_loop_t *loop, const queue_config_t *cfg, spool_t *spool,
               transport_t *transport);

/* True when seq is spooled and not yet sent or dead. */
bool queue_has(const queue_t *q, uint64_t seq);

/* Takes up a mail just spooled (queue/<seq>, fsync'd). 0 or -ENOMEM. */
int queue_add(queue_t *q, uint64_t seq, int64_t accepted_ms);

/* Takes up files in queue/ it does not know yet. 0 or -errno. */
int queue_rescan(queue_t *q);

/*
 * Starts no more deliveries; on_drained runs once those in flight are done
 * (at once when none is). Then the queue's handles are closed.
 */
void queue_stop(queue_t *q, queue_cb on_drained);

/* Frees the jobs (after queue_stop's on_drained, or when never started). */
void queue_free(queue_t *q);

#endif
