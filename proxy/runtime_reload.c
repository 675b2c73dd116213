/* proxy/runtime_reload.c — in-process reload, the runtime module's second
 * file (proxy/runtime.h; README "Reload"): a new config applied to the
 * running proxy under the control lock. Listeners, pools and backends are
 * matched by name and keep their structs (listening fds, backend state,
 * health, counters); what leaves is retired until no session holds it, then
 * freed after a quiesce; what cannot apply in-process is named, never
 * ignored. Every step that can refuse (bind, allocate) runs before the first
 * change, so a rejected reload changes nothing. */
#define _GNU_SOURCE
#include "runtime.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "backend.h"
#include "backend_edit.h"
#include "health.h"
#include "log.h"
#include "resolve.h"
#include "resolver.h"
#include "session.h"
#include "reactor/linkbuf.h"

#define RELOAD_WAIT_MS        5000
#define MIN_BLOCKS_PER_POLLER 16 /* as runtime_create */

/* A pool that left rt->pools: an old generation (settings changed; empty
 * set, forwards picks to its successor) or a removed pool (its backends
 * retired). Freed once no session holds it and no other retired pool
 * forwards to it; `pinned` ones (a health checker may still point at them)
 * only at runtime_destroy. */
struct retired_pool {
    struct pool *pl;
    int pinned;
    int drop; /* runtime_retired_reap: freed in this pass */
};

/* --- the report ----------------------------------------------------------- */

__attribute__((format(printf, 3, 4))) static void note(char ***list, size_t *n, const char *fmt,
                                                       ...)
{
    char *line = NULL;
    va_list ap;
    va_start(ap, fmt);
    int r = vasprintf(&line, fmt, ap);
    va_end(ap);
    char **grown = r < 0 ? NULL : realloc(*list, (*n + 1) * sizeof(**list));
    if (!grown) { /* out of memory: the line is lost, the reload is not */
        free(r < 0 ? NULL : line);
        return;
    }
    grown[(*n)++] = line;
    *list = grown;
}

#define CHANGED(rep, ...)     note(&(rep)->changed, &(rep)->nchanged, __VA_ARGS__)
#define NOT_APPLIED(rep, ...) note(&(rep)->not_applied, &(rep)->nnot_applied, __VA_ARGS__)

void reload_report_free(struct reload_report *r)
{
    for (size_t i = 0; i < r->nchanged; i++)
        free(r->changed[i]);
    for (size_t i = 0; i < r->nnot_applied; i++)
        free(r->not_applied[i]);
    free(r->changed);
    free(r->not_applied);
    free(r->errors);
    memset(r, 0, sizeof(*r));
}

/* --- process-wide keys ---------------------------------------------------- */

static int str_differs(const char *a, const char *b)
{
    return (a == NULL) != (b == NULL) || (a && strcmp(a, b) != 0);
}

static int hosts_differ(const struct cfg_admin *a, const struct cfg_admin *b)
{
    if (a->nallowed_hosts != b->nallowed_hosts)
        return 1;
    for (size_t i = 0; i < a->nallowed_hosts; i++)
        if (strcmp(a->allowed_hosts[i], b->allowed_hosts[i]) != 0)
            return 1;
    return 0;
}

static void set_block_limit(struct poller *p, void *arg)
{
    lb_cache_set_limit(poller_blocks(p), *(const size_t *)arg);
}

/* Keys fixed at start are compared with the config the process started with
 * (what really runs), so a change stays reported until a restart. */
