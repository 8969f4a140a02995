/*
 * statement.h - the protocol's "statement" (statement.c): the bus checks the
 * request and forwards it to the logger, which answers from its account
 * index (docs/peers.md, Logger).
 *
 * Invariant: count is the number of used slots; a used slot is a statement
 * sent on the logger's current session and not yet answered.
 */
#ifndef ESBANK_BUS_STATEMENT_H
#define ESBANK_BUS_STATEMENT_H

#include "bus.h"
#include "clients.h"

#include <assert.h>

/* Statements waiting for the logger; more are answered overloaded. */
#define BUS_STATEMENTS_MAX 64

typedef struct {
	client_ref_t to;
	uint64_t req_id;
	uint64_t cid;  /* 0: a free slot */
} statement_wait_t;

/* Written only by statement.c. */
typedef struct {
	statement_wait_t waits[BUS_STATEMENTS_MAX];
	int count;
	uint64_t next_cid;
} statements_t;

static inline void statements_assert(const statements_t *st)
{
	assert(st->count >= 0 && st->count <= BUS_STATEMENTS_MAX);
}

/* "statement": req[0..n) is the request, its id and op already checked. */
void statement_request(hub_t *h, client_t *c, uint64_t id, const char *req, size_t n);
/* The logger's answer {"t":"statement"}: to the client that asked. */
void statement_result(hub_t *h, const msgpack_object *msg);
/* The logger's link is down: every waiting statement gets unavailable. */
void statement_logger_lost(hub_t *h);

#endif
