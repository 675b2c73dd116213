/* proxy/backend_latency.h — a backend's latency histograms: connect time,
 * time to the backend's first byte, session duration. Each poller keeps its
 * own block per backend (backend.latency[poller id]), allocated by that
 * poller on its first record and written by it alone, so the data path takes
 * no lock and touches no cache line another thread writes; readers (the
 * admin thread) sum the blocks. A backend added at run time starts with no
 * block and gets each one on its first session on a poller; the blocks are
 * freed with the backend (backend_free). */
#pragma once

#include <stdint.h>

#include "backend.h"
#include "reactor/histogram.h"

enum backend_latency_kind {
    BACKEND_LATENCY_CONNECT,    /* the last dial's start -> connected */
    BACKEND_LATENCY_FIRST_BYTE, /* connected -> the backend's first byte relayed */
    BACKEND_LATENCY_DURATION,   /* accepted -> closed, for sessions that connected */
    BACKEND_LATENCY_KINDS
};

struct backend_latency {
    struct histogram h[BACKEND_LATENCY_KINDS];
};

/* Poller `poller` only: makes its block for b (cache-line aligned). NULL when
 * out of memory or when the id has no slot: that value goes unrecorded. */
struct backend_latency *backend_latency_alloc(struct backend *b, unsigned poller);

/* Poller `poller` only (the session's owner): records ns into b's histogram
 * of kind k. A load, a test and histogram_record once the block exists. */
static inline void backend_latency_record(struct backend *b, unsigned poller,
                                          enum backend_latency_kind k, uint64_t ns)
{
    struct backend_latency *l =
        poller < BACKEND_LATENCY_SLOTS
            ? atomic_load_explicit(&b->latency[poller], memory_order_relaxed)
            : NULL;
    if (!l && !(l = backend_latency_alloc(b, poller)))
        return;
    histogram_record(&l->h[k], ns);
}

/* Any thread that may read b (pool_current's rule): b's histograms summed
 * over every poller's block. */
struct backend_latency_snap {
    struct histogram_snap h[BACKEND_LATENCY_KINDS];
};
void backend_latency_read(const struct backend *b, struct backend_latency_snap *out);
