/* proxy/resolver.c — DNS discovery's thread (proxy/resolver.h): one c-ares
 * channel, polled with the thread's wake-up eventfd; each name is queried
 * when due, its answers collected by c-ares' callbacks, and applied by the
 * loop (never inside a callback) under the control lock through
 * backend_edit. Owns the c-ares channel and the per-name state; the pools
 * and their backends stay the runtime's. */
#define _GNU_SOURCE
#include "resolver.h"

#include <ares.h>
#include <arpa/nameser.h>
#include <errno.h>
#include <poll.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include "backend.h"
#include "backend_edit.h"
#include "config/config_addr.h"
#include "log.h"
#include "pool.h"
#include "reactor/clock.h"
#include "resolve.h"

#define FOUND_MAX        256 /* addresses kept from one answer (UDP answers hold fewer) */
#define FIRST_ROUNDS     4   /* the start's wait: this many query timeouts at most */
#define SERVERS_CSV      (CFG_RESOLVER_SERVERS_MAX * 56)
#define BACKEND_NAME_MAX 160

enum name_state {
    NAME_IDLE,  /* waiting for next_at_ms */
    NAME_BUSY,  /* queries in flight */
    NAME_READY, /* answers in, to apply */
};

/* One address an answer brought, with the weight its backend gets. */
struct found {
    struct cfg_sockaddr addr;
    unsigned weight;
};

/* One configured backend that follows DNS. */
struct name {
    struct resolver *r;
    const struct cfg_backend *cb; /* borrowed from the runtime's config */
    size_t pi, bi;                /* pools[pi].backends[bi]: the JSON path */
    enum name_state state;
    uint64_t next_at_ms;
    unsigned pending; /* queries of this round still in flight */
    int failed;       /* a query of this round failed: keep the last good set */
    int failing;      /* the last round failed (log a failure once, and the recovery) */
    char err[POOL_DNS_ERROR_MAX];
    uint32_t ttl;        /* the smallest TTL of the round's records */
    struct found *found; /* owned: FOUND_MAX */
    size_t nfound;
    /* The last applied answer ("srv"): a weight is pushed to its backend
     * only when the record's weight changed, so a weight the operator set
     * through the API holds until DNS changes its own. Owned: FOUND_MAX. */
    struct found *applied;
    size_t napplied;
};

/* One getaddrinfo in flight: the name it serves and what its addresses get. */
struct query {
    struct name *n;
    unsigned port;
    unsigned weight;
    char host[]; /* for error messages: an SRV target's name */
};

struct resolver {
    ares_channel ch;
    int ares_ready; /* ch initialised */
    int lib_ready;  /* ares_library_init done */
    const struct cfg_resolver *cfg;
    struct pool *const *pools; /* not owned: the runtime's, in the config's order */
    struct pollmgr *pm;        /* not owned */
    pthread_mutex_t *control;
    int live;           /* the pollers run: changes are quiesced, "all" backends added */
    struct name *names; /* owned */
    size_t nnames;
    int wake; /* eventfd: resolver_destroy wakes the thread */
    atomic_int stop;
    pthread_t thread;
    int started;
};

static int64_t unix_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int follows_dns(const struct cfg_backend *cb)
{
    return cb->srv || cb->host;
}

static void round_failed(struct name *n, const char *what, int status)
{
    n->failed = 1;
    snprintf(n->err, sizeof(n->err), "%s: %s", what, ares_strerror(status));
}

static void query_done(struct name *n)
{
    if (--n->pending == 0)
        n->state = NAME_READY;
}

