/* reactor/random.h — the one pseudo-random generator of the pickers
 * (pollmgr's "random" balance, the pool's "random" power of two choices):
 * xorshift64* (Vigna), its state thread-local, so a draw takes no lock and
 * no shared cache line. Not for anything that must be unpredictable. */
#pragma once

#include <stdint.h>

/* Any thread. The high bits are the best: take (random_next() >> 33) % n.
 * static inline, so each file that draws keeps its own state per thread;
 * the first draw seeds it from the state's address (distinct per thread). */
static inline uint64_t random_next(void)
{
    static _Thread_local uint64_t x;
    if (x == 0)
        x = (uint64_t)(uintptr_t)&x * 0x9e3779b97f4a7c15ull | 1;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    return x * 2685821657736338717ull;
}
