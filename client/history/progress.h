/*
 * progress.h - a progress bar on stderr for the offline tools (replay,
 * audit, whatif). It appears only when stderr is a terminal and the work has
 * taken longer than PROGRESS_DELAY_MS, is redrawn at most every
 * PROGRESS_REDRAW_MS, and is erased when the work ends, so that short runs
 * and redirected runs print nothing extra.
 */
#ifndef ESBANK_CLIENT_PROGRESS_H
#define ESBANK_CLIENT_PROGRESS_H

#include <stdbool.h>
#include <stdint.h>

#define PROGRESS_DELAY_MS 1000
#define PROGRESS_REDRAW_MS 100
#define PROGRESS_CHECK_EVERY 4096 /* updates between two looks at the clock */
#define PROGRESS_BAR_WIDTH 30

typedef struct {
	const char *label;
	uint64_t total;      /* units of the whole work (bytes, events); 0: unknown */
	int64_t start_ms;
	int64_t drawn_ms;    /* last redraw, 0: never drawn */
	uint32_t calls;
	bool enabled;        /* stderr is a terminal */
} progress_t;

/* Starts measuring work of total units under label (a static string). */
void progress_start(progress_t *p, const char *label, uint64_t total);

/* Says that done units are finished; cheap enough to call per event. */
void progress_update(progress_t *p, uint64_t done);

/* Erases the bar if it was drawn. */
void progress_end(progress_t *p);

#endif
