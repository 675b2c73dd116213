/* tests/unit/test_backend_latency.c — proxy/backend_latency.c: each poller
 * records into its own block of a backend (made on its first record, from its
 * own thread), a reader sums the blocks per kind, a poller id without a slot
 * records nothing, and backend_free frees the blocks (ASan's leak check). */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdint.h>

#include "check_main.h"
#include "proxy/backend_latency.h"

#define PER_POLLER 10000

struct recorder {
    struct backend *b;
    unsigned poller;
};

static void *record(void *arg)
{
    const struct recorder *r = arg;
    for (uint64_t i = 0; i < PER_POLLER; i++) {
        backend_latency_record(r->b, r->poller, BACKEND_LATENCY_CONNECT, 1000 * (r->poller + 1));
        if (i % 2 == 0)
            backend_latency_record(r->b, r->poller, BACKEND_LATENCY_DURATION, 5000000);
    }
    return NULL;
}

static struct backend *new_backend(void)
{
    struct cfg_addrs addrs = {0};
    struct backend *b = backend_new("b0", "127.0.0.1:1", &addrs, 1);
    ck_assert_ptr_nonnull(b);
    return b;
}

START_TEST(pollers_record_apart_and_readers_sum)
{
    struct backend *b = new_backend();
    struct backend_latency_snap s;
    backend_latency_read(b, &s);
    for (int k = 0; k < BACKEND_LATENCY_KINDS; k++)
        ck_assert_uint_eq(s.h[k].count, 0);
    /* Two sub-reactors' threads, and the last slot (the highest poller id). */
    struct recorder rs[] = {{b, 1}, {b, 2}, {b, BACKEND_LATENCY_SLOTS - 1}};
    pthread_t t[3];
    for (int i = 0; i < 3; i++)
        ck_assert_int_eq(pthread_create(&t[i], NULL, record, &rs[i]), 0);
    for (int i = 0; i < 3; i++)
        pthread_join(t[i], NULL);
    ck_assert_ptr_null(atomic_load(&b->latency[0]));
    ck_assert_ptr_nonnull(atomic_load(&b->latency[1]));
    ck_assert_ptr_nonnull(atomic_load(&b->latency[2]));
    ck_assert_uint_eq((uintptr_t)atomic_load(&b->latency[1]) % 64, 0); /* its own lines */
    backend_latency_read(b, &s);
    ck_assert_uint_eq(s.h[BACKEND_LATENCY_CONNECT].count, 3 * PER_POLLER);
    ck_assert_uint_eq(s.h[BACKEND_LATENCY_DURATION].count, 3 * PER_POLLER / 2);
    ck_assert_uint_eq(s.h[BACKEND_LATENCY_FIRST_BYTE].count, 0);
    ck_assert_uint_eq(s.h[BACKEND_LATENCY_CONNECT].max_ns, 1000 * BACKEND_LATENCY_SLOTS);
    ck_assert_uint_eq(s.h[BACKEND_LATENCY_DURATION].max_ns, 5000000);
    backend_free(b);
}
END_TEST

START_TEST(a_poller_without_a_slot_records_nothing)
{
    struct backend *b = new_backend();
    backend_latency_record(b, BACKEND_LATENCY_SLOTS, BACKEND_LATENCY_CONNECT, 1000);
    ck_assert_ptr_null(backend_latency_alloc(b, BACKEND_LATENCY_SLOTS + 5));
    struct backend_latency_snap s;
    backend_latency_read(b, &s);
    ck_assert_uint_eq(s.h[BACKEND_LATENCY_CONNECT].count, 0);
    backend_free(b);
}
END_TEST

static Suite *make_suite(void)
{
    Suite *s = suite_create("backend_latency");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, pollers_record_apart_and_readers_sum);
    tcase_add_test(tc, a_poller_without_a_slot_records_nothing);
    suite_add_tcase(s, tc);
    return s;
}