static void process_keys(struct runtime *rt, const struct config *cfg, struct reload_report *rep)
{
    const struct config *boot = rt->boot_cfg;
    static const char restart[] = "applies at restart";
    if (cfg->pollers != boot->pollers)
        NOT_APPLIED(rep, "pollers: %s", restart);
    if (cfg->poller_balance != boot->poller_balance)
        NOT_APPLIED(rep, "poller_balance: %s", restart);
    if (cfg->io != boot->io)
        NOT_APPLIED(rep, "io: %s", restart);
    if (cfg->accept != boot->accept)
        NOT_APPLIED(rep, "accept: %s", restart);
    if (str_differs(cfg->admin.listen, boot->admin.listen))
        NOT_APPLIED(rep, "admin.listen: %s", restart);
    if (str_differs(cfg->admin.token, boot->admin.token))
        NOT_APPLIED(rep, "admin.token: %s", restart);
    if (hosts_differ(&cfg->admin, &boot->admin))
        NOT_APPLIED(rep, "admin.allowed_hosts: %s", restart);
    if (str_differs(cfg->user, boot->user) || str_differs(cfg->group, boot->group))
        NOT_APPLIED(rep, "user/group: %s (privileges were dropped)", restart);
    if (cfg->shutdown_grace_ms != boot->shutdown_grace_ms)
        NOT_APPLIED(rep, "shutdown_grace_ms: %s", restart);
    if (cfg->shutdown_delay_ms != boot->shutdown_delay_ms)
        NOT_APPLIED(rep, "shutdown_delay_ms: %s", restart);
    if (cfg->shed_rate_per_s != boot->shed_rate_per_s)
        NOT_APPLIED(rep, "shed_rate_per_s: %s", restart);
    if (cfg->watch_config != boot->watch_config)
        NOT_APPLIED(rep, "watch_config: %s", restart);
    if (cfg->buffer_memory_limit != rt->cfg->buffer_memory_limit) {
        /* Each sub-reactor caps its own block cache: hand each the new share. */
        unsigned nsub = pollmgr_count(rt->pm);
        size_t per = (size_t)(cfg->buffer_memory_limit / nsub / LINKBUF_BLOCK_SIZE);
        per = per < MIN_BLOCKS_PER_POLLER ? MIN_BLOCKS_PER_POLLER : per;
        if (pollmgr_broadcast(rt->pm, POLLMGR_SUBS, set_block_limit, &per, RELOAD_WAIT_MS) == 0)
            CHANGED(rep, "buffer_memory_limit: %llu", cfg->buffer_memory_limit);
        else
            NOT_APPLIED(rep, "buffer_memory_limit: a poller did not answer");
    }
}

/* --- pools ---------------------------------------------------------------- */

static int bytes_differ(const char *a, size_t alen, const char *b, size_t blen)
{
    return (a == NULL) != (b == NULL) || alen != blen || (a && memcmp(a, b, alen) != 0);
}

/* Whether a pool's own settings (all but its backends) differ from cp's. */
static int settings_differ(const struct pool *pl, const struct cfg_pool *cp)
{
    const struct cfg_health_check *h = &pl->health_check, *ch = &cp->health_check;
    unsigned maglev = cp->maglev_table_size ? cp->maglev_table_size : 65537;
    return pl->balance != cp->balance || pl->zero_copy != cp->zero_copy ||
           pl->connect_timeout_ms != cp->connect_timeout_ms ||
           pl->idle_timeout_ms != cp->idle_timeout_ms || pl->retries != cp->retries ||
           pl->buffer_high_watermark != cp->buffer_high_watermark ||
           pl->buffer_low_watermark != cp->buffer_low_watermark ||
           pl->maglev_table_size != maglev || pl->max_fails != cp->max_fails ||
           pl->fail_window_ms != cp->fail_window_ms || h->enabled != ch->enabled ||
           (ch->enabled && (h->interval_ms != ch->interval_ms || h->timeout_ms != ch->timeout_ms ||
                            h->rise != ch->rise || h->fall != ch->fall ||
                            bytes_differ(h->send, h->send_len, ch->send, ch->send_len) ||
                            bytes_differ(h->expect, h->expect_len, ch->expect, ch->expect_len)));
}

/* What the new config makes of each of its pools, prepared before any change. */
struct pool_plan {
    const struct cfg_pool *cp;
    struct pool *cur;             /* the running pool of that name, or NULL: added */
    struct pool *next;            /* what serves it after: cur, a new generation, a new pool */
    struct backend_set *next_set; /* new generation: cur's backends under next's settings */
    struct backend_set *empty;    /* new generation: what cur keeps (no backend) */
};

static struct pool *find(struct pool **pools, size_t n, const char *name)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(pools[i]->name, name) == 0)
            return pools[i];
    return NULL;
}

static void plan_undo(struct pool_plan *pp)
{
    if (pp->next && pp->next != pp->cur) {
        pool_fini(pp->next);
        free(pp->next);
    }
    backend_set_free(pp->next_set);
    backend_set_free(pp->empty);
    memset(pp, 0, sizeof(*pp));
}

/* Allocates what pool cp needs: nothing (same settings), a new generation
 * with cur's backends, or a new pool with its configured backends. */
