/*
 * ratelimit.h - counts failed logins per key (an account number, a client
 * address) in a fixed window and says when a key must wait.
 *
 * A table holds RATELIMIT_SLOTS entries, found by a keyed 64-bit hash of the
 * key (SipHash with a random per-process key, so a client cannot aim
 * collisions) and linear probing over at most RATELIMIT_PROBES_MAX slots.
 * When every probed slot is in use by a live window, the oldest window is
 * dropped: the table never grows, and a flood of keys can only make the
 * limiter forget, never stop the gateway.
 */
#ifndef ESBANK_HTTP_RATELIMIT_H
#define ESBANK_HTTP_RATELIMIT_H

#include <stdint.h>

#define RATELIMIT_SLOTS 4096 /* power of two */
#define RATELIMIT_PROBES_MAX 8

/* The login policy of the gateway. */
#define LOGIN_FAILS_PER_ACCOUNT_MAX 5
#define LOGIN_FAILS_PER_ADDR_MAX 20
#define LOGIN_FAIL_WINDOW_MS (15 * 60 * 1000)

typedef struct {
	uint64_t hash; /* 0: empty */
	uint64_t window_start_ms;
	uint32_t fails;
} ratelimit_entry_t;

typedef struct {
	ratelimit_entry_t *slots;
	unsigned char hash_key[16];
	uint32_t fails_max;
	uint64_t window_ms;
} ratelimit_t;

/* Allocates the table. Returns 0 or -ENOMEM. */
int ratelimit_init(ratelimit_t *r, uint32_t fails_max, uint64_t window_ms);
void ratelimit_free(ratelimit_t *r);

/* 0 when key may try now, else the milliseconds until it may. */
uint64_t ratelimit_check(const ratelimit_t *r, const char *key, uint64_t now_ms);

/* Counts one failure for key. */
void ratelimit_fail(ratelimit_t *r, const char *key, uint64_t now_ms);

/* Forgets key's failures (after a successful login). */
void ratelimit_clear(ratelimit_t *r, const char *key);

#endif
