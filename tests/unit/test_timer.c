/* tests/unit/test_timer.c — reactor/timer.c: ordering, cancel, re-arm, 100k
 * timers, and timers firing on a real poller thread. */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdint.h>
#include <time.h>

#include "check_main.h"
#include "reactor/clock.h"
#include "reactor/poller.h"
#include "reactor/timer.h"

static uint64_t last_deadline;
static unsigned fired;
static int in_order;

static void record(void *loop, struct timer *t, void *data)
{
    if (t->deadline_ms < last_deadline)
        in_order = 0;
    last_deadline = t->deadline_ms;
    fired++;
    (void)data;
}

START_TEST(fires_in_deadline_order)
{
    enum { N = 5000 };
    static struct timer ts[N];
    struct timer_heap h;
    timer_heap_init(&h);
    uint64_t x = 12345;
    for (int i = 0; i < N; i++) {
        x = x * 6364136223846793005ull + 1442695040888963407ull;
        timer_init(&ts[i], record, NULL);
        ck_assert_int_eq(timer_add(&h, &ts[i], (x >> 33) % 100000), 0);
    }
    fired = 0;
    last_deadline = 0;
    in_order = 1;
    ck_assert_uint_eq(timer_run_expired(&h, 50000, NULL), fired);
    uint64_t first_pass = fired;
    ck_assert_uint_le(timer_next_deadline(&h), 100000);
    ck_assert_uint_gt(timer_next_deadline(&h), 50000);
    timer_run_expired(&h, 100000, NULL);
    ck_assert_uint_eq(fired, N);
    ck_assert(first_pass > 0 && first_pass < N);
    ck_assert(in_order);
    ck_assert_uint_eq(h.n, 0);
    timer_heap_free(&h);
}
END_TEST

START_TEST(cancel_removes_at_once)
{
    enum { N = 1000 };
    static struct timer ts[N];
    struct timer_heap h;
    timer_heap_init(&h);
    for (int i = 0; i < N; i++) {
        timer_init(&ts[i], record, NULL);
        timer_add(&h, &ts[i], (uint64_t)(N - i));
    }
    for (int i = 0; i < N; i += 2)
        timer_cancel(&h, &ts[i]);
    ck_assert_uint_eq(h.n, N / 2);
    for (int i = 0; i < N; i++)
        ck_assert_int_eq(timer_armed(&ts[i]), i % 2);
    timer_cancel(&h, &ts[0]); /* cancelling twice is harmless */
    fired = 0;
    last_deadline = 0;
    in_order = 1;
    timer_run_expired(&h, N, NULL);
    ck_assert_uint_eq(fired, N / 2);
    ck_assert(in_order);
    timer_heap_free(&h);
}
END_TEST

static void rearm_now(void *loop, struct timer *t, void *data)
{
    fired++;
    timer_add(data, t, t->deadline_ms); /* due again at once */
}

START_TEST(rearm_in_callback_is_bounded)
{
    struct timer_heap h;
    struct timer t;
    timer_heap_init(&h);
    timer_init(&t, rearm_now, &h);
    timer_add(&h, &t, 5);
    fired = 0;
    ck_assert_uint_eq(timer_run_expired(&h, 10, NULL), 1);
    ck_assert(timer_armed(&t));
    timer_heap_free(&h);
}
END_TEST

START_TEST(hundred_thousand_timers)
{
    enum { N = 100000 };
    struct timer *ts = calloc(N, sizeof(*ts));
    struct timer_heap h;
    timer_heap_init(&h);
    for (int i = 0; i < N; i++) {
        timer_init(&ts[i], record, NULL);
        ck_assert_int_eq(timer_add(&h, &ts[i], (uint64_t)((i * 7919) % N)), 0);
    }
    for (int i = 0; i < N; i += 3)
        timer_cancel(&h, &ts[i]);
    /* Re-arming (an idle timeout pushed back) keeps one entry per timer. */
    for (int i = 1; i < N; i += 3)
        timer_add(&h, &ts[i], (uint64_t)(N + i));
    fired = 0;
    last_deadline = 0;
    in_order = 1;
    timer_run_expired(&h, 2 * N, NULL);
    ck_assert_uint_eq(fired, N - (N + 2) / 3);
    ck_assert(in_order);
    timer_heap_free(&h);
    free(ts);
}
END_TEST

struct on_thread {
    struct poller_task task;
    struct timer t;
    atomic_int fired;
    pthread_t fired_on;
    uint64_t armed_at, fired_at;
};

static void fire_on_thread(void *loop, struct timer *t, void *data)
{
    struct on_thread *o = data;
    o->fired_on = pthread_self();
    o->fired_at = clock_mono_ms();
    atomic_store(&o->fired, 1);
}

static void arm_on_thread(struct poller *p, struct poller_task *t, void *arg)
{
    struct on_thread *o = arg;
    timer_init(&o->t, fire_on_thread, o);
    o->armed_at = clock_mono_ms();
    poller_timer_start(p, &o->t, 30);
}

static void *run_poller(void *p)
{
    poller_run(p);
    return NULL;
}

START_TEST(fires_on_a_real_poller_thread)
{
    struct poller *p;
    ck_assert_int_eq(poller_create(1, NULL, &p), 0);
    pthread_t th;
    pthread_create(&th, NULL, run_poller, p);
    struct on_thread o = {0};
    atomic_init(&o.fired, 0);
    poller_task_init(&o.task, arm_on_thread, &o);
    ck_assert_int_eq(poller_post(p, &o.task), 0);
    for (int i = 0; i < 5000 && !atomic_load(&o.fired); i++) {
        struct timespec ts = {0, 1000000};
        nanosleep(&ts, NULL);
    }
    ck_assert_int_eq(atomic_load(&o.fired), 1);
    ck_assert(pthread_equal(o.fired_on, th));
    ck_assert_uint_ge(o.fired_at - o.armed_at, 29); /* never early */
    ck_assert_uint_ge(atomic_load(&poller_counters(p)->timers_fired), 1);
    poller_stop(p);
    pthread_join(th, NULL);
    poller_destroy(p);
}
END_TEST

static Suite *make_suite(void)
{
    Suite *s = suite_create("timer");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, fires_in_deadline_order);
    tcase_add_test(tc, cancel_removes_at_once);
    tcase_add_test(tc, rearm_in_callback_is_bounded);
    tcase_add_test(tc, hundred_thousand_timers);
    tcase_add_test(tc, fires_on_a_real_poller_thread);
    suite_add_tcase(s, tc);
    return s;
}
