/* proxy/runtime.c — the composition root (proxy/runtime.h): builds the
 * running proxy from a config snapshot and wires its parts (each listener
 * hands its connections to session_accept with the poll manager), starts and
 * stops it, and owns the housekeeping policy. Not on the data path. */
#define _GNU_SOURCE
#include "backend_edit.h"
#include "runtime.h"

#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "connlog.h"
#include "health.h"
#include "log.h"
#include "resolver.h"
#include "session.h"

#define STOP_LISTENING_WAIT_MS 5000
#define HOUSEKEEPING_MS        100 /* how late a drain deadline may be enforced */
#define BLOCK_TRIM_TICKS       10  /* housekeeping runs per block-cache trim: 1 s */
#define MIN_BLOCKS_PER_POLLER  16

/* One sub-reactor's housekeeping timer, its run count and its own copy of
 * the current pool list (a reload replaces rt->pools under the control lock
 * and then hands each sub-reactor the new list: runtime_publish_pools). */
struct housekeeping {
    struct timer timer;
    unsigned ticks;      /* runs so far */
    struct runtime *rt;  /* not owned */
    struct pool **pools; /* not owned: rt->pools as last published to this poller */
    size_t npools;
    uint64_t shed_credit; /* forced closes this poller may still make, in 1/1000 */
};

static void housekeeping(void *loop, struct timer *t, void *data);

int runtime_create(struct config *cfg, unsigned flags, struct runtime **out)
{
    struct runtime *rt = calloc(1, sizeof(*rt));
    if (!rt) {
        config_free(cfg);
        return -ENOMEM;
    }
    rt->cfg = rt->boot_cfg = cfg;
    rt->reload.generation = 1;
    pthread_mutex_init(&rt->control, NULL); /* default attributes: cannot fail */
    atomic_init(&rt->shed_rate_per_s, cfg->shed_rate_per_s);
    /* The buffer memory budget is split evenly: each sub-reactor caps its own
     * block cache, so no shared counter is touched on the data path. */
    unsigned nsub = pollmgr_subs_for(cfg->pollers);
    size_t per_poller = (size_t)(cfg->buffer_memory_limit / nsub / LINKBUF_BLOCK_SIZE);
    struct poller_opts opts = {
        .block_limit = per_poller < MIN_BLOCKS_PER_POLLER ? MIN_BLOCKS_PER_POLLER : per_poller,
        .io = cfg->io};
    int err = pollmgr_create(nsub, cfg->poller_balance, &opts, &rt->pm);
    if (err)
        goto fail;
    struct poller *main_poller = pollmgr_main(rt->pm);
    if (cfg->io == POLL_KIND_URING && poller_io(main_poller) != POLL_KIND_URING)
        log_warn("io: io_uring cannot be set up (%s): using epoll",
                 strerror(-poller_io_fallback(main_poller)));
    rt->nworkers = pollmgr_count(rt->pm) + 1;
    rt->workers = calloc(rt->nworkers, sizeof(*rt->workers));
    rt->housekeeping = calloc(rt->nworkers, sizeof(*rt->housekeeping));
    rt->pools = calloc(cfg->npools, sizeof(*rt->pools));
    rt->listeners = calloc(cfg->nlisteners, sizeof(*rt->listeners));
    err = -ENOMEM;
    if (!rt->workers || !rt->housekeeping || !rt->pools || !rt->listeners)
        goto fail;
    for (size_t i = 0; i < rt->nworkers; i++) {
        struct poller *p = i == 0 ? pollmgr_main(rt->pm) : pollmgr_sub(rt->pm, (unsigned)i - 1);
        worker_init(&rt->workers[i], p, session_starve_retry);
        /* A zeroed timer would read as armed (heap slot 0): initialise it now. */
        timer_init(&rt->housekeeping[i].timer, housekeeping, &rt->housekeeping[i]);
        rt->housekeeping[i].rt = rt;
        timer_init(&rt->workers[i].log_flush, session_log_flush, &rt->workers[i]);
    }
    /* A ring per sub-reactor (sessions live there), none for the main reactor. */
    if (cfg->log.connections && (err = connlog_create(&cfg->log, rt->nworkers - 1, &rt->log)))
        goto fail;
    for (size_t i = 1; rt->log && i < rt->nworkers; i++) {
        rt->workers[i].log = connlog_ring(rt->log, i - 1);
        rt->workers[i].log_flush_ms = cfg->log.flush_interval_ms;
    }
    for (size_t i = 0; i < cfg->npools; i++, rt->npools++) {
        if (!(rt->pools[i] = calloc(1, sizeof(struct pool))))
            goto fail;
        if ((err = pool_init(rt->pools[i], &cfg->pools[i]))) {
            free(rt->pools[i]);
            goto fail;
        }
    }
    for (size_t i = 1; i < rt->nworkers; i++) {
        rt->housekeeping[i].pools = rt->pools;
        rt->housekeeping[i].npools = rt->npools;
    }
    /* Names are resolved once now (a default-mode name that gives nothing
     * fails the start), then followed by the resolver's thread. */
    if ((err = resolver_create(cfg, rt->pools, rt->npools, rt->pm, &rt->control, 0, &rt->resolver)))
        goto fail;
    for (size_t i = 0; i < cfg->nlisteners; i++) {
        const struct cfg_listener *cl = &cfg->listeners[i];
        struct listener *l = calloc(1, sizeof(*l));
        if (!l)
            goto fail;
        if ((err = listener_init(l, cl, rt->pools[cl->pool_index], rt->pm, cfg->accept,
                                 session_accept, rt->pm))) {
            free(l);
            goto fail;
        }
        rt->listeners[rt->nlisteners++] = l;
        if ((err = listener_set_routes(l, cl, rt->pools)))
            goto fail;
        if (flags & RUNTIME_NO_LISTEN)
            continue;
        if ((err = listener_open(l))) {
            log_error("listener %s: cannot listen on %s: %s", l->name, l->listen, strerror(-err));
            goto fail;
        }
    }
    *out = rt;
    return 0;
fail:
    runtime_destroy(rt);
    return err;
}

