/* proxy/runtime.h — the running proxy, the composition root: the config
 * snapshot it was built from, the poll manager, pools, listeners and one
 * worker per poller (proxy/worker.h), wired together, plus the housekeeping
 * policy. main.c and admin/ drive it: create (binds) → start →
 * stop_listening → wait_idle → destroy. Nothing on the data path includes
 * this header (scripts/check-includes.sh). */
#pragma once

#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "config/config.h"
#include "listener.h"
#include "pool.h"
#include "reactor/pollmgr.h"
#include "worker.h"

struct connlog;
struct housekeeping;
struct retired_pool;

/* Reload's counters (README "Reload"), under the control lock. */
struct runtime_reloads {
    uint64_t generation;     /* config_generation: 1 at start, +1 per applied reload */
    uint64_t reloads;        /* reloads applied */
    uint64_t failures;       /* reload_failures: rejected whole (invalid config, bind) */
    int64_t last_at_unix_ms; /* last_reload_at: the last attempt, applied or not; 0 never */
    char *last_error;        /* owned; NULL when the last attempt was applied */
};

/* What a reload did (runtime_reload), for the log and the API's answer:
 * each list one line per item. */
struct reload_report {
    char **changed; /* owned: "listener x: added", ... */
    size_t nchanged;
    char **not_applied; /* owned: "pollers: needs a restart", ... */
    size_t nnot_applied;
    char *errors; /* owned: why it was rejected, one error per line; NULL when applied */
    uint64_t generation;
};
struct resolver;

struct runtime {
    /* owned: the running config (a reload replaces it). Sessions, pools and
     * listeners copy what they need; nothing points into it but the admin
     * and main.c, which keep boot_cfg's. */
    struct config *cfg;
    struct config *boot_cfg; /* owned: the config at start (== cfg until a reload) */
    struct pollmgr *pm;      /* owned */
    /* Current pools and listeners: owned arrays of owned structs, whose
     * addresses never change (sessions hold s->pool, s->listener). A reload
     * replaces the arrays; what leaves them is retired below until no
     * session holds it. Read under the control lock; sub-reactors read their
     * own copy of the pool list (struct housekeeping). */
    struct pool **pools;
    size_t npools;
    struct listener **listeners;
    size_t nlisteners;
    struct retired_pool *retired_pools; /* owned array (runtime_reload.c) */
    size_t nretired_pools;
    struct listener **retired_listeners; /* owned: closed, with sessions left */
    size_t nretired_listeners;
    struct runtime_reloads reload;
    int started;  /* runtime_start ran: the pollers answer broadcasts (reloads may begin) */
    int stopping; /* runtime_stop_listening ran: no more reloads */
    struct worker *workers; /* owned: [0] main reactor, [1..] sub-reactors */
    size_t nworkers;
    struct housekeeping *housekeeping; /* owned: one per worker, [0] unused (runtime.c) */
    /* The control plane's lock: every thread but the pollers that changes
     * pools' backend sets (proxy/backend_edit.h), pools or listeners, or
     * reads them (the admin's routes and views), holds it: the admin, reload,
     * DNS discovery, runtime_control_tick. Never taken on the data path. */
    pthread_mutex_t control;
    atomic_uint shed_rate_per_s; /* forced closes per second, all sub-reactors; 0: at once */
    atomic_int shedding;         /* runtime_shed(): the shutdown grace is over */
    struct connlog *log;         /* owned: the connection log; NULL when log.connections is off */
    struct resolver *resolver;   /* owned: DNS discovery (proxy/resolver.h); NULL without names */
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
struct listener *runtime_find_listener(struct runtime *rt, const char *name);
/* The sub-reactor that will run a new backend's health checker. */
struct poller *runtime_checker_poller(struct runtime *rt);

/* The shutdown grace is over: from now on every sub-reactor closes its
 * sessions (a reset to both sides, counted as shutdown_forced) at its share
 * of shed_rate_per_s; runtime_destroy closes whatever is left at once. */
void runtime_shed(struct runtime *rt);
/* The control lock (struct runtime's `control`). */
pthread_mutex_t *runtime_control(struct runtime *rt);
/* Control-plane housekeeping, from the main thread a few times a second:
 * takes the control lock and removes retired backends whose last session
 * ended (backend_edit_reap). */
void runtime_control_tick(struct runtime *rt);
/* Any thread (the signal loop, on SIGUSR1): the connection log reopens its
 * file (logrotate). Nothing when the log is off or goes to stdout. */
void runtime_reopen_log(struct runtime *rt);

/* Control lock held. Applies new_cfg (taken, freed or kept) in-process
 * (README "Reload"): listeners, pools and backends matched by name, state
 * kept; what cannot apply in-process is named in report->not_applied. 0, or
 * -errno with nothing changed (a listener that cannot bind: report->errors). */
int runtime_reload(struct runtime *rt, struct config *new_cfg, struct reload_report *report);
/* Takes the control lock, re-reads rt->cfg->path and applies it; logs the
 * outcome and counts it (rt->reload). 0, -EINVAL for an invalid config
 * (report->errors: the JSON paths), other -errno as runtime_reload. */
int runtime_reload_file(struct runtime *rt, struct reload_report *report);
/* Same, with the control lock already held (the admin's route). */
int runtime_reload_file_locked(struct runtime *rt, struct reload_report *report);
void reload_report_free(struct reload_report *report);

/* Between runtime.c and runtime_reload.c (the runtime module's two files),
 * control lock held: frees retired pools and listeners no session holds any
 * more (after a quiesce); frees every retired one (runtime_destroy, pollers
 * stopped); hands each sub-reactor the current pool list, -errno when one
 * did not take it (the caller must then keep the old list). */
void runtime_retired_reap(struct runtime *rt);
void runtime_retired_free_all(struct runtime *rt);
int runtime_publish_pools(struct runtime *rt);

/* Stops the pollers, closes what is still open (their lines reach the
 * connection log), frees everything. */
void runtime_destroy(struct runtime *rt);
