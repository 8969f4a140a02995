/* login.c - the login policy of the gateway (see login.h). */
#include "login.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>

int login_limits_init(login_limits_t *l)
{
	const uint64_t window_ms = LOGIN_FAIL_WINDOW_MS;
	if (ratelimit_init(&l->by_pair, LOGIN_FAILS_PER_PAIR_MAX, window_ms) < 0 ||
	    ratelimit_init(&l->by_account, LOGIN_FAILS_PER_ACCOUNT_MAX, window_ms) < 0 ||
	    ratelimit_init(&l->by_addr, LOGIN_FAILS_PER_ADDR_MAX, window_ms) < 0 ||
	    ratelimit_init(&l->addr_pace, 1, LOGIN_ADDR_PACE_MS) < 0) {
		login_limits_free(l);
		return -ENOMEM;
	}
	return 0;
}

void login_limits_free(login_limits_t *l)
{
	ratelimit_free(&l->addr_pace);
	ratelimit_free(&l->by_addr);
	ratelimit_free(&l->by_account);
	ratelimit_free(&l->by_pair);
}

static void login_pair_key(char out[LOGIN_KEY_MAX], const char *account, const char *addr)
{
	snprintf(out, LOGIN_KEY_MAX, "%.80s %.72s", account, addr);
}

static bool login_paced(const login_limits_t *l, const char *addr, uint64_t now_ms)
{
	return ratelimit_fails(&l->by_addr, addr, now_ms) >= LOGIN_FAILS_PER_ADDR_MAX;
}

static uint64_t max_u64(uint64_t a, uint64_t b)
{
	return a > b ? a : b;
}

uint64_t login_begin(login_limits_t *l, const char *account, const char *addr,
                     uint64_t now_ms)
{
	char pair[LOGIN_KEY_MAX];
	login_pair_key(pair, account, addr);
	bool paced = login_paced(l, addr, now_ms);
	uint64_t wait_ms = ratelimit_wait(&l->by_pair, pair, now_ms, LOGIN_BUSY_RETRY_MS);
	wait_ms = max_u64(wait_ms, ratelimit_wait(&l->by_account, account, now_ms,
	                                          LOGIN_BUSY_RETRY_MS));
	if (paced)
		wait_ms = max_u64(wait_ms, ratelimit_wait(&l->addr_pace, addr, now_ms, 0));
	if (wait_ms > 0)
		return wait_ms;
	ratelimit_begin(&l->by_pair, pair, now_ms);
	ratelimit_begin(&l->by_account, account, now_ms);
	if (paced)
		ratelimit_fail(&l->addr_pace, addr, now_ms); /* uses up this pace window */
	return 0;
}

void login_end(login_limits_t *l, const char *account, const char *addr, uint64_t now_ms,
               login_outcome_t outcome)
{
	char pair[LOGIN_KEY_MAX];
	login_pair_key(pair, account, addr);
	bool failed = outcome == LOGIN_FAILED;
	ratelimit_end(&l->by_pair, pair, now_ms, failed);
	ratelimit_end(&l->by_account, account, now_ms, failed);
	if (failed)
		ratelimit_fail(&l->by_addr, addr, now_ms);
	if (outcome == LOGIN_OK) {
		ratelimit_clear(&l->by_pair, pair);
		ratelimit_clear(&l->by_account, account);
	}
}

void login_fail_unsent(login_limits_t *l, const char *addr, uint64_t now_ms)
{
	ratelimit_fail(&l->by_addr, addr, now_ms);
}
