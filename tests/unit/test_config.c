/* tests/unit/test_config.c — config/: defaults, every error kind with the JSON
 * path it must name, syntax errors with line and column, addresses. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>

#include "check_main.h"
#include "config/config.h"
#include "config/config_addr.h"
#include "reactor/poll.h"

#define POOL_OK                                                                                    \
    "\"pools\":[{\"name\":\"p\",\"backends\":[{\"name\":\"b1\",\"address\":\"127.0.0.1:7001\"}]}]"
#define LISTENER_OK "\"listeners\":[{\"name\":\"l\",\"listen\":\"127.0.0.1:7000\",\"pool\":\"p\"}]"

static char *load_errors(const char *json)
{
    struct config *cfg = NULL;
    char *errors = NULL;
    int n = config_load_buffer(json, strlen(json), "t.json", &cfg, &errors);
    ck_assert_int_gt(n, 0);
    ck_assert_ptr_null(cfg);
    ck_assert_ptr_nonnull(errors);
    return errors;
}

static void expect_error(const char *json, const char *needle)
{
    char *errors = load_errors(json);
    if (!strstr(errors, needle))
        ck_abort_msg("expected \"%s\" in:\n%s", needle, errors);
    free(errors);
}

START_TEST(minimal_config_gets_documented_defaults)
{
    const char *json = "{" LISTENER_OK "," POOL_OK "}";
    struct config *cfg;
    char *errors;
    ck_assert_int_eq(config_load_buffer(json, strlen(json), "t.json", &cfg, &errors), 0);
    ck_assert_uint_eq(cfg->pollers, 0);
    ck_assert_int_eq(cfg->poller_balance, POLLMGR_ROUND_ROBIN);
    ck_assert_int_eq(cfg->io, POLL_KIND_EPOLL);
    ck_assert_uint_eq(cfg->shutdown_grace_ms, 10000);
    ck_assert_uint_eq(cfg->shutdown_delay_ms, 0);
    ck_assert_uint_eq(cfg->shed_rate_per_s, 1000);
    ck_assert_int_eq(cfg->watch_config, 0);
    ck_assert_str_eq(cfg->admin.listen, "127.0.0.1:9090");
    ck_assert_ptr_null(cfg->admin.token);
    ck_assert_uint_eq(cfg->nlisteners, 1);
    ck_assert_uint_eq(cfg->listeners[0].max_connections, 10000);
    ck_assert_uint_eq(cfg->listeners[0].backlog, 1024);
    ck_assert_uint_eq(cfg->listeners[0].pool_index, 0);
    const struct cfg_pool *p = &cfg->pools[0];
    ck_assert_uint_eq(p->connect_timeout_ms, 2000);
    ck_assert_uint_eq(p->idle_timeout_ms, 600000);
    ck_assert_uint_eq(p->retries, 2);
    ck_assert_uint_eq(p->max_session_age_ms, 0);
    ck_assert_uint_eq(p->buffer_high_watermark, 256 * 1024);
    ck_assert_uint_eq(p->buffer_low_watermark, 64 * 1024);
    ck_assert_uint_eq(p->backends[0].weight, 1);
    const struct sockaddr_in *sin = (const struct sockaddr_in *)&p->backends[0].addrs.a[0].ss;
    ck_assert_int_eq(sin->sin_family, AF_INET);
    ck_assert_int_eq(ntohs(sin->sin_port), 7001);
    config_free(cfg);
}
END_TEST

/* Loads {"key": "name"} with a listener and a pool; the caller frees it. */
static struct config *load_top_name(const char *key, const char *name)
{
    char json[512];
    snprintf(json, sizeof(json), "{\"%s\":\"%s\"," LISTENER_OK "," POOL_OK "}", key, name);
    struct config *cfg;
    char *errors;
    ck_assert_int_eq(config_load_buffer(json, strlen(json), "t.json", &cfg, &errors), 0);
    return cfg;
}

/* "io": the config's names are the reactor's (poll_kind_name, the stats'),
 * and a bad value names its path and the choices. */
START_TEST(io_names_are_the_reactor_enum)
{
    static const enum poll_kind kinds[] = {POLL_KIND_EPOLL, POLL_KIND_URING};
    for (size_t i = 0; i < 2; i++) {
        struct config *cfg = load_top_name("io", poll_kind_name(kinds[i]));
        ck_assert_int_eq(cfg->io, kinds[i]);
        ck_assert_str_eq(config_io_name(cfg->io), poll_kind_name(kinds[i]));
        config_free(cfg);
    }
    expect_error("{\"io\":\"uring\"," LISTENER_OK "," POOL_OK "}",
                 "t.json: io: expected one of: epoll, io_uring, got \"uring\"");
    expect_error("{\"io\":1," LISTENER_OK "," POOL_OK "}", "t.json: io: expected");
}
END_TEST

/* The names are spelled once (config_parse.c), in the order of the reactor's
 * enum: each one loads as its pollmgr_balance and prints back the same. */
START_TEST(poller_balance_names_are_the_reactor_enum)
{
    static const struct {
        const char *name;
        enum pollmgr_balance b;
    } cases[] = {{"round_robin", POLLMGR_ROUND_ROBIN},
                 {"random", POLLMGR_RANDOM},
                 {"least_loaded", POLLMGR_LEAST_LOADED}};
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct config *cfg = load_top_name("poller_balance", cases[i].name);
        ck_assert_int_eq(cfg->poller_balance, cases[i].b);
        ck_assert_str_eq(config_poller_balance_name(cfg->poller_balance), cases[i].name);
        config_free(cfg);
    }
}
END_TEST

