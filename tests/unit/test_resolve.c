/* tests/unit/test_resolve.c — DNS discovery's pure rules (proxy/resolve.c):
 * the TTL clamp, the names of backends found by DNS and which configured
 * backend owns them, SRV weights, and an answer's TTL read from DNS wire
 * format (well-formed, compressed, truncated, empty). */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <string.h>

#include "check_main.h"
#include "proxy/resolve.h"

START_TEST(ttl_is_clamped)
{
    ck_assert_uint_eq(resolve_next_ms(0, 1000, 60000), 1000);
    ck_assert_uint_eq(resolve_next_ms(1, 1000, 60000), 1000);
    ck_assert_uint_eq(resolve_next_ms(5, 1000, 60000), 5000);
    ck_assert_uint_eq(resolve_next_ms(60, 1000, 60000), 60000);
    ck_assert_uint_eq(resolve_next_ms(86400, 1000, 60000), 60000);
    ck_assert_uint_eq(resolve_next_ms(UINT32_MAX, 1000, 60000), 60000); /* no overflow */
    ck_assert_uint_eq(resolve_next_ms(30, 200, 200), 200);
}
END_TEST

static struct cfg_sockaddr v4(const char *ip, unsigned port)
{
    struct cfg_sockaddr a = {.len = sizeof(struct sockaddr_in)};
    struct sockaddr_in *s = (struct sockaddr_in *)&a.ss;
    s->sin_family = AF_INET;
    s->sin_port = htons((uint16_t)port);
    inet_pton(AF_INET, ip, &s->sin_addr);
    return a;
}

static struct cfg_sockaddr v6(const char *ip, unsigned port)
{
    struct cfg_sockaddr a = {.len = sizeof(struct sockaddr_in6)};
    struct sockaddr_in6 *s = (struct sockaddr_in6 *)&a.ss;
    s->sin6_family = AF_INET6;
    s->sin6_port = htons((uint16_t)port);
    inet_pton(AF_INET6, ip, &s->sin6_addr);
    return a;
}

START_TEST(backend_names)
{
    char buf[128];
    struct cfg_sockaddr a = v4("10.0.0.7", 6379), b = v6("fd00::7", 6379);
    ck_assert_int_eq(resolve_backend_name("redis", &a, buf, sizeof(buf)), 0);
    ck_assert_str_eq(buf, "redis@10.0.0.7:6379");
    ck_assert_int_eq(resolve_backend_name("redis", &b, buf, sizeof(buf)), 0);
    ck_assert_str_eq(buf, "redis@[fd00::7]:6379");
    ck_assert_int_eq(resolve_backend_name("redis", &a, buf, 10), -ENAMETOOLONG);
    ck_assert(resolve_owns("redis", "redis@10.0.0.7:6379"));
    ck_assert(!resolve_owns("redis", "redis"));            /* the configured one itself */
    ck_assert(!resolve_owns("redis", "redis2@1.2.3.4:1")); /* another name's prefix */
    ck_assert(!resolve_owns("redis2", "redis@1.2.3.4:1"));
}
END_TEST

START_TEST(srv_weights)
{
    unsigned out[4];
    resolve_srv_weights((unsigned[]){10, 30}, 2, out);
    ck_assert_uint_eq(out[0], 10);
    ck_assert_uint_eq(out[1], 30);
    /* Weight 0 among weighted records: never picked. */
    resolve_srv_weights((unsigned[]){0, 5}, 2, out);
    ck_assert_uint_eq(out[0], 0);
    ck_assert_uint_eq(out[1], 5);
    /* Every record 0: all alike. */
    resolve_srv_weights((unsigned[]){0, 0, 0}, 3, out);
    ck_assert_uint_eq(out[0], 1);
    ck_assert_uint_eq(out[2], 1);
    /* Above the backend maximum: scaled in proportion, non-zero kept >= 1. */
    resolve_srv_weights((unsigned[]){65535, 32768, 1, 0}, 4, out);
    ck_assert_uint_eq(out[0], RESOLVE_MAX_WEIGHT);
    ck_assert_uint_eq(out[1], 500);
    ck_assert_uint_eq(out[2], 1);
    ck_assert_uint_eq(out[3], 0);
}
END_TEST

/* A response to "a.example IN A" with two answers (TTL 300 and 30), the
 * second's owner name written out rather than compressed. */
static const unsigned char RESPONSE[] = {
    0x12, 0x34, 0x81, 0x80, 0,   1,   0,   2,   0,   0,   0, 0,              /* header */
    1,    'a',  7,    'e',  'x', 'a', 'm', 'p', 'l', 'e', 0, 0, 1,  0, 1,    /* question */
    0xc0, 0x0c, 0,    1,    0,   1,   0,   0,   1,   44,  0, 4, 10, 0, 0, 1, /* ttl 300 */
    1,    'a',  7,    'e',  'x', 'a', 'm', 'p', 'l', 'e', 0, 0, 1,  0, 1, 0,
    0,    0,    30,   0,    4,   10,  0,   0,   2, /* ttl 30 */
};

START_TEST(answer_ttl_from_wire)
{
    ck_assert_uint_eq(resolve_answer_ttl(RESPONSE, sizeof(RESPONSE), 99), 30);
    /* The second answer cut short: the first one's TTL is all there is. */
    ck_assert_uint_eq(resolve_answer_ttl(RESPONSE, 40, 99), 300);
    /* Inside the question, or the header: the fallback. */
    ck_assert_uint_eq(resolve_answer_ttl(RESPONSE, 20, 99), 99);
    ck_assert_uint_eq(resolve_answer_ttl(RESPONSE, 5, 99), 99);
    /* No answer records. */
    unsigned char none[sizeof(RESPONSE)];
    memcpy(none, RESPONSE, sizeof(none));
    none[7] = 0;
    ck_assert_uint_eq(resolve_answer_ttl(none, sizeof(none), 99), 99);
    /* A reserved label type is malformed, not read past. */
    unsigned char bad[sizeof(RESPONSE)];
    memcpy(bad, RESPONSE, sizeof(bad));
    bad[12] = 0x80;
    ck_assert_uint_eq(resolve_answer_ttl(bad, sizeof(bad), 99), 99);
}
END_TEST

static Suite *make_suite(void)
{
    Suite *s = suite_create("resolve");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, ttl_is_clamped);
    tcase_add_test(tc, backend_names);
    tcase_add_test(tc, srv_weights);
    tcase_add_test(tc, answer_ttl_from_wire);
    suite_add_tcase(s, tc);
    return s;
}
