/* proxy/pump.h — the pump: one skeleton relays a direction of a session for
 * every transport (HAProxy's xprt_ops: the stream layer decides, the
 * transport only moves bytes). The pump owns the budget per pass, the
 * watermarks, the cached readiness (short reads, RDHUP/HUP), the re-run,
 * half-close and reset forwarding; a transport owns where the bytes wait
 * between the two sockets (a linkbuf, a pipe) and the syscalls that move them.
 * Transports: pump_copy.c (linkbufs, recvmsg/sendmsg), pump_splice.c (a pipe,
 * splice(2)). For session files and transports only. */
#pragma once

#include <errno.h>
#include <stddef.h>
#include <sys/types.h>

#include "config/config.h"
#include "worker.h" /* struct worker: the session's poller */
#include "session.h"

#define PUMP_BUDGET_BYTES (1024u * 1024) /* read per direction per pass: fairness */
#define PUMP_NOT_NOW      1              /* a transport's dir(): it cannot carry d now; copy does */

/* A transport: what the pump calls once per direction per pass. */
struct pump_xprt {
    const char *name;
    /* One pass of direction d: the skeleton pump_dir() run with the
     * transport's movers. 0, -errno with *bad set to the side whose syscall
     * failed, or PUMP_NOT_NOW before touching anything (no pipe could be had:
     * the pump relays this pass through the linkbuf instead). */
    int (*dir)(struct session *s, int d, int *bad);
    /* The session closes: let go of s->xprt_ctx (called only when set; a
     * transport that never sets it needs none). */
    void (*release)(struct session *s);
};

extern const struct pump_xprt pump_copy;   /* pump_copy.c */
extern const struct pump_xprt pump_splice; /* pump_splice.c */

/* The copy transport's pass; pump_session calls it directly. */
int pump_copy_dir(struct session *s, int d, int *bad);

/* A transport's byte movers for direction d (side d → side !d). Only the
 * skeleton below calls them; a transport passes a static const table, so
 * after inlining they are direct calls (no indirect call per syscall). */
struct pump_movers {
    size_t (*held)(const struct session *s, int d); /* bytes read, not yet written */
    /* Writes some of them to side !d: bytes written (> 0), -EAGAIN or -errno. */
    ssize_t (*snd)(struct session *s, int d);
    /* Reads more from side d: bytes read, 0 at EOF, -EAGAIN or -errno. Sets
     * *empty when the read proves the socket has nothing more now (copy:
     * EAGAIN, or fewer bytes than the space offered; splice: EAGAIN with an
     * empty pipe); the pump then waits for the next edge. */
    ssize_t (*rcv)(struct session *s, int d, int *empty);
    int (*above_high)(const struct session *s, int d); /* stop reading */
    int (*below_low)(const struct session *s, int d);  /* read again */
    /* rcv's -ENOMEM means the poller's buffer memory is spent: wait on the
     * starve list. Otherwise -ENOMEM is an error like any other. */
    int starves;
};

/* The skeleton: moves what it can from side[d] to side[!d] — write what is
 * held, read more while below the high watermark — until a side would block
 * or the budget is spent (then re-run after the other ready fds). Returns 0,
 * or -errno with *bad set to the side whose syscall failed. */
static inline __attribute__((always_inline)) int pump_dir(struct session *s, int d,
                                                          const struct pump_movers *m, int *bad)
{
    struct poller *p = s->w->poller;
    struct side *src = &s->side[d], *dst = &s->side[!d];
    size_t budget = PUMP_BUDGET_BYTES;
    for (;;) {
        /* Write until nothing is held or the socket says EAGAIN: with
         * edge-triggered fds, stopping earlier (one writev covers at most
         * LINKBUF_MAX_IOV blocks) would leave bytes that no event comes back for. */
        while (m->held(s, d) && (dst->flags & SIDE_WR_READY)) {
            ssize_t n = m->snd(s, d);
            if (n == -EAGAIN) {
                dst->flags &= (uint8_t)~SIDE_WR_READY;
            } else if (n < 0) {
                *bad = !d;
                return (int)n;
            } else {
                session_account(s, d, (size_t)n);
                s->last_active_ms = poller_now_ms(p);
            }
        }
        if (src->flags & SIDE_PAUSED) {
            if (!m->below_low(s, d))
                break;
            src->flags &= (uint8_t)~SIDE_PAUSED;
        }
        if (!side_may_read(src))
            break;
        if (m->above_high(s, d)) {
            src->flags |= SIDE_PAUSED;
            break;
        }
        if (budget == 0) {
            poller_rerun(p, &src->op, POLL_EV_IN);
            break;
        }
        int empty = 0;
        ssize_t n = m->rcv(s, d, &empty);
        if (n == -EAGAIN) {
            if (empty)
                src->flags &= (uint8_t)~SIDE_RD_READY;
            break;
        }
        if (n == -ENOMEM && m->starves) {
            session_starve(s);
            break;
        }
        if (n == 0) {
            src->flags |= SIDE_EOF;
            if (!(dst->flags & SIDE_EOF))
                src->flags |= SIDE_EOF_FIRST;
            continue; /* flush what is left, then pump_session forwards the EOF */
        }
        if (n < 0) {
            *bad = d;
            return (int)n;
        }
        /* The socket is empty: skip the read that would only say EAGAIN;
         * edge-triggered epoll reports the next arrival. Not when a FIN or
         * RST came with this edge: no new edge would come for it, so read on
         * until 0 or the error. */
        if (empty && !(src->flags & SIDE_HUP))
            src->flags &= (uint8_t)~SIDE_RD_READY;
        budget -= (size_t)n < budget ? (size_t)n : budget;
        s->last_active_ms = poller_now_ms(p);
    }
    return 0;
}