/* Keeps a's addresses (each address once) for the name's round. */
static void keep(struct name *n, const struct ares_addrinfo *ai, unsigned port, unsigned weight)
{
    for (const struct ares_addrinfo_node *node = ai->nodes; node; node = node->ai_next) {
        if ((node->ai_family != AF_INET && node->ai_family != AF_INET6) ||
            node->ai_addrlen > sizeof(struct sockaddr_storage))
            continue;
        struct cfg_sockaddr a = {.len = node->ai_addrlen};
        memcpy(&a.ss, node->ai_addr, node->ai_addrlen);
        if (a.ss.ss_family == AF_INET6)
            ((struct sockaddr_in6 *)&a.ss)->sin6_port = htons((uint16_t)port);
        else
            ((struct sockaddr_in *)&a.ss)->sin_port = htons((uint16_t)port);
        int dup = 0;
        for (size_t i = 0; i < n->nfound && !dup; i++)
            dup = n->found[i].addr.len == a.len && memcmp(&n->found[i].addr.ss, &a.ss, a.len) == 0;
        if (dup || n->nfound >= FOUND_MAX)
            continue;
        n->found[n->nfound++] = (struct found){a, weight};
        if (node->ai_ttl >= 0 && (uint32_t)node->ai_ttl < n->ttl)
            n->ttl = (uint32_t)node->ai_ttl;
    }
}

static void on_addrinfo(void *arg, int status, int timeouts, struct ares_addrinfo *res)
{
    (void)timeouts;
    struct query *q = arg;
    struct name *n = q->n;
    if (status == ARES_SUCCESS && res)
        keep(n, res, q->port, q->weight);
    else
        round_failed(n, q->host, status);
    if (res)
        ares_freeaddrinfo(res);
    free(q);
    query_done(n);
}

static void resolve_host(struct name *n, const char *host, unsigned port, unsigned weight)
{
    size_t len = strlen(host) + 1;
    struct query *q = malloc(sizeof(*q) + len);
    if (!q) {
        n->failed = 1;
        snprintf(n->err, sizeof(n->err), "%s: out of memory", host);
        return;
    }
    q->n = n;
    q->port = port;
    q->weight = weight;
    memcpy(q->host, host, len);
    struct ares_addrinfo_hints hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
    n->pending++;
    ares_getaddrinfo(n->r->ch, host, NULL, &hints, on_addrinfo, q); /* may call back at once */
}

/* SRV answer: the targets of the lowest priority value (RFC 2782: the
 * others are fallbacks, not used here), each resolved to its addresses. */
static void on_srv(void *arg, int status, int timeouts, unsigned char *abuf, int alen)
{
    (void)timeouts;
    struct name *n = arg;
    struct ares_srv_reply *srv = NULL;
    if (status == ARES_SUCCESS)
        status = ares_parse_srv_reply(abuf, alen, &srv);
    if (status != ARES_SUCCESS || !srv) {
        round_failed(n, n->cb->srv, status == ARES_SUCCESS ? ARES_ENODATA : status);
        query_done(n);
        return;
    }
    uint32_t ttl = resolve_answer_ttl(abuf, (size_t)alen, 0);
    n->ttl = ttl < n->ttl ? ttl : n->ttl;
    unsigned prio = UINT16_MAX, w[FOUND_MAX], out[FOUND_MAX];
    const struct ares_srv_reply *use[FOUND_MAX];
    size_t k = 0;
    for (struct ares_srv_reply *s = srv; s; s = s->next)
        prio = s->priority < prio ? s->priority : prio;
    for (struct ares_srv_reply *s = srv; s && k < FOUND_MAX; s = s->next)
        if (s->priority == prio && s->port) {
            use[k] = s;
            w[k++] = s->weight;
        }
    resolve_srv_weights(w, k, out);
    for (size_t i = 0; i < k; i++)
        resolve_host(n, use[i]->host, use[i]->port, out[i]);
    ares_free_data(srv);
    query_done(n);
}

/* Starts a round of queries for n. */
static void issue(struct name *n)
{
    n->state = NAME_BUSY;
    n->pending = 1; /* this function's own, so callbacks made at once cannot end the round */
    n->failed = 0;
    n->nfound = 0;
    n->ttl = UINT32_MAX;
    n->err[0] = '\0';
    if (n->cb->srv) {
        n->pending++; /* on_srv's own, released when it returns */
        ares_search(n->r->ch, n->cb->srv, ns_c_in, ns_t_srv, on_srv, n);
    } else {
        resolve_host(n, n->cb->host, n->cb->port, n->cb->weight);
    }
    query_done(n);
}

/* --- applying a round ------------------------------------------------------ */

