/* proxy/backend_latency.c — the per-poller latency blocks of a backend
 * (proxy/backend_latency.h): made by their poller, summed for readers. */
#include "backend_latency.h"

#include <stdlib.h>
#include <string.h>

#define CACHE_LINE 64

struct backend_latency *backend_latency_alloc(struct backend *b, unsigned poller)
{
    if (poller >= BACKEND_LATENCY_SLOTS)
        return NULL;
    /* Its own cache lines: no other poller's block shares one. */
    size_t size = (sizeof(struct backend_latency) + CACHE_LINE - 1) / CACHE_LINE * CACHE_LINE;
    struct backend_latency *l = aligned_alloc(CACHE_LINE, size);
    if (!l)
        return NULL;
    memset(l, 0, size);
    /* Release: a reader that sees the pointer sees the zeroed block. */
    atomic_store_explicit(&b->latency[poller], l, memory_order_release);
    return l;
}

void backend_latency_read(const struct backend *b, struct backend_latency_snap *out)
{
    memset(out, 0, sizeof(*out));
    for (unsigned i = 0; i < BACKEND_LATENCY_SLOTS; i++) {
        const struct backend_latency *l =
            atomic_load_explicit(&b->latency[i], memory_order_acquire);
        for (int k = 0; l && k < BACKEND_LATENCY_KINDS; k++)
            histogram_snap_add(&out->h[k], &l->h[k]);
    }
}
