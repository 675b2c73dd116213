/* config/config_parse.c — JSON (jansson) to struct config: shape checks,
 * defaults, cross-references. Collects every error rather than stopping at
 * the first, so one --check run shows all that is wrong. The defaults here are
 * the ones README.md's configuration table documents. */
#define _GNU_SOURCE
#include "config.h"

#include <jansson.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config_addr.h"
#include "config_dns.h"
#include "config_json.h"
#include "config_routes.h"
#include "config_source.h"
#define DEF_POLLERS                0
#define DEF_SHUTDOWN_GRACE_MS      10000
#define DEF_SHUTDOWN_DELAY_MS      0
#define DEF_SHED_RATE_PER_S        1000
#define MAX_SHED_RATE_PER_S        10000000
#define DEF_ADMIN_LISTEN           "127.0.0.1:9090"
#define DEF_MAX_CONNECTIONS        10000
#define DEF_BACKLOG                1024
#define DEF_CONNECT_TIMEOUT_MS     2000
#define DEF_IDLE_TIMEOUT_MS        600000
#define DEF_RETRIES                2
#define DEF_HIGH_WATERMARK         (256u * 1024)
#define DEF_LOW_WATERMARK          (64u * 1024)
#define DEF_WEIGHT                 1
#define DEF_MAGLEV_TABLE_SIZE      65537
#define MAX_MAGLEV_TABLE_SIZE      1048573
#define DEF_MAX_FAILS              3
#define DEF_FAIL_WINDOW_MS         10000
#define DEF_INSPECT_TIMEOUT_MS     3000
#define DEF_HC_INTERVAL_MS         2000
#define DEF_HC_TIMEOUT_MS          1000
#define DEF_HC_RISE                2
#define DEF_HC_FALL                3
#define MIN_BUFFER_MEMORY          (1024u * 1024)
#define DEF_MIN_BUFFER_MEMORY_AUTO (64ull * 1024 * 1024)
#define MAX_WEIGHT                 1000
#define MAX_POLLERS                256
#define MAX_TIMEOUT_MS             (24u * 3600 * 1000)
#define MAX_ALLOWED_HOSTS          64
#define MAX_HOST_NAME              253  /* DNS: a name of at most 253 characters ... */
#define MAX_HOST_LABEL             63   /* ... in labels of at most 63 */
#define DEF_LOG_RING_SIZE          4096 /* 1.2 MiB per sub-reactor: 40 ms of 100k closes/s */
#define MAX_LOG_RING_SIZE          (1u << 20)

/* In enum pollmgr_balance's order (reactor/pollmgr-t.h): the only place the
 * poller balances are spelled. */
static const char *const POLLER_BALANCES[] = {"round_robin", "random", "least_loaded", NULL};
/* In enum poll_kind's order (reactor/poll-t.h). */
static const char *const IOS[] = {"epoll", "io_uring", NULL};
static const char *const POOL_BALANCES[] = {"round_robin", "least_conn", "random", "source_hash",
                                            NULL};

const char *config_poller_balance_name(enum pollmgr_balance b)
{
    return POLLER_BALANCES[b];
}
const char *config_io_name(enum poll_kind k)
{
    return IOS[k];
}
const char *config_pool_balance_name(enum cfg_pool_balance b)
{
    return POOL_BALANCES[b];
}

static void parse_backend(struct cfg_ctx *c, json_t *v, const char *path, struct cfg_backend *b)
{
    static const char *const keys[] = {"name", "address", "weight", "resolve", "srv", NULL};
    if (!cfg_is_object(c, v, path))
        return;
    cfg_check_keys(c, v, path, keys);
    b->name = cfg_get_name(c, v, path);
    cfg_parse_backend_target(c, v, path, b); /* address or srv (config_dns.c) */
    b->weight = cfg_get_uint(c, v, path, "weight", DEF_WEIGHT, 0, MAX_WEIGHT);
}

