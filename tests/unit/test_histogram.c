/*
 * test_histogram.c - the bench's log-linear latency histogram: bucket
 * bounds and precision, percentiles of known distributions, the extremes,
 * values out of range, merging.
 *
 * histogram.c belongs to the client program, not to common/: the test links the
 * client's library (tests/meson.build).
 */
#include "histogram.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>

#define T_NS_PER_US 1000ull
#define T_NS_PER_S  1000000000ull

/* The bench's configuration: nanoseconds, 2 digits from 100 ns up to 60 s. */
static void t_init_bench(histogram_t *h)
{
	cr_assert_eq(histogram_init(h, 1, 60 * T_NS_PER_S, 2), 0);
}

/* |got - want| <= want / 100, i.e. 2 significant digits. */
static void t_assert_near(uint64_t got, uint64_t want, const char *what)
{
	uint64_t diff = got > want ? got - want : want - got;
	cr_assert(diff * 100 <= want, "%s: got %llu, want %llu within 1%%", what,
		  (unsigned long long)got, (unsigned long long)want);
}

Test(histogram, init_rejects_bad_bounds)
{
	histogram_t h;
	cr_assert_eq(histogram_init(&h, 0, 100, 2), -EINVAL);
	cr_assert_eq(histogram_init(&h, 10, 19, 2), -EINVAL);
	cr_assert_eq(histogram_init(&h, 1, 100, 0), -EINVAL);
	cr_assert_eq(histogram_init(&h, 1, 100, HISTOGRAM_DIGITS_MAX + 1), -EINVAL);
	cr_assert_eq(histogram_init(&h, 1, UINT64_MAX, 2), 0);
	histogram_free(&h);
	histogram_free(&h); /* twice is harmless */
}

Test(histogram, small_enough)
{
	histogram_t h;
	t_init_bench(&h);
	cr_assert_lt(h.nbuckets, 4096, "%zu buckets for 1 us .. 60 s", h.nbuckets);
	histogram_free(&h);
}

Test(histogram, empty)
{
	histogram_t h;
	t_init_bench(&h);
	cr_assert_eq(histogram_percentile(&h, 50), 0);
	cr_assert_eq(histogram_percentile(&h, 100), 0);
	cr_assert_eq(histogram_mean(&h), 0);
	cr_assert_eq(h.total, 0);
	histogram_free(&h);
}

Test(histogram, buckets_are_contiguous_and_narrow)
{
	histogram_t h;
	t_init_bench(&h);
	uint64_t v = 0;
	size_t n = 0;
	while (v < h.highest) {
		uint64_t lo = histogram_bucket_low(&h, v), hi = histogram_bucket_high(&h, v);
		cr_assert_eq(lo, v, "bucket of %llu starts at %llu", (unsigned long long)v,
			     (unsigned long long)lo);
		cr_assert_geq(hi, lo);
		/* Exact, or at most 1% of the values in it wide. */
		uint64_t width = hi - lo + 1;
		cr_assert(width == 1 || width * 100 <= lo, "bucket %llu..%llu too wide",
			  (unsigned long long)lo, (unsigned long long)hi);
		cr_assert_eq(histogram_bucket_high(&h, hi), hi);
		v = hi + 1;
		n++;
	}
	cr_assert_eq(n, h.nbuckets, "walked %zu buckets of %zu", n, h.nbuckets);
	histogram_free(&h);
}

Test(histogram, one_value)
{
	histogram_t h;
	t_init_bench(&h);
	histogram_record(&h, 1234567);
	cr_assert_eq(histogram_percentile(&h, 0), 1234567);
	cr_assert_eq(histogram_percentile(&h, 50), 1234567);
	cr_assert_eq(histogram_percentile(&h, 99.9), 1234567);
	cr_assert_eq(histogram_percentile(&h, 100), 1234567);
	cr_assert_eq(h.min, 1234567);
	cr_assert_eq(h.max, 1234567);
	cr_assert_eq(h.total, 1);
	histogram_free(&h);
}