/* Forced closes this sub-reactor may make in this tick: shed_rate_per_s
 * shared evenly by the sub-reactors and spread over the ticks, with unused
 * credit kept up to one second's worth; UINT_MAX when there is no rate. */
static unsigned shed_budget(struct runtime *rt, struct housekeeping *hk)
{
    uint64_t rate = atomic_load_explicit(&rt->shed_rate_per_s, memory_order_relaxed);
    if (!rate)
        return UINT_MAX;
    uint64_t per_poller = rate / (rt->nworkers - 1);
    if (!per_poller)
        per_poller = 1;
    hk->shed_credit += per_poller * HOUSEKEEPING_MS; /* closes/s × ms = thousandths */
    if (hk->shed_credit > per_poller * 1000u)
        hk->shed_credit = per_poller * 1000u;
    uint64_t n = hk->shed_credit / 1000u;
    return n < UINT_MAX ? (unsigned)n : UINT_MAX - 1;
}

/* Sub-reactor timer: runs health checks' timing, closes this poller's
 * sessions on backends whose close deadline passed while they are draining
 * or disabled, and once a second frees the linkbuf blocks that sat unused in
 * the poller's cache for the whole second (a burst's memory goes back). */
static void housekeeping(void *loop, struct timer *t, void *data)
{
    struct housekeeping *hk = data;
    struct poller *p = loop;
    struct worker *w = poller_user(p);
    uint64_t now = poller_now_ms(p);
    if (++hk->ticks % BLOCK_TRIM_TICKS == 0)
        lb_cache_trim(poller_blocks(p));
    struct runtime *rt = hk->rt;
    unsigned budget = shed_budget(rt, hk), granted = budget;
    for (size_t i = 0; i < hk->npools; i++) {
        struct backend_set *set = pool_current(hk->pools[i]);
        for (size_t j = 0; j < set->n; j++) {
            struct backend *b = set->b[j];
            health_tick(hk->pools[i], b, now);
            uint64_t at = atomic_load_explicit(&b->close_at_ms, memory_order_relaxed);
            int st = atomic_load_explicit(&b->state, memory_order_relaxed);
            if (!budget || !at || now < at || (st != BACKEND_DRAINING && st != BACKEND_DISABLED) ||
                atomic_load_explicit(&b->active_connections, memory_order_relaxed) == 0)
                continue;
            unsigned n = session_close_on_backend(w, b, budget);
            if (n)
                atomic_fetch_add_explicit(&b->drain_forced, n, memory_order_relaxed);
            budget -= n;
        }
    }
    if (atomic_load_explicit(&rt->shedding, memory_order_relaxed) && budget)
        counter_add(&w->c.shutdown_forced, session_shed(w, budget));
    if (granted != UINT_MAX)
        hk->shed_credit -= (uint64_t)(granted - budget) * 1000u;
    poller_timer_start(p, t, HOUSEKEEPING_MS);
}

