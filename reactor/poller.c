/* reactor/poller.c — the event loop of reactor/poller.h: wait, dispatch fd
 * callbacks, re-run queued fdops, run inbox tasks, fire timers, then run the
 * deferred tasks (frees) once nothing can still point at what they free. */
#define _GNU_SOURCE
#include "poller.h"

#include <errno.h>
#include <stdlib.h>
#include <unistd.h>

#include "clock.h"
#include "counter.h"

#define POLLER_BATCH               256
#define POLLER_DEFAULT_INBOX_CAP   65536
#define POLLER_DEFAULT_BLOCK_CACHE 1024

struct poller {
    int id;
    atomic_int stopping;
    struct poll_backend *pb; /* owned */
    int io_fallback;         /* why io_uring was not used (-errno), 0 */
    struct inbox inbox;
    struct timer_heap timers;
    struct lb_cache blocks;
    struct fdop *rq_head, *rq_tail; /* re-run queue (intrusive, not owned) */
    /* During a re-run pass: the last fdop queued before the pass began that
     * is still queued (NULL: none left, the pass is over). */
    struct fdop *rq_stop;
    struct poller_task *deferred; /* run at end of iteration (not owned) */
    uint64_t now_ms;
    uint64_t born_ns;
    void *user; /* not owned */
    struct poller_counters c;
    struct histogram loop; /* busy part of each iteration (owner-only) */
    struct poll_event evs[POLLER_BATCH];
};

int poller_create(int id, const struct poller_opts *opts, struct poller **out)
{
    struct poller *p = calloc(1, sizeof(*p));
    if (!p)
        return -ENOMEM;
    int err = poll_backend_open(opts ? opts->io : POLL_KIND_EPOLL, &p->pb, &p->io_fallback);
    if (err) {
        free(p);
        return err;
    }
    p->id = id;
    atomic_init(&p->stopping, 0);
    inbox_init(&p->inbox, opts && opts->inbox_cap ? opts->inbox_cap : POLLER_DEFAULT_INBOX_CAP);
    timer_heap_init(&p->timers);
    lb_cache_init(&p->blocks, opts && opts->block_cache_cap ? opts->block_cache_cap
                                                            : POLLER_DEFAULT_BLOCK_CACHE);
    if (opts && opts->block_limit)
        lb_cache_set_limit(&p->blocks, opts->block_limit);
    p->born_ns = clock_mono_ns();
    p->now_ms = p->born_ns / 1000000u;
    *out = p;
    return 0;
}

void poller_destroy(struct poller *p)
{
    if (!p)
        return;
    timer_heap_free(&p->timers);
    lb_cache_free(&p->blocks);
    poll_backend_close(p->pb);
    free(p);
}

int poller_register(struct poller *p, struct fdop *op, uint32_t interest)
{
    int err = poll_backend_add(p->pb, op->fd, interest, op);
    if (err)
        return err;
    counter_add(&p->c.registrations, 1);
    return 0;
}

int poller_register_or_close(struct poller *p, struct fdop *op, uint32_t interest)
{
    int err = poller_register(p, op, interest);
    if (err) {
        close(op->fd);
        op->fd = -1;
    }
    return err;
}

static void rq_remove(struct poller *p, struct fdop *op)
{
    /* Everything from the head to rq_stop was queued before the pass, so
     * its predecessor is the pass's new end (NULL when op was the head). */
    if (op == p->rq_stop)
        p->rq_stop = op->rq_prev;
    if (op->rq_prev)
        op->rq_prev->rq_next = op->rq_next;
    else
        p->rq_head = op->rq_next;
    if (op->rq_next)
        op->rq_next->rq_prev = op->rq_prev;
    else
        p->rq_tail = op->rq_prev;
    op->rq_next = op->rq_prev = NULL;
    op->pending = 0;
}

static int forget(struct poller *p, struct fdop *op, int del)
{
    int fd = op->fd;
    if (fd < 0)
        return -1;
    if (op->pending)
        rq_remove(p, op);
    /* Failure only means it was never added. */
    if (del)
        poll_backend_del(p->pb, fd);
    else
        poll_backend_forget(p->pb, fd);
    op->fd = -1;
    counter_sub(&p->c.registrations, 1);
    return fd;
}

int poller_unregister(struct poller *p, struct fdop *op)
{
    return forget(p, op, 1);
}

int poller_forget(struct poller *p, struct fdop *op)
{
    return forget(p, op, 0);
}

void poller_rerun(struct poller *p, struct fdop *op, uint32_t events)
{
    if (op->fd < 0 || !events)
        return;
    if (!op->pending) {
        op->rq_prev = p->rq_tail;
        op->rq_next = NULL;
        if (p->rq_tail)
            p->rq_tail->rq_next = op;
        else
            p->rq_head = op;
        p->rq_tail = op;
    }
    op->pending |= (uint8_t)events;
}

int poller_timer_start(struct poller *p, struct timer *t, uint64_t delay_ms)
{
    int err = timer_add(&p->timers, t, p->now_ms + delay_ms);
    counter_set(&p->c.timers_pending, p->timers.n);
    return err;
}

void poller_timer_stop(struct poller *p, struct timer *t)
{
    timer_cancel(&p->timers, t);
    counter_set(&p->c.timers_pending, p->timers.n);
}

