/*
 * bigmem.h - zeroed tables for random access (the hash indexes of the
 * ledger and the key store): large ones in transparent huge pages.
 */
#ifndef ESBANK_BIGMEM_H
#define ESBANK_BIGMEM_H

#include <stddef.h>

/* From this size on a table gets its own mapping, advised to huge pages. */
#define BIGMEM_HUGE_BYTES_MIN (2u * 1024 * 1024)

/* n zeroed bytes, or NULL; freed with bigmem_free(p, n), the same n. */
void *bigmem_zalloc(size_t n);
void bigmem_free(void *p, size_t n);

#endif
