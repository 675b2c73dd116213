/* config/config_routes.h — a listener's "routes" (README "SNI and ALPN
 * routing"): parsed, checked and resolved to pools.
 * Private to config/; config_parse.c calls it for each listener. */
#pragma once

#include <jansson.h>

#include "config.h"
#include "config_json.h"

#define CFG_ROUTES_MAX 256 /* a listener's routes are scanned in order per connection */

/* listener: the listener's JSON object at path. Fills l->routes and
 * l->nroutes when it has "routes". */
void cfg_parse_routes(struct cfg_ctx *c, json_t *listener, const char *path,
                      struct cfg_listener *l);
/* Once the pools are known: each route's pool must exist (pool_index). */
void cfg_check_routes(struct cfg_ctx *c, const struct config *cfg, struct cfg_listener *l,
                      const char *path);
void cfg_free_routes(struct cfg_listener *l);
