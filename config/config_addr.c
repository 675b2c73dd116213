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

int config_addr_parse(const char *text, int allow_hostname, struct cfg_sockaddr *out, char *why,
                      size_t whylen)
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

    struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&out->ss;
    struct sockaddr_in *s4 = (struct sockaddr_in *)&out->ss;
    if (bracketed) {
        if (inet_pton(AF_INET6, host, &s6->sin6_addr) != 1)
            goto bad;
        s6->sin6_family = AF_INET6;
        s6->sin6_port = htons((uint16_t)port);
        out->len = sizeof(*s6);
        return 0;
    }
    if (inet_pton(AF_INET, host, &s4->sin_addr) == 1) {
        s4->sin_family = AF_INET;
        s4->sin_port = htons((uint16_t)port);
        out->len = sizeof(*s4);
        return 0;
    }
    if (!allow_hostname)
        goto bad;
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM}, *res = NULL;
    int rc = resolve_names ? getaddrinfo(host, NULL, &hints, &res) : EAI_NONAME;
    if (rc != 0 || !res) {
        snprintf(why, whylen, "cannot resolve host \"%s\": %s", host, gai_strerror(rc));
        return -1;
    }
    memcpy(&out->ss, res->ai_addr, res->ai_addrlen);
    out->len = res->ai_addrlen;
    if (res->ai_family == AF_INET6)
        s6->sin6_port = htons((uint16_t)port);
    else
        s4->sin_port = htons((uint16_t)port);
    freeaddrinfo(res);
    return 0;
bad:
    snprintf(why, whylen, "%s, got \"%s\"", expected, text);
    return -1;
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
