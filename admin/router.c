/* admin/router.c — the admin API's routes, input checks and state
 * changes (admin/router.h), after request_rules.c has let the request in.
 * Every error is {"error", "detail"} JSON and changes nothing. */
#define _GNU_SOURCE
#include "router.h"

#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "config/config_addr.h"
#include "dashboard.h"
#include "proxy/backend.h"
#include "proxy/backend_edit.h"
#include "proxy/health.h"
#include "proxy/listener.h"
#include "proxy/pool.h"
#include "proxy/runtime.h"
#include "reactor/clock.h"
#include "reactor/wait.h"
#include "reply.h"
#include "views.h"

#define MAX_SEGMENTS    8
#define SEGMENT_MAX     128
#define WAIT_MAX_S      3600
#define WAIT_STEP_MS    20
#define DEADLINE_MAX_MS (24u * 3600 * 1000)
#define NAME_MAX_LEN    64
#define WEIGHT_MAX      1000
#define SOURCES_TOP_DEF 10 /* listeners/NAME/sources without ?top= */
#define SOURCES_TOP_MAX 1000

int admin_ctx_init(struct admin_ctx *a, struct runtime *rt, const char *token)
{
    a->rt = rt;
    a->pm = rt->pm;
    a->lock = runtime_control(rt);
    a->rules.token = token && *token ? token : NULL;
    a->rules.allowed_hosts = NULL;
    a->rules.nallowed_hosts = 0;
    a->started_mono_ms = clock_mono_ms();
    atomic_init(&a->shutting_down, 0);
    pthread_condattr_t attr;
    int err = pthread_condattr_init(&attr);
    if (err)
        return -err;
    /* Waits are measured on clock_mono_ms()'s clock: immune to clock steps. */
    if ((err = pthread_condattr_setclock(&attr, CLOCK_MONOTONIC)) == 0)
        err = pthread_cond_init(&a->wake, &attr);
    pthread_condattr_destroy(&attr);
    return -err;
}

void admin_ctx_fini(struct admin_ctx *a)
{
    pthread_cond_destroy(&a->wake);
}

void admin_ctx_shutdown(struct admin_ctx *a)
{
    atomic_store(&a->shutting_down, 1);
    /* Without the lock on purpose: the caller (the signal thread) must not
     * queue behind a call in progress (a set swap may wait seconds for a
     * stuck poller). A waiter that checked the flag just before it is set
     * misses this broadcast but wakes by itself within WAIT_STEP_MS. */
    pthread_cond_broadcast(&a->wake);
}

/* A drain?wait=: the backend, looked up again by name at every look (it may
 * be deleted meanwhile), until it is no longer draining or shutdown begins. */
struct drain_wait {
    struct admin_ctx *a;
    const char *pool;  /* not owned: the pool's name (a reload may replace or retire it) */
    const char *name;  /* not owned */
    struct backend *b; /* not owned: NULL once removed */
};

static int drain_wait_done(void *arg)
{
    struct drain_wait *w = arg;
    struct pool *pl = runtime_find_pool(w->a->rt, w->pool);
    w->b = pl ? pool_find(pl, w->name) : NULL;
    return !w->b || backend_state_now(w->b) != BACKEND_DRAINING ||
           atomic_load(&w->a->shutting_down);
}

/* Sleeps up to ms with the lock released, woken at once on shutdown. */
static int drain_wait_sleep(void *arg, unsigned ms)
{
    struct admin_ctx *a = ((struct drain_wait *)arg)->a;
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    ts.tv_nsec += (long)(ms % 1000) * 1000000L;
    ts.tv_sec += (time_t)(ms / 1000) + ts.tv_nsec / 1000000000L;
    ts.tv_nsec %= 1000000000L;
    pthread_cond_timedwait(&a->wake, a->lock, &ts);
    return 0;
}

static int valid_name(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > NAME_MAX_LEN)
        return 0;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '-' || c == '_' || c == '.'))
            return 0;
    }
    return 1;
}

static int method_is(const struct admin_request *rq, const char *m)
{
    return strcmp(rq->method, m) == 0;
}

/* --- backend actions ------------------------------------------------------ */

