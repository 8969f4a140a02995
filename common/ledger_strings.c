/*
 * ledger_strings.c - the ledger's strings arena: chunks of at least
 * LEDGER_CHUNK_BYTES that the accounts' packed records (ledger_record.c)
 * are copied into, never freed one by one, all freed with the ledger.
 */
#include "ledger_impl.h"

#include <assert.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

int ledger_strings_reserve(ledger_t *l, size_t n)
{
	if (l->strings && l->strings->cap - l->strings->used >= n)
		return 0;
	size_t cap = n > LEDGER_CHUNK_BYTES ? n : LEDGER_CHUNK_BYTES;
	ledger_chunk_t *c = malloc(sizeof(*c) + cap);
	if (!c)
		return -ENOMEM;
	*c = (ledger_chunk_t){ .prev = l->strings, .used = 0, .cap = cap };
	l->strings = c;
	return 0;
}

uint8_t *ledger_strings_bytes(ledger_t *l, const uint8_t *p, size_t n)
{
	ledger_chunk_t *c = l->strings;
	assert(c && c->cap - c->used >= n);
	uint8_t *copy = (uint8_t *)c->bytes + c->used;
	memcpy(copy, p, n);
	c->used += n;
	return copy;
}

void ledger_strings_free(ledger_t *l)
{
	while (l->strings) {
		ledger_chunk_t *prev = l->strings->prev;
		free(l->strings);
		l->strings = prev;
	}
}