static int plan_pool(struct runtime *rt, const struct cfg_pool *cp, struct pool_plan *pp)
{
    pp->cp = cp;
    pp->cur = find(rt->pools, rt->npools, cp->name);
    if (pp->cur && !settings_differ(pp->cur, cp)) {
        pp->next = pp->cur;
        return 0;
    }
    struct cfg_pool bare = *cp;
    if (pp->cur)
        bare.nbackends = 0; /* the generation takes cur's backends, not new ones */
    if (!(pp->next = calloc(1, sizeof(*pp->next))))
        return -ENOMEM;
    int err = pool_init(pp->next, &bare);
    if (err) {
        free(pp->next);
        pp->next = NULL;
        return err;
    }
    if (!pp->cur)
        return 0;
    struct backend_set *cs = pool_current(pp->cur);
    pp->next_set = pool_build_set(pp->next, cs->b, cs->n);
    pp->empty = pool_build_set(pp->cur, NULL, 0);
    return pp->next_set && pp->empty ? 0 : -ENOMEM;
}

/* runtime_reload reserved the room before the first change. */
static void retire_pool(struct runtime *rt, struct pool *pl, int pinned)
{
    rt->retired_pools[rt->nretired_pools++] = (struct retired_pool){pl, pinned, 0};
}

static void start_checkers(struct runtime *rt, struct pool *pl, struct reload_report *rep)
{
    struct backend_set *set = pool_current(pl);
    for (size_t i = 0; i < set->n; i++) {
        struct backend *b = set->b[i];
        if (!pl->health_check.enabled) {
            /* Nothing would ever bring a backend that failed its checks back. */
            if (!atomic_load(&b->healthy))
                backend_go_up(b, pl->name, "health checks removed by a reload");
            continue;
        }
        if (b->hc)
            continue; /* its old checker could not be stopped: it runs on */
        int err = health_check_start_on(pl, b, runtime_checker_poller(rt));
        if (err)
            NOT_APPLIED(rep, "pools.%s.backends.%s: health checker not started: %s", pl->name,
                        b->name, strerror(-err));
    }
}

/* The plan's new generation takes over cur's backends (same structs: state,
 * health, counters kept). Sessions that started under cur keep its settings
 * and pick through its successor; cur is retired. The checkers restart with
 * next's settings. */
static void swap_generation(struct runtime *rt, struct pool_plan *pp, struct reload_report *rep)
{
    struct pool *cur = pp->cur, *next = pp->next;
    struct backend_set *cs = pool_current(cur);
    int pinned = 0;
    for (size_t i = 0; i < cs->n; i++)
        if (health_check_stop_on(cs->b[i]))
            pinned = 1; /* its checker runs on, pointing at cur */
    /* The stops have run once every sub-reactor took this task. */
    if (pollmgr_broadcast(rt->pm, POLLMGR_SUBS, NULL, NULL, RELOAD_WAIT_MS))
        pinned = 1;
    backend_set_free(pool_install_set(next, pp->next_set)); /* pool_init's empty set: unread */
    pp->next_set = NULL;
    /* Successor first: a picker that still finds none reads cur's full set,
     * which stays valid until the quiesce below. */
    atomic_store_explicit(&cur->successor, next, memory_order_release);
    for (size_t i = 0; i < rt->nretired_pools; i++)
        if (atomic_load(&rt->retired_pools[i].pl->successor) == cur)
            atomic_store_explicit(&rt->retired_pools[i].pl->successor, next, memory_order_release);
    struct backend_set *old = pool_install_set(cur, pp->empty);
    pp->empty = NULL;
    if (pollmgr_broadcast(rt->pm, POLLMGR_SUBS, NULL, NULL, RELOAD_WAIT_MS) == 0)
        backend_set_free(old);
    /* else: leaked rather than freed under a reader */
    retire_pool(rt, cur, pinned);
    start_checkers(rt, next, rep);
    CHANGED(rep, "pools.%s: settings changed (for new sessions)", cur->name);
}

/* Backends matched by name: kept ones keep their struct; added ones start as
 * their health says; removed ones drain and are reaped once empty. */
