/* tests/unit/test_pool.c — proxy/pool.c: the smooth weighted round-robin
 * sequence, shares over many picks, skipping backends that are not up or have
 * no weight, and avoiding the backend a retry just failed on. */
#define _GNU_SOURCE
#include <stdio.h>
#include <string.h>

#include "check_main.h"
#include "proxy/pool.h"

static void make_pool(struct pool *pl, const unsigned *weights, size_t n)
{
    struct cfg_backend bs[8];
    char names[8][24];
    memset(bs, 0, sizeof(bs));
    for (size_t i = 0; i < n; i++) {
        snprintf(names[i], sizeof(names[i]), "b%zu", i);
        bs[i].name = names[i];
        bs[i].address = "127.0.0.1:1";
        bs[i].weight = weights[i];
    }
    struct cfg_pool cp = {.name = "p",
                          .connect_timeout_ms = 1,
                          .retries = 1,
                          .buffer_high_watermark = 8192,
                          .buffer_low_watermark = 1024,
                          .backends = bs,
                          .nbackends = n};
    ck_assert_int_eq(pool_init(pl, &cp), 0);
}

START_TEST(smooth_wrr_matches_nginx_sequence)
{
    const unsigned w[] = {5, 1, 1};
    uint32_t out[16];
    ck_assert_uint_eq(pool_smooth_wrr(w, 3, out, 16), 7);
    const uint32_t expect[] = {0, 0, 1, 0, 2, 0, 0}; /* a a b a c a a */
    for (int i = 0; i < 7; i++)
        ck_assert_uint_eq(out[i], expect[i]);
    const unsigned w2[] = {4, 2, 0};
    ck_assert_uint_eq(pool_smooth_wrr(w2, 3, out, 16), 3); /* divided by the gcd */
    const unsigned w3[] = {0, 0};
    ck_assert_uint_eq(pool_smooth_wrr(w3, 2, out, 16), 0);
}
END_TEST

START_TEST(shares_follow_weights)
{
    const unsigned w[] = {3, 2, 1, 0};
    struct pool pl;
    make_pool(&pl, w, 4);
    int hits[4] = {0};
    struct backend_set *set = pool_current(&pl);
    for (int i = 0; i < 60000; i++) {
        struct backend *b = pool_pick(&pl, NULL, 0);
        for (int k = 0; k < 4; k++)
            hits[k] += set->b[k] == b;
        backend_release(b);
    }
    ck_assert_int_eq(hits[0], 30000);
    ck_assert_int_eq(hits[1], 20000);
    ck_assert_int_eq(hits[2], 10000);
    ck_assert_int_eq(hits[3], 0);
    pool_fini(&pl);
}
END_TEST

#define B(pl, i) (pool_current(&(pl))->b[i])

START_TEST(skips_backends_not_up)
{
    const unsigned w[] = {1, 1, 1};
    struct pool pl;
    make_pool(&pl, w, 3);
    atomic_store(&B(pl, 1)->state, BACKEND_DOWN);
    atomic_store(&B(pl, 2)->state, BACKEND_DRAINING);
    for (int i = 0; i < 100; i++) {
        struct backend *b = pool_pick(&pl, NULL, 0);
        ck_assert_ptr_eq(b, B(pl, 0));
        backend_release(b);
    }
    atomic_store(&B(pl, 0)->state, BACKEND_DISABLED);
    ck_assert_ptr_null(pool_pick(&pl, NULL, 0));
    atomic_store(&B(pl, 2)->state, BACKEND_UP);
    atomic_store(&B(pl, 2)->weight, 0);
    ck_assert_ptr_null(pool_pick(&pl, NULL, 0));
    for (int i = 0; i < 3; i++)
        ck_assert_uint_eq(atomic_load(&B(pl, i)->active_connections), 0);
    pool_fini(&pl);
}
END_TEST

START_TEST(mostly_down_schedule_falls_back_to_least_loaded)
{
    /* 202 slots, 200 of them for a backend that is down: a pick looks at a
     * bounded number of slots, then takes the least loaded of the others. */
    const unsigned w[] = {200, 1, 1};
    struct pool pl;
    make_pool(&pl, w, 3);
    ck_assert_uint_eq(pool_current(&pl)->schedule_len, 202);
    atomic_store(&B(pl, 0)->state, BACKEND_DOWN);
    for (int i = 0; i < 100; i++)
        ck_assert_ptr_nonnull(pool_pick(&pl, NULL, 0)); /* held: load builds up */
    uint64_t a1 = atomic_load(&B(pl, 1)->active_connections);
    uint64_t a2 = atomic_load(&B(pl, 2)->active_connections);
    ck_assert_uint_eq(atomic_load(&B(pl, 0)->active_connections), 0);
    ck_assert_uint_eq(a1 + a2, 100);
    ck_assert_uint_ge(a1, 20); /* schedule hits and least-loaded picks share them */
    ck_assert_uint_ge(a2, 20);
    for (uint64_t i = 0; i < a1; i++)
        backend_release(B(pl, 1));
    for (uint64_t i = 0; i < a2; i++)
        backend_release(B(pl, 2));
    atomic_store(&B(pl, 1)->state, BACKEND_DOWN);
    atomic_store(&B(pl, 2)->state, BACKEND_DOWN);
    ck_assert_ptr_null(pool_pick(&pl, NULL, 0));
    pool_fini(&pl);
}
END_TEST

