/* tests/unit/test_source_limit.c — proxy/source_limit.c: the per-source
 * table and its token bucket, driven with explicit clock values (no
 * sleeping): max_connections and the place a session gives back, burst then
 * rate, prefix grouping (IPv4, IPv6, IPv4-mapped), the table bounded under
 * 100k distinct sources (idle ones forgotten), failing open when no entry is
 * free, a limited source kept while its bucket refills, and threads
 * accepting at once (as reuseport pollers do): never more than
 * max_connections held, one entry per source. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>

#include "check_main.h"
#include "proxy/source_limit.h"

#define S  (1000000000ull) /* ns per second */
#define T0 (100 * S)       /* any clock value well past 0 */

static struct source_limit t;

static void make(unsigned max, unsigned rate, unsigned burst, unsigned capacity)
{
    struct source_limit_opts o = {.max_connections = max,
                                  .rate_per_s = rate,
                                  .burst = burst,
                                  .prefix_v4 = 32,
                                  .prefix_v6 = 64,
                                  .capacity = capacity};
    ck_assert_int_eq(source_limit_init(&t, &o), 0);
}

static void make_prefixes(unsigned v4, unsigned v6, unsigned max)
{
    struct source_limit_opts o = {
        .max_connections = max, .prefix_v4 = v4, .prefix_v6 = v6, .capacity = 1024};
    ck_assert_int_eq(source_limit_init(&t, &o), 0);
}

static void teardown(void)
{
    source_limit_fini(&t);
}

static struct sockaddr_storage v4(uint32_t host_order)
{
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof(ss));
    struct sockaddr_in *in = (struct sockaddr_in *)&ss;
    in->sin_family = AF_INET;
    in->sin_port = htons(40000);
    in->sin_addr.s_addr = htonl(host_order);
    return ss;
}

static struct sockaddr_storage v6(const char *text)
{
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof(ss));
    struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&ss;
    in6->sin6_family = AF_INET6;
    ck_assert_int_eq(inet_pton(AF_INET6, text, &in6->sin6_addr), 1);
    return ss;
}

static enum source_verdict acq(const struct sockaddr_storage *ss, uint64_t now, uint32_t *ref)
{
    return source_limit_acquire(&t, (const struct sockaddr *)ss, now, ref);
}

/* The open and refused counts of the one source formatted as `want`; -1 if absent. */
static long long open_of(const char *want, uint32_t *refused)
{
    static struct source_stat st[64];
    size_t n = source_limit_top(&t, st, 64);
    for (size_t i = 0; i < n; i++) {
        char buf[64];
        source_stat_format(&st[i], buf, sizeof(buf));
        if (strcmp(buf, want) == 0) {
            if (refused)
                *refused = st[i].refused;
            return st[i].open;
        }
    }
    return -1;
}

START_TEST(test_max_connections)
{
    make(2, 0, 0, 1024);
    struct sockaddr_storage a = v4(0x0a000001), b = v4(0x0a000002);
    uint32_t r1, r2, r3, rb;
    ck_assert_int_eq(acq(&a, T0, &r1), SOURCE_OK);
    ck_assert_int_eq(acq(&a, T0, &r2), SOURCE_OK);
    ck_assert_uint_ne(r1, SOURCE_NONE);
    ck_assert_uint_eq(r1, r2); /* one entry per source */
    ck_assert_int_eq(acq(&a, T0, &r3), SOURCE_OVER_CONNECTIONS);
    ck_assert_uint_eq(r3, SOURCE_NONE);
    ck_assert_int_eq(acq(&b, T0, &rb), SOURCE_OK); /* another source is served */
    uint32_t refused = 0;
    ck_assert_int_eq(open_of("10.0.0.1/32", &refused), 2);
    ck_assert_uint_eq(refused, 1);
    source_limit_release(&t, r1);
    ck_assert_int_eq(open_of("10.0.0.1/32", NULL), 1);
    ck_assert_int_eq(acq(&a, T0, &r3), SOURCE_OK); /* the place given back is taken again */
    ck_assert_int_eq(acq(&a, T0, &r1), SOURCE_OVER_CONNECTIONS);
    source_limit_release(&t, r2);
    source_limit_release(&t, r3);
    source_limit_release(&t, rb);
    source_limit_release(&t, SOURCE_NONE); /* nothing */
    source_limit_release(NULL, 3);         /* a listener without limits */
    ck_assert_int_eq(open_of("10.0.0.1/32", &refused), 0);
    ck_assert_uint_eq(refused, 2);
    ck_assert_uint_eq(source_limit_tracked(&t), 2);
    ck_assert_uint_eq(source_limit_bytes(&t), 1024 * 48);
}
END_TEST

