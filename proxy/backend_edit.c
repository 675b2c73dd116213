/* proxy/backend_edit.c — changes to a pool's backend set at run time
 * (proxy/backend_edit.h): build, post the checker's start or stop, install,
 * quiesce, free. */
#include "backend_edit.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "backend.h"
#include "health.h"
#include "pool.h"
#include "reactor/pollmgr.h"

#define QUIESCE_TIMEOUT_MS 5000

/* Installs set and frees the old one once no sub-reactor can read it, with
 * `gone` (may be NULL), a backend no longer in the set. The quiesce also runs
 * every task posted before it (a checker's start or stop): inboxes run in order. */
static void install(struct pollmgr *pm, struct pool *pl, struct backend_set *set,
                    struct backend *gone)
{
    struct backend_set *old = pool_install_set(pl, set);
    if (pollmgr_broadcast(pm, POLLMGR_SUBS, NULL, NULL, QUIESCE_TIMEOUT_MS) == 0) {
        backend_set_free(old);
        backend_free(gone);
    }
    /* else: a poller did not answer in time; leaking beats a use-after-free. */
}

int backend_edit_add(struct pollmgr *pm, struct pool *pl, const char *name, const char *address,
                     const struct cfg_addrs *addrs, unsigned weight, struct backend **out)
{
    if (pool_find(pl, name))
        return -EEXIST;
    struct backend_set *cur = pool_current(pl), *set = NULL;
    if (cur->n >= BACKEND_EDIT_MAX)
        return -ENOSPC;
    struct backend **list = calloc(cur->n + 1, sizeof(*list));
    struct backend *b = backend_new(name, address, addrs, weight);
    if (list && b) {
        memcpy(list, cur->b, cur->n * sizeof(*list));
        list[cur->n] = b;
        set = pool_build_set(pl, list, cur->n + 1);
    }
    free(list);
    if (!set) {
        backend_free(b);
        return -ENOMEM;
    }
    /* The start is queued ahead of the install's quiesce, and a later
     * remove's stop queues behind it on the same inbox. */
    int err = pl->health_check.enabled ? health_check_start_on(pl, b, pollmgr_pick(pm)) : 0;
    if (err) {
        backend_set_free(set);
        backend_free(b);
        return err;
    }
    install(pm, pl, set, NULL);
    *out = b;
    return 0;
}

int backend_edit_remove(struct pollmgr *pm, struct pool *pl, struct backend *b)
{
    enum backend_state st = backend_state_now(b);
    if ((st != BACKEND_DRAINED && st != BACKEND_DISABLED) || atomic_load(&b->active_connections))
        return -EBUSY;
    struct backend_set *set = pool_current(pl);
    struct backend **list = calloc(set->n ? set->n : 1, sizeof(*list));
    if (!list)
        return -ENOMEM;
    size_t n = 0;
    for (size_t i = 0; i < set->n; i++)
        if (set->b[i] != b)
            list[n++] = set->b[i];
    struct backend_set *next = pool_build_set(pl, list, n);
    free(list);
    if (!next)
        return -ENOMEM;
    /* The stop is queued before the install's quiesce: the checker is gone
     * once that returns, and only then is b freed. A stop that cannot be
     * posted leaves the checker pointing at b: keep b, change nothing. */
    int err = health_check_stop_on(b);
    if (err) {
        backend_set_free(next);
        return err;
    }
    install(pm, pl, next, b);
    return 0;
}

int backend_edit_reweight(struct pollmgr *pm, struct pool *pl, struct backend *b, unsigned weight)
{
    unsigned before = atomic_load(&b->weight);
    atomic_store(&b->weight, weight);
    struct backend_set *cur = pool_current(pl);
    struct backend_set *set = pool_build_set(pl, cur->b, cur->n);
    if (!set) {
        atomic_store(&b->weight, before);
        return -ENOMEM;
    }
    install(pm, pl, set, NULL);
    return 0;
}

int backend_edit_addrs(struct pollmgr *pm, struct backend *b, const struct cfg_addrs *addrs)
{
    struct cfg_addrs *copy = malloc(sizeof(*copy));
    if (!copy)
        return -ENOMEM;
    *copy = *addrs;
    struct cfg_addrs *old = backend_swap_addrs(b, copy);
    /* A dial in progress read the old list in its poller's iteration. */
    if (pollmgr_broadcast(pm, POLLMGR_SUBS, NULL, NULL, QUIESCE_TIMEOUT_MS) == 0)
        free(old);
    return 0;
}

void backend_edit_retire(struct backend *b, uint64_t deadline_ms)
{
    atomic_store(&b->retired, 1);
    backend_drain(b, deadline_ms);
}

size_t backend_edit_reap(struct pollmgr *pm, struct pool *pl)
{
    size_t n = 0;
    /* One at a time: each removal replaces the set being walked. */
    for (int again = 1; again;) {
        again = 0;
        struct backend_set *set = pool_current(pl);
        for (size_t i = 0; i < set->n; i++) {
            struct backend *b = set->b[i];
            if (atomic_load(&b->retired) && backend_edit_remove(pm, pl, b) == 0) {
                n++;
                again = 1;
                break;
            }
        }
    }
    return n;
}
