/* proxy/pool.c — pools, backend sets, the picks by balance and the peer
 * API's accounting: slots, connect counters, passive health (proxy/pool.h). */
#define _GNU_SOURCE
#include "pool.h"

#include "maglev.h"
#include "reactor/clock.h"
#include "reactor/random.h"
#include "sock.h"

#include <errno.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>

#define POOL_SCHEDULE_MAX 65536
/* Schedule slots a round_robin pick looks at before it asks least_conn: when
 * most of the weight is down, a walk could otherwise cross 65536 slots per
 * new session, in the middle of an outage. */
#define RR_SCAN_MAX 64

static char *memdup(const char *src, size_t len)
{
    char *p = malloc(len + 1);
    if (p) {
        memcpy(p, src, len);
        p[len] = '\0';
    }
    return p;
}

static unsigned gcd(unsigned a, unsigned b)
{
    while (b) {
        unsigned t = a % b;
        a = b;
        b = t;
    }
    return a;
}

/* Sum of the weights over their gcd (0 when none has weight); *g gets the gcd. */
static unsigned long wrr_cycle(const unsigned *weights, size_t n, unsigned *g)
{
    unsigned long total = 0;
    *g = 0;
    for (size_t i = 0; i < n; i++)
        *g = gcd(*g, weights[i]);
    for (size_t i = 0; *g && i < n; i++)
        total += weights[i] / *g;
    return total;
}

size_t pool_smooth_wrr(const unsigned *weights, size_t n, uint32_t *out, size_t cap)
{
    unsigned g;
    unsigned long total = wrr_cycle(weights, n, &g);
    if (total == 0)
        return 0;
    size_t len = total < cap ? total : cap;
    long *current = calloc(n, sizeof(*current));
    if (!current)
        return 0;
    /* nginx's smooth WRR: every step adds each weight to its current value,
     * picks the largest and takes the total off it. Ties go to the lower index. */
    for (size_t step = 0; step < len; step++) {
        size_t best = 0;
        for (size_t i = 0; i < n; i++) {
            current[i] += (long)(weights[i] / g);
            if (current[i] > current[best])
                best = i;
        }
        current[best] -= (long)total;
        out[step] = (uint32_t)best;
    }
    free(current);
    return len;
}

void backend_set_free(struct backend_set *set)
{
    if (!set)
        return;
    free(set->b);
    free(set->schedule);
    free(set->maglev);
    free(set);
}

static struct backend_set *set_build(const struct pool *pl, struct backend **list, size_t n)
{
    struct backend_set *set = calloc(1, sizeof(*set));
    unsigned *weights = calloc(n ? n : 1, sizeof(*weights));
    const char **names = calloc(n ? n : 1, sizeof(*names));
    if (!set || !weights || !names)
        goto fail;
    set->b = calloc(n ? n : 1, sizeof(*set->b));
    if (!set->b)
        goto fail;
    set->n = n;
    for (size_t i = 0; i < n; i++) {
        set->b[i] = list[i];
        weights[i] = atomic_load(&list[i]->weight);
        names[i] = list[i]->name;
    }
    unsigned g;
    unsigned long cycle = wrr_cycle(weights, n, &g);
    size_t slots = cycle == 0 ? 1 : cycle < POOL_SCHEDULE_MAX ? (size_t)cycle : POOL_SCHEDULE_MAX;
    if (!(set->schedule = calloc(slots, sizeof(*set->schedule))))
        goto fail;
    set->schedule_len = pool_smooth_wrr(weights, n, set->schedule, slots);
    if (pl->balance == CFG_POOL_SOURCE_HASH) {
        set->maglev_size = pl->maglev_table_size;
        set->maglev = malloc(set->maglev_size * sizeof(*set->maglev));
        if (!set->maglev)
            goto fail;
        /* -EINVAL (no weight anywhere) leaves an all-empty table: picks find nothing. */
        maglev_build(names, weights, n, set->maglev, set->maglev_size);
    }
    free(weights);
    free(names);
    return set;
fail:
    free(weights);
    free(names);
    backend_set_free(set);
    return NULL;
}

