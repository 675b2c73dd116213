/* admin/views_latency.h — the latency histograms' views: the JSON summaries
 * (count, p50, p90, p99, max in milliseconds) of a backend's and a poller's
 * histograms, and one histogram's Prometheus lines (_bucket, _sum, _count in
 * seconds). Read-only, relaxed loads while the data path writes. */
#pragma once

#include <jansson.h>
#include <stdio.h>

#include "reactor/histogram.h"

struct backend;
struct worker;

/* {"connect_ms": {...}, "first_byte_ms": {...}, "duration_ms": {...}} */
json_t *view_backend_latency(const struct backend *b);
/* {"loop_ms": {...}, "adopt_wait_ms": {...}} */
json_t *view_poller_latency(const struct worker *w);

/* name_bucket{labels,le="..."} for every other bucket bound (2 per power of
 * two: cumulative counts are exact at any bound, and the scrape stays ~54
 * lines a histogram), +Inf last, then name_sum and name_count. labels: the
 * series' labels as text, already escaped, without braces. */
void view_histogram_text(FILE *f, const char *name, const char *labels,
                         const struct histogram_snap *s);