START_TEST(accept_modes_load_and_a_wrong_one_is_named)
{
    static const struct {
        const char *name;
        enum cfg_accept a;
    } cases[] = {{"main", CFG_ACCEPT_MAIN},
                 {"reuseport", CFG_ACCEPT_REUSEPORT},
                 {"shared", CFG_ACCEPT_SHARED}};
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct config *cfg = load_top_name("accept", cases[i].name);
        ck_assert_int_eq(cfg->accept, cases[i].a);
        config_free(cfg);
    }
    expect_error("{\"accept\":\"exclusive\"," LISTENER_OK "," POOL_OK "}",
                 "accept: expected one of: main, reuseport, shared, got \"exclusive\"");
}
END_TEST

START_TEST(the_issue_example_loads)
{
    const char *json =
        "{\"pollers\":2,\"poller_balance\":\"round_robin\",\"admin\":{\"listen\":\"127.0.0.1:"
        "9090\"},"
        "\"listeners\":[{\"name\":\"redis\",\"listen\":\"0.0.0.0:6380\",\"pool\":\"redis\","
        "\"max_connections\":10000}],"
        "\"pools\":[{\"name\":\"redis\",\"balance\":\"round_robin\",\"connect_timeout_ms\":2000,"
        "\"idle_timeout_ms\":600000,\"retries\":2,\"backends\":["
        "{\"name\":\"r1\",\"address\":\"127.0.0.1:6379\",\"weight\":1},"
        "{\"name\":\"r2\",\"address\":\"[::1]:6381\",\"weight\":3}]}]}";
    struct config *cfg;
    char *errors;
    ck_assert_int_eq(config_load_buffer(json, strlen(json), "t.json", &cfg, &errors), 0);
    ck_assert_uint_eq(cfg->pollers, 2);
    ck_assert_uint_eq(cfg->pools[0].nbackends, 2);
    ck_assert_uint_eq(cfg->pools[0].backends[1].weight, 3);
    ck_assert_int_eq(cfg->pools[0].backends[1].addrs.a[0].ss.ss_family, AF_INET6);
    config_free(cfg);
}
END_TEST

START_TEST(syntax_error_has_line_and_column)
{
    expect_error("{\n  \"pollers\": 2,\n  }", "t.json:3:");
    expect_error("{\n  \"pollers\": 2,\n  }", "invalid JSON");
}
END_TEST

START_TEST(duplicate_key_is_an_error)
{
    expect_error("{\"pollers\":1,\"pollers\":2," LISTENER_OK "," POOL_OK "}", "duplicate");
}
END_TEST

START_TEST(unknown_keys_name_their_path)
{
    expect_error("{\"polers\":2," LISTENER_OK "," POOL_OK "}", "t.json: polers: unknown key");
    expect_error("{" LISTENER_OK ",\"pools\":[{\"name\":\"p\",\"backends\":[{\"name\":\"b1\","
                 "\"address\":\"127.0.0.1:7001\",\"wieght\":2}]}]}",
                 "pools[0].backends[0].wieght: unknown key");
    expect_error("{\"admin\":{\"port\":1}," LISTENER_OK "," POOL_OK "}", "admin.port: unknown key");
}
END_TEST

START_TEST(wrong_types_say_what_was_expected)
{
    expect_error("{\"pollers\":\"two\"," LISTENER_OK "," POOL_OK "}",
                 "pollers: expected an integer from 0 to 256, got a string");
    expect_error("{\"pollers\":-1," LISTENER_OK "," POOL_OK "}", "pollers: expected an integer");
    expect_error("{\"listeners\":{}," POOL_OK "}",
                 "listeners: expected a non-empty array, got an object");
    expect_error("{\"listeners\":[]," POOL_OK "}",
                 "listeners: expected a non-empty array, got an empty array");
    expect_error(
        "{\"poller_balance\":\"fastest\"," LISTENER_OK "," POOL_OK "}",
        "poller_balance: expected one of: round_robin, random, least_loaded, got \"fastest\"");
    expect_error("[1,2]", "expected an object, got an array");
    expect_error("{\"listeners\":[{\"name\":\"l\",\"listen\":7000,\"pool\":\"p\"}]," POOL_OK "}",
                 "listeners[0].listen: expected a non-empty string, got an integer");
}
END_TEST

START_TEST(missing_required_keys)
{
    expect_error("{" POOL_OK "}", "listeners: missing");
    expect_error("{" LISTENER_OK "}", "pools: missing");
    expect_error("{\"listeners\":[{\"listen\":\"127.0.0.1:7000\",\"pool\":\"p\"}]," POOL_OK "}",
                 "listeners[0].name: missing");
}
END_TEST

START_TEST(duplicate_names)
{
    expect_error("{" LISTENER_OK ",\"pools\":[{\"name\":\"p\",\"backends\":["
                 "{\"name\":\"b\",\"address\":\"127.0.0.1:1\"},{\"name\":\"b\",\"address\":\"127.0."
                 "0.1:2\"}]}]}",
                 "pools[0].backends[1].name: duplicate backend name \"b\"");
    expect_error("{" LISTENER_OK
                 ",\"pools\":[{\"name\":\"p\",\"backends\":[{\"name\":\"b\",\"address\":"
                 "\"127.0.0.1:1\"}]},{\"name\":\"p\",\"backends\":[{\"name\":\"b\",\"address\":"
                 "\"127.0.0.1:1\"}]}]}",
                 "pools[1].name: duplicate pool name \"p\"");
    expect_error("{\"listeners\":[{\"name\":\"l\",\"listen\":\"127.0.0.1:7000\",\"pool\":\"p\"},"
                 "{\"name\":\"l\",\"listen\":\"127.0.0.1:7002\",\"pool\":\"p\"}]," POOL_OK "}",
                 "listeners[1].name: duplicate listener name \"l\"");
    expect_error("{\"listeners\":[{\"name\":\"a\",\"listen\":\"127.0.0.1:7000\",\"pool\":\"p\"},"
                 "{\"name\":\"b\",\"listen\":\"127.0.0.1:7000\",\"pool\":\"p\"}]," POOL_OK "}",
                 "listeners[1].listen: address \"127.0.0.1:7000\" is already used by listeners[0]");
}
END_TEST

