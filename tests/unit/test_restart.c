/* test_restart.c - esbankd's restart policy: back-off and restart intensity. */
#include "restart.h"

#include <criterion/criterion.h>

Test(restart, back_off_doubles_up_to_the_maximum)
{
	restart_t r;
	restart_init(&r, RESTART_DELAY_MAX_MS);
	int64_t expect[] = { 100, 200, 400, 800, 1600, 3200, 5000, 5000 };
	/* deaths far apart (no intensity), each after a short life */
	for (size_t i = 0; i < sizeof(expect) / sizeof(expect[0]); i++)
		cr_assert_eq(restart_on_death(&r, 1000000 + i * RESTART_PERIOD_MS, 10), expect[i],
		             "death %zu", i);
}

Test(restart, a_long_life_resets_the_delay)
{
	restart_t r;
	restart_init(&r, RESTART_DELAY_MAX_MS);
	cr_assert_eq(restart_on_death(&r, 1000, 10), 100);
	cr_assert_eq(restart_on_death(&r, 2000, 10), 200);
	cr_assert_eq(restart_on_death(&r, 3000, 10), 400);
	cr_assert_eq(restart_on_death(&r, 40000, RESTART_RESET_UP_MS), 100);
	cr_assert_eq(restart_on_death(&r, 41000, RESTART_RESET_UP_MS - 1), 200);
}

Test(restart, more_than_ten_deaths_in_a_minute_give_up)
{
	restart_t r;
	restart_init(&r, RESTART_DELAY_MAX_MS);
	for (int i = 0; i < RESTART_INTENSITY_MAX; i++)
		cr_assert_geq(restart_on_death(&r, 1000 + (uint64_t)i * 100, 10), 0, "death %d", i);
	cr_assert_eq(restart_on_death(&r, 1000 + RESTART_INTENSITY_MAX * 100, 10), -1);
}

Test(restart, ten_deaths_spread_over_more_than_a_minute_go_on)
{
	restart_t r;
	restart_init(&r, RESTART_DELAY_MAX_MS);
	uint64_t step = RESTART_PERIOD_MS / RESTART_INTENSITY_MAX + 1;
	for (int i = 0; i < 3 * RESTART_INTENSITY_MAX; i++)
		cr_assert_geq(restart_on_death(&r, 1000 + (uint64_t)i * step, 10), 0, "death %d", i);
}

Test(restart, a_smaller_maximum_caps_every_delay)
{
	restart_t r;
	restart_init(&r, 20);
	for (int i = 0; i < 5; i++) {
		int64_t d = restart_on_death(&r, 1000000 + (uint64_t)i * RESTART_PERIOD_MS, 10);
		cr_assert(d >= 0 && d <= 20, "delay %lld", (long long)d);
	}
}