/* Burst then rate, on a clock the test moves: at most burst + rate * T. */
START_TEST(test_burst_then_rate)
{
    make(0, 10, 3, 1024); /* one token per 100 ms, 3 at once */
    struct sockaddr_storage a = v4(0x0a000001);
    uint32_t ref;
    for (int i = 0; i < 3; i++) {
        ck_assert_int_eq(acq(&a, T0, &ref), SOURCE_OK);
        source_limit_release(&t, ref);
    }
    ck_assert_int_eq(acq(&a, T0, &ref), SOURCE_OVER_RATE);
    ck_assert_uint_eq(ref, SOURCE_NONE);
    ck_assert_int_eq(acq(&a, T0 + S / 10 - 1, &ref), SOURCE_OVER_RATE);
    ck_assert_int_eq(acq(&a, T0 + S / 10, &ref), SOURCE_OK); /* one more per interval */
    source_limit_release(&t, ref);
    ck_assert_int_eq(acq(&a, T0 + S / 10, &ref), SOURCE_OVER_RATE);
    /* A long pause refills the bucket to burst, not beyond. */
    uint64_t later = T0 + 60 * S;
    for (int i = 0; i < 3; i++) {
        ck_assert_int_eq(acq(&a, later, &ref), SOURCE_OK);
        source_limit_release(&t, ref);
    }
    ck_assert_int_eq(acq(&a, later, &ref), SOURCE_OVER_RATE);
    /* Over 10 s of attempts every millisecond: burst + 10/s * 10 s pass. */
    struct sockaddr_storage b = v4(0x0a000002);
    unsigned ok = 0;
    for (uint64_t ms = 0; ms <= 10000; ms++) {
        if (acq(&b, T0 + ms * (S / 1000), &ref) == SOURCE_OK) {
            ok++;
            source_limit_release(&t, ref);
        }
    }
    ck_assert_uint_eq(ok, 3 + 100);
    uint32_t refused = 0;
    ck_assert_int_eq(open_of("10.0.0.2/32", &refused), 0);
    ck_assert_uint_eq(refused, 10001 - ok);
}
END_TEST

START_TEST(test_prefix_grouping)
{
    make_prefixes(24, 64, 1);
    uint32_t r1, r2;
    struct sockaddr_storage a = v4(0x7f000002), same = v4(0x7f0000fe), other = v4(0x7f000102);
    ck_assert_int_eq(acq(&a, T0, &r1), SOURCE_OK);
    ck_assert_int_eq(acq(&same, T0, &r2), SOURCE_OVER_CONNECTIONS); /* one /24 */
    ck_assert_int_eq(acq(&other, T0, &r2), SOURCE_OK);
    ck_assert_int_eq(open_of("127.0.0.0/24", NULL), 1);
    ck_assert_int_eq(open_of("127.0.1.0/24", NULL), 1);
    /* A dual-stack listener sees IPv4 clients as ::ffff:a.b.c.d: the same source. */
    struct sockaddr_storage mapped = v6("::ffff:127.0.0.9");
    ck_assert_int_eq(acq(&mapped, T0, &r2), SOURCE_OVER_CONNECTIONS);
    /* IPv6 by /64. */
    struct sockaddr_storage x = v6("2001:db8:1:2::1"), y = v6("2001:db8:1:2:ffff::5"),
                            z = v6("2001:db8:1:3::1");
    ck_assert_int_eq(acq(&x, T0, &r1), SOURCE_OK);
    ck_assert_int_eq(acq(&y, T0, &r2), SOURCE_OVER_CONNECTIONS);
    ck_assert_int_eq(acq(&z, T0, &r2), SOURCE_OK);
    ck_assert_int_eq(open_of("2001:db8:1:2::/64", NULL), 1);
    ck_assert_int_eq(open_of("2001:db8:1:3::/64", NULL), 1);
    /* Families without addresses are not tracked. */
    struct sockaddr_storage unix_peer = {.ss_family = AF_UNIX};
    ck_assert_int_eq(acq(&unix_peer, T0, &r1), SOURCE_OK);
    ck_assert_uint_eq(r1, SOURCE_NONE);
}
END_TEST