static void drain(struct admin_ctx *a, const struct admin_request *rq, struct admin_response *rs,
                  struct pool *pl, struct backend *b)
{
    static const char *const keys[] = {"deadline_ms", NULL};
    long long deadline = 0, wait_s = -1;
    if (rq->wait) {
        char *end;
        errno = 0;
        wait_s = strtoll(rq->wait, &end, 10);
        if (errno || end == rq->wait || *end || wait_s < 0 || wait_s > WAIT_MAX_S) {
            reply_fail(rs, 400, "bad request", "wait: expected whole seconds from 0 to %d",
                       WAIT_MAX_S);
            return;
        }
    }
    json_t *o = reply_body_object(rq, rs, keys);
    if (!o)
        return;
    int r = reply_int_key(o, "deadline_ms", 1, DEADLINE_MAX_MS, &deadline, rs);
    json_decref(o);
    if (r < 0)
        return;
    if (backend_drain(b, (uint64_t)deadline) == BACKEND_REFUSED) {
        reply_fail(rs, 409, "conflict", "backend %s is disabled: enable it before draining",
                   b->name);
        return;
    }
    if (wait_s > 0) {
        /* Poll with the lock released while waiting, so other calls (enable,
         * stats) go on; shutdown ends the wait at once (the answer is then
         * 202, still draining), and a wait asked for after it does not start.
         * The backend may be deleted meanwhile: look it up again by name. */
        char pool_name[NAME_MAX_LEN + 1], name[NAME_MAX_LEN + 1];
        snprintf(pool_name, sizeof(pool_name), "%s", pl->name);
        snprintf(name, sizeof(name), "%s", b->name);
        struct drain_wait w = {a, pool_name, name, b};
        wait_until(drain_wait_done, drain_wait_sleep, &w, (unsigned)wait_s * 1000u, WAIT_STEP_MS);
        b = w.b;
        if (!b) {
            reply_fail(rs, 404, "not found", "backend %s was removed from pool %s while waiting",
                       name, pool_name);
            return;
        }
    }
    enum backend_state st = backend_state_now(b);
    reply_json(rs, wait_s > 0 && st == BACKEND_DRAINING ? 202 : 200, view_backend(b));
}

static void enable(const struct admin_request *rq, struct admin_response *rs, struct backend *b)
{
    static const char *const keys[] = {NULL};
    json_t *o = reply_body_object(rq, rs, keys);
    if (!o)
        return;
    json_decref(o);
    if (backend_enable(b) == BACKEND_REFUSED) {
        if (atomic_load(&b->retired))
            reply_fail(rs, 409, "conflict",
                       "backend %s is leaving its pool (reload or DNS): it drains until removed",
                       b->name);
        else
            reply_fail(rs, 409, "conflict", "backend %s is down: its health checks bring it back",
                       b->name);
        return;
    }
    reply_json(rs, 200, view_backend(b));
}

static void disable(const struct admin_request *rq, struct admin_response *rs, struct backend *b)
{
    static const char *const keys[] = {"close", NULL};
    json_t *o = reply_body_object(rq, rs, keys);
    if (!o)
        return;
    json_t *close = json_object_get(o, "close");
    if (close && !json_is_boolean(close)) {
        json_decref(o);
        reply_fail(rs, 400, "bad request", "close: expected true or false");
        return;
    }
    int close_sessions = close && json_is_true(close);
    json_decref(o);
    backend_disable(b, close_sessions);
    reply_json(rs, 200, view_backend(b));
}

/* Why a task could not be posted to a sub-reactor, for a 503's detail. */
static const char *post_error(int err)
{
    return err == -EAGAIN      ? "its sub-reactor's inbox is full"
           : err == -ESHUTDOWN ? "its sub-reactor is stopping"
                               : strerror(-err);
}

/* What a backend_edit_* error means to the caller, as status and detail. */
static void edit_failed(struct admin_response *rs, int err, const char *pool, const char *name)
{
    if (err == -ENOMEM)
        reply_fail(rs, 500, "internal error", "out of memory");
    else if (err == -EEXIST)
        reply_fail(rs, 409, "conflict", "pool %s already has a backend named %s", pool, name);
    else if (err == -ENOSPC)
        reply_fail(rs, 409, "conflict", "pool %s already has %d backends, the most it may hold",
                   pool, BACKEND_EDIT_MAX);
    else
        reply_fail(rs, 503, "service unavailable",
                   "cannot start or stop the health checks of %s (%s): nothing changed, try again",
                   name, post_error(err));
}

static void set_weight(struct admin_ctx *a, const struct admin_request *rq,
                       struct admin_response *rs, struct pool *pl, struct backend *b)
{
    static const char *const keys[] = {"weight", NULL};
    json_t *o = reply_body_object(rq, rs, keys);
    if (!o)
        return;
    long long w = 0;
    int r = reply_int_key(o, "weight", 0, WEIGHT_MAX, &w, rs);
    json_decref(o);
    if (r < 0)
        return;
    if (r == 0) {
        reply_fail(rs, 400, "bad request", "weight: required, an integer from 0 to %d", WEIGHT_MAX);
        return;
    }
    int err = backend_edit_reweight(a->pm, pl, b, (unsigned)w);
    if (err) {
        edit_failed(rs, err, pl->name, b->name);
        return;
    }
    atomic_store(&b->weight_from_api, 1); /* a reload keeps it (README "Reload") */
    reply_json(rs, 200, view_backend(b));
}

