/* reactor/inbox.c — the Treiber-stack MPSC queue behind reactor/inbox.h.
 * No ABA hazard: the single consumer never pops one node, it swaps out all. */
#include "inbox.h"

#include <errno.h>
#include <stddef.h>

void inbox_init(struct inbox *ib, unsigned cap)
{
    atomic_init(&ib->head, NULL);
    atomic_init(&ib->depth, 0);
    ib->cap = cap;
}

int inbox_push(struct inbox *ib, struct poller_task *t)
{
    unsigned d = atomic_fetch_add_explicit(&ib->depth, 1, memory_order_relaxed);
    if (d >= ib->cap) {
        atomic_fetch_sub_explicit(&ib->depth, 1, memory_order_relaxed);
        return -EAGAIN;
    }
    struct poller_task *old = atomic_load_explicit(&ib->head, memory_order_relaxed);
    do {
        t->next = old;
    } while (!atomic_compare_exchange_weak_explicit(&ib->head, &old, t, memory_order_release,
                                                    memory_order_relaxed));
    return old == NULL;
}

struct poller_task *inbox_take_all(struct inbox *ib)
{
    struct poller_task *t = atomic_exchange_explicit(&ib->head, NULL, memory_order_acquire);
    struct poller_task *fifo = NULL;
    unsigned n = 0;
    while (t) {
        struct poller_task *next = t->next;
        t->next = fifo;
        fifo = t;
        t = next;
        n++;
    }
    if (n)
        atomic_fetch_sub_explicit(&ib->depth, n, memory_order_relaxed);
    return fifo;
}
