/* admin/request_rules.c — the admin API's request rules (README "Admin
 * request rules"): which Host and Origin may ask (DNS rebinding, cross-site
 * pages), the token, and what a body may be. Decides only; router.c replies.
 * Nothing here looks anything up or changes anything. */
#define _GNU_SOURCE
#include "request_rules.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

/* Constant time in the length of the presented value: no early exit on the
 * first differing byte. */
static int token_ok(const char *token, const char *auth)
{
    static const char prefix[] = "Bearer ";
    if (!auth || strncmp(auth, prefix, sizeof(prefix) - 1) != 0)
        return 0;
    const char *given = auth + sizeof(prefix) - 1;
    size_t tl = strlen(token), gl = strlen(given);
    unsigned char diff = tl != gl;
    for (size_t i = 0; i < gl; i++)
        diff |= (unsigned char)(given[i] ^ token[i % (tl ? tl : 1)]);
    return diff == 0;
}

/* ":port" or nothing. */
static int port_ok(const char *s)
{
    if (!*s)
        return 1;
    if (*s++ != ':')
        return 0;
    unsigned long port = 0;
    size_t n = 0;
    for (; *s >= '0' && *s <= '9' && n < 5; s++, n++)
        port = port * 10 + (unsigned long)(*s - '0');
    return n > 0 && !*s && port <= 65535;
}

/* DNS rebinding: a page of evil.example whose name was re-pointed at
 * 127.0.0.1 reaches this API as same-origin, but its requests still carry
 * "Host: evil.example". Only names no outsider controls pass: IP literals,
 * localhost, and admin.allowed_hosts. A request without Host (HTTP/1.0;
 * libmicrohttpd refuses HTTP/1.1 without one) comes from no browser. */
static int host_ok(const struct admin_rules *a, const char *host)
{
    char name[256];
    const char *rest;
    if (!host)
        return 1;
    if (host[0] == '[') {
        struct in6_addr a6;
        const char *close = strchr(host, ']');
        size_t len = close ? (size_t)(close - host - 1) : 0;
        if (!close || len >= sizeof(name))
            return 0;
        memcpy(name, host + 1, len);
        name[len] = '\0';
        return inet_pton(AF_INET6, name, &a6) == 1 && port_ok(close + 1);
    }
    rest = strchr(host, ':');
    size_t len = rest ? (size_t)(rest - host) : strlen(host);
    if (len == 0 || len >= sizeof(name) || !port_ok(rest ? rest : ""))
        return 0;
    memcpy(name, host, len);
    name[len] = '\0';
    struct in_addr a4;
    if (inet_pton(AF_INET, name, &a4) == 1 || strcasecmp(name, "localhost") == 0)
        return 1;
    for (size_t i = 0; i < a->nallowed_hosts; i++)
        if (strcasecmp(name, a->allowed_hosts[i]) == 0)
            return 1;
    return 0;
}

/* A browser names the page behind every cross-origin request (and every
 * POST) in Origin; ours is http:// plus the Host it was reached by, which
 * host_ok() has already vetted. Anything else, "null" included, is a page
 * of another site riding the operator's network position. */
static int origin_ok(const char *origin, const char *host)
{
    static const char scheme[] = "http://";
    return !origin || (host && strncasecmp(origin, scheme, sizeof(scheme) - 1) == 0 &&
                       strcasecmp(origin + sizeof(scheme) - 1, host) == 0);
}

/* application/json, with any parameters ("; charset=utf-8"). A page may send
 * text/plain, form and multipart bodies cross-site without a preflight;
 * requiring JSON makes a browser ask first, and we never answer yes. */
static int json_content_type(const char *ct)
{
    static const char json[] = "application/json";
    if (!ct)
        return 0;
    ct += strspn(ct, " \t");
    if (strncasecmp(ct, json, sizeof(json) - 1) != 0)
        return 0;
    ct += sizeof(json) - 1;
    ct += strspn(ct, " \t");
    return *ct == '\0' || *ct == ';';
}

/* GET /healthz and /readyz answer without the token, as the Kubernetes API
 * server's own probes do: a kubelet's httpGet probe cannot read a Secret
 * into its headers, and the answers say only ok / ready / not ready. */
static int probe(const struct admin_request *rq)
{
    return strcmp(rq->method, "GET") == 0 &&
           (strcmp(rq->path, "/healthz") == 0 || strcmp(rq->path, "/readyz") == 0);
}

int admin_request_foreign(const struct admin_rules *a, const struct admin_request *rq,
                          const char **error, char *detail, size_t n)
{
    if (!host_ok(a, rq->host)) {
        *error = "forbidden";
        snprintf(detail, n,
                 "Host %.64s is not an IP address, localhost or a name in admin.allowed_hosts",
                 rq->host);
        return 403;
    }
    if (!origin_ok(rq->origin, rq->host)) {
        *error = "forbidden";
        snprintf(detail, n, "cross-site request: Origin %.64s is not this admin API (http://%.64s)",
                 rq->origin, rq->host ? rq->host : "?");
        return 403;
    }
    return 0;
}

int admin_request_refused(const struct admin_rules *a, const struct admin_request *rq,
                          const char **error, char *detail, size_t n)
{
    int refused = admin_request_foreign(a, rq, error, detail, n);
    if (refused)
        return refused;
    if (a->token && !probe(rq) && !token_ok(a->token, rq->authorization)) {
        *error = "unauthorized";
        snprintf(detail, n, "send the admin token as \"Authorization: Bearer <token>\"");
        return 401;
    }
    if (rq->body_too_large) {
        *error = "payload too large";
        snprintf(detail, n, "request bodies are limited to %u bytes", ADMIN_BODY_MAX);
        return 413;
    }
    if (rq->body_len && !json_content_type(rq->content_type)) {
        *error = "unsupported media type";
        snprintf(detail, n, "send request bodies as Content-Type: application/json (got %.64s)",
                 rq->content_type ? rq->content_type : "none");
        return 415;
    }
    /* jansson ends the text at a NUL: it took {"weight": 2<NUL>} for
     * {"weight": 2}, so a body cut by a NUL would be applied. */
    if (rq->body_len && memchr(rq->body, '\0', rq->body_len)) {
        *error = "bad request";
        snprintf(detail, n, "the body contains a NUL byte");
        return 400;
    }
    return 0;
}
