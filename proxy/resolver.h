/* proxy/resolver.h — DNS discovery: a thread of its own that re-resolves the
 * backends written as host names or SRV names, with c-ares, at each record's
 * TTL (clamped by resolver.resolve_min_ms/_max_ms), and applies what changed
 * through backend_edit under the runtime's control lock. A poller never waits
 * for DNS; a failed or empty answer keeps the last good set. The rules it
 * applies are proxy/resolve.h's. */
#pragma once

#include <pthread.h>
#include <stddef.h>

#include "config/config.h"

struct pollmgr;
struct pool;
struct resolver;

/* Called by the runtime once its pools are built. *out is NULL (and 0
 * returned) when no backend follows a name. Otherwise resolves, now, on the
 * calling thread (bounded by resolver.timeout_ms per query), every name that
 * has no address yet: a default-mode backend gets its addresses at once, and
 * a name that gives it none fails (-EHOSTUNREACH, logged with the JSON path);
 * "all"/"srv" backends are added once the thread runs. `live`: the pollers
 * run already (a reload), so a replaced address list is freed only after a
 * quiesce, and nothing is resolved on the calling thread (which may hold
 * the control lock): the thread begins at once; 0 before they start. cfg
 * (its pools[].backends[] are borrowed), pools, pm and control must outlive
 * the resolver: a reload stops it first and makes a new one last. */
int resolver_create(const struct config *cfg, struct pool *const *pools, size_t npools,
                    struct pollmgr *pm, pthread_mutex_t *control, int live, struct resolver **out);
/* Starts the thread, once the pollers run (its changes quiesce them). */
int resolver_start(struct resolver *r);
/* Stops and joins the thread (while the pollers still run), frees all. NULL: no-op. */
void resolver_destroy(struct resolver *r);
