/* reactor/wait.h — the bounded wait, on a thread that is no poller's, for a
 * condition other threads make true (every poller ran a broadcast, the admin
 * answers went out, the last session closed, a backend drained): look, sleep
 * a step, look again, until it holds, the sleeper gives up, or time is out.
 * Each caller says only what it looks at and, if not nanosleep, how it
 * sleeps (on a signal, on a condition variable). */
#pragma once

/* Nonzero: what is waited for holds. */
typedef int (*wait_done_fn)(void *arg);
/* Sleeps up to ms (waking early is fine); 0 to look again, or a positive
 * reason to stop waiting (a signal, a shutdown) that wait_until returns. */
typedef int (*wait_sleep_fn)(void *arg, unsigned ms);

/* Blocks: never on a poller's thread. Looks at once, then after every sleep
 * of at most step_ms, and once more at the deadline. Returns 0 once
 * done(arg), the sleeper's reason, or -ETIMEDOUT after timeout_ms.
 * sleep NULL: nanosleep. */
int wait_until(wait_done_fn done, wait_sleep_fn sleep, void *arg, unsigned timeout_ms,
               unsigned step_ms);