START_TEST(listener_naming_a_missing_pool)
{
    expect_error(
        "{\"listeners\":[{\"name\":\"l\",\"listen\":\"127.0.0.1:7000\",\"pool\":\"nope\"}]," POOL_OK
        "}",
        "listeners[0].pool: no pool named \"nope\"");
}
END_TEST

START_TEST(bad_addresses_and_ports)
{
    const char *bad[] = {"127.0.0.1", "127.0.0.1:0", "127.0.0.1:65536", "127.0.0.1:http",
                         "::1:80",    "[::1]80",     "[nope]:80",       ":80"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char json[512];
        snprintf(
            json, sizeof(json),
            "{" LISTENER_OK
            ",\"pools\":[{\"name\":\"p\",\"backends\":[{\"name\":\"b\",\"address\":\"%s\"}]}]}",
            bad[i]);
        expect_error(json, "pools[0].backends[0].address: expected \"IPv4:port\", \"[IPv6]:port\" "
                           "or \"host:port\"");
    }
    /* No DNS query leaves the machine from a test: name resolution is off, so
     * every name fails the way an unknown host does. */
    config_addr_resolve_names(0);
    expect_error("{" LISTENER_OK ",\"pools\":[{\"name\":\"p\",\"backends\":[{\"name\":\"b\","
                 "\"address\":\"no-such-host.invalid:6379\"}]}]}",
                 "pools[0].backends[0].address: cannot resolve host \"no-such-host.invalid\"");
    expect_error("{\"listeners\":[{\"name\":\"l\",\"listen\":\"no-such-host.invalid:7000\","
                 "\"pool\":\"p\"}]," POOL_OK "}",
                 "listeners[0].listen: cannot resolve host \"no-such-host.invalid\"");
    config_addr_resolve_names(1);
}
END_TEST

START_TEST(empty_pool_and_bad_numbers)
{
    expect_error("{" LISTENER_OK ",\"pools\":[{\"name\":\"p\",\"backends\":[]}]}",
                 "pools[0].backends: expected a non-empty array, got an empty array");
    expect_error("{" LISTENER_OK ",\"pools\":[{\"name\":\"p\",\"connect_timeout_ms\":0,"
                 "\"backends\":[{\"name\":\"b\",\"address\":\"127.0.0.1:1\"}]}]}",
                 "pools[0].connect_timeout_ms: expected an integer from 1 to");
    expect_error(
        "{" LISTENER_OK
        ",\"pools\":[{\"name\":\"p\",\"buffer_high_watermark\":8192,\"buffer_low_watermark\":9000,"
        "\"backends\":[{\"name\":\"b\",\"address\":\"127.0.0.1:1\"}]}]}",
        "pools[0].buffer_low_watermark: expected less than buffer_high_watermark");
    expect_error("{" LISTENER_OK ",\"pools\":[{\"name\":\"p\",\"backends\":[{\"name\":\"b\","
                 "\"address\":\"127.0.0.1:1\",\"weight\":1.5}]}]}",
                 "pools[0].backends[0].weight: expected an integer from 0 to 1000, got a number "
                 "with a fraction");
    expect_error("{" LISTENER_OK ",\"pools\":[{\"name\":\"p "
                 "q\",\"backends\":[{\"name\":\"b\",\"address\":\"127.0.0.1:1\"}]}]}",
                 "pools[0].name: expected 1 to 64 characters");
    expect_error("{" LISTENER_OK ",\"shed_rate_per_s\":-1,\"pools\":[{\"name\":\"p\","
                 "\"backends\":[{\"name\":\"b\",\"address\":\"127.0.0.1:1\"}]}]}",
                 "shed_rate_per_s: expected an integer from 0 to 10000000");
    expect_error("{" LISTENER_OK ",\"shutdown_delay_ms\":\"5s\",\"pools\":[{\"name\":\"p\","
                 "\"backends\":[{\"name\":\"b\",\"address\":\"127.0.0.1:1\"}]}]}",
                 "shutdown_delay_ms: expected an integer");
    expect_error("{" LISTENER_OK ",\"pools\":[{\"name\":\"p\",\"max_session_age_ms\":true,"
                 "\"backends\":[{\"name\":\"b\",\"address\":\"127.0.0.1:1\"}]}]}",
                 "pools[0].max_session_age_ms: expected an integer");
}
END_TEST

START_TEST(admin_allowed_hosts)
{
    const char *json =
        "{\"admin\":{\"allowed_hosts\":[\"sluice.internal\",\"Admin-1\"]}," LISTENER_OK "," POOL_OK
        "}";
    struct config *cfg;
    char *errors;
    ck_assert_int_eq(config_load_buffer(json, strlen(json), "t.json", &cfg, &errors), 0);
    ck_assert_uint_eq(cfg->admin.nallowed_hosts, 2);
    ck_assert_str_eq(cfg->admin.allowed_hosts[0], "sluice.internal");
    ck_assert_str_eq(cfg->admin.allowed_hosts[1], "Admin-1");
    config_free(cfg);
    json = "{" LISTENER_OK "," POOL_OK "}";
    ck_assert_int_eq(config_load_buffer(json, strlen(json), "t.json", &cfg, &errors), 0);
    ck_assert_uint_eq(cfg->admin.nallowed_hosts, 0);
    config_free(cfg);

    expect_error("{\"admin\":{\"allowed_hosts\":\"sluice\"}," LISTENER_OK "," POOL_OK "}",
                 "t.json: admin.allowed_hosts: expected an array of host names, got a string");
    expect_error("{\"admin\":{\"allowed_hosts\":[\"ok\",7]}," LISTENER_OK "," POOL_OK "}",
                 "t.json: admin.allowed_hosts[1]: expected a host name (a string), got an integer");
    const char *bad[] = {"",     "sluice:9090", "*.example", "a..b",  "-a.b",
                         "a-.b", "a b",         "sluice.",   "[::1]", "a_b"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char in[512], want[256];
        snprintf(in, sizeof(in),
                 "{\"admin\":{\"allowed_hosts\":[\"%s\"]}," LISTENER_OK "," POOL_OK "}", bad[i]);
        snprintf(want, sizeof(want),
                 "admin.allowed_hosts[0]: expected a host name: labels of letters, digits and "
                 "'-' joined by '.', at most 253 characters, no port, no wildcard; got \"%s\"",
                 bad[i]);
        expect_error(in, want);
    }
    char many[4096] = "{\"admin\":{\"allowed_hosts\":[";
    for (int i = 0; i < 65; i++)
        strcat(many, i ? ",\"h\"" : "\"h\"");
    strcat(many, "]}," LISTENER_OK "," POOL_OK "}");
    expect_error(many, "admin.allowed_hosts: expected at most 64 host names, got 65");
    char label[512] = "{\"admin\":{\"allowed_hosts\":[\"";
    memset(label + strlen(label), 'a', 64);
    expect_error(strcat(label, "\"]}," LISTENER_OK "," POOL_OK "}"),
                 "admin.allowed_hosts[0]: expected a host name");
}
END_TEST

