/* tests/unit/test_logring.c — proxy/logring.c: a ring of n slots holds n,
 * refuses the next without waiting, gives them back oldest first across many
 * wraps, hides a reserved slot until it is committed, and between two
 * threads loses nothing it accepted and keeps the order. */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdint.h>

#include "check_main.h"
#include "proxy/logring.h"

struct item {
    uint64_t seq;
    uint64_t check; /* ~seq: a torn slot would show */
};

START_TEST(refuses_bad_sizes)
{
    struct logring r;
    ck_assert_int_eq(logring_init(&r, 0, 8), -EINVAL);
    ck_assert_int_eq(logring_init(&r, 4, 0), -EINVAL);
    ck_assert_int_eq(logring_init(&r, SIZE_MAX / 2, 16), -EINVAL);
}
END_TEST

START_TEST(holds_n_then_refuses_and_keeps_order_over_wraps)
{
    struct logring r;
    ck_assert_int_eq(logring_init(&r, 3, sizeof(struct item)), 0);
    ck_assert_ptr_null(logring_peek(&r));
    uint64_t next_in = 0, next_out = 0;
    for (int round = 0; round < 50; round++) {
        /* Fill: exactly 3 fit, the fourth is refused (not waited for). */
        for (;;) {
            struct item *it = logring_reserve(&r);
            if (!it)
                break;
            it->seq = next_in;
            it->check = ~next_in;
            next_in++;
            logring_commit(&r);
        }
        ck_assert_uint_eq(next_in - next_out, 3);
        /* Take one or two back, oldest first, so the slots wrap unevenly. */
        for (int k = 0; k < 1 + round % 2; k++) {
            const struct item *it = logring_peek(&r);
            ck_assert_ptr_nonnull(it);
            ck_assert_uint_eq(it->seq, next_out);
            ck_assert_uint_eq(it->check, ~next_out);
            next_out++;
            logring_release(&r);
        }
    }
    while (logring_peek(&r)) {
        ck_assert_uint_eq(((const struct item *)logring_peek(&r))->seq, next_out++);
        logring_release(&r);
    }
    ck_assert_uint_eq(next_out, next_in);
    logring_fini(&r);
}
END_TEST

START_TEST(a_reserved_slot_is_hidden_until_committed)
{
    struct logring r;
    ck_assert_int_eq(logring_init(&r, 1, sizeof(struct item)), 0);
    struct item *a = logring_reserve(&r);
    ck_assert_ptr_nonnull(a);
    ck_assert_ptr_eq(logring_reserve(&r), a); /* no commit: the same slot again */
    ck_assert_ptr_null(logring_peek(&r));
    a->seq = 7;
    logring_commit(&r);
    ck_assert_ptr_null(logring_reserve(&r)); /* one slot, taken */
    ck_assert_uint_eq(((const struct item *)logring_peek(&r))->seq, 7);
    logring_release(&r);
    ck_assert_ptr_null(logring_peek(&r));
    ck_assert_ptr_nonnull(logring_reserve(&r));
    logring_fini(&r);
}
END_TEST

#define N_ITEMS 200000u

struct pair {
    struct logring r;
    int drop;          /* 1: the producer drops on full (the log's rule); 0: it retries */
    uint64_t accepted; /* producer's */
    uint64_t dropped;
    uint64_t received; /* consumer's */
    int bad;           /* out of order or torn */
};

static void *producer(void *arg)
{
    struct pair *p = arg;
    for (uint64_t i = 0; i < N_ITEMS; i++) {
        struct item *it;
        while (!(it = logring_reserve(&p->r)) && !p->drop)
            sched_yield(); /* two cores shared by many: let the consumer run */
        if (!it) {
            p->dropped++;
            continue;
        }
        it->seq = i;
        it->check = ~i;
        logring_commit(&p->r);
        p->accepted++;
    }
    return NULL;
}

static void run_pair(struct pair *p)
{
    ck_assert_int_eq(logring_init(&p->r, 64, sizeof(struct item)), 0);
    pthread_t t;
    ck_assert_int_eq(pthread_create(&t, NULL, producer, p), 0);
    uint64_t last = 0;
    int first = 1;
    /* The producer's last item is N_ITEMS-1 unless it was dropped: stop on
     * it, or once the producer is done and the ring is empty. */
    for (;;) {
        const struct item *it = logring_peek(&p->r);
        if (!it) {
            if (pthread_tryjoin_np(t, NULL) == 0) {
                while ((it = logring_peek(&p->r))) {
                    p->bad |= it->check != ~it->seq || (!first && it->seq <= last);
                    last = it->seq, first = 0, p->received++;
                    logring_release(&p->r);
                }
                break;
            }
            sched_yield();
            continue;
        }
        p->bad |= it->check != ~it->seq || (!first && it->seq <= last);
        last = it->seq;
        first = 0;
        p->received++;
        logring_release(&p->r);
    }
    logring_fini(&p->r);
}

START_TEST(two_threads_lose_nothing_accepted_and_keep_order)
{
    struct pair p = {.drop = 0};
    run_pair(&p);
    ck_assert_int_eq(p.bad, 0);
    ck_assert_uint_eq(p.received, N_ITEMS);
    struct pair q = {.drop = 1};
    run_pair(&q);
    ck_assert_int_eq(q.bad, 0);
    ck_assert_uint_eq(q.received, q.accepted);
    ck_assert_uint_eq(q.accepted + q.dropped, N_ITEMS);
}
END_TEST

static Suite *make_suite(void)
{
    Suite *s = suite_create("logring");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, refuses_bad_sizes);
    tcase_add_test(tc, holds_n_then_refuses_and_keeps_order_over_wraps);
    tcase_add_test(tc, a_reserved_slot_is_hidden_until_committed);
    tcase_add_test(tc, two_threads_lose_nothing_accepted_and_keep_order);
    suite_add_tcase(s, tc);
    return s;
}
