/* proxy/proxy_proto.c — the PROXY protocol's parser and builder (see
 * proxy/proxy_proto.h). Written from HAProxy's proxy-protocol.txt: the facts
 * (field order, signature, lengths, families) come from it; every bound is
 * checked against the bytes given before they are read. */
#define _GNU_SOURCE
#include "proxy_proto.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

static const uint8_t V2_SIG[PROXY_V2_SIG_LEN] = {0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D,
                                                 0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A};
static const char V1_PREFIX[] = "PROXY ";
#define V1_PREFIX_LEN (sizeof(V1_PREFIX) - 1)

/* v2's byte 12: version (high nibble, always 2) and command (low). */
#define V2_VERSION   0x20
#define V2_CMD_LOCAL 0x0
#define V2_CMD_PROXY 0x1
/* v2's byte 13: address family (high nibble) and transport (low). */
#define V2_AF_UNSPEC       0x0
#define V2_AF_INET         0x1
#define V2_AF_INET6        0x2
#define V2_AF_UNIX         0x3
#define V2_TP_STREAM       0x1
#define V2_TP_DGRAM        0x2
#define V2_INET_LEN        12  /* two IPv4 addresses, two ports */
#define V2_INET6_LEN       36  /* two IPv6 addresses, two ports */
#define V2_UNIX_LEN        216 /* two 108-byte paths */
#define V2_TLV_HDR         3   /* type, length (big endian) */
#define PP2_TYPE_UNIQUE_ID 0x05

/* The longest v1 address token: an IPv6 address in text. */
#define V1_ADDR_MAX 45

/* A token of the v1 line: [p, p + n). */
struct span {
    const char *p;
    size_t n;
};

/* Splits line[0, n) on single spaces into at most max tokens; returns how
 * many, or -1 for an empty token (two spaces, a leading or trailing space)
 * or more than max. */
static int v1_split(const char *line, size_t n, struct span *tok, int max)
{
    int k = 0;
    size_t start = 0;
    for (size_t i = 0; i <= n; i++) {
        if (i < n && line[i] != ' ')
            continue;
        if (i == start || k == max)
            return -1;
        tok[k].p = line + start;
        tok[k].n = i - start;
        k++;
        start = i + 1;
    }
    return k;
}

static int v1_addr(const struct span *t, int family, struct sock_addr *out)
{
    char text[V1_ADDR_MAX + 1];
    if (t->n > V1_ADDR_MAX)
        return -1;
    memcpy(text, t->p, t->n);
    text[t->n] = '\0';
    out->family = (uint8_t)family;
    return inet_pton(family, text, out->ip) == 1 ? 0 : -1;
}

/* A port: 1 to 5 decimal digits, at most 65535. */
static int v1_port(const struct span *t, uint16_t *out)
{
    unsigned v = 0;
    if (t->n == 0 || t->n > 5)
        return -1;
    for (size_t i = 0; i < t->n; i++) {
        if (t->p[i] < '0' || t->p[i] > '9')
            return -1;
        v = v * 10 + (unsigned)(t->p[i] - '0');
    }
    if (v > 65535)
        return -1;
    *out = (uint16_t)v;
    return 0;
}

static enum proxy_parse parse_v1(const uint8_t *buf, size_t len, struct proxy_hdr *out)
{
    size_t lim = len < PROXY_V1_MAX ? len : PROXY_V1_MAX, eol = 0;
    int found = 0;
    for (size_t i = V1_PREFIX_LEN; i < lim; i++) {
        if (buf[i] == '\n') {
            eol = i;
            found = 1;
            break;
        }
    }
    if (!found)
        return len >= PROXY_V1_MAX ? PROXY_PARSE_BAD : PROXY_PARSE_NEED_MORE;
    if (buf[eol - 1] != '\r')
        return PROXY_PARSE_BAD;
    /* The fields between "PROXY " and "\r\n". */
    const char *line = (const char *)buf + V1_PREFIX_LEN;
    size_t n = eol - 1 - V1_PREFIX_LEN;
    struct span tok[5];
    int k = v1_split(line, n, tok, 5);
    memset(out, 0, sizeof(*out));
    out->version = 1;
    out->len = (uint32_t)(eol + 1);
    /* UNKNOWN: whatever follows it on the line is ignored (the spec). */
    if (n >= 7 && memcmp(line, "UNKNOWN", 7) == 0 && (n == 7 || line[7] == ' '))
        return PROXY_PARSE_OK;
    if (k != 5 || tok[0].n != 4)
        return PROXY_PARSE_BAD;
    int family;
    if (memcmp(tok[0].p, "TCP4", 4) == 0)
        family = AF_INET;
    else if (memcmp(tok[0].p, "TCP6", 4) == 0)
        family = AF_INET6;
    else
        return PROXY_PARSE_BAD;
    if (v1_addr(&tok[1], family, &out->src) || v1_addr(&tok[2], family, &out->dst) ||
        v1_port(&tok[3], &out->src.port) || v1_port(&tok[4], &out->dst.port))
        return PROXY_PARSE_BAD;
    out->has_addrs = 1;
    return PROXY_PARSE_OK;
}

