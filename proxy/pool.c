/* proxy/pool.c — pools, backend sets and the weighted round-robin pick
 * (proxy/pool.h). */
#define _GNU_SOURCE
#include "pool.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define POOL_SCHEDULE_MAX 65536

static unsigned gcd(unsigned a, unsigned b)
{
    while (b) {
        unsigned t = a % b;
        a = b;
        b = t;
    }
    return a;
}

size_t pool_smooth_wrr(const unsigned *weights, size_t n, uint32_t *out, size_t cap)
{
    unsigned g = 0;
    unsigned long total = 0;
    for (size_t i = 0; i < n; i++)
        g = gcd(g, weights[i]);
    if (g == 0)
        return 0;
    for (size_t i = 0; i < n; i++)
        total += weights[i] / g;
    size_t len = total < cap ? total : cap;
    long *current = calloc(n, sizeof(*current));
    if (!current)
        return 0;
    /* nginx's smooth WRR: every step adds each weight to its current value,
     * picks the largest and takes the total off it. Ties go to the lower index. */
    for (size_t step = 0; step < len; step++) {
        size_t best = 0;
        for (size_t i = 0; i < n; i++) {
            current[i] += (long)(weights[i] / g);
            if (current[i] > current[best])
                best = i;
        }
        current[best] -= (long)total;
        out[step] = (uint32_t)best;
    }
    free(current);
    return len;
}

void backend_set_free(struct backend_set *set)
{
    if (!set)
        return;
    free(set->b);
    free(set->schedule);
    free(set);
}

static struct backend_set *set_build(struct backend **list, size_t n)
{
    struct backend_set *set = calloc(1, sizeof(*set));
    unsigned *weights = calloc(n ? n : 1, sizeof(*weights));
    if (!set || !weights)
        goto fail;
    set->b = calloc(n ? n : 1, sizeof(*set->b));
    set->schedule = calloc(POOL_SCHEDULE_MAX, sizeof(*set->schedule));
    if (!set->b || !set->schedule)
        goto fail;
    set->n = n;
    for (size_t i = 0; i < n; i++) {
        set->b[i] = list[i];
        weights[i] = atomic_load(&list[i]->weight);
    }
    set->schedule_len = pool_smooth_wrr(weights, n, set->schedule, POOL_SCHEDULE_MAX);
    free(weights);
    return set;
fail:
    free(weights);
    backend_set_free(set);
    return NULL;
}

int pool_init(struct pool *pl, const struct cfg_pool *cfg)
{
    memset(pl, 0, sizeof(*pl));
    pl->name = strdup(cfg->name);
    pl->balance = cfg->balance;
    pl->connect_timeout_ms = cfg->connect_timeout_ms;
    pl->idle_timeout_ms = cfg->idle_timeout_ms;
    pl->retries = cfg->retries;
    pl->buffer_high_watermark = cfg->buffer_high_watermark;
    pl->buffer_low_watermark = cfg->buffer_low_watermark;
    atomic_init(&pl->cursor, 0);
    struct backend **list = calloc(cfg->nbackends, sizeof(*list));
    int err = -ENOMEM;
    if (!pl->name || !list)
        goto out;
    size_t made = 0;
    for (; made < cfg->nbackends; made++) {
        const struct cfg_backend *cb = &cfg->backends[made];
        list[made] = backend_new(cb->name, cb->address, &cb->addr, cb->weight);
        if (!list[made])
            goto out;
    }
    struct backend_set *set = set_build(list, made);
    if (!set)
        goto out;
    atomic_init(&pl->set, set);
    err = 0;
out:
    if (err) {
        for (size_t i = 0; list && i < cfg->nbackends; i++)
            backend_free(list[i]);
        free(pl->name);
        pl->name = NULL;
    }
    free(list);
    return err;
}

void pool_fini(struct pool *pl)
{
    struct backend_set *set = atomic_load(&pl->set);
    for (size_t i = 0; set && i < set->n; i++)
        backend_free(set->b[i]);
    backend_set_free(set);
    free(pl->name);
    memset(pl, 0, sizeof(*pl));
}

struct backend_set *pool_current(struct pool *pl)
{
    return atomic_load_explicit(&pl->set, memory_order_acquire);
}

struct backend *pool_find(struct pool *pl, const char *name)
{
    struct backend_set *set = pool_current(pl);
    for (size_t i = 0; i < set->n; i++)
        if (strcmp(set->b[i]->name, name) == 0)
            return set->b[i];
    return NULL;
}

struct backend_set *pool_replace(struct pool *pl, struct backend **list, size_t n)
{
    struct backend_set *set = set_build(list, n);
    if (!set)
        return NULL;
    return atomic_exchange_explicit(&pl->set, set, memory_order_acq_rel);
}

struct backend *pool_pick(struct pool *pl, const struct backend *avoid)
{
    struct backend_set *set = pool_current(pl);
    if (set->schedule_len == 0)
        return NULL;
    unsigned start = atomic_fetch_add_explicit(&pl->cursor, 1, memory_order_relaxed);
    struct backend *fallback = NULL;
    /* One full turn of the schedule at most: every backend with weight is in it. */
    for (size_t k = 0; k < set->schedule_len; k++) {
        struct backend *b = set->b[set->schedule[(start + k) % set->schedule_len]];
        if (!backend_pickable(b))
            continue;
        if (b == avoid) {
            fallback = b;
            continue;
        }
        if (backend_acquire(b))
            return b;
    }
    return fallback && backend_acquire(fallback) ? fallback : NULL;
}
