/* config/config_addr.c — address text to sockaddr (config/config_addr.h). */
#define _GNU_SOURCE
#include "config_addr.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ADDR_HOST_MAX 256

static int resolve_names = 1;

static int parse_all(const char *text, int allow_hostname, int resolve, struct cfg_addrs *out,
                     char *why, size_t whylen);
static int split_host(const char *text, char *host, size_t hostlen, unsigned *port);

void config_addr_resolve_names(int on)
{
    resolve_names = on;
}

static int parse_port(const char *s, unsigned *port)
{
    if (!*s || strlen(s) > 5)
        return -1;
    unsigned v = 0;
    for (const char *c = s; *c; c++) {
        if (*c < '0' || *c > '9')
            return -1;
        v = v * 10 + (unsigned)(*c - '0');
    }
    if (v == 0 || v > 65535)
        return -1;
    *port = v;
    return 0;
}

static void set_port(struct cfg_sockaddr *a, unsigned port)
{
    if (a->ss.ss_family == AF_INET6)
        ((struct sockaddr_in6 *)&a->ss)->sin6_port = htons((uint16_t)port);
    else
        ((struct sockaddr_in *)&a->ss)->sin_port = htons((uint16_t)port);
}

/* getaddrinfo may list an address twice (a hosts file naming it twice). */
static int listed(const struct cfg_addrs *out, const struct addrinfo *ai)
{
    for (unsigned i = 0; i < out->n; i++)
        if (out->a[i].len == ai->ai_addrlen &&
            memcmp(&out->a[i].ss, ai->ai_addr, ai->ai_addrlen) == 0)
            return 1;
    return 0;
}

int config_addr_parse_all(const char *text, int allow_hostname, struct cfg_addrs *out, char *why,
                          size_t whylen)
{
    return parse_all(text, allow_hostname, resolve_names, out, why, whylen);
}

int config_addr_host(const char *text, char *host, size_t hostlen, unsigned *port, char *why,
                     size_t whylen)
{
    struct cfg_addrs lit;
    if (parse_all(text, 1, 0, &lit, why, whylen) == 0)
        return 0; /* an address literal */
    if (!split_host(text, host, hostlen, port))
        return -1; /* parse_all said why */
    return 1;
}

/* "host:port" (no brackets) into host and port; 0 when malformed. */
static int split_host(const char *text, char *host, size_t hostlen, unsigned *port)
{
    const char *colon = strrchr(text, ':');
    if (text[0] == '[' || !colon || colon == text || (size_t)(colon - text) >= hostlen ||
        memchr(text, ':', (size_t)(colon - text)))
        return 0;
    memcpy(host, text, (size_t)(colon - text));
    host[colon - text] = '\0';
    return parse_port(colon + 1, port) == 0;
}

/* resolve: 0 stops before getaddrinfo, and a host name then fails with
 * "not resolved" (config_addr_host tells a name from a malformed text). */
static int parse_all(const char *text, int allow_hostname, int resolve, struct cfg_addrs *out,
                     char *why, size_t whylen)
{
    const char *expected = allow_hostname
                               ? "expected \"IPv4:port\", \"[IPv6]:port\" or \"host:port\" "
                                 "with a port from 1 to 65535"
                               : "expected \"IPv4:port\" or \"[IPv6]:port\" with a port from 1 "
                                 "to 65535";
    char host[ADDR_HOST_MAX];
    const char *portstr;
    int bracketed = 0;
    memset(out, 0, sizeof(*out));
    if (text[0] == '[') {
        const char *close = strchr(text, ']');
        if (!close || close[1] != ':' || (size_t)(close - text - 1) >= sizeof(host))
            goto bad;
        memcpy(host, text + 1, (size_t)(close - text - 1));
        host[close - text - 1] = '\0';
        portstr = close + 2;
        bracketed = 1;
    } else {
        const char *colon = strrchr(text, ':');
        if (!colon || colon == text || (size_t)(colon - text) >= sizeof(host) ||
            memchr(text, ':', (size_t)(colon - text)))
            goto bad;
        memcpy(host, text, (size_t)(colon - text));
        host[colon - text] = '\0';
        portstr = colon + 1;
    }
    unsigned port;
    if (parse_port(portstr, &port) < 0)
        goto bad;

    struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&out->a[0].ss;
    struct sockaddr_in *s4 = (struct sockaddr_in *)&out->a[0].ss;
    if (bracketed) {
        if (inet_pton(AF_INET6, host, &s6->sin6_addr) != 1)
            goto bad;
        s6->sin6_family = AF_INET6;
        s6->sin6_port = htons((uint16_t)port);
        out->a[0].len = sizeof(*s6);
        out->n = 1;
        return 0;
    }
    if (inet_pton(AF_INET, host, &s4->sin_addr) == 1) {
        s4->sin_family = AF_INET;
        s4->sin_port = htons((uint16_t)port);
        out->a[0].len = sizeof(*s4);
        out->n = 1;
        return 0;
    }
    if (!allow_hostname)
        goto bad;
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM}, *res = NULL;
    int rc = resolve ? getaddrinfo(host, NULL, &hints, &res) : EAI_NONAME;
    if (rc != 0 || !res) {
        snprintf(why, whylen, "cannot resolve host \"%s\": %s", host, gai_strerror(rc));
        return -1;
    }
    for (const struct addrinfo *ai = res; ai && out->n < CFG_ADDRS_MAX; ai = ai->ai_next) {
        if ((ai->ai_family != AF_INET && ai->ai_family != AF_INET6) ||
            ai->ai_addrlen > sizeof(out->a[0].ss) || listed(out, ai))
            continue;
        struct cfg_sockaddr *a = &out->a[out->n++];
        memcpy(&a->ss, ai->ai_addr, ai->ai_addrlen);
        a->len = ai->ai_addrlen;
    }
    freeaddrinfo(res);
    if (!out->n) {
        snprintf(why, whylen, "cannot resolve host \"%s\": no IPv4 or IPv6 address", host);
        return -1;
    }
    for (unsigned i = 0; i < out->n; i++)
        set_port(&out->a[i], port);
    return 0;
bad:
    snprintf(why, whylen, "%s, got \"%s\"", expected, text);
    return -1;
}

int config_addr_parse(const char *text, int allow_hostname, struct cfg_sockaddr *out, char *why,
                      size_t whylen)
{
    struct cfg_addrs all;
    int r = config_addr_parse_all(text, allow_hostname, &all, why, whylen);
    *out = all.a[0]; /* zeroed when it failed */
    return r;
}

char *config_addr_format(const struct cfg_sockaddr *a, char *buf, size_t len)
{
    char ip[INET6_ADDRSTRLEN] = "?";
    if (a->ss.ss_family == AF_INET6) {
        const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)&a->ss;
        inet_ntop(AF_INET6, &s6->sin6_addr, ip, sizeof(ip));
        snprintf(buf, len, "[%s]:%u", ip, ntohs(s6->sin6_port));
    } else {
        const struct sockaddr_in *s4 = (const struct sockaddr_in *)&a->ss;
        inet_ntop(AF_INET, &s4->sin_addr, ip, sizeof(ip));
        snprintf(buf, len, "%s:%u", ip, ntohs(s4->sin_port));
    }
    return buf;
}
