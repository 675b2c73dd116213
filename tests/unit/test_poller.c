/* tests/unit/test_poller.c — reactor/poller.c and reactor/pollmgr.c with real
 * socketpairs and threads: read/write interest, edge re-runs, cross-thread
 * posts and wake-ups, inbox bounds, pick policies, start/stop without leaked
 * threads or fds, broadcasts, register-or-close, deferred tasks and the
 * sub-reactor count, and the loop-time histogram; every case once per backend
 * (epoll, io_uring), plus what io_uring makes easy to get wrong: events after
 * a del, forget then close, level-triggered listeners, a full SQ. */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdlib.h>
#include <stdint.h>
#include <string.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "check_main.h"
#include "reactor/counter.h"
#include "reactor/pollmgr.h"

static int count_dir(const char *path)
{
    DIR *d = opendir(path);
    int n = 0;
    if (!d)
        return -1;
    while (readdir(d))
        n++;
    closedir(d);
    return n;
}

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* Every case runs once per backend: _i is an enum poll_kind. */
static const struct poller_opts *io_opts(int i)
{
    static const struct poller_opts opts[] = {{.io = POLL_KIND_EPOLL}, {.io = POLL_KIND_URING}};
    return &opts[i];
}

struct probe {
    int reads, writes, hups;
    int rerun_left;
};

static void probe_read(struct poller *p, struct fdop *op, void *data)
{
    struct probe *pr = data;
    pr->reads++;
    char buf[64];
    if (pr->rerun_left > 0) {
        /* Pretend the budget ran out: come back next iteration without reading. */
        pr->rerun_left--;
        poller_rerun(p, op, POLL_EV_IN);
        return;
    }
    while (read(op->fd, buf, sizeof(buf)) > 0)
        ;
}
static void probe_write(struct poller *p, struct fdop *op, void *data)
{
    ((struct probe *)data)->writes++;
}
static void probe_hup(struct poller *p, struct fdop *op, void *data)
{
    ((struct probe *)data)->hups++;
}
static const struct fdop_ops probe_ops = {probe_read, probe_write, NULL};
static const struct fdop_ops probe_hup_ops = {probe_read, probe_write, probe_hup};

/* A new interest is a new registration (the seam has no modify): what the
 * listener's EMFILE pause does. */
static void rewatch(struct poller *p, struct fdop *op, uint32_t interest)
{
    int fd = poller_unregister(p, op);
    op->fd = fd;
    ck_assert_int_eq(poller_register(p, op, interest), 0);
}

START_TEST(read_and_write_interest)
{
    struct poller *p;
    ck_assert_int_eq(poller_create(1, io_opts(_i), &p), 0);
    ck_assert_int_eq(poller_io(p), _i); /* no silent fallback */
    int sv[2];
    ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv), 0);
    struct probe pr = {0};
    struct fdop op;
    fdop_init(&op, sv[0], &probe_ops, &pr);
    ck_assert_int_eq(poller_register(p, &op, POLL_READ), 0);
    ck_assert_uint_eq(atomic_load(&poller_counters(p)->registrations), 1);
    poller_run_once(p, 0);
    ck_assert_int_eq(pr.reads, 0);
    ck_assert_int_eq(write(sv[1], "x", 1), 1);
    poller_run_once(p, 1000);
    ck_assert_int_eq(pr.reads, 1);
    ck_assert_int_eq(pr.writes, 0);

    rewatch(p, &op, POLL_WRITE);
    poller_run_once(p, 1000);
    ck_assert_int_eq(pr.writes, 1); /* level-triggered: writable */
    poller_run_once(p, 1000);
    ck_assert_int_eq(pr.writes, 2);

    rewatch(p, &op, POLL_WRITE | POLL_EDGE);
    poller_run_once(p, 1000);
    int w = pr.writes;
    poller_run_once(p, 0);
    ck_assert_int_eq(pr.writes, w); /* edge-triggered: reported once */

    ck_assert_int_eq(poller_unregister(p, &op), sv[0]);
    ck_assert_int_eq(op.fd, -1);
    ck_assert_uint_eq(atomic_load(&poller_counters(p)->registrations), 0);
    ck_assert_int_eq(write(sv[1], "y", 1), 1); /* not watched: no callback */
    poller_run_once(p, 0);
    ck_assert_int_eq(pr.reads, 1);
    close(sv[0]);
    close(sv[1]);
    poller_destroy(p);
}
END_TEST

