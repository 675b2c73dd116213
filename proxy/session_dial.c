/* proxy/session_dial.c — the upstream side of a session before it relays:
 * pick a backend, non-blocking connect under connect_timeout_ms, and on
 * failure or timeout retry another backend up to the pool's retries. Bytes the
 * client sent meanwhile wait in its linkbuf and go out once connected. */
#define _GNU_SOURCE
#include <errno.h>
#include <unistd.h>

#include "backend.h"
#include "health.h"
#include "pool.h"
#include "runtime.h"
#include "session-t.h"
#include "sock.h"

static void give_up(struct session *s)
{
    counter_add(&s->w->c.connect_exhausted, 1);
    session_close(s, SESSION_RESET_BOTH); /* served nothing: a reset, not an end */
}

static void note_failure(struct session *s, struct backend *b)
{
    atomic_fetch_add_explicit(&b->connect_failures, 1, memory_order_relaxed);
    counter_add(&s->w->c.connect_failures, 1);
    health_record(s->pool, b, 0, 0); /* passive: counts toward fall / max_fails */
}

void session_dial(struct session *s, struct backend *avoid)
{
    struct worker *w = s->w;
    struct poller *p = w->poller;
    struct side *up = &s->side[SIDE_UPSTREAM];
    for (;;) {
        struct backend *b = pool_pick(s->pool, avoid, s->client_key);
        if (!b) {
            give_up(s);
            return;
        }
        s->attempts++;
        counter_add(&w->c.dialed, 1);
        int fd = -1;
        int err = sock_dial((const struct sockaddr *)&b->addr.ss, b->addr.len, &fd);
        if (!err) {
            fdop_init(&up->op, fd, &session_io_ops, s);
            up->flags = 0;
            err = poller_register(p, &up->op, POLL_READ | POLL_WRITE | POLL_EDGE);
            if (err) {
                close(fd);
                up->op.fd = -1;
            }
        }
        if (!err) {
            s->backend = b; /* pool_pick gave us its active_connections slot */
            s->state = SESSION_CONNECTING;
            poller_timer_start(p, &s->timer, s->pool->connect_timeout_ms);
            return;
        }
        backend_release(b);
        if (sock_local_error(err)) {
            counter_add(&w->c.local_errors, 1);
            give_up(s);
            return;
        }
        note_failure(s, b);
        if (s->attempts > s->pool->retries) {
            give_up(s);
            return;
        }
        counter_add(&w->c.retries, 1);
        avoid = b;
    }
}

void session_dial_failed(struct session *s, int err)
{
    struct poller *p = s->w->poller;
    struct side *up = &s->side[SIDE_UPSTREAM];
    struct backend *b = s->backend;
    poller_timer_stop(p, &s->timer);
    close(poller_forget(p, &up->op));
    up->flags = 0;
    backend_release(b);
    s->backend = NULL;
    note_failure(s, b);
    if (s->attempts > s->pool->retries) {
        give_up(s);
        return;
    }
    counter_add(&s->w->c.retries, 1);
    session_dial(s, b);
}

void session_dial_check(struct session *s)
{
    struct poller *p = s->w->poller;
    struct side *up = &s->side[SIDE_UPSTREAM];
    /* SO_ERROR alone tells after the first dial; after a re-dial a stale
     * event of the previous fd may arrive in the same batch, so then also ask
     * whether the new one is really connected. */
    int r = s->attempts > 1 ? sock_connected(up->op.fd) : sock_error(up->op.fd);
    if (r == 0 && s->attempts == 1)
        r = 1;
    if (r == 0)
        return; /* a stale event, or still in progress */
    if (r < 0) {
        session_dial_failed(s, r);
        return;
    }
    s->state = SESSION_RELAYING;
    health_record(s->pool, s->backend, 1, 0);
    poller_timer_stop(p, &s->timer);
    s->last_active_ms = poller_now_ms(p);
    if (s->pool->idle_timeout_ms)
        poller_timer_start(p, &s->timer, s->pool->idle_timeout_ms);
    /* Edge-triggered: anything already readable will not be announced again. */
    up->flags |= SIDE_RD_READY | SIDE_WR_READY;
    session_pump(s);
}