/* watch_config (README "Reload"): a boolean, default false. */
START_TEST(watch_config_is_a_boolean)
{
    const char *json = "{\"watch_config\":true," LISTENER_OK "," POOL_OK "}";
    struct config *cfg;
    char *errors;
    ck_assert_int_eq(config_load_buffer(json, strlen(json), "t.json", &cfg, &errors), 0);
    ck_assert_int_eq(cfg->watch_config, 1);
    config_free(cfg);
    expect_error("{\"watch_config\":1," LISTENER_OK "," POOL_OK "}",
                 "t.json: watch_config: expected true or false");
    expect_error("{\"watch_config\":\"yes\"," LISTENER_OK "," POOL_OK "}",
                 "t.json: watch_config: expected true or false");
}
END_TEST

START_TEST(every_error_is_reported_once)
{
    char *errors = load_errors("{\"polers\":1,\"pollers\":\"x\",\"listeners\":[{\"name\":\"l\","
                               "\"listen\":\"1.2.3.4\",\"pool\":\"zz\"}]," POOL_OK "}");
    int lines = 0;
    for (char *c = errors; *c; c++)
        lines += *c == '\n';
    ck_assert_int_eq(lines, 4);
    free(errors);
}
END_TEST

START_TEST(missing_file)
{
    struct config *cfg;
    char *errors;
    ck_assert_int_gt(config_load_file("/nonexistent/sluice.json", &cfg, &errors), 0);
    ck_assert_ptr_nonnull(strstr(errors, "/nonexistent/sluice.json: cannot open"));
    free(errors);
}
END_TEST

START_TEST(address_round_trip)
{
    struct cfg_sockaddr a;
    char why[256], buf[64];
    ck_assert_int_eq(config_addr_parse("[::1]:6379", 0, &a, why, sizeof(why)), 0);
    ck_assert_str_eq(config_addr_format(&a, buf, sizeof(buf)), "[::1]:6379");
    ck_assert_int_eq(config_addr_parse("10.1.2.3:1", 0, &a, why, sizeof(why)), 0);
    ck_assert_str_eq(config_addr_format(&a, buf, sizeof(buf)), "10.1.2.3:1");
    ck_assert_int_eq(config_addr_parse("localhost:80", 1, &a, why, sizeof(why)), 0);
    ck_assert_int_eq(config_addr_parse("localhost:80", 0, &a, why, sizeof(why)), -1);
    /* A backend keeps every address of its name, each with the port. */
    struct cfg_addrs all;
    ck_assert_int_eq(config_addr_parse_all("[::1]:6379", 0, &all, why, sizeof(why)), 0);
    ck_assert_uint_eq(all.n, 1);
    ck_assert_int_eq(config_addr_parse_all("localhost:80", 1, &all, why, sizeof(why)), 0);
    ck_assert_uint_ge(all.n, 1);
    ck_assert_uint_le(all.n, CFG_ADDRS_MAX);
    for (unsigned i = 0; i < all.n; i++) {
        ck_assert_ptr_nonnull(strstr(config_addr_format(&all.a[i], buf, sizeof(buf)), ":80"));
        for (unsigned j = 0; j < i; j++) /* no address twice */
            ck_assert_int_ne(memcmp(&all.a[i].ss, &all.a[j].ss, all.a[i].len), 0);
    }
    ck_assert_int_eq(config_addr_parse_all("localhost:80", 0, &all, why, sizeof(why)), -1);
}
END_TEST