static int is_prime(unsigned n)
{
    if (n < 2)
        return 0;
    for (unsigned d = 2; d * d <= n; d++)
        if (n % d == 0)
            return 0;
    return 1;
}

static void parse_health_check(struct cfg_ctx *c, json_t *pool, const char *pool_path,
                               struct cfg_health_check *hc)
{
    static const char *const keys[] = {"interval_ms", "timeout_ms", "rise", "fall",
                                       "send",        "expect",     NULL};
    json_t *v = json_object_get(pool, "health_check");
    char path[CFG_PATH_MAX];
    cfg_join(path, pool_path, "health_check");
    if (!v || json_is_null(v))
        return;
    if (!cfg_is_object(c, v, path))
        return;
    cfg_check_keys(c, v, path, keys);
    hc->enabled = 1;
    hc->interval_ms =
        cfg_get_uint(c, v, path, "interval_ms", DEF_HC_INTERVAL_MS, 10, MAX_TIMEOUT_MS);
    hc->timeout_ms = cfg_get_uint(c, v, path, "timeout_ms", DEF_HC_TIMEOUT_MS, 1, MAX_TIMEOUT_MS);
    hc->rise = cfg_get_uint(c, v, path, "rise", DEF_HC_RISE, 1, 100);
    hc->fall = cfg_get_uint(c, v, path, "fall", DEF_HC_FALL, 1, 100);
    hc->send = cfg_get_payload(c, v, path, "send", &hc->send_len);
    hc->expect = cfg_get_payload(c, v, path, "expect", &hc->expect_len);
    if (hc->timeout_ms > hc->interval_ms) {
        char p[CFG_PATH_MAX];
        cfg_join(p, path, "timeout_ms");
        cfg_fail(c, p, "expected at most interval_ms (%u), got %u", hc->interval_ms,
                 hc->timeout_ms);
    }
}

