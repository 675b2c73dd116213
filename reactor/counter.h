/* reactor/counter.h — owner-only relaxed counters: one thread writes a
 * counter (a plain load and store, no locked instruction), any thread may
 * read it (stats) and sees a value at worst one update old. The poller's, the
 * block cache's and the proxy's per-poller counters are all of this kind. */
#pragma once

#include <stdatomic.h>
#include <stdint.h>

/* Owner thread only. */
static inline void counter_add(atomic_uint_fast64_t *c, uint64_t n)
{
    atomic_store_explicit(c, atomic_load_explicit(c, memory_order_relaxed) + n,
                          memory_order_relaxed);
}
static inline void counter_sub(atomic_uint_fast64_t *c, uint64_t n)
{
    atomic_store_explicit(c, atomic_load_explicit(c, memory_order_relaxed) - n,
                          memory_order_relaxed);
}
/* Owner thread only: for a gauge that is recomputed rather than moved. */
static inline void counter_set(atomic_uint_fast64_t *c, uint64_t v)
{
    atomic_store_explicit(c, v, memory_order_relaxed);
}
/* Any thread. */
static inline uint64_t counter_get(const atomic_uint_fast64_t *c)
{
    return atomic_load_explicit(c, memory_order_relaxed);
}
