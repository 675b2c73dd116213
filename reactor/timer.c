/* reactor/timer.c — the binary min-heap behind reactor/timer.h. */
#include "timer.h"

#include <errno.h>
#include <stdlib.h>

#define TIMER_HEAP_MIN_CAP 64

void timer_heap_init(struct timer_heap *h)
{
    h->v = NULL;
    h->n = h->cap = 0;
}

void timer_heap_free(struct timer_heap *h)
{
    for (uint32_t i = 0; i < h->n; i++)
        h->v[i]->heap_idx = TIMER_IDLE;
    free(h->v);
    timer_heap_init(h);
}

static void place(struct timer_heap *h, uint32_t i, struct timer *t)
{
    h->v[i] = t;
    t->heap_idx = i;
}

static void sift_up(struct timer_heap *h, uint32_t i)
{
    struct timer *t = h->v[i];
    while (i > 0) {
        uint32_t parent = (i - 1) / 2;
        if (h->v[parent]->deadline_ms <= t->deadline_ms)
            break;
        place(h, i, h->v[parent]);
        i = parent;
    }
    place(h, i, t);
}

static void sift_down(struct timer_heap *h, uint32_t i)
{
    struct timer *t = h->v[i];
    for (;;) {
        uint32_t c = 2 * i + 1;
        if (c >= h->n)
            break;
        if (c + 1 < h->n && h->v[c + 1]->deadline_ms < h->v[c]->deadline_ms)
            c++;
        if (t->deadline_ms <= h->v[c]->deadline_ms)
            break;
        place(h, i, h->v[c]);
        i = c;
    }
    place(h, i, t);
}

void timer_cancel(struct timer_heap *h, struct timer *t)
{
    if (!timer_armed(t))
        return;
    uint32_t i = t->heap_idx;
    t->heap_idx = TIMER_IDLE;
    struct timer *last = h->v[--h->n];
    if (i == h->n)
        return;
    place(h, i, last);
    if (i > 0 && h->v[(i - 1) / 2]->deadline_ms > last->deadline_ms)
        sift_up(h, i);
    else
        sift_down(h, i);
}

int timer_add(struct timer_heap *h, struct timer *t, uint64_t deadline_ms)
{
    timer_cancel(h, t);
    if (h->n == h->cap) {
        uint32_t cap = h->cap ? h->cap * 2 : TIMER_HEAP_MIN_CAP;
        struct timer **v = realloc(h->v, (size_t)cap * sizeof(*v));
        if (!v)
            return -ENOMEM;
        h->v = v;
        h->cap = cap;
    }
    t->deadline_ms = deadline_ms;
    place(h, h->n++, t);
    sift_up(h, t->heap_idx);
    return 0;
}

uint64_t timer_next_deadline(const struct timer_heap *h)
{
    return h->n ? h->v[0]->deadline_ms : UINT64_MAX;
}

unsigned timer_run_expired(struct timer_heap *h, uint64_t now_ms, void *loop)
{
    /* Bounded by the timers armed at entry, so a callback that re-arms itself
     * for "now" cannot keep the loop here forever. */
    unsigned fired = 0, budget = h->n;
    while (fired < budget && h->n && h->v[0]->deadline_ms <= now_ms) {
        struct timer *t = h->v[0];
        timer_cancel(h, t);
        t->fire(loop, t, t->data);
        fired++;
    }
    return fired;
}