static void parse_pool(struct cfg_ctx *c, json_t *v, const char *path, struct cfg_pool *pl)
{
    static const char *const keys[] = {"name",
                                       "balance",
                                       "connect_timeout_ms",
                                       "idle_timeout_ms",
                                       "retries",
                                       "buffer_high_watermark",
                                       "buffer_low_watermark",
                                       "maglev_table_size",
                                       "zero_copy",
                                       "proxy_protocol",
                                       "max_fails",
                                       "fail_window_ms",
                                       "max_session_age_ms",
                                       "health_check",
                                       "backends",
                                       NULL};
    if (!cfg_is_object(c, v, path))
        return;
    cfg_check_keys(c, v, path, keys);
    pl->name = cfg_get_name(c, v, path);
    pl->balance = (enum cfg_pool_balance)cfg_get_enum(c, v, path, "balance", POOL_BALANCES, 0);
    static const char *const ZERO_COPY[] = {"none", "splice", NULL};
    pl->zero_copy = (enum cfg_zero_copy)cfg_get_enum(c, v, path, "zero_copy", ZERO_COPY, 0);
    static const char *const PROXY_PROTOCOL[] = {"off", "v1", "v2", NULL};
    pl->proxy_protocol =
        (enum cfg_proxy_protocol)cfg_get_enum(c, v, path, "proxy_protocol", PROXY_PROTOCOL, 0);
    pl->connect_timeout_ms =
        cfg_get_uint(c, v, path, "connect_timeout_ms", DEF_CONNECT_TIMEOUT_MS, 1, MAX_TIMEOUT_MS);
    pl->idle_timeout_ms =
        cfg_get_uint(c, v, path, "idle_timeout_ms", DEF_IDLE_TIMEOUT_MS, 0, MAX_TIMEOUT_MS);
    pl->retries = cfg_get_uint(c, v, path, "retries", DEF_RETRIES, 0, 100);
    pl->buffer_high_watermark = cfg_get_uint(c, v, path, "buffer_high_watermark",
                                             DEF_HIGH_WATERMARK, 4096, 64u * 1024 * 1024);
    pl->buffer_low_watermark =
        cfg_get_uint(c, v, path, "buffer_low_watermark",
                     pl->buffer_high_watermark < DEF_LOW_WATERMARK ? pl->buffer_high_watermark / 4
                                                                   : DEF_LOW_WATERMARK,
                     0, 64u * 1024 * 1024);
    if (pl->buffer_low_watermark >= pl->buffer_high_watermark) {
        char p[CFG_PATH_MAX];
        cfg_join(p, path, "buffer_low_watermark");
        cfg_fail(c, p, "expected less than buffer_high_watermark (%u), got %u",
                 pl->buffer_high_watermark, pl->buffer_low_watermark);
    }
    pl->maglev_table_size = cfg_get_uint(c, v, path, "maglev_table_size", DEF_MAGLEV_TABLE_SIZE, 7,
                                         MAX_MAGLEV_TABLE_SIZE);
    if (!is_prime(pl->maglev_table_size)) {
        char p[CFG_PATH_MAX];
        cfg_join(p, path, "maglev_table_size");
        cfg_fail(c, p, "expected a prime number (e.g. 65537), got %u", pl->maglev_table_size);
    }
    pl->max_fails = cfg_get_uint(c, v, path, "max_fails", DEF_MAX_FAILS, 0, 1000);
    pl->fail_window_ms =
        cfg_get_uint(c, v, path, "fail_window_ms", DEF_FAIL_WINDOW_MS, 1, MAX_TIMEOUT_MS);
    pl->max_session_age_ms = cfg_get_uint(c, v, path, "max_session_age_ms", 0, 0, MAX_TIMEOUT_MS);
    parse_health_check(c, v, path, &pl->health_check);
    json_t *arr = cfg_get_array(c, v, path, "backends");
    if (!arr)
        return;
    pl->nbackends = json_array_size(arr);
    pl->backends = calloc(pl->nbackends, sizeof(*pl->backends));
    if (!pl->backends) {
        pl->nbackends = 0;
        cfg_fail(c, path, "out of memory");
        return;
    }
    for (size_t i = 0; i < pl->nbackends; i++) {
        char p[CFG_PATH_MAX];
        snprintf(p, sizeof(p), "%s.backends[%zu]", path, i);
        parse_backend(c, json_array_get(arr, i), p, &pl->backends[i]);
        for (size_t j = 0; j < i && pl->backends[i].name; j++) {
            if (pl->backends[j].name && strcmp(pl->backends[j].name, pl->backends[i].name) == 0) {
                char pn[CFG_PATH_MAX];
                cfg_join(pn, p, "name");
                cfg_fail(c, pn, "duplicate backend name \"%s\" (also %s.backends[%zu])",
                         pl->backends[i].name, path, j);
            }
        }
    }
}

static void parse_listener(struct cfg_ctx *c, json_t *v, const char *path, struct cfg_listener *l)
{
    static const char *const keys[] = {"name",
                                       "listen",
                                       "pool",
                                       "max_connections",
                                       "backlog",
                                       "accept_proxy_protocol",
                                       "inspect_timeout_ms",
                                       "routes",
                                       CFG_SOURCE_KEYS,
                                       NULL};
    if (!cfg_is_object(c, v, path))
        return;
    cfg_check_keys(c, v, path, keys);
    l->name = cfg_get_name(c, v, path);
    l->listen = cfg_get_string(c, v, path, "listen", 1, NULL);
    cfg_get_addr(c, path, "listen", l->listen, 1, &l->addr);
    /* A pool, or routes that pick one per connection: exactly one of them. */
    int routed = json_object_get(v, "routes") != NULL;
    l->pool = cfg_get_string(c, v, path, "pool", 0, NULL);
    if (routed && l->pool)
        cfg_fail(c, path, "set either \"pool\" or \"routes\", not both");
    json_t *pool = json_object_get(v, "pool");
    if (!routed && (!pool || json_is_null(pool))) {
        char p[CFG_PATH_MAX];
        cfg_join(p, path, "pool");
        cfg_fail(c, p, "missing (expected a pool's name, or \"routes\" instead)");
    }
    cfg_parse_routes(c, v, path, l);
    l->max_connections =
        cfg_get_uint(c, v, path, "max_connections", DEF_MAX_CONNECTIONS, 0, 10u * 1000 * 1000);
    l->backlog = cfg_get_uint(c, v, path, "backlog", DEF_BACKLOG, 1, 65535);
    l->accept_proxy_protocol = cfg_get_bool(c, v, path, "accept_proxy_protocol", 0);
    l->inspect_timeout_ms =
        cfg_get_uint(c, v, path, "inspect_timeout_ms", DEF_INSPECT_TIMEOUT_MS, 1, MAX_TIMEOUT_MS);
    cfg_parse_source_limits(c, v, path, l);
}

