/* proxy/session_splice.c — the optional splice(2) relay (pools[].zero_copy
 * "splice"): bytes go socket → pipe → socket inside the kernel, never copied
 * to user space. A direction holds a pipe only while bytes are in it: an
 * emptied pipe goes back to its poller's cache (struct pipe_cache), so idle
 * sessions cost no pipe fds. The pipe is that direction's buffer (its fill
 * is the watermark). Used once a session relays and its linkbuf for that
 * direction is empty (bytes read while connecting still go out from the
 * linkbuf). */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <unistd.h>

#include "backend.h"
#include "pool.h"
#include "session-t.h"
#include "session.h"
#include "worker.h"

#define SPLICE_PIPE_SIZE    (256u * 1024) /* asked with F_SETPIPE_SZ; the kernel may give less */
#define SPLICE_BUDGET_BYTES (1024u * 1024)

struct session_pipes {
    int rd[2], wr[2]; /* per direction: pipe read and write ends, -1 while none is held */
    uint32_t len[2];  /* bytes in each pipe */
    uint32_t cap[2];
};

/* Gives direction d a pipe: the poller's last cached one, or a new one. */
static int take_pipe(struct worker *w, struct session_pipes *sp, int d)
{
    struct pipe_cache *pc = &w->pipes;
    if (pc->n) {
        pc->n--;
        sp->rd[d] = pc->pipe[pc->n].rd;
        sp->wr[d] = pc->pipe[pc->n].wr;
        sp->cap[d] = pc->pipe[pc->n].cap;
        counter_sub(&w->c.pipes_cached, 1);
    } else {
        int fds[2];
        if (pipe2(fds, O_NONBLOCK | O_CLOEXEC) < 0)
            return -errno;
        int cap = fcntl(fds[1], F_SETPIPE_SZ, (int)SPLICE_PIPE_SIZE);
        if (cap < 0)
            cap = fcntl(fds[1], F_GETPIPE_SZ);
        sp->rd[d] = fds[0];
        sp->wr[d] = fds[1];
        sp->cap[d] = cap > 0 ? (uint32_t)cap : 65536u;
    }
    sp->len[d] = 0;
    counter_add(&w->c.pipes_in_use, 1);
    return 0;
}

/* Direction d lets go of its pipe: an empty one is cached (or closed when the
 * cache is full); one with bytes left in it can only be closed. */
static void put_pipe(struct worker *w, struct session_pipes *sp, int d)
{
    struct pipe_cache *pc = &w->pipes;
    if (sp->rd[d] < 0)
        return;
    if (sp->len[d] == 0 && pc->n < PIPE_CACHE_MAX) {
        pc->pipe[pc->n].rd = sp->rd[d];
        pc->pipe[pc->n].wr = sp->wr[d];
        pc->pipe[pc->n].cap = sp->cap[d];
        pc->n++;
        counter_add(&w->c.pipes_cached, 1);
    } else {
        close(sp->rd[d]);
        close(sp->wr[d]);
    }
    sp->rd[d] = sp->wr[d] = -1;
    sp->len[d] = 0;
    counter_sub(&w->c.pipes_in_use, 1);
}

void session_splice_cache_drain(struct worker *w)
{
    struct pipe_cache *pc = &w->pipes;
    while (pc->n) {
        pc->n--;
        close(pc->pipe[pc->n].rd);
        close(pc->pipe[pc->n].wr);
    }
    atomic_store_explicit(&w->c.pipes_cached, 0, memory_order_relaxed);
}

int session_splice_pending(const struct session *s, int d)
{
    return s->pipes ? (int)s->pipes->len[d] : 0;
}

void session_splice_close(struct session *s)
{
    struct session_pipes *sp = s->pipes;
    if (!sp)
        return;
    for (int d = 0; d < 2; d++)
        put_pipe(s->w, sp, d);
    free(sp);
    s->pipes = NULL;
}

int session_splice_ready(struct session *s, int d)
{
    if (!s->pipes) {
        s->pipes = calloc(1, sizeof(*s->pipes));
        if (!s->pipes)
            return 0;
        for (int i = 0; i < 2; i++)
            s->pipes->rd[i] = s->pipes->wr[i] = -1;
    }
    if (s->pipes->rd[d] >= 0)
        return 1;
    /* Nothing to read: no pipe is needed for this pass (none is touched). */
    if (!side_may_read(&s->side[d]))
        return 1;
    return take_pipe(s->w, s->pipes, d) == 0;
}

/* The splice twin of pump_dir: same contract (0, or -errno with *bad).
 * Only after session_splice_ready(s, d) said yes: then d holds a pipe, or
 * has nothing to read and its pipe is not touched. */
int session_splice_dir(struct session *s, int d, int *bad)
{
    struct poller *p = s->w->poller;
    struct side *src = &s->side[d], *dst = &s->side[!d];
    struct session_pipes *sp = s->pipes;
    size_t budget = SPLICE_BUDGET_BYTES;
    for (;;) {
        while (sp->len[d] && (dst->flags & SIDE_WR_READY)) {
            ssize_t n = splice(sp->rd[d], NULL, dst->op.fd, NULL, sp->len[d],
                               SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
            if (n < 0 && errno == EINTR)
                continue;
            if (n < 0 && errno == EAGAIN) {
                dst->flags &= (uint8_t)~SIDE_WR_READY;
            } else if (n <= 0) {
                *bad = !d;
                return n < 0 ? -errno : -EPIPE;
            } else {
                sp->len[d] -= (uint32_t)n;
                session_account(s, d, (size_t)n);
                s->last_active_ms = poller_now_ms(p);
            }
        }
        if (!side_may_read(src) || sp->len[d] >= sp->cap[d])
            break; /* nothing to read, or the pipe is full: backpressure */
        if (budget == 0) {
            poller_rerun(p, &src->op, POLL_EV_IN);
            break;
        }
        ssize_t n = splice(src->op.fd, NULL, sp->wr[d], NULL, sp->cap[d] - sp->len[d],
                           SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && errno == EAGAIN) {
            /* Also what a pipe out of slots says (one per arriving segment,
             * however small): only an empty pipe proves the socket empty.
             * Otherwise the pipe holds bytes for a blocked writer, whose
             * write event brings this read back. */
            if (sp->len[d] == 0)
                src->flags &= (uint8_t)~SIDE_RD_READY;
            break;
        }
        if (n == 0) {
            src->flags |= SIDE_EOF;
            continue; /* flush, then the EOF is forwarded by session_pump */
        }
        if (n < 0) {
            *bad = d;
            return -errno;
        }
        sp->len[d] += (uint32_t)n;
        budget -= (size_t)n < budget ? (size_t)n : budget;
        s->last_active_ms = poller_now_ms(p);
    }
    if (sp->len[d] == 0)
        put_pipe(s->w, sp, d); /* nothing in flight: the next pass takes one again */
    return 0;
}
