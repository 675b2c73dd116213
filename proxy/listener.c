/* proxy/listener.c — see proxy/listener.h. */
#define _GNU_SOURCE
#include "listener.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "log.h"
#include "pool.h"
#include "reactor/clock.h"
#include "reactor/pollmgr.h"
#include "sock.h"
#include "worker.h"

#define ACCEPT_BATCH    64  /* accepts per readiness event: fairness across listeners */
#define ACCEPT_PAUSE_MS 100 /* back-off when the process is out of fds */

static void on_accept(struct poller *p, struct fdop *op, void *data);
static void on_pause_over(void *loop, struct timer *t, void *data);
static const struct fdop_ops listener_ops = {.on_read = on_accept};

static int listener_sources_init(struct listener *l, const struct cfg_listener *cfg)
{
    const struct cfg_per_source *ps = &cfg->per_source;
    if (!ps->enabled)
        return 0;
    struct source_limit_opts o = {.max_connections = ps->max_connections,
                                  .rate_per_s = ps->rate_per_s,
                                  .burst = ps->burst,
                                  .prefix_v4 = cfg->source_prefix_v4,
                                  .prefix_v6 = cfg->source_prefix_v6,
                                  .capacity = ps->max_sources};
    l->sources = malloc(sizeof(*l->sources));
    if (!l->sources)
        return -ENOMEM;
    int err = source_limit_init(l->sources, &o);
    if (err) {
        free(l->sources);
        l->sources = NULL;
        return err;
    }
    l->source_reset = ps->reset;
    return 0;
}

int listener_init(struct listener *l, const struct cfg_listener *cfg, struct pool *pool,
                  struct pollmgr *pm, enum cfg_accept accept, listener_conn_cb on_conn,
                  void *conn_data)
{
    memset(l, 0, sizeof(*l));
    l->name = strdup(cfg->name);
    l->listen = strdup(cfg->listen);
    l->accept = accept;
    l->nsocks = listener_on_subs(l) ? pollmgr_count(pm) : 1;
    l->socks = calloc(l->nsocks, sizeof(*l->socks));
    if (!l->name || !l->listen || !l->socks) {
        listener_fini(l);
        return -ENOMEM;
    }
    l->addr = cfg->addr;
    atomic_init(&l->pool, pool);
    l->on_conn = on_conn;
    l->conn_data = conn_data;
    atomic_init(&l->max_connections, cfg->max_connections);
    l->backlog = cfg->backlog;
    if (cfg->accept_proxy_protocol)
        l->inspect |= 1u << LISTENER_INSPECT_PROXY_PROTOCOL;
    l->inspect_timeout_ms = cfg->inspect_timeout_ms;
    for (size_t i = 0; i < l->nsocks; i++) {
        struct listen_sock *ls = &l->socks[i];
        ls->l = l;
        ls->p = listener_on_subs(l) ? pollmgr_sub(pm, (unsigned)i) : pollmgr_main(pm);
        ls->fd = -1;
        fdop_init(&ls->op, -1, &listener_ops, ls);
        timer_init(&ls->pause, on_pause_over, ls);
    }
    int err = listener_sources_init(l, cfg);
    if (err)
        listener_fini(l); /* every socket is -1 by now */
    return err;
}

int listener_open(struct listener *l)
{
    for (size_t i = 0; i < l->nsocks; i++) {
        int fd;
        if (l->accept == CFG_ACCEPT_SHARED && i > 0) {
            /* The same socket, an fd per sub-reactor: each closes its own. */
            fd = fcntl(l->socks[0].fd, F_DUPFD_CLOEXEC, 0);
            if (fd < 0)
                return -errno;
        } else {
            fd = sock_listen((const struct sockaddr *)&l->addr.ss, l->addr.len, (int)l->backlog,
                             l->accept == CFG_ACCEPT_REUSEPORT);
            if (fd < 0)
                return fd;
        }
        l->socks[i].fd = fd;
    }
    return 0;
}

int listener_bound(const struct listener *l)
{
    for (size_t i = 0; i < l->nsocks; i++)
        if (l->socks[i].fd < 0)
            return 0;
    return l->nsocks > 0;
}

/* Level-triggered (an accept batch cut short is reported again); "shared":
 * exclusive too, so a connection wakes one waiting sub-reactor, not all. */
static int watch(struct listen_sock *ls, struct poller *p)
{
    ls->op.fd = ls->fd;
    uint32_t interest = POLL_READ | (ls->l->accept == CFG_ACCEPT_SHARED ? POLL_EXCLUSIVE : 0);
    int err = poller_register(p, &ls->op, interest);
    if (err)
        ls->op.fd = -1;
    return err;
}

static void on_pause_over(void *loop, struct timer *t, void *data)
{
    struct listen_sock *ls = data;
    if (ls->fd >= 0 && ls->op.fd < 0) {
        int err = watch(ls, loop);
        if (err)
            log_error("listener %s: cannot watch its socket again: %s", ls->l->name,
                      strerror(-err));
    }
}

