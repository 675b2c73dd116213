/* tests/unit/test_route.c — proxy/route.c: which route a ClientHello takes.
 * Exact beats wildcard beats any-name beats default; a matching "alpn" beats
 * none at each level; a wildcard is one label; no match and no default: -1.
 * The routes come through the real config loader. */
#include <stdio.h>
#include <string.h>

#include "check_main.h"
#include "config/config.h"
#include "proxy/route.h"
#include "proxy/tls_hello.h"

/* A hello naming sni and offering protos (joined by ','). */
static struct tls_hello hello(const char *sni, const char *protos)
{
    struct tls_hello h;
    memset(&h, 0, sizeof(h));
    strcpy(h.sni, sni);
    for (const char *p = protos; p && *p;) {
        size_t n = strcspn(p, ",");
        h.alpn[h.alpn_len] = (uint8_t)n;
        memcpy(h.alpn + h.alpn_len + 1, p, n);
        h.alpn_len = (uint16_t)(h.alpn_len + 1 + n);
        h.nalpn++;
        p += n + (p[n] == ',');
    }
    return h;
}

static struct config *load(const char *routes)
{
    char json[4096];
    snprintf(json, sizeof(json),
             "{\"pools\":["
             "{\"name\":\"api\",\"backends\":[{\"name\":\"b\",\"address\":\"127.0.0.1:1\"}]},"
             "{\"name\":\"grpc\",\"backends\":[{\"name\":\"b\",\"address\":\"127.0.0.1:2\"}]},"
             "{\"name\":\"web\",\"backends\":[{\"name\":\"b\",\"address\":\"127.0.0.1:3\"}]},"
             "{\"name\":\"fallback\",\"backends\":[{\"name\":\"b\",\"address\":\"127.0.0.1:4\"}]}"
             "],\"listeners\":[{\"name\":\"tls\",\"listen\":\"127.0.0.1:7443\",\"routes\":%s}]}",
             routes);
    struct config *cfg;
    char *errors;
    if (config_load_buffer(json, strlen(json), "t.json", &cfg, &errors))
        ck_abort_msg("%s", errors);
    return cfg;
}

/* The pool name the hello is routed to, or "-" */
static const char *pool_of(const struct config *cfg, const char *sni, const char *protos)
{
    const struct cfg_listener *l = &cfg->listeners[0];
    struct tls_hello h = hello(sni, protos);
    int i = route_match(l->routes, l->nroutes, &h);
    return i < 0 ? "-" : l->routes[i].pool;
}

START_TEST(issue_example)
{
    struct config *cfg = load("[{\"sni\":\"api.example.com\",\"pool\":\"api\"},"
                              "{\"sni\":\"*.internal.example\",\"alpn\":\"h2\",\"pool\":\"grpc\"},"
                              "{\"default\":true,\"pool\":\"fallback\"}]");
    ck_assert_str_eq(pool_of(cfg, "api.example.com", NULL), "api");
    ck_assert_str_eq(pool_of(cfg, "api.example.com", "h2"), "api");
    ck_assert_str_eq(pool_of(cfg, "svc.internal.example", "http/1.1,h2"), "grpc");
    ck_assert_str_eq(pool_of(cfg, "svc.internal.example", "http/1.1"), "fallback");
    ck_assert_str_eq(pool_of(cfg, "svc.internal.example", NULL), "fallback");
    ck_assert_str_eq(pool_of(cfg, "a.svc.internal.example", "h2"), "fallback");
    ck_assert_str_eq(pool_of(cfg, "internal.example", "h2"), "fallback");
    ck_assert_str_eq(pool_of(cfg, "", "h2"), "fallback");
    ck_assert_str_eq(pool_of(cfg, "other.example", NULL), "fallback");
    config_free(cfg);
}
END_TEST