START_TEST(hangup_goes_to_on_hup)
{
    struct poller *p;
    ck_assert_int_eq(poller_create(1, io_opts(_i), &p), 0);
    ck_assert_int_eq(poller_io(p), _i); /* no silent fallback */
    int sv[2];
    ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv), 0);
    struct probe pr = {0};
    struct fdop op;
    fdop_init(&op, sv[0], &probe_hup_ops, &pr);
    ck_assert_int_eq(poller_register(p, &op, POLL_READ | POLL_EDGE), 0);
    close(sv[1]);
    poller_run_once(p, 1000);
    ck_assert_int_eq(pr.hups, 1);
    close(poller_unregister(p, &op));
    poller_destroy(p);
}
END_TEST

START_TEST(rerun_waits_one_turn_and_others_are_served)
{
    struct poller *p;
    ck_assert_int_eq(poller_create(1, io_opts(_i), &p), 0);
    ck_assert_int_eq(poller_io(p), _i); /* no silent fallback */
    int a[2], b[2];
    socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, a);
    socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, b);
    struct probe busy = {.rerun_left = 3}, other = {0};
    struct fdop op_busy, op_other;
    fdop_init(&op_busy, a[0], &probe_ops, &busy);
    fdop_init(&op_other, b[0], &probe_ops, &other);
    poller_register(p, &op_busy, POLL_READ | POLL_EDGE);
    poller_register(p, &op_other, POLL_READ | POLL_EDGE);
    ck_assert_int_eq(write(a[1], "x", 1), 1);
    poller_run_once(p, 1000);
    ck_assert_int_eq(busy.reads, 2); /* the event, then one re-run in the same pass */
    ck_assert_int_eq(write(b[1], "y", 1), 1);
    poller_run_once(p, 1000); /* edge: no new event for a, only the re-run queue */
    ck_assert_int_eq(other.reads, 1);
    ck_assert_int_eq(busy.reads, 3);
    poller_run_once(p, 1000);
    ck_assert_int_eq(busy.reads, 4);
    poller_run_once(p, 0);
    ck_assert_int_eq(busy.reads, 4); /* done: no more re-runs */
    /* Unregistering drops a queued re-run. */
    busy.rerun_left = 1;
    ck_assert_int_eq(write(a[1], "z", 1), 1);
    poller_run_once(p, 1000);
    int reads = busy.reads;
    close(poller_unregister(p, &op_busy));
    poller_run_once(p, 0);
    ck_assert_int_eq(busy.reads, reads);
    close(poller_unregister(p, &op_other));
    close(a[1]);
    close(b[1]);
    poller_destroy(p);
}
END_TEST

/* An fdop whose callback forgets another queued fdop (as a session closing
 * both its sides does) and re-queues itself, up to a bound that only a
 * runaway pass reaches. */
#define RUNAWAY_BOUND 1000
struct forgetter {
    struct fdop *victim; /* forgotten (and closed) on the first call */
    int calls;
};

static void forget_and_rerun(struct poller *p, struct fdop *op, void *data)
{
    struct forgetter *f = data;
    f->calls++;
    if (f->victim) {
        close(poller_forget(p, f->victim));
        f->victim = NULL;
    }
    if (f->calls < RUNAWAY_BOUND)
        poller_rerun(p, op, POLL_EV_IN);
}
static const struct fdop_ops forget_ops = {forget_and_rerun, NULL, NULL};

START_TEST(rerun_pass_ends_when_its_last_fdop_is_forgotten)
{
    struct poller *p;
    ck_assert_int_eq(poller_create(1, io_opts(_i), &p), 0);
    ck_assert_int_eq(poller_io(p), _i); /* no silent fallback */
    int a[2], b[2];
    ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, a), 0);
    ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, b), 0);
    struct probe victim = {0};
    struct fdop op_a, op_b;
    struct forgetter f = {.victim = &op_b};
    fdop_init(&op_a, a[0], &forget_ops, &f);
    fdop_init(&op_b, b[0], &probe_ops, &victim);
    ck_assert_int_eq(poller_register(p, &op_a, POLL_READ | POLL_EDGE), 0);
    ck_assert_int_eq(poller_register(p, &op_b, POLL_READ | POLL_EDGE), 0);
    /* b is the tail of the pass: a's callback forgets it, then re-queues a. */
    poller_rerun(p, &op_a, POLL_EV_IN);
    poller_rerun(p, &op_b, POLL_EV_IN);
    poller_run_once(p, 0);
    ck_assert_int_eq(f.calls, 1); /* not RUNAWAY_BOUND: the re-queued a waits a turn */
    ck_assert_int_eq(victim.reads, 0);
    ck_assert_int_eq(op_b.fd, -1);
    poller_run_once(p, 0);
    ck_assert_int_eq(f.calls, 2);
    close(poller_unregister(p, &op_a));
    close(a[1]);
    close(b[1]);
    poller_destroy(p);
}
END_TEST

struct posted {
    struct poller_task task;
    pthread_t ran_on;
    atomic_int ran;
    int order;
};
static int order_seen;