/* A DNS name as a Host header carries it: letters, digits and '-' in
 * dot-separated labels, no port, no wildcard, no trailing dot. */
static int valid_host_name(const char *s)
{
    size_t n = strlen(s), label = 0;
    if (n == 0 || n > MAX_HOST_NAME)
        return 0;
    for (size_t i = 0; i <= n; i++) {
        char ch = s[i];
        if (ch == '.' || ch == '\0') {
            if (label == 0 || label > MAX_HOST_LABEL || s[i - 1] == '-')
                return 0;
            label = 0;
            continue;
        }
        if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
              ch == '-') ||
            (ch == '-' && label == 0))
            return 0;
        label++;
    }
    return 1;
}

static void parse_allowed_hosts(struct cfg_ctx *c, json_t *admin, struct cfg_admin *a)
{
    json_t *v = json_object_get(admin, "allowed_hosts");
    if (!v || json_is_null(v))
        return;
    if (!json_is_array(v)) {
        cfg_fail(c, "admin.allowed_hosts", "expected an array of host names, got %s",
                 cfg_type_name(v));
        return;
    }
    if (json_array_size(v) > MAX_ALLOWED_HOSTS) {
        cfg_fail(c, "admin.allowed_hosts", "expected at most %d host names, got %zu",
                 MAX_ALLOWED_HOSTS, json_array_size(v));
        return;
    }
    a->allowed_hosts = calloc(json_array_size(v) + 1, sizeof(*a->allowed_hosts));
    if (!a->allowed_hosts) {
        cfg_fail(c, "admin.allowed_hosts", "out of memory");
        return;
    }
    size_t i;
    json_t *name;
    json_array_foreach(v, i, name)
    {
        char p[CFG_PATH_MAX];
        snprintf(p, sizeof(p), "admin.allowed_hosts[%zu]", i);
        const char *s = json_string_value(name);
        if (!s) {
            cfg_fail(c, p, "expected a host name (a string), got %s", cfg_type_name(name));
        } else if (strlen(s) != json_string_length(name) || !valid_host_name(s)) {
            cfg_fail(c, p,
                     "expected a host name: labels of letters, digits and '-' joined by '.', at "
                     "most %d characters, no port, no wildcard; got \"%.80s\"",
                     MAX_HOST_NAME, s);
        } else if (!(a->allowed_hosts[a->nallowed_hosts] = strdup(s))) {
            cfg_fail(c, p, "out of memory");
        } else {
            a->nallowed_hosts++;
        }
    }
}

static void parse_admin(struct cfg_ctx *c, json_t *root, struct cfg_admin *a)
{
    static const char *const keys[] = {"listen", "token", "allowed_hosts", NULL};
    json_t *obj = cfg_get_section(c, root, "admin", keys); /* NULL: every default */
    a->listen = cfg_get_string(c, obj, "admin", "listen", 0, DEF_ADMIN_LISTEN);
    cfg_get_addr(c, "admin", "listen", a->listen, 1, &a->addr);
    a->token = cfg_get_string(c, obj, "admin", "token", 0, NULL);
    parse_allowed_hosts(c, obj, a);
}

