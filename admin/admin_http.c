/* admin/admin_http.c — libmicrohttpd glue for the admin API: its own polling
 * thread plus one thread per connection (so `?wait=` blocks only its caller),
 * explicit limits (and a JSON 503 instead of a reset beyond them), body
 * collection with the 16 KiB cap, and the hand-off of each complete request
 * to admin_route(). */
#define _GNU_SOURCE
#include "admin.h"

#include <arpa/inet.h>
#include <errno.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proxy/log.h"
#include "reactor/wait.h"
#include "router.h"

/* Connections served at once, a thread each, from any mix of addresses (a
 * Prometheus, a dashboard and scripts often share one NAT address). Up to
 * ADMIN_CONNECTION_LIMIT more are accepted only to be answered 503 with
 * Retry-After: libmicrohttpd closes a connection beyond its own limits
 * without a word, which the client sees as a reset. So its limit sits above
 * ours, and it has no per-address limit (that one closes the same way). */
#define ADMIN_SERVE_LIMIT      64
#define ADMIN_CONNECTION_LIMIT 256
#define ADMIN_RETRY_AFTER_S    1
#define ADMIN_TIMEOUT_S        10
#define ADMIN_MEMORY_LIMIT     (64 * 1024) /* per connection: headers + our buffers */
#define ADMIN_STOP_WAIT_MS     1000        /* admin_stop: for answers still being sent */
#define ADMIN_STOP_POLL_MS     5

struct admin {
    struct MHD_Daemon *daemon;
    struct admin_ctx ctx;
    atomic_uint requests; /* begun and not completed (answer not sent yet) */
    atomic_uint serving;  /* connections holding a serving slot */
};

struct request_state {
    char *body;
    size_t len;
    int too_large;
    int busy; /* its connection got no serving slot: answer 503 */
};

/* A connection's socket context points at one of these: whether it holds a
 * serving slot, decided once, when it is accepted. */
static const char SERVED, BUSY;

const char *admin_token_from(const struct cfg_admin *cfg)
{
    if (cfg->token && *cfg->token)
        return cfg->token;
    const char *env = getenv("SLUICE_ADMIN_TOKEN");
    return env && *env ? env : NULL;
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

static int is_loopback(const struct cfg_sockaddr *a)
{
    if (a->ss.ss_family == AF_INET) {
        const struct sockaddr_in *s4 = (const struct sockaddr_in *)&a->ss;
        return (ntohl(s4->sin_addr.s_addr) >> 24) == 127;
    }
    const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)&a->ss;
    return IN6_IS_ADDR_LOOPBACK(&s6->sin6_addr);
}

/* Accepted connections take serving slots in order; a slot is given back when
 * its connection closes. Called by libmicrohttpd's polling thread. */
static void on_connection(void *cls, struct MHD_Connection *conn, void **socket_context,
                          enum MHD_ConnectionNotificationCode toe)
{
    struct admin *a = cls;
    if (toe == MHD_CONNECTION_NOTIFY_STARTED) {
        unsigned n = atomic_load(&a->serving);
        do {
            if (n >= ADMIN_SERVE_LIMIT) {
                *socket_context = (void *)&BUSY;
                return;
            }
        } while (!atomic_compare_exchange_weak(&a->serving, &n, n + 1));
        *socket_context = (void *)&SERVED;
    } else if (*socket_context == &SERVED) {
        atomic_fetch_sub(&a->serving, 1);
        *socket_context = NULL;
    }
}

/* The answer to a connection beyond ADMIN_SERVE_LIMIT, given once its request
 * (body included: closing on unread bytes would reset) has arrived. */
static enum MHD_Result answer_busy(struct MHD_Connection *conn)
{
    char body[192], retry[16];
    int n = snprintf(body, sizeof(body),
                     "{\"error\":\"service unavailable\",\"detail\":\"the admin API serves %d "
                     "connections at once: retry after %d s\"}",
                     ADMIN_SERVE_LIMIT, ADMIN_RETRY_AFTER_S);
    snprintf(retry, sizeof(retry), "%d", ADMIN_RETRY_AFTER_S);
    struct MHD_Response *resp =
        MHD_create_response_from_buffer((size_t)n, body, MHD_RESPMEM_MUST_COPY);
    if (!resp)
        return MHD_NO;
    MHD_add_response_header(resp, "Content-Type", "application/json");
    MHD_add_response_header(resp, "Cache-Control", "no-store");
    MHD_add_response_header(resp, "Retry-After", retry);
    MHD_add_response_header(resp, "Connection", "close"); /* gives the connection's thread back */
    enum MHD_Result r = MHD_queue_response(conn, MHD_HTTP_SERVICE_UNAVAILABLE, resp);
    MHD_destroy_response(resp);
    return r;
}