START_TEST(exact_beats_wildcard_beats_any_beats_default)
{
    /* Listed least specific first: the order must not decide. */
    struct config *cfg = load("[{\"default\":true,\"pool\":\"fallback\"},"
                              "{\"alpn\":\"h2\",\"pool\":\"grpc\"},"
                              "{\"sni\":\"*.example.com\",\"pool\":\"web\"},"
                              "{\"sni\":\"api.example.com\",\"pool\":\"api\"}]");
    ck_assert_str_eq(pool_of(cfg, "api.example.com", "h2"), "api");
    ck_assert_str_eq(pool_of(cfg, "www.example.com", "h2"), "web");
    ck_assert_str_eq(pool_of(cfg, "www.example.org", "h2"), "grpc");
    ck_assert_str_eq(pool_of(cfg, "", "h2"), "grpc");
    ck_assert_str_eq(pool_of(cfg, "www.example.org", "http/1.1"), "fallback");
    config_free(cfg);
}
END_TEST

START_TEST(alpn_condition_beats_none_at_the_same_name)
{
    struct config *cfg = load("[{\"sni\":\"x.example\",\"pool\":\"web\"},"
                              "{\"sni\":\"x.example\",\"alpn\":\"h2\",\"pool\":\"grpc\"},"
                              "{\"sni\":\"x.example\",\"alpn\":\"http/1.1\",\"pool\":\"api\"}]");
    ck_assert_str_eq(pool_of(cfg, "x.example", "h2"), "grpc");
    ck_assert_str_eq(pool_of(cfg, "x.example", "http/1.1"), "api");
    /* Both offered: the first listed of the equals. */
    ck_assert_str_eq(pool_of(cfg, "x.example", "http/1.1,h2"), "grpc");
    ck_assert_str_eq(pool_of(cfg, "x.example", "spdy/3"), "web");
    ck_assert_str_eq(pool_of(cfg, "x.example", NULL), "web");
    /* No default: no route. */
    ck_assert_str_eq(pool_of(cfg, "y.example", "h2"), "-");
    ck_assert_str_eq(pool_of(cfg, "", NULL), "-");
    config_free(cfg);
}
END_TEST

START_TEST(names_are_matched_lowercased)
{
    struct config *cfg = load("[{\"sni\":\"API.Example.COM\",\"pool\":\"api\"},"
                              "{\"sni\":\"*.Internal.Example\",\"pool\":\"grpc\"}]");
    ck_assert_str_eq(cfg->listeners[0].routes[0].sni, "api.example.com");
    ck_assert_str_eq(pool_of(cfg, "api.example.com", NULL), "api");
    ck_assert_str_eq(pool_of(cfg, "a.internal.example", NULL), "grpc");
    config_free(cfg);
}
END_TEST

START_TEST(wildcard_is_one_label)
{
    ck_assert(route_name_matches("*.a.example", "x.a.example"));
    ck_assert(route_name_matches("*.a.example", "x-y_z.a.example"));
    ck_assert(!route_name_matches("*.a.example", "a.example"));
    ck_assert(!route_name_matches("*.a.example", ".a.example"));
    ck_assert(!route_name_matches("*.a.example", "y.x.a.example"));
    ck_assert(!route_name_matches("*.a.example", "xa.example"));
    ck_assert(!route_name_matches("*.a.example", ""));
    ck_assert(route_name_matches("a.example", "a.example"));
    ck_assert(!route_name_matches("a.example", "b.a.example"));
    ck_assert(!route_name_matches("a.example", "a.example.com"));
}
END_TEST

static Suite *make_suite(void)
{
    Suite *s = suite_create("route");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, issue_example);
    tcase_add_test(tc, exact_beats_wildcard_beats_any_beats_default);
    tcase_add_test(tc, alpn_condition_beats_none_at_the_same_name);
    tcase_add_test(tc, names_are_matched_lowercased);
    tcase_add_test(tc, wildcard_is_one_label);
    suite_add_tcase(s, tc);
    return s;
}
