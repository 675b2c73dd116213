/* tests/unit/test_peer.c — the peer API of proxy/pool.c: pool_pick() and
 * pool_done() with each outcome, on real pools and backends. What a pick's
 * outcome does to its slot, the backend's connect counters and passive
 * health (max_fails within fail_window_ms without checks, toward `fall` with
 * them); drains are exact through the slots; this host's errors never count
 * against a backend; outcomes of real loopback dials; the client key. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include "check_main.h"
#include "proxy/backend.h"
#include "proxy/health.h"
#include "proxy/pool.h"
#include "proxy/sock.h"
#include "reactor/clock.h"

#define FALL         3
#define MAX_FAILS    3
#define WINDOW_MS    60000 /* far longer than any test: the window never ends by itself */
#define DIAL_WAIT_MS 5000  /* a loopback connect's result; bounded, never a timing assertion */

struct pool_opts {
    size_t n;
    enum cfg_pool_balance balance;
    int checks; /* active health checks enabled (fall = FALL) */
    unsigned max_fails;
    const struct cfg_addrs *addrs; /* every backend's; NULL: 127.0.0.1:1 */
};

static struct pool pl;

static void make_pool(const struct pool_opts *o)
{
    struct cfg_backend bs[4];
    char names[4][24];
    struct cfg_addrs none = {.n = 1};
    struct sockaddr_in *sin = (struct sockaddr_in *)&none.a[0].ss;
    sin->sin_family = AF_INET;
    sin->sin_port = htons(1);
    sin->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    none.a[0].len = sizeof(*sin);
    ck_assert_uint_le(o->n, 4);
    memset(bs, 0, sizeof(bs));
    for (size_t i = 0; i < o->n; i++) {
        snprintf(names[i], sizeof(names[i]), "b%zu", i);
        bs[i].name = names[i];
        bs[i].address = "127.0.0.1:1";
        bs[i].addrs = o->addrs ? *o->addrs : none;
        bs[i].weight = 1;
    }
    struct cfg_pool cp = {.name = "p",
                          .balance = o->balance,
                          .connect_timeout_ms = 1000,
                          .retries = 1,
                          .buffer_high_watermark = 8192,
                          .buffer_low_watermark = 1024,
                          .maglev_table_size = 251,
                          .max_fails = o->max_fails,
                          .fail_window_ms = WINDOW_MS,
                          .health_check = {.enabled = o->checks,
                                           .interval_ms = 1000,
                                           .timeout_ms = 100,
                                           .rise = 2,
                                           .fall = FALL},
                          .backends = bs,
                          .nbackends = o->n};
    ck_assert_int_eq(pool_init(&pl, &cp), 0);
}

static void setup(void)
{
    /* Health transitions are logged. */
    ck_assert_ptr_nonnull(freopen("/dev/null", "w", stderr));
}

static void teardown(void)
{
    pool_fini(&pl);
}

static struct backend *B(size_t i)
{
    return pool_current(&pl)->b[i];
}

static uint64_t active(const struct backend *b)
{
    return atomic_load(&b->active_connections);
}

static uint64_t failures(const struct backend *b)
{
    return atomic_load(&b->connect_failures);
}

static int state(const struct backend *b)
{
    return atomic_load(&b->state);
}

/* A one-backend pool's pick, reported at once with outcome o. */
static void dial_once(enum pool_outcome o)
{
    struct backend *b = pool_pick(&pl, NULL, 0);
    ck_assert_ptr_eq(b, B(0));
    pool_done(&pl, b, o);
}