static enum MHD_Result handle(void *cls, struct MHD_Connection *conn, const char *url,
                              const char *method, const char *version, const char *upload_data,
                              size_t *upload_data_size, void **con_cls)
{
    struct admin *a = cls;
    struct request_state *st = *con_cls;
    if (!st) {
        st = calloc(1, sizeof(*st));
        if (!st)
            return MHD_NO;
        const union MHD_ConnectionInfo *ci =
            MHD_get_connection_info(conn, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
        st->busy = ci && ci->socket_context == &BUSY;
        *con_cls = st;
        atomic_fetch_add(&a->requests, 1); /* completed() takes it back */
        return MHD_YES;
    }
    if (*upload_data_size) {
        if (!st->busy && !st->too_large && st->len + *upload_data_size <= ADMIN_BODY_MAX) {
            char *grown = realloc(st->body, st->len + *upload_data_size);
            if (!grown)
                return MHD_NO;
            memcpy(grown + st->len, upload_data, *upload_data_size);
            st->body = grown;
            st->len += *upload_data_size;
        } else {
            st->too_large = 1; /* keep reading (and dropping) so we can answer 413 */
        }
        *upload_data_size = 0;
        return MHD_YES;
    }
    if (st->busy)
        return answer_busy(conn);
    struct admin_request rq = {
        .method = method,
        .path = url,
        .wait = MHD_lookup_connection_value(conn, MHD_GET_ARGUMENT_KIND, "wait"),
        .top = MHD_lookup_connection_value(conn, MHD_GET_ARGUMENT_KIND, "top"),
        .host = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_HOST),
        .origin = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_ORIGIN),
        .authorization =
            MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_AUTHORIZATION),
        .content_type =
            MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_TYPE),
        .body = st->body,
        .body_len = st->len,
        .body_too_large = st->too_large,
    };
    struct admin_response rs;
    admin_route(&a->ctx, &rq, &rs);
    size_t blen = rs.body ? strlen(rs.body) : 0;
    struct MHD_Response *resp =
        MHD_create_response_from_buffer(blen, rs.body ? rs.body : (void *)"",
                                        rs.body ? MHD_RESPMEM_MUST_FREE : MHD_RESPMEM_PERSISTENT);
    if (!resp) {
        free(rs.body);
        return MHD_NO;
    }
    MHD_add_response_header(resp, "Content-Type", rs.content_type);
    MHD_add_response_header(resp, "Cache-Control", "no-store");
    /* Every answer is what its Content-Type says: no browser may guess HTML
     * (and run it) from a JSON error that echoes a name. */
    MHD_add_response_header(resp, "X-Content-Type-Options", "nosniff");
    if (rs.csp)
        MHD_add_response_header(resp, "Content-Security-Policy", rs.csp);
    if (rs.allow)
        MHD_add_response_header(resp, "Allow", rs.allow);
    if (rs.status == 401)
        MHD_add_response_header(resp, "WWW-Authenticate", "Bearer realm=\"sluice\"");
    enum MHD_Result r = MHD_queue_response(conn, (unsigned)rs.status, resp);
    MHD_destroy_response(resp);
    return r;
}

/* Percent-decoding of the path (and query arguments), except that %00 and
 * %2F stay as written: a NUL would cut the C string and turn "/pools/p%00x"
 * into "/pools/p", and a decoded slash would make "b0%2Fdrain" two segments
 * and drain b0. Kept escaped, they are in no name, so such paths are 404. */