int listener_start(struct listener *l)
{
    for (size_t i = 0; i < l->nsocks; i++) {
        int err = watch(&l->socks[i], l->socks[i].p);
        if (err)
            return err;
    }
    return 0;
}

int listener_start_on(struct listener *l, struct poller *p)
{
    for (size_t i = 0; i < l->nsocks; i++) {
        struct listen_sock *ls = &l->socks[i];
        if (ls->p != p || ls->fd < 0 || ls->op.fd >= 0)
            continue;
        int err = watch(ls, p);
        if (err)
            return err;
    }
    return 0;
}

int listener_set_backlog(struct listener *l, unsigned backlog)
{
    for (size_t i = 0; i < l->nsocks; i++)
        if (l->socks[i].fd >= 0 && listen(l->socks[i].fd, (int)backlog) < 0)
            return -errno;
    l->backlog = backlog;
    return 0;
}

static void pause_accepting(struct poller *p, struct listen_sock *ls, int err)
{
    /* Level-triggered: the pending connection would wake us at once, so stop
     * watching the socket for a moment instead of spinning. Unwatched, not
     * modified: an exclusive registration cannot be modified. */
    if (timer_armed(&ls->pause))
        return;
    log_warn("listener %s: accept: %s; pausing accepts for %d ms", ls->l->name, strerror(-err),
             ACCEPT_PAUSE_MS);
    if (ls->op.fd >= 0)
        poller_unregister(p, &ls->op);
    poller_timer_start(p, &ls->pause, ACCEPT_PAUSE_MS);
}

/* A connection accepted and closed at once (a limit, or no session could be made). */
static void refuse(struct listener *l, struct worker *w)
{
    atomic_fetch_sub_explicit(&l->active_connections, 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&l->refused, 1, memory_order_relaxed);
    counter_add(&w->c.refused, 1);
}

static void on_accept(struct poller *p, struct fdop *op, void *data)
{
    struct listen_sock *ls = data;
    struct listener *l = ls->l;
    struct worker *w = poller_user(p);
    for (int i = 0; i < ACCEPT_BATCH && ls->fd >= 0; i++) {
        struct sockaddr_storage peer;
        socklen_t peer_len = sizeof(peer);
        int fd = accept4(ls->fd, (struct sockaddr *)&peer, &peer_len, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            int err = errno;
            if (err == EAGAIN || err == EWOULDBLOCK)
                return;
            if (err == EINTR || err == ECONNABORTED || err == EPROTO)
                continue;
            if (sock_shortage(-err)) {
                pause_accepting(p, ls, -err);
                return;
            }
            log_error("listener %s: accept: %s", l->name, strerror(err));
            return;
        }
        atomic_fetch_add_explicit(&l->accepted, 1, memory_order_relaxed);
        counter_add(&w->c.accepted, 1);
        /* Take the slot first, then check: with "reuseport" several pollers
         * accept for this listener at once, and check-then-add would let
         * each of them pass at max - 1. */
        uint64_t active =
            atomic_fetch_add_explicit(&l->active_connections, 1, memory_order_relaxed);
        unsigned max = atomic_load_explicit(&l->max_connections, memory_order_relaxed);
        if (max && active >= max) {
            close(fd);
            refuse(l, w);
            continue;
        }
        uint32_t source = SOURCE_NONE;
        if (l->sources && source_limit_acquire(l->sources, (const struct sockaddr *)&peer,
                                               clock_mono_ns(), &source) != SOURCE_OK) {
            if (l->source_reset)
                sock_set_reset_on_close(fd);
            close(fd);
            atomic_fetch_add_explicit(&l->refused_source_limit, 1, memory_order_relaxed);
            refuse(l, w);
            continue;
        }
        if (l->on_conn(l, p, fd, (const struct sockaddr *)&peer, source, l->conn_data) < 0) {
            source_limit_release(l->sources, source);
            refuse(l, w); /* the fd is closed already */
        }
    }
}

void listener_close_on(struct listener *l, struct poller *p)
{
    for (size_t i = 0; i < l->nsocks; i++) {
        struct listen_sock *ls = &l->socks[i];
        if (ls->p != p || ls->fd < 0)
            continue;
        poller_timer_stop(p, &ls->pause);
        if (ls->op.fd >= 0)
            poller_unregister(p, &ls->op);
        close(ls->fd);
        ls->fd = -1;
    }
}

void listener_fini(struct listener *l)
{
    for (size_t i = 0; l->socks && i < l->nsocks; i++)
        if (l->socks[i].fd >= 0) /* never started, or its poller is gone */
            close(l->socks[i].fd);
    if (l->sources)
        source_limit_fini(l->sources);
    free(l->sources);
    l->sources = NULL;
    free(l->socks);
    free(l->name);
    free(l->listen);
    listener_free_routes(l);
    l->socks = NULL;
    l->name = l->listen = NULL;
}