START_TEST(a_pick_holds_its_slot_until_the_session_finishes)
{
    make_pool(&(struct pool_opts){.n = 1});
    struct backend *b = pool_pick(&pl, NULL, 0);
    ck_assert_ptr_eq(b, B(0));
    ck_assert_uint_eq(active(b), 1);
    ck_assert_uint_eq(atomic_load(&b->total_connections), 1);
    pool_done(&pl, b, POOL_CONNECTED); /* relaying: the slot stays */
    ck_assert_uint_eq(active(b), 1);
    pool_done(&pl, b, POOL_FINISHED);
    ck_assert_uint_eq(active(b), 0);
    ck_assert_uint_eq(atomic_load(&b->total_connections), 1);
    ck_assert_uint_eq(failures(b), 0);
    /* A session that gives up while connecting (client gone) finishes too. */
    dial_once(POOL_FINISHED);
    ck_assert_uint_eq(active(b), 0);
    ck_assert_uint_eq(failures(b), 0);
    ck_assert_int_eq(state(b), BACKEND_UP);
}
END_TEST

START_TEST(refused_and_timeout_are_the_backends_failures)
{
    make_pool(&(struct pool_opts){.n = 1});
    struct backend *b = B(0);
    dial_once(POOL_REFUSED);
    ck_assert_uint_eq(active(b), 0);
    ck_assert_uint_eq(failures(b), 1);
    ck_assert_uint_eq(atomic_load(&b->consecutive_connect_failures), 1);
    dial_once(POOL_TIMEOUT);
    ck_assert_uint_eq(active(b), 0);
    ck_assert_uint_eq(failures(b), 2);
    ck_assert_uint_eq(atomic_load(&b->consecutive_connect_failures), 2);
    /* A connect clears the sessions' run, not the counter. */
    struct backend *got = pool_pick(&pl, NULL, 0);
    pool_done(&pl, got, POOL_CONNECTED);
    ck_assert_uint_eq(atomic_load(&b->consecutive_connect_failures), 0);
    ck_assert_uint_eq(failures(b), 2);
    pool_done(&pl, got, POOL_FINISHED);
    ck_assert_uint_eq(active(b), 0);
    /* Neither max_fails nor checks configured: failures never take it down. */
    ck_assert_int_eq(state(b), BACKEND_UP);
}
END_TEST

START_TEST(local_errors_are_not_counted_against_the_backend)
{
    make_pool(&(struct pool_opts){.n = 1, .max_fails = 1});
    struct backend *b = B(0);
    for (int i = 0; i < 10; i++)
        dial_once(POOL_LOCAL_ERROR);
    ck_assert_uint_eq(active(b), 0);
    ck_assert_uint_eq(failures(b), 0);
    ck_assert_uint_eq(atomic_load(&b->consecutive_connect_failures), 0);
    ck_assert_uint_eq(atomic_load(&b->window_fails), 0);
    ck_assert_int_eq(state(b), BACKEND_UP); /* max_fails 1 would have taken it down */
    dial_once(POOL_REFUSED);
    ck_assert_int_eq(state(b), BACKEND_DOWN);
}
END_TEST

START_TEST(max_fails_within_the_window_take_it_down_until_the_window_passes)
{
    make_pool(&(struct pool_opts){.n = 1, .max_fails = MAX_FAILS});
    struct backend *b = B(0);
    for (int i = 0; i < MAX_FAILS - 1; i++)
        dial_once(POOL_REFUSED);
    /* A connect in between clears the run, not the window: nginx's max_fails. */
    struct backend *got = pool_pick(&pl, NULL, 0);
    pool_done(&pl, got, POOL_CONNECTED);
    pool_done(&pl, got, POOL_FINISHED);
    ck_assert_int_eq(state(b), BACKEND_UP);
    uint64_t before = clock_mono_ms();
    dial_once(POOL_TIMEOUT);
    ck_assert_int_eq(state(b), BACKEND_DOWN);
    ck_assert_int_eq(atomic_load(&b->healthy), 0);
    ck_assert_ptr_null(pool_pick(&pl, NULL, 0));
    ck_assert_uint_eq(active(b), 0);
    uint64_t until = atomic_load(&b->down_until_ms);
    ck_assert_uint_ge(until, before + WINDOW_MS);
    health_tick(&pl, b, until - 1);
    ck_assert_int_eq(state(b), BACKEND_DOWN);
    health_tick(&pl, b, until);
    ck_assert_int_eq(state(b), BACKEND_UP);
    ck_assert_uint_eq(atomic_load(&b->window_fails), 0);
    ck_assert_uint_eq(atomic_load(&b->consecutive_connect_failures), 0);
    dial_once(POOL_FINISHED); /* picked again */
}
END_TEST

