/* reactor/histogram.c — the readers' side of reactor/histogram.h: bucket
 * bounds, snapshots summed over owners, quantile estimates. Recording is
 * inline in the header, for the owners' hot paths. */
#include "histogram.h"

uint64_t histogram_upper_ns(unsigned i)
{
    if (i == 0)
        return UINT64_C(1) << HISTOGRAM_MIN_SHIFT;
    if (i >= HISTOGRAM_BUCKETS - 1)
        return UINT64_MAX;
    unsigned octave = (i - 1) / HISTOGRAM_SUB, sub = (i - 1) % HISTOGRAM_SUB;
    /* 2^(min + octave) * (1 + (sub + 1) / SUB) */
    return (UINT64_C(1) << (HISTOGRAM_MIN_SHIFT + octave - HISTOGRAM_SUB_BITS)) *
           (HISTOGRAM_SUB + sub + 1);
}

void histogram_snap_add(struct histogram_snap *s, const struct histogram *h)
{
    for (unsigned i = 0; i < HISTOGRAM_BUCKETS; i++) {
        uint64_t n = atomic_load_explicit(&h->bucket[i], memory_order_relaxed);
        s->bucket[i] += n;
        s->count += n;
    }
    s->sum_ns += atomic_load_explicit(&h->sum_ns, memory_order_relaxed);
    uint64_t max = atomic_load_explicit(&h->max_ns, memory_order_relaxed);
    if (max > s->max_ns)
        s->max_ns = max;
}

double histogram_quantile_ns(const struct histogram_snap *s, double q)
{
    if (!s->count)
        return 0.0;
    double rank = q * (double)s->count;
    uint64_t below = 0;
    double est = (double)s->max_ns;
    for (unsigned i = 0; i < HISTOGRAM_BUCKETS - 1; i++) {
        uint64_t n = s->bucket[i];
        if (n && (double)(below + n) >= rank) {
            double lo = i ? (double)histogram_upper_ns(i - 1) : 0.0;
            double hi = (double)histogram_upper_ns(i);
            double into = rank > (double)below ? rank - (double)below : 0.0;
            est = lo + (hi - lo) * into / (double)n;
            break;
        }
        below += n;
    }
    /* The +Inf bucket has no upper bound: the max is the best estimate there,
     * and no estimate may exceed what was seen. */
    return est < (double)s->max_ns ? est : (double)s->max_ns;
}
