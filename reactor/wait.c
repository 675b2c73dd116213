/* reactor/wait.c — the bounded sleep-and-look loop of reactor/wait.h. */
#define _GNU_SOURCE
#include "wait.h"

#include <errno.h>
#include <stdint.h>
#include <time.h>

#include "clock.h"

static int nap(void *arg, unsigned ms)
{
    (void)arg;
    struct timespec ts = {(time_t)(ms / 1000), (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
    return 0;
}

int wait_until(wait_done_fn done, wait_sleep_fn sleep, void *arg, unsigned timeout_ms,
               unsigned step_ms)
{
    uint64_t until = clock_mono_ms() + timeout_ms;
    for (;;) {
        if (done(arg))
            return 0;
        uint64_t now = clock_mono_ms();
        if (now >= until)
            return -ETIMEDOUT;
        uint64_t left = until - now;
        int r = (sleep ? sleep : nap)(arg, left < step_ms ? (unsigned)left : step_ms);
        if (r > 0)
            return r;
    }
}
