/*
 * prealloc.h - zeroed space ahead of the log's end (issue 15 item 3).
 *
 * A batch written into space that was zero-filled and fdatasync'd before
 * changes neither the file's size nor its block map, so its own fdatasync
 * commits only the data. This file keeps such space ahead of the end: one
 * synchronous fill at start, then fills in libuv's thread pool, growing
 * from LOGGER_PREALLOC_FIRST_BYTES to LOGGER_PREALLOC_CHUNK_MAX_BYTES. A
 * fill writes zeros, so no batch may be written where a fill is running:
 * logger_prealloc_blocks() says when a batch must wait for it. Readers take
 * the zeros as the end of the log (common/logfile.c); a clean stop cuts
 * them (logger_prealloc_free). A failed fill is reported once and fills
 * stop: the log works as well without them, only slower.
 *
 * Invariants (loop thread only, except from/to, read by the worker while
 * busy): the file holds only zeros from the log's end up to zeroed_end, or
 * is shorter; while busy, [from, to) is being zero-filled, from >= every
 * byte a batch in flight may write.
 */
#ifndef ESBANK_LOGGER_PREALLOC_H
#define ESBANK_LOGGER_PREALLOC_H

#include "logfile.h"

#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#define LOGGER_PREALLOC_FIRST_BYTES (1024 * 1024)
#define LOGGER_PREALLOC_CHUNK_MAX_BYTES (32 * 1024 * 1024)

typedef struct logger_prealloc logger_prealloc_t;

struct logger_prealloc {
	uv_loop_t *loop;
	const logfile_t *lf;
	uv_work_t work;
	bool busy;           /* a fill is running in the thread pool */
	bool off;            /* v1 log, or a fill failed: no more fills */
	uint64_t from, to;   /* the fill running */
	uint64_t zeroed_end; /* zeros from the log's end up to here */
	uint64_t chunk;      /* the next fill's length */
	int result;          /* set by the worker */
	void (*done_cb)(logger_prealloc_t *pa); /* after each fill (a batch may wait) */
	void *data;
};

/* Sets up pa for the open log lf and makes the first fill, synchronously
 * (before any batch is written). done_cb runs on the loop after each later
 * fill. Never fails: without space ahead the log is appended to as before. */
void logger_prealloc_init(logger_prealloc_t *pa, uv_loop_t *loop, const logfile_t *lf,
                          void (*done_cb)(logger_prealloc_t *pa), void *data);

/* True when a batch ending at end must wait for the fill running. */
bool logger_prealloc_blocks(const logger_prealloc_t *pa, uint64_t end);

/* Starts a fill when the space ahead of end (where the batches written or
 * in flight end) runs low. */
void logger_prealloc_kick(logger_prealloc_t *pa, uint64_t end);

/* After the loop stopped (no fill runs): cuts the zeros after the log's end. */
void logger_prealloc_free(logger_prealloc_t *pa);

#endif
