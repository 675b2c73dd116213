/* proxy/route.c — route matching (proxy/route.h). A wildcard "*.example"
 * stands for exactly one label, as in certificates (RFC 6125 6.4.3) and
 * Traefik's HostSNI: "a.example" matches, "a.b.example" and "example" do not;
 * so at most one wildcard pattern can match a name, and the backend behind it
 * can hold a certificate that covers every name routed to it. */
#include "route.h"

#include <string.h>

#include "tls_hello.h"

/* Rank of a route that matches: lower is more specific. */
enum {
    RANK_EXACT = 0,
    RANK_WILDCARD = 2,
    RANK_ANY_NAME = 4,
    RANK_DEFAULT = 6,
    RANK_NONE = 7,
};

int route_name_matches(const char *pattern, const char *name)
{
    if (pattern[0] != '*' || pattern[1] != '.')
        return strcmp(pattern, name) == 0;
    const char *dot = strchr(name, '.');
    return dot && dot != name && strcmp(dot + 1, pattern + 2) == 0;
}

static int rank(const struct cfg_route *r, const struct tls_hello *h)
{
    int k;
    if (r->is_default)
        return RANK_DEFAULT;
    if (!r->sni)
        k = RANK_ANY_NAME;
    else if (!h->sni[0] || !route_name_matches(r->sni, h->sni))
        return RANK_NONE;
    else
        k = r->sni[0] == '*' ? RANK_WILDCARD : RANK_EXACT;
    if (!r->alpn)
        return k + 1; /* no protocol condition: after one that names the client's */
    return tls_hello_has_alpn(h, r->alpn) ? k : RANK_NONE;
}

int route_match(const struct cfg_route *routes, size_t n, const struct tls_hello *h)
{
    int best = -1, best_rank = RANK_NONE;
    for (size_t i = 0; i < n && best_rank != RANK_EXACT; i++) {
        int k = rank(&routes[i], h);
        if (k < best_rank) {
            best_rank = k;
            best = (int)i;
        }
    }
    return best;
}
