/* reactor/clock.h — the one clock sluice measures time with: monotonic, so a
 * wall-clock step moves no timer, deadline, wait or uptime. Pollers cache it
 * per iteration (poller_now_ms); other threads (the admin's waits and uptime,
 * backend deadlines) read it here, uncached. Header only; no state. */
#pragma once

#include <stdint.h>
#include <time.h>

static inline uint64_t clock_mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static inline uint64_t clock_mono_ms(void)
{
    return clock_mono_ns() / 1000000u;
}
