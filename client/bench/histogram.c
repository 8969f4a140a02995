/*
 * histogram.c - log-linear latency histogram (see histogram.h).
 *
 * Layout of the counters. Let u = value >> unit_bits (the value in units of
 * the bottom resolution) and S = 2^sub_bits, the smallest power of two of at
 * least 2 x 10^digits, H = S / 2:
 *   - u < S: bucket u, one unit wide (the linear part);
 *   - u >= S: with m the index of u's top bit and b = m - (sub_bits - 1),
 *     bucket b x H + (u >> b), 2^b units wide.
 * For b >= 1 the buckets of one power of two [2^m, 2^(m+1)) are numbered
 * (b + 1) x H .. (b + 2) x H - 1, right after those of the power below, so
 * the numbering has no gaps. A bucket 2^b wide only holds values of at least
 * H x 2^b, so its width is at most 1 / H <= 1 / 10^digits of its values.
 */
#include "histogram.h"

#include <assert.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

static unsigned histogram_log2(uint64_t v)
{
	assert(v > 0);
	return 63u - (unsigned)__builtin_clzll(v);
}

static size_t histogram_index(const histogram_t *h, uint64_t value)
{
	uint64_t u = value >> h->unit_bits;

	if (u < (1ull << h->sub_bits))
		return (size_t)u;
	unsigned b = histogram_log2(u) - (h->sub_bits - 1);
	return ((size_t)b << (h->sub_bits - 1)) + (size_t)(u >> b);
}

/* Width of bucket i in units, as a shift: the bucket is 2^shift units wide. */
static unsigned histogram_shift(const histogram_t *h, size_t i)
{
	size_t half = (size_t)1 << (h->sub_bits - 1);
	return i < 2 * half ? 0 : (unsigned)(i / half - 1);
}

static uint64_t histogram_index_low(const histogram_t *h, size_t i)
{
	unsigned b = histogram_shift(h, i);
	uint64_t u = (uint64_t)(i - ((size_t)b << (h->sub_bits - 1))) << b;
	return u << h->unit_bits;
}

static uint64_t histogram_index_high(const histogram_t *h, size_t i)
{
	uint64_t width = 1ull << (histogram_shift(h, i) + h->unit_bits);
	return histogram_index_low(h, i) + (width - 1);
}

int histogram_init(histogram_t *h, uint64_t lowest, uint64_t highest, int digits)
{
	memset(h, 0, sizeof(*h));
	if (lowest < 1 || highest / 2 < lowest || digits < 1 || digits > HISTOGRAM_DIGITS_MAX)
		return -EINVAL;
	uint64_t need = 2;
	for (int d = 0; d < digits; d++)
		need *= 10;
	h->lowest = lowest;
	h->highest = highest;
	h->digits = digits;
	h->unit_bits = histogram_log2(lowest);
	h->sub_bits = histogram_log2(need - 1) + 1;
	h->nbuckets = histogram_index(h, highest) + 1;
	if (h->nbuckets > HISTOGRAM_BUCKETS_MAX)
		return -EINVAL;
	h->counts = calloc(h->nbuckets, sizeof(h->counts[0]));
	if (!h->counts)
		return -ENOMEM;
	h->min = UINT64_MAX;
	return 0;
}

void histogram_free(histogram_t *h)
{
	free(h->counts);
	h->counts = NULL;
	h->nbuckets = 0;
}

void histogram_reset(histogram_t *h)
{
	memset(h->counts, 0, h->nbuckets * sizeof(h->counts[0]));
	h->total = 0;
	h->clamped = 0;
	h->min = UINT64_MAX;
	h->max = 0;
	h->sum = 0;
}

void histogram_record_n(histogram_t *h, uint64_t value, uint64_t count)
{
	assert(h->counts);
	if (count == 0)
		return;
	if (value < h->min)
		h->min = value;
	if (value > h->max)
		h->max = value;
	if (value > h->highest) {
		h->clamped += count;
		value = h->highest;
	}
	h->counts[histogram_index(h, value)] += count;
	h->total += count;
	h->sum += (double)value * (double)count;
}

void histogram_record(histogram_t *h, uint64_t value)
{
	histogram_record_n(h, value, 1);
}

/* How many of the smallest values percentile p covers: ceil(p% of total). */
static uint64_t histogram_rank(const histogram_t *h, double p)
{
	double x = p / 100.0 * (double)h->total;
	uint64_t rank = (uint64_t)x;

	/* Tolerate the rounding of p / 100 (99.9 / 100 x 1000 is not quite 999). */
	if (x - (double)rank > 1e-9 * (x > 1 ? x : 1))
		rank++;
	return rank < 1 ? 1 : rank > h->total ? h->total : rank;
}

uint64_t histogram_percentile(const histogram_t *h, double p)
{
	if (h->total == 0)
		return 0;
	if (p <= 0)
		return h->min;
	if (p >= 100)
		return h->max;
	uint64_t rank = histogram_rank(h, p), seen = 0;
	size_t i = 0;
	for (; i < h->nbuckets; i++) {
		seen += h->counts[i];
		if (seen >= rank)
			break;
	}
	assert(i < h->nbuckets);
	uint64_t v = histogram_index_high(h, i);
	return v > h->max ? h->max : v < h->min ? h->min : v;
}

double histogram_mean(const histogram_t *h)
{
	return h->total ? h->sum / (double)h->total : 0;
}

int histogram_merge(histogram_t *into, const histogram_t *from)
{
	if (into->lowest != from->lowest || into->highest != from->highest ||
	    into->digits != from->digits)
		return -EINVAL;
	for (size_t i = 0; i < from->nbuckets; i++)
		into->counts[i] += from->counts[i];
	into->total += from->total;
	into->clamped += from->clamped;
	into->sum += from->sum;
	if (from->min < into->min)
		into->min = from->min;
	if (from->max > into->max)
		into->max = from->max;
	return 0;
}

uint64_t histogram_bucket_low(const histogram_t *h, uint64_t value)
{
	return histogram_index_low(h, histogram_index(h, value > h->highest ? h->highest : value));
}

uint64_t histogram_bucket_high(const histogram_t *h, uint64_t value)
{
	return histogram_index_high(h,
				    histogram_index(h, value > h->highest ? h->highest : value));
}
