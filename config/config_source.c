/* config/config_source.c — a listener's per-source limits from JSON: the
 * "per_source" object and the prefix lengths that group clients. Defaults
 * here are the ones README "Per-source limits" documents. */
#define _GNU_SOURCE
#include "config_source.h"

#include <stdio.h>

#define DEF_SOURCE_PREFIX_V4 32
#define DEF_SOURCE_PREFIX_V6 64
#define DEF_MAX_SOURCES      65536
#define MIN_MAX_SOURCES      64 /* at least one probe window (proxy/source_limit.c) */
#define MAX_MAX_SOURCES      (1u << 24)
#define MAX_SOURCE_RATE      1000000 /* per second: a GCRA interval of 1 us at most */
#define MAX_SOURCE_BURST     1000000
#define MAX_SOURCE_CONNS     (10u * 1000 * 1000)

static void parse_per_source(struct cfg_ctx *c, json_t *listener, const char *lpath,
                             struct cfg_per_source *ps)
{
    static const char *const keys[] = {"max_connections", "rate_per_s",  "burst",
                                       "reset",           "max_sources", NULL};
    json_t *v = json_object_get(listener, "per_source");
    char path[CFG_PATH_MAX];
    cfg_join(path, lpath, "per_source");
    if (!v || json_is_null(v))
        return;
    if (!cfg_is_object(c, v, path))
        return;
    cfg_check_keys(c, v, path, keys);
    ps->enabled = 1;
    ps->max_connections = cfg_get_uint(c, v, path, "max_connections", 0, 0, MAX_SOURCE_CONNS);
    ps->rate_per_s = cfg_get_uint(c, v, path, "rate_per_s", 0, 0, MAX_SOURCE_RATE);
    ps->burst = cfg_get_uint(c, v, path, "burst", ps->rate_per_s, 0, MAX_SOURCE_BURST);
    ps->reset = cfg_get_bool(c, v, path, "reset", 0);
    ps->max_sources =
        cfg_get_uint(c, v, path, "max_sources", DEF_MAX_SOURCES, MIN_MAX_SOURCES, MAX_MAX_SOURCES);
    char p[CFG_PATH_MAX];
    if (ps->rate_per_s && ps->burst == 0) {
        cfg_join(p, path, "burst");
        cfg_fail(c, p, "expected at least 1 when rate_per_s is set, got 0");
    }
    if (!ps->rate_per_s && json_object_get(v, "burst")) {
        cfg_join(p, path, "burst");
        cfg_fail(c, p, "has no effect without rate_per_s");
    }
    if ((ps->max_sources & (ps->max_sources - 1)) != 0) {
        cfg_join(p, path, "max_sources");
        cfg_fail(c, p, "expected a power of two (e.g. 65536), got %u", ps->max_sources);
    }
}

void cfg_parse_source_limits(struct cfg_ctx *c, json_t *v, const char *path, struct cfg_listener *l)
{
    parse_per_source(c, v, path, &l->per_source);
    l->source_prefix_v4 = cfg_get_uint(c, v, path, "source_prefix_v4", DEF_SOURCE_PREFIX_V4, 0, 32);
    l->source_prefix_v6 =
        cfg_get_uint(c, v, path, "source_prefix_v6", DEF_SOURCE_PREFIX_V6, 0, 128);
}
