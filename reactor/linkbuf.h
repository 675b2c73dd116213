/* reactor/linkbuf.h — netpoll's LinkBuffer in C: a byte queue kept as a chain
 * of fixed-size blocks that come from, and go back to, a per-poller cache.
 *   write side: linkbuf_reserve() books free space as iovecs (for recvmsg),
 *               linkbuf_commit() makes what was read visible;
 *   read side:  linkbuf_peek() shows the data as iovecs (for sendmsg),
 *               linkbuf_skip() consumes it, linkbuf_release() returns used blocks.
 * An empty linkbuf holds no block. Single-threaded: the owning poller's. */
#pragma once

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <sys/uio.h>

#define LINKBUF_BLOCK_SIZE 16384u /* bytes per block allocation, header included */
#define LINKBUF_MAX_IOV    16     /* iovecs per recvmsg/sendmsg */

struct lb_block {
    struct lb_block *next; /* owned by the chain or the cache */
    uint32_t rd, wr;       /* consumed / filled offsets into data */
    char data[];
};

#define LINKBUF_BLOCK_DATA ((uint32_t)(LINKBUF_BLOCK_SIZE - offsetof(struct lb_block, data)))

/* The per-poller block cache. in_use and cached are owner-only counters
 * (reactor/counter.h): written by the owner, read from any thread (stats). */
struct lb_cache {
    struct lb_block *free; /* owned */
    size_t cap;            /* blocks kept at most; beyond it blocks go back to malloc */
    size_t limit;          /* blocks in use at most (a memory budget); SIZE_MAX: none */
    size_t idle;           /* fewest blocks cached since the last trim: never needed */
    atomic_uint_fast64_t in_use;
    atomic_uint_fast64_t cached;
};

void lb_cache_init(struct lb_cache *c, size_t cap_blocks);
/* Caps the blocks in use; a reserve that would pass it books less, or fails
 * with -ENOMEM when it can book nothing: the caller then stops reading. */
void lb_cache_set_limit(struct lb_cache *c, size_t limit_blocks);
void lb_cache_free(struct lb_cache *c); /* frees every cached block (the poller's end) */
/* Frees the cached blocks that no reserve needed since the previous call
 * (the coldest ones) and returns how many; called once a period, it lets a
 * burst's blocks go after one quiet period and keeps what steady load uses. */
size_t lb_cache_trim(struct lb_cache *c);

/* Readers for stats, from any thread: a sample, not a synchronisation point. */
static inline size_t lb_cache_in_use(const struct lb_cache *c)
{
    return atomic_load_explicit(&c->in_use, memory_order_relaxed);
}
static inline size_t lb_cache_cached(const struct lb_cache *c)
{
    return atomic_load_explicit(&c->cached, memory_order_relaxed);
}
/* The block limit, 0 when there is none. Set before the poller starts. */
static inline size_t lb_cache_limit(const struct lb_cache *c)
{
    return c->limit == SIZE_MAX ? 0 : c->limit;
}

struct linkbuf {
    struct lb_block *head;  /* first block holding unread bytes; owned */
    struct lb_block *wblk;  /* block receiving the next committed byte */
    struct lb_block *tail;  /* last block of the chain (may be booked, empty) */
    struct lb_cache *cache; /* not owned: the poller's */
    size_t len;             /* committed, unread bytes */
    uint32_t low, high;     /* watermarks in bytes */
};

void linkbuf_init(struct linkbuf *lb, struct lb_cache *cache, uint32_t low, uint32_t high);
void linkbuf_clear(struct linkbuf *lb); /* drops every byte and returns all blocks */

static inline size_t linkbuf_len(const struct linkbuf *lb)
{
    return lb->len;
}
static inline int linkbuf_above_high(const struct linkbuf *lb)
{
    return lb->len >= lb->high;
}
static inline int linkbuf_below_low(const struct linkbuf *lb)
{
    return lb->len <= lb->low;
}

/* Write side. Books at least `want` bytes of free space (fewer if max_iov
 * blocks or the cache's limit do not allow it) and describes it in iov;
 * returns the iov count, or -ENOMEM when nothing could be booked. The booking
 * stays valid until the next commit. */
int linkbuf_reserve(struct linkbuf *lb, size_t want, struct iovec *iov, int max_iov);
/* Makes n booked bytes readable (n may be 0). An empty buffer gives its blocks back. */
void linkbuf_commit(struct linkbuf *lb, size_t n);

/* Read side. Describes up to max_iov spans of unread data; returns the count
 * and stores their total in *bytes when not NULL. */
int linkbuf_peek(const struct linkbuf *lb, struct iovec *iov, int max_iov, size_t *bytes);
void linkbuf_skip(struct linkbuf *lb, size_t n); /* n <= linkbuf_len() */
void linkbuf_release(struct linkbuf *lb);        /* returns fully consumed blocks */

/* recvmsg into booked space: bytes read, 0 on EOF, or -errno (-EAGAIN).
 * *booked (may be NULL) receives the space offered to the read: fewer bytes
 * than that means the socket had no more at that moment. recvmsg, not readv:
 * no VFS layer on the way. */
ssize_t linkbuf_recv_from(struct linkbuf *lb, int fd, size_t want, size_t *booked);
/* sendmsg from the head, then skip + release: bytes written or -errno.
 * MSG_NOSIGNAL, so a vanished peer is EPIPE, never SIGPIPE. */
ssize_t linkbuf_send_to(struct linkbuf *lb, int fd);
