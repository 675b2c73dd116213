/* proxy/pipe_cache.h — empty pipes kept per poller for the splice transport
 * (HAProxy's pipe pool, per thread): a direction takes a pipe while bytes are
 * in flight and gives it back once it is empty, so idle sessions cost no
 * pipe fds. Owner thread only; no counters: the caller counts what it needs
 * from the return values. Does not know sessions or workers. */
#pragma once

#include <stdint.h>

#define PIPE_CACHE_MAX       32            /* empty pipes kept per poller */
#define PIPE_CACHE_PIPE_SIZE (256u * 1024) /* asked with F_SETPIPE_SZ; the kernel may give less */

/* A pipe's two ends; rd == -1 while none is held. */
struct pipe_ends {
    int rd, wr;
    uint32_t cap; /* bytes it holds at most */
};

struct pipe_cache {
    struct pipe_ends pipe[PIPE_CACHE_MAX]; /* owned: [0, n) are open and empty */
    unsigned n;
};

/* The last cached pipe, or a new one (non-blocking, close-on-exec): 1 from
 * the cache, 0 new, -errno when none could be made (fds, memory). */
int pipe_cache_get(struct pipe_cache *pc, struct pipe_ends *out);
/* Lets go of *pe (no-op when it holds none) and marks it held-none: an empty
 * one (held == 0) is cached, unless the cache is full; any other is closed.
 * 1 when cached, 0 when closed or none was held. */
int pipe_cache_put(struct pipe_cache *pc, struct pipe_ends *pe, uint32_t held);
/* Closes every cached pipe (the poller has stopped); returns how many. */
unsigned pipe_cache_close(struct pipe_cache *pc);