START_TEST(test_odd_prefixes)
{
    make_prefixes(0, 128, 1); /* every IPv4 client is one source; each IPv6 address its own */
    uint32_t r;
    struct sockaddr_storage a = v4(0x01020304), b = v4(0xc0a80001);
    ck_assert_int_eq(acq(&a, T0, &r), SOURCE_OK);
    ck_assert_int_eq(acq(&b, T0, &r), SOURCE_OVER_CONNECTIONS);
    ck_assert_int_eq(open_of("0.0.0.0/0", NULL), 1);
    struct sockaddr_storage x = v6("2001:db8::1"), y = v6("2001:db8::2");
    ck_assert_int_eq(acq(&x, T0, &r), SOURCE_OK);
    ck_assert_int_eq(acq(&y, T0, &r), SOURCE_OK);
    ck_assert_int_eq(open_of("2001:db8::1/128", NULL), 1);
    source_limit_fini(&t);
    struct source_limit_opts o = {.prefix_v4 = 20, .prefix_v6 = 64, .capacity = 64};
    ck_assert_int_eq(source_limit_init(&t, &o), 0);
    struct sockaddr_storage c = v4(0x0a0bffff);
    ck_assert_int_eq(acq(&c, T0, &r), SOURCE_OK);
    ck_assert_int_eq(open_of("10.11.240.0/20", NULL), 1);
}
END_TEST

START_TEST(test_bad_options)
{
    struct source_limit_opts o = {.prefix_v4 = 32, .prefix_v6 = 64, .capacity = 1000};
    ck_assert_int_eq(source_limit_init(&t, &o), -EINVAL); /* not a power of two */
    o.capacity = 8;
    ck_assert_int_eq(source_limit_init(&t, &o), -EINVAL); /* under one window */
    o.capacity = 64;
    o.rate_per_s = 5;
    ck_assert_int_eq(source_limit_init(&t, &o), -EINVAL); /* a rate without a burst */
    o.burst = 5;
    ck_assert_int_eq(source_limit_init(&t, &o), 0);
}
END_TEST

/* 100k distinct sources through a 64-entry table: idle ones are forgotten,
 * every new one is tracked, memory never grows. */
START_TEST(test_bounded_under_100k_sources)
{
    make(4, 0, 0, 64);
    for (uint32_t i = 0; i < 100000; i++) {
        struct sockaddr_storage a = v4(0x0a000000 + i);
        uint32_t ref;
        ck_assert_int_eq(acq(&a, T0, &ref), SOURCE_OK);
        ck_assert_uint_ne(ref, SOURCE_NONE);
        ck_assert_uint_lt(ref, 64);
        source_limit_release(&t, ref);
    }
    ck_assert_uint_le(source_limit_tracked(&t), 64);
    ck_assert_uint_ge(atomic_load(&t.evicted), 100000 - 64);
    ck_assert_uint_eq(atomic_load(&t.untracked), 0);
    ck_assert_uint_eq(source_limit_bytes(&t), 64 * 48);
    /* The same with IPv6 sources, each its own /64. */
    for (uint32_t i = 0; i < 100000; i++) {
        char text[64];
        snprintf(text, sizeof(text), "2001:db8:%x:%x::1", i >> 16, i & 0xffff);
        struct sockaddr_storage a = v6(text);
        uint32_t ref;
        ck_assert_int_eq(acq(&a, T0, &ref), SOURCE_OK);
        ck_assert_uint_ne(ref, SOURCE_NONE);
        source_limit_release(&t, ref);
    }
    ck_assert_uint_le(source_limit_tracked(&t), 64);
    ck_assert_uint_eq(atomic_load(&t.untracked), 0);
}
END_TEST

