/* proxy/listener.h — a listening address and its sockets: bounded accept
 * batches, the per-listener connection limit, a pause on fd exhaustion
 * (EMFILE/ENFILE) instead of a busy loop, and where new sessions go.
 * accept "main" (default): one socket on the main reactor, each accepted fd
 * handed to a sub-reactor picked by the poll manager. accept "reuseport":
 * one SO_REUSEPORT socket per sub-reactor, the kernel spreads connections and
 * each sub-reactor accepts its own: no cross-thread hand-off per connection.
 * The listener knows no session: it hands each accepted fd to the callback
 * it was given (libuv's uv_connection_cb), with the poller that accepted it. */
#pragma once

#include <stdatomic.h>

#include "config/config.h"
#include "reactor/poller.h"

struct pool;
struct pollmgr;
struct listener;

/* Called on the poller p that accepted fd (the main reactor, or with
 * "reuseport" the sub-reactor that owns the socket) from peer (the client's
 * address, as accept4 gave it). Takes ownership of fd: returns 0, or -errno
 * with fd already closed (the listener counts a refusal). */
typedef int (*listener_conn_cb)(struct listener *l, struct poller *p, int fd,
                                const struct sockaddr *peer, void *data);

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
    int reuseport;
    struct listen_sock *socks; /* owned: 1, or one per sub-reactor with reuseport */
    size_t nsocks;
    /* Sessions from this listener still open; incremented where accepted,
     * decremented by the sub-reactor that ends the session (atomic RMW). */
    atomic_uint_fast64_t active_connections;
    atomic_uint_fast64_t accepted; /* atomic RMW: several accepting threads with reuseport */
    atomic_uint_fast64_t refused;
};

/* pm gives the pollers that own the sockets: its main reactor, or with
 * reuseport one socket per sub-reactor. */
int listener_init(struct listener *l, const struct cfg_listener *cfg, struct pool *pool,
                  struct pollmgr *pm, int reuseport, listener_conn_cb on_conn, void *conn_data);
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
