/* admin/views.h — read-only views of the running proxy for the admin API:
 * JSON objects (jansson) and the Prometheus text exposition. Counters are read
 * with relaxed atomics while the data path runs; nothing here writes. */
#pragma once

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

struct backend;
struct listener;
struct pool;
struct runtime;
struct worker;

json_t *view_poller(const struct worker *w);
json_t *view_pollers(struct runtime *rt);
json_t *view_listener(const struct listener *l);
json_t *view_listeners(struct runtime *rt);
/* The top most limited sources of l (which has per-source limits); NULL
 * without memory. */
json_t *view_listener_sources(const struct listener *l, size_t top);
json_t *view_backend(const struct backend *b);
json_t *view_pool(struct pool *pl);
json_t *view_pools(struct runtime *rt);
json_t *view_stats(struct runtime *rt, uint64_t uptime_s);

/* Prometheus text format 0.0.4; malloc'd. */
char *view_metrics(struct runtime *rt, uint64_t uptime_s);