/* PROXY protocol keys: defaults (off, 3000 ms), values, and errors naming the path. */
START_TEST(proxy_protocol_keys)
{
    const char *json = "{" LISTENER_OK "," POOL_OK "}";
    struct config *cfg;
    char *errors;
    ck_assert_int_eq(config_load_buffer(json, strlen(json), "t.json", &cfg, &errors), 0);
    ck_assert_int_eq(cfg->listeners[0].accept_proxy_protocol, 0);
    ck_assert_uint_eq(cfg->listeners[0].inspect_timeout_ms, 3000);
    ck_assert_int_eq(cfg->pools[0].proxy_protocol, CFG_PROXY_PROTOCOL_OFF);
    config_free(cfg);
    json = "{\"listeners\":[{\"name\":\"l\",\"listen\":\"127.0.0.1:7000\",\"pool\":\"p\","
           "\"accept_proxy_protocol\":true,\"inspect_timeout_ms\":500}],"
           "\"pools\":[{\"name\":\"p\",\"proxy_protocol\":\"v2\",\"backends\":[{\"name\":"
           "\"b1\",\"address\":\"127.0.0.1:7001\"}]}]}";
    ck_assert_int_eq(config_load_buffer(json, strlen(json), "t.json", &cfg, &errors), 0);
    ck_assert_int_eq(cfg->listeners[0].accept_proxy_protocol, 1);
    ck_assert_uint_eq(cfg->listeners[0].inspect_timeout_ms, 500);
    ck_assert_int_eq(cfg->pools[0].proxy_protocol, CFG_PROXY_PROTOCOL_V2);
    config_free(cfg);
    expect_error("{\"listeners\":[{\"name\":\"l\",\"listen\":\"127.0.0.1:7000\",\"pool\":\"p\","
                 "\"accept_proxy_protocol\":1}]," POOL_OK "}",
                 "listeners[0].accept_proxy_protocol: expected true or false, got an integer");
    expect_error("{\"listeners\":[{\"name\":\"l\",\"listen\":\"127.0.0.1:7000\",\"pool\":\"p\","
                 "\"inspect_timeout_ms\":0}]," POOL_OK "}",
                 "listeners[0].inspect_timeout_ms: expected an integer from 1 to");
    expect_error("{" LISTENER_OK ",\"pools\":[{\"name\":\"p\",\"proxy_protocol\":\"v3\","
                 "\"backends\":[{\"name\":\"b1\",\"address\":\"127.0.0.1:7001\"}]}]}",
                 "pools[0].proxy_protocol: expected one of: off, v1, v2, got \"v3\"");
}
END_TEST

/* listeners[].routes and inspect_timeout_ms (README "SNI and ALPN routing"). */
#define ROUTED(routes_and_more)                                                                    \
    "{\"listeners\":[{\"name\":\"l\",\"listen\":\"127.0.0.1:7000\"," routes_and_more "}]," POOL_OK \
    "}"

START_TEST(listener_routes)
{
    const char *json = ROUTED("\"routes\":[{\"sni\":\"A.example\",\"pool\":\"p\"},"
                              "{\"sni\":\"*.b.example\",\"alpn\":\"h2\",\"pool\":\"p\"},"
                              "{\"alpn\":\"http/1.1\",\"pool\":\"p\"},"
                              "{\"default\":true,\"pool\":\"p\"}]");
    struct config *cfg;
    char *errors;
    ck_assert_int_eq(config_load_buffer(json, strlen(json), "t.json", &cfg, &errors), 0);
    const struct cfg_listener *l = &cfg->listeners[0];
    ck_assert_ptr_null(l->pool);
    ck_assert_uint_eq(l->nroutes, 4);
    ck_assert_uint_eq(l->inspect_timeout_ms, 3000);
    ck_assert_str_eq(l->routes[0].sni, "a.example");
    ck_assert_ptr_null(l->routes[0].alpn);
    ck_assert_str_eq(l->routes[1].sni, "*.b.example");
    ck_assert_str_eq(l->routes[1].alpn, "h2");
    ck_assert_ptr_null(l->routes[2].sni);
    ck_assert(l->routes[3].is_default);
    ck_assert_uint_eq(l->routes[3].pool_index, 0);
    config_free(cfg);
    json = ROUTED("\"routes\":[{\"default\":true,\"pool\":\"p\"}],\"inspect_timeout_ms\":250");
    ck_assert_int_eq(config_load_buffer(json, strlen(json), "t.json", &cfg, &errors), 0);
    ck_assert_uint_eq(cfg->listeners[0].inspect_timeout_ms, 250);
    config_free(cfg);

    expect_error(ROUTED("\"pool\":\"p\",\"routes\":[{\"default\":true,\"pool\":\"p\"}]"),
                 "t.json: listeners[0]: set either \"pool\" or \"routes\", not both");
    expect_error(ROUTED("\"backlog\":1"),
                 "listeners[0].pool: missing (expected a pool's name, or \"routes\" instead)");
    expect_error(ROUTED("\"pool\":null"), "listeners[0].pool: missing");
    expect_error(ROUTED("\"routes\":[]"), "listeners[0].routes: expected a non-empty array");
    expect_error(ROUTED("\"routes\":{}"), "listeners[0].routes: expected a non-empty array");
    expect_error(ROUTED("\"routes\":[{\"default\":true,\"pool\":\"p\"}],\"inspect_timeout_ms\":0"),
                 "listeners[0].inspect_timeout_ms: expected");
    expect_error(ROUTED("\"routes\":[{\"sni\":\"a.example\",\"pool\":\"nope\"}]"),
                 "listeners[0].routes[0].pool: no pool named \"nope\"");
    expect_error(ROUTED("\"routes\":[{\"sni\":\"a.example\"}]"),
                 "listeners[0].routes[0].pool: missing");
    expect_error(ROUTED("\"routes\":[{\"pool\":\"p\"}]"),
                 "listeners[0].routes[0]: expected \"sni\", \"alpn\" or \"default\": true");
    expect_error(ROUTED("\"routes\":[{\"default\":false,\"pool\":\"p\"}]"),
                 "listeners[0].routes[0]: expected \"sni\", \"alpn\" or \"default\": true");
    expect_error(ROUTED("\"routes\":[{\"default\":1,\"pool\":\"p\"}]"),
                 "listeners[0].routes[0].default: expected true or false");
    expect_error(ROUTED("\"routes\":[{\"default\":true,\"sni\":\"a.example\",\"pool\":\"p\"}]"),
                 "listeners[0].routes[0]: a default route takes no \"sni\" or \"alpn\"");
    expect_error(
        ROUTED("\"routes\":[{\"sni\":\"a.example\",\"port\":1,\"pool\":\"p\"}]"),
        "listeners[0].routes[0].port: unknown key (expected one of: sni, alpn, default, pool)");
    const char *bad_names[] = {"a..example", "*.",  "*", "a.*.example", "*a.example",
                               "a.example.", "a b", "",  "[::1]"};
    for (size_t i = 0; i < sizeof(bad_names) / sizeof(bad_names[0]); i++) {
        char j[512];
        snprintf(j, sizeof(j), ROUTED("\"routes\":[{\"sni\":\"%s\",\"pool\":\"p\"}]"),
                 bad_names[i]);
        expect_error(j, "listeners[0].routes[0].sni: expected");
    }
    expect_error(ROUTED("\"routes\":[{\"alpn\":\"\",\"pool\":\"p\"}]"),
                 "listeners[0].routes[0].alpn: expected a non-empty string");
    expect_error(ROUTED("\"routes\":[{\"default\":true,\"pool\":\"p\"},"
                        "{\"default\":true,\"pool\":\"p\"}]"),
                 "listeners[0].routes[1]: a second default route (also listeners[0].routes[0])");
    expect_error(ROUTED("\"routes\":[{\"sni\":\"a.example\",\"alpn\":\"h2\",\"pool\":\"p\"},"
                        "{\"sni\":\"A.EXAMPLE\",\"alpn\":\"h2\",\"pool\":\"p\"}]"),
                 "listeners[0].routes[1]: the same \"sni\" and \"alpn\" as listeners[0].routes[0]");
}
END_TEST

