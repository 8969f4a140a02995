/*
 * ledger_batch.c - the all-or-none check of an atomic "transfers" request:
 * every transfer checked, in order, against a scratch view of the state in
 * which the transfers before it have been applied, without changing the
 * state.
 *
 * The scratch view is two open-addressing tables, sized for the batch:
 * balance changes by account, and the keys the batch has used so far (by
 * index of their first item). A transfer is checked with ledger_check()
 * against the real state (its key, then the rules up to funds; funds are the
 * last rule) and then against the view: a key used earlier in the batch
 * makes it a duplicate of that item (same fingerprint) or key_conflict,
 * and funds are the account's balance plus the batch's changes so far.
 */
#include "ledger.h"

#include <assert.h>
#include <errno.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
	uint64_t account; /* 0: empty slot (account numbers have 16 digits) */
	int64_t delta;
} ledger_batch_delta_t;

typedef struct {
	ledger_batch_delta_t *deltas;
	uint32_t *keys; /* index + 1 of the item that used a key first; 0: empty */
	size_t mask;    /* both tables have mask + 1 slots */
	const ledger_cmd_t *cmds;
} ledger_batch_t;

static size_t ledger_batch_hash(const void *p, size_t n)
{
	uint64_t h = 1469598103934665603ULL; /* FNV-1a */
	const uint8_t *b = p;
	for (size_t i = 0; i < n; i++)
		h = (h ^ b[i]) * 1099511628211ULL;
	return (size_t)(h ^ (h >> 29));
}

static int64_t *ledger_batch_delta(ledger_batch_t *b, uint64_t account)
{
	size_t i = ledger_batch_hash(&account, sizeof(account)) & b->mask;
	while (b->deltas[i].account && b->deltas[i].account != account)
		i = (i + 1) & b->mask;
	b->deltas[i].account = account;
	return &b->deltas[i].delta;
}

/* The slot of cmd's key: empty or holding an earlier item with the same key. */
static uint32_t *ledger_batch_key(ledger_batch_t *b, const ledger_cmd_t *cmd)
{
	size_t i = ledger_batch_hash(cmd->key, cmd->key_len) & b->mask;
	for (;; i = (i + 1) & b->mask) {
		if (!b->keys[i])
			return &b->keys[i];
		const ledger_cmd_t *o = &b->cmds[b->keys[i] - 1];
		if (o->key_len == cmd->key_len && memcmp(o->key, cmd->key, cmd->key_len) == 0)
			return &b->keys[i];
	}
}

static proto_err_t ledger_batch_one(const ledger_t *l, ledger_batch_t *b, uint32_t i)
{
	const ledger_cmd_t *cmd = &b->cmds[i];
	uint32_t *slot = cmd->has_key ? ledger_batch_key(b, cmd) : NULL;
	if (slot && *slot) {
		const ledger_cmd_t *first = &b->cmds[*slot - 1];
		return sodium_memcmp(first->fp, cmd->fp, LEDGER_FP_BYTES) == 0
			       ? PROTO_OK /* a duplicate of an item before it */
			       : PROTO_E_KEY_CONFLICT;
	}
	proto_err_t e = ledger_check(l, cmd, NULL);
	if (e == PROTO_DUPLICATE)
		return PROTO_OK; /* answered with the original result, changes nothing */
	if (e != PROTO_OK && e != PROTO_E_INSUFFICIENT_FUNDS)
		return e;
	int64_t *from = ledger_batch_delta(b, cmd->account);
	if (ledger_find(l, cmd->account)->balance + *from < cmd->amount)
		return PROTO_E_INSUFFICIENT_FUNDS;
	*from -= cmd->amount;
	*ledger_batch_delta(b, cmd->to) += cmd->amount;
	if (slot)
		*slot = i + 1;
	return PROTO_OK;
}

proto_err_t ledger_check_batch(const ledger_t *l, const ledger_cmd_t *cmds, uint32_t n,
                               uint32_t *bad)
{
	assert(l && cmds && n <= LEDGER_BATCH_MAX);
	size_t slots = 64;
	while (slots < 4 * (size_t)n)
		slots *= 2;
	ledger_batch_t b = { .deltas = calloc(slots, sizeof(*b.deltas)),
		             .keys = calloc(slots, sizeof(*b.keys)),
		             .mask = slots - 1,
		             .cmds = cmds };
	proto_err_t e = b.deltas && b.keys ? PROTO_OK : PROTO_E_INTERNAL;
	uint32_t i = 0;
	for (; e == PROTO_OK && i < n; i++)
		e = ledger_batch_one(l, &b, i);
	if (bad)
		*bad = e == PROTO_OK ? UINT32_MAX : i - (b.deltas && b.keys);
	free(b.deltas);
	free(b.keys);
	return e;
}