static void record_task(struct poller *p, struct poller_task *t, void *arg)
{
    struct posted *ps = arg;
    ps->ran_on = pthread_self();
    ps->order = order_seen++;
    atomic_store(&ps->ran, 1);
}

static void *run_poller(void *p)
{
    poller_run(p);
    return NULL;
}

START_TEST(post_wakes_the_poller_thread_in_fifo_order)
{
    struct poller *p;
    ck_assert_int_eq(poller_create(1, io_opts(_i), &p), 0);
    ck_assert_int_eq(poller_io(p), _i); /* no silent fallback */
    pthread_t th;
    pthread_create(&th, NULL, run_poller, p);
    sleep_ms(20); /* let it block in its wait: the post must wake it */
    enum { N = 100 };
    static struct posted ps[N];
    order_seen = 0;
    for (int i = 0; i < N; i++) {
        atomic_init(&ps[i].ran, 0);
        poller_task_init(&ps[i].task, record_task, &ps[i]);
        ck_assert_int_eq(poller_post(p, &ps[i].task), 0);
    }
    for (int i = 0; i < 5000 && !atomic_load(&ps[N - 1].ran); i++)
        sleep_ms(1);
    for (int i = 0; i < N; i++) {
        ck_assert_int_eq(atomic_load(&ps[i].ran), 1);
        ck_assert(pthread_equal(ps[i].ran_on, th));
        ck_assert_int_eq(ps[i].order, i);
    }
    poller_stop(p);
    pthread_join(th, NULL);
    ck_assert_int_eq(poller_post(p, &ps[0].task), -ESHUTDOWN);
    poller_destroy(p);
}
END_TEST

START_TEST(inbox_is_bounded)
{
    struct poller_opts opts = {.inbox_cap = 4, .io = (enum poll_kind)_i};
    struct poller *p;
    ck_assert_int_eq(poller_create(1, &opts, &p), 0);
    struct posted ps[5];
    for (int i = 0; i < 5; i++) {
        atomic_init(&ps[i].ran, 0);
        poller_task_init(&ps[i].task, record_task, &ps[i]);
    }
    for (int i = 0; i < 4; i++)
        ck_assert_int_eq(poller_post(p, &ps[i].task), 0);
    ck_assert_int_eq(poller_post(p, &ps[4].task), -EAGAIN);
    ck_assert_uint_eq(poller_inbox_depth(p), 4);
    poller_run_once(p, 1000);
    ck_assert_uint_eq(poller_inbox_depth(p), 0);
    ck_assert_int_eq(atomic_load(&ps[3].ran), 1);
    ck_assert_int_eq(poller_post(p, &ps[4].task), 0);
    poller_run_once(p, 1000);
    ck_assert_int_eq(atomic_load(&ps[4].ran), 1);
    poller_destroy(p);
}
END_TEST

START_TEST(pick_round_robin_and_random)
{
    struct pollmgr *pm;
    ck_assert_int_eq(pollmgr_create(4, POLLMGR_ROUND_ROBIN, io_opts(_i), &pm), 0);
    ck_assert_uint_eq(pollmgr_count(pm), 4);
    struct poller *first = pollmgr_pick(pm);
    int start = poller_id(first);
    for (int i = 1; i < 12; i++)
        ck_assert_int_eq(poller_id(pollmgr_pick(pm)), 1 + (start - 1 + i) % 4);
    pollmgr_destroy(pm);

    ck_assert_int_eq(pollmgr_create(4, POLLMGR_RANDOM, io_opts(_i), &pm), 0);
    int hits[5] = {0};
    for (int i = 0; i < 40000; i++)
        hits[poller_id(pollmgr_pick(pm))]++;
    ck_assert_int_eq(hits[0], 0); /* never the main reactor */
    for (int i = 1; i <= 4; i++)
        ck_assert(hits[i] > 9000 && hits[i] < 11000);
    pollmgr_destroy(pm);
}
END_TEST

START_TEST(pick_least_loaded)
{
    struct pollmgr *pm;
    ck_assert_int_eq(pollmgr_create(3, POLLMGR_LEAST_LOADED, io_opts(_i), &pm), 0);
    int sv[2][2];
    struct fdop ops[2];
    struct probe pr = {0};
    for (int i = 0; i < 2; i++) {
        socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv[i]);
        fdop_init(&ops[i], sv[i][0], &probe_ops, &pr);
    }
    /* Sub-reactors 0 and 2 carry one fd each: 1 is the least loaded. */
    poller_register(pollmgr_sub(pm, 0), &ops[0], POLL_READ);
    poller_register(pollmgr_sub(pm, 2), &ops[1], POLL_READ);
    for (int i = 0; i < 10; i++)
        ck_assert_ptr_eq(pollmgr_pick(pm), pollmgr_sub(pm, 1));
    close(poller_unregister(pollmgr_sub(pm, 0), &ops[0]));
    close(poller_unregister(pollmgr_sub(pm, 2), &ops[1]));
    /* All equal: ties rotate instead of always landing on the first. */
    int hits[4] = {0};
    for (int i = 0; i < 30; i++)
        hits[poller_id(pollmgr_pick(pm))]++;
    ck_assert_int_eq(hits[1], 10);
    ck_assert_int_eq(hits[2], 10);
    ck_assert_int_eq(hits[3], 10);
    close(sv[0][1]);
    close(sv[1][1]);
    pollmgr_destroy(pm);
}
END_TEST