/* "log": the connection log's keys, their defaults and their errors. */
START_TEST(log_keys_defaults_and_errors)
{
    const char *json = "{" LISTENER_OK "," POOL_OK "}";
    struct config *cfg;
    char *errors;
    ck_assert_int_eq(config_load_buffer(json, strlen(json), "t.json", &cfg, &errors), 0);
    ck_assert_int_eq(cfg->log.connections, 0); /* off unless asked */
    ck_assert_ptr_null(cfg->log.path);         /* stdout */
    ck_assert_uint_eq(cfg->log.flush_interval_ms, 0);
    ck_assert_uint_eq(cfg->log.ring_size, 4096);
    config_free(cfg);
    json = "{\"log\":{\"connections\":true,\"path\":\"/var/log/sluice/conn.log\","
           "\"flush_interval_ms\":5000,\"ring_size\":16}," LISTENER_OK "," POOL_OK "}";
    ck_assert_int_eq(config_load_buffer(json, strlen(json), "t.json", &cfg, &errors), 0);
    ck_assert_int_eq(cfg->log.connections, 1);
    ck_assert_str_eq(cfg->log.path, "/var/log/sluice/conn.log");
    ck_assert_uint_eq(cfg->log.flush_interval_ms, 5000);
    ck_assert_uint_eq(cfg->log.ring_size, 16);
    config_free(cfg);
    expect_error("{\"log\":{\"connections\":1}," LISTENER_OK "," POOL_OK "}",
                 "t.json: log.connections: expected true or false, got an integer");
    expect_error("{\"log\":{\"ring_size\":0}," LISTENER_OK "," POOL_OK "}", "log.ring_size");
    expect_error("{\"log\":{\"ring_size\":2000000}," LISTENER_OK "," POOL_OK "}", "log.ring_size");
    expect_error("{\"log\":{\"flush_interval_ms\":-1}," LISTENER_OK "," POOL_OK "}",
                 "log.flush_interval_ms");
    expect_error("{\"log\":{\"path\":\"\"}," LISTENER_OK "," POOL_OK "}", "log.path");
    expect_error("{\"log\":{\"file\":\"x\"}," LISTENER_OK "," POOL_OK "}", "log.file: unknown key");
    expect_error("{\"log\":true," LISTENER_OK "," POOL_OK "}", "log: expected an object");
}
END_TEST

#define PS_LISTENER(extra)                                                                         \
    "\"listeners\":[{\"name\":\"l\",\"listen\":\"127.0.0.1:7000\",\"pool\":\"p\"" extra "}]"

static struct config *load_ok(const char *json)
{
    struct config *cfg = NULL;
    char *errors = NULL;
    if (config_load_buffer(json, strlen(json), "t.json", &cfg, &errors))
        ck_abort_msg("unexpected errors:\n%s", errors);
    return cfg;
}

/* "per_source" and the prefixes: absent is no limit; each key's default. */
START_TEST(per_source_defaults_and_values)
{
    struct config *cfg = load_ok("{" LISTENER_OK "," POOL_OK "}");
    const struct cfg_listener *l = &cfg->listeners[0];
    ck_assert_int_eq(l->per_source.enabled, 0);
    ck_assert_uint_eq(l->source_prefix_v4, 32);
    ck_assert_uint_eq(l->source_prefix_v6, 64);
    config_free(cfg);

    cfg = load_ok("{" PS_LISTENER(",\"per_source\":{\"rate_per_s\":20}") "," POOL_OK "}");
    l = &cfg->listeners[0];
    ck_assert_int_eq(l->per_source.enabled, 1);
    ck_assert_uint_eq(l->per_source.max_connections, 0);
    ck_assert_uint_eq(l->per_source.rate_per_s, 20);
    ck_assert_uint_eq(l->per_source.burst, 20); /* burst defaults to the rate */
    ck_assert_int_eq(l->per_source.reset, 0);
    ck_assert_uint_eq(l->per_source.max_sources, 65536);
    config_free(cfg);

    cfg = load_ok("{" PS_LISTENER(
        ",\"per_source\":{\"max_connections\":5,\"rate_per_s\":10,\"burst\":3,\"reset\":true,"
        "\"max_sources\":1024},\"source_prefix_v4\":24,\"source_prefix_v6\":48") "," POOL_OK "}");
    l = &cfg->listeners[0];
    ck_assert_uint_eq(l->per_source.max_connections, 5);
    ck_assert_uint_eq(l->per_source.rate_per_s, 10);
    ck_assert_uint_eq(l->per_source.burst, 3);
    ck_assert_int_eq(l->per_source.reset, 1);
    ck_assert_uint_eq(l->per_source.max_sources, 1024);
    ck_assert_uint_eq(l->source_prefix_v4, 24);
    ck_assert_uint_eq(l->source_prefix_v6, 48);
    config_free(cfg);

    cfg = load_ok("{" PS_LISTENER(",\"per_source\":{}") "," POOL_OK "}");
    ck_assert_int_eq(cfg->listeners[0].per_source.enabled, 1); /* tracked, nothing capped */
    config_free(cfg);
}
END_TEST