static void sync_backends(struct runtime *rt, struct pool *pl, const struct cfg_pool *cp,
                          struct reload_report *rep)
{
    for (size_t i = 0; i < cp->nbackends; i++) {
        const struct cfg_backend *cb = &cp->backends[i];
        if (cb->resolve == CFG_RESOLVE_ALL)
            continue; /* its backends are DNS discovery's (NAME@ADDR:PORT) */
        struct backend *b = pool_find(pl, cb->name);
        if (!b) {
            int err =
                backend_edit_add(rt->pm, pl, cb->name, cb->address, &cb->addrs, cb->weight, &b);
            if (err)
                NOT_APPLIED(rep, "pools.%s.backends.%s: not added: %s", pl->name, cb->name,
                            strerror(-err));
            else
                CHANGED(rep, "pools.%s.backends.%s: added", pl->name, cb->name);
            continue;
        }
        if (atomic_load(&b->retired)) {
            NOT_APPLIED(rep,
                        "pools.%s.backends.%s: still draining after its removal; reload again "
                        "once it is gone",
                        pl->name, cb->name);
            continue;
        }
        if (strcmp(b->address, cb->address) != 0)
            NOT_APPLIED(rep,
                        "pools.%s.backends.%s: address %s kept (a new address needs a new "
                        "backend name)",
                        pl->name, cb->name, b->address);
        unsigned w = atomic_load(&b->weight);
        if (w == cb->weight)
            continue;
        if (atomic_load(&b->weight_from_api)) {
            NOT_APPLIED(rep,
                        "pools.%s.backends.%s: weight %u set through the API kept (config: %u)",
                        pl->name, cb->name, w, cb->weight);
            continue;
        }
        int err = backend_edit_reweight(rt->pm, pl, b, cb->weight);
        if (err)
            NOT_APPLIED(rep, "pools.%s.backends.%s: weight: %s", pl->name, cb->name,
                        strerror(-err));
        else
            CHANGED(rep, "pools.%s.backends.%s: weight %u -> %u", pl->name, cb->name, w,
                    cb->weight);
    }
    struct backend_set *set = pool_current(pl);
    for (size_t i = 0; i < set->n; i++) {
        struct backend *b = set->b[i];
        int listed = 0;
        /* By name, or made by DNS discovery for one of the pool's names
         * (NAME@ADDR:PORT): the resolver keeps those. */
        for (size_t j = 0; j < cp->nbackends && !listed; j++)
            listed = strcmp(cp->backends[j].name, b->name) == 0 ||
                     (cp->backends[j].resolve == CFG_RESOLVE_ALL &&
                      resolve_owns(cp->backends[j].name, b->name));
        if (listed || atomic_load(&b->retired))
            continue;
        backend_edit_retire(b, 0);
        CHANGED(rep, "pools.%s.backends.%s: removed (drains, then goes)", pl->name, b->name);
    }
}

/* --- listeners ------------------------------------------------------------ */

struct listener_plan {
    const struct cfg_listener *cl;
    struct listener *cur; /* kept (same name and address), or NULL */
    struct listener *add; /* bound here, started by the broadcast */
};

static int same_addr(const struct cfg_sockaddr *a, const struct cfg_sockaddr *b)
{
    return a->len == b->len && memcmp(&a->ss, &b->ss, a->len) == 0;
}

/* The one broadcast that changes which sockets accept: each poller starts
 * the added listeners' sockets it owns and closes the removed ones'. Once it
 * has run everywhere, no accept can still hold a pool pointer it read before
 * this reload without having counted its session (pool_session_begin). */
struct listen_swap {
    struct listener **add, **gone;
    size_t nadd, ngone;
};

static void swap_listeners(struct poller *p, void *arg)
{
    struct listen_swap *sw = arg;
    for (size_t i = 0; i < sw->nadd; i++) {
        int err = listener_start_on(sw->add[i], p);
        if (err)
            log_error("listener %s: cannot watch its socket: %s", sw->add[i]->name, strerror(-err));
    }
    for (size_t i = 0; i < sw->ngone; i++)
        listener_close_on(sw->gone[i], p);
}

static void undo_listeners(struct listener_plan *lp, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (lp[i].add) {
            listener_fini(lp[i].add);
            free(lp[i].add);
        }
}

static int same_str(const char *a, const char *b)
{
    return a == b || (a && b && strcmp(a, b) == 0);
}

/* What a listener reads and limits before it hands a connection on (its
 * routes, per-source limits, PROXY header, inspect deadline) is set when it
 * is made: a kept listener whose config changes these is named, not
 * changed. Renaming the listener applies them (a new one is bound). */