static void addrs_of(const struct name *n, struct cfg_addrs *out)
{
    memset(out, 0, sizeof(*out));
    for (size_t i = 0; i < n->nfound && out->n < CFG_ADDRS_MAX; i++)
        out->a[out->n++] = n->found[i].addr;
}

static int has_addr(const struct cfg_addrs *as, const struct cfg_sockaddr *a)
{
    for (unsigned i = 0; i < as->n; i++)
        if (as->a[i].len == a->len && memcmp(&as->a[i].ss, &a->ss, a->len) == 0)
            return 1;
    return 0;
}

/* The same addresses in any order: servers rotate their answers, and a
 * rotation alone is no change (the dial order stays as it was). */
static int same_addrs(const struct cfg_addrs *a, const struct cfg_addrs *b)
{
    if (a->n != b->n)
        return 0;
    for (unsigned i = 0; i < a->n; i++)
        if (!has_addr(b, &a->a[i]))
            return 0;
    return 1;
}

static void log_addrs(const char *pool, const char *backend, const char *host,
                      const struct cfg_addrs *as)
{
    char list[CFG_ADDRS_MAX * 52] = "", one[52];
    for (unsigned i = 0; i < as->n; i++) {
        config_addr_format(&as->a[i], one, sizeof(one));
        if (i)
            strcat(list, ", ");
        strcat(list, one);
    }
    log_info("pool %s backend %s: %s resolves to %s", pool, backend, host, list);
}

/* Default mode: the backend's address list follows the name. */
static int apply_first(struct resolver *r, struct name *n, struct pool *pl)
{
    struct backend *b = pool_find(pl, n->cb->name);
    if (!b)
        return 0; /* deleted through the API meanwhile */
    struct cfg_addrs as;
    addrs_of(n, &as);
    if (same_addrs(&as, backend_addrs(b)))
        return 0;
    log_addrs(pl->name, b->name, n->cb->host, &as);
    if (r->live)
        return backend_edit_addrs(r->pm, b, &as);
    /* No poller runs yet: nothing can hold the old list. */
    struct cfg_addrs *copy = malloc(sizeof(*copy));
    if (!copy)
        return -ENOMEM;
    *copy = as;
    free(backend_swap_addrs(b, copy));
    return 0;
}

static int in_round(const struct name *n, const char *backend_name, const char *cfg_name)
{
    char nm[BACKEND_NAME_MAX];
    for (size_t i = 0; i < n->nfound; i++)
        if (resolve_backend_name(cfg_name, &n->found[i].addr, nm, sizeof(nm)) == 0 &&
            strcmp(nm, backend_name) == 0)
            return 1;
    return 0;
}

static const struct found *applied_for(const struct name *n, const struct cfg_sockaddr *a)
{
    for (size_t i = 0; i < n->napplied; i++)
        if (n->applied[i].addr.len == a->len && memcmp(&n->applied[i].addr.ss, &a->ss, a->len) == 0)
            return &n->applied[i];
    return NULL;
}

/* "all" and "srv": one backend per address; new ones added, vanished ones
 * retired (drained, removed with their last session: backend_edit_reap). */