START_TEST(failures_of_an_old_window_are_forgotten)
{
    make_pool(&(struct pool_opts){.n = 1, .max_fails = MAX_FAILS});
    struct backend *b = B(0);
    for (int i = 0; i < MAX_FAILS - 1; i++)
        dial_once(POOL_REFUSED);
    /* The window began longer ago than fail_window_ms. */
    atomic_store(&b->window_start_ms, clock_mono_ms() - WINDOW_MS - 1);
    dial_once(POOL_REFUSED);
    ck_assert_int_eq(state(b), BACKEND_UP);
    ck_assert_uint_eq(atomic_load(&b->window_fails), 1);
    ck_assert_uint_eq(failures(b), MAX_FAILS);
}
END_TEST

START_TEST(with_checks_connect_failures_count_toward_fall)
{
    /* max_fails is the rule without checks only: 1 here would end at once. */
    make_pool(&(struct pool_opts){.n = 1, .checks = 1, .max_fails = 1});
    struct backend *b = B(0);
    for (int i = 0; i < FALL - 1; i++)
        dial_once(POOL_REFUSED);
    struct backend *got = pool_pick(&pl, NULL, 0);
    pool_done(&pl, got, POOL_CONNECTED); /* clears the run */
    pool_done(&pl, got, POOL_FINISHED);
    for (int i = 0; i < FALL - 1; i++)
        dial_once(POOL_TIMEOUT);
    ck_assert_int_eq(state(b), BACKEND_UP);
    ck_assert_uint_eq(atomic_load(&b->window_fails), 0);
    dial_once(POOL_REFUSED);
    ck_assert_int_eq(state(b), BACKEND_DOWN);
    ck_assert_uint_eq(atomic_load(&b->down_until_ms), 0); /* checks bring it back, not time */
    ck_assert_uint_eq(atomic_load(&b->consecutive_failures), 0); /* the checks' own: untouched */
    ck_assert_ptr_null(pool_pick(&pl, NULL, 0));
    /* `rise` passing checks bring it back with a clean run. */
    health_record(&pl, b, 1);
    health_record(&pl, b, 1);
    ck_assert_int_eq(state(b), BACKEND_UP);
    ck_assert_uint_eq(atomic_load(&b->consecutive_connect_failures), 0);
}
END_TEST

START_TEST(failures_never_take_an_operator_state)
{
    make_pool(&(struct pool_opts){.n = 1, .checks = 1});
    struct backend *b = B(0);
    struct backend *held[FALL];
    for (int i = 0; i < FALL; i++) {
        held[i] = pool_pick(&pl, NULL, 0);
        ck_assert_ptr_eq(held[i], b);
    }
    ck_assert_int_eq(backend_drain(b, 0), BACKEND_CHANGED);
    for (int i = 0; i < FALL; i++)
        pool_done(&pl, held[i], POOL_REFUSED); /* dials under way when the drain came */
    ck_assert_int_eq(state(b), BACKEND_DRAINING);
    ck_assert_int_eq(atomic_load(&b->healthy), 0);
    ck_assert_int_eq(backend_state_now(b), BACKEND_DRAINED);
    ck_assert_uint_eq(failures(b), FALL);
}
END_TEST