static int same_front(const struct listener *l, const struct cfg_listener *cl)
{
    if (l->nroutes != cl->nroutes || l->inspect_timeout_ms != cl->inspect_timeout_ms ||
        !(l->inspect & (1u << LISTENER_INSPECT_PROXY_PROTOCOL)) != !cl->accept_proxy_protocol)
        return 0;
    for (size_t i = 0; i < cl->nroutes; i++) {
        const struct cfg_route *a = &l->routes[i], *b = &cl->routes[i];
        if (a->is_default != b->is_default || !same_str(a->sni, b->sni) ||
            !same_str(a->alpn, b->alpn) || !same_str(a->pool, b->pool))
            return 0;
    }
    const struct cfg_per_source *ps = &cl->per_source;
    if (!l->sources != !ps->enabled)
        return 0;
    if (!l->sources)
        return 1;
    const struct source_limit_opts *o = &l->sources->opts;
    return o->max_connections == ps->max_connections && o->rate_per_s == ps->rate_per_s &&
           o->burst == ps->burst && o->capacity == ps->max_sources &&
           o->prefix_v4 == cl->source_prefix_v4 && o->prefix_v6 == cl->source_prefix_v6 &&
           !l->source_reset == !ps->reset;
}

static int plan_listeners(struct runtime *rt, const struct config *cfg, struct listener_plan *lp,
                          struct pool *const *pools, struct reload_report *rep)
{
    for (size_t i = 0; i < cfg->nlisteners; i++) {
        const struct cfg_listener *cl = &cfg->listeners[i];
        lp[i].cl = cl;
        struct listener *cur = runtime_find_listener(rt, cl->name);
        if (cur && same_addr(&cur->addr, &cl->addr)) {
            lp[i].cur = cur;
            continue;
        }
        struct listener *l = calloc(1, sizeof(*l));
        int err =
            l ? listener_init(l, cl, NULL, rt->pm, rt->boot_cfg->accept, session_accept, rt->pm)
              : -ENOMEM;
        if (!err && (err = listener_set_routes(l, cl, pools)) < 0)
            listener_fini(l);
        if (!err && (err = listener_open(l)) < 0)
            listener_fini(l);
        if (err) {
            free(l);
            if (asprintf(&rep->errors, "listeners[%zu] (%s): cannot listen on %s: %s", i, cl->name,
                         cl->listen, strerror(-err)) < 0)
                rep->errors = NULL;
            return err;
        }
        lp[i].add = l;
    }
    return 0;
}

/* --- the reload ----------------------------------------------------------- */

/* Frees an old array once no sub-reactor reads it: after the publish. */
static void publish(struct runtime *rt, struct pool **pools, size_t npools,
                    struct listener **listeners, size_t nlisteners)
{
    struct pool **old_pools = rt->pools;
    struct listener **old_listeners = rt->listeners;
    rt->pools = pools;
    rt->npools = npools;
    rt->listeners = listeners;
    rt->nlisteners = nlisteners;
    free(old_listeners); /* read only under the control lock */
    if (runtime_publish_pools(rt) == 0)
        free(old_pools);
    else
        log_warn("reload: a sub-reactor did not take the new pool list in time");
}

static int reload_apply(struct runtime *rt, struct config *cfg, struct reload_report *rep);

/* The resolver borrows the config and the pool array a reload replaces: it
 * stops before anything changes (it never waits for the lock a reload holds)
 * and a new one follows the config in force after, applied or not. */
int runtime_reload(struct runtime *rt, struct config *cfg, struct reload_report *rep)
{
    resolver_destroy(rt->resolver);
    rt->resolver = NULL;
    int err = reload_apply(rt, cfg, rep);
    int rerr =
        resolver_create(rt->cfg, rt->pools, rt->npools, rt->pm, &rt->control, 1, &rt->resolver);
    if (!rerr)
        rerr = resolver_start(rt->resolver);
    if (rerr) {
        log_error("DNS discovery stopped after the reload: %s", strerror(-rerr));
        resolver_destroy(rt->resolver);
        rt->resolver = NULL;
    }
    return err;
}