START_TEST(per_source_errors_name_their_path)
{
    expect_error(
        "{" PS_LISTENER(",\"per_source\":{\"max_conns\":1}") "," POOL_OK "}",
        "t.json: listeners[0].per_source.max_conns: unknown key (expected one of: max_connections, "
        "rate_per_s, burst, reset, max_sources)");
    expect_error("{" PS_LISTENER(",\"per_source\":5") "," POOL_OK "}",
                 "t.json: listeners[0].per_source: expected an object");
    expect_error("{" PS_LISTENER(",\"per_source\":{\"reset\":1}") "," POOL_OK "}",
                 "t.json: listeners[0].per_source.reset: expected true or false, got an integer");
    expect_error("{" PS_LISTENER(",\"per_source\":{\"rate_per_s\":-1}") "," POOL_OK "}",
                 "t.json: listeners[0].per_source.rate_per_s: expected an integer from 0 to");
    expect_error(
        "{" PS_LISTENER(",\"per_source\":{\"rate_per_s\":5,\"burst\":0}") "," POOL_OK "}",
        "t.json: listeners[0].per_source.burst: expected at least 1 when rate_per_s is set");
    expect_error("{" PS_LISTENER(",\"per_source\":{\"burst\":4}") "," POOL_OK "}",
                 "t.json: listeners[0].per_source.burst: has no effect without rate_per_s");
    expect_error("{" PS_LISTENER(",\"per_source\":{\"max_sources\":1000}") "," POOL_OK "}",
                 "t.json: listeners[0].per_source.max_sources: expected a power of two");
    expect_error("{" PS_LISTENER(",\"per_source\":{\"max_sources\":32}") "," POOL_OK "}",
                 "t.json: listeners[0].per_source.max_sources: expected an integer from 64 to");
    expect_error("{" PS_LISTENER(",\"source_prefix_v4\":33") "," POOL_OK "}",
                 "t.json: listeners[0].source_prefix_v4: expected an integer from 0 to 32, got 33");
    expect_error("{" PS_LISTENER(",\"source_prefix_v6\":129") "," POOL_OK "}",
                 "t.json: listeners[0].source_prefix_v6: expected an integer from 0 to 128");
}
END_TEST

#define DNS_POOL(backend) "\"pools\":[{\"name\":\"p\",\"backends\":[" backend "]}]"

START_TEST(resolver_defaults_and_keys)
{
    struct config *cfg = load_ok("{" LISTENER_OK "," POOL_OK "}");
    ck_assert_uint_eq(cfg->resolver.nservers, 0); /* /etc/resolv.conf */
    ck_assert_uint_eq(cfg->resolver.resolve_min_ms, 1000);
    ck_assert_uint_eq(cfg->resolver.resolve_max_ms, 60000);
    ck_assert_uint_eq(cfg->resolver.timeout_ms, 2000);
    ck_assert_int_eq(cfg->pools[0].backends[0].resolve, CFG_RESOLVE_FIRST);
    ck_assert_ptr_null(cfg->pools[0].backends[0].host); /* a literal follows nothing */
    config_free(cfg);

    cfg = load_ok("{\"resolver\":{\"servers\":[\"127.0.0.1:5353\",\"[::1]:53\"],"
                  "\"resolve_min_ms\":500,\"resolve_max_ms\":9000,\"timeout_ms\":300}," LISTENER_OK
                  "," DNS_POOL("{\"name\":\"r\",\"address\":\"redis.example:6379\"},"
                               "{\"name\":\"a\",\"address\":\"redis.example:6380\","
                               "\"resolve\":\"all\",\"weight\":5},"
                               "{\"name\":\"s\",\"srv\":\"_redis._tcp.example\"}") "}");
    ck_assert_uint_eq(cfg->resolver.nservers, 2);
    ck_assert_int_eq(cfg->resolver.servers[1].ss.ss_family, AF_INET6);
    ck_assert_uint_eq(cfg->resolver.resolve_min_ms, 500);
    ck_assert_uint_eq(cfg->resolver.resolve_max_ms, 9000);
    ck_assert_uint_eq(cfg->resolver.timeout_ms, 300);
    const struct cfg_backend *b = cfg->pools[0].backends;
    /* With servers, names are resolved at start through them, not at load. */
    ck_assert_str_eq(b[0].host, "redis.example");
    ck_assert_uint_eq(b[0].port, 6379);
    ck_assert_uint_eq(b[0].addrs.n, 0);
    ck_assert_int_eq(b[1].resolve, CFG_RESOLVE_ALL);
    ck_assert_uint_eq(b[1].weight, 5);
    ck_assert_str_eq(b[2].srv, "_redis._tcp.example");
    ck_assert_ptr_null(b[2].address);
    ck_assert_int_eq(b[2].resolve, CFG_RESOLVE_ALL);
    config_free(cfg);

    /* Without servers, a default-mode name is resolved at load (errors at
     * --check), an "all" one is not (it may have no address yet). */
    cfg = load_ok("{" LISTENER_OK "," DNS_POOL("{\"name\":\"r\",\"address\":\"localhost:6379\"},"
                                               "{\"name\":\"a\",\"address\":\"no-such.invalid:1\","
                                               "\"resolve\":\"all\"}") "}");
    ck_assert_uint_ge(cfg->pools[0].backends[0].addrs.n, 1);
    ck_assert_str_eq(cfg->pools[0].backends[0].host, "localhost");
    ck_assert_uint_eq(cfg->pools[0].backends[1].addrs.n, 0);
    config_free(cfg);
}
END_TEST

