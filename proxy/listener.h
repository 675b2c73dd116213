/* proxy/listener.h — a listening socket on the main reactor: bounded accept
 * batches, the per-listener connection limit, a pause on fd exhaustion
 * (EMFILE/ENFILE) instead of a busy loop, and the hand-off of each accepted
 * fd to a sub-reactor's session. */
#pragma once

#include <stdatomic.h>

#include "config/config.h"
#include "reactor/poller.h"

struct pool;
struct runtime;

struct listener {
    char *name;   /* owned */
    char *listen; /* owned: as configured */
    struct cfg_sockaddr addr;
    struct pool *pool;        /* not owned */
    struct runtime *rt;       /* not owned */
    unsigned max_connections; /* 0: unlimited */
    unsigned backlog;
    int fd; /* -1 when closed */
    struct fdop op;
    struct timer pause;
    /* Sessions from this listener still open; incremented by the main reactor,
     * decremented by the sub-reactor that ends the session (atomic RMW). */
    atomic_uint_fast64_t active_connections;
    atomic_uint_fast64_t accepted; /* main reactor only */
    atomic_uint_fast64_t refused;  /* main reactor only */
};

int listener_init(struct listener *l, const struct cfg_listener *cfg, struct pool *pool,
                  struct runtime *rt);
/* Binds and listens; -errno on failure (the caller logs it). */
int listener_open(struct listener *l);
/* Main reactor thread: starts accepting. */
int listener_start(struct listener *l, struct poller *main);
/* Main reactor thread (or after it stopped): stops accepting and closes the socket. */
void listener_close(struct listener *l, struct poller *main);
void listener_fini(struct listener *l);
