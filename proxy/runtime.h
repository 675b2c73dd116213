/* proxy/runtime.h — the running proxy, the composition root: the config
 * snapshot it was built from, the poll manager, pools, listeners and one
 * worker per poller (proxy/worker.h), wired together, plus the housekeeping
 * policy. main.c and admin/ drive it: create (binds) → start →
 * stop_listening → wait_idle → destroy. Nothing on the data path includes
 * this header (scripts/check-includes.sh). */
#pragma once

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#include "config/config.h"
#include "listener.h"
#include "pool.h"
#include "reactor/pollmgr.h"
#include "worker.h"

struct housekeeping;
struct resolver;

struct runtime {
    struct config *cfg; /* owned: the snapshot this runtime was built from */
    struct pollmgr *pm; /* owned */
    struct pool *pools; /* owned array */
    size_t npools;
    struct listener *listeners; /* owned array */
    size_t nlisteners;
    struct worker *workers; /* owned: [0] main reactor, [1..] sub-reactors */
    size_t nworkers;
    struct housekeeping *housekeeping; /* owned: one per worker, [0] unused (runtime.c) */
    /* The control plane's lock: every thread but the pollers that changes
     * pools' backend sets (proxy/backend_edit.h), pools or listeners, or
     * reads them (the admin's routes and views), holds it: the admin, reload,
     * DNS discovery, runtime_control_tick. Never taken on the data path. */
    pthread_mutex_t control;
    struct resolver *resolver; /* owned: DNS discovery (proxy/resolver.h); NULL without names */
};

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

/* The control lock (struct runtime's `control`). */
pthread_mutex_t *runtime_control(struct runtime *rt);
/* Control-plane housekeeping, from the main thread a few times a second:
 * takes the control lock and removes retired backends whose last session
 * ended (backend_edit_reap). */
void runtime_control_tick(struct runtime *rt);

/* Stops the pollers, closes what is still open, frees everything. */
void runtime_destroy(struct runtime *rt);
