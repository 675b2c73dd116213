/* proxy/pool.h — a pool of backends and its peer API, which sub-reactors call
 * for every new session (nginx's peer.get / peer.free): pool_pick() asks for a
 * backend, pool_done() reports what became of it. Behind the two are the
 * backends' slots (which make drains exact), their connect counters and the
 * passive health evidence; a session touches none of them itself. The pick is
 * lock-free: it loads the pool's current backend set (an immutable snapshot:
 * backends + smooth weighted round-robin schedule, nginx's sequence shape) and
 * walks the schedule from an atomic cursor, skipping backends that are not up.
 * The admin thread changes the set by building a new one, swapping the
 * pointer, and retiring the old one only after every sub-reactor has moved
 * past it (runtime_quiesce). */
#pragma once

#include <stdatomic.h>
#include <stddef.h>
#include <sys/socket.h>

#include "backend.h"
#include "config/config.h"

struct backend_set {
    size_t n;
    struct backend **b; /* owned array of borrowed backends (the pool owns them) */
    uint32_t *schedule; /* owned: indices into b, smooth WRR order (round_robin) */
    size_t schedule_len;
    uint32_t *maglev; /* owned: Maglev lookup table (source_hash), else NULL */
    uint32_t maglev_size;
};

/* DNS discovery's account of a pool's names (proxy/resolver.c): written by
 * the resolver thread and read by the admin, both under the runtime's
 * control lock. */
#define POOL_DNS_ERROR_MAX 160
struct pool_dns {
    uint64_t failures;                   /* dns_failures: resolutions that failed or timed out */
    int64_t last_resolved_unix_ms;       /* the last successful resolution; 0: none yet */
    char last_error[POOL_DNS_ERROR_MAX]; /* last_dns_error: "" when none */
};

struct pool {
    char *name; /* owned */
    enum cfg_pool_balance balance;
    enum cfg_zero_copy zero_copy;
    enum cfg_proxy_protocol proxy_protocol; /* a PROXY header first on each upstream connection */
    unsigned connect_timeout_ms;
    unsigned idle_timeout_ms;
    unsigned retries;
    unsigned buffer_high_watermark;
    unsigned buffer_low_watermark;
    unsigned maglev_table_size;
    unsigned max_fails;
    unsigned fail_window_ms;
    unsigned max_session_age_ms;          /* 0: never */
    struct cfg_health_check health_check; /* send/expect owned (copies) */
    _Atomic(struct backend_set *) set;    /* owned; current snapshot */
    atomic_uint cursor;
    /* Reload (proxy/runtime_reload.c): a pool whose settings changed is
     * replaced by a new generation that takes over its backends; the old one
     * lives on, with an empty set, for the sessions that started with its
     * settings, and forwards their picks (retries) to its successor. */
    _Atomic(struct pool *) successor; /* not owned; NULL while current */
    /* Sessions holding this pool as s->pool (session_new to the deferred
     * free): a retired generation is freed only at 0 (atomic RMW). */
    atomic_uint_fast64_t sessions;
    struct pool_dns dns;
};

int pool_init(struct pool *pl, const struct cfg_pool *cfg);
void pool_fini(struct pool *pl); /* frees the set and every backend in it */

/* What became of a pick, as its session reports it to pool_done(). */
enum pool_outcome {
    POOL_CONNECTED,   /* the connect succeeded; the slot stays with the session */
    POOL_REFUSED,     /* the backend failed the connect (refused, unreachable), every address */
    POOL_TIMEOUT,     /* no connect within connect_timeout_ms */
    POOL_LOCAL_ERROR, /* this host failed the dial (sock_local_error): not the backend's fault */
    POOL_FINISHED,    /* the session ended (or gave up) while holding the slot */
};

/* Any thread. A backend that is up and has weight, chosen by the pool's
 * balance (client_key: pool_client_key() of the client), other than `avoid`
 * when another choice exists (retries); NULL when none is up. The caller
 * holds one active_connections slot on the returned backend until it reports
 * an outcome other than POOL_CONNECTED to pool_done(). */
struct backend *pool_pick(struct pool *pl, const struct backend *avoid, uint64_t client_key);
/* Sessions call these around their life with pl as s->pool (any thread). */
void pool_session_begin(struct pool *pl);
void pool_session_end(struct pool *pl);

/* Any thread: the outcome of a pick of b. Every outcome but POOL_CONNECTED
 * gives the slot back. POOL_REFUSED and POOL_TIMEOUT are failures of the
 * backend: its connect_failures, and passive health (toward `fall` with
 * active checks, else `max_fails` within `fail_window_ms`); POOL_CONNECTED
 * clears the sessions' run of failures (consecutive_connect_failures) and
 * nothing else; POOL_LOCAL_ERROR and POOL_FINISHED count nothing. The
 * caller's own counters (per poller) are its business. */
void pool_done(struct pool *pl, struct backend *b, enum pool_outcome outcome);

/* The outcome of a dial that ended with err (-errno; 0: connected). */
enum pool_outcome pool_dial_outcome(int err);

/* At accept (any poller that accepts): the key a pick of this pool hashes for
 * the client at sa. With source_hash, its IP address (not its port), so one
 * client host keeps landing on one backend; 0 with any other balance. */
uint64_t pool_client_key(const struct pool *pl, const struct sockaddr *sa);

/* Any thread: the current set (pool_pick, sub-reactors' housekeeping, the
 * admin's views and routes, the runtime's start and stop). A reader may use
 * it until the next quiesce has passed it: a sub-reactor until it returns to
 * its loop; the admin thread, the only one that replaces sets (serialised by
 * its caller), until it replaces it; other threads only while no set can be
 * replaced (before the admin starts, after it stops). */
struct backend_set *pool_current(struct pool *pl);
/* The backend named `name` in the current set, or NULL; pool_current's rule.
 * The admin's routes look backends up by name. */
struct backend *pool_find(struct pool *pl, const char *name);

/* Admin thread: installs a new set made of `list` (weights read now) and
 * returns the previous one, which the caller frees with backend_set_free()
 * once no sub-reactor can still be reading it. NULL on allocation failure
 * (nothing changed). */
struct backend_set *pool_replace(struct pool *pl, struct backend **list, size_t n);
/* pool_replace in two steps, for callers that must do something that can fail
 * between building and installing (the admin posts a health checker's start
 * or stop): pool_build_set() may fail (NULL: out of memory; free an unused set
 * with backend_set_free()), pool_install_set() cannot and returns the previous
 * set. Admin thread. */
struct backend_set *pool_build_set(const struct pool *pl, struct backend **list, size_t n);
struct backend_set *pool_install_set(struct pool *pl, struct backend_set *set);
void backend_set_free(struct backend_set *set);

/* Fills out[0..len) with the smooth WRR order for the given weights and
 * returns the length used (sum of weights after dividing by their gcd, capped
 * at cap). Exposed for tests. */
size_t pool_smooth_wrr(const unsigned *weights, size_t n, uint32_t *out, size_t cap);
