/* admin/views.c — JSON and Prometheus views of pollers, listeners, pools and
 * backends (admin/views.h). The same counter names appear in the C fields,
 * the JSON keys and the metric names. */
#define _GNU_SOURCE
#include "views.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "config/config_addr.h"
#include "proxy/backend.h"
#include "proxy/backend_latency.h"
#include "proxy/health.h"
#include "proxy/listener.h"
#include "proxy/pool.h"
#include "proxy/runtime.h"
#include "reactor/linkbuf.h"
#include "reactor/poller.h"
#include "views_latency.h"

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
    json_t *o = json_pack(
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
    json_object_set_new(o, "io", json_string(poll_kind_name(poller_io(w->poller))));
    json_object_set_new(o, "max_age_closes", u64(GET(w->c.max_age_closes)));
    json_object_set_new(o, "shutdown_forced", u64(GET(w->c.shutdown_forced)));
    /* The two terms of loop_busy_ratio (a ratio since start), so that a reader
     * can take it over its own interval, as the dashboard does each second. */
    json_object_set_new(o, "busy_ns", u64(GET(pc->busy_ns)));
    json_object_set_new(o, "age_ns", u64(age));
    json_object_set_new(o, "latency", view_poller_latency(w));
    /* The connection log's (README "Connection log"). */
    json_object_set_new(o, "log_lines", u64(GET(w->c.log_lines)));
    json_object_set_new(o, "log_dropped", u64(GET(w->c.log_dropped)));
    return o;
}

json_t *view_pollers(struct runtime *rt)
{
    json_t *a = json_array();
    for (size_t i = 0; i < rt->nworkers; i++)
        json_array_append_new(a, view_poller(&rt->workers[i]));
    return a;
}

/* A routed listener's routes (README "SNI and ALPN routing"). */
static json_t *view_routes(const struct listener *l)
{
    json_t *a = json_array();
    for (size_t i = 0; i < l->nroutes; i++) {
        const struct cfg_route *r = &l->routes[i];
        json_t *o = json_pack(
            "{s:o, s:o, s:b, s:s, s:o}", "sni", r->sni ? json_string(r->sni) : json_null(), "alpn",
            r->alpn ? json_string(r->alpn) : json_null(), "default", r->is_default, "pool", r->pool,
            "sessions", u64(GET(l->route_to[i].sessions)));
        json_array_append_new(a, o);
    }
    return a;
}

/* The listener's per-source limits as configured, and the table's state;
 * null when it has none. */
static json_t *view_per_source(const struct listener *l)
{
    const struct source_limit *t = l->sources;
    if (!t)
        return json_null();
    const struct source_limit_opts *o = &t->opts;
    return json_pack("{s:I, s:I, s:I, s:b, s:I, s:I, s:I, s:o, s:o, s:o, s:o}", "max_connections",
                     (json_int_t)o->max_connections, "rate_per_s", (json_int_t)o->rate_per_s,
                     "burst", (json_int_t)o->burst, "reset", l->source_reset, "source_prefix_v4",
                     (json_int_t)o->prefix_v4, "source_prefix_v6", (json_int_t)o->prefix_v6,
                     "max_sources", (json_int_t)o->capacity, "sources_tracked",
                     u64(source_limit_tracked(t)), "sources_evicted", u64(GET(t->evicted)),
                     "sources_untracked", u64(GET(t->untracked)), "table_bytes",
                     u64(source_limit_bytes(t)));
}

json_t *view_listener(const struct listener *l)
{
    json_t *o = json_pack(
        "{s:s, s:s, s:o, s:b, s:o, s:o, s:o, s:I}", "name", l->name, "listen", l->listen, "pool",
        l->nroutes ? json_null() : json_string(l->pool->name), "bound", listener_bound(l),
        "active_connections", u64(GET(l->active_connections)), "accepted", u64(GET(l->accepted)),
        "refused", u64(GET(l->refused)), "max_connections", (json_int_t)l->max_connections);
    /* The inspect phase (README "PROXY protocol"). */
    json_object_set_new(o, "accept_proxy_protocol",
                        json_boolean(l->inspect & (1u << LISTENER_INSPECT_PROXY_PROTOCOL)));
    json_object_set_new(o, "proxy_protocol_errors",
                        u64(GET(l->inspect_errors[LISTENER_INSPECT_PROXY_PROTOCOL])));
    json_object_set_new(o, "inspect_timeouts", u64(GET(l->inspect_timeouts)));
    json_object_set_new(o, "routes", view_routes(l));
    json_object_set_new(o, "no_route", u64(GET(l->no_route)));
    json_object_set_new(o, "bad_hello", u64(GET(l->bad_hello)));
    json_object_set_new(o, "refused_source_limit", u64(GET(l->refused_source_limit)));
    json_object_set_new(o, "per_source", view_per_source(l));
    return o;
}