int poller_post(struct poller *p, struct poller_task *t)
{
    if (atomic_load_explicit(&p->stopping, memory_order_acquire))
        return -ESHUTDOWN;
    int r = inbox_push(&p->inbox, t);
    if (r < 0)
        return r;
    if (r == 1)
        poll_backend_wake(p->pb);
    return 0;
}

void poller_defer(struct poller *p, struct poller_task *t)
{
    t->next = p->deferred;
    p->deferred = t;
}

static void dispatch(struct poller *p, struct fdop *op, uint32_t ev)
{
    const struct fdop_ops *ops = op->ops;
    counter_add(&p->c.events, 1);
    op->revents = (uint8_t)ev;
    if ((ev & POLL_EV_HUP) && ops->on_hup) {
        ops->on_hup(p, op, op->data);
        return;
    }
    if (ev & POLL_EV_HUP)
        ev |= POLL_EV_IN | POLL_EV_OUT; /* let the syscalls report what happened */
    if ((ev & (POLL_EV_IN | POLL_EV_RDHUP)) && ops->on_read && op->fd >= 0)
        ops->on_read(p, op, op->data);
    if ((ev & POLL_EV_OUT) && ops->on_write && op->fd >= 0)
        ops->on_write(p, op, op->data);
}

static void run_tasks(struct poller *p, struct poller_task *t)
{
    while (t) {
        struct poller_task *next = t->next;
        counter_add(&p->c.tasks, 1);
        t->run(p, t, t->arg); /* may free t */
        t = next;
    }
}

/* Deferred tasks may defer more (a free that closes another session): run
 * until none is left. */
static void run_deferred(struct poller *p)
{
    while (p->deferred) {
        struct poller_task *d = p->deferred;
        p->deferred = NULL;
        run_tasks(p, d);
    }
}

static void run_rerun_queue(struct poller *p)
{
    /* Only what was queued before this pass: re-queued fdops wait one turn.
     * The end is tracked by rq_remove, not remembered here: a callback may
     * forget the pass's last fdop (a session closing its other side), and a
     * pass that looked for it would then run re-queued fdops without end. */
    p->rq_stop = p->rq_tail;
    while (p->rq_stop) {
        struct fdop *op = p->rq_head; /* queued before the pass, as rq_stop is */
        uint32_t ev = op->pending;
        rq_remove(p, op);
        dispatch(p, op, ev);
    }
}

int poller_run_once(struct poller *p, int timeout_ms)
{
    if (p->rq_head || p->deferred)
        timeout_ms = 0;
    uint64_t next = timer_next_deadline(&p->timers);
    if (next != UINT64_MAX) {
        uint64_t now = clock_mono_ms();
        int until = next <= now ? 0 : (next - now > INT32_MAX ? INT32_MAX : (int)(next - now));
        if (timeout_ms < 0 || until < timeout_ms)
            timeout_ms = until;
    }
    int n = poll_backend_wait(p->pb, p->evs, POLLER_BATCH, timeout_ms);
    uint64_t t0 = clock_mono_ns();
    p->now_ms = t0 / 1000000u;
    if (n < 0)
        return n;
    counter_add(&p->c.wakeups, 1);
    int woken = 0;
    for (int i = 0; i < n; i++) {
        if (!p->evs[i].ptr) {
            woken = 1;
            continue;
        }
        struct fdop *op = p->evs[i].ptr;
        if (op->fd >= 0)
            dispatch(p, op, p->evs[i].events);
    }
    run_rerun_queue(p);
    if (woken || inbox_depth(&p->inbox))
        run_tasks(p, inbox_take_all(&p->inbox));
    unsigned fired = timer_run_expired(&p->timers, p->now_ms, p);
    if (fired) {
        counter_add(&p->c.timers_fired, fired);
        counter_set(&p->c.timers_pending, p->timers.n);
    }
    run_deferred(p);
    uint64_t busy = clock_mono_ns() - t0;
    counter_add(&p->c.busy_ns, busy);
    histogram_record(&p->loop, busy);
    return n;
}

int poller_run(struct poller *p)
{
    while (!atomic_load_explicit(&p->stopping, memory_order_acquire)) {
        int r = poller_run_once(p, -1);
        if (r < 0)
            return r;
    }
    /* Tasks posted before the stop flag was seen still run: no task is lost. */
    run_tasks(p, inbox_take_all(&p->inbox));
    run_deferred(p);
    return 0;
}

void poller_stop(struct poller *p)
{
    atomic_store_explicit(&p->stopping, 1, memory_order_release);
    poll_backend_wake(p->pb);
}

int poller_id(const struct poller *p)
{
    return p->id;
}
enum poll_kind poller_io(const struct poller *p)
{
    return poll_backend_kind(p->pb);
}
int poller_io_fallback(const struct poller *p)
{
    return p->io_fallback;
}
uint64_t poller_now_ms(const struct poller *p)
{
    return p->now_ms;
}
struct lb_cache *poller_blocks(struct poller *p)
{
    return &p->blocks;
}
const struct poller_counters *poller_counters(const struct poller *p)
{
    return &p->c;
}
const struct histogram *poller_loop_histogram(const struct poller *p)
{
    return &p->loop;
}
uint64_t poller_age_ns(const struct poller *p)
{
    return clock_mono_ns() - p->born_ns;
}
unsigned poller_inbox_depth(struct poller *p)
{
    return inbox_depth(&p->inbox);
}
void *poller_user(const struct poller *p)
{
    return p->user;
}
void poller_set_user(struct poller *p, void *user)
{
    p->user = user;
}