START_TEST(retry_avoids_the_failed_backend)
{
    const unsigned w[] = {1, 1};
    struct pool pl;
    make_pool(&pl, w, 2);
    for (int i = 0; i < 10; i++) {
        struct backend *b = pool_pick(&pl, B(pl, 0), 0);
        ck_assert_ptr_eq(b, B(pl, 1));
        backend_release(b);
    }
    atomic_store(&B(pl, 1)->state, BACKEND_DOWN);
    /* The only one left: tried again rather than failing the client. */
    struct backend *b = pool_pick(&pl, B(pl, 0), 0);
    ck_assert_ptr_eq(b, B(pl, 0));
    backend_release(b);
    pool_fini(&pl);
}
END_TEST

START_TEST(pick_holds_a_slot_and_drain_reads_drained_when_released)
{
    const unsigned w[] = {1};
    struct pool pl;
    make_pool(&pl, w, 1);
    struct backend *b = pool_pick(&pl, NULL, 0);
    ck_assert_uint_eq(atomic_load(&b->active_connections), 1);
    ck_assert_int_eq(backend_drain(b, 0), BACKEND_CHANGED);
    ck_assert_int_eq(backend_state_now(b), BACKEND_DRAINING);
    ck_assert_ptr_null(pool_pick(&pl, NULL, 0)); /* never picked once draining */
    ck_assert_uint_eq(atomic_load(&b->active_connections), 1);
    backend_release(b);
    ck_assert_int_eq(backend_state_now(b), BACKEND_DRAINED);
    ck_assert_int_eq(backend_drain(b, 0), BACKEND_UNCHANGED);
    ck_assert_int_eq(backend_enable(b), BACKEND_CHANGED);
    ck_assert_int_eq(backend_state_now(b), BACKEND_UP);
    ck_assert_int_eq(backend_enable(b), BACKEND_UNCHANGED);
    ck_assert_int_eq(backend_disable(b, 0), BACKEND_CHANGED);
    ck_assert_int_eq(backend_drain(b, 0), BACKEND_REFUSED);
    ck_assert_uint_eq(atomic_load(&b->close_at_ms), 0);
    ck_assert_int_eq(backend_disable(b, 1), BACKEND_CHANGED);
    ck_assert_uint_gt(atomic_load(&b->close_at_ms), 0);
    atomic_store(&b->state, BACKEND_DOWN);
    ck_assert_int_eq(backend_enable(b), BACKEND_REFUSED);
    ck_assert_str_eq(backend_state_name(BACKEND_DRAINED), "drained");
    pool_fini(&pl);
}
END_TEST

START_TEST(replace_installs_a_new_set_and_schedule)
{
    const unsigned w[] = {1, 1};
    struct pool pl;
    make_pool(&pl, w, 2);
    struct backend *b0 = B(pl, 0), *b1 = B(pl, 1);
    atomic_store(&b1->weight, 3);
    struct backend *list[] = {b0, b1};
    struct backend_set *old = pool_replace(&pl, list, 2);
    ck_assert_ptr_nonnull(old);
    backend_set_free(old);
    ck_assert_uint_eq(pool_current(&pl)->schedule_len, 4);
    int hits1 = 0;
    for (int i = 0; i < 400; i++) {
        struct backend *b = pool_pick(&pl, NULL, 0);
        hits1 += b == b1;
        backend_release(b);
    }
    ck_assert_int_eq(hits1, 300);
    ck_assert_ptr_eq(pool_find(&pl, "b1"), b1);
    ck_assert_ptr_null(pool_find(&pl, "nope"));
    /* Remove b0: the set no longer holds it, the caller frees it. */
    struct backend *only[] = {b1};
    backend_set_free(pool_replace(&pl, only, 1));
    backend_free(b0);
    ck_assert_ptr_null(pool_find(&pl, "b0"));
    pool_fini(&pl);
}
END_TEST

static Suite *make_suite(void)
{
    Suite *s = suite_create("pool");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, smooth_wrr_matches_nginx_sequence);
    tcase_add_test(tc, shares_follow_weights);
    tcase_add_test(tc, skips_backends_not_up);
    tcase_add_test(tc, retry_avoids_the_failed_backend);
    tcase_add_test(tc, pick_holds_a_slot_and_drain_reads_drained_when_released);
    tcase_add_test(tc, replace_installs_a_new_set_and_schedule);
    tcase_add_test(tc, mostly_down_schedule_falls_back_to_least_loaded);
    suite_add_tcase(s, tc);
    return s;
}