START_TEST(start_stop_leaks_no_thread_or_fd)
{
    int fds = count_dir("/proc/self/fd"), threads = count_dir("/proc/self/task");
    for (int round = 0; round < 5; round++) {
        struct pollmgr *pm;
        ck_assert_int_eq(pollmgr_create(3, POLLMGR_ROUND_ROBIN, io_opts(_i), &pm), 0);
        ck_assert_int_eq(pollmgr_start(pm), 0);
        ck_assert_int_eq(count_dir("/proc/self/task"), threads + 4);
        struct posted ps;
        atomic_init(&ps.ran, 0);
        poller_task_init(&ps.task, record_task, &ps);
        ck_assert_int_eq(poller_post(pollmgr_pick(pm), &ps.task), 0);
        pollmgr_stop(pm); /* a task posted before stop still runs */
        ck_assert_int_eq(atomic_load(&ps.ran), 1);
        pollmgr_stop(pm); /* idempotent */
        pollmgr_destroy(pm);
    }
    ck_assert_int_eq(count_dir("/proc/self/task"), threads);
    ck_assert_int_eq(count_dir("/proc/self/fd"), fds);
}
END_TEST

/* What a broadcast's fn saw: how often each poller ran it, and whether it
 * ran on a thread other than the test's (the poller's own). */
struct seen {
    atomic_int runs[8];
    atomic_int off_thread;
    pthread_t test_thread;
};

static void count_run(struct poller *p, void *arg)
{
    struct seen *sn = arg;
    atomic_fetch_add(&sn->runs[poller_id(p)], 1);
    if (!pthread_equal(pthread_self(), sn->test_thread))
        atomic_fetch_add(&sn->off_thread, 1);
}

START_TEST(broadcast_runs_once_on_each_poller_in_scope)
{
    struct pollmgr *pm;
    ck_assert_int_eq(pollmgr_create(3, POLLMGR_ROUND_ROBIN, io_opts(_i), &pm), 0);
    ck_assert_int_eq(pollmgr_start(pm), 0);
    static struct seen sn;
    sn.test_thread = pthread_self();
    ck_assert_int_eq(pollmgr_broadcast(pm, POLLMGR_ALL, count_run, &sn, 5000), 0);
    for (int i = 0; i <= 3; i++)
        ck_assert_int_eq(atomic_load(&sn.runs[i]), 1);
    ck_assert_int_eq(atomic_load(&sn.off_thread), 4);
    /* The sub-reactors only: the main reactor is left alone. */
    ck_assert_int_eq(pollmgr_broadcast(pm, POLLMGR_SUBS, count_run, &sn, 5000), 0);
    ck_assert_int_eq(atomic_load(&sn.runs[0]), 1);
    for (int i = 1; i <= 3; i++)
        ck_assert_int_eq(atomic_load(&sn.runs[i]), 2);
    /* No fn: a pass through every loop, nothing else. */
    ck_assert_int_eq(pollmgr_broadcast(pm, POLLMGR_SUBS, NULL, NULL, 5000), 0);
    pollmgr_destroy(pm);
}
END_TEST

START_TEST(broadcast_times_out_and_refuses_without_leaking)
{
    struct pollmgr *pm;
    ck_assert_int_eq(pollmgr_create(2, POLLMGR_ROUND_ROBIN, io_opts(_i), &pm), 0);
    static struct seen sn;
    sn.test_thread = pthread_self();
    /* Not started: nobody runs the tasks, the waiter gives up... */
    ck_assert_int_eq(pollmgr_broadcast(pm, POLLMGR_ALL, count_run, &sn, 20), -ETIMEDOUT);
    for (int i = 0; i <= 2; i++)
        ck_assert_int_eq(atomic_load(&sn.runs[i]), 0);
    /* ... and the tasks still run later, freeing what they share (ASan would
     * report a leak or a use after free otherwise). */
    ck_assert_int_eq(pollmgr_start(pm), 0);
    pollmgr_stop(pm);
    for (int i = 0; i <= 2; i++)
        ck_assert_int_eq(atomic_load(&sn.runs[i]), 1);
    /* Stopped pollers refuse the task: -EAGAIN at once, fn never runs. */
    ck_assert_int_eq(pollmgr_broadcast(pm, POLLMGR_ALL, count_run, &sn, 5000), -EAGAIN);
    for (int i = 0; i <= 2; i++)
        ck_assert_int_eq(atomic_load(&sn.runs[i]), 1);
    pollmgr_destroy(pm);
}
END_TEST