static uint16_t be16(const uint8_t *p)
{
    return (uint16_t)((p[0] << 8) | p[1]);
}

/* The TLVs in [p, end) must each fit: a malformed one makes the header bad
 * (its contents are not used). */
static int v2_tlvs_fit(const uint8_t *p, const uint8_t *end)
{
    while (p < end) {
        if ((size_t)(end - p) < V2_TLV_HDR)
            return 0;
        size_t n = be16(p + 1);
        if ((size_t)(end - p) - V2_TLV_HDR < n)
            return 0;
        p += V2_TLV_HDR + n;
    }
    return 1;
}

static void v2_addr(struct sock_addr *a, int family, const uint8_t *ip, size_t iplen,
                    const uint8_t *port)
{
    a->family = (uint8_t)family;
    memcpy(a->ip, ip, iplen);
    a->port = be16(port);
}

static enum proxy_parse parse_v2(const uint8_t *buf, size_t len, struct proxy_hdr *out)
{
    if (len > PROXY_V2_SIG_LEN) {
        unsigned ver = buf[12] & 0xF0, cmd = buf[12] & 0x0F;
        if (ver != V2_VERSION || (cmd != V2_CMD_LOCAL && cmd != V2_CMD_PROXY))
            return PROXY_PARSE_BAD;
    }
    if (len > PROXY_V2_SIG_LEN + 1) {
        unsigned af = buf[13] >> 4, tp = buf[13] & 0x0F;
        if (af > V2_AF_UNIX || tp > V2_TP_DGRAM)
            return PROXY_PARSE_BAD;
    }
    if (len < PROXY_V2_HDR)
        return PROXY_PARSE_NEED_MORE;
    size_t body = be16(buf + 14), total = PROXY_V2_HDR + body;
    if (len < total)
        return PROXY_PARSE_NEED_MORE;
    memset(out, 0, sizeof(*out));
    out->version = 2;
    out->len = (uint32_t)total;
    unsigned cmd = buf[12] & 0x0F, af = buf[13] >> 4, tp = buf[13] & 0x0F;
    /* LOCAL: the sender speaks for itself (a health check); whatever it
     * carries is ignored. So is PROXY over an unspecified family. */
    if (cmd == V2_CMD_LOCAL || af == V2_AF_UNSPEC)
        return PROXY_PARSE_OK;
    size_t alen = af == V2_AF_INET ? V2_INET_LEN : af == V2_AF_INET6 ? V2_INET6_LEN : V2_UNIX_LEN;
    if (body < alen)
        return PROXY_PARSE_BAD;
    const uint8_t *a = buf + PROXY_V2_HDR;
    if (!v2_tlvs_fit(a + alen, buf + total))
        return PROXY_PARSE_BAD;
    /* AF_UNIX paths and datagram addresses mean nothing to a TCP backend:
     * accepted, and the connection's own addresses stand. */
    if (tp != V2_TP_STREAM || af == V2_AF_UNIX)
        return PROXY_PARSE_OK;
    if (af == V2_AF_INET) {
        v2_addr(&out->src, AF_INET, a, 4, a + 8);
        v2_addr(&out->dst, AF_INET, a + 4, 4, a + 10);
    } else {
        v2_addr(&out->src, AF_INET6, a, 16, a + 32);
        v2_addr(&out->dst, AF_INET6, a + 16, 16, a + 34);
    }
    out->has_addrs = 1;
    return PROXY_PARSE_OK;
}