static void add_backend(struct admin_ctx *a, const struct admin_request *rq,
                        struct admin_response *rs, struct pool *pl)
{
    static const char *const keys[] = {"name", "address", "weight", NULL};
    json_t *o = reply_body_object(rq, rs, keys);
    if (!o)
        return;
    const char *name = json_string_value(json_object_get(o, "name"));
    const char *address = json_string_value(json_object_get(o, "address"));
    long long w = 1;
    struct cfg_addrs addrs;
    char why[256];
    if (!name || !valid_name(name)) {
        reply_fail(rs, 400, "bad request", "name: expected 1 to %d characters of A-Z a-z 0-9 - _ .",
                   NAME_MAX_LEN);
    } else if (!address || config_addr_parse_all(address, 0, &addrs, why, sizeof(why)) < 0) {
        reply_fail(rs, 400, "bad request", "address: %s",
                   address ? why : "expected \"IPv4:port\" or \"[IPv6]:port\"");
    } else if (reply_int_key(o, "weight", 0, WEIGHT_MAX, &w, rs) >= 0) {
        struct backend *b = NULL;
        int err = backend_edit_add(a->pm, pl, name, address, &addrs, (unsigned)w, &b);
        if (err)
            edit_failed(rs, err, pl->name, name);
        else
            reply_json(rs, 201, view_backend(b));
    }
    json_decref(o);
}

static void delete_backend(struct admin_ctx *a, struct admin_response *rs, struct pool *pl,
                           struct backend *b)
{
    enum backend_state st = backend_state_now(b);
    uint64_t active = atomic_load(&b->active_connections);
    if ((st != BACKEND_DRAINED && st != BACKEND_DISABLED) || active) {
        reply_fail(rs, 409, "conflict",
                   "backend %s is %s with %llu active connections: drain or disable it first, and "
                   "wait until none is left",
                   b->name, backend_state_name(st), (unsigned long long)active);
        return;
    }
    int err = backend_edit_remove(a->pm, pl, b);
    if (err) {
        edit_failed(rs, err, pl->name, b->name);
        return;
    }
    rs->status = 204;
    rs->body = NULL;
    rs->content_type = "application/json";
}

/* --- routing --------------------------------------------------------------- */

static int split(const char *path, char seg[MAX_SEGMENTS][SEGMENT_MAX])
{
    int n = 0;
    const char *p = path;
    if (*p != '/')
        return -1;
    while (*p == '/') {
        p++;
        if (!*p)
            break; /* one trailing slash is tolerated */
        const char *end = strchr(p, '/');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        if (n == MAX_SEGMENTS || len == 0 || len >= SEGMENT_MAX)
            return -1;
        memcpy(seg[n], p, len);
        seg[n][len] = '\0';
        n++;
        p += len;
    }
    return n;
}

static void route_backend(struct admin_ctx *a, const struct admin_request *rq,
                          struct admin_response *rs, struct pool *pl, char seg[][SEGMENT_MAX],
                          int n)
{
    struct backend *b = pool_find(pl, seg[4]);
    if (!b) {
        reply_fail(rs, 404, "not found", "pool %s has no backend named %.64s", pl->name, seg[4]);
        return;
    }
    if (n == 5) {
        if (method_is(rq, "GET"))
            reply_json(rs, 200, view_backend(b));
        else if (method_is(rq, "PATCH"))
            set_weight(a, rq, rs, pl, b);
        else if (method_is(rq, "DELETE"))
            delete_backend(a, rs, pl, b);
        else
            reply_not_allowed(rq, rs, "GET, PATCH, DELETE");
        return;
    }
    const char *action = seg[5];
    if (n != 6 ||
        (strcmp(action, "drain") && strcmp(action, "enable") && strcmp(action, "disable"))) {
        reply_fail(rs, 404, "not found",
                   "no such backend action (expected drain, enable or disable)");
        return;
    }
    if (!method_is(rq, "POST")) {
        reply_not_allowed(rq, rs, "POST");
        return;
    }
    if (strcmp(action, "drain") == 0)
        drain(a, rq, rs, pl, b);
    else if (strcmp(action, "enable") == 0)
        enable(rq, rs, b);
    else
        disable(rq, rs, b);
}