int pool_init(struct pool *pl, const struct cfg_pool *cfg)
{
    memset(pl, 0, sizeof(*pl));
    pl->balance = cfg->balance;
    pl->zero_copy = cfg->zero_copy;
    pl->proxy_protocol = cfg->proxy_protocol;
    pl->connect_timeout_ms = cfg->connect_timeout_ms;
    pl->idle_timeout_ms = cfg->idle_timeout_ms;
    pl->retries = cfg->retries;
    pl->buffer_high_watermark = cfg->buffer_high_watermark;
    pl->buffer_low_watermark = cfg->buffer_low_watermark;
    pl->maglev_table_size = cfg->maglev_table_size ? cfg->maglev_table_size : 65537;
    pl->max_fails = cfg->max_fails;
    pl->fail_window_ms = cfg->fail_window_ms;
    pl->max_session_age_ms = cfg->max_session_age_ms;
    pl->health_check = cfg->health_check;
    pl->health_check.send = NULL;
    pl->health_check.expect = NULL;
    atomic_init(&pl->cursor, 0);
    atomic_init(&pl->set, NULL);

    int err = -ENOMEM;
    size_t made = 0;
    struct backend **list = calloc(cfg->nbackends ? cfg->nbackends : 1, sizeof(*list));
    pl->name = strdup(cfg->name);
    if (!list || !pl->name)
        goto fail;
    if (cfg->health_check.send &&
        !(pl->health_check.send = memdup(cfg->health_check.send, cfg->health_check.send_len)))
        goto fail;
    if (cfg->health_check.expect &&
        !(pl->health_check.expect = memdup(cfg->health_check.expect, cfg->health_check.expect_len)))
        goto fail;
    for (size_t i = 0; i < cfg->nbackends; i++) {
        const struct cfg_backend *cb = &cfg->backends[i];
        if (cb->resolve == CFG_RESOLVE_ALL)
            continue; /* one backend per address, added as DNS finds them (proxy/resolver.c) */
        if (!(list[made] = backend_new(cb->name, cb->address, &cb->addrs, cb->weight)))
            goto fail;
        made++;
    }
    struct backend_set *set = set_build(pl, list, made);
    if (!set)
        goto fail;
    atomic_store(&pl->set, set);
    free(list);
    return 0;
fail:
    for (size_t i = 0; i < made; i++)
        backend_free(list[i]);
    free(list);
    free(pl->health_check.send);
    free(pl->health_check.expect);
    free(pl->name);
    memset(pl, 0, sizeof(*pl));
    return err;
}

void pool_fini(struct pool *pl)
{
    struct backend_set *set = atomic_load(&pl->set); /* NULL if pool_init failed */
    for (size_t i = 0; set && i < set->n; i++)
        backend_free(set->b[i]);
    backend_set_free(set);
    free(pl->health_check.send);
    free(pl->health_check.expect);
    free(pl->name);
    memset(pl, 0, sizeof(*pl));
}

struct backend_set *pool_current(struct pool *pl)
{
    return atomic_load_explicit(&pl->set, memory_order_acquire);
}

struct backend *pool_find(struct pool *pl, const char *name)
{
    struct backend_set *set = pool_current(pl);
    for (size_t i = 0; i < set->n; i++)
        if (strcmp(set->b[i]->name, name) == 0)
            return set->b[i];
    return NULL;
}

struct backend_set *pool_build_set(const struct pool *pl, struct backend **list, size_t n)
{
    return set_build(pl, list, n);
}

struct backend_set *pool_install_set(struct pool *pl, struct backend_set *set)
{
    return atomic_exchange_explicit(&pl->set, set, memory_order_acq_rel);
}

struct backend_set *pool_replace(struct pool *pl, struct backend **list, size_t n)
{
    struct backend_set *set = set_build(pl, list, n);
    if (!set)
        return NULL;
    return pool_install_set(pl, set);
}

/* Relative load: active / weight, compared by cross-multiplying (no division). */
static int lighter(struct backend *a, struct backend *b)
{
    uint64_t la = atomic_load_explicit(&a->active_connections, memory_order_relaxed);
    uint64_t lb = atomic_load_explicit(&b->active_connections, memory_order_relaxed);
    uint64_t wa = atomic_load_explicit(&a->weight, memory_order_relaxed);
    uint64_t wb = atomic_load_explicit(&b->weight, memory_order_relaxed);
    return la * wb < lb * wa;
}