static int reload_apply(struct runtime *rt, struct config *cfg, struct reload_report *rep)
{
    memset(rep, 0, sizeof(*rep));
    if (rt->stopping || !rt->started) {
        config_free(cfg);
        rep->errors = strdup(rt->stopping ? "shutting down" : "not started yet");
        return -ESHUTDOWN;
    }
    int err = -ENOMEM;
    struct pool_plan *pp = calloc(cfg->npools ? cfg->npools : 1, sizeof(*pp));
    struct listener_plan *lp = calloc(cfg->nlisteners ? cfg->nlisteners : 1, sizeof(*lp));
    struct pool **pools = calloc(cfg->npools ? cfg->npools : 1, sizeof(*pools));
    struct listener **listeners = calloc(cfg->nlisteners ? cfg->nlisteners : 1, sizeof(*listeners));
    struct listener **gone = calloc(rt->nlisteners ? rt->nlisteners : 1, sizeof(*gone));
    struct listener **added = calloc(cfg->nlisteners ? cfg->nlisteners : 1, sizeof(*added));
    struct pool **removed = calloc(rt->npools ? rt->npools : 1, sizeof(*removed));
    struct listen_swap *sw = malloc(sizeof(*sw)); /* a late poller may read it after we return */
    size_t nplanned = 0, ngone = 0, nadded = 0, nremoved = 0;
    /* Retiring needs room: reserve it now so the changes below cannot fail. */
    struct retired_pool *rp = realloc(
        rt->retired_pools, (rt->nretired_pools + cfg->npools + rt->npools + 1) * sizeof(*rp));
    struct listener **rl =
        realloc(rt->retired_listeners, (rt->nretired_listeners + rt->nlisteners + 1) * sizeof(*rl));
    if (rp)
        rt->retired_pools = rp;
    if (rl)
        rt->retired_listeners = rl;
    if (!pp || !lp || !pools || !listeners || !gone || !added || !removed || !sw || !rp || !rl) {
        rep->errors = strdup("out of memory");
        goto out;
    }
    /* 1. Everything that can refuse: allocate pools, bind added listeners. */
    for (; nplanned < cfg->npools; nplanned++)
        if ((err = plan_pool(rt, &cfg->pools[nplanned], &pp[nplanned]))) {
            plan_undo(&pp[nplanned]);
            rep->errors = strdup("out of memory");
            goto undo;
        }
    for (size_t i = 0; i < cfg->npools; i++)
        pools[i] = pp[i].next; /* what added listeners' routes point at */
    if ((err = plan_listeners(rt, cfg, lp, pools, rep)))
        goto undo;

    /* 2. Apply; nothing below rejects the reload. */
    process_keys(rt, cfg, rep);
    for (size_t i = 0; i < cfg->npools; i++) {
        struct pool_plan *p = &pp[i];
        if (!p->cur) {
            start_checkers(rt, p->next, rep);
            CHANGED(rep, "pools.%s: added", p->cp->name);
        } else if (p->next != p->cur) {
            swap_generation(rt, p, rep);
            sync_backends(rt, p->next, p->cp, rep);
        } else {
            sync_backends(rt, p->next, p->cp, rep);
        }
        pools[i] = p->next;
    }
    for (size_t i = 0; i < rt->npools; i++) {
        struct pool *pl = rt->pools[i];
        if (find(pools, cfg->npools, pl->name))
            continue;
        struct backend_set *set = pool_current(pl);
        for (size_t j = 0; j < set->n; j++)
            backend_edit_retire(set->b[j], 0);
        removed[nremoved++] = pl;
        CHANGED(rep, "pools.%s: removed (its backends drain; it goes with its last session)",
                pl->name);
    }
    for (size_t i = 0; i < cfg->nlisteners; i++) {
        const struct cfg_listener *cl = lp[i].cl;
        struct pool *pl = pools[cl->pool_index];
        struct listener *l = lp[i].cur ? lp[i].cur : lp[i].add;
        if (lp[i].cur) {
            if (atomic_load(&l->pool) != pl)
                CHANGED(rep, "listeners.%s: pool %s", l->name, pl->name);
            if (atomic_load(&l->max_connections) != cl->max_connections)
                CHANGED(rep, "listeners.%s: max_connections %u", l->name, cl->max_connections);
            atomic_store(&l->max_connections, cl->max_connections);
            if (!same_front(l, cl))
                NOT_APPLIED(rep,
                            "listeners.%s: routes, per_source, accept_proxy_protocol or "
                            "inspect_timeout_ms: set when a listener is made; rename it to apply",
                            l->name);
            /* Each route to its pool's current struct, by name; one whose pool
             * is gone keeps the retired one (routed_to keeps it alive). */
            for (size_t j = 0; j < l->nroutes; j++) {
                struct pool *to = find(pools, cfg->npools, l->routes[j].pool);
                if (to)
                    atomic_store_explicit(&l->route_to[j].pool, to, memory_order_release);
            }
            if (l->backlog != cl->backlog) {
                int e = listener_set_backlog(l, cl->backlog);
                if (e)
                    NOT_APPLIED(rep, "listeners.%s: backlog: %s", l->name, strerror(-e));
                else
                    CHANGED(rep, "listeners.%s: backlog %u", l->name, cl->backlog);
            }
        } else {
            added[nadded++] = l;
            CHANGED(rep, "listeners.%s: added on %s", l->name, l->listen);
        }
        atomic_store(&l->pool, pl);
        listeners[i] = l;
    }
    for (size_t i = 0; i < rt->nlisteners; i++) {
        struct listener *l = rt->listeners[i];
        int kept = 0;
        for (size_t j = 0; j < cfg->nlisteners && !kept; j++)
            kept = lp[j].cur == l;
        if (!kept) {
            gone[ngone++] = l;
            CHANGED(rep, "listeners.%s: removed (stops accepting; its sessions run on)", l->name);
        }
    }
    *sw = (struct listen_swap){added, gone, nadded, ngone};
    if (nadded || ngone) {
        err = pollmgr_broadcast(rt->pm, POLLMGR_ALL, swap_listeners, sw, RELOAD_WAIT_MS);
        if (err) {
            /* A poller that did not run the task may still watch a removed
             * listener's socket, or run the task later (then it must find
             * sw and its arrays): keep them all, and those listeners, for
             * good. Leaking beats a use-after-free. */
            log_error("reload: not every poller swapped the listeners (%s); the removed ones "
                      "are kept until exit",
                      strerror(-err));
            added = gone = NULL;
            sw = NULL;
            ngone = 0;
        }
    } else {
        /* No accept may still hold a pool pointer it read before (see swap_listeners). */
        pollmgr_broadcast(rt->pm, POLLMGR_ALL, NULL, NULL, RELOAD_WAIT_MS);
    }
    for (size_t i = 0; i < ngone; i++)
        rt->retired_listeners[rt->nretired_listeners++] = gone[i];
    for (size_t i = 0; i < nremoved; i++)
        retire_pool(rt, removed[i], 0);
    publish(rt, pools, cfg->npools, listeners, cfg->nlisteners);
    pools = NULL;
    listeners = NULL;
    if (rt->cfg != rt->boot_cfg)
        config_free(rt->cfg);
    rt->cfg = cfg;
    cfg = NULL;
    rep->generation = ++rt->reload.generation;
    err = 0;
    goto out;
undo:
    undo_listeners(lp, cfg->nlisteners);
    for (size_t i = 0; i < nplanned; i++)
        plan_undo(&pp[i]);
out:
    config_free(cfg);
    free(pp);
    free(lp);
    free(pools);
    free(listeners);
    free(gone);
    free(added);
    free(removed);
    free(sw);
    return err;
}

