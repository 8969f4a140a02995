/*
 * mix.c - the ops of `esbank bench` and the choice of each load request
 * (see mix.h).
 */
#include "mix.h"

#include "diag.h"

#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const mix_op_names[] = {"transfer", "withdraw", "get_account", "open_account",
					   "verify_account"};

const char *mix_op_name(bench_op_t op)
{
	return mix_op_names[op];
}

int mix_parse(mix_t *m, const char *text)
{
	char buf[256], *save = NULL;

	if (snprintf(buf, sizeof(buf), "%s", text) >= (int)sizeof(buf))
		goto bad;
	for (char *item = strtok_r(buf, ",", &save); item; item = strtok_r(NULL, ",", &save)) {
		char *eq = strchr(item, '='), *end;
		int op = 0;
		if (!eq)
			goto bad;
		*eq = '\0';
		while (op < BENCH_LOAD_OPS && strcmp(item, mix_op_names[op]) != 0)
			op++;
		unsigned long w = strtoul(eq + 1, &end, 10);
		if (op == BENCH_LOAD_OPS || end == eq + 1 || *end || w > BENCH_WEIGHT_MAX)
			goto bad;
		m->weights[op] = (unsigned)w;
	}
	for (int op = 0; op < BENCH_LOAD_OPS; op++)
		m->weight_total += m->weights[op];
	if (m->weight_total > 0)
		return 0;
bad:
	fprintf(stderr,
		"esbank: --mix wants op=weight pairs separated by commas, ops "
		"transfer, withdraw, get_account (weights 0 to %d, not all 0), not '%s'\n",
		BENCH_WEIGHT_MAX, text);
	return EXIT_USAGE;
}

void mix_seed(uint64_t *rng)
{
	randombytes_buf(rng, sizeof(*rng));
	*rng |= 1; /* xorshift never leaves 0 */
}

/* xorshift64*: fast, and good enough to pick accounts and ops. */
static uint64_t mix_rand(uint64_t *rng)
{
	*rng ^= *rng >> 12;
	*rng ^= *rng << 25;
	*rng ^= *rng >> 27;
	return *rng * 2685821657736338717ull;
}

static bench_op_t mix_pick_op(const mix_t *m, uint64_t *rng)
{
	unsigned r = (unsigned)(mix_rand(rng) % m->weight_total);
	int op = 0;

	while (r >= m->weights[op])
		r -= m->weights[op++];
	return (bench_op_t)op;
}

void mix_next(const mix_t *m, uint64_t *rng, uint64_t accounts, mix_req_t *out)
{
	*out = (mix_req_t){.op = mix_pick_op(m, rng)};
	out->from = mix_rand(rng) % accounts;
	if (out->op == BENCH_OP_TRANSFER) {
		out->to = mix_rand(rng) % (accounts - 1);
		out->to += out->to >= out->from;
		out->amount = 1 + (int64_t)(mix_rand(rng) % BENCH_TRANSFER_CENTS_MAX);
	} else if (out->op == BENCH_OP_WITHDRAW) {
		out->amount = BENCH_WITHDRAW_CENTS;
	}
}