static int apply_all(struct resolver *r, struct name *n, struct pool *pl)
{
    const char *cname = n->cb->name;
    int err = 0;
    for (size_t i = 0; i < n->nfound; i++) {
        char nm[BACKEND_NAME_MAX], addr[64];
        if (resolve_backend_name(cname, &n->found[i].addr, nm, sizeof(nm)) < 0)
            continue;
        struct backend *b = pool_find(pl, nm);
        unsigned w = n->found[i].weight;
        if (b) {
            /* A retired one comes back once reaped (a later round). */
            const struct found *was = applied_for(n, &n->found[i].addr);
            if (!atomic_load(&b->retired) && n->cb->srv && was && was->weight != w &&
                atomic_load(&b->weight) != w) {
                int e = backend_edit_reweight(r->pm, pl, b, w);
                err = e ? e : err;
                if (!e)
                    log_info("pool %s backend %s: weight %u (SRV %s)", pl->name, nm, w, n->cb->srv);
            }
            continue;
        }
        struct cfg_addrs one = {.n = 1};
        one.a[0] = n->found[i].addr;
        config_addr_format(&one.a[0], addr, sizeof(addr));
        int e = backend_edit_add(r->pm, pl, nm, addr, &one, w, &b);
        if (e) {
            log_warn("pool %s: cannot add backend %s (found by DNS): %s", pl->name, nm,
                     strerror(-e));
            err = e;
            continue;
        }
        log_info("pool %s backend %s added: %s resolves to it", pl->name, nm,
                 n->cb->srv ? n->cb->srv : n->cb->host);
    }
    struct backend_set *set = pool_current(pl);
    for (size_t i = 0; i < set->n; i++) {
        struct backend *b = set->b[i];
        if (!resolve_owns(cname, b->name) || atomic_load(&b->retired) ||
            in_round(n, b->name, cname))
            continue;
        backend_edit_retire(b, 0); /* changes state, not the set */
        log_info("pool %s backend %s retired: no longer in DNS (%s); drained, then removed",
                 pl->name, b->name, n->cb->srv ? n->cb->srv : n->cb->host);
    }
    if (!err) { /* else the next round tries what failed again */
        memcpy(n->applied, n->found, n->nfound * sizeof(*n->found));
        n->napplied = n->nfound;
    }
    return err;
}

/* Applies n's round under the control lock and schedules the next one. */
static void apply(struct resolver *r, struct name *n)
{
    struct pool *pl = r->pools[n->pi];
    uint64_t next = r->cfg->resolve_min_ms; /* a failure is retried soon */
    if (!n->failed && n->nfound == 0) {
        n->failed = 1;
        snprintf(n->err, sizeof(n->err), "%s: no address", n->cb->srv ? n->cb->srv : n->cb->host);
    }
    /* Not a plain lock: a reload holds it while it stops this thread
     * (resolver_destroy), and a thread blocked on it would never see stop. */
    while (pthread_mutex_trylock(r->control) != 0) {
        if (atomic_load(&r->stop))
            return;
        const struct timespec ms = {0, 1000000L};
        nanosleep(&ms, NULL);
    }
    if (atomic_load(&r->stop)) {
        pthread_mutex_unlock(r->control);
        return;
    }
    if (n->failed) {
        /* The last good set stays: a DNS outage never empties a pool. */
        pl->dns.failures++;
        snprintf(pl->dns.last_error, sizeof(pl->dns.last_error), "%s", n->err);
        if (!n->failing)
            log_warn("pool %s backend %s: DNS failed, keeping the last good addresses: %s",
                     pl->name, n->cb->name, n->err);
        n->failing = 1;
    } else {
        int err = n->cb->resolve == CFG_RESOLVE_ALL ? apply_all(r, n, pl) : apply_first(r, n, pl);
        pl->dns.last_resolved_unix_ms = unix_ms();
        if (n->failing)
            log_info("pool %s backend %s: DNS answers again", pl->name, n->cb->name);
        n->failing = 0;
        if (!err)
            next = resolve_next_ms(n->ttl, r->cfg->resolve_min_ms, r->cfg->resolve_max_ms);
    }
    pthread_mutex_unlock(r->control);
    n->state = NAME_IDLE;
    n->next_at_ms = clock_mono_ms() + next;
}

/* --- the loop -------------------------------------------------------------- */

/* One wait on c-ares' sockets (and the wake-up eventfd) of at most
 * timeout_ms, then c-ares' processing of what became ready and of its
 * own timeouts. */