static int candidate(const struct backend *b, const struct backend *avoid)
{
    return b != avoid && backend_pickable(b);
}

static struct backend *pick_least_conn(struct pool *pl, struct backend_set *set,
                                       const struct backend *avoid);

static struct backend *pick_round_robin(struct pool *pl, struct backend_set *set,
                                        const struct backend *avoid)
{
    size_t len = set->schedule_len;
    if (len == 0)
        return NULL;
    unsigned start = atomic_fetch_add_explicit(&pl->cursor, 1, memory_order_relaxed);
    for (size_t k = 0; k < len && k < RR_SCAN_MAX; k++) {
        struct backend *b = set->b[set->schedule[(start + k) % len]];
        if (candidate(b, avoid) && backend_acquire(b))
            return b;
    }
    if (len <= RR_SCAN_MAX)
        return NULL; /* the whole cycle was seen: every backend with weight is in it */
    /* Mostly down: the least loaded per weight of those left, in O(backends). */
    return pick_least_conn(pl, set, avoid);
}

/* Fewest active/weight; the scan starts at a rotating index and only a
 * strictly lighter backend replaces the best, so ties rotate. */
static struct backend *pick_least_conn(struct pool *pl, struct backend_set *set,
                                       const struct backend *avoid)
{
    if (set->n == 0)
        return NULL;
    unsigned start = atomic_fetch_add_explicit(&pl->cursor, 1, memory_order_relaxed);
    for (int attempt = 0; attempt < 4; attempt++) {
        struct backend *best = NULL;
        for (size_t k = 0; k < set->n; k++) {
            struct backend *b = set->b[(start + k) % set->n];
            if (candidate(b, avoid) && (!best || lighter(b, best)))
                best = b;
        }
        if (!best)
            return NULL;
        if (backend_acquire(best))
            return best;
        /* Its state changed under us: look again. */
    }
    return NULL;
}

/* Power of two random choices: the lighter of two random candidates. */
static struct backend *pick_random(struct pool *pl, struct backend_set *set,
                                   const struct backend *avoid)
{
    enum { DRAWS = 8 };
    struct backend *two[2] = {NULL, NULL};
    int have = 0;
    for (int d = 0; d < DRAWS * 2 && have < 2 && set->n; d++) {
        struct backend *b = set->b[(random_next() >> 33) % set->n];
        if (candidate(b, avoid) && (have == 0 || b != two[0]))
            two[have++] = b;
    }
    if (have == 0)
        return pick_least_conn(pl, set, avoid); /* few up: a full scan finds them */
    struct backend *b = have == 2 && lighter(two[1], two[0]) ? two[1] : two[0];
    if (backend_acquire(b))
        return b;
    return pick_least_conn(pl, set, avoid);
}

/* Maglev: the key's slot; if that backend cannot take it, a few deterministic
 * re-hashes, then a scan. Keys of backends that are up never move. */
static struct backend *pick_source_hash(struct pool *pl, struct backend_set *set,
                                        const struct backend *avoid, uint64_t key)
{
    enum { REHASHES = 8 };
    if (!set->maglev)
        return NULL;
    uint64_t k = key;
    for (int i = 0; i <= REHASHES; i++) {
        uint32_t idx = set->maglev[k % set->maglev_size];
        if (idx != MAGLEV_EMPTY) {
            struct backend *b = set->b[idx];
            if (candidate(b, avoid) && backend_acquire(b))
                return b;
        }
        k = maglev_hash(&k, sizeof(k), (uint64_t)i + 1);
    }
    return pick_least_conn(pl, set, avoid);
}

void pool_session_begin(struct pool *pl)
{
    atomic_fetch_add_explicit(&pl->sessions, 1, memory_order_relaxed);
}

void pool_session_end(struct pool *pl)
{
    atomic_fetch_sub_explicit(&pl->sessions, 1, memory_order_release);
}

