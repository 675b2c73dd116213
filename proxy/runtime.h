/* proxy/runtime.h — the running proxy: the config snapshot it was built from,
 * the poll manager, pools, listeners and one worker per poller (the proxy's
 * per-poller context: its sessions and counters). main.c drives it:
 * create (binds) → start → stop_listening → wait_idle → destroy. */
#pragma once

#include <stdatomic.h>
#include <stddef.h>

#include "config/config.h"
#include "listener.h"
#include "pipe_cache.h"
#include "pool.h"
#include "reactor/pollmgr.h"

struct session;

/* Per-poller proxy counters: written by the owning poller thread only (relaxed
 * load + store), summed by readers. Names are the ones the stats API uses. */
struct worker_counters {
    atomic_uint_fast64_t active_connections; /* sessions open on this poller */
    atomic_uint_fast64_t total_connections;  /* sessions ever adopted */
    atomic_uint_fast64_t accepted;           /* main: accept4() successes */
    atomic_uint_fast64_t refused;            /* main: closed at once for a limit */
    atomic_uint_fast64_t dialed;             /* upstream connects started */
    atomic_uint_fast64_t connect_failures;   /* connects that failed or timed out */
    atomic_uint_fast64_t retries;            /* connects retried on another backend */
    atomic_uint_fast64_t connect_exhausted;  /* sessions closed after the retry budget */
    atomic_uint_fast64_t idle_timeouts;      /* sessions closed for idleness */
    atomic_uint_fast64_t resets;             /* sessions ended by a reset (either side) */
    atomic_uint_fast64_t bytes_in;           /* client → backend */
    atomic_uint_fast64_t bytes_out;          /* backend → client */
    atomic_uint_fast64_t memory_starved;     /* reads put off: buffer_memory_limit reached */
    atomic_uint_fast64_t local_errors;       /* dials, checks that failed here (EMFILE...) */
    atomic_uint_fast64_t pipes_in_use;       /* splice: pipes holding a direction's bytes */
    atomic_uint_fast64_t pipes_cached;       /* splice: empty pipes kept for reuse */
};

struct worker {
    struct poller *poller;     /* not owned */
    struct runtime *rt;        /* not owned */
    struct session *sessions;  /* owned: intrusive list of live sessions */
    struct timer housekeeping; /* sub-reactors: close deadlines, passive health, cache trim */
    struct session *starved;   /* not owned: sessions waiting for buffer memory */
    struct session *retrying;  /* not owned: the starved batch being retried now */
    struct timer starve_retry;
    unsigned ticks; /* housekeeping runs so far */
    struct pipe_cache pipes;
    struct worker_counters c;
};

struct runtime {
    struct config *cfg; /* owned: the snapshot this runtime was built from */
    struct pollmgr *pm; /* owned */
    struct pool *pools; /* owned array */
    size_t npools;
    struct listener *listeners; /* owned array */
    size_t nlisteners;
    struct worker *workers; /* owned: [0] main reactor, [1..] sub-reactors */
    size_t nworkers;
};

static inline void counter_add(atomic_uint_fast64_t *c, uint64_t n)
{
    atomic_store_explicit(c, atomic_load_explicit(c, memory_order_relaxed) + n,
                          memory_order_relaxed);
}
static inline void counter_sub(atomic_uint_fast64_t *c, uint64_t n)
{
    atomic_store_explicit(c, atomic_load_explicit(c, memory_order_relaxed) - n,
                          memory_order_relaxed);
}
static inline uint64_t counter_get(const atomic_uint_fast64_t *c)
{
    return atomic_load_explicit(c, memory_order_relaxed);
}

enum {
    RUNTIME_NO_LISTEN = 1u << 0, /* bind no listener (fuzzers, tools): pools and pollers only */
};

/* Takes ownership of cfg. Binds every listener unless RUNTIME_NO_LISTEN
 * (errors are logged with the listener's name and address). Returns 0 or -errno. */
int runtime_create(struct config *cfg, unsigned flags, struct runtime **out);
int runtime_start(struct runtime *rt);
/* Every poller closes the listening sockets it owns (the main reactor's, or
 * each sub-reactor's own with reuseport); returns once they are closed. */
void runtime_stop_listening(struct runtime *rt);
/* Open sessions across every sub-reactor, including ones still being handed over. */
uint64_t runtime_active_sessions(struct runtime *rt);
/* Any thread but a poller's: returns 0 once every sub-reactor has run past
 * the loop iteration it was in, so none can still read a pool's retired
 * backend set or a removed backend. -ETIMEDOUT when one did not answer within
 * timeout_ms: the caller must then keep (leak) what it meant to free. */
int runtime_quiesce(struct runtime *rt, unsigned timeout_ms);
struct pool *runtime_find_pool(struct runtime *rt, const char *name);
/* The sub-reactor that will run a new backend's health checker. */
struct poller *runtime_checker_poller(struct runtime *rt);

/* Stops the pollers, closes what is still open, frees everything. */
void runtime_destroy(struct runtime *rt);
