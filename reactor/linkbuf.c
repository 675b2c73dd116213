/* reactor/linkbuf.c — the chained buffer and its block cache (reactor/linkbuf.h). */
#include "linkbuf.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

#include "counter.h"

void lb_cache_init(struct lb_cache *c, size_t cap_blocks)
{
    c->free = NULL;
    c->cap = cap_blocks;
    c->limit = SIZE_MAX;
    c->idle = 0;
    atomic_init(&c->in_use, 0);
    atomic_init(&c->cached, 0);
}

void lb_cache_set_limit(struct lb_cache *c, size_t limit_blocks)
{
    c->limit = limit_blocks;
}

void lb_cache_free(struct lb_cache *c)
{
    while (c->free) {
        struct lb_block *b = c->free;
        c->free = b->next;
        free(b);
    }
    counter_set(&c->cached, 0);
    c->idle = 0;
}

size_t lb_cache_trim(struct lb_cache *c)
{
    size_t cached = counter_get(&c->cached);
    size_t drop = c->idle < cached ? c->idle : cached;
    if (drop) {
        /* The list is LIFO: the coldest blocks are at its end. */
        struct lb_block **cut = &c->free;
        for (size_t keep = cached - drop; keep; keep--)
            cut = &(*cut)->next;
        struct lb_block *b = *cut;
        *cut = NULL;
        while (b) {
            struct lb_block *next = b->next;
            free(b);
            b = next;
        }
        counter_sub(&c->cached, drop);
    }
    c->idle = cached - drop;
    return drop;
}

static struct lb_block *block_get(struct lb_cache *c)
{
    if (counter_get(&c->in_use) >= c->limit)
        return NULL;
    struct lb_block *b = c->free;
    if (b) {
        c->free = b->next;
        counter_sub(&c->cached, 1);
        size_t left = counter_get(&c->cached);
        if (left < c->idle)
            c->idle = left;
    } else {
        c->idle = 0;
        b = malloc(LINKBUF_BLOCK_SIZE);
        if (!b)
            return NULL;
    }
    b->next = NULL;
    b->rd = b->wr = 0;
    counter_add(&c->in_use, 1);
    return b;
}

static inline void block_put(struct lb_cache *c, struct lb_block *b)
{
    counter_sub(&c->in_use, 1);
    if (counter_get(&c->cached) >= c->cap) {
        free(b);
        return;
    }
    b->next = c->free;
    c->free = b;
    counter_add(&c->cached, 1);
}

void linkbuf_init(struct linkbuf *lb, struct lb_cache *cache, uint32_t low, uint32_t high)
{
    lb->head = lb->wblk = lb->tail = NULL;
    lb->cache = cache;
    lb->len = 0;
    lb->low = low;
    lb->high = high;
}

void linkbuf_clear(struct linkbuf *lb)
{
    while (lb->head) {
        struct lb_block *b = lb->head;
        lb->head = b->next;
        block_put(lb->cache, b);
    }
    lb->wblk = lb->tail = NULL;
    lb->len = 0;
}

int linkbuf_reserve(struct linkbuf *lb, size_t want, struct iovec *iov, int max_iov)
{
    if (max_iov <= 0 || want == 0)
        return 0;
    /* Step past a full write block onto an already booked successor. */
    while (lb->wblk && lb->wblk->wr == LINKBUF_BLOCK_DATA && lb->wblk->next)
        lb->wblk = lb->wblk->next;

    size_t space = 0;
    int nblocks = 0;
    for (struct lb_block *b = lb->wblk; b; b = b->next) {
        space += LINKBUF_BLOCK_DATA - b->wr;
        nblocks++;
    }
    if (lb->wblk && lb->wblk->wr == LINKBUF_BLOCK_DATA)
        nblocks--; /* a full last block yields no iovec */
    while (space < want && nblocks < max_iov) {
        struct lb_block *b = block_get(lb->cache);
        if (!b)
            break;
        if (lb->tail)
            lb->tail->next = b;
        else
            lb->head = b;
        lb->tail = b;
        if (!lb->wblk || lb->wblk->wr == LINKBUF_BLOCK_DATA)
            lb->wblk = b;
        space += LINKBUF_BLOCK_DATA;
        nblocks++;
    }
    int n = 0;
    for (struct lb_block *b = lb->wblk; b && n < max_iov; b = b->next) {
        if (b->wr == LINKBUF_BLOCK_DATA)
            continue;
        iov[n].iov_base = b->data + b->wr;
        iov[n].iov_len = LINKBUF_BLOCK_DATA - b->wr;
        n++;
    }
    return n ? n : -ENOMEM;
}

