/* reactor/poller.h — one event loop: a poll backend, the fdops registered on
 * it, a timer heap, a block cache for linkbufs, an inbox for tasks from other
 * threads and the loop's counters. Each poller is driven by exactly one thread
 * (poller_run); every verb below except poller_post, poller_stop and the
 * counters is for that thread only.
 *
 * Fairness: callbacks must do bounded work per call. A callback that stops
 * early with work left (an edge-triggered fd still readable) calls
 * poller_rerun() and is called again on the next iteration, after the other
 * ready fds have had their turn. */
#pragma once

#include <stdatomic.h>
#include <stdint.h>

#include "fdop.h"
#include "histogram.h"
#include "inbox.h"
#include "linkbuf.h"
#include "poll.h"
#include "timer.h"

struct poller;

/* Owner-only counters (reactor/counter.h): written by the owning thread,
 * readable from any thread. */
struct poller_counters {
    atomic_uint_fast64_t wakeups;       /* returns from the backend's wait */
    atomic_uint_fast64_t events;        /* fd callbacks dispatched */
    atomic_uint_fast64_t tasks;         /* inbox and deferred tasks run */
    atomic_uint_fast64_t timers_fired;  /* timer callbacks run */
    atomic_uint_fast64_t registrations; /* fdops currently registered */
    atomic_uint_fast64_t timers_pending;
    atomic_uint_fast64_t busy_ns; /* time spent outside the backend's wait */
};

struct poller_opts {
    unsigned inbox_cap;     /* tasks waiting at most (default 65536) */
    size_t block_cache_cap; /* linkbuf blocks kept cached (default 1024) */
    size_t block_limit;     /* linkbuf blocks in use at most (default: no limit) */
    enum poll_kind io;      /* the backend wanted (default epoll); io_uring may fall back */
};

int poller_create(int id, const struct poller_opts *opts, struct poller **out);
/* Poller must not be running. Closes nothing it did not open. */
void poller_destroy(struct poller *p);

int poller_register(struct poller *p, struct fdop *op, uint32_t interest);
/* poller_register for an fd the caller hands over: on failure the fd is
 * closed and op->fd set to -1, so no error path leaks it. Returns the error. */
int poller_register_or_close(struct poller *p, struct fdop *op, uint32_t interest);
/* Removes op from the backend and the re-run queue and sets op->fd to -1; the
 * caller still owns and closes the fd it passes back. Returns that fd. */
int poller_unregister(struct poller *p, struct fdop *op);
/* poller_unregister for an fd the caller closes right away and never
 * duplicated. epoll: closing it removes it, so no epoll_ctl is made.
 * io_uring: the removal is queued as for unregister (a poll request keeps
 * the file open), and goes with the next wait's submission. */
int poller_forget(struct poller *p, struct fdop *op);
void poller_rerun(struct poller *p, struct fdop *op, uint32_t events);

/* Owner thread: arm/disarm a timer relative to the loop's clock. */
int poller_timer_start(struct poller *p, struct timer *t, uint64_t delay_ms);
void poller_timer_stop(struct poller *p, struct timer *t);

/* Any thread: queue t for the poller's thread and wake it. -EAGAIN when the
 * inbox is full (the caller keeps ownership of t), -ESHUTDOWN once stopped. */
int poller_post(struct poller *p, struct poller_task *t);
/* Owner thread: run t at the end of this loop iteration (deferred frees). */
void poller_defer(struct poller *p, struct poller_task *t);

/* Runs the loop on the calling thread until poller_stop(); returns 0 or -errno. */
int poller_run(struct poller *p);
/* One iteration with a wait of at most timeout_ms; returns the events handled. */
int poller_run_once(struct poller *p, int timeout_ms);
/* Any thread: make poller_run return after its current iteration. */
void poller_stop(struct poller *p);

int poller_id(const struct poller *p);
/* The backend really in use, and why io_uring was not (-errno; 0: it was, or
 * was not asked for). */
enum poll_kind poller_io(const struct poller *p);
int poller_io_fallback(const struct poller *p);
uint64_t poller_now_ms(const struct poller *p); /* clock_mono_ms(), cached per iteration */
struct lb_cache *poller_blocks(struct poller *p);
const struct poller_counters *poller_counters(const struct poller *p);
/* The busy part of each loop iteration (as busy_ns), owner-written; any thread reads. */
const struct histogram *poller_loop_histogram(const struct poller *p);
uint64_t poller_age_ns(const struct poller *p); /* since creation */
unsigned poller_inbox_depth(struct poller *p);
void *poller_user(const struct poller *p);
void poller_set_user(struct poller *p, void *user); /* the upper layer's per-poller context */
