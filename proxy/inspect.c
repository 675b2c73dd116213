/* proxy/inspect.c — the session's inspect phase (proxy/inspect.h): between
 * adoption and the first dial, for listeners that inspect. The client fd
 * runs on this file's fdop table meanwhile, so a listener that inspects
 * nothing pays nothing: adopt() tests one field and dials as before. Owns
 * the reading, the deadline and the counting; the inspectors own what the
 * bytes mean. */
#define _GNU_SOURCE
#include "inspect.h"

#include <errno.h>
#include <string.h>
#include <sys/socket.h>

#include "listener.h"
#include "pool.h"
#include "sock.h"
#include "worker.h"

/* By enum listener_inspect: the order a listener's inspectors run in. A new
 * inspector is one row here, its function, and the listener's bit. */
static const inspect_fn inspectors[LISTENER_INSPECT_COUNT] = {
    [LISTENER_INSPECT_PROXY_PROTOCOL] = session_proxy_inspect,
    [LISTENER_INSPECT_SNI] = session_sni_inspect,
};

static void inspect_on_read(struct poller *p, struct fdop *op, void *data);
static void inspect_on_write(struct poller *p, struct fdop *op, void *data);
static const struct fdop_ops inspect_io_ops = {.on_read = inspect_on_read,
                                               .on_write = inspect_on_write};

/* The listener's first inspector from i on; LISTENER_INSPECT_COUNT: none left. */
static uint8_t next_inspector(const struct listener *l, unsigned i)
{
    while (i < LISTENER_INSPECT_COUNT && !(l->inspect & (1u << i)))
        i++;
    return (uint8_t)i;
}

void session_inspect(struct session *s)
{
    s->state = SESSION_INSPECTING;
    s->inspect = next_inspector(s->listener, 0);
    /* Registered already, but no event has been dispatched yet. */
    s->side[SIDE_CLIENT].op.ops = &inspect_io_ops;
    poller_timer_start(s->w->poller, &s->timer, s->listener->inspect_timeout_ms);
}

/* The inspector running now failed, or the deadline or the client's EOF
 * came first: a reset, counted on the listener by inspector. */
static void inspect_failed(struct session *s)
{
    atomic_fetch_add_explicit(&s->listener->inspect_errors[s->inspect], 1, memory_order_relaxed);
    session_set_cause(s, SESSION_CAUSE_INSPECT_FAILED);
    session_close(s, 1u << SIDE_CLIENT);
}

void session_inspect_timeout(struct session *s)
{
    atomic_fetch_add_explicit(&s->listener->inspect_timeouts, 1, memory_order_relaxed);
    inspect_failed(s);
}

/* Every inspector is done: back to the session's own fdop table, and dial
 * with what the inspectors decided. */
static void inspect_done(struct session *s)
{
    poller_timer_stop(s->w->poller, &s->timer);
    s->side[SIDE_CLIENT].op.ops = &session_io_ops;
    s->state = SESSION_NEW;
    if (s->client.family) {
        struct sockaddr_storage ss;
        sock_addr_to(&s->client, &ss);
        s->client_key = pool_client_key(s->pool, (const struct sockaddr *)&ss);
    }
    /* An inspector may have chosen another pool: its watermarks apply. */
    for (int i = 0; i < 2; i++) {
        s->side[i].in.low = s->pool->buffer_low_watermark;
        s->side[i].in.high = s->pool->buffer_high_watermark;
    }
    session_dial(s, NULL);
}

/* Reads the client until its socket is empty, its EOF, or INSPECT_MAX_BYTES
 * buffered; the readiness it leaves cached is what the pump starts from once
 * connected. 0 or -errno. */
static int inspect_fill(struct side *c)
{
    while (side_may_read(c) && linkbuf_len(&c->in) < INSPECT_MAX_BYTES) {
        size_t booked = 0;
        ssize_t n =
            linkbuf_recv_from(&c->in, c->op.fd, INSPECT_MAX_BYTES - linkbuf_len(&c->in), &booked);
        if (n == -EAGAIN) {
            c->flags &= (uint8_t)~SIDE_RD_READY;
            return 0;
        }
        if (n < 0)
            return (int)n;
        if (n == 0) {
            c->flags |= SIDE_EOF;
            return 0;
        }
        /* Less than offered: the socket is empty (unless a FIN came with
         * this edge, which only a further read finds). */
        if ((size_t)n < booked && !(c->flags & SIDE_HUP)) {
            c->flags &= (uint8_t)~SIDE_RD_READY;
            return 0;
        }
    }
    return 0;
}

/* The buffered bytes as one span: the linkbuf's head block when they fit in
 * it (the usual case), else gathered into scratch. */
static const uint8_t *inspect_view(const struct linkbuf *lb, uint8_t *scratch, size_t *len)
{
    struct iovec iov[LINKBUF_MAX_IOV];
    size_t total = 0;
    int n = linkbuf_peek(lb, iov, LINKBUF_MAX_IOV, &total);
    if (n <= 1) {
        *len = n == 1 ? iov[0].iov_len : 0;
        return n == 1 ? iov[0].iov_base : scratch;
    }
    size_t k = 0;
    for (int i = 0; i < n && k < INSPECT_MAX_BYTES; i++) {
        size_t m = iov[i].iov_len < INSPECT_MAX_BYTES - k ? iov[i].iov_len : INSPECT_MAX_BYTES - k;
        memcpy(scratch + k, iov[i].iov_base, m);
        k += m;
    }
    *len = k;
    return scratch;
}

/* Runs the inspectors from the current one over what is buffered. */
static void inspect_run(struct session *s)
{
    struct side *c = &s->side[SIDE_CLIENT];
    uint8_t scratch[INSPECT_MAX_BYTES];
    while (s->inspect < LISTENER_INSPECT_COUNT) {
        size_t len = 0, consume = 0;
        const uint8_t *buf = inspect_view(&c->in, scratch, &len);
        enum inspect_verdict v = inspectors[s->inspect](s, buf, len, &consume);
        if (v == INSPECT_NEED_MORE && !(c->flags & SIDE_EOF) && len < INSPECT_MAX_BYTES)
            return;
        if (v != INSPECT_DONE) {
            inspect_failed(s);
            return;
        }
        if (consume) {
            linkbuf_skip(&c->in, consume <= linkbuf_len(&c->in) ? consume : linkbuf_len(&c->in));
            linkbuf_release(&c->in);
        }
        s->inspect = next_inspector(s->listener, s->inspect + 1u);
    }
    inspect_done(s);
}

/* cppcheck-suppress constParameter ; the signature is fdop_cb's */
static void inspect_on_read(struct poller *p, struct fdop *op, void *data)
{
    struct session *s = data;
    struct side *c = &s->side[SIDE_CLIENT];
    c->flags |= SIDE_RD_READY;
    if (op->revents & (POLL_EV_RDHUP | POLL_EV_HUP))
        c->flags |= SIDE_HUP;
    int err = inspect_fill(c);
    if (err) {
        /* Buffer memory spent on this poller, or the client reset. */
        session_set_cause(s, err == -ENOMEM ? SESSION_CAUSE_LIMIT : SESSION_CAUSE_CLIENT_RESET);
        session_close(s, 1u << SIDE_CLIENT);
        return;
    }
    inspect_run(s);
}

/* cppcheck-suppress constParameter ; the signature is fdop_cb's */
static void inspect_on_write(struct poller *p, struct fdop *op, void *data)
{
    struct session *s = data;
    /* Edge-triggered: this is the only word that the client is writable. */
    s->side[SIDE_CLIENT].flags |= SIDE_WR_READY;
}