void linkbuf_commit(struct linkbuf *lb, size_t n)
{
    struct lb_block *b = lb->wblk;
    lb->len += n;
    while (n) {
        if (b->wr == LINKBUF_BLOCK_DATA)
            b = b->next;
        uint32_t room = LINKBUF_BLOCK_DATA - b->wr;
        uint32_t take = n < room ? (uint32_t)n : room;
        b->wr += take;
        n -= take;
    }
    lb->wblk = b;
    if (lb->len == 0)
        linkbuf_clear(lb);
}

int linkbuf_peek(const struct linkbuf *lb, struct iovec *iov, int max_iov, size_t *bytes)
{
    size_t total = 0;
    int n = 0;
    for (struct lb_block *b = lb->head; b && n < max_iov && total < lb->len; b = b->next) {
        if (b->wr == b->rd)
            continue;
        iov[n].iov_base = b->data + b->rd;
        iov[n].iov_len = b->wr - b->rd;
        total += iov[n].iov_len;
        n++;
    }
    if (bytes)
        *bytes = total;
    return n;
}

void linkbuf_skip(struct linkbuf *lb, size_t n)
{
    lb->len -= n;
    for (struct lb_block *b = lb->head; n; b = b->next) {
        uint32_t avail = b->wr - b->rd;
        uint32_t take = n < avail ? (uint32_t)n : avail;
        b->rd += take;
        n -= take;
    }
}

void linkbuf_release(struct linkbuf *lb)
{
    if (lb->len == 0) {
        linkbuf_clear(lb);
        return;
    }
    /* A block is done once it is full and fully read; the write block never is
     * (it still has room, or unread bytes would follow it). */
    while (lb->head && lb->head != lb->wblk && lb->head->rd == LINKBUF_BLOCK_DATA) {
        struct lb_block *b = lb->head;
        lb->head = b->next;
        block_put(lb->cache, b);
    }
}

ssize_t linkbuf_recv_from(struct linkbuf *lb, int fd, size_t want, size_t *booked)
{
    struct iovec iov[LINKBUF_MAX_IOV];
    int n = linkbuf_reserve(lb, want, iov, LINKBUF_MAX_IOV);
    if (n < 0)
        return n;
    if (booked) {
        *booked = 0;
        for (int i = 0; i < n; i++)
            *booked += iov[i].iov_len;
    }
    struct msghdr mh = {.msg_iov = iov, .msg_iovlen = (size_t)n};
    ssize_t r;
    do {
        r = recvmsg(fd, &mh, 0);
    } while (r < 0 && errno == EINTR);
    int err = r < 0 ? -errno : 0;
    linkbuf_commit(lb, r > 0 ? (size_t)r : 0);
    return r < 0 ? err : r;
}

ssize_t linkbuf_send_to(struct linkbuf *lb, int fd)
{
    struct iovec iov[LINKBUF_MAX_IOV];
    int n = linkbuf_peek(lb, iov, LINKBUF_MAX_IOV, NULL);
    if (n == 0)
        return 0;
    struct msghdr mh = {.msg_iov = iov, .msg_iovlen = (size_t)n};
    ssize_t w;
    do {
        w = sendmsg(fd, &mh, MSG_NOSIGNAL);
    } while (w < 0 && errno == EINTR);
    if (w < 0)
        return -errno;
    linkbuf_skip(lb, (size_t)w);
    linkbuf_release(lb);
    return w;
}