START_TEST(resolver_errors_name_their_path)
{
    expect_error("{\"resolver\":{\"server\":[]}," LISTENER_OK "," POOL_OK "}",
                 "resolver.server: unknown key");
    expect_error("{\"resolver\":{\"servers\":[]}," LISTENER_OK "," POOL_OK "}",
                 "resolver.servers: expected an array of 1 to 8 \"IP:port\" strings");
    expect_error("{\"resolver\":{\"servers\":[\"dns.example:53\"]}," LISTENER_OK "," POOL_OK "}",
                 "resolver.servers[0]: expected \"IPv4:port\" or \"[IPv6]:port\"");
    expect_error("{\"resolver\":{\"servers\":[53]}," LISTENER_OK "," POOL_OK "}",
                 "resolver.servers[0]: expected \"IPv4:port\" or \"[IPv6]:port\", got an integer");
    expect_error("{\"resolver\":{\"resolve_min_ms\":5000,\"resolve_max_ms\":1000}," LISTENER_OK
                 "," POOL_OK "}",
                 "resolver.resolve_max_ms: expected at least resolve_min_ms (5000), got 1000");
    expect_error("{\"resolver\":{\"timeout_ms\":0}," LISTENER_OK "," POOL_OK "}",
                 "resolver.timeout_ms: expected an integer from 10 to 60000");
    expect_error("{\"resolver\":[]," LISTENER_OK "," POOL_OK "}",
                 "resolver: expected an object, got an array");
}
END_TEST

START_TEST(backend_resolve_and_srv_errors)
{
    expect_error("{" LISTENER_OK "," DNS_POOL("{\"name\":\"b\",\"address\":\"h.example:1\","
                                              "\"resolve\":\"every\"}") "}",
                 "pools[0].backends[0].resolve: expected one of: first, all, got \"every\"");
    expect_error("{" LISTENER_OK "," DNS_POOL("{\"name\":\"b\",\"address\":\"127.0.0.1:1\","
                                              "\"resolve\":\"all\"}") "}",
                 "pools[0].backends[0].resolve: \"all\" follows a host name's addresses");
    expect_error("{" LISTENER_OK "," DNS_POOL("{\"name\":\"b\",\"address\":\"h.example:1\","
                                              "\"srv\":\"_x._tcp.example\"}") "}",
                 "pools[0].backends[0].srv: set either \"address\" or \"srv\", not both");
    expect_error("{" LISTENER_OK "," DNS_POOL("{\"name\":\"b\",\"srv\":\"bad name!\"}") "}",
                 "pools[0].backends[0].srv: expected a DNS name such as \"_redis._tcp.example\"");
    expect_error("{" LISTENER_OK "," DNS_POOL("{\"name\":\"b\",\"srv\":\"_x._tcp.example\","
                                              "\"weight\":3}") "}",
                 "pools[0].backends[0].weight: with \"srv\", weights come from the SRV records");
    expect_error("{" LISTENER_OK "," DNS_POOL("{\"name\":\"b\",\"srv\":\"_x._tcp.example\","
                                              "\"resolve\":\"first\"}") "}",
                 "pools[0].backends[0].resolve: with \"srv\", every record's address is a "
                 "backend: expected \"all\"");
    expect_error("{" LISTENER_OK "," DNS_POOL("{\"name\":\"b\",\"address\":\"a b.example:1\","
                                              "\"resolve\":\"all\"}") "}",
                 "pools[0].backends[0].address: expected a host name of letters, digits, '-', "
                 "'_' and '.', got \"a b.example\"");
    expect_error("{" LISTENER_OK "," DNS_POOL("{\"name\":\"b\"}") "}",
                 "pools[0].backends[0].address: missing");
    expect_error("{" LISTENER_OK "," DNS_POOL("{\"name\":\"b\",\"address\":\"h.example\","
                                              "\"resolve\":\"all\"}") "}",
                 "pools[0].backends[0].address: expected \"IPv4:port\", \"[IPv6]:port\" or "
                 "\"host:port\"");
}
END_TEST

static Suite *make_suite(void)
{
    Suite *s = suite_create("config");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, minimal_config_gets_documented_defaults);
    tcase_add_test(tc, poller_balance_names_are_the_reactor_enum);
    tcase_add_test(tc, accept_modes_load_and_a_wrong_one_is_named);
    tcase_add_test(tc, io_names_are_the_reactor_enum);
    tcase_add_test(tc, the_issue_example_loads);
    tcase_add_test(tc, syntax_error_has_line_and_column);
    tcase_add_test(tc, duplicate_key_is_an_error);
    tcase_add_test(tc, unknown_keys_name_their_path);
    tcase_add_test(tc, wrong_types_say_what_was_expected);
    tcase_add_test(tc, missing_required_keys);
    tcase_add_test(tc, duplicate_names);
    tcase_add_test(tc, listener_naming_a_missing_pool);
    tcase_add_test(tc, bad_addresses_and_ports);
    tcase_add_test(tc, empty_pool_and_bad_numbers);
    tcase_add_test(tc, admin_allowed_hosts);
    tcase_add_test(tc, watch_config_is_a_boolean);
    tcase_add_test(tc, every_error_is_reported_once);
    tcase_add_test(tc, missing_file);
    tcase_add_test(tc, address_round_trip);
    tcase_add_test(tc, proxy_protocol_keys);
    tcase_add_test(tc, listener_routes);
    tcase_add_test(tc, log_keys_defaults_and_errors);
    tcase_add_test(tc, per_source_defaults_and_values);
    tcase_add_test(tc, per_source_errors_name_their_path);
    tcase_add_test(tc, resolver_defaults_and_keys);
    tcase_add_test(tc, resolver_errors_name_their_path);
    tcase_add_test(tc, backend_resolve_and_srv_errors);
    suite_add_tcase(s, tc);
    return s;
}
