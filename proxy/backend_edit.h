/* proxy/backend_edit.h — changes to a pool's backend set at run time: add,
 * remove, reweight, and retire (drain, then remove once the last session
 * ended). The admin API, reload and DNS discovery all change sets through
 * these, each holding the runtime's control lock (runtime_control_lock), so
 * one change runs at a time and a set is never freed under a reader that is
 * not a poller. Each change builds the new set first (the only step that
 * needs memory), then posts a health checker's start or stop (the only step
 * that may be refused), then installs the set, which cannot fail, and frees
 * the old one after every sub-reactor moved past it (a quiesce through pm). */
#pragma once

#include <stddef.h>
#include <stdint.h>

#include "config/config.h"

struct backend;
struct pollmgr;
struct pool;

#define BACKEND_EDIT_MAX 1024 /* backends per pool: each change copies the list */

/* Adds a backend (weight 0..) and starts its health checker when the pool
 * checks. 0 with *out set; -EEXIST (the name is taken), -ENOSPC
 * (BACKEND_EDIT_MAX), -ENOMEM, or a checker post's -EAGAIN (inbox full) /
 * -ESHUTDOWN (poller stopping): nothing changed. */
int backend_edit_add(struct pollmgr *pm, struct pool *pl, const char *name, const char *address,
                     const struct cfg_addrs *addrs, unsigned weight, struct backend **out);
/* Removes b and frees it. -EBUSY unless it is drained or disabled with no
 * session left; -ENOMEM, -EAGAIN, -ESHUTDOWN: nothing changed. */
int backend_edit_remove(struct pollmgr *pm, struct pool *pl, struct backend *b);
/* Sets b's weight and rebuilds the schedule. -ENOMEM: nothing changed. */
int backend_edit_reweight(struct pollmgr *pm, struct pool *pl, struct backend *b, unsigned weight);
/* Replaces b's address list with a copy of addrs (DNS: a name's addresses
 * changed); the old list is freed after a quiesce. -ENOMEM: nothing changed. */
int backend_edit_addrs(struct pollmgr *pm, struct backend *b, const struct cfg_addrs *addrs);
/* Drains b (no deadline unless deadline_ms) and marks it retired: it is removed
 * by backend_edit_reap once its last session ended, and the operator can no
 * longer enable it. */
void backend_edit_retire(struct backend *b, uint64_t deadline_ms);
/* Removes the pool's retired backends that have no session left (a checker
 * stop that cannot be posted now is tried again next time). Returns how many. */
size_t backend_edit_reap(struct pollmgr *pm, struct pool *pl);
