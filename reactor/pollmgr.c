/* reactor/pollmgr.c — threads and the pick policies of reactor/pollmgr.h. */
#define _GNU_SOURCE
#include "pollmgr.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "counter.h"
#include "random.h"
#include "wait.h"

#define BROADCAST_STEP_MS 1 /* how often a broadcast looks whether all have run */

struct pollmgr {
    enum pollmgr_balance balance;
    unsigned nsub;
    atomic_uint rr;
    int running;
    struct poller *main;  /* owned */
    struct poller **subs; /* owned */
    pthread_t *threads;   /* [0] main, [1..nsub] subs */
    unsigned nthreads;
};

unsigned pollmgr_subs_for(unsigned nsub)
{
    if (nsub)
        return nsub;
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    return cpus > 0 ? (unsigned)cpus : 1;
}

int pollmgr_create(unsigned nsub, enum pollmgr_balance balance, const struct poller_opts *opts,
                   struct pollmgr **out)
{
    nsub = pollmgr_subs_for(nsub);
    struct pollmgr *pm = calloc(1, sizeof(*pm));
    if (!pm)
        return -ENOMEM;
    pm->balance = balance;
    pm->nsub = nsub;
    atomic_init(&pm->rr, 0);
    pm->subs = calloc(nsub, sizeof(*pm->subs));
    pm->threads = calloc(nsub + 1, sizeof(*pm->threads));
    int err = -ENOMEM;
    if (!pm->subs || !pm->threads)
        goto fail;
    if ((err = poller_create(0, opts, &pm->main)))
        goto fail;
    for (unsigned i = 0; i < nsub; i++)
        if ((err = poller_create((int)i + 1, opts, &pm->subs[i])))
            goto fail;
    *out = pm;
    return 0;
fail:
    pollmgr_destroy(pm);
    return err;
}

void pollmgr_destroy(struct pollmgr *pm)
{
    if (!pm)
        return;
    pollmgr_stop(pm);
    for (unsigned i = 0; pm->subs && i < pm->nsub; i++)
        poller_destroy(pm->subs[i]);
    poller_destroy(pm->main);
    free(pm->subs);
    free(pm->threads);
    free(pm);
}

struct poller *pollmgr_main(struct pollmgr *pm)
{
    return pm->main;
}
struct poller *pollmgr_sub(struct pollmgr *pm, unsigned i)
{
    return i < pm->nsub ? pm->subs[i] : NULL;
}
unsigned pollmgr_count(const struct pollmgr *pm)
{
    return pm->nsub;
}

static uint64_t load_of(const struct poller *p)
{
    return counter_get(&poller_counters(p)->registrations);
}

/* The sub-reactor with the fewest registered fds, its load in *load. The
 * scan starts at a rotating index so ties spread instead of piling on 0. */
static struct poller *least_loaded(struct pollmgr *pm, uint64_t *load)
{
    unsigned start = atomic_fetch_add_explicit(&pm->rr, 1, memory_order_relaxed);
    struct poller *best = NULL;
    uint64_t best_load = UINT64_MAX;
    for (unsigned k = 0; k < pm->nsub; k++) {
        struct poller *p = pm->subs[(start + k) % pm->nsub];
        uint64_t l = load_of(p);
        if (l < best_load) {
            best = p;
            best_load = l;
        }
    }
    *load = best_load;
    return best;
}

struct poller *pollmgr_pick(struct pollmgr *pm)
{
    if (pm->nsub == 1)
        return pm->subs[0];
    switch (pm->balance) {
    case POLLMGR_RANDOM:
        return pm->subs[(random_next() >> 33) % pm->nsub];
    case POLLMGR_LEAST_LOADED: {
        uint64_t load;
        return least_loaded(pm, &load);
    }
    case POLLMGR_ROUND_ROBIN:
    default:
        return pm->subs[atomic_fetch_add_explicit(&pm->rr, 1, memory_order_relaxed) % pm->nsub];
    }
}

