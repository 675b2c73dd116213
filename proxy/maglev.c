/* proxy/maglev.c — the Maglev table builder (proxy/maglev.h). */
#define _GNU_SOURCE
#include "maglev.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define SEED_OFFSET 0x5bd1e9955bd1e995ull
#define SEED_SKIP   0x9e3779b97f4a7c15ull

uint64_t maglev_hash(const void *data, size_t len, uint64_t seed)
{
    const unsigned char *p = data;
    uint64_t h = 1469598103934665603ull ^ seed;
    for (size_t i = 0; i < len; i++) {
        h ^= p[i];
        h *= 1099511628211ull;
    }
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdull;
    h ^= h >> 33;
    h *= 0xc4ceb9fe1a85ec53ull;
    h ^= h >> 33;
    return h;
}

static int by_name(const void *a, const void *b, void *names)
{
    const char *const *nm = names;
    return strcmp(nm[*(const size_t *)a], nm[*(const size_t *)b]);
}

int maglev_build(const char *const *names, const unsigned *weights, size_t n, uint32_t *table,
                 uint32_t m)
{
    for (uint32_t i = 0; i < m; i++)
        table[i] = MAGLEV_EMPTY;
    size_t *order = calloc(n ? n : 1, sizeof(*order));
    uint64_t *offset = calloc(n ? n : 1, sizeof(*offset));
    uint64_t *skip = calloc(n ? n : 1, sizeof(*skip));
    uint64_t *next = calloc(n ? n : 1, sizeof(*next));
    int err = -ENOMEM;
    if (!order || !offset || !skip || !next)
        goto out;
    unsigned long total_weight = 0;
    for (size_t i = 0; i < n; i++) {
        size_t len = strlen(names[i]);
        order[i] = i;
        offset[i] = maglev_hash(names[i], len, SEED_OFFSET) % m;
        skip[i] = maglev_hash(names[i], len, SEED_SKIP) % (m - 1) + 1;
        total_weight += weights[i];
    }
    err = -EINVAL;
    if (total_weight == 0)
        goto out;
    /* The turn order must not depend on the config's order: sort by name. */
    qsort_r(order, n, sizeof(*order), by_name, (void *)names);
    uint32_t filled = 0;
    while (filled < m) {
        for (size_t k = 0; k < n && filled < m; k++) {
            size_t i = order[k];
            for (unsigned turn = 0; turn < weights[i] && filled < m; turn++) {
                uint64_t c;
                do {
                    c = (offset[i] + next[i] * skip[i]) % m;
                    next[i]++;
                } while (table[c] != MAGLEV_EMPTY);
                table[c] = (uint32_t)i;
                filled++;
            }
        }
    }
    err = 0;
out:
    free(order);
    free(offset);
    free(skip);
    free(next);
    return err;
}
