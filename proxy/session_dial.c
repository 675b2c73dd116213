/* proxy/session_dial.c — the upstream side of a session before it relays:
 * pick a backend, non-blocking connect under connect_timeout_ms (to each of
 * the addresses its name resolved to in turn), and on failure or timeout
 * retry another backend up to the pool's retries. Bytes the client sent
 * meanwhile wait in its linkbuf and go out once connected. The backend's
 * slot, counters and health are the pool's: the session only reports each
 * pick's outcome (pool_done) and counts its own poller's counters. */
#define _GNU_SOURCE
#include <errno.h>
#include <unistd.h>

#include "backend.h"
#include "backend_latency.h"
#include "pool.h"
#include "reactor/clock.h"
#include "session.h"
#include "sock.h"
#include "worker.h"

static void give_up(struct session *s)
{
    counter_add(&s->w->c.connect_exhausted, 1);
    session_set_cause(s, s->attempts ? SESSION_CAUSE_CONNECT_FAILED : SESSION_CAUSE_NO_BACKEND);
    session_close(s, SESSION_RESET_BOTH); /* served nothing: a reset, not an end */
}

/* Connects to b from its address i on; 0 once a connect is under way (the
 * session then holds b and its slot), otherwise -errno. */
static int dial_from(struct session *s, struct backend *b, unsigned i)
{
    struct poller *p = s->w->poller;
    struct side *up = &s->side[SIDE_UPSTREAM];
    int fd = -1;
    int err = backend_dial(b, &i, &fd);
    if (err)
        return err;
    fdop_init(&up->op, fd, &session_io_ops, s);
    up->flags = 0;
    if ((err = poller_register_or_close(p, &up->op, POLL_READ | POLL_WRITE | POLL_EDGE)))
        return err;
    s->backend = b; /* pool_pick gave us its slot: pool_done gives it back */
    s->dial_started_ns = clock_mono_ns();
    s->addr_index = (uint8_t)i;
    s->state = SESSION_CONNECTING;
    poller_timer_start(p, &s->timer, s->pool->connect_timeout_ms);
    return 0;
}

/* After backend b could not be reached with err (every address tried, or
 * this host failed): reports it to the pool, which takes the slot back,
 * counts it on this poller and tells whether another backend may be tried
 * (1), or closes the client (0). */
static int may_retry(struct session *s, struct backend *b, int err)
{
    enum pool_outcome outcome = pool_dial_outcome(err);
    pool_done(s->pool, b, outcome);
    if (outcome == POOL_LOCAL_ERROR) {
        counter_add(&s->w->c.local_errors, 1);
        session_set_cause(s, SESSION_CAUSE_LIMIT); /* this host's fds or memory, not the backend */
        give_up(s);
        return 0;
    }
    counter_add(&s->w->c.connect_failures, 1);
    if (s->attempts > s->pool->retries) {
        give_up(s);
        return 0;
    }
    counter_add(&s->w->c.retries, 1);
    return 1;
}

void session_dial(struct session *s, struct backend *avoid)
{
    struct worker *w = s->w;
    for (;;) {
        struct backend *b = pool_pick(s->pool, avoid, s->client_key);
        if (!b) {
            give_up(s);
            return;
        }
        s->attempts++;
        counter_add(&w->c.dialed, 1);
        int err = dial_from(s, b, 0);
        if (!err)
            return;
        if (!may_retry(s, b, err))
            return;
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
    /* The name's other addresses before another backend: only when none
     * answers has the backend failed. */
    if (s->addr_index + 1u < backend_addrs(b)->n) {
        err = dial_from(s, b, s->addr_index + 1u);
        if (!err)
            return;
    }
    s->backend = NULL; /* may_retry gives the slot back */
    if (may_retry(s, b, err))
        session_dial(s, b);
}

void session_dial_check(struct session *s)
{
    struct poller *p = s->w->poller;
    struct side *up = &s->side[SIDE_UPSTREAM];
    /* SO_ERROR alone tells after the first dial; after a re-dial (another
     * backend, or another address) a stale event of the previous fd may
     * arrive in the same batch, so then also ask whether the new one is
     * really connected. */
    int redialed = s->attempts > 1 || s->addr_index > 0;
    int r;
    if (!redialed && (up->op.revents & (POLL_EV_OUT | POLL_EV_HUP)) == POLL_EV_OUT) {
        /* Writable with no error or hang-up beside it: connected. A failed
         * connect sets the socket's error, which the same wait reports as
         * EPOLLERR (our HUP), so here SO_ERROR could only say 0: one
         * getsockopt per connection saved. */
        r = 1;
    } else {
        r = redialed ? sock_connected(up->op.fd) : sock_error(up->op.fd);
        if (r == 0 && !redialed)
            r = 1;
    }
    if (r == 0)
        return; /* a stale event, or still in progress */
    if (r < 0) {
        session_dial_failed(s, r);
        return;
    }
    /* The PROXY header goes first on every upstream connection, the one of
     * a retry included; a backend that takes no byte counts as failed. */
    if (s->pool->proxy_protocol && (r = session_proxy_send(s)) < 0) {
        session_dial_failed(s, r);
        return;
    }
    s->state = SESSION_RELAYING;
    s->connected_ns = clock_mono_ns();
    backend_latency_record(s->backend, s->w->id, BACKEND_LATENCY_CONNECT,
                           s->connected_ns - s->dial_started_ns);
    pool_done(s->pool, s->backend, POOL_CONNECTED);
    poller_timer_stop(p, &s->timer);
    s->last_active_ms = poller_now_ms(p);
    session_arm_timer(s); /* idle timeout, max session age */
    /* Edge-triggered: anything already readable will not be announced again.
     * Nor will a FIN or RST that came with the connect's completion (a
     * backend that writes a line and closes): note it as on_read does, or a
     * short read would end the reading before the EOF. */
    up->flags |= SIDE_RD_READY | SIDE_WR_READY;
    if (up->op.revents & (POLL_EV_RDHUP | POLL_EV_HUP))
        up->flags |= SIDE_HUP;
    pump_session(s);
}
