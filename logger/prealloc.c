/*
 * prealloc.c - zeroed space ahead of the log's end (see prealloc.h).
 */
#include "prealloc.h"

#include "diag.h"

#include <assert.h>
#include <string.h>

static void logger_prealloc_failed(logger_prealloc_t *pa, int err)
{
	diag_warn("cannot zero-fill space ahead of the event log's end: %s; appending without it",
	          strerror(-err));
	pa->off = true;
}

void logger_prealloc_init(logger_prealloc_t *pa, uv_loop_t *loop, const logfile_t *lf,
                          void (*done_cb)(logger_prealloc_t *pa), void *data)
{
	memset(pa, 0, sizeof(*pa));
	pa->loop = loop;
	pa->lf = lf;
	pa->done_cb = done_cb;
	pa->data = data;
	pa->zeroed_end = lf->file_bytes > lf->size_bytes ? lf->file_bytes : lf->size_bytes;
	pa->chunk = LOGGER_PREALLOC_FIRST_BYTES;
	pa->off = lf->version != LOGFILE_VERSION_2;
	if (pa->off || pa->zeroed_end - lf->size_bytes >= pa->chunk / 2)
		return;
	int r = logfile_zero_fill(lf, pa->zeroed_end, lf->size_bytes + pa->chunk);
	if (r < 0)
		logger_prealloc_failed(pa, r);
	else
		pa->zeroed_end = lf->size_bytes + pa->chunk;
}

bool logger_prealloc_blocks(const logger_prealloc_t *pa, uint64_t end)
{
	return pa->busy && end > pa->from;
}

static void logger_prealloc_work_cb(uv_work_t *w)
{
	logger_prealloc_t *pa = w->data;
	pa->result = logfile_zero_fill(pa->lf, pa->from, pa->to);
}

static void logger_prealloc_after_cb(uv_work_t *w, int status)
{
	logger_prealloc_t *pa = w->data;
	assert(pa->busy && status == 0);
	pa->busy = false;
	if (pa->result < 0)
		logger_prealloc_failed(pa, pa->result);
	else
		pa->zeroed_end = pa->to;
	pa->done_cb(pa);
}

void logger_prealloc_kick(logger_prealloc_t *pa, uint64_t end)
{
	if (pa->busy || pa->off)
		return;
	if (end > pa->zeroed_end)
		pa->zeroed_end = end; /* the batches outran the fills: appended */
	if (pa->zeroed_end - end >= pa->chunk / 2)
		return;
	if (pa->chunk < LOGGER_PREALLOC_CHUNK_MAX_BYTES)
		pa->chunk *= 2;
	pa->from = pa->zeroed_end;
	pa->to = end + pa->chunk;
	pa->busy = true;
	pa->work.data = pa;
	int r = uv_queue_work(pa->loop, &pa->work, logger_prealloc_work_cb, logger_prealloc_after_cb);
	assert(r == 0);
	(void)r;
}

void logger_prealloc_free(logger_prealloc_t *pa)
{
	assert(!pa->busy);
	if (pa->lf->fd < 0 || pa->lf->version != LOGFILE_VERSION_2)
		return;
	int r = logfile_trim(pa->lf);
	if (r < 0)
		diag_warn("cannot cut the zeroed space after the event log's end: %s (harmless)",
		          strerror(-r));
}
