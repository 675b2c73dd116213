/* admin/views.c — JSON and Prometheus views of pollers, listeners, pools and
 * backends (admin/views.h). The same counter names appear in the C fields,
 * the JSON keys and the metric names. */
#define _GNU_SOURCE
#include "views.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "config/config_addr.h"
#include "proxy/backend.h"
#include "proxy/health.h"
#include "proxy/listener.h"
#include "proxy/pool.h"
#include "proxy/runtime.h"
#include "reactor/linkbuf.h"
#include "reactor/poller.h"

static json_t *u64(uint64_t v)
{
    return json_integer((json_int_t)v);
}

#define GET(c) counter_get(&(c))

json_t *view_poller(const struct worker *w)
{
    const struct poller_counters *pc = poller_counters(w->poller);
    const struct lb_cache *blocks = poller_blocks(w->poller);
    uint64_t age = poller_age_ns(w->poller);
    double busy = age ? (double)GET(pc->busy_ns) / (double)age : 0.0;
    int id = poller_id(w->poller);
    return json_pack(
        "{s:i, s:s, s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o,"
        " s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:f}",
        "id", id, "role", id == 0 ? "main" : "sub", "active_connections",
        u64(GET(w->c.active_connections)), "total_connections", u64(GET(w->c.total_connections)),
        "accepted", u64(GET(w->c.accepted)), "refused", u64(GET(w->c.refused)), "dialed",
        u64(GET(w->c.dialed)), "connect_failures", u64(GET(w->c.connect_failures)), "retries",
        u64(GET(w->c.retries)), "connect_exhausted", u64(GET(w->c.connect_exhausted)),
        "idle_timeouts", u64(GET(w->c.idle_timeouts)), "resets", u64(GET(w->c.resets)), "bytes_in",
        u64(GET(w->c.bytes_in)), "bytes_out", u64(GET(w->c.bytes_out)), "wakeups",
        u64(GET(pc->wakeups)), "events", u64(GET(pc->events)), "tasks", u64(GET(pc->tasks)),
        "timers_pending", u64(GET(pc->timers_pending)), "local_errors", u64(GET(w->c.local_errors)),
        "memory_starved", u64(GET(w->c.memory_starved)), "blocks_limit",
        u64(lb_cache_limit(blocks)), "blocks_in_use", u64(lb_cache_in_use(blocks)), "blocks_cached",
        u64(lb_cache_cached(blocks)), "splice_pipes_in_use", u64(GET(w->c.pipes_in_use)),
        "splice_pipes_cached", u64(GET(w->c.pipes_cached)), "loop_busy_ratio", busy);
}

json_t *view_pollers(struct runtime *rt)
{
    json_t *a = json_array();
    for (size_t i = 0; i < rt->nworkers; i++)
        json_array_append_new(a, view_poller(&rt->workers[i]));
    return a;
}

json_t *view_listener(const struct listener *l)
{
    return json_pack("{s:s, s:s, s:s, s:b, s:o, s:o, s:o, s:I}", "name", l->name, "listen",
                     l->listen, "pool", l->pool->name, "bound", listener_bound(l),
                     "active_connections", u64(GET(l->active_connections)), "accepted",
                     u64(GET(l->accepted)), "refused", u64(GET(l->refused)), "max_connections",
                     (json_int_t)l->max_connections);
}

json_t *view_listeners(struct runtime *rt)
{
    json_t *a = json_array();
    for (size_t i = 0; i < rt->nlisteners; i++)
        json_array_append_new(a, view_listener(&rt->listeners[i]));
    return a;
}

static json_t *rfc3339(int64_t unix_ms)
{
    if (!unix_ms)
        return json_null();
    time_t secs = (time_t)(unix_ms / 1000);
    struct tm tm;
    gmtime_r(&secs, &tm);
    char buf[40], out[48];
    strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(out, sizeof(out), "%s.%03dZ", buf, (int)(unix_ms % 1000));
    return json_string(out);
}

