/* proxy/backend.h — a backend's runtime state: address, weight, operator/health
 * state and counters. Shared by every sub-reactor: state and weight are read
 * with relaxed atomics at each pick, counters are atomic adds. Runtime state is
 * kept apart from the config snapshot it was built from (see ARCHITECTURE.md). */
#pragma once

#include <stdatomic.h>
#include <stdint.h>

#include "config/config.h"

enum backend_state {
    BACKEND_UP,       /* picked for new sessions */
    BACKEND_DOWN,     /* failed its health checks */
    BACKEND_DRAINING, /* not picked; its sessions run on */
    BACKEND_DRAINED,  /* draining and no session left */
    BACKEND_DISABLED, /* maintenance: not picked, not checked */
};

struct backend {
    char *name;    /* owned */
    char *address; /* owned: as configured */
    struct cfg_sockaddr addr;
    atomic_uint weight;
    atomic_int state; /* enum backend_state */
    /* Counters, named as the operator reads them. "in" is the client→backend
     * direction, "out" backend→client, as HAProxy's bin/bout. */
    atomic_uint_fast64_t active_connections;
    atomic_uint_fast64_t total_connections;
    atomic_uint_fast64_t connect_failures;
    atomic_uint_fast64_t bytes_in;
    atomic_uint_fast64_t bytes_out;
};

static inline const char *backend_state_name(enum backend_state s)
{
    static const char *const names[] = {"up", "down", "draining", "drained", "disabled"};
    return (unsigned)s < sizeof(names) / sizeof(names[0]) ? names[s] : "unknown";
}

static inline int backend_pickable(const struct backend *b)
{
    return atomic_load_explicit(&b->state, memory_order_relaxed) == BACKEND_UP &&
           atomic_load_explicit(&b->weight, memory_order_relaxed) > 0;
}
