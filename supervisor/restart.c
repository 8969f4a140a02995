/* restart.c - back-off and restart intensity (see restart.h). */
#include "restart.h"

#include <assert.h>

#define RESTART_RING_LEN (RESTART_INTENSITY_MAX + 1)

void restart_init(restart_t *r, uint64_t delay_max_ms)
{
	assert(delay_max_ms > 0);
	*r = (restart_t){ 0 };
	r->delay_max_ms = delay_max_ms;
	r->delay_min_ms = delay_max_ms < RESTART_DELAY_MIN_MS ? delay_max_ms
	                                                      : RESTART_DELAY_MIN_MS;
	r->delay_ms = r->delay_min_ms;
}

/* True when the death just recorded is the (MAX+1)th within the period. */
static int restart_too_often(const restart_t *r, uint64_t now_ms)
{
	if (r->ndeaths < RESTART_RING_LEN)
		return 0;
	uint64_t oldest = r->deaths_ms[r->ndeaths % RESTART_RING_LEN];
	return now_ms - oldest < RESTART_PERIOD_MS;
}

int64_t restart_on_death(restart_t *r, uint64_t now_ms, uint64_t up_ms)
{
	r->deaths_ms[r->ndeaths % RESTART_RING_LEN] = now_ms;
	r->ndeaths++;
	if (restart_too_often(r, now_ms))
		return -1;
	if (up_ms >= RESTART_RESET_UP_MS)
		r->delay_ms = r->delay_min_ms;
	uint64_t delay = r->delay_ms;
	r->delay_ms = delay * 2 < r->delay_max_ms ? delay * 2 : r->delay_max_ms;
	assert(delay >= r->delay_min_ms && delay <= r->delay_max_ms);
	return (int64_t)delay;
}
