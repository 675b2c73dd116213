/* config/config_routes.c — a listener's "routes" (README "SNI and ALPN
 * routing"): each route's shape ({"sni"} and/or {"alpn"}, or {"default":
 * true}, and a "pool"), server names as DNS names or "*." wildcards,
 * lowercased once here so matching compares bytes, one default at most, no
 * route twice. Which route a connection takes is proxy/route.c's. */
#define _GNU_SOURCE
#include "config_routes.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ROUTE_NAME_MAX  253 /* DNS: a name of at most 253 characters ... */
#define ROUTE_LABEL_MAX 63  /* ... in labels of at most 63 */
#define ROUTE_ALPN_MAX  255 /* RFC 7301: a protocol name is 1 to 255 bytes */

/* A server name as a ClientHello carries it (proxy/tls_hello.c accepts the
 * same): letters, digits, '-' and '_' in dot-separated labels, no trailing
 * dot. A leading "*." makes it a wildcard for exactly one label. Lowercases
 * s in place. */
static int valid_route_name(char *s)
{
    char *name = strncmp(s, "*.", 2) == 0 ? s + 2 : s;
    size_t n = strlen(name), label = 0;
    if (n == 0 || n > ROUTE_NAME_MAX)
        return 0;
    for (size_t i = 0; i <= n; i++) {
        char ch = name[i];
        if (ch == '.' || ch == '\0') {
            if (label == 0)
                return 0;
            label = 0;
            continue;
        }
        if (ch >= 'A' && ch <= 'Z')
            name[i] = (char)(ch - 'A' + 'a');
        else if (!((ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') || ch == '-' || ch == '_'))
            return 0;
        if (++label > ROUTE_LABEL_MAX)
            return 0;
    }
    return 1;
}

static int same(const char *a, const char *b)
{
    return (!a && !b) || (a && b && strcmp(a, b) == 0);
}

static void parse_route(struct cfg_ctx *c, json_t *v, const char *path, struct cfg_route *r)
{
    static const char *const keys[] = {"sni", "alpn", "default", "pool", NULL};
    char p[CFG_PATH_MAX];
    if (!cfg_is_object(c, v, path))
        return;
    cfg_check_keys(c, v, path, keys);
    r->pool = cfg_get_string(c, v, path, "pool", 1, NULL);
    r->sni = cfg_get_string(c, v, path, "sni", 0, NULL);
    if (r->sni && !valid_route_name(r->sni)) {
        cfg_join(p, path, "sni");
        cfg_fail(c, p,
                 "expected a server name (labels of letters, digits, '-' and '_' joined by "
                 "'.', at most %d characters) or \"*.\" and one, got \"%.80s\"",
                 ROUTE_NAME_MAX, r->sni);
    }
    r->alpn = cfg_get_string(c, v, path, "alpn", 0, NULL);
    if (r->alpn && strlen(r->alpn) > ROUTE_ALPN_MAX) {
        cfg_join(p, path, "alpn");
        cfg_fail(c, p, "expected a protocol name of at most %d bytes (e.g. \"h2\")",
                 ROUTE_ALPN_MAX);
    }
    json_t *d = json_object_get(v, "default");
    if (d && !json_is_boolean(d)) {
        cfg_join(p, path, "default");
        cfg_fail(c, p, "expected true or false, got %s", cfg_type_name(d));
    }
    r->is_default = d && json_is_true(d);
    if (r->is_default && (r->sni || r->alpn))
        cfg_fail(c, path, "a default route takes no \"sni\" or \"alpn\"");
    if (!r->is_default && !r->sni && !r->alpn)
        cfg_fail(c, path, "expected \"sni\", \"alpn\" or \"default\": true");
}

void cfg_parse_routes(struct cfg_ctx *c, json_t *listener, const char *path, struct cfg_listener *l)
{
    json_t *routes = json_object_get(listener, "routes");
    char p[CFG_PATH_MAX];
    if (!routes)
        return;
    if (!(routes = cfg_get_array(c, listener, path, "routes")))
        return;
    cfg_join(p, path, "routes");
    if (json_array_size(routes) > CFG_ROUTES_MAX) {
        cfg_fail(c, p, "expected at most %d routes, got %zu", CFG_ROUTES_MAX,
                 json_array_size(routes));
        return;
    }
    l->routes = calloc(json_array_size(routes), sizeof(*l->routes));
    if (!l->routes) {
        cfg_fail(c, p, "out of memory");
        return;
    }
    l->nroutes = json_array_size(routes);
    for (size_t i = 0; i < l->nroutes; i++) {
        char rp[CFG_PATH_MAX];
        struct cfg_route *r = &l->routes[i];
        snprintf(rp, sizeof(rp), "%s[%zu]", p, i);
        parse_route(c, json_array_get(routes, i), rp, r);
        for (size_t j = 0; j < i; j++) {
            const struct cfg_route *o = &l->routes[j];
            if (r->is_default && o->is_default)
                cfg_fail(c, rp, "a second default route (also %s[%zu])", p, j);
            else if (!r->is_default && !o->is_default && same(r->sni, o->sni) &&
                     same(r->alpn, o->alpn))
                cfg_fail(c, rp, "the same \"sni\" and \"alpn\" as %s[%zu]", p, j);
        }
    }
}

void cfg_check_routes(struct cfg_ctx *c, const struct config *cfg, struct cfg_listener *l,
                      const char *path)
{
    for (size_t i = 0; i < l->nroutes; i++) {
        struct cfg_route *r = &l->routes[i];
        if (!r->pool)
            continue;
        size_t k = 0;
        while (k < cfg->npools && !(cfg->pools[k].name && strcmp(cfg->pools[k].name, r->pool) == 0))
            k++;
        if (k == cfg->npools) {
            char p[CFG_PATH_MAX];
            snprintf(p, sizeof(p), "%s.routes[%zu].pool", path, i);
            cfg_fail(c, p, "no pool named \"%s\" (expected the name of an entry in pools)",
                     r->pool);
        }
        r->pool_index = k;
    }
    /* A routed listener's own pool is only where its sessions start (the
     * inspector picks theirs before the dial): the default's, or the first. */
    for (size_t i = 0; i < l->nroutes; i++)
        if (l->routes[i].is_default || i == 0)
            l->pool_index = l->routes[i].pool_index;
}

void cfg_free_routes(struct cfg_listener *l)
{
    for (size_t i = 0; i < l->nroutes; i++) {
        free(l->routes[i].sni);
        free(l->routes[i].alpn);
        free(l->routes[i].pool);
    }
    free(l->routes);
    l->routes = NULL;
    l->nroutes = 0;
}
