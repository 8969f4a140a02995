/*
 * bigmem.c - zeroed tables for random access (see bigmem.h).
 *
 * Why: a million accounts make each open-addressing index 2^21 slots of
 * 16 bytes, 32 MB that every lookup touches at a random place. In 4 KiB
 * pages nearly every probe is a TLB miss, and loading a snapshot faults in
 * 8,192 pages per index (ledger_probe_number and keystore_index_add were a
 * quarter of a 1,000,000-account load in perf). The kernel here has
 * transparent huge pages in "madvise" mode, so a large table is mapped on
 * its own and advised; the kernel zero-fills it as it is touched. Where
 * the advice is refused the table still works in small pages.
 */
#include "bigmem.h"

#include <stdlib.h>
#include <sys/mman.h>

void *bigmem_zalloc(size_t n)
{
	if (n < BIGMEM_HUGE_BYTES_MIN)
		return calloc(1, n);
	void *p = mmap(NULL, n, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED)
		return NULL;
	(void)madvise(p, n, MADV_HUGEPAGE); /* advice only: small pages if refused */
	return p;
}

void bigmem_free(void *p, size_t n)
{
	if (!p)
		return;
	if (n < BIGMEM_HUGE_BYTES_MIN)
		free(p);
	else
		munmap(p, n);
}
