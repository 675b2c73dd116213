/* admin/router.h — the admin API as a plain function: a request (method,
 * path, the `wait` query argument, the Host, Origin, Authorization and
 * Content-Type headers, the body) in, a status and a body out. No libmicrohttpd here, so tests and
 * fuzzers can drive it directly. Calls are serialised by the context's lock. */
#pragma once

#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

struct runtime;

#define ADMIN_BODY_MAX (16u * 1024) /* request bodies above this get 413 */

struct admin_ctx {
    struct runtime *rt; /* not owned */
    const char *token;  /* not owned; NULL: no auth */
    /* Host names accepted besides IP literals and localhost (admin.allowed_hosts);
     * not owned (the config outlives the admin). Zero after init. */
    char *const *allowed_hosts;
    size_t nallowed_hosts;
    uint64_t started_mono_ms;
    pthread_mutex_t lock;     /* serialises every route call: admin threads only */
    pthread_cond_t wake;      /* with lock: ?wait= sleeps on it; shutdown broadcasts */
    atomic_int shutting_down; /* set once by admin_ctx_shutdown() */
};

struct admin_request {
    const char *method;
    const char *path;          /* decoded but for %00 and %2F, without the query string */
    const char *wait;          /* ?wait=S, or NULL */
    const char *host;          /* header value, or NULL (HTTP/1.0 may omit it) */
    const char *origin;        /* header value, or NULL (not a browser, or same-origin GET) */
    const char *authorization; /* header value, or NULL */
    const char *content_type;  /* header value, or NULL */
    const char *body;
    size_t body_len;
    int body_too_large;
};

struct admin_response {
    int status;
    char *body; /* malloc'd */
    const char *content_type;
    const char *allow; /* for 405: the methods the path takes */
};

int admin_ctx_init(struct admin_ctx *a, struct runtime *rt, const char *token);
void admin_ctx_fini(struct admin_ctx *a);
void admin_route(struct admin_ctx *a, const struct admin_request *rq, struct admin_response *rs);
/* Any thread, never blocks, idempotent: ends every ?wait= in progress at once
 * (each answers as if its time were up) and makes later ones return at once.
 * Other calls are served as before. */
void admin_ctx_shutdown(struct admin_ctx *a);