START_TEST(a_draining_backend_gets_no_pick_and_drains_on_done)
{
    make_pool(&(struct pool_opts){.n = 2});
    struct backend *b0 = B(0), *b1 = B(1);
    struct backend *held[2] = {pool_pick(&pl, NULL, 0), pool_pick(&pl, NULL, 0)};
    ck_assert_ptr_eq(held[0], b0); /* round robin, weights 1:1 */
    ck_assert_ptr_eq(held[1], b1);
    pool_done(&pl, held[0], POOL_CONNECTED);
    ck_assert_int_eq(backend_drain(b0, 0), BACKEND_CHANGED);
    ck_assert_int_eq(backend_state_now(b0), BACKEND_DRAINING); /* its session runs on */
    for (int i = 0; i < 100; i++) {
        struct backend *b = pool_pick(&pl, NULL, 0);
        ck_assert_ptr_eq(b, b1);
        pool_done(&pl, b, i % 2 ? POOL_FINISHED : POOL_LOCAL_ERROR);
    }
    /* Retrying after b1 failed: still never the draining one. */
    ck_assert_ptr_eq(pool_pick(&pl, b1, 0), b1);
    pool_done(&pl, b1, POOL_FINISHED);
    ck_assert_uint_eq(active(b0), 1);
    pool_done(&pl, held[0], POOL_FINISHED);
    ck_assert_int_eq(backend_state_now(b0), BACKEND_DRAINED);
    /* A failed dial gives its slot back too. */
    ck_assert_int_eq(backend_drain(b1, 0), BACKEND_CHANGED);
    ck_assert_int_eq(backend_state_now(b1), BACKEND_DRAINING);
    ck_assert_ptr_null(pool_pick(&pl, NULL, 0));
    pool_done(&pl, held[1], POOL_TIMEOUT);
    ck_assert_int_eq(backend_state_now(b1), BACKEND_DRAINED);
    ck_assert_uint_eq(active(b0) + active(b1), 0);
}
END_TEST

START_TEST(dial_errors_map_to_outcomes)
{
    ck_assert_int_eq(pool_dial_outcome(0), POOL_CONNECTED);
    ck_assert_int_eq(pool_dial_outcome(-ECONNREFUSED), POOL_REFUSED);
    ck_assert_int_eq(pool_dial_outcome(-EHOSTUNREACH), POOL_REFUSED);
    ck_assert_int_eq(pool_dial_outcome(-ECONNRESET), POOL_REFUSED);
    ck_assert_int_eq(pool_dial_outcome(-ETIMEDOUT), POOL_TIMEOUT);
    const int local[] = {EMFILE, ENFILE, ENOBUFS, ENOMEM, EADDRNOTAVAIL, ENOSPC};
    for (size_t i = 0; i < sizeof(local) / sizeof(local[0]); i++)
        ck_assert_int_eq(pool_dial_outcome(-local[i]), POOL_LOCAL_ERROR);
}
END_TEST

/* A loopback address that listens (fd returned) or, with fd NULL, one that
 * did and was closed: nothing listens there now, so a connect is refused. */
static void loopback(struct cfg_sockaddr *a, int *fd)
{
    int s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    ck_assert_int_ge(s, 0);
    struct sockaddr_in *sin = (struct sockaddr_in *)&a->ss;
    memset(a, 0, sizeof(*a));
    sin->sin_family = AF_INET;
    sin->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a->len = sizeof(*sin);
    ck_assert_int_eq(bind(s, (struct sockaddr *)sin, a->len), 0);
    ck_assert_int_eq(listen(s, 8), 0);
    socklen_t len = a->len;
    ck_assert_int_eq(getsockname(s, (struct sockaddr *)sin, &len), 0);
    if (fd)
        *fd = s;
    else
        close(s);
}

/* What session_dial sees of address i: the connect's result (-errno or 0). */
static int dial_and_wait(struct backend *b, unsigned i)
{
    int fd = -1;
    int err = backend_dial(b, &i, &fd);
    if (err)
        return err;
    struct pollfd pfd = {.fd = fd, .events = POLLOUT};
    ck_assert_int_eq(poll(&pfd, 1, DIAL_WAIT_MS), 1);
    err = sock_error(fd);
    close(fd);
    return err;
}