START_TEST(register_or_close_closes_what_it_cannot_register)
{
    struct poller *p;
    ck_assert_int_eq(poller_create(1, io_opts(_i), &p), 0);
    ck_assert_int_eq(poller_io(p), _i); /* no silent fallback */
    struct probe pr = {0};
    static const struct fdop_ops ops = {probe_read, probe_write, NULL};
    /* A regular file cannot be watched (epoll: EPERM); io_uring polls one,
     * but refuses an fd registered already (EEXIST). The fd handed over is
     * closed, not leaked, and the fdop says so. */
    char path[] = "/tmp/sluice-test-XXXXXX";
    int fd = mkstemp(path);
    ck_assert_int_ge(fd, 0);
    unlink(path);
    struct fdop op, first;
    fdop_init(&first, fd, &ops, &pr);
    if (_i == POLL_KIND_URING)
        ck_assert_int_eq(poller_register(p, &first, POLL_READ), 0);
    fdop_init(&op, fd, &ops, &pr);
    ck_assert_int_lt(poller_register_or_close(p, &op, POLL_READ), 0);
    ck_assert_int_eq(op.fd, -1);
    errno = 0;
    ck_assert_int_eq(fcntl(fd, F_GETFD), -1);
    ck_assert_int_eq(errno, EBADF);
    if (_i == POLL_KIND_URING)
        poller_forget(p, &first); /* closed above already */
    ck_assert_uint_eq(atomic_load(&poller_counters(p)->registrations), 0);
    /* A socket registers as with poller_register, and stays open. */
    int sv[2];
    ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv), 0);
    fdop_init(&op, sv[0], &ops, &pr);
    ck_assert_int_eq(poller_register_or_close(p, &op, POLL_READ), 0);
    ck_assert_int_eq(op.fd, sv[0]);
    ck_assert_int_ge(fcntl(sv[0], F_GETFD), 0);
    ck_assert_int_eq(write(sv[1], "x", 1), 1);
    poller_run_once(p, 1000);
    ck_assert_int_eq(pr.reads, 1);
    close(poller_unregister(p, &op));
    close(sv[1]);
    poller_destroy(p);
}
END_TEST

/* A deferred task that defers another, up to `left` deep. */
struct chain {
    struct poller_task t[4];
    int ran, left;
};

static void chain_run(struct poller *p, struct poller_task *t, void *arg)
{
    struct chain *c = arg;
    c->ran++;
    if (c->left > 0) {
        c->left--;
        poller_defer(p, &c->t[c->ran]);
    }
}

START_TEST(deferred_tasks_and_those_they_defer_run_in_the_iteration)
{
    struct poller *p;
    ck_assert_int_eq(poller_create(1, io_opts(_i), &p), 0);
    ck_assert_int_eq(poller_io(p), _i); /* no silent fallback */
    struct chain c = {.left = 3};
    for (int i = 0; i < 4; i++)
        poller_task_init(&c.t[i], chain_run, &c);
    poller_defer(p, &c.t[0]);
    poller_run_once(p, 0);
    ck_assert_int_eq(c.ran, 4);
    /* poller_run's last flush, after the stop: the same, none left behind. */
    c.ran = 0;
    c.left = 3;
    poller_defer(p, &c.t[0]);
    poller_stop(p);
    ck_assert_int_eq(poller_run(p), 0);
    ck_assert_int_eq(c.ran, 4);
    poller_destroy(p);
}
END_TEST

START_TEST(each_iteration_lands_in_the_loop_histogram)
{
    struct poller *p;
    ck_assert_int_eq(poller_create(1, io_opts(_i), &p), 0);
    ck_assert_int_eq(poller_io(p), _i); /* no silent fallback */
    for (int i = 0; i < 5; i++)
        poller_run_once(p, 0);
    struct histogram_snap s = {0};
    histogram_snap_add(&s, poller_loop_histogram(p));
    ck_assert_uint_eq(s.count, 5);
    ck_assert_uint_eq(s.count, counter_get(&poller_counters(p)->wakeups));
    poller_destroy(p);
}
END_TEST

