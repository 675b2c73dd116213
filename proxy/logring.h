/* proxy/logring.h — a bounded single-producer single-consumer ring of
 * fixed-size slots: the connection log's hand-off from a poller (the owner,
 * the only producer) to the logger thread (the only consumer). Lock-free and
 * wait-free: a full ring refuses (the caller drops and counts), it never
 * waits. Knows nothing of what the slots hold (proxy/connlog.h does). */
#pragma once

#include <stdalign.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#define LOGRING_CACHE_LINE 64

struct logring {
    /* The producer's line: what it writes, and its last look at the tail. */
    alignas(LOGRING_CACHE_LINE) atomic_uint_fast64_t head; /* slots ever committed */
    uint64_t tail_seen;
    /* The consumer's line. */
    alignas(LOGRING_CACHE_LINE) atomic_uint_fast64_t tail; /* slots ever released */
    uint64_t head_seen;
    /* Read-only after init. */
    alignas(LOGRING_CACHE_LINE) size_t nslots;
    size_t slot_size;
    unsigned char *slots; /* owned: nslots * slot_size */
};

/* nslots >= 1, slot_size >= 1 (a multiple of 8 keeps slots aligned for the
 * caller's struct). 0 or -ENOMEM. */
int logring_init(struct logring *r, size_t nslots, size_t slot_size);
void logring_fini(struct logring *r);

/* Producer: the next free slot to fill, or NULL when the ring is full. Until
 * logring_commit the consumer cannot see it; reserving again without a
 * commit returns the same slot. */
void *logring_reserve(struct logring *r);
/* Producer: publishes the reserved slot (release order: its bytes are
 * visible to the consumer before the slot is). */
void logring_commit(struct logring *r);

/* Consumer: the oldest committed slot, or NULL when none is. */
const void *logring_peek(struct logring *r);
/* Consumer: done with the slot logring_peek gave; the producer may reuse it. */
void logring_release(struct logring *r);
