/* proxy/backend.c — backend lifetime, slots, the dial over its addresses,
 * operator state changes and health's up/down transitions (proxy/backend.h). */
#define _GNU_SOURCE
#include "backend.h"

#include "log.h"
#include "reactor/clock.h"
#include "sock.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static int64_t unix_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

const char *backend_state_name(enum backend_state s)
{
    static const char *const names[] = {"up", "down", "draining", "drained", "disabled"};
    return (unsigned)s < sizeof(names) / sizeof(names[0]) ? names[s] : "unknown";
}

struct backend *backend_new(const char *name, const char *address, const struct cfg_addrs *addrs,
                            unsigned weight)
{
    struct backend *b = calloc(1, sizeof(*b));
    if (!b)
        return NULL;
    b->name = strdup(name);
    b->address = strdup(address);
    struct cfg_addrs *list = malloc(sizeof(*list));
    atomic_init(&b->addrs, list);
    if (!b->name || !b->address || !list) {
        backend_free(b);
        return NULL;
    }
    *list = *addrs;
    atomic_init(&b->weight, weight);
    atomic_init(&b->state, BACKEND_UP);
    atomic_init(&b->healthy, 1);
    return b;
}

void backend_free(struct backend *b)
{
    if (!b)
        return;
    free(b->name);
    free(b->address);
    for (unsigned i = 0; i < BACKEND_LATENCY_SLOTS; i++)
        free(atomic_load_explicit(&b->latency[i], memory_order_relaxed));
    free(atomic_load(&b->addrs));
    free(b);
}

enum backend_state backend_state_now(const struct backend *b)
{
    enum backend_state s = atomic_load(&b->state);
    if (s == BACKEND_DRAINING && atomic_load(&b->active_connections) == 0)
        return BACKEND_DRAINED;
    return s;
}

int backend_acquire(struct backend *b)
{
    atomic_fetch_add(&b->active_connections, 1);
    if (atomic_load(&b->state) == BACKEND_UP) {
        atomic_fetch_add_explicit(&b->total_connections, 1, memory_order_relaxed);
        return 1;
    }
    atomic_fetch_sub(&b->active_connections, 1);
    return 0;
}

void backend_release(struct backend *b)
{
    atomic_fetch_sub_explicit(&b->active_connections, 1, memory_order_release);
}

struct cfg_addrs *backend_swap_addrs(struct backend *b, struct cfg_addrs *addrs)
{
    return atomic_exchange_explicit(&b->addrs, addrs, memory_order_acq_rel);
}

int backend_dial(const struct backend *b, unsigned *i, int *fd)
{
    int err = -EDESTADDRREQ; /* no address left */
    /* One load: a list swapped meanwhile is freed only after this poller's
     * iteration, and *i past a shorter new list simply ends the walk. */
    const struct cfg_addrs *as = backend_addrs(b);
    for (; *i < as->n; ++*i) {
        const struct cfg_sockaddr *a = &as->a[*i];
        err = sock_dial((const struct sockaddr *)&a->ss, a->len, fd);
        /* Not on EADDRNOTAVAIL: a family this host cannot reach (::1 with
         * IPv6 off) says nothing of the name's next address. */
        if (!err || sock_shortage(err))
            break;
    }
    return err;
}

enum backend_change backend_drain(struct backend *b, uint64_t deadline_ms)
{
    int s = atomic_load(&b->state);
    if (s == BACKEND_DRAINING)
        return BACKEND_UNCHANGED;
    if (s == BACKEND_DISABLED)
        return BACKEND_REFUSED;
    b->drain_started_unix_ms = unix_ms();
    b->drain_deadline_unix_ms = deadline_ms ? b->drain_started_unix_ms + (int64_t)deadline_ms : 0;
    atomic_store(&b->close_at_ms, deadline_ms ? clock_mono_ms() + deadline_ms : 0);
    atomic_store(&b->state, BACKEND_DRAINING);
    return BACKEND_CHANGED;
}

void backend_go_down(struct backend *b, const char *pool, const char *why)
{
    int up = BACKEND_UP;
    atomic_store(&b->healthy, 0);
    /* Whatever took it down, coming back takes `rise` fresh passing checks. */
    atomic_store_explicit(&b->consecutive_successes, 0, memory_order_relaxed);
    if (atomic_compare_exchange_strong(&b->state, &up, BACKEND_DOWN))
        log_warn("pool %s backend %s is down: %s", pool, b->name, why);
}

void backend_go_up(struct backend *b, const char *pool, const char *why)
{
    int down = BACKEND_DOWN;
    atomic_store(&b->healthy, 1);
    if (atomic_compare_exchange_strong(&b->state, &down, BACKEND_UP)) {
        /* Old connect failures must not take it down again at the next one. */
        atomic_store_explicit(&b->consecutive_connect_failures, 0, memory_order_relaxed);
        log_info("pool %s backend %s is up: %s", pool, b->name, why);
    }
}

/* Health checks move up<->down only, each storing `healthy` before its CAS
 * on state; so after a store of up or down here, reading `healthy` again
 * (both sequentially consistent) catches any check that ran in between and
 * left the state alone because it was still an operator state. Loops until
 * state and health agree or the state is an operator state again. */
static void follow_health(struct backend *b)
{
    for (;;) {
        int want = atomic_load(&b->healthy) ? BACKEND_UP : BACKEND_DOWN;
        int s = atomic_load(&b->state);
        if ((s != BACKEND_UP && s != BACKEND_DOWN) || s == want)
            return;
        atomic_compare_exchange_strong(&b->state, &s, want);
    }
}

enum backend_change backend_enable(struct backend *b)
{
    int s = atomic_load(&b->state), to;
    if (atomic_load(&b->retired))
        return BACKEND_REFUSED; /* leaving its pool: it drains until removed */
    do {
        if (s == BACKEND_UP)
            return BACKEND_UNCHANGED;
        if (s == BACKEND_DOWN)
            return BACKEND_REFUSED; /* health checks bring a down backend back */
        /* Back to what its health says: an operator state never hides a failing check. */
        to = atomic_load(&b->healthy) ? BACKEND_UP : BACKEND_DOWN;
    } while (!atomic_compare_exchange_weak(&b->state, &s, to));
    atomic_store(&b->close_at_ms, 0);
    b->drain_started_unix_ms = b->drain_deadline_unix_ms = 0;
    /* A check that failed between the load of healthy and the CAS saw an
     * operator state and did not touch it: without this, the backend would
     * stay up while failing, and no later check would take it down. */
    follow_health(b);
    return BACKEND_CHANGED;
}

enum backend_change backend_disable(struct backend *b, int close_sessions)
{
    int s = atomic_load(&b->state);
    if (s == BACKEND_DISABLED && !close_sessions)
        return BACKEND_UNCHANGED;
    b->drain_started_unix_ms = b->drain_deadline_unix_ms = 0;
    atomic_store(&b->close_at_ms, close_sessions ? clock_mono_ms() : 0);
    atomic_store(&b->state, BACKEND_DISABLED);
    return BACKEND_CHANGED;
}