START_TEST(subs_for_is_as_asked_or_one_per_cpu)
{
    ck_assert_uint_eq(pollmgr_subs_for(3), 3);
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    ck_assert_uint_eq(pollmgr_subs_for(0), cpus > 0 ? (unsigned)cpus : 1);
    struct pollmgr *pm;
    ck_assert_int_eq(pollmgr_create(0, POLLMGR_ROUND_ROBIN, io_opts(_i), &pm), 0);
    ck_assert_uint_eq(pollmgr_count(pm), pollmgr_subs_for(0));
    pollmgr_destroy(pm);
}
END_TEST

/* The backend alone: an event that was pending when its fd was deleted
 * (left in the kernel's queue by a full batch, or raised after the del) is
 * never reported later, so no caller is handed a pointer it has freed. */
START_TEST(no_event_after_del_even_if_pending)
{
    struct poll_backend *pb;
    int fallback;
    ck_assert_int_eq(poll_backend_open((enum poll_kind)_i, &pb, &fallback), 0);
    ck_assert_int_eq(poll_backend_kind(pb), _i);
    enum { N = 4 };
    int sv[N][2];
    int *ptrs[N];
    for (int i = 0; i < N; i++) {
        ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv[i]), 0);
        ptrs[i] = malloc(sizeof(int));
        *ptrs[i] = i;
        ck_assert_int_eq(poll_backend_add(pb, sv[i][0], POLL_READ | POLL_EDGE, ptrs[i]), 0);
    }
    struct poll_event ev[N];
    ck_assert_int_eq(poll_backend_wait(pb, ev, N, 0), 0); /* armed, nothing ready */
    for (int i = 0; i < N; i++)
        ck_assert_int_eq(write(sv[i][1], "x", 1), 1);
    /* Take one event: the others stay queued in the kernel. */
    int n = 0;
    for (int t = 0; t < 100 && n == 0; t++)
        n = poll_backend_wait(pb, ev, 1, 50);
    ck_assert_int_eq(n, 1);
    int *seen = ev[0].ptr;
    /* Delete and free every other one, then make them ready again. */
    int freed[N] = {0};
    for (int i = 0; i < N; i++) {
        if (ptrs[i] == seen)
            continue;
        ck_assert_int_eq(poll_backend_del(pb, sv[i][0]), 0);
        free(ptrs[i]);
        freed[i] = 1;
        ck_assert_int_eq(write(sv[i][1], "y", 1), 1);
    }
    for (int round = 0; round < 5; round++) {
        n = poll_backend_wait(pb, ev, N, 20);
        ck_assert_int_ge(n, 0);
        for (int k = 0; k < n; k++)
            for (int i = 0; i < N; i++)
                ck_assert(!(freed[i] && ev[k].ptr == (void *)ptrs[i]));
    }
    for (int i = 0; i < N; i++) {
        if (!freed[i]) {
            poll_backend_del(pb, sv[i][0]);
            free(ptrs[i]);
        }
        close(sv[i][0]);
        close(sv[i][1]);
    }
    poll_backend_close(pb);
}
END_TEST

/* Through the poller, with fdops that are freed once unregistered (as a
 * session's are): a late event would be a use after free (ASan). */
START_TEST(freed_fdop_is_never_called_back)
{
    struct poller *p;
    ck_assert_int_eq(poller_create(1, io_opts(_i), &p), 0);
    ck_assert_int_eq(poller_io(p), _i);
    int sv[2];
    ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv), 0);
    struct probe *pr = calloc(1, sizeof(*pr));
    struct fdop *op = malloc(sizeof(*op));
    fdop_init(op, sv[0], &probe_ops, pr);
    ck_assert_int_eq(poller_register(p, op, POLL_READ | POLL_WRITE | POLL_EDGE), 0);
    poller_run_once(p, 0);
    /* Readiness raised between the last wait and the forget... */
    ck_assert_int_eq(write(sv[1], "x", 1), 1);
    close(poller_forget(p, op));
    free(op);
    free(pr);
    /* ... and after it: io_uring's poll request still holds the socket
     * until its removal is submitted (epoll: the peer is gone, EPIPE). */
    send(sv[1], "y", 1, MSG_NOSIGNAL);
    for (int i = 0; i < 5; i++)
        poller_run_once(p, 10);
    close(sv[1]);
    poller_destroy(p);
}
END_TEST

/* poller_forget then close: the peer sees EOF. With io_uring a poll request
 * holds its own file reference: without the removal the socket would stay
 * open (no FIN) for as long as the poller lives. */
START_TEST(forget_then_close_really_closes)
{
    struct poller *p;
    ck_assert_int_eq(poller_create(1, io_opts(_i), &p), 0);
    ck_assert_int_eq(poller_io(p), _i);
    int sv[2];
    ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv), 0);
    struct probe pr = {0};
    struct fdop op;
    fdop_init(&op, sv[0], &probe_ops, &pr);
    ck_assert_int_eq(poller_register(p, &op, POLL_READ | POLL_WRITE | POLL_EDGE), 0);
    poller_run_once(p, 0);
    close(poller_forget(p, &op));
    ssize_t r = -1;
    for (int i = 0; i < 200 && r != 0; i++) {
        poller_run_once(p, 5); /* the loop goes on as it would in sluice */
        char c;
        r = read(sv[1], &c, 1);
    }
    ck_assert_int_eq(r, 0); /* EOF */
    close(sv[1]);
    poller_destroy(p);
}
END_TEST