int runtime_start(struct runtime *rt)
{
    /* The pollers do not run yet: registering from this thread is safe, and
     * starting their threads publishes it. */
    for (size_t i = 0; i < rt->nlisteners; i++) {
        int err = listener_bound(rt->listeners[i]) ? listener_start(rt->listeners[i]) : 0;
        if (err)
            return err;
    }
    for (size_t i = 1; i < rt->nworkers; i++)
        poller_timer_start(rt->workers[i].poller, &rt->housekeeping[i].timer, HOUSEKEEPING_MS);
    for (size_t i = 1; rt->log && i < rt->nworkers; i++)
        if (rt->workers[i].log_flush_ms)
            poller_timer_start(rt->workers[i].poller, &rt->workers[i].log_flush,
                               rt->workers[i].log_flush_ms);
    if (rt->log) {
        int err = connlog_start(rt->log);
        if (err)
            return err;
    }
    /* Active checkers spread over the sub-reactors, one backend each. */
    for (size_t i = 0; i < rt->npools; i++) {
        struct pool *pl = rt->pools[i];
        struct backend_set *set = pool_current(pl);
        for (size_t j = 0; pl->health_check.enabled && j < set->n; j++) {
            int err = health_check_attach(pl, set->b[j], runtime_checker_poller(rt));
            if (err)
                return err;
        }
    }
    int err = pollmgr_start(rt->pm);
    if (!err)
        err = resolver_start(rt->resolver);
    pthread_mutex_lock(&rt->control);
    rt->started = err == 0;
    pthread_mutex_unlock(&rt->control);
    return err;
}

static void close_listeners(struct poller *p, void *arg)
{
    struct runtime *rt = arg;
    for (size_t i = 0; i < rt->nlisteners; i++)
        listener_close_on(rt->listeners[i], p);
}

void runtime_stop_listening(struct runtime *rt)
{
    /* Every poller closes the listening sockets it owns (the main reactor's,
     * or each sub-reactor's own with reuseport). Under the control lock: a
     * reload in progress finishes first, and none starts after. */
    pthread_mutex_lock(&rt->control);
    rt->stopping = 1;
    int err = pollmgr_broadcast(rt->pm, POLLMGR_ALL, close_listeners, rt, STOP_LISTENING_WAIT_MS);
    pthread_mutex_unlock(&rt->control);
    if (err == 0)
        return;
    /* A poller is stuck or refused the task: stopping them all (joined, so
     * every queued task has run) lets runtime_destroy close the sockets. */
    log_warn("the pollers did not close their listeners (%s, waited up to %d ms); stopping them",
             strerror(-err), STOP_LISTENING_WAIT_MS);
    pollmgr_stop(rt->pm);
}

int runtime_quiesce(struct runtime *rt, unsigned timeout_ms)
{
    /* A task through every sub-reactor's inbox: once each has run it, none
     * is still inside the loop iteration that might read the old state. */
    return pollmgr_broadcast(rt->pm, POLLMGR_SUBS, NULL, NULL, timeout_ms);
}

struct poller *runtime_checker_poller(struct runtime *rt)
{
    return pollmgr_pick(rt->pm);
}

struct listener *runtime_find_listener(struct runtime *rt, const char *name)
{
    for (size_t i = 0; i < rt->nlisteners; i++)
        if (strcmp(rt->listeners[i]->name, name) == 0)
            return rt->listeners[i];
    return NULL;
}

struct pool *runtime_find_pool(struct runtime *rt, const char *name)
{
    for (size_t i = 0; i < rt->npools; i++)
        if (strcmp(rt->pools[i]->name, name) == 0)
            return rt->pools[i];
    return NULL;
}

void runtime_reopen_log(struct runtime *rt)
{
    connlog_reopen(rt->log);
}