static void wait_and_process(struct resolver *r, uint64_t timeout_ms)
{
    ares_socket_t socks[ARES_GETSOCK_MAXNUM];
    struct pollfd pfd[ARES_GETSOCK_MAXNUM + 1];
    /* c-ares' own GETSOCK macros shift a signed 1 into the sign bit. */
    unsigned bits = (unsigned)ares_getsock(r->ch, socks, ARES_GETSOCK_MAXNUM);
    int n = 0;
    for (unsigned i = 0; i < ARES_GETSOCK_MAXNUM; i++) {
        short ev = (short)(((bits & (1u << i)) ? POLLIN : 0) |
                           ((bits & (1u << (i + ARES_GETSOCK_MAXNUM))) ? POLLOUT : 0));
        if (ev)
            pfd[n++] = (struct pollfd){.fd = socks[i], .events = ev};
    }
    pfd[n] = (struct pollfd){.fd = r->wake, .events = POLLIN};
    struct timeval tv, max = {(time_t)(timeout_ms / 1000), (suseconds_t)(timeout_ms % 1000) * 1000};
    struct timeval *t = ares_timeout(r->ch, &max, &tv);
    int ms = (int)(t->tv_sec * 1000 + (t->tv_usec + 999) / 1000);
    if (poll(pfd, (nfds_t)n + 1, ms) < 0)
        return; /* EINTR: the caller loops */
    int any = 0;
    for (int i = 0; i < n; i++) {
        if (!pfd[i].revents)
            continue;
        any = 1;
        ares_process_fd(
            r->ch, (pfd[i].revents & (POLLIN | POLLERR | POLLHUP)) ? pfd[i].fd : ARES_SOCKET_BAD,
            (pfd[i].revents & POLLOUT) ? pfd[i].fd : ARES_SOCKET_BAD);
    }
    if (!any)
        ares_process_fd(r->ch, ARES_SOCKET_BAD, ARES_SOCKET_BAD); /* timeouts */
    if (pfd[n].revents) {
        uint64_t v;
        if (read(r->wake, &v, sizeof(v)) < 0) {
            /* nothing to do: the stop flag is what matters */
        }
    }
}

static void *resolver_main(void *arg)
{
    struct resolver *r = arg;
    while (!atomic_load(&r->stop)) {
        uint64_t now = clock_mono_ms(), wait = r->cfg->resolve_max_ms;
        for (size_t i = 0; i < r->nnames && !atomic_load(&r->stop); i++) {
            struct name *n = &r->names[i];
            if (n->state == NAME_READY)
                apply(r, n);
            if (n->state == NAME_IDLE && now >= n->next_at_ms)
                issue(n);
            if (n->state == NAME_READY) /* answered at once (hosts file, cache) */
                apply(r, n);
            uint64_t due = n->next_at_ms > now ? n->next_at_ms - now : 0;
            if (n->state == NAME_IDLE && due < wait)
                wait = due;
        }
        if (!atomic_load(&r->stop))
            wait_and_process(r, wait);
    }
    return NULL;
}

/* The start's round, on the calling thread: every name without addresses
 * yet, once; default-mode answers applied now, "all"/"srv" ones left READY
 * for the thread. */
static int first_round(struct resolver *r)
{
    /* A name the loader resolved already (the system resolver) has its
     * addresses: the thread follows it from now on, the start does not wait. */
    for (size_t i = 0; i < r->nnames; i++)
        if (r->names[i].cb->srv || r->names[i].cb->addrs.n == 0)
            issue(&r->names[i]);
    uint64_t deadline = clock_mono_ms() + (uint64_t)r->cfg->timeout_ms * FIRST_ROUNDS;
    for (int cancelled = 0;;) {
        int busy = 0;
        for (size_t i = 0; i < r->nnames; i++)
            busy |= r->names[i].state == NAME_BUSY;
        uint64_t now = clock_mono_ms();
        if (!busy)
            break;
        if (now >= deadline) {
            if (cancelled)
                break;          /* the thread goes on with what is still in flight */
            ares_cancel(r->ch); /* each callback runs now, with ARES_ECANCELLED */
            cancelled = 1;
            deadline = now + r->cfg->timeout_ms;
            continue;
        }
        wait_and_process(r, deadline - now);
    }
    int err = 0;
    for (size_t i = 0; i < r->nnames; i++) {
        struct name *n = &r->names[i];
        if (n->cb->resolve == CFG_RESOLVE_ALL)
            continue;
        if (n->state == NAME_READY)
            apply(r, n);
        struct backend *b = pool_find(r->pools[n->pi], n->cb->name);
        if (b && backend_addrs(b)->n == 0) {
            log_error("pools[%zu].backends[%zu].address: cannot resolve host \"%s\": %s", n->pi,
                      n->bi, n->cb->host, n->err[0] ? n->err : "no answer in time");
            err = -EHOSTUNREACH;
        }
    }
    return err;
}

