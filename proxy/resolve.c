/* proxy/resolve.c — DNS discovery's pure rules (proxy/resolve.h): no
 * thread, no socket, no allocation. */
#include "resolve.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "config/config_addr.h"

#define DNS_HEADER_LEN 12
#define DNS_RR_FIXED   10 /* type, class, ttl, rdlength after the owner name */

unsigned resolve_next_ms(uint32_t ttl_s, unsigned min_ms, unsigned max_ms)
{
    uint64_t ms = (uint64_t)ttl_s * 1000;
    if (ms < min_ms)
        return min_ms;
    if (ms > max_ms)
        return max_ms;
    return (unsigned)ms;
}

int resolve_backend_name(const char *name, const struct cfg_sockaddr *a, char *buf, size_t len)
{
    char addr[64];
    config_addr_format(a, addr, sizeof(addr));
    int n = snprintf(buf, len, "%s@%s", name, addr);
    return n < 0 || (size_t)n >= len ? -ENAMETOOLONG : 0;
}

int resolve_owns(const char *name, const char *backend_name)
{
    size_t n = strlen(name);
    return strncmp(name, backend_name, n) == 0 && backend_name[n] == '@';
}

void resolve_srv_weights(const unsigned *w, size_t n, unsigned *out)
{
    unsigned max = 0;
    for (size_t i = 0; i < n; i++)
        max = w[i] > max ? w[i] : max;
    for (size_t i = 0; i < n; i++) {
        if (max == 0) {
            out[i] = 1;
        } else if (w[i] == 0) {
            out[i] = 0;
        } else if (max <= RESOLVE_MAX_WEIGHT) {
            out[i] = w[i];
        } else {
            unsigned s = (unsigned)((uint64_t)w[i] * RESOLVE_MAX_WEIGHT / max);
            out[i] = s ? s : 1;
        }
    }
}

/* The length of the (possibly compressed) name at off, or 0 when it runs
 * past the end or is malformed. A pointer ends the name in place. */
static size_t name_len(const unsigned char *p, size_t len, size_t off)
{
    size_t start = off;
    while (off < len) {
        unsigned l = p[off];
        if ((l & 0xC0) == 0xC0)
            return off + 2 <= len ? off + 2 - start : 0;
        if (l & 0xC0)
            return 0; /* reserved label types */
        off += 1 + l;
        if (l == 0)
            return off <= len ? off - start : 0;
    }
    return 0;
}

uint32_t resolve_answer_ttl(const unsigned char *abuf, size_t alen, uint32_t fallback)
{
    if (alen < DNS_HEADER_LEN)
        return fallback;
    unsigned qd = (unsigned)abuf[4] << 8 | abuf[5], an = (unsigned)abuf[6] << 8 | abuf[7];
    size_t off = DNS_HEADER_LEN;
    for (unsigned i = 0; i < qd; i++) {
        size_t n = name_len(abuf, alen, off);
        if (!n || off + n + 4 > alen)
            return fallback;
        off += n + 4; /* qtype, qclass */
    }
    uint32_t best = 0;
    int found = 0;
    for (unsigned i = 0; i < an; i++) {
        size_t n = name_len(abuf, alen, off);
        if (!n || off + n + DNS_RR_FIXED > alen)
            break;
        const unsigned char *rr = abuf + off + n;
        uint32_t ttl = (uint32_t)rr[4] << 24 | (uint32_t)rr[5] << 16 | (uint32_t)rr[6] << 8 | rr[7];
        size_t rdlen = (size_t)rr[8] << 8 | rr[9];
        if (!found || ttl < best)
            best = ttl;
        found = 1;
        off += n + DNS_RR_FIXED + rdlen;
    }
    return found ? best : fallback;
}