json_t *view_listener_sources(const struct listener *l, size_t top)
{
    const struct source_limit *t = l->sources;
    struct source_stat *st = calloc(top ? top : 1, sizeof(*st));
    if (!st)
        return NULL;
    size_t n = source_limit_top(t, st, top);
    json_t *a = json_array();
    for (size_t i = 0; i < n; i++) {
        char src[INET6_ADDRSTRLEN + 8];
        source_stat_format(&st[i], src, sizeof(src));
        json_array_append_new(a, json_pack("{s:s, s:I, s:I}", "source", src, "open",
                                           (json_int_t)st[i].open, "refused",
                                           (json_int_t)st[i].refused));
    }
    free(st);
    return json_pack("{s:s, s:o, s:o, s:I, s:o, s:o}", "listener", l->name, "sources_tracked",
                     u64(source_limit_tracked(t)), "refused_source_limit",
                     u64(GET(l->refused_source_limit)), "max_sources", (json_int_t)t->opts.capacity,
                     "table_bytes", u64(source_limit_bytes(t)), "sources", a);
}

json_t *view_listeners(struct runtime *rt)
{
    json_t *a = json_array();
    for (size_t i = 0; i < rt->nlisteners; i++)
        json_array_append_new(a, view_listener(rt->listeners[i]));
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
    json_object_set_new(o, "latency", view_backend_latency(b));
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
        json_array_append_new(a, view_pool(rt->pools[i]));
    return a;
}

json_t *view_stats(struct runtime *rt, uint64_t uptime_s)
{
    const struct runtime_reloads *r = &rt->reload;
    return json_pack("{s:s, s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o}", "version",
                     SLUICE_VERSION, "uptime_s", u64(uptime_s), "config_generation",
                     u64(r->generation), "reloads", u64(r->reloads), "reload_failures",
                     u64(r->failures), "last_reload_error",
                     r->last_error ? json_string(r->last_error) : json_null(), "last_reload_at",
                     rfc3339(r->last_at_unix_ms), "pollers", view_pollers(rt), "listeners",
                     view_listeners(rt), "pools", view_pools(rt));
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
    {"sluice_poller_max_age_closes_total", "counter", "Sessions closed at max_session_age_ms.",
     WC(max_age_closes)},
    {"sluice_poller_shutdown_forced_total", "counter",
     "Sessions closed when the shutdown grace ended.", WC(shutdown_forced)},
    {"sluice_poller_resets_total", "counter", "Sessions ended by a reset.", WC(resets)},
    {"sluice_poller_bytes_in_total", "counter", "Bytes relayed client to backend.", WC(bytes_in)},
    {"sluice_poller_bytes_out_total", "counter", "Bytes relayed backend to client.", WC(bytes_out)},
    {"sluice_poller_memory_starved_total", "counter",
     "Reads put off because buffer_memory_limit was reached.", WC(memory_starved)},
    {"sluice_poller_local_errors_total", "counter",
     "Upstream dials and health checks that failed on this host (fd or memory exhaustion).",
     WC(local_errors)},
    {"sluice_poller_log_lines_total", "counter", "Connection log lines handed to the logger.",
     WC(log_lines)},
    {"sluice_poller_log_dropped_total", "counter",
     "Connection log lines dropped because the poller's ring was full.", WC(log_dropped)},
    {"sluice_poller_splice_pipes_in_use", "gauge", "Splice pipes holding bytes in flight.",
     WC(pipes_in_use)},
    {"sluice_poller_splice_pipes_cached", "gauge", "Empty splice pipes kept for reuse.",
     WC(pipes_cached)},
    {"sluice_poller_wakeups_total", "counter",
     "Returns from the poll backend's wait (epoll_wait or io_uring_enter).", PC(wakeups)},
    {"sluice_poller_events_total", "counter", "fd callbacks dispatched.", PC(events)},
    {"sluice_poller_tasks_total", "counter", "Inbox and deferred tasks run.", PC(tasks)},
    {"sluice_poller_timers_pending", "gauge", "Timers armed.", PC(timers_pending)},
    {"sluice_poller_blocks_in_use", "gauge", "Linkbuf blocks holding data.", blocks_in_use, 0},
    {"sluice_poller_blocks_cached", "gauge", "Linkbuf blocks kept for reuse.", blocks_cached, 0},
    {"sluice_poller_busy_seconds_total", "counter", "Time spent outside the poll backend's wait.",
     busy_seconds, offsetof(struct poller_counters, busy_ns)},
};