Test(histogram, uniform)
{
	histogram_t h;
	t_init_bench(&h);
	/* 1 us .. 100 ms in steps of 1 us: 100,000 values. */
	for (uint64_t us = 1; us <= 100000; us++)
		histogram_record(&h, us * T_NS_PER_US);
	cr_assert_eq(h.total, 100000);
	cr_assert_eq(h.min, T_NS_PER_US);
	cr_assert_eq(h.max, 100000 * T_NS_PER_US);
	t_assert_near(histogram_percentile(&h, 50), 50000 * T_NS_PER_US, "p50");
	t_assert_near(histogram_percentile(&h, 90), 90000 * T_NS_PER_US, "p90");
	t_assert_near(histogram_percentile(&h, 99), 99000 * T_NS_PER_US, "p99");
	t_assert_near(histogram_percentile(&h, 99.9), 99900 * T_NS_PER_US, "p99.9");
	cr_assert_eq(histogram_percentile(&h, 100), 100000 * T_NS_PER_US);
	t_assert_near((uint64_t)histogram_mean(&h), 50000 * T_NS_PER_US, "mean");
	histogram_free(&h);
}

Test(histogram, percentile_is_exact_rank)
{
	histogram_t h;
	cr_assert_eq(histogram_init(&h, 1, 1000000, 3), 0);
	/* 1..1000 are exact at 3 digits: percentile p is the value ceil(p% x 1000). */
	for (uint64_t v = 1; v <= 1000; v++)
		histogram_record(&h, v);
	cr_assert_eq(histogram_percentile(&h, 50), 500);
	cr_assert_eq(histogram_percentile(&h, 90), 900);
	cr_assert_eq(histogram_percentile(&h, 99), 990);
	cr_assert_eq(histogram_percentile(&h, 99.9), 999);
	cr_assert_eq(histogram_percentile(&h, 0.1), 1);
	cr_assert_eq(histogram_percentile(&h, 0.15), 2);
	histogram_free(&h);
}

Test(histogram, bimodal)
{
	histogram_t h;
	t_init_bench(&h);
	histogram_record_n(&h, 1000 * T_NS_PER_US, 900);   /* 90% at 1 ms */
	histogram_record_n(&h, 100000 * T_NS_PER_US, 100); /* 10% at 100 ms */
	t_assert_near(histogram_percentile(&h, 50), 1000 * T_NS_PER_US, "p50");
	t_assert_near(histogram_percentile(&h, 90), 1000 * T_NS_PER_US, "p90");
	t_assert_near(histogram_percentile(&h, 90.1), 100000 * T_NS_PER_US, "p90.1");
	t_assert_near(histogram_percentile(&h, 99), 100000 * T_NS_PER_US, "p99");
	cr_assert_eq(histogram_percentile(&h, 100), 100000 * T_NS_PER_US);
	histogram_free(&h);
}

/*
 * Pareto with shape 1 and scale 100 us, a heavy tail like real latencies:
 * percentile p is 100 us / (1 - p), so p50 = 200 us, p90 = 1 ms, p99 = 10 ms,
 * p99.9 = 100 ms. Value i of n is the quantile (i + 0.5) / n.
 */
Test(histogram, pareto)
{
	const uint64_t scale_ns = 100 * T_NS_PER_US, n = 200000;
	histogram_t h;
	t_init_bench(&h);
	for (uint64_t i = 0; i < n; i++)
		histogram_record(&h, scale_ns * 2 * n / (2 * n - 2 * i - 1));
	t_assert_near(histogram_percentile(&h, 50), 2 * scale_ns, "p50");
	t_assert_near(histogram_percentile(&h, 90), 10 * scale_ns, "p90");
	t_assert_near(histogram_percentile(&h, 99), 100 * scale_ns, "p99");
	t_assert_near(histogram_percentile(&h, 99.9), 1000 * scale_ns, "p99.9");
	cr_assert_eq(histogram_percentile(&h, 100), scale_ns * 2 * n);
	cr_assert_eq(h.max, scale_ns * 2 * n);
	cr_assert_eq(h.clamped, 0);
	histogram_free(&h);
}