/* GET /api/v1/listeners/NAME/sources?top=N: the N most limited sources. */
static void listener_sources(struct runtime *rt, const struct admin_request *rq,
                             struct admin_response *rs, const char *name)
{
    const struct listener *l = runtime_find_listener(rt, name);
    if (!l) {
        reply_fail(rs, 404, "not found", "no listener named %.64s", name);
        return;
    }
    if (!method_is(rq, "GET")) {
        reply_not_allowed(rq, rs, "GET");
        return;
    }
    if (!l->sources) {
        reply_fail(rs, 404, "not found", "listener %s has no per_source limits", l->name);
        return;
    }
    long long top = SOURCES_TOP_DEF;
    if (rq->top) {
        char *end;
        errno = 0;
        top = strtoll(rq->top, &end, 10);
        if (errno || end == rq->top || *end || top < 1 || top > SOURCES_TOP_MAX) {
            reply_fail(rs, 400, "bad request", "top: expected a whole number from 1 to %d",
                       SOURCES_TOP_MAX);
            return;
        }
    }
    reply_json(rs, 200, view_listener_sources(l, (size_t)top));
}

static json_t *lines(char **v, size_t n)
{
    json_t *arr = json_array();
    for (size_t i = 0; i < n; i++)
        json_array_append_new(arr, json_string(v[i]));
    return arr;
}

/* POST /api/v1/reload (README "Reload"): re-reads the config file and
 * applies it as SIGHUP does; 200 with what changed and what did not apply,
 * 400 with the config's errors (JSON paths) and nothing changed. */
static void reload(struct admin_ctx *a, const struct admin_request *rq, struct admin_response *rs)
{
    static const char *const keys[] = {NULL};
    json_t *o = reply_body_object(rq, rs, keys);
    if (!o)
        return;
    json_decref(o);
    struct reload_report rep;
    int err = runtime_reload_file_locked(a->rt, &rep);
    if (err == -EINVAL) {
        json_t *errs = json_array();
        char *save = NULL;
        for (char *line = strtok_r(rep.errors, "\n", &save); line;
             line = strtok_r(NULL, "\n", &save))
            json_array_append_new(errs, json_string(line));
        reply_json(rs, 400,
                   json_pack("{s:s, s:s, s:o}", "error", "bad request", "detail",
                             "invalid config: nothing changed", "errors", errs));
    } else if (err) {
        reply_fail(rs, err == -ESHUTDOWN ? 503 : 500,
                   err == -ESHUTDOWN ? "shutting down" : "reload failed", "%s: nothing changed",
                   rep.errors ? rep.errors : strerror(-err));
    } else {
        reply_json(rs, 200,
                   json_pack("{s:s, s:I, s:o, s:o}", "status", "reloaded", "config_generation",
                             (json_int_t)rep.generation, "changed",
                             lines(rep.changed, rep.nchanged), "not_applied",
                             lines(rep.not_applied, rep.nnot_applied)));
    }
    reload_report_free(&rep);
}

static void route_api(struct admin_ctx *a, const struct admin_request *rq,
                      struct admin_response *rs, char seg[][SEGMENT_MAX], int n)
{
    struct runtime *rt = a->rt;
    uint64_t uptime = (clock_mono_ms() - a->started_mono_ms) / 1000u;
    if (n == 3 && strcmp(seg[2], "pools") != 0 && strcmp(seg[2], "reload") != 0) {
        json_t *v = strcmp(seg[2], "stats") == 0       ? view_stats(rt, uptime)
                    : strcmp(seg[2], "pollers") == 0   ? view_pollers(rt)
                    : strcmp(seg[2], "listeners") == 0 ? view_listeners(rt)
                                                       : NULL;
        if (!v)
            reply_fail(rs, 404, "not found", "no such endpoint");
        else if (!method_is(rq, "GET")) {
            json_decref(v);
            reply_not_allowed(rq, rs, "GET");
        } else
            reply_json(rs, 200, v);
        return;
    }
    if (n == 5 && strcmp(seg[2], "listeners") == 0 && strcmp(seg[4], "sources") == 0) {
        listener_sources(rt, rq, rs, seg[3]);
        return;
    }
    if (n == 3 && strcmp(seg[2], "reload") == 0) {
        if (method_is(rq, "POST"))
            reload(a, rq, rs);
        else
            reply_not_allowed(rq, rs, "POST");
        return;
    }
    if (n < 3 || strcmp(seg[2], "pools") != 0) {
        reply_fail(rs, 404, "not found", "no such endpoint");
        return;
    }
    if (n == 3) {
        if (method_is(rq, "GET"))
            reply_json(rs, 200, view_pools(rt));
        else
            reply_not_allowed(rq, rs, "GET");
        return;
    }
    struct pool *pl = runtime_find_pool(rt, seg[3]);
    if (!pl) {
        reply_fail(rs, 404, "not found", "no pool named %.64s", seg[3]);
        return;
    }
    if (n == 4) {
        if (method_is(rq, "GET"))
            reply_json(rs, 200, view_pool(pl));
        else
            reply_not_allowed(rq, rs, "GET");
        return;
    }
    if (strcmp(seg[4], "backends") != 0) {
        reply_fail(rs, 404, "not found", "no such endpoint");
        return;
    }
    if (n == 5) {
        if (method_is(rq, "GET")) {
            json_t *v = view_pool(pl);
            reply_json(rs, 200, json_incref(json_object_get(v, "backends")));
            json_decref(v);
        } else if (method_is(rq, "POST"))
            add_backend(a, rq, rs, pl);
        else
            reply_not_allowed(rq, rs, "GET, POST");
        return;
    }
    /* shift so that seg[4] is the backend name */
    route_backend(a, rq, rs, pl, seg + 1, n - 1);
}

