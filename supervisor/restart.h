/*
 * restart.h - the restart policy of one supervised process, as pure
 * arithmetic on times (no I/O, no clock): exponential back-off and restart
 * intensity, like an OTP supervisor's.
 *
 * Back-off: the first restart waits RESTART_DELAY_MIN_MS, each next one
 * twice as long, up to RESTART_DELAY_MAX_MS. A process that had been up for
 * RESTART_RESET_UP_MS or more when it died starts again from the minimum.
 *
 * Intensity: a process that dies more than RESTART_INTENSITY_MAX times
 * within RESTART_PERIOD_MS is not restarted; the supervisor gives up.
 */
#ifndef ESBANK_SUPERVISOR_RESTART_H
#define ESBANK_SUPERVISOR_RESTART_H

#include <stddef.h>
#include <stdint.h>

#define RESTART_DELAY_MIN_MS 100
#define RESTART_DELAY_MAX_MS 5000
#define RESTART_RESET_UP_MS 30000
#define RESTART_INTENSITY_MAX 10
#define RESTART_PERIOD_MS 60000

/*
 * Invariants: deaths_ms holds the times of the latest
 * min(ndeaths, RESTART_INTENSITY_MAX + 1) deaths, the oldest at
 * ndeaths % len once full; delay_min_ms <= delay_ms <= delay_max_ms.
 */
typedef struct {
	uint64_t deaths_ms[RESTART_INTENSITY_MAX + 1];
	uint64_t ndeaths;
	uint64_t delay_ms;     /* the delay of the next restart */
	uint64_t delay_min_ms;
	uint64_t delay_max_ms;
} restart_t;

/*
 * Starts a policy with no deaths. delay_max_ms is normally
 * RESTART_DELAY_MAX_MS; a smaller one (tests) also lowers the minimum.
 */
void restart_init(restart_t *r, uint64_t delay_max_ms);

/*
 * Records a death at now_ms (a monotonic clock) of a process that had been
 * up for up_ms. Returns the delay before starting it again, or -1 when it has
 * now died more than RESTART_INTENSITY_MAX times within RESTART_PERIOD_MS.
 */
int64_t restart_on_death(restart_t *r, uint64_t now_ms, uint64_t up_ms);

#endif