/* "log": the connection log. */
static void parse_log(struct cfg_ctx *c, json_t *root, struct cfg_log *lg)
{
    static const char *const keys[] = {"connections", "path", "flush_interval_ms", "ring_size",
                                       NULL};
    lg->ring_size = DEF_LOG_RING_SIZE;
    json_t *v = cfg_get_section(c, root, "log", keys);
    if (!v)
        return;
    json_t *on = json_object_get(v, "connections");
    if (on && !json_is_boolean(on))
        cfg_fail(c, "log.connections", "expected true or false, got %s", cfg_type_name(on));
    lg->connections = json_is_true(on);
    lg->path = cfg_get_string(c, v, "log", "path", 0, NULL);
    lg->flush_interval_ms = cfg_get_uint(c, v, "log", "flush_interval_ms", 0, 0, MAX_TIMEOUT_MS);
    lg->ring_size = cfg_get_uint(c, v, "log", "ring_size", DEF_LOG_RING_SIZE, 1, MAX_LOG_RING_SIZE);
}

/* An eighth of the machine's memory, at least 64 MiB: one greedy flow or a
 * crowd of slow readers cannot make the kernel OOM-kill the proxy. */
static unsigned long long default_buffer_memory_limit(void)
{
    long pages = sysconf(_SC_PHYS_PAGES), size = sysconf(_SC_PAGESIZE);
    unsigned long long ram =
        pages > 0 && size > 0 ? (unsigned long long)pages * (unsigned long long)size : 0;
    unsigned long long lim = ram / 8;
    return lim < DEF_MIN_BUFFER_MEMORY_AUTO ? DEF_MIN_BUFFER_MEMORY_AUTO : lim;
}

/* The process-wide keys: pollers, accept, the shutdown grace, the buffer
 * memory limit, the user to run as. */
static void parse_process(struct cfg_ctx *c, json_t *root, struct config *cfg)
{
    cfg->pollers = cfg_get_uint(c, root, "", "pollers", DEF_POLLERS, 0, MAX_POLLERS);
    cfg->poller_balance =
        (enum pollmgr_balance)cfg_get_enum(c, root, "", "poller_balance", POLLER_BALANCES, 0);
    cfg->io = (enum poll_kind)cfg_get_enum(c, root, "", "io", IOS, 0);
    static const char *const ACCEPTS[] = {"main", "reuseport", "shared", NULL};
    cfg->accept = (enum cfg_accept)cfg_get_enum(c, root, "", "accept", ACCEPTS, 0);
    cfg->shutdown_grace_ms =
        cfg_get_uint(c, root, "", "shutdown_grace_ms", DEF_SHUTDOWN_GRACE_MS, 0, MAX_TIMEOUT_MS);
    cfg->shutdown_delay_ms =
        cfg_get_uint(c, root, "", "shutdown_delay_ms", DEF_SHUTDOWN_DELAY_MS, 0, MAX_TIMEOUT_MS);
    cfg->shed_rate_per_s =
        cfg_get_uint(c, root, "", "shed_rate_per_s", DEF_SHED_RATE_PER_S, 0, MAX_SHED_RATE_PER_S);
    cfg->buffer_memory_limit = default_buffer_memory_limit();
    json_t *bml = json_object_get(root, "buffer_memory_limit");
    if (bml) {
        if (!json_is_integer(bml) || json_integer_value(bml) < (json_int_t)MIN_BUFFER_MEMORY) {
            cfg_fail(c, "buffer_memory_limit", "expected an integer of at least %u bytes",
                     MIN_BUFFER_MEMORY);
        } else {
            cfg->buffer_memory_limit = (unsigned long long)json_integer_value(bml);
        }
    }
    json_t *wc = json_object_get(root, "watch_config");
    if (wc && !json_is_boolean(wc))
        cfg_fail(c, "watch_config", "expected true or false");
    cfg->watch_config = wc && json_is_true(wc);
    cfg->user = cfg_get_string(c, root, "", "user", 0, NULL);
    cfg->group = cfg_get_string(c, root, "", "group", 0, NULL);
    if (cfg->group && !cfg->user)
        cfg_fail(c, "group", "set only together with \"user\"");
}

