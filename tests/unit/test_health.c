/* tests/unit/test_health.c — proxy/health.c's accounting with
 * proxy/backend.c's operator changes: checks and sessions' connects counted
 * apart, enable returning a backend to what its health says, and a state
 * that disagrees with health (what an enable racing a check used to leave)
 * put right by the next check. No poller: health_record for checks, the
 * peer API (pool_pick/pool_done) for sessions' connects. */
#define _GNU_SOURCE
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "check_main.h"
#include "proxy/backend.h"
#include "proxy/health.h"
#include "proxy/pool.h"

#define RISE 2
#define FALL 3

static struct pool pl;
static struct backend *b;

static void setup(void)
{
    /* Every up/down is logged: thousands of lines in the race below. */
    ck_assert_ptr_nonnull(freopen("/dev/null", "w", stderr));
    static struct cfg_backend bs[1] = {{.name = "b0", .address = "127.0.0.1:1", .weight = 1}};
    struct cfg_pool cp = {.name = "p",
                          .connect_timeout_ms = 1,
                          .retries = 1,
                          .buffer_high_watermark = 8192,
                          .buffer_low_watermark = 1024,
                          .health_check = {.enabled = 1,
                                           .interval_ms = 1000,
                                           .timeout_ms = 100,
                                           .rise = RISE,
                                           .fall = FALL},
                          .backends = bs,
                          .nbackends = 1};
    ck_assert_int_eq(pool_init(&pl, &cp), 0);
    b = pool_current(&pl)->b[0];
}

static void teardown(void)
{
    pool_fini(&pl);
}

static int state(void)
{
    return atomic_load(&b->state);
}

static void checks(int ok, int n)
{
    for (int i = 0; i < n; i++)
        health_record(&pl, b, ok);
}

/* Sessions' connects, reported through the peer API as session_dial does. */
static void connects(int ok, int n)
{
    for (int i = 0; i < n; i++) {
        if (ok) {
            pool_done(&pl, b, POOL_CONNECTED);
            continue;
        }
        ck_assert_ptr_eq(pool_pick(&pl, NULL, 0), b); /* a failure gives a slot back */
        pool_done(&pl, b, POOL_REFUSED);
    }
}

START_TEST(connects_do_not_reset_the_checks_count)
{
    /* A backend that accepts TCP but fails its checks, under traffic. */
    for (int i = 0; i < FALL; i++) {
        ck_assert_int_eq(state(), BACKEND_UP);
        checks(0, 1);
        connects(1, 50);
    }
    ck_assert_int_eq(state(), BACKEND_DOWN);
    ck_assert_uint_eq(atomic_load(&b->consecutive_failures), FALL);
}
END_TEST

START_TEST(connect_failures_count_toward_fall_apart_from_checks)
{
    connects(0, FALL - 1);
    checks(1, 1);   /* a passing check does not clear the sessions' evidence... */
    connects(1, 1); /* ...a successful connect does */
    connects(0, FALL - 1);
    ck_assert_int_eq(state(), BACKEND_UP);
    connects(0, 1);
    ck_assert_int_eq(state(), BACKEND_DOWN);
    ck_assert_uint_eq(atomic_load(&b->consecutive_failures), 0);
    /* Back up only after `rise` fresh passing checks, then clean. */
    checks(1, RISE - 1);
    ck_assert_int_eq(state(), BACKEND_DOWN);
    checks(1, 1);
    ck_assert_int_eq(state(), BACKEND_UP);
    ck_assert_uint_eq(atomic_load(&b->consecutive_connect_failures), 0);
}
END_TEST

