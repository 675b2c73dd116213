/* reactor/inbox.h — the cross-thread hand-off into a poller: a bounded,
 * lock-free multi-producer single-consumer queue of intrusive tasks.
 * Producers push with one CAS; the owning poller takes the whole batch with one
 * exchange and runs it in FIFO order. Waking the consumer is the caller's job
 * (poller_post does it when the queue was empty). */
#pragma once

#include <stdatomic.h>
#include <stdint.h>

struct poller;
struct poller_task;
typedef void (*poller_task_fn)(struct poller *p, struct poller_task *t, void *arg);

/* Memory owned by whoever posts it, until run() is called; run() may free it. */
struct poller_task {
    poller_task_fn run;
    void *arg;
    struct poller_task *next;
};

static inline void poller_task_init(struct poller_task *t, poller_task_fn run, void *arg)
{
    t->run = run;
    t->arg = arg;
    t->next = 0;
}

struct inbox {
    _Atomic(struct poller_task *) head; /* LIFO stack of posted tasks */
    atomic_uint depth;
    unsigned cap;
};

void inbox_init(struct inbox *ib, unsigned cap);

/* Any thread. Returns 1 if the inbox was empty (the consumer needs a wake-up),
 * 0 otherwise, -EAGAIN when cap tasks are already waiting. */
int inbox_push(struct inbox *ib, struct poller_task *t);

/* Consumer only: takes every waiting task, oldest first; NULL when empty. */
struct poller_task *inbox_take_all(struct inbox *ib);

static inline unsigned inbox_depth(struct inbox *ib)
{
    return atomic_load_explicit(&ib->depth, memory_order_relaxed);
}