/* Sources that hold sessions are never forgotten: once their windows are
 * full, newcomers go on untracked (fail open, counted) and the held ones
 * keep their limits. */
START_TEST(test_full_table_fails_open)
{
    make(1, 0, 0, 16); /* one window: the whole table */
    uint32_t ref;
    for (uint32_t i = 0; i < 16; i++) {
        struct sockaddr_storage a = v4(0x0a000000 + i);
        ck_assert_int_eq(acq(&a, T0, &ref), SOURCE_OK);
        ck_assert_uint_ne(ref, SOURCE_NONE);
    }
    struct sockaddr_storage late = v4(0x0b000000);
    ck_assert_int_eq(acq(&late, T0, &ref), SOURCE_OK);
    ck_assert_uint_eq(ref, SOURCE_NONE);
    ck_assert_uint_eq(atomic_load(&t.untracked), 1);
    struct sockaddr_storage held = v4(0x0a000003);
    ck_assert_int_eq(acq(&held, T0, &ref), SOURCE_OVER_CONNECTIONS);
    ck_assert_uint_eq(source_limit_tracked(&t), 16);
    ck_assert_uint_eq(atomic_load(&t.evicted), 0);
}
END_TEST

/* A source refused by its rate is not idle until its bucket is full again:
 * forgetting it earlier would hand it a fresh burst. */
START_TEST(test_limited_source_kept_while_refilling)
{
    make(0, 1, 2, 16); /* one window; a token per second, 2 at once */
    struct sockaddr_storage hot = v4(0x0a0000ff);
    uint32_t ref;
    for (int i = 0; i < 2; i++) {
        ck_assert_int_eq(acq(&hot, T0, &ref), SOURCE_OK);
        source_limit_release(&t, ref);
    }
    ck_assert_int_eq(acq(&hot, T0, &ref), SOURCE_OVER_RATE);
    /* 15 more sources fill the window, each with a token taken. */
    for (uint32_t i = 0; i < 15; i++) {
        struct sockaddr_storage a = v4(0x0a000000 + i);
        ck_assert_int_eq(acq(&a, T0, &ref), SOURCE_OK);
        ck_assert_uint_ne(ref, SOURCE_NONE);
        source_limit_release(&t, ref);
    }
    /* At T0 + 1.5 s the 15 are idle again, hot is not (full at T0 + 2 s). */
    struct sockaddr_storage next = v4(0x0c000000);
    ck_assert_int_eq(acq(&next, T0 + 3 * S / 2, &ref), SOURCE_OK);
    ck_assert_uint_ne(ref, SOURCE_NONE); /* in the place of an idle one */
    ck_assert_uint_eq(atomic_load(&t.evicted), 1);
    ck_assert_int_eq(acq(&hot, T0 + 3 * S / 2, &ref), SOURCE_OK); /* a token came back */
    source_limit_release(&t, ref);
    ck_assert_int_eq(acq(&hot, T0 + 3 * S / 2, &ref), SOURCE_OVER_RATE);
    uint32_t refused = 0;
    ck_assert_int_ge(open_of("10.0.0.255/32", &refused), 0);
    ck_assert_uint_eq(refused, 2); /* still the same entry: its history is kept */
}
END_TEST

/* --- threads accepting at once (reuseport) ------------------------------- */

