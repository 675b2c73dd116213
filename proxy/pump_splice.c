/* proxy/pump_splice.c — the splice transport (pools[].zero_copy "splice"):
 * bytes go socket → pipe → socket inside the kernel, never copied to user
 * space. The pipe is that direction's buffer: its fill is the watermark
 * (side.held). A direction holds a pipe only while bytes are in it: an
 * emptied pipe goes back to its poller's cache (proxy/pipe_cache.h), so idle
 * sessions cost no pipe fds. The pump (proxy/pump.h) uses it once a session
 * relays and that direction's linkbuf is empty; when no pipe can be had the
 * direction relays through its linkbuf instead. */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdlib.h>
#include <unistd.h>

#include "pipe_cache.h"
#include "pump.h"
#include "worker.h"

struct splice_pipes {
    struct pipe_ends p[2]; /* owned: per direction, rd == -1 while none is held */
};

static struct pipe_ends *pipe_of(const struct session *s, int d)
{
    return &((struct splice_pipes *)s->xprt_ctx)->p[d];
}

/* Gives direction d a pipe: the poller's last cached one, or a new one. */
static int take_pipe(struct session *s, int d)
{
    struct worker *w = s->w;
    int r = pipe_cache_get(&w->pipes, pipe_of(s, d));
    if (r < 0)
        return r;
    if (r == 1)
        counter_sub(&w->c.pipes_cached, 1);
    s->side[d].held = 0;
    counter_add(&w->c.pipes_in_use, 1);
    return 0;
}

/* Direction d lets go of its pipe: an empty one is cached (or closed when the
 * cache is full); one with bytes left in it can only be closed. */
static void put_pipe(struct session *s, int d)
{
    struct worker *w = s->w;
    struct pipe_ends *pe = pipe_of(s, d);
    if (pe->rd < 0)
        return;
    if (pipe_cache_put(&w->pipes, pe, s->side[d].held))
        counter_add(&w->c.pipes_cached, 1);
    s->side[d].held = 0;
    counter_sub(&w->c.pipes_in_use, 1);
}

static void splice_release(struct session *s)
{
    if (!s->xprt_ctx)
        return;
    for (int d = 0; d < 2; d++)
        put_pipe(s, d);
    free(s->xprt_ctx);
    s->xprt_ctx = NULL;
}

/* Gives d a pipe when it has bytes to read and holds none; 0 when none can
 * be had (fds, memory): that direction then relays through its linkbuf, so
 * no byte waits for an event. */
static int splice_ready(struct session *s, int d)
{
    if (!s->xprt_ctx) {
        struct splice_pipes *sp = calloc(1, sizeof(*sp));
        if (!sp)
            return 0;
        for (int i = 0; i < 2; i++)
            sp->p[i].rd = sp->p[i].wr = -1;
        s->xprt_ctx = sp;
    }
    if (pipe_of(s, d)->rd >= 0)
        return 1;
    /* Nothing to read: no pipe is needed for this pass (none is touched). */
    if (!side_may_read(&s->side[d]))
        return 1;
    return take_pipe(s, d) == 0;
}

static size_t splice_held(const struct session *s, int d)
{
    return s->side[d].held;
}

static ssize_t splice_snd(struct session *s, int d)
{
    struct side *src = &s->side[d];
    ssize_t n;
    do
        n = splice(pipe_of(s, d)->rd, NULL, s->side[!d].op.fd, NULL, src->held,
                   SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
    while (n < 0 && errno == EINTR);
    if (n < 0)
        return -errno;
    if (n == 0)
        return -EPIPE; /* bytes in the pipe and nothing taken: the socket is gone */
    src->held -= (uint32_t)n;
    return n;
}

static ssize_t splice_rcv(struct session *s, int d, int *empty)
{
    struct side *src = &s->side[d];
    const struct pipe_ends *pe = pipe_of(s, d);
    ssize_t n;
    do
        n = splice(src->op.fd, NULL, pe->wr, NULL, pe->cap - src->held,
                   SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
    while (n < 0 && errno == EINTR);
    if (n < 0) {
        /* EAGAIN is also what a pipe out of slots says (one per arriving
         * segment, however small): only an empty pipe proves the socket
         * empty. Otherwise the pipe holds bytes for a blocked writer, whose
         * write event brings this read back. A short splice proves nothing. */
        if (errno == EAGAIN)
            *empty = src->held == 0;
        return -errno;
    }
    src->held += (uint32_t)n;
    return n;
}

/* A full pipe is the backpressure: read again once there is room. */
static int splice_above_high(const struct session *s, int d)
{
    return s->side[d].held >= pipe_of(s, d)->cap;
}

static int splice_below_low(const struct session *s, int d)
{
    return s->side[d].held < pipe_of(s, d)->cap;
}

static const struct pump_movers splice_movers = {
    .held = splice_held,
    .snd = splice_snd,
    .rcv = splice_rcv,
    .above_high = splice_above_high,
    .below_low = splice_below_low,
    .starves = 0, /* pipes are not buffer memory: an -ENOMEM from splice is an error */
};

static int splice_dir(struct session *s, int d, int *bad)
{
    if (!splice_ready(s, d))
        return PUMP_NOT_NOW;
    int err = pump_dir(s, d, &splice_movers, bad);
    if (!err && s->side[d].held == 0)
        put_pipe(s, d); /* nothing in flight: the next pass takes one again */
    return err;
}

const struct pump_xprt pump_splice = {
    .name = "splice", .dir = splice_dir, .release = splice_release};
