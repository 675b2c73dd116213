/* proxy/logring.c — the SPSC ring of proxy/logring.h. head and tail only
 * grow (64 bits do not wrap); a slot is index % nslots. Each side keeps a
 * copy of the other's counter and re-reads it (acquire) only when the copy
 * says full or empty, so the common case touches no shared cache line but
 * its own. */
#include "logring.h"

#include <errno.h>
#include <stdlib.h>

int logring_init(struct logring *r, size_t nslots, size_t slot_size)
{
    if (nslots == 0 || slot_size == 0 || nslots > SIZE_MAX / slot_size)
        return -EINVAL;
    r->slots = calloc(nslots, slot_size);
    if (!r->slots)
        return -ENOMEM;
    r->nslots = nslots;
    r->slot_size = slot_size;
    atomic_init(&r->head, 0);
    atomic_init(&r->tail, 0);
    r->tail_seen = 0;
    r->head_seen = 0;
    return 0;
}

void logring_fini(struct logring *r)
{
    free(r->slots);
    r->slots = NULL;
    r->nslots = 0;
}

static unsigned char *slot(const struct logring *r, uint64_t i)
{
    return r->slots + (size_t)(i % r->nslots) * r->slot_size;
}

void *logring_reserve(struct logring *r)
{
    uint64_t head = atomic_load_explicit(&r->head, memory_order_relaxed);
    if (head - r->tail_seen >= r->nslots) {
        /* Acquire: the consumer's reads of the slot are done before we reuse it. */
        r->tail_seen = atomic_load_explicit(&r->tail, memory_order_acquire);
        if (head - r->tail_seen >= r->nslots)
            return NULL;
    }
    return slot(r, head);
}

void logring_commit(struct logring *r)
{
    uint64_t head = atomic_load_explicit(&r->head, memory_order_relaxed);
    atomic_store_explicit(&r->head, head + 1, memory_order_release);
}

const void *logring_peek(struct logring *r)
{
    uint64_t tail = atomic_load_explicit(&r->tail, memory_order_relaxed);
    if (tail == r->head_seen) {
        r->head_seen = atomic_load_explicit(&r->head, memory_order_acquire);
        if (tail == r->head_seen)
            return NULL;
    }
    return slot(r, tail);
}

void logring_release(struct logring *r)
{
    uint64_t tail = atomic_load_explicit(&r->tail, memory_order_relaxed);
    atomic_store_explicit(&r->tail, tail + 1, memory_order_release);
}
