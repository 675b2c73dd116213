/* admin/views_latency.c — JSON summaries and Prometheus lines of the latency
 * histograms (admin/views_latency.h). The families and their labels are
 * views.c's; this file turns one snapshot into numbers. */
#define _GNU_SOURCE
#include "views_latency.h"

#include <inttypes.h>

#include "proxy/backend_latency.h"
#include "proxy/worker.h"

#define NS_PER_MS 1e6
#define NS_PER_S  UINT64_C(1000000000)
/* Prometheus gets every PROM_BUCKET_STEP-th bound: 2 per power of two. */
#define PROM_BUCKET_STEP 2

static json_t *summary(const struct histogram_snap *s)
{
    return json_pack("{s:I, s:f, s:f, s:f, s:f}", "count", (json_int_t)s->count, "p50",
                     histogram_quantile_ns(s, 0.50) / NS_PER_MS, "p90",
                     histogram_quantile_ns(s, 0.90) / NS_PER_MS, "p99",
                     histogram_quantile_ns(s, 0.99) / NS_PER_MS, "max",
                     (double)s->max_ns / NS_PER_MS);
}

json_t *view_backend_latency(const struct backend *b)
{
    struct backend_latency_snap s;
    backend_latency_read(b, &s);
    return json_pack("{s:o, s:o, s:o}", "connect_ms", summary(&s.h[BACKEND_LATENCY_CONNECT]),
                     "first_byte_ms", summary(&s.h[BACKEND_LATENCY_FIRST_BYTE]), "duration_ms",
                     summary(&s.h[BACKEND_LATENCY_DURATION]));
}

json_t *view_poller_latency(const struct worker *w)
{
    struct histogram_snap loop = {0}, adopt = {0};
    histogram_snap_add(&loop, poller_loop_histogram(w->poller));
    histogram_snap_add(&adopt, &w->adopt_wait);
    return json_pack("{s:o, s:o}", "loop_ms", summary(&loop), "adopt_wait_ms", summary(&adopt));
}

/* A bound in ns as exact decimal seconds: 1536 -> "0.000001536". */
static void seconds(char *buf, size_t cap, uint64_t ns)
{
    int n = snprintf(buf, cap, "%" PRIu64 ".%09" PRIu64, ns / NS_PER_S, ns % NS_PER_S);
    while (n > 2 && buf[n - 1] == '0' && buf[n - 2] != '.')
        buf[--n] = '\0';
}

void view_histogram_text(FILE *f, const char *name, const char *labels,
                         const struct histogram_snap *s)
{
    const char *sep = *labels ? "," : "";
    uint64_t below = 0;
    for (unsigned i = 0; i + 1 < HISTOGRAM_BUCKETS; i++) {
        below += s->bucket[i];
        if (i % PROM_BUCKET_STEP)
            continue;
        char le[32];
        seconds(le, sizeof(le), histogram_upper_ns(i));
        fprintf(f, "%s_bucket{%s%sle=\"%s\"} %" PRIu64 "\n", name, labels, sep, le, below);
    }
    fprintf(f, "%s_bucket{%s%sle=\"+Inf\"} %" PRIu64 "\n", name, labels, sep, s->count);
    fprintf(f, "%s_sum{%s} %.15g\n", name, labels, s->sum_ns / 1e9);
    fprintf(f, "%s_count{%s} %" PRIu64 "\n", name, labels, s->count);
}
