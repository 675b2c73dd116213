/* config/config_dns.c — the config of DNS discovery: the top-level
 * "resolver" object and how each backend names its target ("address" with
 * "resolve", or "srv"). Resolution itself is the runtime's
 * (proxy/resolver.c); here only the load-time rule: a host name is resolved
 * now through the system resolver unless resolver.servers is set. */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config_addr.h"
#include "config_dns.h"

#define DEF_RESOLVE_MIN_MS 1000
#define DEF_RESOLVE_MAX_MS 60000
#define DEF_DNS_TIMEOUT_MS 2000
#define MAX_DNS_NAME       253
#define MAX_DNS_TIMEOUT_MS 60000
#define MAX_RESOLVE_MS     (24u * 3600 * 1000)

void cfg_parse_resolver(struct cfg_ctx *c, json_t *root, struct cfg_resolver *r)
{
    static const char *const keys[] = {"servers", "resolve_min_ms", "resolve_max_ms", "timeout_ms",
                                       NULL};
    json_t *obj = cfg_get_section(c, root, "resolver", keys); /* NULL: every default */
    r->resolve_min_ms =
        cfg_get_uint(c, obj, "resolver", "resolve_min_ms", DEF_RESOLVE_MIN_MS, 100, MAX_RESOLVE_MS);
    r->resolve_max_ms =
        cfg_get_uint(c, obj, "resolver", "resolve_max_ms", DEF_RESOLVE_MAX_MS, 100, MAX_RESOLVE_MS);
    r->timeout_ms =
        cfg_get_uint(c, obj, "resolver", "timeout_ms", DEF_DNS_TIMEOUT_MS, 10, MAX_DNS_TIMEOUT_MS);
    if (r->resolve_max_ms < r->resolve_min_ms)
        cfg_fail(c, "resolver.resolve_max_ms", "expected at least resolve_min_ms (%u), got %u",
                 r->resolve_min_ms, r->resolve_max_ms);
    json_t *servers = json_object_get(obj, "servers");
    if (servers) {
        if (!json_is_array(servers) || json_array_size(servers) == 0 ||
            json_array_size(servers) > CFG_RESOLVER_SERVERS_MAX) {
            cfg_fail(c, "resolver.servers", "expected an array of 1 to %d \"IP:port\" strings",
                     CFG_RESOLVER_SERVERS_MAX);
        } else {
            for (size_t i = 0; i < json_array_size(servers); i++) {
                char p[CFG_PATH_MAX], why[256];
                snprintf(p, sizeof(p), "resolver.servers[%zu]", i);
                json_t *s = json_array_get(servers, i);
                if (!json_is_string(s)) {
                    cfg_fail(c, p, "expected \"IPv4:port\" or \"[IPv6]:port\", got %s",
                             cfg_type_name(s));
                    continue;
                }
                if (config_addr_parse(json_string_value(s), 0, &r->servers[r->nservers], why,
                                      sizeof(why)) < 0) {
                    cfg_fail(c, p, "%s", why);
                    continue;
                }
                r->nservers++;
            }
        }
    }
    c->names_at_start = servers != NULL;
}

/* A DNS name: labels of letters, digits, '-' and '_' (SRV's own
 * "_service._proto" labels, and names some registries allow). */
static int valid_dns_name(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > MAX_DNS_NAME || s[0] == '.' || s[n - 1] == '.' || strstr(s, ".."))
        return 0;
    for (const char *p = s; *p; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
              *p == '-' || *p == '_' || *p == '.'))
            return 0;
    return 1;
}

void cfg_parse_backend_target(struct cfg_ctx *c, json_t *v, const char *path, struct cfg_backend *b)
{
    static const char *const RESOLVES[] = {"first", "all", NULL};
    char p[CFG_PATH_MAX], why[256], host[256];
    json_t *address = json_object_get(v, "address"), *srv = json_object_get(v, "srv");
    b->resolve = (enum cfg_resolve)cfg_get_enum(c, v, path, "resolve", RESOLVES, 0);
    if (srv) {
        cfg_join(p, path, "srv");
        if (address)
            cfg_fail(c, p, "set either \"address\" or \"srv\", not both");
        if (!json_is_string(srv) || !valid_dns_name(json_string_value(srv))) {
            cfg_fail(c, p, "expected a DNS name such as \"_redis._tcp.example\"");
            return;
        }
        b->srv = strdup(json_string_value(srv));
        if (json_object_get(v, "resolve") && b->resolve != CFG_RESOLVE_ALL) {
            cfg_join(p, path, "resolve");
            cfg_fail(c, p, "with \"srv\", every record's address is a backend: expected \"all\"");
        }
        if (json_object_get(v, "weight")) {
            cfg_join(p, path, "weight");
            cfg_fail(c, p, "with \"srv\", weights come from the SRV records: remove it");
        }
        b->resolve = CFG_RESOLVE_ALL;
        return;
    }
    b->address = cfg_get_string(c, v, path, "address", 1, NULL);
    if (!b->address)
        return;
    cfg_join(p, path, "address");
    int kind = config_addr_host(b->address, host, sizeof(host), &b->port, why, sizeof(why));
    if (kind < 0) {
        cfg_fail(c, p, "%s", why);
        return;
    }
    if (kind == 0) { /* an address literal: nothing to follow */
        if (b->resolve == CFG_RESOLVE_ALL) {
            cfg_join(p, path, "resolve");
            cfg_fail(c, p,
                     "\"all\" follows a host name's addresses: expected a \"host:port\" "
                     "address, got \"%s\"",
                     b->address);
        }
        cfg_get_addrs(c, path, "address", b->address, &b->addrs);
        return;
    }
    if (!valid_dns_name(host)) {
        cfg_fail(c, p, "expected a host name of letters, digits, '-', '_' and '.', got \"%s\"",
                 host);
        return;
    }
    b->host = strdup(host);
    /* "first" needs addresses to dial from the start: through the system
     * resolver now (an error names this path), or, when resolver.servers
     * are set, which the system resolver does not know, at start. "all"
     * starts with what the resolver finds, then follows it. */
    if (b->resolve == CFG_RESOLVE_FIRST && !c->names_at_start)
        cfg_get_addrs(c, path, "address", b->address, &b->addrs);
}