START_TEST(real_dials_report_refused_connected_and_local)
{
    struct cfg_addrs addrs = {.n = 2};
    int live = -1;
    loopback(&addrs.a[0], NULL); /* a name's first address: nothing listens */
    loopback(&addrs.a[1], &live);
    make_pool(&(struct pool_opts){.n = 1, .max_fails = 1, .addrs = &addrs});
    struct backend *b = pool_pick(&pl, NULL, 0);
    ck_assert_ptr_eq(b, B(0));
    /* The first address refuses: not yet the backend's failure (the session
     * walks on, holding its slot), so nothing is reported. */
    ck_assert_int_eq(pool_dial_outcome(dial_and_wait(b, 0)), POOL_REFUSED);
    int err = dial_and_wait(b, 1);
    ck_assert_int_eq(err, 0);
    pool_done(&pl, b, pool_dial_outcome(err));
    ck_assert_uint_eq(active(b), 1);
    pool_done(&pl, b, POOL_FINISHED);
    ck_assert_uint_eq(failures(b), 0);

    /* No fd left on this host: a local error, which max_fails 1 ignores. */
    b = pool_pick(&pl, NULL, 0);
    struct rlimit old, none;
    ck_assert_int_eq(getrlimit(RLIMIT_NOFILE, &old), 0);
    none = old;
    none.rlim_cur = 0;
    ck_assert_int_eq(setrlimit(RLIMIT_NOFILE, &none), 0);
    err = dial_and_wait(b, 0);
    ck_assert_int_eq(setrlimit(RLIMIT_NOFILE, &old), 0);
    ck_assert_int_eq(err, -EMFILE);
    pool_done(&pl, b, pool_dial_outcome(err));
    ck_assert_uint_eq(active(b), 0);
    ck_assert_uint_eq(failures(b), 0);
    ck_assert_int_eq(state(b), BACKEND_UP);

    /* Every address refuses: the backend failed. */
    close(live);
    b = pool_pick(&pl, NULL, 0);
    for (unsigned i = 0; i < addrs.n; i++)
        err = dial_and_wait(b, i);
    pool_done(&pl, b, pool_dial_outcome(err));
    ck_assert_int_eq(err, -ECONNREFUSED);
    ck_assert_uint_eq(active(b), 0);
    ck_assert_uint_eq(failures(b), 1);
    ck_assert_int_eq(state(b), BACKEND_DOWN);
}
END_TEST

/* DNS changes a default-mode backend's addresses: the next dial reads the
 * new list (one load), and a walk that was at an index past the new list's
 * end simply ends. */
START_TEST(a_swapped_address_list_is_what_the_next_dial_reads)
{
    struct cfg_addrs dead = {.n = 1};
    loopback(&dead.a[0], NULL);
    make_pool(&(struct pool_opts){.n = 1, .addrs = &dead});
    struct backend *b = B(0);
    ck_assert_int_eq(dial_and_wait(b, 0), -ECONNREFUSED);
    int live = -1;
    struct cfg_addrs *next = calloc(1, sizeof(*next));
    ck_assert_ptr_nonnull(next);
    next->n = 1;
    loopback(&next->a[0], &live);
    struct cfg_addrs *old = backend_swap_addrs(b, next);
    ck_assert_uint_eq(old->n, 1);
    free(old); /* no poller here reads it */
    ck_assert_ptr_eq(backend_addrs(b), next);
    ck_assert_int_eq(dial_and_wait(b, 0), 0);
    unsigned past = 1;
    int fd = -1;
    ck_assert_int_eq(backend_dial(b, &past, &fd), -EDESTADDRREQ);
    close(live);
}
END_TEST

