/* proxy/maglev.h — Maglev consistent hashing (Eisenbud et al., NSDI 2016):
 * a lookup table of prime size M where each backend fills slots along its
 * own permutation, in turns proportional to its weight. The table is a pure
 * function of the backends' names and weights (not their order), so every
 * sluice replica and every restart builds the same table; removing one of N
 * backends moves only about 1/N of the keys. */
#pragma once

#include <stddef.h>
#include <stdint.h>

#define MAGLEV_EMPTY UINT32_MAX

/* A fixed, seedable 64-bit hash (FNV-1a folded through a murmur3 finaliser). */
uint64_t maglev_hash(const void *data, size_t len, uint64_t seed);

/* Fills table[0..m) with indices into names/weights; backends of weight 0
 * get no slot. m must be prime and larger than n. Returns 0, or -EINVAL
 * when no backend has weight (the table is then all MAGLEV_EMPTY), -ENOMEM. */
int maglev_build(const char *const *names, const unsigned *weights, size_t n, uint32_t *table,
                 uint32_t m);
