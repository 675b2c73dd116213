/* reactor/pollmgr.h — the set of pollers: one main reactor (accepts) and N
 * sub-reactors (sessions), each driven by its own thread, plus the balance
 * that picks a sub-reactor for new work. Knows nothing about what runs on them.
 * Create, then register work, then start; stop joins every thread. */
#pragma once

#include "poller.h"
#include "pollmgr-t.h"

struct pollmgr;

/* The sub-reactors pollmgr_create(nsub) makes: nsub, or one per online CPU
 * when nsub is 0 (for a caller that sizes per-poller budgets beforehand). */
unsigned pollmgr_subs_for(unsigned nsub);
/* nsub == 0 means one sub-reactor per online CPU (pollmgr_subs_for). */
int pollmgr_create(unsigned nsub, enum pollmgr_balance balance, const struct poller_opts *opts,
                   struct pollmgr **out);
void pollmgr_destroy(struct pollmgr *pm); /* stops first if still running */

struct poller *pollmgr_main(struct pollmgr *pm);
struct poller *pollmgr_sub(struct pollmgr *pm, unsigned i);
unsigned pollmgr_count(const struct pollmgr *pm); /* sub-reactors */

/* Any thread; lock-free. Picks the sub-reactor for the next piece of work. */
struct poller *pollmgr_pick(struct pollmgr *pm);
/* Any thread; lock-free. For work that arrived on sub-reactor here (accept
 * "shared"): here, unless it carries clearly more than the least loaded
 * sub-reactor (then that one). EPOLLEXCLUSIVE wakes the first sub-reactor
 * waiting, so connections that come while all idle would otherwise pile on
 * one; this keeps locality while the load is even and hands off only to
 * mend an imbalance. */
struct poller *pollmgr_keep_or_pick(struct pollmgr *pm, struct poller *here);

/* Which pollers a broadcast reaches. */
enum pollmgr_scope {
    POLLMGR_SUBS, /* the sub-reactors */
    POLLMGR_ALL,  /* the main reactor and the sub-reactors */
};
typedef void (*pollmgr_fn)(struct poller *p, void *arg);

/* Any thread but a poller's: runs fn(p, arg) once on each poller of scope,
 * through its inbox, and waits until every one has, up to timeout_ms. fn may
 * be NULL: once each poller has run the task, none is still inside the loop
 * iteration it was in (a quiesce). Returns 0; -EAGAIN when an inbox refused
 * the task (full, or its poller stopped; the others still ran); -ETIMEDOUT
 * when some had not run it in time: they run it later (arg must outlive
 * them; stopping the pollers joins them); -ENOMEM. */
int pollmgr_broadcast(struct pollmgr *pm, enum pollmgr_scope scope, pollmgr_fn fn, void *arg,
                      unsigned timeout_ms);

/* Starts one thread per poller (signals blocked in them). -errno on failure,
 * with whatever had started already stopped again. */
int pollmgr_start(struct pollmgr *pm);
/* Stops every poller and joins its thread. Idempotent. */
void pollmgr_stop(struct pollmgr *pm);
