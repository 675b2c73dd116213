/* config/config_dns.h — the config of DNS discovery (config/config_dns.c):
 * the top-level "resolver" and a backend's "address"/"resolve"/"srv".
 * Private to config/. */
#pragma once

#include <jansson.h>

#include "config.h"
#include "config_json.h"

/* The top-level "resolver" (defaults when absent); sets c->names_at_start
 * when it lists servers. Parsed before the pools, which depend on that. */
void cfg_parse_resolver(struct cfg_ctx *c, json_t *root, struct cfg_resolver *r);
/* A backend's target: "address" (with "resolve") or "srv". */
void cfg_parse_backend_target(struct cfg_ctx *c, json_t *v, const char *path,
                              struct cfg_backend *b);
