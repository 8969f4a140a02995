/*
 * login.h - the gateway's login policy: which login attempts reach the bank,
 * and which wait (429 with Retry-After).
 *
 * Failures are counted per key in windows of LOGIN_FAIL_WINDOW_MS (15 min),
 * in three tables (ratelimit.h):
 *   - (account, address): at most LOGIN_FAILS_PER_PAIR_MAX (5). A user who
 *     mistypes, or one address guessing one account, stops here; the same
 *     account from another address is not affected.
 *   - account: at most LOGIN_FAILS_PER_ACCOUNT_MAX (10) from all addresses
 *     together: what protects one account from guessing spread over many
 *     addresses. When it is reached, the account is locked for everyone,
 *     even with the right password, for the rest of the window.
 *   - address: failures across all accounts. It never locks anyone out (one
 *     address may be a proxy for many customers), but after
 *     LOGIN_FAILS_PER_ADDR_MAX (100) failures the address is paced to one
 *     attempt every LOGIN_ADDR_PACE_MS (1 s): guessing one password across
 *     many accounts slows down, a correct login still gets through.
 * An attempt holds a place in the pair and account counts from the moment
 * it starts until its answer, so concurrent attempts cannot all pass before
 * the first one fails: at most LOGIN_FAILS_PER_PAIR_MAX attempts of one
 * account from one address are ever evaluated per window. When only
 * attempts in flight fill the count, the wait is LOGIN_BUSY_RETRY_MS.
 * A success clears the pair's and the account's failures (not the
 * address's); a wrong password is a failure; an attempt whose client left
 * before the answer stays a failure (the bank evaluated it); an attempt the
 * bank did not answer (timeout, no bus, overloaded) is not counted.
 * The tables forget the oldest keys when full (ratelimit.h), and a restart
 * of the gateway forgets everything.
 */
#ifndef ESBANK_HTTP_LOGIN_H
#define ESBANK_HTTP_LOGIN_H

#include "ratelimit.h"

#include <stdint.h>

#define LOGIN_FAILS_PER_PAIR_MAX 5
#define LOGIN_FAILS_PER_ACCOUNT_MAX 10
#define LOGIN_FAILS_PER_ADDR_MAX 100
#define LOGIN_FAIL_WINDOW_MS (15 * 60 * 1000)
#define LOGIN_ADDR_PACE_MS 1000
#define LOGIN_BUSY_RETRY_MS 1000
#define LOGIN_KEY_MAX 160 /* "<account> <address>", both cut to fit */

typedef struct {
	ratelimit_t by_pair;
	ratelimit_t by_account;
	ratelimit_t by_addr;
	ratelimit_t addr_pace; /* one attempt per LOGIN_ADDR_PACE_MS */
} login_limits_t;

typedef enum {
	LOGIN_OK,      /* the right password */
	LOGIN_FAILED,  /* a wrong one, or the client left before the answer */
	LOGIN_UNKNOWN, /* the bank did not evaluate it, or did not answer */
} login_outcome_t;

/* Allocates the tables. Returns 0 or -ENOMEM. */
int login_limits_init(login_limits_t *l);
void login_limits_free(login_limits_t *l);

/*
 * Starts a login attempt of account from addr: returns 0, and the attempt
 * holds its place until login_end(), or the milliseconds to wait (nothing
 * is held).
 */
uint64_t login_begin(login_limits_t *l, const char *account, const char *addr,
                     uint64_t now_ms);

/* Ends an attempt that login_begin() started, with its outcome. */
void login_end(login_limits_t *l, const char *account, const char *addr, uint64_t now_ms,
               login_outcome_t outcome);

/* Counts a failure that never reached the bank (no such account number). */
void login_fail_unsent(login_limits_t *l, const char *addr, uint64_t now_ms);

#endif
