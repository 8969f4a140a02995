/*
 * progress.c - the progress bar (see progress.h). The line is
 *   "audit  [##########....................]  33%  12.3 s"
 * written with a carriage return and erased with "\r\033[K".
 */
#include "progress.h"

#include <stdio.h>
#include <time.h>
#include <unistd.h>

static int64_t progress_now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void progress_start(progress_t *p, const char *label, uint64_t total)
{
	*p = (progress_t){ .label = label, .total = total, .start_ms = progress_now_ms(),
			   .enabled = isatty(STDERR_FILENO) == 1 };
}

static void progress_draw(const progress_t *p, uint64_t done, int64_t now_ms)
{
	char bar[PROGRESS_BAR_WIDTH + 1];
	unsigned pct = p->total ? (unsigned)(done >= p->total ? 100 : done * 100 / p->total) : 0;
	int fill = (int)(pct * PROGRESS_BAR_WIDTH / 100);

	for (int i = 0; i < PROGRESS_BAR_WIDTH; i++)
		bar[i] = i < fill ? '#' : '.';
	bar[PROGRESS_BAR_WIDTH] = '\0';
	fprintf(stderr, "\r%-7s [%s] %3u%%  %.1f s", p->label, bar, pct,
		(double)(now_ms - p->start_ms) / 1000.0);
	fflush(stderr);
}

void progress_update(progress_t *p, uint64_t done)
{
	if (!p->enabled || ++p->calls % PROGRESS_CHECK_EVERY != 0)
		return;
	int64_t now_ms = progress_now_ms();
	if (now_ms - p->start_ms < PROGRESS_DELAY_MS || now_ms - p->drawn_ms < PROGRESS_REDRAW_MS)
		return;
	progress_draw(p, done, now_ms);
	p->drawn_ms = now_ms;
}

void progress_end(progress_t *p)
{
	if (p->drawn_ms)
		fputs("\r\033[K", stderr);
	fflush(stderr);
	p->drawn_ms = 0;
}