/* Listeners: obj is a struct listener. */
static double sources_tracked(const void *obj, size_t off)
{
    const struct listener *l = obj;
    return l->sources ? (double)source_limit_tracked(l->sources) : 0;
}
static double source_counter(const void *obj, size_t off)
{
    const struct listener *l = obj;
    return l->sources ? counter_at(l->sources, off) : 0;
}
#define LC(f) counter_at, offsetof(struct listener, f)
static const struct metric listener_metrics[] = {
    {"sluice_listener_active_connections", "gauge", "Sessions open from the listener.",
     LC(active_connections)},
    {"sluice_listener_accepted_total", "counter", "Connections accepted.", LC(accepted)},
    {"sluice_listener_refused_total", "counter", "Connections refused for a limit.", LC(refused)},
    {"sluice_listener_proxy_protocol_errors_total", "counter",
     "Connections closed for a bad, missing or late PROXY header.",
     LC(inspect_errors[LISTENER_INSPECT_PROXY_PROTOCOL])},
    {"sluice_listener_inspect_timeouts_total", "counter",
     "Connections closed because what the listener reads first came too late.",
     LC(inspect_timeouts)},
    {"sluice_listener_no_route_total", "counter",
     "TLS connections closed: their ClientHello matched no route and there is no default.",
     LC(no_route)},
    {"sluice_listener_bad_hello_total", "counter",
     "Connections to a routed listener closed: no whole, well-formed TLS ClientHello.",
     LC(bad_hello)},
    {"sluice_listener_refused_source_limit_total", "counter",
     "Connections refused for a per-source limit.", LC(refused_source_limit)},
    {"sluice_listener_sources_tracked", "gauge", "Client sources in the per-source table.",
     sources_tracked, 0},
    {"sluice_listener_sources_evicted_total", "counter",
     "Idle sources forgotten to make room for new ones.", source_counter,
     offsetof(struct source_limit, evicted)},
    {"sluice_listener_sources_untracked_total", "counter",
     "Connections let through untracked: no room in the per-source table.", source_counter,
     offsetof(struct source_limit, untracked)},
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
            label(f, "listener", rt->listeners[i]->name, 1);
            fputc('}', f);
            sample(f, &listener_metrics[m], rt->listeners[i]);
        }
    }
    family(f, "sluice_listener_route_sessions_total", "counter",
           "Connections a listener's route sent to its pool (by TLS server name and ALPN).");
    for (size_t i = 0; i < rt->nlisteners; i++) {
        const struct listener *l = rt->listeners[i];
        for (size_t j = 0; j < l->nroutes; j++) {
            char idx[24];
            snprintf(idx, sizeof(idx), "%zu", j);
            fputs("sluice_listener_route_sessions_total{", f);
            label(f, "listener", l->name, 1);
            label(f, "route", idx, 0);
            label(f, "sni", l->routes[j].sni ? l->routes[j].sni : "", 0);
            label(f, "alpn", l->routes[j].alpn ? l->routes[j].alpn : "", 0);
            label(f, "pool", l->routes[j].pool, 0);
            fprintf(f, "} %llu\n", (unsigned long long)GET(l->route_to[j].sessions));
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
            struct backend_set *set = pool_current(rt->pools[i]);
            for (size_t j = 0; j < set->n; j++) {
                backend_series(f, backend_metrics[m].name, rt->pools[i], set->b[j], NULL);
                sample(f, &backend_metrics[m], set->b[j]);
            }
        }
    }
    /* One series per state, 1 for the current one (an enum as labels). */
    family(f, "sluice_backend_state", "gauge", "1 for the backend's current state.");
    for (size_t i = 0; i < rt->npools; i++) {
        struct backend_set *set = pool_current(rt->pools[i]);
        for (size_t j = 0; j < set->n; j++) {
            enum backend_state now = backend_state_now(set->b[j]);
            for (int st = BACKEND_UP; st <= BACKEND_DISABLED; st++) {
                backend_series(f, "sluice_backend_state", rt->pools[i], set->b[j],
                               backend_state_name((enum backend_state)st));
                fprintf(f, " %d\n", now == (enum backend_state)st);
            }
        }
    }
}

/* Latency histograms (admin/views_latency.h): the families, their series'
 * labels (the same as the counters'), one snapshot per series. */
static const struct {
    const char *name, *help;
} backend_histograms[BACKEND_LATENCY_KINDS] = {
    [BACKEND_LATENCY_CONNECT] = {"sluice_backend_connect_seconds",
                                 "Time from the start of a dial to the connect."},
    [BACKEND_LATENCY_FIRST_BYTE] = {"sluice_backend_first_byte_seconds",
                                    "Time from the connect to the backend's first byte."},
    [BACKEND_LATENCY_DURATION] = {"sluice_backend_session_seconds",
                                  "Duration of sessions that connected, accept to close."},
};

static char *poller_labels(const struct worker *w)
{
    char *text = NULL, id[16];
    size_t len = 0;
    FILE *m = open_memstream(&text, &len);
    if (!m)
        return NULL;
    snprintf(id, sizeof(id), "%d", poller_id(w->poller));
    label(m, "poller", id, 1);
    label(m, "role", poller_id(w->poller) == 0 ? "main" : "sub", 0);
    fclose(m);
    return text;
}

