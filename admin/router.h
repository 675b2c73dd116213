/* admin/router.h — the admin API as a plain function: a request (method,
 * path, the `wait` query argument, the Host, Origin, Authorization and
 * Content-Type headers, the body) in, a status and a body out. No libmicrohttpd here, so tests and
 * fuzzers can drive it directly. Calls are serialised by the context's lock. */
#pragma once

#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "request.h"
#include "request_rules.h"

struct pollmgr;
struct runtime;

struct admin_ctx {
    struct runtime *rt;       /* not owned */
    struct pollmgr *pm;       /* not owned: rt's, for backend_edit's quiesce */
    struct admin_rules rules; /* who may ask: token, allowed Host names */
    uint64_t started_mono_ms;
    /* The runtime's control lock (runtime_control): serialises every route
     * call with each other and with reload and DNS discovery. */
    pthread_mutex_t *lock;
    pthread_cond_t wake;      /* with lock: ?wait= sleeps on it; shutdown broadcasts */
    atomic_int shutting_down; /* set once by admin_ctx_shutdown() */
};

int admin_ctx_init(struct admin_ctx *a, struct runtime *rt, const char *token);
void admin_ctx_fini(struct admin_ctx *a);
void admin_route(struct admin_ctx *a, const struct admin_request *rq, struct admin_response *rs);
/* Any thread, never blocks, idempotent: ends every ?wait= in progress at once
 * (each answers as if its time were up) and makes later ones return at once.
 * Other calls are served as before. */
void admin_ctx_shutdown(struct admin_ctx *a);
