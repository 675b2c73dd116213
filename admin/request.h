/* admin/request.h — one admin API call as plain data: the request (method,
 * path, the `wait` and `top` query arguments, the headers that matter, the body) and the
 * response (status, body, content type). Types only: libmicrohttpd fills a
 * request in admin_http.c; request_rules.c and router.c read it. */
#pragma once

#include <stddef.h>

#define ADMIN_BODY_MAX (16u * 1024) /* request bodies above this get 413 */

struct admin_request {
    const char *method;
    const char *path;          /* decoded but for %00 and %2F, without the query string */
    const char *wait;          /* ?wait=S, or NULL */
    const char *top;           /* ?top=N (listeners/NAME/sources), or NULL */
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
    const char *csp;   /* Content-Security-Policy (the dashboard page), or NULL; static */
};
