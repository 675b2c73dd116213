/* config/config_source.h — a listener's per-source keys ("per_source",
 * "source_prefix_v4", "source_prefix_v6"), read by config_source.c for
 * config_parse.c. Private to config/. */
#pragma once

#include <jansson.h>

#include "config.h"
#include "config_json.h"

/* The listener's keys a per-source limit adds (for cfg_check_keys). */
#define CFG_SOURCE_KEYS "per_source", "source_prefix_v4", "source_prefix_v6"

/* Reads the per-source keys of listener object v at path into l, with their
 * defaults; records every error. */
void cfg_parse_source_limits(struct cfg_ctx *c, json_t *v, const char *path,
                             struct cfg_listener *l);