/* pools[]: each pool, and names unique among them. */
static void parse_pools(struct cfg_ctx *c, json_t *root, struct config *cfg)
{
    json_t *pools = cfg_get_array(c, root, "", "pools");
    if (!pools)
        return;
    cfg->npools = json_array_size(pools);
    cfg->pools = calloc(cfg->npools, sizeof(*cfg->pools));
    if (!cfg->pools)
        cfg->npools = 0;
    for (size_t i = 0; i < cfg->npools; i++) {
        char p[CFG_PATH_MAX];
        snprintf(p, sizeof(p), "pools[%zu]", i);
        parse_pool(c, json_array_get(pools, i), p, &cfg->pools[i]);
        for (size_t j = 0; j < i && cfg->pools[i].name; j++)
            if (cfg->pools[j].name && strcmp(cfg->pools[j].name, cfg->pools[i].name) == 0) {
                char pn[CFG_PATH_MAX];
                cfg_join(pn, p, "name");
                cfg_fail(c, pn, "duplicate pool name \"%s\" (also pools[%zu])", cfg->pools[i].name,
                         j);
            }
    }
}

/* listeners[i] against the ones before it (name, address) and the pools (its
 * pool must exist: l->pool_index). */
static void check_listener(struct cfg_ctx *c, struct config *cfg, size_t i, const char *p)
{
    struct cfg_listener *l = &cfg->listeners[i];
    char pn[CFG_PATH_MAX];
    for (size_t j = 0; j < i && l->name; j++)
        if (cfg->listeners[j].name && strcmp(cfg->listeners[j].name, l->name) == 0) {
            cfg_join(pn, p, "name");
            cfg_fail(c, pn, "duplicate listener name \"%s\" (also listeners[%zu])", l->name, j);
        }
    for (size_t j = 0; j < i && l->addr.len; j++)
        if (cfg->listeners[j].addr.len == l->addr.len &&
            memcmp(&cfg->listeners[j].addr.ss, &l->addr.ss, l->addr.len) == 0) {
            cfg_join(pn, p, "listen");
            cfg_fail(c, pn, "address \"%s\" is already used by listeners[%zu]", l->listen, j);
        }
    if (!l->pool)
        return;
    size_t k = 0;
    while (k < cfg->npools && !(cfg->pools[k].name && strcmp(cfg->pools[k].name, l->pool) == 0))
        k++;
    if (k == cfg->npools) {
        cfg_join(pn, p, "pool");
        cfg_fail(c, pn, "no pool named \"%s\" (expected the name of an entry in pools)", l->pool);
    }
    l->pool_index = k;
}

/* listeners[], after the pools they refer to. */
static void parse_listeners(struct cfg_ctx *c, json_t *root, struct config *cfg)
{
    json_t *listeners = cfg_get_array(c, root, "", "listeners");
    if (!listeners)
        return;
    cfg->nlisteners = json_array_size(listeners);
    cfg->listeners = calloc(cfg->nlisteners, sizeof(*cfg->listeners));
    if (!cfg->listeners)
        cfg->nlisteners = 0;
    for (size_t i = 0; i < cfg->nlisteners; i++) {
        char p[CFG_PATH_MAX];
        snprintf(p, sizeof(p), "listeners[%zu]", i);
        parse_listener(c, json_array_get(listeners, i), p, &cfg->listeners[i]);
        check_listener(c, cfg, i, p);
        cfg_check_routes(c, cfg, &cfg->listeners[i], p);
    }
}

/* The top level, in the order its errors are reported: the process keys,
 * admin, pools, then listeners (which refer to pools). */
