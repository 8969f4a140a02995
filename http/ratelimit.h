/*
 * ratelimit.h - counts login attempts per key (an account, an address, an
 * account at an address) in a fixed window and says when a key must wait.
 *
 * A key has failures (attempts that failed within the window) and attempts
 * in flight (started, not yet answered). Both count against the limit, so
 * that concurrent attempts cannot all pass the check before the first of
 * them fails: with limit n, at most n attempts of a key are ever evaluated
 * per window, however many arrive at once.
 *
 * A table holds RATELIMIT_SLOTS entries, found by a keyed 64-bit hash of the
 * key (SipHash with a random per-process key, so a client cannot aim
 * collisions) and linear probing over at most RATELIMIT_PROBES_MAX slots.
 * When every probed slot is in use by a live window, the oldest window is
 * dropped: the table never grows, and a flood of keys can only make the
 * limiter forget, never stop the gateway. An entry that was dropped with
 * attempts in flight forgets them too (ratelimit_end then does nothing).
 */
#ifndef ESBANK_HTTP_RATELIMIT_H
#define ESBANK_HTTP_RATELIMIT_H

#include <stdbool.h>
#include <stdint.h>

#define RATELIMIT_SLOTS 4096 /* power of two */
#define RATELIMIT_PROBES_MAX 8

typedef struct {
	uint64_t hash; /* 0: empty */
	uint64_t window_start_ms;
	uint32_t fails;
	uint32_t inflight; /* attempts begun and not yet ended */
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

/*
 * 0 when key may start an attempt now, else the milliseconds until it may:
 * the rest of the window when its failures reached the limit, busy_ms when
 * only attempts in flight fill it (they may yet succeed).
 */
uint64_t ratelimit_wait(const ratelimit_t *r, const char *key, uint64_t now_ms,
                        uint64_t busy_ms);

/* key's failures in the current window. */
uint32_t ratelimit_fails(const ratelimit_t *r, const char *key, uint64_t now_ms);

/* Counts one failure for key, with no attempt in flight. */
void ratelimit_fail(ratelimit_t *r, const char *key, uint64_t now_ms);

/* Starts an attempt of key: it holds a place until ratelimit_end(). */
void ratelimit_begin(ratelimit_t *r, const char *key, uint64_t now_ms);

/* Ends an attempt begun by ratelimit_begin(); failed counts it as a failure. */
void ratelimit_end(ratelimit_t *r, const char *key, uint64_t now_ms, bool failed);

/* Forgets key's failures (after a successful login); attempts in flight stay. */
void ratelimit_clear(ratelimit_t *r, const char *key);

#endif