/* A level-triggered registration (a listener) is reported again while it is
 * still ready, without any new connection. */
struct acceptor {
    int accepted;
    int fds[4];
};
static void accept_one(struct poller *p, struct fdop *op, void *data)
{
    struct acceptor *a = data;
    int fd = accept4(op->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd >= 0 && a->accepted < 4)
        a->fds[a->accepted++] = fd;
    else if (fd >= 0)
        close(fd);
}
static const struct fdop_ops accept_ops = {accept_one, NULL, NULL};

START_TEST(level_triggered_listener_is_reported_again)
{
    struct poller *p;
    ck_assert_int_eq(poller_create(1, io_opts(_i), &p), 0);
    ck_assert_int_eq(poller_io(p), _i);
    int ls = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(sa);
    ck_assert_int_eq(bind(ls, (struct sockaddr *)&sa, len), 0);
    ck_assert_int_eq(listen(ls, 8), 0);
    ck_assert_int_eq(getsockname(ls, (struct sockaddr *)&sa, &len), 0);
    struct acceptor a = {0};
    struct fdop op;
    fdop_init(&op, ls, &accept_ops, &a);
    ck_assert_int_eq(poller_register(p, &op, POLL_READ), 0);
    int c[3];
    for (int i = 0; i < 3; i++) {
        c[i] = socket(AF_INET, SOCK_STREAM, 0);
        ck_assert_int_eq(connect(c[i], (struct sockaddr *)&sa, len), 0);
    }
    /* Each call accepts one: the backlog left is reported on the next waits. */
    for (int i = 0; i < 50 && a.accepted < 3; i++)
        poller_run_once(p, 100);
    ck_assert_int_eq(a.accepted, 3);
    poller_run_once(p, 0);
    ck_assert_int_eq(a.accepted, 3);
    /* Paused (unwatched, as the listener's EMFILE pause) it is not
     * reported; watched again, it is. */
    ck_assert_int_eq(poller_unregister(p, &op), ls);
    int c4 = socket(AF_INET, SOCK_STREAM, 0);
    ck_assert_int_eq(connect(c4, (struct sockaddr *)&sa, len), 0);
    for (int i = 0; i < 3; i++)
        poller_run_once(p, 10);
    ck_assert_int_eq(a.accepted, 3);
    op.fd = ls;
    ck_assert_int_eq(poller_register(p, &op, POLL_READ), 0);
    for (int i = 0; i < 50 && a.accepted < 4; i++)
        poller_run_once(p, 100);
    ck_assert_int_eq(a.accepted, 4);
    close(poller_unregister(p, &op));
    for (int i = 0; i < 3; i++)
        close(c[i]);
    close(c4);
    for (int i = 0; i < a.accepted; i++)
        close(a.fds[i]);
    poller_destroy(p);
}
END_TEST

/* More registrations than the io_uring SQ holds, queued before the loop
 * first runs: none is lost, each reports its readiness. */
START_TEST(many_registrations_before_the_first_wait)
{
    struct poller *p;
    ck_assert_int_eq(poller_create(1, io_opts(_i), &p), 0);
    enum { N = 1500 };
    static int sv[N][2];
    static struct fdop ops[N];
    static struct probe prs[N];
    for (int i = 0; i < N; i++) {
        ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv[i]), 0);
        memset(&prs[i], 0, sizeof(prs[i]));
        fdop_init(&ops[i], sv[i][0], &probe_ops, &prs[i]);
        ck_assert_int_eq(poller_register(p, &ops[i], POLL_READ | POLL_EDGE), 0);
        ck_assert_int_eq(write(sv[i][1], "x", 1), 1);
    }
    int done = 0;
    for (int round = 0; round < 200 && done < N; round++) {
        poller_run_once(p, 50);
        done = 0;
        for (int i = 0; i < N; i++)
            done += prs[i].reads > 0;
    }
    ck_assert_int_eq(done, N);
    for (int i = 0; i < N; i++) {
        close(poller_unregister(p, &ops[i]));
        close(sv[i][1]);
    }
    poller_run_once(p, 0);
    poller_destroy(p);
}
END_TEST

/* However many times an fd became ready since the last wait, a wait
 * reports it once (epoll keeps one ready entry per fd; io_uring may post a
 * CQE per wake-up, which the backend merges). */
