/* proxy/listener_routes.c — a listener's "routes" at run time (README "SNI
 * and ALPN routing"): its own copy of the config's routes, each route's pool
 * and counter. Which route a ClientHello takes is route.c's; reading the
 * ClientHello is session_sni.c's. Built before the pollers run, read by
 * every sub-reactor, freed with the listener. */
#define _GNU_SOURCE
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "listener.h"
#include "pool.h"

/* s copied into *out; NULL stays NULL. 0, or -ENOMEM. */
static int copy_str(char **out, const char *s)
{
    *out = s ? strdup(s) : NULL;
    return s && !*out ? -ENOMEM : 0;
}

int listener_set_routes(struct listener *l, const struct cfg_listener *cfg,
                        struct pool *const *pools)
{
    if (!cfg->nroutes)
        return 0;
    l->routes = calloc(cfg->nroutes, sizeof(*l->routes));
    l->route_to = calloc(cfg->nroutes, sizeof(*l->route_to));
    if (!l->routes || !l->route_to)
        goto fail;
    l->nroutes = cfg->nroutes;
    for (size_t i = 0; i < cfg->nroutes; i++) {
        const struct cfg_route *c = &cfg->routes[i];
        struct cfg_route *r = &l->routes[i];
        r->is_default = c->is_default;
        r->pool_index = c->pool_index;
        if (copy_str(&r->sni, c->sni) || copy_str(&r->alpn, c->alpn) || copy_str(&r->pool, c->pool))
            goto fail;
        atomic_init(&l->route_to[i].pool, pools[c->pool_index]);
    }
    l->inspect |= 1u << LISTENER_INSPECT_SNI;
    return 0;
fail:
    listener_free_routes(l);
    return -ENOMEM;
}

void listener_free_routes(struct listener *l)
{
    for (size_t i = 0; l->routes && i < l->nroutes; i++) {
        free(l->routes[i].sni);
        free(l->routes[i].alpn);
        free(l->routes[i].pool);
    }
    free(l->routes);
    free(l->route_to);
    l->routes = NULL;
    l->route_to = NULL;
    l->nroutes = 0;
}