START_TEST(enable_returns_to_what_health_says)
{
    ck_assert_int_eq(backend_disable(b, 0), BACKEND_CHANGED);
    checks(0, FALL);
    ck_assert_int_eq(state(), BACKEND_DISABLED); /* operator state wins */
    ck_assert_int_eq(backend_enable(b), BACKEND_CHANGED);
    ck_assert_int_eq(state(), BACKEND_DOWN);
    ck_assert_int_eq(backend_enable(b), BACKEND_REFUSED);
    checks(1, RISE);
    ck_assert_int_eq(state(), BACKEND_UP);
    ck_assert_int_eq(backend_enable(b), BACKEND_UNCHANGED);
    ck_assert_int_eq(backend_drain(b, 0), BACKEND_CHANGED);
    ck_assert_int_eq(backend_enable(b), BACKEND_CHANGED);
    ck_assert_int_eq(state(), BACKEND_UP);
}
END_TEST

START_TEST(a_failing_check_takes_a_stale_up_down)
{
    /* What an enable racing a failing check left: up, health failing. The
     * next failing check must take it down (it used to skip go_down because
     * `healthy` was already 0, leaving it up for good). */
    checks(0, FALL);
    atomic_store(&b->state, BACKEND_UP);
    checks(0, 1);
    ck_assert_int_eq(state(), BACKEND_DOWN);
}
END_TEST

START_TEST(a_passing_check_brings_a_stale_down_up)
{
    checks(1, RISE);
    atomic_store(&b->state, BACKEND_DOWN); /* down while passing: the mirror race */
    checks(1, 1);
    ck_assert_int_eq(state(), BACKEND_UP);
}
END_TEST

/* Enable against a failing check, many times over, from two threads released
 * together; after each round an enabled backend must agree with its health. */
#define RACE_ROUNDS   1000000
#define RACE_BUDGET_S 3
#define RACE_SWEEP    512 /* spins */

static atomic_int round_go, round_done;

static void *checker(void *arg)
{
    for (int r = 1; r <= RACE_ROUNDS; r++) {
        while (atomic_load(&round_go) < r)
            sched_yield();
        if (r & 1)
            checks(0, FALL); /* fall reached in one burst: go_down */
        else
            checks(1, RISE);
        atomic_fetch_add(&round_done, 1);
    }
    return arg;
}

START_TEST(enable_racing_checks_ends_agreeing_with_health)
{
    pthread_t t;
    ck_assert_int_eq(pthread_create(&t, NULL, checker, NULL), 0);
    struct timespec t0, now;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    int rounds = 0, bad = 0;
    for (int r = 1; r <= RACE_ROUNDS; r++, rounds++) {
        ck_assert_int_eq(backend_disable(b, 0), BACKEND_CHANGED);
        atomic_store(&round_go, r);
        for (volatile int i = 0; i < (r * 7) % RACE_SWEEP; i++)
            ; /* enable at varying offsets from the checker's burst */
        backend_enable(b);
        while (atomic_load(&round_done) < r)
            sched_yield();
        if (state() != (atomic_load(&b->healthy) ? BACKEND_UP : BACKEND_DOWN))
            bad++;
        clock_gettime(CLOCK_MONOTONIC, &now);
        if (now.tv_sec - t0.tv_sec >= RACE_BUDGET_S)
            break;
    }
    /* Let the checker finish its rounds without waiting on us. */
    atomic_store(&round_go, RACE_ROUNDS);
    pthread_join(t, NULL);
    ck_assert_msg(bad == 0, "%d of %d rounds ended with state and health disagreeing", bad, rounds);
}
END_TEST

static Suite *make_suite(void)
{
    Suite *s = suite_create("health");
    TCase *tc = tcase_create("evidence");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, connects_do_not_reset_the_checks_count);
    tcase_add_test(tc, connect_failures_count_toward_fall_apart_from_checks);
    tcase_add_test(tc, enable_returns_to_what_health_says);
    tcase_add_test(tc, a_failing_check_takes_a_stale_up_down);
    tcase_add_test(tc, a_passing_check_brings_a_stale_down_up);
    tcase_add_test(tc, enable_racing_checks_ends_agreeing_with_health);
    suite_add_tcase(s, tc);
    return s;
}