static json_t *view_health(const struct backend *b)
{
    uint64_t total = GET(b->checks_total);
    return json_pack(
        "{s:s, s:b, s:s, s:f, s:I, s:I, s:I, s:o, s:o}", "status",
        atomic_load(&b->healthy) ? "passing" : "failing", "active_checks", b->hc != NULL,
        "last_check", health_result_name((enum health_result)atomic_load(&b->last_check_result)),
        "last_check_latency_ms", total ? GET(b->last_check_latency_us) / 1000.0 : 0.0,
        "consecutive_failures", (json_int_t)atomic_load(&b->consecutive_failures),
        "consecutive_successes", (json_int_t)atomic_load(&b->consecutive_successes),
        "consecutive_connect_failures", (json_int_t)atomic_load(&b->consecutive_connect_failures),
        "checks_total", u64(total), "checks_failed", u64(GET(b->checks_failed)));
}

/* What the backend dials now (a host name's addresses follow DNS); read
 * under the control lock, which the resolver holds while it swaps them. */
static json_t *view_addresses(const struct backend *b)
{
    const struct cfg_addrs *as = backend_addrs(b);
    json_t *a = json_array();
    for (unsigned i = 0; i < as->n; i++) {
        char buf[64];
        json_array_append_new(a, json_string(config_addr_format(&as->a[i], buf, sizeof(buf))));
    }
    return a;
}

json_t *view_backend(const struct backend *b)
{
    enum backend_state st = backend_state_now(b);
    json_t *o =
        json_pack("{s:s, s:s, s:I, s:s, s:o, s:o, s:o, s:o, s:o, s:o}", "name", b->name, "address",
                  b->address, "weight", (json_int_t)atomic_load(&b->weight), "state",
                  backend_state_name(st), "active_connections", u64(GET(b->active_connections)),
                  "total_connections", u64(GET(b->total_connections)), "connect_failures",
                  u64(GET(b->connect_failures)), "bytes_in", u64(GET(b->bytes_in)), "bytes_out",
                  u64(GET(b->bytes_out)), "drain_forced", u64(GET(b->drain_forced)));
    json_object_set_new(o, "health", view_health(b));
    json_object_set_new(o, "retired", json_boolean(atomic_load(&b->retired)));
    json_object_set_new(o, "addresses", view_addresses(b));
    if (st == BACKEND_DRAINING || st == BACKEND_DRAINED) {
        json_object_set_new(o, "drain_started_at", rfc3339(b->drain_started_unix_ms));
        json_object_set_new(o, "drain_deadline_at", rfc3339(b->drain_deadline_unix_ms));
    }
    return o;
}

json_t *view_pool(struct pool *pl)
{
    struct backend_set *set = pool_current(pl);
    json_t *backends = json_array();
    uint64_t active = 0;
    int up = 0;
    for (size_t i = 0; i < set->n; i++) {
        json_array_append_new(backends, view_backend(set->b[i]));
        active += GET(set->b[i]->active_connections);
        up += backend_state_now(set->b[i]) == BACKEND_UP;
    }
    json_t *o =
        json_pack("{s:s, s:s, s:I, s:I, s:I, s:o, s:i, s:o}", "name", pl->name, "balance",
                  config_pool_balance_name(pl->balance), "connect_timeout_ms",
                  (json_int_t)pl->connect_timeout_ms, "idle_timeout_ms",
                  (json_int_t)pl->idle_timeout_ms, "retries", (json_int_t)pl->retries,
                  "active_connections", u64(active), "backends_up", up, "backends", backends);
    /* DNS discovery (proxy/resolver.c), under the control lock as the resolver writes them. */
    json_object_set_new(o, "dns_failures", u64(pl->dns.failures));
    json_object_set_new(o, "last_dns_error",
                        pl->dns.last_error[0] ? json_string(pl->dns.last_error) : json_null());
    json_object_set_new(o, "last_dns_resolution_at", rfc3339(pl->dns.last_resolved_unix_ms));
    return o;
}

json_t *view_pools(struct runtime *rt)
{
    json_t *a = json_array();
    for (size_t i = 0; i < rt->npools; i++)
        json_array_append_new(a, view_pool(&rt->pools[i]));
    return a;
}

