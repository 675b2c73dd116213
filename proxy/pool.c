/* proxy/pool.c — pools, backends and the weighted round-robin pick (proxy/pool.h). */
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

int pool_init(struct pool *pl, const struct cfg_pool *cfg)
{
    memset(pl, 0, sizeof(*pl));
    pl->name = strdup(cfg->name);
    pl->connect_timeout_ms = cfg->connect_timeout_ms;
    pl->idle_timeout_ms = cfg->idle_timeout_ms;
    pl->retries = cfg->retries;
    pl->buffer_high_watermark = cfg->buffer_high_watermark;
    pl->buffer_low_watermark = cfg->buffer_low_watermark;
    pl->nbackends = cfg->nbackends;
    pl->backends = calloc(cfg->nbackends, sizeof(*pl->backends));
    unsigned *weights = calloc(cfg->nbackends, sizeof(*weights));
    pl->schedule = calloc(POOL_SCHEDULE_MAX, sizeof(*pl->schedule));
    if (!pl->name || !pl->backends || !weights || !pl->schedule) {
        free(weights);
        pool_fini(pl);
        return -ENOMEM;
    }
    for (size_t i = 0; i < cfg->nbackends; i++) {
        struct backend *b = &pl->backends[i];
        b->name = strdup(cfg->backends[i].name);
        b->address = strdup(cfg->backends[i].address);
        b->addr = cfg->backends[i].addr;
        atomic_init(&b->weight, cfg->backends[i].weight);
        atomic_init(&b->state, BACKEND_UP);
        weights[i] = cfg->backends[i].weight;
        if (!b->name || !b->address) {
            free(weights);
            pool_fini(pl);
            return -ENOMEM;
        }
    }
    pl->schedule_len = pool_smooth_wrr(weights, cfg->nbackends, pl->schedule, POOL_SCHEDULE_MAX);
    free(weights);
    atomic_init(&pl->cursor, 0);
    return 0;
}

void pool_fini(struct pool *pl)
{
    for (size_t i = 0; pl->backends && i < pl->nbackends; i++) {
        free(pl->backends[i].name);
        free(pl->backends[i].address);
    }
    free(pl->backends);
    free(pl->schedule);
    free(pl->name);
    memset(pl, 0, sizeof(*pl));
}

struct backend *pool_pick(struct pool *pl, const struct backend *avoid)
{
    if (pl->schedule_len == 0)
        return NULL;
    unsigned start = atomic_fetch_add_explicit(&pl->cursor, 1, memory_order_relaxed);
    struct backend *fallback = NULL;
    /* One full turn of the schedule at most: every backend with weight appears in it. */
    for (size_t k = 0; k < pl->schedule_len; k++) {
        struct backend *b = &pl->backends[pl->schedule[(start + k) % pl->schedule_len]];
        if (!backend_pickable(b))
            continue;
        if (b != avoid)
            return b;
        fallback = b;
    }
    return fallback;
}
