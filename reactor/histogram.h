/* reactor/histogram.h — a fixed log-scale latency histogram in nanoseconds:
 * buckets, sum and max, written by one owner thread without locks (relaxed
 * load + store, as reactor/counter.h) and read from any thread by summing
 * the owners' histograms into a snapshot, which estimates quantiles. It
 * knows nothing of what it times: the poller's loop, the proxy's backends.
 *
 * Buckets: 4 per power of two (log-linear: the power from a clz, then the
 * next 2 bits of the value), from 2^10 ns (1.024 us) up to 2^36 ns (68.7 s),
 * plus one below (0 .. 1.024 us) and one above (+Inf). A bucket spans at most
 * 25 % of its lower bound, so an estimate within one bucket is off by less
 * than that; 1-2.5-5 steps would need a division or a search to find the
 * bucket, this needs a clz, a shift and an add. */
#pragma once

#include <stdatomic.h>
#include <stdint.h>

#define HISTOGRAM_SUB_BITS  2 /* 4 buckets per power of two */
#define HISTOGRAM_SUB       (1u << HISTOGRAM_SUB_BITS)
#define HISTOGRAM_MIN_SHIFT 10 /* first bound: 2^10 ns = 1.024 us */
#define HISTOGRAM_MAX_SHIFT 36 /* last finite bound: 2^36 ns = 68.7 s */
/* [0, 2^10) + 4 per power of two from 2^10 to 2^36 + [2^36, +Inf) */
#define HISTOGRAM_BUCKETS (2 + (HISTOGRAM_MAX_SHIFT - HISTOGRAM_MIN_SHIFT) * HISTOGRAM_SUB)

struct histogram {
    atomic_uint_fast64_t bucket[HISTOGRAM_BUCKETS];
    atomic_uint_fast64_t max_ns;
    /* A double: summed durations of long sessions would wrap 64-bit
     * nanoseconds in weeks (10,000 open sessions add 10,000 s a second). */
    _Atomic double sum_ns;
};

/* What one value falls in: bucket i holds values below histogram_upper_ns(i)
 * and at or above histogram_upper_ns(i - 1). */
static inline unsigned histogram_bucket(uint64_t ns)
{
    if (ns < (UINT64_C(1) << HISTOGRAM_MIN_SHIFT))
        return 0;
    if (ns >= (UINT64_C(1) << HISTOGRAM_MAX_SHIFT))
        return HISTOGRAM_BUCKETS - 1;
    unsigned msb = 63u - (unsigned)__builtin_clzll(ns);
    unsigned sub = (unsigned)(ns >> (msb - HISTOGRAM_SUB_BITS)) & (HISTOGRAM_SUB - 1);
    return 1 + (msb - HISTOGRAM_MIN_SHIFT) * HISTOGRAM_SUB + sub;
}

/* Owner thread only: no locked instruction. */
static inline void histogram_record(struct histogram *h, uint64_t ns)
{
    atomic_uint_fast64_t *b = &h->bucket[histogram_bucket(ns)];
    atomic_store_explicit(b, atomic_load_explicit(b, memory_order_relaxed) + 1,
                          memory_order_relaxed);
    atomic_store_explicit(&h->sum_ns,
                          atomic_load_explicit(&h->sum_ns, memory_order_relaxed) + (double)ns,
                          memory_order_relaxed);
    if (ns > atomic_load_explicit(&h->max_ns, memory_order_relaxed))
        atomic_store_explicit(&h->max_ns, ns, memory_order_relaxed);
}

/* Bucket i's upper bound (Prometheus' `le`) in ns; UINT64_MAX for the last. */
uint64_t histogram_upper_ns(unsigned i);

/* Plain numbers, summed over any number of owners' histograms. count is the
 * buckets' sum, so it always equals the +Inf bucket, even while owners write. */
struct histogram_snap {
    uint64_t bucket[HISTOGRAM_BUCKETS];
    uint64_t count;
    uint64_t max_ns;
    double sum_ns;
};

/* Any thread: adds h's current values to *s (zero *s first). */
void histogram_snap_add(struct histogram_snap *s, const struct histogram *h);
/* The q-quantile (0 < q <= 1) in ns: the bucket holding the rank q * count,
 * interpolated linearly inside it (as Prometheus' histogram_quantile), never
 * above the exact max. 0 when empty. */
double histogram_quantile_ns(const struct histogram_snap *s, double q);