START_TEST(one_event_per_fd_per_wait)
{
    struct poll_backend *pb;
    int fallback;
    ck_assert_int_eq(poll_backend_open((enum poll_kind)_i, &pb, &fallback), 0);
    int sv[2];
    ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv), 0);
    int tag;
    ck_assert_int_eq(poll_backend_add(pb, sv[0], POLL_READ | POLL_WRITE | POLL_EDGE, &tag), 0);
    struct poll_event ev[8];
    ck_assert_int_eq(poll_backend_wait(pb, ev, 8, 1000), 1); /* writable at once */
    for (int round = 0; round < 3; round++) {
        for (int i = 0; i < 5; i++) {
            ck_assert_int_eq(write(sv[1], "x", 1), 1);
            sleep_ms(2); /* separate wake-ups */
        }
        int n = poll_backend_wait(pb, ev, 8, 1000);
        ck_assert_int_eq(n, 1);
        ck_assert_ptr_eq(ev[0].ptr, &tag);
        ck_assert(ev[0].events & POLL_EV_IN);
        char buf[16];
        while (read(sv[0], buf, sizeof(buf)) > 0)
            ;
    }
    /* An event left queued by a full batch, and the fd ready again before
     * the next wait: still one event for it in that wait. */
    int sv2[2], tag2;
    ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv2), 0);
    ck_assert_int_eq(poll_backend_add(pb, sv2[0], POLL_READ | POLL_EDGE, &tag2), 0);
    ck_assert_int_eq(poll_backend_wait(pb, ev, 8, 0), 0);
    ck_assert_int_eq(write(sv[1], "a", 1), 1);
    ck_assert_int_eq(write(sv2[1], "b", 1), 1);
    sleep_ms(5);
    ck_assert_int_eq(poll_backend_wait(pb, ev, 1, 1000), 1); /* the other stays queued */
    int *left = ev[0].ptr == &tag ? &tag2 : &tag;
    ck_assert_int_eq(write(left == &tag ? sv[1] : sv2[1], "c", 1), 1);
    sleep_ms(5);
    int n = poll_backend_wait(pb, ev, 8, 1000);
    int seen = 0;
    for (int k = 0; k < n; k++)
        seen += ev[k].ptr == left;
    ck_assert_int_eq(seen, 1);
    poll_backend_del(pb, sv2[0]);
    close(sv2[0]);
    close(sv2[1]);
    poll_backend_del(pb, sv[0]);
    close(sv[0]);
    close(sv[1]);
    poll_backend_close(pb);
}
END_TEST

static Suite *make_suite(void)
{
    Suite *s = suite_create("poller");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 60);
    tcase_add_loop_test(tc, read_and_write_interest, 0, 2);
    tcase_add_loop_test(tc, hangup_goes_to_on_hup, 0, 2);
    tcase_add_loop_test(tc, rerun_waits_one_turn_and_others_are_served, 0, 2);
    tcase_add_loop_test(tc, rerun_pass_ends_when_its_last_fdop_is_forgotten, 0, 2);
    tcase_add_loop_test(tc, post_wakes_the_poller_thread_in_fifo_order, 0, 2);
    tcase_add_loop_test(tc, inbox_is_bounded, 0, 2);
    tcase_add_loop_test(tc, pick_round_robin_and_random, 0, 2);
    tcase_add_loop_test(tc, pick_least_loaded, 0, 2);
    tcase_add_loop_test(tc, start_stop_leaks_no_thread_or_fd, 0, 2);
    tcase_add_loop_test(tc, broadcast_runs_once_on_each_poller_in_scope, 0, 2);
    tcase_add_loop_test(tc, broadcast_times_out_and_refuses_without_leaking, 0, 2);
    tcase_add_loop_test(tc, register_or_close_closes_what_it_cannot_register, 0, 2);
    tcase_add_loop_test(tc, deferred_tasks_and_those_they_defer_run_in_the_iteration, 0, 2);
    tcase_add_loop_test(tc, subs_for_is_as_asked_or_one_per_cpu, 0, 2);
    tcase_add_loop_test(tc, each_iteration_lands_in_the_loop_histogram, 0, 2);
    tcase_add_loop_test(tc, no_event_after_del_even_if_pending, 0, 2);
    tcase_add_loop_test(tc, freed_fdop_is_never_called_back, 0, 2);
    tcase_add_loop_test(tc, forget_then_close_really_closes, 0, 2);
    tcase_add_loop_test(tc, level_triggered_listener_is_reported_again, 0, 2);
    tcase_add_loop_test(tc, many_registrations_before_the_first_wait, 0, 2);
    tcase_add_loop_test(tc, one_event_per_fd_per_wait, 0, 2);
    suite_add_tcase(s, tc);
    return s;
}
