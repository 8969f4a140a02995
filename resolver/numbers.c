/*
 * numbers.c - new account numbers: drawn at random, uniformly, among the
 * 16-digit numbers not yet in use (open_account, its password-hash job, and
 * a dry run's would-be number).
 */
#include "resolver.h"

#include <sodium.h>

#define RESOLVER_ACCOUNT_FIRST 1000000000000000ULL /* smallest 16-digit number */
#define RESOLVER_ACCOUNT_SPAN 9000000000000000ULL

/* A uniformly random 16-digit number, first digit not zero, not yet in use. */
uint64_t resolver_new_account_number(const ledger_t *l)
{
	const uint64_t limit = UINT64_MAX - UINT64_MAX % RESOLVER_ACCOUNT_SPAN;
	for (;;) {
		uint64_t x;
		randombytes_buf(&x, sizeof(x));
		if (x >= limit)
			continue; /* rejection keeps the draw uniform */
		uint64_t n = RESOLVER_ACCOUNT_FIRST + x % RESOLVER_ACCOUNT_SPAN;
		if (!ledger_find(l, n))
			return n;
	}
}