json_t *view_stats(struct runtime *rt, uint64_t uptime_s)
{
    return json_pack("{s:s, s:o, s:o, s:o, s:o}", "version", SLUICE_VERSION, "uptime_s",
                     u64(uptime_s), "pollers", view_pollers(rt), "listeners", view_listeners(rt),
                     "pools", view_pools(rt));
}

/* --- Prometheus text exposition ------------------------------------------ */

static void family(FILE *f, const char *name, const char *type, const char *help)
{
    fprintf(f, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* Names are restricted to [A-Za-z0-9._-] by config and admin, but escape anyway. */
static void label(FILE *f, const char *k, const char *v, int first)
{
    fprintf(f, "%s%s=\"", first ? "" : ",", k);
    for (const char *c = v; *c; c++) {
        if (*c == '\\' || *c == '"')
            fputc('\\', f);
        if (*c == '\n')
            fputs("\\n", f);
        else
            fputc(*c, f);
    }
    fputc('"', f);
}

/* A metric family: its name, type, help and how to read one value. off is an
 * offsetof() for the generic counter readers, unused by the others. */
struct metric {
    const char *name, *type, *help;
    double (*value)(const void *obj, size_t off);
    size_t off;
};

static double counter_at(const void *obj, size_t off)
{
    return (double)atomic_load_explicit((const atomic_uint_fast64_t *)((const char *)obj + off),
                                        memory_order_relaxed);
}

/* Pollers: obj is a struct worker. */
static double worker_counter(const void *obj, size_t off)
{
    return counter_at(&((const struct worker *)obj)->c, off);
}
static double loop_counter(const void *obj, size_t off)
{
    return counter_at(poller_counters(((const struct worker *)obj)->poller), off);
}
static double blocks_in_use(const void *obj, size_t off)
{
    return (double)lb_cache_in_use(poller_blocks(((const struct worker *)obj)->poller));
}
static double blocks_cached(const void *obj, size_t off)
{
    return (double)lb_cache_cached(poller_blocks(((const struct worker *)obj)->poller));
}
static double busy_seconds(const void *obj, size_t off)
{
    return loop_counter(obj, off) / 1e9;
}

#define WC(f) worker_counter, offsetof(struct worker_counters, f)
#define PC(f) loop_counter, offsetof(struct poller_counters, f)
static const struct metric poller_metrics[] = {
    {"sluice_poller_active_connections", "gauge", "Sessions open on the poller.",
     WC(active_connections)},
    {"sluice_poller_connections_total", "counter", "Sessions adopted by the poller.",
     WC(total_connections)},
    {"sluice_poller_accepted_total", "counter", "Connections accepted.", WC(accepted)},
    {"sluice_poller_refused_total", "counter", "Connections closed at once for a limit.",
     WC(refused)},
    {"sluice_poller_dialed_total", "counter", "Upstream connects started.", WC(dialed)},
    {"sluice_poller_connect_failures_total", "counter", "Upstream connects failed or timed out.",
     WC(connect_failures)},
    {"sluice_poller_retries_total", "counter", "Connects retried on another backend.", WC(retries)},
    {"sluice_poller_connect_exhausted_total", "counter", "Sessions closed after the retry budget.",
     WC(connect_exhausted)},
    {"sluice_poller_idle_timeouts_total", "counter", "Sessions closed for idleness.",
     WC(idle_timeouts)},
    {"sluice_poller_resets_total", "counter", "Sessions ended by a reset.", WC(resets)},
    {"sluice_poller_bytes_in_total", "counter", "Bytes relayed client to backend.", WC(bytes_in)},
    {"sluice_poller_bytes_out_total", "counter", "Bytes relayed backend to client.", WC(bytes_out)},
    {"sluice_poller_memory_starved_total", "counter",
     "Reads put off because buffer_memory_limit was reached.", WC(memory_starved)},
    {"sluice_poller_local_errors_total", "counter",
     "Upstream dials and health checks that failed on this host (fd or memory exhaustion).",
     WC(local_errors)},
    {"sluice_poller_splice_pipes_in_use", "gauge", "Splice pipes holding bytes in flight.",
     WC(pipes_in_use)},
    {"sluice_poller_splice_pipes_cached", "gauge", "Empty splice pipes kept for reuse.",
     WC(pipes_cached)},
    {"sluice_poller_wakeups_total", "counter", "Returns from epoll_wait.", PC(wakeups)},
    {"sluice_poller_events_total", "counter", "fd callbacks dispatched.", PC(events)},
    {"sluice_poller_tasks_total", "counter", "Inbox and deferred tasks run.", PC(tasks)},
    {"sluice_poller_timers_pending", "gauge", "Timers armed.", PC(timers_pending)},
    {"sluice_poller_blocks_in_use", "gauge", "Linkbuf blocks holding data.", blocks_in_use, 0},
    {"sluice_poller_blocks_cached", "gauge", "Linkbuf blocks kept for reuse.", blocks_cached, 0},
    {"sluice_poller_busy_seconds_total", "counter", "Time spent outside epoll_wait.", busy_seconds,
     offsetof(struct poller_counters, busy_ns)},
};

/* Listeners: obj is a struct listener. */
#define LC(f) counter_at, offsetof(struct listener, f)
static const struct metric listener_metrics[] = {
    {"sluice_listener_active_connections", "gauge", "Sessions open from the listener.",
     LC(active_connections)},
    {"sluice_listener_accepted_total", "counter", "Connections accepted.", LC(accepted)},
    {"sluice_listener_refused_total", "counter", "Connections refused for a limit.", LC(refused)},
};

/* Backends: obj is a struct backend. */
static double backend_weight(const void *obj, size_t off)
{
    return atomic_load(&((const struct backend *)obj)->weight);
}
static double backend_healthy(const void *obj, size_t off)
{
    return atomic_load(&((const struct backend *)obj)->healthy);
}
static double check_latency_seconds(const void *obj, size_t off)
{
    return counter_at(obj, off) / 1e6;
}

#define BC(f) counter_at, offsetof(struct backend, f)
static const struct metric backend_metrics[] = {
    {"sluice_backend_active_connections", "gauge", "Sessions on the backend.",
     BC(active_connections)},
    {"sluice_backend_connections_total", "counter", "Connections made to the backend.",
     BC(total_connections)},
    {"sluice_backend_connect_failures_total", "counter", "Connects failed or timed out.",
     BC(connect_failures)},
    {"sluice_backend_bytes_in_total", "counter", "Bytes sent to the backend.", BC(bytes_in)},
    {"sluice_backend_bytes_out_total", "counter", "Bytes received from the backend.",
     BC(bytes_out)},
    {"sluice_backend_drain_forced_total", "counter",
     "Sessions closed by a drain deadline or disable with close.", BC(drain_forced)},
    {"sluice_backend_checks_total", "counter", "Active health checks finished.", BC(checks_total)},
    {"sluice_backend_checks_failed_total", "counter", "Active health checks that failed.",
     BC(checks_failed)},
    {"sluice_backend_weight", "gauge", "Current weight.", backend_weight, 0},
    {"sluice_backend_healthy", "gauge", "1 while the backend's health checks pass.",
     backend_healthy, 0},
    {"sluice_backend_check_latency_seconds", "gauge", "Duration of the last finished health check.",
     check_latency_seconds, offsetof(struct backend, last_check_latency_us)},
};

#define NMETRICS(a) (sizeof(a) / sizeof((a)[0]))

static void sample(FILE *f, const struct metric *m, const void *obj)
{
    double v = m->value(obj, m->off);
    if (v == (double)(uint64_t)v)
        fprintf(f, " %llu\n", (unsigned long long)v);
    else
        fprintf(f, " %.6f\n", v);
}

static void emit_pollers(FILE *f, struct runtime *rt)
{
    for (size_t m = 0; m < NMETRICS(poller_metrics); m++) {
        family(f, poller_metrics[m].name, poller_metrics[m].type, poller_metrics[m].help);
        for (size_t i = 0; i < rt->nworkers; i++) {
            const struct worker *w = &rt->workers[i];
            char id[16];
            snprintf(id, sizeof(id), "%d", poller_id(w->poller));
            fprintf(f, "%s{", poller_metrics[m].name);
            label(f, "poller", id, 1);
            label(f, "role", poller_id(w->poller) == 0 ? "main" : "sub", 0);
            fputc('}', f);
            sample(f, &poller_metrics[m], w);
        }
    }
}

static void emit_listeners(FILE *f, struct runtime *rt)
{
    for (size_t m = 0; m < NMETRICS(listener_metrics); m++) {
        family(f, listener_metrics[m].name, listener_metrics[m].type, listener_metrics[m].help);
        for (size_t i = 0; i < rt->nlisteners; i++) {
            fprintf(f, "%s{", listener_metrics[m].name);
            label(f, "listener", rt->listeners[i].name, 1);
            fputc('}', f);
            sample(f, &listener_metrics[m], &rt->listeners[i]);
        }
    }
}

/* name{pool="..",backend=".."[,state=".."]} for every backend of every pool */
static void backend_series(FILE *f, const char *name, const struct pool *pl,
                           const struct backend *b, const char *state)
{
    fprintf(f, "%s{", name);
    label(f, "pool", pl->name, 1);
    label(f, "backend", b->name, 0);
    if (state)
        label(f, "state", state, 0);
    fputc('}', f);
}

static void emit_backends(FILE *f, struct runtime *rt)
{
    for (size_t m = 0; m < NMETRICS(backend_metrics); m++) {
        family(f, backend_metrics[m].name, backend_metrics[m].type, backend_metrics[m].help);
        for (size_t i = 0; i < rt->npools; i++) {
            struct backend_set *set = pool_current(&rt->pools[i]);
            for (size_t j = 0; j < set->n; j++) {
                backend_series(f, backend_metrics[m].name, &rt->pools[i], set->b[j], NULL);
                sample(f, &backend_metrics[m], set->b[j]);
            }
        }
    }
    /* One series per state, 1 for the current one (an enum as labels). */
    family(f, "sluice_backend_state", "gauge", "1 for the backend's current state.");
    for (size_t i = 0; i < rt->npools; i++) {
        struct backend_set *set = pool_current(&rt->pools[i]);
        for (size_t j = 0; j < set->n; j++) {
            enum backend_state now = backend_state_now(set->b[j]);
            for (int st = BACKEND_UP; st <= BACKEND_DISABLED; st++) {
                backend_series(f, "sluice_backend_state", &rt->pools[i], set->b[j],
                               backend_state_name((enum backend_state)st));
                fprintf(f, " %d\n", now == (enum backend_state)st);
            }
        }
    }
}

/* DNS discovery per pool: failures, and when the last resolution succeeded. */
static void emit_pools_dns(FILE *f, struct runtime *rt)
{
    family(
        f, "sluice_pool_dns_failures_total", "counter",
        "DNS resolutions of the pool's names that failed or timed out (the last good set kept).");
    for (size_t i = 0; i < rt->npools; i++) {
        fprintf(f, "sluice_pool_dns_failures_total{");
        label(f, "pool", rt->pools[i].name, 1);
        fprintf(f, "} %llu\n", (unsigned long long)rt->pools[i].dns.failures);
    }
    family(f, "sluice_pool_last_dns_resolution_timestamp_seconds", "gauge",
           "Unix time of the pool's last successful DNS resolution; 0: none.");
    for (size_t i = 0; i < rt->npools; i++) {
        fprintf(f, "sluice_pool_last_dns_resolution_timestamp_seconds{");
        label(f, "pool", rt->pools[i].name, 1);
        fprintf(f, "} %.3f\n", (double)rt->pools[i].dns.last_resolved_unix_ms / 1000.0);
    }
}

char *view_metrics(struct runtime *rt, uint64_t uptime_s)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    if (!f)
        return NULL;
    family(f, "sluice_uptime_seconds", "gauge", "Seconds since start.");
    fprintf(f, "sluice_uptime_seconds %llu\n", (unsigned long long)uptime_s);
    emit_pollers(f, rt);
    emit_listeners(f, rt);
    emit_backends(f, rt);
    emit_pools_dns(f, rt);
    fclose(f);
    return buf;
}
