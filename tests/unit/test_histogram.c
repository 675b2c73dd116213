/* tests/unit/test_histogram.c — reactor/histogram.c: every value falls in the
 * bucket whose bounds hold it, bounds grow by at most 25 %, snapshots sum
 * owners (count = +Inf bucket, max of maxes), and quantile estimates land
 * within a bucket of the truth and never above the exact max. */
#define _GNU_SOURCE
#include <math.h>
#include <pthread.h>

#include "check_main.h"
#include "reactor/histogram.h"

START_TEST(bounds_hold_their_values)
{
    ck_assert_uint_eq(histogram_upper_ns(0), 1024);
    ck_assert_uint_eq(histogram_upper_ns(HISTOGRAM_BUCKETS - 2), UINT64_C(1) << 36);
    ck_assert_uint_eq(histogram_upper_ns(HISTOGRAM_BUCKETS - 1), UINT64_MAX);
    ck_assert_uint_eq(histogram_bucket(0), 0);
    ck_assert_uint_eq(histogram_bucket(1023), 0);
    ck_assert_uint_eq(histogram_bucket(1024), 1);
    ck_assert_uint_eq(histogram_bucket(UINT64_MAX), HISTOGRAM_BUCKETS - 1);
    /* 60 s, the range's promise, is still a finite bucket. */
    ck_assert_uint_lt(histogram_bucket(UINT64_C(60000000000)), HISTOGRAM_BUCKETS - 1);
    for (unsigned i = 0; i + 1 < HISTOGRAM_BUCKETS; i++) {
        uint64_t up = histogram_upper_ns(i);
        ck_assert_uint_eq(histogram_bucket(up - 1), i);
        ck_assert_uint_eq(histogram_bucket(up), i + 1);
        if (i > 0) {
            uint64_t lo = histogram_upper_ns(i - 1);
            ck_assert_uint_gt(up, lo);
            ck_assert_uint_le((up - lo) * 4, lo); /* at most 25 % wide */
        }
    }
}
END_TEST

START_TEST(record_counts_sums_and_keeps_the_max)
{
    static struct histogram h; /* zeroed */
    histogram_record(&h, 500);
    histogram_record(&h, 2000000);
    histogram_record(&h, 3000);
    struct histogram_snap s = {0};
    histogram_snap_add(&s, &h);
    ck_assert_uint_eq(s.count, 3);
    ck_assert_uint_eq(s.max_ns, 2000000);
    ck_assert(fabs(s.sum_ns - 2003500.0) < 0.5);
    ck_assert_uint_eq(s.bucket[0], 1);
    ck_assert_uint_eq(s.bucket[histogram_bucket(3000)], 1);
    ck_assert_uint_eq(s.bucket[histogram_bucket(2000000)], 1);
}
END_TEST

START_TEST(snapshots_sum_owners)
{
    static struct histogram a, b;
    for (int i = 0; i < 10; i++)
        histogram_record(&a, 10000);
    for (int i = 0; i < 30; i++)
        histogram_record(&b, 70000);
    struct histogram_snap s = {0};
    histogram_snap_add(&s, &a);
    histogram_snap_add(&s, &b);
    ck_assert_uint_eq(s.count, 40);
    ck_assert_uint_eq(s.max_ns, 70000);
    ck_assert(fabs(s.sum_ns - 2200000.0) < 0.5);
    /* A quarter at 10 us, the rest at 70 us: p10 is in 10 us's bucket, p50 in 70 us's. */
    double p10 = histogram_quantile_ns(&s, 0.1), p50 = histogram_quantile_ns(&s, 0.5);
    ck_assert_uint_eq(histogram_bucket((uint64_t)p10), histogram_bucket(10000));
    ck_assert(p50 <= 70000.0 && p50 >= 70000.0 * 0.8);
}
END_TEST

START_TEST(quantiles_within_a_bucket)
{
    static struct histogram h;
    /* 1 us .. 10 ms, evenly: the true q-quantile is q * 10 ms. */
    for (uint64_t v = 1000; v <= 10000000; v += 1000)
        histogram_record(&h, v);
    struct histogram_snap s = {0};
    histogram_snap_add(&s, &h);
    const double qs[] = {0.5, 0.9, 0.99};
    for (unsigned i = 0; i < 3; i++) {
        double est = histogram_quantile_ns(&s, qs[i]), truth = qs[i] * 10e6;
        ck_assert_msg(fabs(est - truth) <= truth * 0.25, "q %.2f: %.0f ns, truth %.0f ns", qs[i],
                      est, truth);
    }
    ck_assert(histogram_quantile_ns(&s, 1.0) <= 10e6);
    ck_assert_uint_eq(s.max_ns, 10000000);
}
END_TEST

START_TEST(estimates_never_pass_the_max)
{
    static struct histogram h, inf;
    for (int i = 0; i < 100; i++)
        histogram_record(&h, 5000000); /* 5 ms: its bucket reaches 5.24 ms */
    struct histogram_snap s = {0};
    histogram_snap_add(&s, &h);
    ck_assert(histogram_quantile_ns(&s, 0.99) <= 5000000.0);
    ck_assert(histogram_quantile_ns(&s, 0.5) >= 4194304.0); /* the bucket's lower bound */
    /* Beyond the last bound (100 s): the max is the estimate. */
    histogram_record(&inf, UINT64_C(100000000000));
    struct histogram_snap t = {0};
    histogram_snap_add(&t, &inf);
    ck_assert_uint_eq(t.bucket[HISTOGRAM_BUCKETS - 1], 1);
    ck_assert(histogram_quantile_ns(&t, 0.5) == 100e9);
    struct histogram_snap empty = {0};
    ck_assert(histogram_quantile_ns(&empty, 0.9) == 0.0);
}
END_TEST

#define OWNER_RECORDS 200000
static struct histogram shared;
static void *owner(void *arg)
{
    for (uint64_t i = 0; i < OWNER_RECORDS; i++)
        histogram_record(&shared, 1000 + (i % 5000) * 100);
    return NULL;
}

START_TEST(readers_see_counts_grow_while_the_owner_writes)
{
    pthread_t t;
    ck_assert_int_eq(pthread_create(&t, NULL, owner, NULL), 0);
    uint64_t last = 0;
    for (int i = 0; i < 1000; i++) {
        struct histogram_snap s = {0};
        histogram_snap_add(&s, &shared);
        ck_assert_uint_ge(s.count, last);
        ck_assert_uint_le(s.count, OWNER_RECORDS);
        last = s.count;
    }
    pthread_join(t, NULL);
    struct histogram_snap s = {0};
    histogram_snap_add(&s, &shared);
    ck_assert_uint_eq(s.count, OWNER_RECORDS);
    ck_assert_uint_eq(s.max_ns, 1000 + 4999 * 100);
}
END_TEST

static Suite *make_suite(void)
{
    Suite *s = suite_create("histogram");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, bounds_hold_their_values);
    tcase_add_test(tc, record_counts_sums_and_keeps_the_max);
    tcase_add_test(tc, snapshots_sum_owners);
    tcase_add_test(tc, quantiles_within_a_bucket);
    tcase_add_test(tc, estimates_never_pass_the_max);
    tcase_add_test(tc, readers_see_counts_grow_while_the_owner_writes);
    suite_add_tcase(s, tc);
    return s;
}
