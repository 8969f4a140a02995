/*
 * histogram.h - a log-linear histogram of latencies in the manner of
 * HdrHistogram: constant relative precision over a wide range, O(1) record,
 * a few kilobytes of counters.
 *
 * Values are unsigned integers in any unit (the bench records nanoseconds).
 * Values are grouped into buckets whose width grows with the value so that a
 * bucket is never wider than 1 / 10^digits of the values in it: with 2
 * significant digits, 2,000,000 and 2,010,000 may share a bucket, 2,000,000
 * and 2,040,000 never do. Below `lowest` the resolution is the largest power
 * of two not above `lowest`.
 *
 * Invariants: total == sum of counts; when total > 0, min <= max and every
 * recorded value v (clamped to highest) lies in the bucket of counts[index(v)].
 * Values above highest are counted in the top bucket and in `clamped`; max
 * keeps the true largest value.
 */
#ifndef ESBANK_CLIENT_HISTOGRAM_H
#define ESBANK_CLIENT_HISTOGRAM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define HISTOGRAM_DIGITS_MAX 5
/* Buckets in one histogram; far above what 5 digits over 64 bits need. */
#define HISTOGRAM_BUCKETS_MAX (1u << 24)

typedef struct {
	uint64_t lowest;    /* resolution at the bottom of the range */
	uint64_t highest;   /* largest value told apart from larger ones */
	int digits;         /* significant decimal digits kept */
	unsigned unit_bits; /* log2 of the bottom resolution */
	unsigned sub_bits;  /* log2 of the linear buckets per power of two, times 2 */
	size_t nbuckets;
	uint64_t *counts;
	uint64_t total;
	uint64_t clamped; /* values recorded above highest */
	uint64_t min;     /* UINT64_MAX while empty */
	uint64_t max;     /* 0 while empty */
	double sum;       /* for the mean */
} histogram_t;

/*
 * Sets up an empty histogram for values from lowest (>= 1) to highest
 * (>= 2 x lowest) with digits significant digits (1 to HISTOGRAM_DIGITS_MAX).
 * Returns 0, -EINVAL for bad bounds, or -ENOMEM. Free with histogram_free().
 */
int histogram_init(histogram_t *h, uint64_t lowest, uint64_t highest, int digits);

/* Frees the counters; safe on a zeroed or already freed histogram. */
void histogram_free(histogram_t *h);

/* Forgets every recorded value, keeps the configuration. */
void histogram_reset(histogram_t *h);

/* Records one value. */
void histogram_record(histogram_t *h, uint64_t value);

/* Records count occurrences of value. */
void histogram_record_n(histogram_t *h, uint64_t value, uint64_t count);

/*
 * The value at percentile p (0 to 100): the smallest recorded value (up to
 * the bucket's precision, reported as the top of its bucket but never above
 * max or below min) that at least p percent of the values do not exceed.
 * Percentile 0 gives min, 100 gives max. 0 when the histogram is empty.
 */
uint64_t histogram_percentile(const histogram_t *h, double p);

/* The mean of the recorded values; 0 when empty. */
double histogram_mean(const histogram_t *h);

/*
 * Adds every value of from into into. Both must have the same lowest,
 * highest and digits; returns 0, or -EINVAL (into is then unchanged).
 */
int histogram_merge(histogram_t *into, const histogram_t *from);

/* The smallest and largest values that share value's bucket. */
uint64_t histogram_bucket_low(const histogram_t *h, uint64_t value);
uint64_t histogram_bucket_high(const histogram_t *h, uint64_t value);

#endif