/* --- from the file, counted and logged ------------------------------------ */

static int64_t unix_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int runtime_reload_file_locked(struct runtime *rt, struct reload_report *rep)
{
    memset(rep, 0, sizeof(*rep));
    struct config *cfg = NULL;
    char *errors = NULL;
    int err = 0;
    if (config_load_file(rt->cfg->path, &cfg, &errors) != 0) {
        rep->errors = errors ? errors : strdup("out of memory reading the config");
        err = -EINVAL;
    } else {
        err = runtime_reload(rt, cfg, rep);
    }
    struct runtime_reloads *r = &rt->reload;
    r->last_at_unix_ms = unix_ms();
    free(r->last_error);
    r->last_error = NULL;
    if (err) {
        r->failures++;
        r->last_error = rep->errors ? strdup(rep->errors) : NULL;
        /* One line per error: the log keeps the JSON paths. */
        log_error("reload rejected, the running config stays: %s",
                  rep->errors ? rep->errors : strerror(-err));
        return err;
    }
    r->reloads++;
    log_info("reload applied: config generation %llu, %zu changes, %zu not applied",
             (unsigned long long)rep->generation, rep->nchanged, rep->nnot_applied);
    for (size_t i = 0; i < rep->nchanged; i++)
        log_info("reload: %s", rep->changed[i]);
    for (size_t i = 0; i < rep->nnot_applied; i++)
        log_warn("reload: not applied: %s", rep->not_applied[i]);
    return 0;
}