static void parse_root(struct cfg_ctx *c, json_t *root, struct config *cfg)
{
    static const char *const keys[] = {"pollers",
                                       "poller_balance",
                                       "io",
                                       "accept",
                                       "shutdown_grace_ms",
                                       "shutdown_delay_ms",
                                       "shed_rate_per_s",
                                       "user",
                                       "buffer_memory_limit",
                                       "group",
                                       "admin",
                                       "listeners",
                                       "pools",
                                       "log",
                                       "watch_config",
                                       "resolver",
                                       NULL};
    if (!cfg_is_object(c, root, "(top level)"))
        return;
    cfg_check_keys(c, root, "", keys);
    parse_process(c, root, cfg);
    parse_admin(c, root, &cfg->admin);
    parse_log(c, root, &cfg->log);
    cfg_parse_resolver(c, root, &cfg->resolver); /* before the pools' names */
    parse_pools(c, root, cfg);
    parse_listeners(c, root, cfg);
}

int config_load_buffer(const char *data, size_t len, const char *name, struct config **out,
                       char **errors)
{
    struct cfg_ctx c = {.file = name};
    *out = NULL;
    *errors = NULL;
    json_error_t jerr;
    json_t *root = json_loadb(data, len, JSON_REJECT_DUPLICATES, &jerr);
    if (!root) {
        /* jansson reports duplicates as a syntax error; its text names the key. */
        if (asprintf(errors, "%s:%d:%d: invalid JSON: %s\n", name, jerr.line, jerr.column,
                     jerr.text) < 0)
            *errors = NULL;
        return 1;
    }
    struct config *cfg = calloc(1, sizeof(*cfg));
    if (!cfg) {
        json_decref(root);
        return 1;
    }
    cfg->path = strdup(name);
    parse_root(&c, root, cfg);
    json_decref(root);
    if (c.nerr) {
        config_free(cfg);
        *errors = c.errs;
        return c.nerr;
    }
    free(c.errs);
    *out = cfg;
    return 0;
}

int config_load_file(const char *path, struct config **out, char **errors)
{
    *out = NULL;
    *errors = NULL;
    FILE *f = fopen(path, "rb");
    if (!f) {
        if (asprintf(errors, "%s: cannot open: %m\n", path) < 0)
            *errors = NULL;
        return 1;
    }
    char *buf = NULL;
    size_t len = 0, cap = 0;
    for (;;) {
        if (len == cap) {
            cap = cap ? cap * 2 : 4096;
            char *g = realloc(buf, cap);
            if (!g)
                break;
            buf = g;
        }
        size_t n = fread(buf + len, 1, cap - len, f);
        len += n;
        if (n == 0)
            break;
    }
    int rerr = ferror(f);
    fclose(f);
    if (rerr || !buf) {
        free(buf);
        if (asprintf(errors, "%s: cannot read\n", path) < 0)
            *errors = NULL;
        return 1;
    }
    int r = config_load_buffer(buf, len, path, out, errors);
    free(buf);
    return r;
}

void config_free(struct config *cfg)
{
    if (!cfg)
        return;
    for (size_t i = 0; i < cfg->nlisteners; i++) {
        free(cfg->listeners[i].name);
        free(cfg->listeners[i].listen);
        free(cfg->listeners[i].pool);
        cfg_free_routes(&cfg->listeners[i]);
    }
    free(cfg->listeners);
    for (size_t i = 0; i < cfg->npools; i++) {
        struct cfg_pool *pl = &cfg->pools[i];
        for (size_t j = 0; j < pl->nbackends; j++) {
            free(pl->backends[j].name);
            free(pl->backends[j].address);
            free(pl->backends[j].host);
            free(pl->backends[j].srv);
        }
        free(pl->backends);
        free(pl->health_check.send);
        free(pl->health_check.expect);
        free(pl->name);
    }
    free(cfg->pools);
    free(cfg->admin.listen);
    free(cfg->admin.token);
    for (size_t i = 0; i < cfg->admin.nallowed_hosts; i++)
        free(cfg->admin.allowed_hosts[i]);
    free(cfg->admin.allowed_hosts);
    free(cfg->log.path);
    free(cfg->user);
    free(cfg->group);
    free(cfg->path);
    free(cfg);
}