/* lowest = 1000: the bottom resolution is 512, the largest power of two <= 1000. */
Test(histogram, coarse_bottom)
{
	histogram_t h;
	cr_assert_eq(histogram_init(&h, 1000, 60 * T_NS_PER_S, 2), 0);
	cr_assert_eq(histogram_bucket_low(&h, 0), 0);
	cr_assert_eq(histogram_bucket_high(&h, 0), 511);
	cr_assert_eq(histogram_bucket_low(&h, 5000), 4608);
	cr_assert_eq(histogram_bucket_high(&h, 5000), 5119);
	uint64_t v = 10 * T_NS_PER_S;
	cr_assert_leq(histogram_bucket_low(&h, v), v);
	cr_assert_geq(histogram_bucket_high(&h, v), v);
	cr_assert_leq((histogram_bucket_high(&h, v) - histogram_bucket_low(&h, v)) * 100, v);
	histogram_record_n(&h, 5000, 10);
	histogram_record(&h, 5100);
	cr_assert_eq(histogram_percentile(&h, 50), 5100, "top of the bucket, clamped to max");
	cr_assert_eq(histogram_percentile(&h, 0), 5000);
	histogram_free(&h);
}

Test(histogram, zero)
{
	histogram_t h;
	t_init_bench(&h);
	histogram_record(&h, 0);
	histogram_record(&h, 300);
	cr_assert_eq(h.min, 0);
	cr_assert_eq(h.max, 300);
	cr_assert_eq(histogram_percentile(&h, 50), 0);
	cr_assert_eq(histogram_percentile(&h, 51), 300);
	cr_assert_eq(histogram_percentile(&h, 0), 0);
	histogram_free(&h);
}

Test(histogram, above_highest_keeps_true_max)
{
	histogram_t h;
	t_init_bench(&h);
	histogram_record_n(&h, 5 * T_NS_PER_US, 99);
	histogram_record(&h, 3600 * T_NS_PER_S); /* an hour: beyond 60 s */
	cr_assert_eq(h.clamped, 1);
	cr_assert_eq(h.max, 3600 * T_NS_PER_S);
	cr_assert_eq(histogram_percentile(&h, 100), 3600 * T_NS_PER_S);
	t_assert_near(histogram_percentile(&h, 99.5), 60 * T_NS_PER_S, "clamped bucket");
	t_assert_near(histogram_percentile(&h, 99), 5 * T_NS_PER_US, "p99");
	histogram_free(&h);
}

Test(histogram, record_n_is_n_records)
{
	histogram_t a, b;
	t_init_bench(&a);
	t_init_bench(&b);
	histogram_record_n(&a, 777777, 5);
	for (int i = 0; i < 5; i++)
		histogram_record(&b, 777777);
	cr_assert_eq(memcmp(a.counts, b.counts, a.nbuckets * sizeof(a.counts[0])), 0);
	cr_assert_eq(a.total, b.total);
	histogram_record_n(&a, 1, 0);
	cr_assert_eq(a.total, 5, "a count of zero records nothing");
	cr_assert_eq(a.min, 777777);
	histogram_free(&a);
	histogram_free(&b);
}

Test(histogram, merge)
{
	histogram_t a, b, all, other;
	t_init_bench(&a);
	t_init_bench(&b);
	t_init_bench(&all);
	for (uint64_t v = 1; v <= 20000; v++) {
		histogram_record(v % 2 ? &a : &b, v * 997);
		histogram_record(&all, v * 997);
	}
	cr_assert_eq(histogram_merge(&a, &b), 0);
	cr_assert_eq(a.total, all.total);
	cr_assert_eq(a.min, all.min);
	cr_assert_eq(a.max, all.max);
	cr_assert_eq(memcmp(a.counts, all.counts, a.nbuckets * sizeof(a.counts[0])), 0);
	cr_assert_eq(histogram_percentile(&a, 99), histogram_percentile(&all, 99));

	cr_assert_eq(histogram_init(&other, 1, 60 * T_NS_PER_S, 3), 0);
	histogram_record(&other, 5);
	cr_assert_eq(histogram_merge(&a, &other), -EINVAL);
	cr_assert_eq(a.total, all.total, "a failed merge changes nothing");
	histogram_free(&a);
	histogram_free(&b);
	histogram_free(&all);
	histogram_free(&other);
}

Test(histogram, reset)
{
	histogram_t h;
	t_init_bench(&h);
	histogram_record(&h, 42000);
	histogram_record(&h, 120 * T_NS_PER_S);
	histogram_reset(&h);
	cr_assert_eq(h.total, 0);
	cr_assert_eq(h.clamped, 0);
	cr_assert_eq(h.max, 0);
	cr_assert_eq(histogram_percentile(&h, 50), 0);
	histogram_record(&h, 7000);
	cr_assert_eq(histogram_percentile(&h, 50), 7000);
	histogram_free(&h);
}