START_TEST(client_key_is_the_pools_rule)
{
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(1000)};
    struct sockaddr_in a2 = a, c = a;
    a.sin_addr.s_addr = htonl(0x0a000001);
    a2.sin_addr.s_addr = htonl(0x0a000001);
    a2.sin_port = htons(2000);
    c.sin_addr.s_addr = htonl(0x0a000002);
    struct sockaddr_in6 v6 = {.sin6_family = AF_INET6, .sin6_port = htons(1000)};
    v6.sin6_addr.s6_addr[15] = 1;
    make_pool(&(struct pool_opts){.n = 2});
    ck_assert_uint_eq(pool_client_key(&pl, (struct sockaddr *)&a), 0); /* round robin: none */
    ck_assert_uint_eq(pool_client_key(&pl, (struct sockaddr *)&v6), 0);
    pool_fini(&pl);
    make_pool(&(struct pool_opts){.n = 2, .balance = CFG_POOL_SOURCE_HASH});
    uint64_t k = pool_client_key(&pl, (struct sockaddr *)&a);
    ck_assert_uint_eq(pool_client_key(&pl, (struct sockaddr *)&a2), k); /* the port is not in it */
    ck_assert_uint_ne(pool_client_key(&pl, (struct sockaddr *)&c), k);
    ck_assert_uint_ne(pool_client_key(&pl, (struct sockaddr *)&v6), 0);
    /* One client host, one backend. */
    struct backend *b = pool_pick(&pl, NULL, k);
    pool_done(&pl, b, POOL_FINISHED);
    for (int i = 0; i < 20; i++) {
        struct backend *again = pool_pick(&pl, NULL, pool_client_key(&pl, (struct sockaddr *)&a2));
        ck_assert_ptr_eq(again, b);
        pool_done(&pl, again, POOL_FINISHED);
    }
}
END_TEST

/* Reload: an old generation of a pool (settings changed) keeps no backend
 * and forwards the picks of its sessions (retries) to its successor, which
 * holds the same backend structs. */
START_TEST(an_old_generation_picks_through_its_successor)
{
    make_pool(&(struct pool_opts){.n = 2});
    struct pool old;
    struct cfg_pool bare = {.name = "p", .connect_timeout_ms = 1, .maglev_table_size = 251};
    ck_assert_int_eq(pool_init(&old, &bare), 0);
    ck_assert_ptr_null(pool_pick(&old, NULL, 0)); /* empty, no successor */
    atomic_store(&old.successor, &pl);
    struct backend *b = pool_pick(&old, NULL, 0);
    ck_assert_ptr_nonnull(b);
    ck_assert(b == B(0) || b == B(1));
    ck_assert_uint_eq(active(b), 1);
    pool_done(&old, b, POOL_FINISHED); /* the old generation's session gives it back */
    ck_assert_uint_eq(active(b), 0);
    pool_session_begin(&old);
    ck_assert_uint_eq(atomic_load(&old.sessions), 1);
    pool_session_end(&old);
    ck_assert_uint_eq(atomic_load(&old.sessions), 0);
    pool_fini(&old); /* its empty set only: the backends are pl's */
    ck_assert_uint_eq(pool_current(&pl)->n, 2);
}
END_TEST

static Suite *make_suite(void)
{
    Suite *s = suite_create("peer");
    TCase *tc = tcase_create("pick_done");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, a_pick_holds_its_slot_until_the_session_finishes);
    tcase_add_test(tc, refused_and_timeout_are_the_backends_failures);
    tcase_add_test(tc, local_errors_are_not_counted_against_the_backend);
    tcase_add_test(tc, max_fails_within_the_window_take_it_down_until_the_window_passes);
    tcase_add_test(tc, failures_of_an_old_window_are_forgotten);
    tcase_add_test(tc, with_checks_connect_failures_count_toward_fall);
    tcase_add_test(tc, failures_never_take_an_operator_state);
    tcase_add_test(tc, a_draining_backend_gets_no_pick_and_drains_on_done);
    tcase_add_test(tc, real_dials_report_refused_connected_and_local);
    tcase_add_test(tc, a_swapped_address_list_is_what_the_next_dial_reads);
    tcase_add_test(tc, client_key_is_the_pools_rule);
    tcase_add_test(tc, an_old_generation_picks_through_its_successor);
    suite_add_tcase(s, tc);
    TCase *tm = tcase_create("outcomes");
    tcase_add_test(tm, dial_errors_map_to_outcomes);
    suite_add_tcase(s, tm);
    return s;
}