#define THREADS    4
#define ITERATIONS 100000
#define KEYS       200

struct race {
    unsigned max;
    atomic_int held[KEYS];
    atomic_int worst; /* the most sessions of one source held at once */
    atomic_uint ok, over, untracked;
    unsigned nkeys;
    int yield; /* hold each session across a sched_yield: more overlap */
};

static void *racer(void *arg)
{
    struct race *r = arg;
    uint64_t seed = (uint64_t)(uintptr_t)&seed;
    for (int i = 0; i < ITERATIONS; i++) {
        seed = seed * 6364136223846793005ull + 1442695040888963407ull;
        unsigned k = (unsigned)(seed >> 33) % r->nkeys;
        struct sockaddr_storage a = v4(0x0a000000 + k);
        uint32_t ref;
        enum source_verdict v = acq(&a, T0, &ref);
        if (v != SOURCE_OK) {
            atomic_fetch_add(&r->over, 1);
            continue;
        }
        if (ref == SOURCE_NONE) {
            atomic_fetch_add(&r->untracked, 1);
            continue;
        }
        int now = atomic_fetch_add(&r->held[k], 1) + 1;
        int w = atomic_load(&r->worst);
        while (now > w && !atomic_compare_exchange_weak(&r->worst, &w, now))
            ;
        atomic_fetch_add(&r->ok, 1);
        if (r->yield)
            sched_yield();
        atomic_fetch_sub(&r->held[k], 1);
        source_limit_release(&t, ref);
    }
    return NULL;
}

static void race(struct race *r)
{
    pthread_t th[THREADS];
    for (int i = 0; i < THREADS; i++)
        ck_assert_int_eq(pthread_create(&th[i], NULL, racer, r), 0);
    for (int i = 0; i < THREADS; i++)
        pthread_join(th[i], NULL);
    ck_assert_int_le(atomic_load(&r->worst), (int)r->max);
    ck_assert_uint_gt(atomic_load(&r->ok), 0);
    /* Every place was given back: no source holds a session. */
    static struct source_stat st[1024];
    size_t n = source_limit_top(&t, st, 1024);
    for (size_t i = 0; i < n; i++)
        ck_assert_uint_eq(st[i].open, 0);
}

/* A few sources in a table with room: the cap holds across threads. */
START_TEST(test_threads_keep_the_cap)
{
    make(2, 0, 0, 1024);
    static struct race r;
    memset(&r, 0, sizeof(r));
    r.max = 2;
    r.nkeys = 2;
    r.yield = 1;
    race(&r);
}
END_TEST

/* Many sources through a small table: entries are forgotten and claimed
 * while other threads pin them. With max_connections 1 a second entry for
 * one source would let two threads hold it at once. */
START_TEST(test_threads_through_evictions)
{
    make(1, 0, 0, 64);
    static struct race r;
    memset(&r, 0, sizeof(r));
    r.max = 1;
    r.nkeys = KEYS;
    race(&r);
    ck_assert_uint_gt(atomic_load(&t.evicted), 0);
    ck_assert_uint_le(source_limit_tracked(&t), 64);
}
END_TEST

static Suite *make_suite(void)
{
    Suite *s = suite_create("source_limit");
    TCase *tc = tcase_create("table");
    tcase_add_checked_fixture(tc, NULL, teardown);
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_max_connections);
    tcase_add_test(tc, test_burst_then_rate);
    tcase_add_test(tc, test_prefix_grouping);
    tcase_add_test(tc, test_odd_prefixes);
    tcase_add_test(tc, test_bad_options);
    tcase_add_test(tc, test_bounded_under_100k_sources);
    tcase_add_test(tc, test_full_table_fails_open);
    tcase_add_test(tc, test_limited_source_kept_while_refilling);
    tcase_add_test(tc, test_threads_keep_the_cap);
    tcase_add_test(tc, test_threads_through_evictions);
    suite_add_tcase(s, tc);
    return s;
}
