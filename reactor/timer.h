/* reactor/timer.h — a binary min-heap of intrusive timers, one per poller.
 * Add and cancel are O(log n) and allocate nothing (the heap array grows by
 * doubling); a cancelled timer is removed at once, so the many cancelled
 * connect/idle timers cost nothing later. Single-threaded: the owning poller's. */
#pragma once

#include <stdint.h>

struct timer;
typedef void (*timer_cb)(void *loop, struct timer *t, void *data);

struct timer {
    uint64_t deadline_ms;
    uint32_t heap_idx; /* TIMER_IDLE when not armed */
    timer_cb fire;
    void *data; /* not owned */
};

#define TIMER_IDLE UINT32_MAX

struct timer_heap {
    struct timer **v; /* owned array of borrowed timers */
    uint32_t n, cap;
};

static inline void timer_init(struct timer *t, timer_cb fire, void *data)
{
    t->deadline_ms = 0;
    t->heap_idx = TIMER_IDLE;
    t->fire = fire;
    t->data = data;
}

static inline int timer_armed(const struct timer *t)
{
    return t->heap_idx != TIMER_IDLE;
}

void timer_heap_init(struct timer_heap *h);
void timer_heap_free(struct timer_heap *h);

/* Arms t for deadline_ms (re-arms it if already armed). -ENOMEM on growth failure. */
int timer_add(struct timer_heap *h, struct timer *t, uint64_t deadline_ms);
void timer_cancel(struct timer_heap *h, struct timer *t);

/* Earliest deadline, or UINT64_MAX when empty. */
uint64_t timer_next_deadline(const struct timer_heap *h);

/* Fires (and disarms) every timer due at now_ms, earliest first, passing loop
 * through. A callback may add or cancel timers. Returns the number fired. */
unsigned timer_run_expired(struct timer_heap *h, uint64_t now_ms, void *loop);