enum proxy_parse proxy_proto_parse(const uint8_t *buf, size_t len, struct proxy_hdr *out)
{
    if (len == 0)
        return PROXY_PARSE_NEED_MORE;
    if (buf[0] == V1_PREFIX[0]) {
        size_t n = len < V1_PREFIX_LEN ? len : V1_PREFIX_LEN;
        if (memcmp(buf, V1_PREFIX, n) != 0)
            return PROXY_PARSE_BAD;
        return len <= V1_PREFIX_LEN ? PROXY_PARSE_NEED_MORE : parse_v1(buf, len, out);
    }
    size_t n = len < PROXY_V2_SIG_LEN ? len : PROXY_V2_SIG_LEN;
    if (memcmp(buf, V2_SIG, n) != 0)
        return PROXY_PARSE_BAD;
    return len <= PROXY_V2_SIG_LEN ? PROXY_PARSE_NEED_MORE : parse_v2(buf, len, out);
}

/* An IPv4 address as IPv4-mapped IPv6 (::ffff:a.b.c.d). */
static void map_v6(struct sock_addr *a)
{
    uint8_t v4[4];
    memcpy(v4, a->ip, 4);
    memset(a->ip, 0, 10);
    a->ip[10] = a->ip[11] = 0xff;
    memcpy(a->ip + 12, v4, 4);
    a->family = AF_INET6;
}

static int known(const struct sock_addr *a)
{
    return a->family == AF_INET || a->family == AF_INET6;
}

static int build_v1(uint8_t *out, size_t cap, const struct sock_addr *src,
                    const struct sock_addr *dst)
{
    char s[INET6_ADDRSTRLEN], d[INET6_ADDRSTRLEN];
    int n;
    if (!src) {
        n = snprintf((char *)out, cap, "PROXY UNKNOWN\r\n");
    } else {
        if (!inet_ntop(src->family, src->ip, s, sizeof(s)) ||
            !inet_ntop(dst->family, dst->ip, d, sizeof(d)))
            return -EINVAL;
        n = snprintf((char *)out, cap, "PROXY %s %s %s %u %u\r\n",
                     src->family == AF_INET ? "TCP4" : "TCP6", s, d, src->port, dst->port);
    }
    return n < 0 || (size_t)n >= cap ? -ENOSPC : n;
}

static uint8_t *put16(uint8_t *p, unsigned v)
{
    p[0] = (uint8_t)(v >> 8);
    p[1] = (uint8_t)v;
    return p + 2;
}

static int build_v2(uint8_t *out, size_t cap, const struct sock_addr *src,
                    const struct sock_addr *dst, const void *id, size_t id_len)
{
    size_t ipn = !src ? 0 : src->family == AF_INET ? 4 : 16;
    size_t alen = ipn ? 2 * ipn + 4 : 0;
    size_t tlv = id_len ? V2_TLV_HDR + id_len : 0;
    size_t total = PROXY_V2_HDR + alen + tlv;
    if (total > cap)
        return -ENOSPC;
    uint8_t *p = out;
    memcpy(p, V2_SIG, PROXY_V2_SIG_LEN);
    p += PROXY_V2_SIG_LEN;
    *p++ = V2_VERSION | V2_CMD_PROXY;
    *p++ = !ipn ? 0 : (uint8_t)(((ipn == 4 ? V2_AF_INET : V2_AF_INET6) << 4) | V2_TP_STREAM);
    p = put16(p, (unsigned)(alen + tlv));
    if (ipn) {
        memcpy(p, src->ip, ipn);
        memcpy(p + ipn, dst->ip, ipn);
        p = put16(p + 2 * ipn, src->port);
        p = put16(p, dst->port);
    }
    if (id_len) {
        *p++ = PP2_TYPE_UNIQUE_ID;
        p = put16(p, (unsigned)id_len);
        memcpy(p, id, id_len);
        p += id_len;
    }
    return (int)(p - out);
}

int proxy_proto_build(uint8_t *out, size_t cap, int version, const struct sock_addr *src,
                      const struct sock_addr *dst, const void *unique_id, size_t id_len)
{
    if ((version != 1 && version != 2) || id_len > PROXY_UNIQUE_ID_MAX || (id_len && !unique_id))
        return -EINVAL;
    struct sock_addr s, d;
    const struct sock_addr *ps = NULL, *pd = NULL;
    if (src && dst && known(src) && known(dst)) {
        s = *src;
        d = *dst;
        if (s.family != d.family) {
            if (s.family == AF_INET)
                map_v6(&s);
            else
                map_v6(&d);
        }
        ps = &s;
        pd = &d;
    }
    return version == 1 ? build_v1(out, cap, ps, pd)
                        : build_v2(out, cap, ps, pd, unique_id, id_len);
}
