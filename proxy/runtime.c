/* proxy/runtime.c — builds the running proxy from a config snapshot and tears
 * it down (proxy/runtime.h). */
#define _GNU_SOURCE
#include "runtime.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "log.h"
#include "session.h"

#define STOP_LISTENING_WAIT_MS 5000

static enum pollmgr_balance poller_balance(enum cfg_poller_balance b)
{
    switch (b) {
    case CFG_POLLERS_RANDOM:
        return POLLMGR_RANDOM;
    case CFG_POLLERS_LEAST_LOADED:
        return POLLMGR_LEAST_LOADED;
    case CFG_POLLERS_ROUND_ROBIN:
    default:
        return POLLMGR_ROUND_ROBIN;
    }
}

int runtime_create(struct config *cfg, struct runtime **out)
{
    struct runtime *rt = calloc(1, sizeof(*rt));
    if (!rt) {
        config_free(cfg);
        return -ENOMEM;
    }
    rt->cfg = cfg;
    int err = pollmgr_create(cfg->pollers, poller_balance(cfg->poller_balance), NULL, &rt->pm);
    if (err)
        goto fail;
    rt->nworkers = pollmgr_count(rt->pm) + 1;
    rt->workers = calloc(rt->nworkers, sizeof(*rt->workers));
    rt->pools = calloc(cfg->npools, sizeof(*rt->pools));
    rt->listeners = calloc(cfg->nlisteners, sizeof(*rt->listeners));
    err = -ENOMEM;
    if (!rt->workers || !rt->pools || !rt->listeners)
        goto fail;
    for (size_t i = 0; i < rt->nworkers; i++) {
        struct worker *w = &rt->workers[i];
        w->poller = i == 0 ? pollmgr_main(rt->pm) : pollmgr_sub(rt->pm, (unsigned)i - 1);
        w->rt = rt;
        poller_set_user(w->poller, w);
    }
    for (size_t i = 0; i < cfg->npools; i++, rt->npools++)
        if ((err = pool_init(&rt->pools[i], &cfg->pools[i])))
            goto fail;
    for (size_t i = 0; i < cfg->nlisteners; i++) {
        const struct cfg_listener *cl = &cfg->listeners[i];
        struct listener *l = &rt->listeners[i];
        if ((err = listener_init(l, cl, &rt->pools[cl->pool_index], rt)))
            goto fail;
        rt->nlisteners++;
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

int runtime_start(struct runtime *rt)
{
    /* The pollers do not run yet: registering from this thread is safe, and
     * starting their threads publishes it. */
    struct poller *main = pollmgr_main(rt->pm);
    for (size_t i = 0; i < rt->nlisteners; i++) {
        int err = listener_start(&rt->listeners[i], main);
        if (err)
            return err;
    }
    return pollmgr_start(rt->pm);
}

struct stop_listening {
    struct poller_task task;
    struct runtime *rt;
    atomic_int done;
};

static void close_listeners(struct poller *p, struct poller_task *t, void *arg)
{
    struct stop_listening *sl = arg;
    for (size_t i = 0; i < sl->rt->nlisteners; i++)
        listener_close(&sl->rt->listeners[i], p);
    atomic_store_explicit(&sl->done, 1, memory_order_release);
}

void runtime_stop_listening(struct runtime *rt)
{
    struct stop_listening sl = {.rt = rt};
    atomic_init(&sl.done, 0);
    poller_task_init(&sl.task, close_listeners, &sl);
    if (poller_post(pollmgr_main(rt->pm), &sl.task) < 0)
        return;
    for (int waited = 0; waited < STOP_LISTENING_WAIT_MS; waited++) {
        if (atomic_load_explicit(&sl.done, memory_order_acquire))
            return;
        struct timespec ts = {0, 1000000L};
        nanosleep(&ts, NULL);
    }
    /* The main reactor is stuck: stopping it (runtime_destroy) closes the sockets. */
    log_warn("main reactor did not close its listeners within %d ms", STOP_LISTENING_WAIT_MS);
    pollmgr_stop(rt->pm);
}

uint64_t runtime_active_sessions(struct runtime *rt)
{
    uint64_t n = 0;
    for (size_t i = 0; i < rt->nlisteners; i++)
        n += atomic_load_explicit(&rt->listeners[i].active_connections, memory_order_relaxed);
    return n;
}

void runtime_destroy(struct runtime *rt)
{
    if (!rt)
        return;
    if (rt->pm) {
        pollmgr_stop(rt->pm);
        /* Every poller thread has been joined: this thread owns them now. */
        for (size_t i = 1; rt->workers && i < rt->nworkers; i++) {
            session_close_all(&rt->workers[i]);
            poller_run_once(rt->workers[i].poller, 0);
        }
        for (size_t i = 0; i < rt->nlisteners; i++)
            listener_close(&rt->listeners[i], pollmgr_main(rt->pm));
    }
    for (size_t i = 0; i < rt->nlisteners; i++)
        listener_fini(&rt->listeners[i]);
    for (size_t i = 0; i < rt->npools; i++)
        pool_fini(&rt->pools[i]);
    pollmgr_destroy(rt->pm);
    free(rt->listeners);
    free(rt->pools);
    free(rt->workers);
    config_free(rt->cfg);
    free(rt);
}
