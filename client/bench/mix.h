/*
 * mix.h - the ops of `esbank bench` and the choice of each load request:
 * which op (in the --mix proportions), on which accounts, for how much.
 * Pure functions over a random state that the caller owns.
 */
#ifndef ESBANK_CLIENT_BENCH_MIX_H
#define ESBANK_CLIENT_BENCH_MIX_H

#include <stdint.h>

#define BENCH_WEIGHT_MAX         1000000
#define BENCH_ACCOUNT_BYTES      16
#define BENCH_TRANSFER_CENTS_MAX 100
#define BENCH_WITHDRAW_CENTS     1

/* The load ops first (the ones --mix weighs), then the two of the setup. */
typedef enum {
	BENCH_OP_TRANSFER,
	BENCH_OP_WITHDRAW,
	BENCH_OP_GET_ACCOUNT,
	BENCH_LOAD_OPS,
	BENCH_OP_OPEN = BENCH_LOAD_OPS,
	BENCH_OP_VERIFY,
} bench_op_t;

/* An account number: 16 digits and a NUL. */
typedef char bench_number_t[BENCH_ACCOUNT_BYTES + 1];

/* The --mix weights; weight_total > 0 once parsed. */
typedef struct {
	unsigned weights[BENCH_LOAD_OPS];
	unsigned weight_total;
} mix_t;

/* One load request: op on account from (and to, for a transfer). */
typedef struct {
	bench_op_t op;
	uint64_t from, to;
	int64_t amount; /* cents; transfer and withdraw */
} mix_req_t;

/* The wire name of op ("transfer", ..., "open_account", "verify_account"). */
const char *mix_op_name(bench_op_t op);

/*
 * Parses "op=weight,op=weight" into *m; ops left out get weight 0. Returns 0,
 * or EXIT_USAGE after saying why on stderr.
 */
int mix_parse(mix_t *m, const char *text);

/* Seeds the random state *rng (never 0). */
void mix_seed(uint64_t *rng);

/*
 * Chooses the next load request among `accounts` accounts (2 or more when
 * transfers have a weight), advancing *rng.
 */
void mix_next(const mix_t *m, uint64_t *rng, uint64_t accounts, mix_req_t *out);

#endif