static void readyz(const struct admin_ctx *a, struct runtime *rt, struct admin_response *rs)
{
    if (atomic_load(&a->shutting_down)) {
        reply_fail(rs, 503, "not ready", "shutting down");
        return;
    }
    for (size_t i = 0; i < rt->nlisteners; i++)
        if (!listener_bound(rt->listeners[i])) {
            reply_fail(rs, 503, "not ready", "listener %s is not bound", rt->listeners[i]->name);
            return;
        }
    for (size_t i = 0; i < rt->npools; i++) {
        struct backend_set *set = pool_current(rt->pools[i]);
        int up = 0;
        for (size_t j = 0; j < set->n; j++)
            up |= backend_pickable(set->b[j]);
        if (!up) {
            reply_fail(rs, 503, "not ready", "pool %s has no backend up", rt->pools[i]->name);
            return;
        }
    }
    reply_json(rs, 200, json_pack("{s:s}", "status", "ready"));
}

void admin_route(struct admin_ctx *a, const struct admin_request *rq, struct admin_response *rs)
{
    char seg[MAX_SEGMENTS][SEGMENT_MAX];
    rs->status = 500;
    rs->body = NULL;
    rs->content_type = "application/json";
    rs->allow = NULL;
    rs->csp = NULL;
    /* Request rules (README "Admin request rules"): who may ask comes first,
     * then what the body may be; nothing is looked up or changed before.
     * The dashboard page (exactly "/") holds no data and a browser cannot
     * send a token when it navigates: it passes Host and Origin only, and
     * its own API calls then carry the token. */
    char detail[256];
    const char *error;
    int page = strcmp(rq->path, "/") == 0;
    int refused = page ? admin_request_foreign(&a->rules, rq, &error, detail, sizeof(detail))
                       : admin_request_refused(&a->rules, rq, &error, detail, sizeof(detail));
    if (refused) {
        reply_fail(rs, refused, error, "%s", detail);
        return;
    }
    if (page) {
        if (method_is(rq, "GET"))
            dashboard_reply(rs);
        else
            reply_not_allowed(rq, rs, "GET");
        return;
    }
    int n = split(rq->path, seg);
    if (n < 0 || n == 0) {
        reply_fail(rs, 404, "not found", "no such endpoint");
        return;
    }
    pthread_mutex_lock(a->lock);
    if (n == 1 && (strcmp(seg[0], "healthz") == 0 || strcmp(seg[0], "readyz") == 0 ||
                   strcmp(seg[0], "metrics") == 0)) {
        if (!method_is(rq, "GET")) {
            reply_not_allowed(rq, rs, "GET");
        } else if (seg[0][0] == 'h') {
            reply_json(rs, 200, json_pack("{s:s}", "status", "ok"));
        } else if (seg[0][0] == 'r') {
            readyz(a, a->rt, rs);
        } else {
            rs->status = 200;
            rs->body = view_metrics(a->rt, (clock_mono_ms() - a->started_mono_ms) / 1000u);
            rs->content_type = "text/plain; version=0.0.4; charset=utf-8";
        }
    } else if (n >= 2 && strcmp(seg[0], "api") == 0 && strcmp(seg[1], "v1") == 0) {
        route_api(a, rq, rs, seg, n);
    } else {
        reply_fail(rs, 404, "not found", "no such endpoint");
    }
    pthread_mutex_unlock(a->lock);
}
