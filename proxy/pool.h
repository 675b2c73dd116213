/* proxy/pool.h — a pool of backends and the pick that sub-reactors call for
 * every new session. The pick is lock-free: an atomic cursor walks a
 * precomputed smooth weighted round-robin schedule (nginx's sequence shape:
 * no burst to the heaviest backend) and skips backends that are not up. */
#pragma once

#include <stdatomic.h>
#include <stddef.h>

#include "backend.h"
#include "config/config.h"

struct pool {
    char *name; /* owned */
    unsigned connect_timeout_ms;
    unsigned idle_timeout_ms;
    unsigned retries;
    unsigned buffer_high_watermark;
    unsigned buffer_low_watermark;
    struct backend *backends; /* owned array */
    size_t nbackends;
    uint32_t *schedule; /* owned: backend indices, smooth WRR order */
    size_t schedule_len;
    atomic_uint cursor;
};

int pool_init(struct pool *pl, const struct cfg_pool *cfg);
void pool_fini(struct pool *pl);

/* Any thread. The next backend in rotation that is up and has weight, other
 * than `avoid` when another choice exists (retries); NULL when none is up. */
struct backend *pool_pick(struct pool *pl, const struct backend *avoid);

/* Fills out[0..len) with the smooth WRR order for the given weights and
 * returns the length used (sum of weights after dividing by their gcd, capped
 * at cap). Exposed for tests. */
size_t pool_smooth_wrr(const unsigned *weights, size_t n, uint32_t *out, size_t cap);
