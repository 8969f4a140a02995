/*
 * fifo.h - the bus's growable rings of fixed-size items, and owned bytes.
 *
 * Invariant of a ring: count <= cap; the items are at (head + i) % cap.
 */
#ifndef ESBANK_BUS_FIFO_H
#define ESBANK_BUS_FIFO_H

#include <assert.h>
#include <stddef.h>

/* A growable FIFO of fixed-size items (a ring). */
typedef struct {
	char *items;
	size_t item_size;
	size_t head, count, cap;
} bus_fifo_t;

/* A byte string owned by a queue entry. */
typedef struct {
	char *p;
	size_t n;
} bus_bytes_t;

/* An empty ring of items of item_size bytes (allocates nothing yet). */
void bus_fifo_init(bus_fifo_t *f, size_t item_size);
/* A zeroed new last item, or NULL on allocation failure (nothing changed). */
void *bus_fifo_push(bus_fifo_t *f);
/* Item i (0: the oldest); i < count. Inline: the hot path peeks per event. */
static inline void *bus_fifo_peek(const bus_fifo_t *f, size_t i)
{
	assert(i < f->count);
	return f->items + ((f->head + i) % f->cap) * f->item_size;
}
/* Drops the oldest item (count > 0); what it owns is the caller's to free. */
void bus_fifo_pop(bus_fifo_t *f);
/* b becomes a copy of p[0..n); on allocation failure b->p is NULL, b->n 0. */
void bus_bytes_copy(bus_bytes_t *b, const char *p, size_t n);
void bus_bytes_free(bus_bytes_t *b);

#endif
