/* proxy/pipe_cache.c — see proxy/pipe_cache.h. */
#define _GNU_SOURCE
#include "pipe_cache.h"

#include <errno.h>
#include <fcntl.h>
#include <unistd.h>

#define PIPE_DEFAULT_SIZE 65536u /* what Linux gives a pipe when it cannot tell us */

int pipe_cache_get(struct pipe_cache *pc, struct pipe_ends *out)
{
    if (pc->n) {
        *out = pc->pipe[--pc->n];
        return 1;
    }
    int fds[2];
    if (pipe2(fds, O_NONBLOCK | O_CLOEXEC) < 0)
        return -errno;
    int cap = fcntl(fds[1], F_SETPIPE_SZ, (int)PIPE_CACHE_PIPE_SIZE);
    if (cap < 0)
        cap = fcntl(fds[1], F_GETPIPE_SZ);
    out->rd = fds[0];
    out->wr = fds[1];
    out->cap = cap > 0 ? (uint32_t)cap : PIPE_DEFAULT_SIZE;
    return 0;
}

int pipe_cache_put(struct pipe_cache *pc, struct pipe_ends *pe, uint32_t held)
{
    int cached = 0;
    if (pe->rd < 0)
        return 0;
    /* Bytes left in a pipe belong to a stream that ended: never reuse it. */
    if (held == 0 && pc->n < PIPE_CACHE_MAX) {
        pc->pipe[pc->n++] = *pe;
        cached = 1;
    } else {
        close(pe->rd);
        close(pe->wr);
    }
    pe->rd = pe->wr = -1;
    return cached;
}

unsigned pipe_cache_close(struct pipe_cache *pc)
{
    unsigned n = pc->n;
    while (pc->n) {
        pc->n--;
        close(pc->pipe[pc->n].rd);
        close(pc->pipe[pc->n].wr);
    }
    return n;
}
