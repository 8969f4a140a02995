/*
 * indexjob.c - the account index of a long log is opened in the thread pool
 * after the start, so that checking, rebuilding and catching it up (seconds
 * for millions of events: a missing index is written again whole) is not on
 * the way from start to live.
 *
 * A log of fewer than LOGGER_INDEX_SYNC_EVENTS_MAX events: the index is
 * opened before the logger listens, as it always was. A longer one: the job
 * waits for the first append (the group is live), the first statement, or
 * LOGGER_INDEX_WAIT_MS after the start, whichever comes first, so that it
 * does not take the CPU the replay needs (the logger does not know when the
 * replay ends: the bus reads ahead of the resolver); then index_open() runs
 * in a worker on a view of the
 * log (logfile_view) while the loop goes on appending. Back on the loop
 * thread the events made durable meanwhile are folded in (in another worker
 * round while more than LOGGER_INDEX_LOOP_EVENTS_MAX of them), and the index
 * is handed to statement.c. Until then statements answer unavailable. A
 * stop while the job waits: it never starts (the files stay as they are, for
 * the next start); while it runs: the stop waits for it.
 */
#include "logger.h"
#include "diag.h"

#include <string.h>

static void logger_indexjob_work_cb(uv_work_t *w)
{
	logger_indexjob_t *j = w->data;
	j->result = j->opened ? index_catch_up(&j->ix, &j->view, &j->rep)
	                      : index_open(&j->ix, j->dir, &j->view, &j->rep);
}

static void logger_indexjob_after_cb(uv_work_t *w, int status);

/* Queues a worker round on a view of the log as it is now: 0 or -errno. */
static int logger_indexjob_queue(logger_t *lg)
{
	logger_indexjob_t *j = &lg->indexjob;
	int r = logfile_view(&lg->lf, &j->view);
	if (r < 0)
		return r;
	j->work.data = j;
	r = uv_queue_work(lg->loop, &j->work, logger_indexjob_work_cb, logger_indexjob_after_cb);
	if (r < 0)
		logfile_view_free(&j->view);
	return r;
}

/* The index is open and caught up to the view: the rest on the loop, or
 * another round. */
static void logger_indexjob_finish(logger_t *lg)
{
	logger_indexjob_t *j = &lg->indexjob;
	int r = 0;
	if (lg->lf.last_seq - j->ix.last_seq > LOGGER_INDEX_LOOP_EVENTS_MAX && !lg->stopping) {
		r = logger_indexjob_queue(lg);
		if (r == 0)
			return;
	}
	if (r == 0)
		r = index_catch_up(&j->ix, &lg->lf, &j->rep);
	if (r < 0)
		index_close(&j->ix);
	j->state = LOGGER_INDEX_DONE;
	if (logger_index_adopt(lg, j->dir, r, &j->ix, &j->rep) == 0)
		diag_info("account index ready, %.3f s after it was started in the thread pool",
		         (double)(uv_hrtime() - j->t0_ns) / 1e9);
}

static void logger_indexjob_after_cb(uv_work_t *w, int status)
{
	logger_t *lg = ((logger_indexjob_t *)w->data)->lg;
	logger_indexjob_t *j = &lg->indexjob;
	logfile_view_free(&j->view);
	int r = status < 0 ? status : j->result;
	if (r < 0) {
		if (j->opened)
			index_close(&j->ix); /* index_open closes it on error */
		j->state = LOGGER_INDEX_DONE;
		logger_index_adopt(lg, j->dir, r, &j->ix, &j->rep);
		return;
	}
	j->opened = true;
	logger_indexjob_finish(lg);
}

void logger_indexjob_kick(logger_t *lg)
{
	logger_indexjob_t *j = &lg->indexjob;
	if (j->state != LOGGER_INDEX_WAITING || lg->stopping)
		return;
	uv_timer_stop(&j->timer);
	j->state = LOGGER_INDEX_RUNNING;
	j->t0_ns = uv_hrtime();
	int r = logger_indexjob_queue(lg);
	if (r < 0) {
		j->state = LOGGER_INDEX_DONE;
		logger_index_adopt(lg, j->dir, r, &j->ix, &j->rep);
	}
}

static void logger_indexjob_timer_cb(uv_timer_t *t)
{
	logger_indexjob_kick(t->data);
}

void logger_indexjob_init(logger_t *lg, const char *dir)
{
	logger_indexjob_t *j = &lg->indexjob;
	memset(j, 0, sizeof(*j));
	j->lg = lg;
	j->dir = dir;
	if (lg->lf.last_seq < LOGGER_INDEX_SYNC_EVENTS_MAX) {
		j->state = LOGGER_INDEX_DONE;
		logger_index_open(lg, dir);
		return;
	}
	j->state = LOGGER_INDEX_WAITING;
	j->timer.data = lg;
	uv_timer_init(lg->loop, &j->timer);
	j->timer_on = true;
	uv_timer_start(&j->timer, logger_indexjob_timer_cb, LOGGER_INDEX_WAIT_MS, 0);
	diag_info("the account index is opened in the thread pool at the first append, "
	         "statement or in %d ms (statements are unavailable until then)",
	         LOGGER_INDEX_WAIT_MS);
}

void logger_indexjob_stop(logger_t *lg)
{
	logger_indexjob_t *j = &lg->indexjob;
	if (j->state == LOGGER_INDEX_WAITING)
		j->state = LOGGER_INDEX_DONE; /* never started: the files stay as they are */
	if (j->timer_on)
		uv_close((uv_handle_t *)&j->timer, NULL);
	j->timer_on = false;
}
