/* proxy/listener.h — a listening address and its sockets: bounded accept
 * batches, the per-listener connection limit, a pause on fd exhaustion
 * (EMFILE/ENFILE) instead of a busy loop, and where new sessions go.
 * accept "main" (default): one socket on the main reactor, each accepted fd
 * handed to a sub-reactor picked by the poll manager. accept "reuseport":
 * one SO_REUSEPORT socket per sub-reactor, the kernel spreads connections and
 * each sub-reactor accepts its own: no cross-thread hand-off per connection.
 * accept "shared": one socket that every sub-reactor watches with
 * EPOLLEXCLUSIVE; the kernel wakes one sub-reactor that is waiting (an idle
 * one: a busy one is not in its wait), which accepts and keeps the
 * connection. One accept queue, so no connection waits behind a busy thread
 * while another idles (reuseport's hash can do that), and no hand-off.
 * The listener knows no session: it hands each accepted fd to the callback
 * it was given (libuv's uv_connection_cb), with the poller that accepted it. */
#pragma once

#include <stdatomic.h>
#include <stdint.h>

#include "config/config.h"
#include "reactor/poller.h"
#include "source_limit.h"

struct pool;
struct pollmgr;
struct listener;

/* What a listener reads from each client before it dials (the session's
 * inspect phase, proxy/inspect.c), in the order it is read: a bit each in
 * listener.inspect, and an error counter each. */
enum listener_inspect {
    LISTENER_INSPECT_PROXY_PROTOCOL, /* accept_proxy_protocol: a PROXY v1/v2 header */
    LISTENER_INSPECT_SNI,            /* routes: a TLS ClientHello (session_sni.c) */
    LISTENER_INSPECT_COUNT
};

/* One of a listener's "routes" at run time: where it sends, what it took. */
struct listener_route {
    /* not owned; a reload re-points it at the pool's new struct (atomic:
     * sub-reactors read it while the control thread writes) */
    _Atomic(struct pool *) pool;
    /* Connections the route took; atomic RMW: every sub-reactor routes. */
    atomic_uint_fast64_t sessions;
};

/* Called on the poller p that accepted fd (the main reactor, or with
 * "reuseport" or "shared" the sub-reactor that accepted it) from peer (the client's
 * address, as accept4 gave it). Takes ownership of fd and, on success, of
 * source: the connection's place in l->sources (SOURCE_NONE when
 * untracked), given back with source_limit_release when it ends. Returns 0,
 * or -errno with fd already closed (the listener counts a refusal and gives
 * source back). */
typedef int (*listener_conn_cb)(struct listener *l, struct poller *p, int fd,
                                const struct sockaddr *peer, uint32_t source, void *data);

struct listen_sock {
    struct listener *l; /* not owned: its listener */
    struct poller *p;   /* not owned: the poller that accepts on it */
    int fd;             /* -1 when closed */
    struct fdop op;
    struct timer pause;
};

struct listener {
    char *name;   /* owned */
    char *listen; /* owned: as configured */
    struct cfg_sockaddr addr;
    /* A reload changes these for new connections (atomic: the accepting
     * pollers read them while the control thread writes). */
    _Atomic(struct pool *) pool; /* not owned */
    listener_conn_cb on_conn;
    void *conn_data;                  /* not owned: on_conn's data */
    _Atomic unsigned max_connections; /* 0: unlimited */
    unsigned backlog;
    enum cfg_accept accept;      /* where it accepts (listener_on_subs) */
    uint8_t inspect;             /* 1u << enum listener_inspect; 0 (most): dial at once */
    unsigned inspect_timeout_ms; /* the inspect phase's deadline, from adoption */
    /* owned: 1 with "main"; with "reuseport" one socket per sub-reactor; with
     * "shared" one per sub-reactor too, each a dup() of the first (so each
     * closes its own, and the socket lives until the last is closed) */
    struct listen_sock *socks;
    size_t nsocks;
    /* Sessions from this listener still open; incremented where accepted,
     * decremented by the sub-reactor that ends the session (atomic RMW). */
    atomic_uint_fast64_t active_connections;
    atomic_uint_fast64_t accepted; /* atomic RMW: several accepting threads with reuseport */
    atomic_uint_fast64_t refused;
    /* Sessions closed in the inspect phase: by the inspector that failed, or
     * was still waiting for bytes at the deadline or the client's EOF
     * (inspect_errors[LISTENER_INSPECT_PROXY_PROTOCOL] is the stats'
     * proxy_protocol_errors); and of those, the ones the deadline closed. */
    atomic_uint_fast64_t inspect_errors[LISTENER_INSPECT_COUNT];
    atomic_uint_fast64_t inspect_timeouts;
    /* "routes" (README "SNI and ALPN routing"): the config's routes (a copy,
     * owned, strings too: route_match reads them), and by the same index
     * their pools and counts (owned); 0 routes: the listener has a pool. */
    struct cfg_route *routes;
    struct listener_route *route_to;
    size_t nroutes;
    atomic_uint_fast64_t no_route;  /* a ClientHello no route took, and no default */
    atomic_uint_fast64_t bad_hello; /* first bytes that are no whole, well-formed ClientHello */
    /* Per-source limits (NULL: none): decided at accept, before on_conn. */
    struct source_limit *sources; /* owned */
    int source_reset;             /* refuse with a RST */
    atomic_uint_fast64_t refused_source_limit;
};

/* pm gives the pollers that own the sockets: its main reactor, or with
 * "reuseport" and "shared" one socket (or dup) per sub-reactor. */
int listener_init(struct listener *l, const struct cfg_listener *cfg, struct pool *pool,
                  struct pollmgr *pm, enum cfg_accept accept, listener_conn_cb on_conn,
                  void *conn_data);
/* The sub-reactors accept (and keep what they accept): "reuseport", "shared". */
static inline int listener_on_subs(const struct listener *l)
{
    return l->accept != CFG_ACCEPT_MAIN;
}
/* listener_routes.c: copies cfg's routes, each with its pool from pools (the
 * runtime's, by cfg_route.pool_index), and makes the listener inspect the
 * ClientHello. 0 or -ENOMEM; nothing to do without routes. */
int listener_set_routes(struct listener *l, const struct cfg_listener *cfg,
                        struct pool *const *pools);
void listener_free_routes(struct listener *l);
/* Binds and listens (every socket); -errno on failure (the caller logs it). */
int listener_open(struct listener *l);
int listener_bound(const struct listener *l);
/* Registers each socket on its poller: the main reactor, or sub-reactor i
 * for socket i. Before the pollers run. */
int listener_start(struct listener *l);
/* On p's thread (a listener added by a reload while the pollers run):
 * registers the sockets of l that p owns. */
int listener_start_on(struct listener *l, struct poller *p);
/* Control thread: a new accept backlog for every socket (listen() again);
 * -errno from the first that refused. */
int listener_set_backlog(struct listener *l, unsigned backlog);
/* On the thread that owns p (or after it stopped): closes l's sockets there. */
void listener_close_on(struct listener *l, struct poller *p);
void listener_fini(struct listener *l);
