/* tests/unit/test_wait.c — reactor/wait.c: wait_until looks before it
 * sleeps, ends when the condition holds (set by another thread), when the
 * sleeper gives a reason, or at the deadline after one last look, and never
 * asks the sleeper for more than a step. */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <time.h>

#include "check_main.h"
#include "reactor/wait.h"

struct cond {
    atomic_int flag;
    int looks;      /* calls of done */
    int sleeps;     /* calls of the sleeper */
    unsigned most;  /* the longest sleep asked for */
    int give_up_at; /* the sleeper's call that returns a reason (0: never) */
};

static int flag_set(void *arg)
{
    struct cond *c = arg;
    c->looks++;
    return atomic_load(&c->flag);
}

static int sleeper(void *arg, unsigned ms)
{
    struct cond *c = arg;
    c->sleeps++;
    if (ms > c->most)
        c->most = ms;
    struct timespec ts = {0, (long)ms * 1000000L};
    nanosleep(&ts, NULL);
    return c->give_up_at && c->sleeps == c->give_up_at ? 7 : 0;
}

START_TEST(done_at_once_never_sleeps)
{
    struct cond c = {.flag = 1};
    ck_assert_int_eq(wait_until(flag_set, sleeper, &c, 1000, 10), 0);
    ck_assert_int_eq(c.looks, 1);
    ck_assert_int_eq(c.sleeps, 0);
    /* Even with no time at all. */
    ck_assert_int_eq(wait_until(flag_set, sleeper, &c, 0, 10), 0);
}
END_TEST

START_TEST(times_out_after_a_last_look_in_steps)
{
    struct cond c = {0};
    ck_assert_int_eq(wait_until(flag_set, sleeper, &c, 50, 10), -ETIMEDOUT);
    ck_assert_int_ge(c.sleeps, 1);
    ck_assert_int_eq(c.looks, c.sleeps + 1); /* a look before each sleep and after the last */
    ck_assert_uint_le(c.most, 10);
    /* No time: one look, no sleep. */
    struct cond z = {0};
    ck_assert_int_eq(wait_until(flag_set, sleeper, &z, 0, 10), -ETIMEDOUT);
    ck_assert_int_eq(z.looks, 1);
    ck_assert_int_eq(z.sleeps, 0);
}
END_TEST

START_TEST(the_sleepers_reason_ends_the_wait)
{
    struct cond c = {.give_up_at = 2};
    ck_assert_int_eq(wait_until(flag_set, sleeper, &c, 60000, 1), 7);
    ck_assert_int_eq(c.sleeps, 2);
}
END_TEST

static void *set_later(void *arg)
{
    struct timespec ts = {0, 30 * 1000000L};
    nanosleep(&ts, NULL);
    atomic_store(&((struct cond *)arg)->flag, 1);
    return NULL;
}

START_TEST(another_thread_ends_it_with_nanosleep)
{
    struct cond c = {0};
    pthread_t t;
    ck_assert_int_eq(pthread_create(&t, NULL, set_later, &c), 0);
    /* sleep NULL: the default nanosleep; a generous bound, no timing asserted. */
    ck_assert_int_eq(wait_until(flag_set, NULL, &c, 60000, 1), 0);
    pthread_join(t, NULL);
    ck_assert_int_ge(c.looks, 2);
}
END_TEST

static Suite *make_suite(void)
{
    Suite *s = suite_create("wait");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, done_at_once_never_sleeps);
    tcase_add_test(tc, times_out_after_a_last_look_in_steps);
    tcase_add_test(tc, the_sleepers_reason_ends_the_wait);
    tcase_add_test(tc, another_thread_ends_it_with_nanosleep);
    suite_add_tcase(s, tc);
    return s;
}