static char *backend_labels(const struct pool *pl, const struct backend *b)
{
    char *text = NULL;
    size_t len = 0;
    FILE *m = open_memstream(&text, &len);
    if (!m)
        return NULL;
    label(m, "pool", pl->name, 1);
    label(m, "backend", b->name, 0);
    fclose(m);
    return text;
}

static const struct histogram *loop_histogram(const struct worker *w)
{
    return poller_loop_histogram(w->poller);
}
static const struct histogram *adopt_histogram(const struct worker *w)
{
    return &w->adopt_wait;
}

static void emit_poller_histogram(FILE *f, struct runtime *rt, const char *name, const char *help,
                                  const struct histogram *(*of)(const struct worker *))
{
    family(f, name, "histogram", help);
    for (size_t i = 0; i < rt->nworkers; i++) {
        char *labels = poller_labels(&rt->workers[i]);
        struct histogram_snap s = {0};
        histogram_snap_add(&s, of(&rt->workers[i]));
        if (labels)
            view_histogram_text(f, name, labels, &s);
        free(labels);
    }
}

static void emit_latency(FILE *f, struct runtime *rt)
{
    for (int k = 0; k < BACKEND_LATENCY_KINDS; k++) {
        family(f, backend_histograms[k].name, "histogram", backend_histograms[k].help);
        for (size_t i = 0; i < rt->npools; i++) {
            struct backend_set *set = pool_current(rt->pools[i]);
            for (size_t j = 0; j < set->n; j++) {
                char *labels = backend_labels(rt->pools[i], set->b[j]);
                struct backend_latency_snap s;
                backend_latency_read(set->b[j], &s);
                if (labels)
                    view_histogram_text(f, backend_histograms[k].name, labels, &s.h[k]);
                free(labels);
            }
        }
    }
    emit_poller_histogram(
        f, rt, "sluice_poller_loop_seconds",
        "Busy part of each event-loop iteration (outside the poll backend's wait).",
        loop_histogram);
    emit_poller_histogram(f, rt, "sluice_poller_adopt_wait_seconds",
                          "Time from accept to the session's adoption by its poller.",
                          adopt_histogram);
}

/* DNS discovery per pool: failures, and when the last resolution succeeded. */
static void emit_pools_dns(FILE *f, struct runtime *rt)
{
    family(
        f, "sluice_pool_dns_failures_total", "counter",
        "DNS resolutions of the pool's names that failed or timed out (the last good set kept).");
    for (size_t i = 0; i < rt->npools; i++) {
        fprintf(f, "sluice_pool_dns_failures_total{");
        label(f, "pool", rt->pools[i]->name, 1);
        fprintf(f, "} %llu\n", (unsigned long long)rt->pools[i]->dns.failures);
    }
    family(f, "sluice_pool_last_dns_resolution_timestamp_seconds", "gauge",
           "Unix time of the pool's last successful DNS resolution; 0: none.");
    for (size_t i = 0; i < rt->npools; i++) {
        fprintf(f, "sluice_pool_last_dns_resolution_timestamp_seconds{");
        label(f, "pool", rt->pools[i]->name, 1);
        fprintf(f, "} %.3f\n", (double)rt->pools[i]->dns.last_resolved_unix_ms / 1000.0);
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
    const struct runtime_reloads *r = &rt->reload;
    family(f, "sluice_config_generation", "gauge", "Config generation: 1 at start, +1 per reload.");
    fprintf(f, "sluice_config_generation %llu\n", (unsigned long long)r->generation);
    family(f, "sluice_reloads_total", "counter", "Reloads applied.");
    fprintf(f, "sluice_reloads_total %llu\n", (unsigned long long)r->reloads);
    family(f, "sluice_reload_failures_total", "counter", "Reloads rejected (nothing changed).");
    fprintf(f, "sluice_reload_failures_total %llu\n", (unsigned long long)r->failures);
    family(f, "sluice_last_reload_timestamp_seconds", "gauge",
           "Unix time of the last reload attempt; 0 if none.");
    fprintf(f, "sluice_last_reload_timestamp_seconds %.3f\n", (double)r->last_at_unix_ms / 1000.0);
    family(f, "sluice_last_reload_success", "gauge",
           "1 unless the last reload attempt was rejected (last_reload_error in the stats).");
    fprintf(f, "sluice_last_reload_success %d\n", r->last_error ? 0 : 1);
    emit_pollers(f, rt);
    emit_listeners(f, rt);
    emit_backends(f, rt);
    emit_latency(f, rt);
    emit_pools_dns(f, rt);
    fclose(f);
    return buf;
}
