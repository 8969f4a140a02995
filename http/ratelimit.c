/* ratelimit.c - login attempts counted in fixed windows (see ratelimit.h). */
#include "ratelimit.h"

#include <assert.h>
#include <errno.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>

int ratelimit_init(ratelimit_t *r, uint32_t fails_max, uint64_t window_ms)
{
	assert(fails_max > 0 && window_ms > 0);
	r->slots = calloc(RATELIMIT_SLOTS, sizeof(*r->slots));
	if (!r->slots)
		return -ENOMEM;
	randombytes_buf(r->hash_key, sizeof(r->hash_key));
	r->fails_max = fails_max;
	r->window_ms = window_ms;
	return 0;
}

void ratelimit_free(ratelimit_t *r)
{
	free(r->slots);
	r->slots = NULL;
}

static uint64_t ratelimit_hash(const ratelimit_t *r, const char *key)
{
	unsigned char out[crypto_shorthash_BYTES];
	crypto_shorthash(out, (const unsigned char *)key, strlen(key), r->hash_key);
	uint64_t h;
	memcpy(&h, out, sizeof(h));
	return h ? h : 1;
}

static bool ratelimit_in_window(const ratelimit_t *r, const ratelimit_entry_t *e,
                                uint64_t now_ms)
{
	return now_ms < e->window_start_ms + r->window_ms;
}

/* An entry is kept while its window lasts or an attempt of it is in flight. */
static bool ratelimit_live(const ratelimit_t *r, const ratelimit_entry_t *e, uint64_t now_ms)
{
	return e->hash != 0 && (e->inflight > 0 || ratelimit_in_window(r, e, now_ms));
}

/* The entry for h, or NULL. */
static ratelimit_entry_t *ratelimit_find(const ratelimit_t *r, uint64_t h)
{
	for (uint32_t i = 0; i < RATELIMIT_PROBES_MAX; i++) {
		ratelimit_entry_t *e = &r->slots[(h + i) & (RATELIMIT_SLOTS - 1)];
		if (e->hash == h)
			return e;
	}
	return NULL;
}

/* The live entry for key, or NULL. */
static const ratelimit_entry_t *ratelimit_lookup(const ratelimit_t *r, const char *key,
                                                 uint64_t now_ms)
{
	const ratelimit_entry_t *e = ratelimit_find(r, ratelimit_hash(r, key));
	return e && ratelimit_live(r, e, now_ms) ? e : NULL;
}

/* A slot for a new entry: an empty or expired one, else the oldest probed. */
static ratelimit_entry_t *ratelimit_victim(ratelimit_t *r, uint64_t h, uint64_t now_ms)
{
	ratelimit_entry_t *oldest = NULL;
	for (uint32_t i = 0; i < RATELIMIT_PROBES_MAX; i++) {
		ratelimit_entry_t *e = &r->slots[(h + i) & (RATELIMIT_SLOTS - 1)];
		if (!ratelimit_live(r, e, now_ms))
			return e;
		if (!oldest || e->window_start_ms < oldest->window_start_ms)
			oldest = e;
	}
	return oldest;
}

/* key's entry in a current window: found, or made (dropping another). */
static ratelimit_entry_t *ratelimit_get(ratelimit_t *r, const char *key, uint64_t now_ms)
{
	uint64_t h = ratelimit_hash(r, key);
	ratelimit_entry_t *e = ratelimit_find(r, h);
	if (e && !ratelimit_live(r, e, now_ms))
		e->hash = 0;
	if (!e || e->hash == 0) {
		e = ratelimit_victim(r, h, now_ms);
		e->hash = h;
		e->window_start_ms = now_ms;
		e->fails = 0;
		e->inflight = 0;
	} else if (!ratelimit_in_window(r, e, now_ms)) {
		e->window_start_ms = now_ms; /* a new window; attempts in flight stay */
		e->fails = 0;
	}
	return e;
}

uint32_t ratelimit_fails(const ratelimit_t *r, const char *key, uint64_t now_ms)
{
	const ratelimit_entry_t *e = ratelimit_lookup(r, key, now_ms);
	return e && ratelimit_in_window(r, e, now_ms) ? e->fails : 0;
}

uint64_t ratelimit_wait(const ratelimit_t *r, const char *key, uint64_t now_ms,
                        uint64_t busy_ms)
{
	const ratelimit_entry_t *e = ratelimit_lookup(r, key, now_ms);
	if (!e)
		return 0;
	uint64_t fails = ratelimit_in_window(r, e, now_ms) ? e->fails : 0;
	if (fails >= r->fails_max)
		return e->window_start_ms + r->window_ms - now_ms;
	return fails + e->inflight >= r->fails_max ? busy_ms : 0;
}

void ratelimit_fail(ratelimit_t *r, const char *key, uint64_t now_ms)
{
	ratelimit_entry_t *e = ratelimit_get(r, key, now_ms);
	if (e->fails < UINT32_MAX)
		e->fails++;
}

void ratelimit_begin(ratelimit_t *r, const char *key, uint64_t now_ms)
{
	ratelimit_entry_t *e = ratelimit_get(r, key, now_ms);
	assert(e->inflight < UINT32_MAX);
	e->inflight++;
}

void ratelimit_end(ratelimit_t *r, const char *key, uint64_t now_ms, bool failed)
{
	ratelimit_entry_t *e = ratelimit_find(r, ratelimit_hash(r, key));
	if (!e || e->inflight == 0)
		return; /* dropped for a newer key while in flight */
	e->inflight--;
	if (failed)
		ratelimit_fail(r, key, now_ms);
}

void ratelimit_clear(ratelimit_t *r, const char *key)
{
	ratelimit_entry_t *e = ratelimit_find(r, ratelimit_hash(r, key));
	if (!e)
		return;
	e->fails = 0;
	if (e->inflight == 0)
		e->hash = 0;
}