uint64_t runtime_active_sessions(struct runtime *rt)
{
    uint64_t n = 0;
    pthread_mutex_lock(&rt->control);
    for (size_t i = 0; i < rt->nlisteners; i++)
        n += atomic_load_explicit(&rt->listeners[i]->active_connections, memory_order_relaxed);
    for (size_t i = 0; i < rt->nretired_listeners; i++)
        n += atomic_load_explicit(&rt->retired_listeners[i]->active_connections,
                                  memory_order_relaxed);
    pthread_mutex_unlock(&rt->control);
    return n;
}

void runtime_destroy(struct runtime *rt)
{
    if (!rt)
        return;
    /* Before the pollers stop: its changes wait for them (quiesce). */
    resolver_destroy(rt->resolver);
    if (rt->pm) {
        pollmgr_stop(rt->pm);
        /* Every poller thread has been joined: this thread owns them now. */
        for (size_t i = 1; rt->workers && i < rt->nworkers; i++) {
            /* A task posted just as the loop ended (a hand-off from the main
             * reactor) is still in the inbox: run it first, so the session it
             * brings is closed with the rest, not stranded. */
            poller_run_once(rt->workers[i].poller, 0);
            session_close_all(&rt->workers[i]);
            poller_run_once(rt->workers[i].poller, 0);
            counter_sub(&rt->workers[i].c.pipes_cached, pipe_cache_close(&rt->workers[i].pipes));
        }
        /* Every session is closed and its line in a ring: the logger writes
         * them out, then stops: nothing can fill a ring any more. */
        connlog_destroy(rt->log);
        rt->log = NULL;
        uint64_t dropped = 0;
        for (size_t i = 1; rt->workers && i < rt->nworkers; i++)
            dropped += counter_get(&rt->workers[i].c.log_dropped);
        if (dropped) /* the stats can no longer be read: say it once */
            log_warn("connection log: %llu lines dropped (a poller's ring was full)",
                     (unsigned long long)dropped);
        for (size_t i = 0; i < rt->nlisteners; i++)
            for (size_t w = 0; w < rt->nworkers; w++)
                listener_close_on(rt->listeners[i], rt->workers[w].poller);
        for (size_t i = 0; i < rt->npools; i++) {
            struct backend_set *set = pool_current(rt->pools[i]);
            for (size_t j = 0; j < set->n; j++)
                health_check_detach(set->b[j]);
        }
    }
    connlog_destroy(rt->log);     /* built but the pollers never were */
    runtime_retired_free_all(rt); /* after the checkers: none points at a retired pool */
    for (size_t i = 0; i < rt->nlisteners; i++) {
        listener_fini(rt->listeners[i]);
        free(rt->listeners[i]);
    }
    for (size_t i = 0; i < rt->npools; i++) {
        pool_fini(rt->pools[i]);
        free(rt->pools[i]);
    }
    pollmgr_destroy(rt->pm);
    free(rt->listeners);
    free(rt->pools);
    free(rt->workers);
    free(rt->housekeeping);
    if (rt->boot_cfg != rt->cfg)
        config_free(rt->boot_cfg);
    config_free(rt->cfg);
    free(rt->reload.last_error);
    pthread_mutex_destroy(&rt->control);
    free(rt);
}

void runtime_shed(struct runtime *rt)
{
    atomic_store(&rt->shedding, 1);
}

pthread_mutex_t *runtime_control(struct runtime *rt)
{
    return &rt->control;
}

void runtime_control_tick(struct runtime *rt)
{
    pthread_mutex_lock(&rt->control);
    for (size_t i = 0; i < rt->npools; i++)
        backend_edit_reap(rt->pm, rt->pools[i]);
    runtime_retired_reap(rt);
    pthread_mutex_unlock(&rt->control);
}

static void publish_pools(struct poller *p, void *arg)
{
    struct runtime *rt = arg;
    struct housekeeping *hk = &rt->housekeeping[poller_id(p)];
    hk->pools = rt->pools;
    hk->npools = rt->npools;
}

int runtime_publish_pools(struct runtime *rt)
{
    return pollmgr_broadcast(rt->pm, POLLMGR_SUBS, publish_pools, rt, STOP_LISTENING_WAIT_MS);
}