static size_t unescape(void *cls, struct MHD_Connection *conn, char *uri)
{
    char *out = uri;
    for (const char *in = uri; *in; in++) {
        int hi, lo;
        if (in[0] == '%' && (hi = hexval(in[1])) >= 0 && (lo = hexval(in[2])) >= 0 && (hi || lo) &&
            (hi * 16 + lo) != '/') {
            *out++ = (char)(hi * 16 + lo);
            in += 2;
        } else {
            *out++ = *in;
        }
    }
    *out = '\0';
    return (size_t)(out - uri);
}

static void completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                      enum MHD_RequestTerminationCode toe)
{
    struct admin *a = cls;
    struct request_state *st = *con_cls;
    if (st) {
        free(st->body);
        free(st);
        *con_cls = NULL;
        atomic_fetch_sub(&a->requests, 1);
    }
}

static void mhd_log(void *cls, const char *fmt, va_list ap)
{
    char line[512];
    vsnprintf(line, sizeof(line), fmt, ap);
    size_t n = strlen(line);
    while (n && line[n - 1] == '\n')
        line[--n] = '\0';
    log_warn("admin: %s", line);
}

int admin_start(struct runtime *rt, const struct cfg_admin *cfg, struct admin **out)
{
    const char *token = admin_token_from(cfg);
    if (!token && !is_loopback(&cfg->addr)) {
        log_error("admin: refusing to serve %s without a token: set admin.token in the config "
                  "or SLUICE_ADMIN_TOKEN in the environment, or bind a loopback address",
                  cfg->listen);
        return -EACCES;
    }
    struct admin *a = calloc(1, sizeof(*a));
    if (!a)
        return -ENOMEM;
    atomic_init(&a->requests, 0);
    int err = admin_ctx_init(&a->ctx, rt, token);
    if (err) {
        free(a);
        return err;
    }
    a->ctx.rules.allowed_hosts = cfg->allowed_hosts;
    a->ctx.rules.nallowed_hosts = cfg->nallowed_hosts;
    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_THREAD_PER_CONNECTION |
                     MHD_USE_ERROR_LOG | MHD_USE_POLL;
    if (cfg->addr.ss.ss_family == AF_INET6)
        flags |= MHD_USE_IPv6;
    a->daemon = MHD_start_daemon(
        flags, 0, NULL, NULL, handle, a, MHD_OPTION_EXTERNAL_LOGGER, mhd_log, NULL,
        MHD_OPTION_SOCK_ADDR, (const struct sockaddr *)&cfg->addr.ss, MHD_OPTION_CONNECTION_LIMIT,
        (unsigned)ADMIN_CONNECTION_LIMIT, MHD_OPTION_NOTIFY_CONNECTION, on_connection, a,
        MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)ADMIN_TIMEOUT_S,
        MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)ADMIN_MEMORY_LIMIT,
        MHD_OPTION_STRICT_FOR_CLIENT, (int)1, MHD_OPTION_NOTIFY_COMPLETED, completed, a,
        MHD_OPTION_UNESCAPE_CALLBACK, unescape, NULL, MHD_OPTION_END);
    if (!a->daemon) {
        log_error("admin: cannot listen on %s (address in use, or not available)", cfg->listen);
        admin_ctx_fini(&a->ctx);
        free(a);
        return -EADDRINUSE;
    }
    log_info("admin API on http://%s/api/v1/stats%s", cfg->listen,
             token ? " (bearer token required)" : "");
    *out = a;
    return 0;
}

void admin_begin_shutdown(struct admin *a)
{
    if (a)
        admin_ctx_shutdown(&a->ctx);
}

static int no_requests(void *arg)
{
    const struct admin *a = arg;
    return atomic_load(&a->requests) == 0;
}

void admin_stop(struct admin *a)
{
    if (!a)
        return;
    /* MHD_stop_daemon shuts every connection's socket down before it joins
     * the threads: an answer not yet sent would be lost, and a ?wait= would
     * hold the join for as long as it was asked to wait. So: end the waits,
     * then give the answers in flight a bounded time to go out. */
    admin_ctx_shutdown(&a->ctx);
    wait_until(no_requests, NULL, a, ADMIN_STOP_WAIT_MS, ADMIN_STOP_POLL_MS);
    MHD_stop_daemon(a->daemon);
    admin_ctx_fini(&a->ctx);
    free(a);
}
