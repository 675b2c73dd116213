/* proxy/backend.h — a backend's runtime state: addresses, weight, operator and
 * health state, counters, and its state changes (the operator's drain, enable,
 * disable; health's up and down). Shared by every sub-reactor and the admin thread: state, weight
 * and counters are atomics, so a change is seen at the very next pick. Runtime
 * state is kept apart from the config snapshot it came from (ARCHITECTURE.md). */
#pragma once

#include <stdatomic.h>
#include <stdint.h>

#include "config/config.h"

enum backend_state {
    BACKEND_UP,       /* picked for new sessions */
    BACKEND_DOWN,     /* failed its health checks */
    BACKEND_DRAINING, /* not picked; its sessions run on */
    BACKEND_DRAINED,  /* draining and no session left (derived, see backend_state_now) */
    BACKEND_DISABLED, /* maintenance: not picked, not checked */
};

struct health_check;
struct backend_latency;

/* Per-poller slots of a backend's latency blocks (proxy/backend_latency.h):
 * poller ids 0..256, the main reactor and up to 256 sub-reactors, config's
 * limit on "pollers". */
#define BACKEND_LATENCY_SLOTS 257

struct backend {
    char *name;    /* owned */
    char *address; /* owned: as configured */
    /* What address resolves to now, all of a host name's: dials try them in
     * turn. An immutable list swapped whole when DNS changes it
     * (backend_edit_addrs) and freed after a quiesce, so a dial reads it with
     * one acquire load (backend_addrs) and no lock. Owned; n may be 0 until
     * a name resolved at start. */
    _Atomic(struct cfg_addrs *) addrs;
    atomic_uint weight;
    /* 1 once the operator set the weight through the API: a reload then
     * keeps it and reports the config's weight as not applied. */
    atomic_int weight_from_api;
    atomic_int state; /* enum backend_state, never BACKEND_DRAINED itself */
    /* Monotonic ms after which sub-reactors close this backend's remaining
     * sessions (drain deadline, disable with close); 0: never. */
    atomic_uint_fast64_t close_at_ms;
    int64_t drain_started_unix_ms; /* wall clock, for display; admin thread only */
    int64_t drain_deadline_unix_ms;
    /* Counters, named as the operator reads them. "in" is the client→backend
     * direction, "out" backend→client, as HAProxy's bin/bout. */
    atomic_uint_fast64_t active_connections; /* sessions holding a slot (see pool_pick) */
    atomic_uint_fast64_t total_connections;  /* slots ever taken: sessions sent its way */
    atomic_uint_fast64_t connect_failures;
    atomic_uint_fast64_t bytes_in;
    atomic_uint_fast64_t bytes_out;
    atomic_uint_fast64_t drain_forced; /* sessions closed by a deadline or disable+close */
    /* Set once when the backend leaves its pool (reload, DNS): it drains and
     * is removed when its last session ends (backend_edit_reap); it cannot be
     * enabled again. */
    atomic_int retired;
    /* Health (proxy/health.c): written by its checker's poller and by any
     * sub-reactor reporting a connect result. */
    atomic_int healthy; /* 1 passing, 0 failing; starts passing */
    /* Active checks' streaks: written by checks only (rise, fall). */
    atomic_uint consecutive_failures;
    atomic_uint consecutive_successes;
    /* Sessions' connects in a row that failed; a successful connect clears
     * it, and only it. Counts toward fall too (with active checks). */
    atomic_uint consecutive_connect_failures;
    atomic_uint_fast64_t checks_total;
    atomic_uint_fast64_t checks_failed;
    atomic_uint_fast64_t last_check_latency_us;
    atomic_int last_check_result;       /* enum health_result */
    atomic_uint_fast64_t down_until_ms; /* passive down (max_fails): when it comes back */
    atomic_uint_fast64_t window_start_ms;
    atomic_uint window_fails;
    struct health_check *hc; /* owned: the active checker, NULL without one */
    /* Owned: each made and written by the poller of its index only, NULL
     * until that poller records (proxy/backend_latency.h). */
    _Atomic(struct backend_latency *) latency[BACKEND_LATENCY_SLOTS];
};

/* Results of the operator's state changes. */
enum backend_change {
    BACKEND_CHANGED,
    BACKEND_UNCHANGED, /* already in the asked state: nothing to do */
    BACKEND_REFUSED,   /* not allowed from the current state */
};

const char *backend_state_name(enum backend_state s);

struct backend *backend_new(const char *name, const char *address, const struct cfg_addrs *addrs,
                            unsigned weight);
void backend_free(struct backend *b);

/* The state as the operator reads it: draining with no session left is drained. */
enum backend_state backend_state_now(const struct backend *b);

/* The current address list: valid until the caller's poller returns to its
 * loop (a sub-reactor) or while it holds the runtime's control lock. */
static inline const struct cfg_addrs *backend_addrs(const struct backend *b)
{
    return atomic_load_explicit(&((struct backend *)b)->addrs, memory_order_acquire);
}

/* Installs addrs (taking it) and returns the previous list, which the caller
 * frees once no sub-reactor can still read it (backend_edit_addrs). */
struct cfg_addrs *backend_swap_addrs(struct backend *b, struct cfg_addrs *addrs);

static inline int backend_pickable(const struct backend *b)
{
    return atomic_load_explicit(&b->state, memory_order_relaxed) == BACKEND_UP &&
           atomic_load_explicit(&b->weight, memory_order_relaxed) > 0;
}

/* Takes an active_connections slot if the backend is still up. The increment
 * comes before the state check (both sequentially consistent), so a drain
 * that reads 0 sessions after setting draining can never be joined by a
 * session that picked the backend just before. 1 on success. */
int backend_acquire(struct backend *b);
void backend_release(struct backend *b);

/* Health transitions, from active checks (proxy/health.c) and from sessions'
 * connect results (pool_done): store `healthy`, then move up<->down only, by
 * CAS, so an operator state is never overwritten (backend_enable re-reads
 * `healthy` after its own CAS). Idempotent: callers re-apply them on every
 * result past a threshold, which puts right a state that disagrees with
 * health. Each logs a change with the pool's name and why. Any thread. */
void backend_go_down(struct backend *b, const char *pool, const char *why);
void backend_go_up(struct backend *b, const char *pool, const char *why);

/* Starts a non-blocking connect to address *i of b or, when that fails at
 * once, to the ones after it. Returns 0 with *fd set and *i the address
 * being tried; otherwise the last -errno. Stops early on a shortage of this
 * host (fds, buffers, memory), which another address would not avoid. */
int backend_dial(const struct backend *b, unsigned *i, int *fd);

/* Operator changes; any thread. deadline_ms 0: no deadline. */
enum backend_change backend_drain(struct backend *b, uint64_t deadline_ms);
enum backend_change backend_enable(struct backend *b); /* REFUSED when down or retired */
enum backend_change backend_disable(struct backend *b, int close_sessions);
