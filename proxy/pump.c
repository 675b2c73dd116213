/* proxy/pump.c — the pump's session level (nginx's ngx_stream_proxy_process
 * shape: one function reads the state of both sides and decides): each
 * direction through its transport, then reset forwarding, half-close and the
 * end of the session. The per-direction skeleton is pump_dir() in
 * proxy/pump.h; the transports are pump_copy.c and pump_splice.c. */
#define _GNU_SOURCE
#include "pump.h"

#include <sys/socket.h>

#include "pool.h"
#include "worker.h"

/* The transport a pool's sessions relay with, by pools[].zero_copy: the one
 * place a new transport is listed. */
static const struct pump_xprt *pump_xprt_for(enum cfg_zero_copy zc)
{
    switch (zc) {
    case CFG_ZERO_COPY_SPLICE:
        return &pump_splice;
    case CFG_ZERO_COPY_NONE:
    default:
        return &pump_copy;
    }
}

/* Direction d is done: everything side d sent, up to its EOF, has been
 * delivered to the other side. */
static int dir_done(const struct session *s, int d)
{
    const struct side *sd = &s->side[d];
    return (sd->flags & SIDE_EOF) && linkbuf_len(&sd->in) == 0 && sd->held == 0;
}

void pump_session(struct session *s)
{
    /* The pool's transport once relaying; copy while connecting. */
    const struct pump_xprt *x =
        s->state == SESSION_RELAYING ? pump_xprt_for(s->pool->zero_copy) : &pump_copy;
    for (int d = 0; d < 2; d++) {
        int bad = 0;
        /* Bytes in the linkbuf (read while connecting, or while the transport
         * could not carry d) go out first, in order, through copy. */
        int err =
            x == &pump_copy || linkbuf_len(&s->side[d].in) ? PUMP_NOT_NOW : x->dir(s, d, &bad);
        if (err == PUMP_NOT_NOW)
            err = pump_copy_dir(s, d, &bad);
        if (err) {
            /* A reset (or any error) on one side is forwarded as a reset to the other. */
            counter_add(&s->w->c.resets, 1);
            session_set_cause(s, bad == SIDE_CLIENT ? SESSION_CAUSE_CLIENT_RESET
                                                    : SESSION_CAUSE_BACKEND_RESET);
            session_close(s, 1u << !bad);
            return;
        }
    }
    if (s->state != SESSION_RELAYING)
        return;
    /* Both directions ended: close (a FIN each way); no shutdown first. */
    if (dir_done(s, SIDE_CLIENT) && dir_done(s, SIDE_UPSTREAM)) {
        session_close(s, 0);
        return;
    }
    /* Half-close: forward an EOF once everything before it is delivered. */
    for (int d = 0; d < 2; d++) {
        struct side *dst = &s->side[!d];
        if (dir_done(s, d) && !(dst->flags & SIDE_SHUT)) {
            shutdown(dst->op.fd, SHUT_WR);
            dst->flags |= SIDE_SHUT;
        }
    }
}

void pump_release(struct session *s)
{
    if (s->xprt_ctx)
        pump_xprt_for(s->pool->zero_copy)->release(s);
}