struct backend *pool_pick(struct pool *pl, const struct backend *avoid, uint64_t client_key)
{
    /* A session that started before a reload changed its pool's settings
     * keeps them, but picks from the pool's current backends. */
    for (struct pool *next; (next = atomic_load_explicit(&pl->successor, memory_order_acquire));)
        pl = next;
    struct backend_set *set = pool_current(pl);
    struct backend *b;
    switch (pl->balance) {
    case CFG_POOL_LEAST_CONN:
        b = pick_least_conn(pl, set, avoid);
        break;
    case CFG_POOL_RANDOM:
        b = pick_random(pl, set, avoid);
        break;
    case CFG_POOL_SOURCE_HASH:
        b = pick_source_hash(pl, set, avoid, client_key);
        break;
    case CFG_POOL_ROUND_ROBIN:
    default:
        b = pick_round_robin(pl, set, avoid);
        break;
    }
    /* Retrying and nothing else is up: the one that just failed, once more. */
    if (!b && avoid && backend_pickable(avoid) && backend_acquire((struct backend *)avoid))
        b = (struct backend *)avoid;
    return b;
}

/* Passive evidence: real sessions' connects, counted apart from the active
 * checks' streaks. A successful connect only clears its own run: a backend
 * can accept TCP and still fail its checks' send/expect. */
static void note_connect(struct pool *pl, struct backend *b, int ok)
{
    if (ok) {
        /* Cheap on the data path: only write when there is something to reset. */
        if (atomic_load_explicit(&b->consecutive_connect_failures, memory_order_relaxed))
            atomic_store_explicit(&b->consecutive_connect_failures, 0, memory_order_relaxed);
        return;
    }
    unsigned f = atomic_fetch_add(&b->consecutive_connect_failures, 1) + 1;
    if (pl->health_check.enabled) {
        /* A dead backend leaves rotation before its next check. */
        if (f >= pl->health_check.fall)
            backend_go_down(b, pl->name, "connects fail");
        return;
    }
    if (!pl->max_fails)
        return;
    /* Passive only: max_fails within fail_window_ms (health_tick ends it). */
    uint64_t now = clock_mono_ms();
    uint64_t start = atomic_load(&b->window_start_ms);
    if (now - start > pl->fail_window_ms) {
        atomic_store(&b->window_start_ms, now);
        atomic_store(&b->window_fails, 0);
    }
    if (atomic_fetch_add(&b->window_fails, 1) + 1 >= pl->max_fails &&
        atomic_load(&b->state) == BACKEND_UP) {
        atomic_store(&b->down_until_ms, now + pl->fail_window_ms);
        backend_go_down(b, pl->name, "connect failures reached max_fails");
    }
}

void pool_done(struct pool *pl, struct backend *b, enum pool_outcome outcome)
{
    switch (outcome) {
    case POOL_CONNECTED:
        note_connect(pl, b, 1);
        return; /* the session relays on it: the slot stays until POOL_FINISHED */
    case POOL_REFUSED:
    case POOL_TIMEOUT:
        backend_release(b);
        atomic_fetch_add_explicit(&b->connect_failures, 1, memory_order_relaxed);
        note_connect(pl, b, 0);
        return;
    case POOL_LOCAL_ERROR: /* no fd, no memory here: another backend would fare no better */
    case POOL_FINISHED:
        backend_release(b);
        return;
    }
}

enum pool_outcome pool_dial_outcome(int err)
{
    if (err == 0)
        return POOL_CONNECTED;
    if (sock_local_error(err))
        return POOL_LOCAL_ERROR;
    return err == -ETIMEDOUT ? POOL_TIMEOUT : POOL_REFUSED;
}

uint64_t pool_client_key(const struct pool *pl, const struct sockaddr *sa)
{
    if (pl->balance != CFG_POOL_SOURCE_HASH)
        return 0;
    if (sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)sa;
        return maglev_hash(&s6->sin6_addr, sizeof(s6->sin6_addr), 0);
    }
    const struct sockaddr_in *s4 = (const struct sockaddr_in *)sa;
    return maglev_hash(&s4->sin_addr, sizeof(s4->sin_addr), 0);
}