int runtime_reload_file(struct runtime *rt, struct reload_report *rep)
{
    pthread_mutex_lock(runtime_control(rt));
    int err = runtime_reload_file_locked(rt, rep);
    pthread_mutex_unlock(runtime_control(rt));
    return err;
}

/* --- retired pools and listeners ------------------------------------------ */

static int forwarded_to(const struct runtime *rt, const struct pool *pl)
{
    for (size_t i = 0; i < rt->nretired_pools; i++)
        if (atomic_load(&rt->retired_pools[i].pl->successor) == pl)
            return 1;
    return 0;
}

/* A route of a listener (kept with routes not applied, or retired) still
 * points at pl: new sessions may pick through it. */
static int routed_to(const struct runtime *rt, const struct pool *pl)
{
    for (size_t k = 0; k < 2; k++) {
        struct listener *const *ls = k ? rt->retired_listeners : rt->listeners;
        size_t n = k ? rt->nretired_listeners : rt->nlisteners;
        for (size_t i = 0; i < n; i++)
            for (size_t j = 0; j < ls[i]->nroutes; j++)
                if (atomic_load(&ls[i]->route_to[j].pool) == pl)
                    return 1;
    }
    return 0;
}

static int pool_unheld(const struct runtime *rt, const struct retired_pool *r)
{
    return !r->pinned && pool_current(r->pl)->n == 0 &&
           atomic_load_explicit(&r->pl->sessions, memory_order_acquire) == 0 &&
           !forwarded_to(rt, r->pl) && !routed_to(rt, r->pl);
}

void runtime_retired_reap(struct runtime *rt)
{
    int any = 0;
    for (size_t i = 0; i < rt->nretired_pools; i++)
        backend_edit_reap(rt->pm, rt->retired_pools[i].pl); /* a removed pool's drained backends */
    /* Decided before anything is freed: forwarded_to reads every entry. */
    for (size_t i = 0; i < rt->nretired_pools; i++)
        any |= rt->retired_pools[i].drop = pool_unheld(rt, &rt->retired_pools[i]);
    for (size_t i = 0; i < rt->nretired_listeners; i++)
        any |= atomic_load(&rt->retired_listeners[i]->active_connections) == 0;
    /* The last session's counter drop was its last touch; the quiesce covers
     * what its poller did in the same loop iteration. */
    if (!any || pollmgr_broadcast(rt->pm, POLLMGR_ALL, NULL, NULL, RELOAD_WAIT_MS))
        return;
    /* Again after the quiesce, all decided before any is freed: a poller
     * that read a pointer to a pool just before it became unreachable has
     * counted its session by now. */
    for (size_t i = 0; i < rt->nretired_pools; i++)
        rt->retired_pools[i].drop =
            rt->retired_pools[i].drop && pool_unheld(rt, &rt->retired_pools[i]);
    size_t n = 0;
    for (size_t i = 0; i < rt->nretired_pools; i++) {
        struct retired_pool r = rt->retired_pools[i];
        if (r.drop) {
            pool_fini(r.pl);
            free(r.pl);
        } else {
            rt->retired_pools[n++] = r;
        }
    }
    rt->nretired_pools = n;
    n = 0;
    for (size_t i = 0; i < rt->nretired_listeners; i++) {
        struct listener *l = rt->retired_listeners[i];
        if (atomic_load(&l->active_connections) == 0) {
            listener_fini(l);
            free(l);
        } else {
            rt->retired_listeners[n++] = l;
        }
    }
    rt->nretired_listeners = n;
}

void runtime_retired_free_all(struct runtime *rt)
{
    for (size_t i = 0; i < rt->nretired_pools; i++) {
        struct pool *pl = rt->retired_pools[i].pl;
        struct backend_set *set = pool_current(pl);
        for (size_t j = 0; set && j < set->n; j++)
            health_check_detach(set->b[j]);
        pool_fini(pl);
        free(pl);
    }
    free(rt->retired_pools);
    rt->retired_pools = NULL;
    rt->nretired_pools = 0;
    for (size_t i = 0; i < rt->nretired_listeners; i++) {
        listener_fini(rt->retired_listeners[i]);
        free(rt->retired_listeners[i]);
    }
    free(rt->retired_listeners);
    rt->retired_listeners = NULL;
    rt->nretired_listeners = 0;
}
