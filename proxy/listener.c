/* proxy/listener.c — see proxy/listener.h. */
#define _GNU_SOURCE
#include "listener.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "log.h"
#include "pool.h"
#include "runtime.h"
#include "session.h"
#include "sock.h"

#define ACCEPT_BATCH    64  /* accepts per readiness event: fairness across listeners */
#define ACCEPT_PAUSE_MS 100 /* back-off when the process is out of fds */

static void on_accept(struct poller *p, struct fdop *op, void *data);
static void on_pause_over(void *loop, struct timer *t, void *data);
static const struct fdop_ops listener_ops = {.on_read = on_accept};

int listener_init(struct listener *l, const struct cfg_listener *cfg, struct pool *pool,
                  struct runtime *rt)
{
    memset(l, 0, sizeof(*l));
    l->name = strdup(cfg->name);
    l->listen = strdup(cfg->listen);
    if (!l->name || !l->listen) {
        listener_fini(l);
        return -ENOMEM;
    }
    l->addr = cfg->addr;
    l->pool = pool;
    l->rt = rt;
    l->max_connections = cfg->max_connections;
    l->backlog = cfg->backlog;
    l->fd = -1;
    fdop_init(&l->op, -1, &listener_ops, l);
    timer_init(&l->pause, on_pause_over, l);
    return 0;
}

int listener_open(struct listener *l)
{
    int fd = sock_listen((const struct sockaddr *)&l->addr.ss, l->addr.len, (int)l->backlog);
    if (fd < 0)
        return fd;
    l->fd = fd;
    return 0;
}

static void on_pause_over(void *loop, struct timer *t, void *data)
{
    struct listener *l = data;
    if (l->fd >= 0)
        poller_modify(loop, &l->op, POLL_READ);
}

int listener_start(struct listener *l, struct poller *main)
{
    l->op.fd = l->fd;
    int err = poller_register(main, &l->op, POLL_READ);
    if (err)
        l->op.fd = -1;
    return err;
}

static void pause_accepting(struct poller *p, struct listener *l, int err)
{
    /* Level-triggered: the pending connection would wake us at once, so stop
     * watching the socket for a moment instead of spinning. */
    if (timer_armed(&l->pause))
        return;
    log_warn("listener %s: accept: %s; pausing accepts for %d ms", l->name, strerror(-err),
             ACCEPT_PAUSE_MS);
    poller_modify(p, &l->op, 0);
    poller_timer_start(p, &l->pause, ACCEPT_PAUSE_MS);
}

static void on_accept(struct poller *p, struct fdop *op, void *data)
{
    struct listener *l = data;
    struct worker *w = poller_user(p);
    for (int i = 0; i < ACCEPT_BATCH && l->fd >= 0; i++) {
        struct sockaddr_storage peer;
        socklen_t peer_len = sizeof(peer);
        int fd = accept4(l->fd, (struct sockaddr *)&peer, &peer_len, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            int err = errno;
            if (err == EAGAIN || err == EWOULDBLOCK)
                return;
            if (err == EINTR || err == ECONNABORTED || err == EPROTO)
                continue;
            if (err == EMFILE || err == ENFILE || err == ENOBUFS || err == ENOMEM) {
                pause_accepting(p, l, -err);
                return;
            }
            log_error("listener %s: accept: %s", l->name, strerror(err));
            return;
        }
        counter_add(&l->accepted, 1);
        counter_add(&w->c.accepted, 1);
        uint64_t active = atomic_load_explicit(&l->active_connections, memory_order_relaxed);
        if (l->max_connections && active >= l->max_connections) {
            close(fd);
            counter_add(&l->refused, 1);
            counter_add(&w->c.refused, 1);
            continue;
        }
        atomic_fetch_add_explicit(&l->active_connections, 1, memory_order_relaxed);
        uint64_t key = l->pool->balance == CFG_POOL_SOURCE_HASH
                           ? pool_client_key((struct sockaddr *)&peer)
                           : 0;
        if (session_handoff(l->rt, l, fd, key) < 0) {
            atomic_fetch_sub_explicit(&l->active_connections, 1, memory_order_relaxed);
            counter_add(&l->refused, 1);
            counter_add(&w->c.refused, 1);
        }
    }
}

void listener_close(struct listener *l, struct poller *main)
{
    if (l->fd < 0)
        return;
    poller_timer_stop(main, &l->pause);
    if (l->op.fd >= 0)
        poller_unregister(main, &l->op);
    close(l->fd);
    l->fd = -1;
}

void listener_fini(struct listener *l)
{
    if (l->fd >= 0) /* never started, or its poller is gone */
        close(l->fd);
    free(l->name);
    free(l->listen);
    l->name = l->listen = NULL;
    l->fd = -1;
}
