/* fifo.c - the bus's growable rings of fixed-size items, and owned bytes. */
#include "fifo.h"

#include <assert.h>
#include <stdlib.h>
#include <string.h>

#define FIFO_CAP_MIN 64

void bus_fifo_init(bus_fifo_t *f, size_t item_size)
{
	memset(f, 0, sizeof(*f));
	f->item_size = item_size;
}

static int bus_fifo_grow(bus_fifo_t *f)
{
	size_t cap = f->cap ? f->cap * 2 : FIFO_CAP_MIN;
	char *items = malloc(cap * f->item_size);
	if (!items)
		return -1;
	for (size_t i = 0; i < f->count; i++)
		memcpy(items + i * f->item_size, bus_fifo_peek(f, i), f->item_size);
	free(f->items);
	f->items = items;
	f->cap = cap;
	f->head = 0;
	return 0;
}

void *bus_fifo_push(bus_fifo_t *f)
{
	if (f->count == f->cap && bus_fifo_grow(f) < 0)
		return NULL;
	void *slot = f->items + ((f->head + f->count) % f->cap) * f->item_size;
	f->count++;
	memset(slot, 0, f->item_size);
	assert(f->count <= f->cap);
	return slot;
}

void bus_fifo_pop(bus_fifo_t *f)
{
	assert(f->count > 0);
	f->head = (f->head + 1) % f->cap;
	f->count--;
}

void bus_bytes_copy(bus_bytes_t *b, const char *p, size_t n)
{
	b->p = malloc(n ? n : 1);
	if (!b->p) {
		b->n = 0;
		return;
	}
	memcpy(b->p, p, n);
	b->n = n;
}

void bus_bytes_free(bus_bytes_t *b)
{
	free(b->p);
	b->p = NULL;
	b->n = 0;
}