struct poller *pollmgr_keep_or_pick(struct pollmgr *pm, struct poller *here)
{
    if (pm->nsub == 1)
        return here;
    uint64_t least, mine = load_of(here);
    struct poller *best = least_loaded(pm, &least);
    /* Loads count fds (two per session): keep unless this one carries more
     * than a session and an eighth beyond the least loaded. */
    return mine > least + 2 + least / 8 ? best : here;
}

static struct poller *poller_at(struct pollmgr *pm, unsigned t)
{
    return t == 0 ? pm->main : pm->subs[t - 1];
}

/* A broadcast's tasks and the waiter's count of those still to run.
 * Refcounted: the waiter may give up (timeout) while tasks are still queued;
 * the last one to let go frees it. */
struct broadcast {
    atomic_int refs;
    atomic_int pending;
    pollmgr_fn fn;
    void *arg; /* not owned */
    struct poller_task tasks[];
};

static void broadcast_put(struct broadcast *bc)
{
    if (atomic_fetch_sub(&bc->refs, 1) == 1)
        free(bc);
}

static void broadcast_ran(struct poller *p, struct poller_task *t, void *arg)
{
    struct broadcast *bc = arg;
    if (bc->fn)
        bc->fn(p, bc->arg);
    atomic_fetch_sub_explicit(&bc->pending, 1, memory_order_release);
    broadcast_put(bc);
}

static int broadcast_done(void *arg)
{
    const struct broadcast *bc = arg;
    return atomic_load_explicit(&bc->pending, memory_order_acquire) == 0;
}

int pollmgr_broadcast(struct pollmgr *pm, enum pollmgr_scope scope, pollmgr_fn fn, void *arg,
                      unsigned timeout_ms)
{
    unsigned first = scope == POLLMGR_ALL ? 0 : 1, n = pm->nsub + 1 - first;
    struct broadcast *bc = calloc(1, sizeof(*bc) + n * sizeof(bc->tasks[0]));
    if (!bc)
        return -ENOMEM;
    atomic_init(&bc->refs, 1);
    atomic_init(&bc->pending, 0);
    bc->fn = fn;
    bc->arg = arg;
    int err = 0;
    for (unsigned i = 0; i < n; i++) {
        poller_task_init(&bc->tasks[i], broadcast_ran, bc);
        atomic_fetch_add(&bc->refs, 1);
        atomic_fetch_add(&bc->pending, 1);
        if (poller_post(poller_at(pm, first + i), &bc->tasks[i]) < 0) {
            atomic_fetch_sub(&bc->refs, 1);
            atomic_fetch_sub(&bc->pending, 1);
            err = -EAGAIN;
        }
    }
    if (wait_until(broadcast_done, NULL, bc, timeout_ms, BROADCAST_STEP_MS) == -ETIMEDOUT)
        err = -ETIMEDOUT;
    broadcast_put(bc);
    return err;
}

static void *thread_main(void *arg)
{
    poller_run(arg);
    return NULL;
}

int pollmgr_start(struct pollmgr *pm)
{
    if (pm->running)
        return 0;
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, &old);
    int err = 0;
    pm->nthreads = 0;
    for (unsigned t = 0; t < pm->nsub + 1; t++) {
        err = -pthread_create(&pm->threads[t], NULL, thread_main, poller_at(pm, t));
        if (err)
            break;
        /* Shown by top -H, ps -L and perf: which thread is which poller. */
        char name[16];
        if (t == 0)
            snprintf(name, sizeof(name), "sluice-main");
        else
            snprintf(name, sizeof(name), "sluice-sub%u", t % 10000);
        pthread_setname_np(pm->threads[t], name);
        pm->nthreads++;
    }
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    pm->running = 1;
    if (err)
        pollmgr_stop(pm);
    return err;
}

void pollmgr_stop(struct pollmgr *pm)
{
    if (!pm->running)
        return;
    for (unsigned t = 0; t < pm->nthreads; t++)
        poller_stop(poller_at(pm, t));
    for (unsigned t = 0; t < pm->nthreads; t++)
        pthread_join(pm->threads[t], NULL);
    pm->nthreads = 0;
    pm->running = 0;
}