static int channel_init(struct resolver *r)
{
    struct ares_options o = {.timeout = (int)r->cfg->timeout_ms, .tries = 1};
    int st = ares_library_init(ARES_LIB_INIT_ALL);
    if (st != ARES_SUCCESS)
        goto fail;
    r->lib_ready = 1;
    if ((st = ares_init_options(&r->ch, &o, ARES_OPT_TIMEOUTMS | ARES_OPT_TRIES)) != ARES_SUCCESS)
        goto fail;
    r->ares_ready = 1;
    if (r->cfg->nservers) {
        char csv[SERVERS_CSV] = "", one[56];
        for (size_t i = 0; i < r->cfg->nservers; i++) {
            config_addr_format(&r->cfg->servers[i], one, sizeof(one));
            if (i)
                strcat(csv, ",");
            strcat(csv, one);
        }
        if ((st = ares_set_servers_ports_csv(r->ch, csv)) != ARES_SUCCESS)
            goto fail;
    }
    return 0;
fail:
    log_error("resolver: cannot start c-ares: %s", ares_strerror(st));
    return -EINVAL;
}

int resolver_create(const struct config *cfg, struct pool *const *pools, size_t npools,
                    struct pollmgr *pm, pthread_mutex_t *control, int live, struct resolver **out)
{
    *out = NULL;
    size_t count = 0;
    for (size_t i = 0; i < npools; i++)
        for (size_t j = 0; j < cfg->pools[i].nbackends; j++)
            count += follows_dns(&cfg->pools[i].backends[j]);
    if (!count)
        return 0;
    struct resolver *r = calloc(1, sizeof(*r));
    if (!r)
        return -ENOMEM;
    r->wake = -1;
    r->cfg = &cfg->resolver;
    r->pools = pools;
    r->pm = pm;
    r->control = control;
    r->live = live;
    atomic_init(&r->stop, 0);
    int err = -ENOMEM;
    r->names = calloc(count, sizeof(*r->names));
    if (!r->names)
        goto fail;
    for (size_t i = 0; i < npools; i++)
        for (size_t j = 0; j < cfg->pools[i].nbackends; j++) {
            const struct cfg_backend *cb = &cfg->pools[i].backends[j];
            if (!follows_dns(cb))
                continue;
            struct name *n = &r->names[r->nnames++];
            *n = (struct name){.r = r, .cb = cb, .pi = i, .bi = j};
            n->found = calloc(FOUND_MAX, sizeof(*n->found));
            n->applied = calloc(FOUND_MAX, sizeof(*n->applied));
            if (!n->found || !n->applied)
                goto fail;
        }
    if ((r->wake = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)) < 0) {
        err = -errno;
        goto fail;
    }
    if ((err = channel_init(r)))
        goto fail;
    /* Live (a reload's): the thread resolves at once, never the caller,
     * which holds the control lock that applying a round takes. */
    if (!live && (err = first_round(r)))
        goto fail;
    *out = r;
    return 0;
fail:
    resolver_destroy(r);
    return err;
}

int resolver_start(struct resolver *r)
{
    if (!r)
        return 0;
    r->live = 1;
    int err = pthread_create(&r->thread, NULL, resolver_main, r);
    if (err)
        return -err;
    pthread_setname_np(r->thread, "sluice-dns");
    r->started = 1;
    return 0;
}

void resolver_destroy(struct resolver *r)
{
    if (!r)
        return;
    if (r->started) {
        atomic_store(&r->stop, 1);
        uint64_t one = 1;
        if (write(r->wake, &one, sizeof(one)) < 0) {
            /* an eventfd write fails only on overflow: it is awake anyway */
        }
        pthread_join(r->thread, NULL);
    }
    /* Every query still in flight calls back now (ARES_EDESTRUCTION),
     * freeing its own state; the names outlive the channel. */
    if (r->ares_ready)
        ares_destroy(r->ch);
    if (r->lib_ready)
        ares_library_cleanup();
    if (r->wake >= 0)
        close(r->wake);
    for (size_t i = 0; i < r->nnames; i++) {
        free(r->names[i].found);
        free(r->names[i].applied);
    }
    free(r->names);
    free(r);
}
