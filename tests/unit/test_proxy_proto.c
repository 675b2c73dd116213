/* tests/unit/test_proxy_proto.c — proxy/proxy_proto.c: v1 and v2 headers
 * parsed whole, prefix by prefix (every split needs more, never a wrong
 * verdict), followed by payload; bad signatures, versions, commands, lengths,
 * fields and TLVs; LOCAL, UNKNOWN, AF_UNIX and datagram keep no addresses;
 * the builder's output parses back. Each parse runs on a heap copy of exactly
 * the bytes given, so the ASan build catches a read past them. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "check_main.h"
#include "proxy/proxy_proto.h"

static const uint8_t SIG[12] = {0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D,
                                0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A};

/* Parses a heap copy of exactly len bytes. */
static enum proxy_parse parse(const void *buf, size_t len, struct proxy_hdr *h)
{
    uint8_t *copy = malloc(len ? len : 1);
    ck_assert_ptr_nonnull(copy);
    memcpy(copy, buf, len);
    enum proxy_parse r = proxy_proto_parse(copy, len, h);
    free(copy);
    return r;
}

/* Every proper prefix needs more; the whole is OK with h->len == len; with
 * payload behind it, still OK and the same length. */
static void parse_whole(const void *buf, size_t len, struct proxy_hdr *h)
{
    for (size_t i = 0; i < len; i++)
        ck_assert_msg(parse(buf, i, h) == PROXY_PARSE_NEED_MORE, "prefix %zu of %zu", i, len);
    uint8_t more[1024];
    ck_assert_uint_le(len + 16, sizeof(more));
    memcpy(more, buf, len);
    memcpy(more + len, "PAYLOAD\r\nPAYLOAD", 16);
    ck_assert_int_eq(parse(more, len + 16, h), PROXY_PARSE_OK);
    ck_assert_uint_eq(h->len, len);
    ck_assert_int_eq(parse(buf, len, h), PROXY_PARSE_OK);
    ck_assert_uint_eq(h->len, len);
}

static void expect_bad(const void *buf, size_t len)
{
    struct proxy_hdr h;
    ck_assert_msg(parse(buf, len, &h) == PROXY_PARSE_BAD, "not bad: %.*s", (int)len,
                  (const char *)buf);
}

static void expect_bad_str(const char *s)
{
    expect_bad(s, strlen(s));
}

static void check_addr(const struct sock_addr *a, int family, const char *ip, unsigned port)
{
    uint8_t want[16] = {0};
    ck_assert_int_eq(a->family, family);
    ck_assert_int_eq(inet_pton(family, ip, want), 1);
    ck_assert_mem_eq(a->ip, want, family == AF_INET ? 4 : 16);
    ck_assert_uint_eq(a->port, port);
}

/* A v2 header: signature, ver_cmd, fam, then body. */
static size_t v2(uint8_t *out, uint8_t ver_cmd, uint8_t fam, const void *body, size_t n)
{
    memcpy(out, SIG, 12);
    out[12] = ver_cmd;
    out[13] = fam;
    out[14] = (uint8_t)(n >> 8);
    out[15] = (uint8_t)n;
    memcpy(out + 16, body, n);
    return 16 + n;
}

START_TEST(v1_tcp4_and_tcp6)
{
    struct proxy_hdr h;
    const char *a = "PROXY TCP4 192.0.2.1 198.51.100.2 56324 443\r\n";
    parse_whole(a, strlen(a), &h);
    ck_assert_int_eq(h.version, 1);
    ck_assert_int_eq(h.has_addrs, 1);
    check_addr(&h.src, AF_INET, "192.0.2.1", 56324);
    check_addr(&h.dst, AF_INET, "198.51.100.2", 443);
    const char *b = "PROXY TCP6 2001:db8::1 ::1 0 65535\r\n";
    parse_whole(b, strlen(b), &h);
    check_addr(&h.src, AF_INET6, "2001:db8::1", 0);
    check_addr(&h.dst, AF_INET6, "::1", 65535);
    /* The longest TCP6 line: 104 bytes; with UNKNOWN in its place, the
     * spec's longest line, 107. */
    const char *c = "PROXY TCP6 ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff "
                    "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff 65535 65535\r\n";
    ck_assert_uint_eq(strlen(c), 104);
    parse_whole(c, strlen(c), &h);
    ck_assert_int_eq(h.has_addrs, 1);
    const char *d = "PROXY UNKNOWN ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff "
                    "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff 65535 65535\r\n";
    ck_assert_uint_eq(strlen(d), PROXY_V1_MAX);
    parse_whole(d, strlen(d), &h);
    ck_assert_int_eq(h.has_addrs, 0);
}
END_TEST

START_TEST(v1_unknown_keeps_no_address)
{
    struct proxy_hdr h;
    const char *a = "PROXY UNKNOWN\r\n";
    parse_whole(a, strlen(a), &h);
    ck_assert_int_eq(h.has_addrs, 0);
    const char *b = "PROXY UNKNOWN ffff:f...f:ffff 1 2 whatever\r\n";
    parse_whole(b, strlen(b), &h);
    ck_assert_int_eq(h.has_addrs, 0);
}
END_TEST

START_TEST(v1_bad_fields)
{
    expect_bad_str("GET / HTTP/1.1\r\n");
    expect_bad_str("PROXX");
    expect_bad_str("P\r");
    expect_bad_str("proxy TCP4 1.2.3.4 5.6.7.8 1 2\r\n");
    expect_bad_str("PROXY TCP4 1.2.3.4 5.6.7.8 1 2\n");    /* LF without CR */
    expect_bad_str("PROXY TCP4 1.2.3.4  5.6.7.8 1 2\r\n"); /* two spaces */
    expect_bad_str("PROXY TCP4 1.2.3.4 5.6.7.8 1 2 3\r\n");
    expect_bad_str("PROXY TCP4 1.2.3.4 5.6.7.8 1\r\n");
    expect_bad_str("PROXY TCP4 1.2.3.4 5.6.7.8 1 65536\r\n");
    expect_bad_str("PROXY TCP4 1.2.3.4 5.6.7.8 1 123456\r\n");
    expect_bad_str("PROXY TCP4 1.2.3.4 5.6.7.8 -1 2\r\n");
    expect_bad_str("PROXY TCP4 1.2.3.4 5.6.7.8 1 \r\n");
    expect_bad_str("PROXY TCP4 1.2.3.256 5.6.7.8 1 2\r\n");
    expect_bad_str("PROXY TCP4 ::1 ::1 1 2\r\n"); /* v6 under TCP4 */
    expect_bad_str("PROXY TCP6 1.2.3.4 5.6.7.8 1 2\r\n");
    expect_bad_str("PROXY UDP4 1.2.3.4 5.6.7.8 1 2\r\n");
    expect_bad_str("PROXY UNKNOWNX\r\n");
    expect_bad_str("PROXY \r\n");
    expect_bad_str("PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r\r\n");
}
END_TEST

START_TEST(v1_too_long)
{
    struct proxy_hdr h;
    char line[PROXY_V1_MAX + 8];
    memcpy(line, "PROXY UNKNOWN ", 14);
    memset(line + 14, 'x', sizeof(line) - 14);
    /* No CRLF in the first 106 bytes: could still end at 107. */
    ck_assert_int_eq(parse(line, PROXY_V1_MAX - 1, &h), PROXY_PARSE_NEED_MORE);
    ck_assert_int_eq(parse(line, PROXY_V1_MAX, &h), PROXY_PARSE_BAD);
    ck_assert_int_eq(parse(line, sizeof(line), &h), PROXY_PARSE_BAD);
    /* CRLF ending at byte 108: too late. */
    line[PROXY_V1_MAX - 1] = '\r';
    line[PROXY_V1_MAX] = '\n';
    ck_assert_int_eq(parse(line, PROXY_V1_MAX + 1, &h), PROXY_PARSE_BAD);
    /* ... at byte 107: fine. */
    line[PROXY_V1_MAX - 2] = '\r';
    line[PROXY_V1_MAX - 1] = '\n';
    ck_assert_int_eq(parse(line, PROXY_V1_MAX, &h), PROXY_PARSE_OK);
    ck_assert_uint_eq(h.len, PROXY_V1_MAX);
}
END_TEST

START_TEST(v2_inet_and_inet6)
{
    struct proxy_hdr h;
    uint8_t buf[256];
    const uint8_t a4[] = {192, 0, 2, 1, 198, 51, 100, 2, 0xdc, 0x04, 0x01, 0xbb};
    size_t n = v2(buf, 0x21, 0x11, a4, sizeof(a4));
    parse_whole(buf, n, &h);
    ck_assert_int_eq(h.version, 2);
    ck_assert_int_eq(h.has_addrs, 1);
    check_addr(&h.src, AF_INET, "192.0.2.1", 56324);
    check_addr(&h.dst, AF_INET, "198.51.100.2", 443);
    uint8_t a6[36 + 3 + 5 + 3] = {0};
    inet_pton(AF_INET6, "2001:db8::1", a6);
    inet_pton(AF_INET6, "2001:db8::2", a6 + 16);
    a6[32] = 0x12, a6[33] = 0x34, a6[34] = 0x00, a6[35] = 0x50;
    /* Two TLVs: a unique id of 5 bytes and an empty one. */
    memcpy(a6 + 36,
           "\x05\x00\x05"
           "abcde"
           "\xee\x00\x00",
           11);
    n = v2(buf, 0x21, 0x21, a6, sizeof(a6));
    parse_whole(buf, n, &h);
    check_addr(&h.src, AF_INET6, "2001:db8::1", 0x1234);
    check_addr(&h.dst, AF_INET6, "2001:db8::2", 80);
}
END_TEST

START_TEST(v2_local_unspec_unix_dgram_keep_no_address)
{
    struct proxy_hdr h;
    uint8_t buf[512], body[216 + 3] = {0};
    size_t n = v2(buf, 0x20, 0x00, body, 0); /* LOCAL */
    parse_whole(buf, n, &h);
    ck_assert_int_eq(h.has_addrs, 0);
    n = v2(buf, 0x20, 0x11, body, 12); /* LOCAL with addresses: ignored */
    parse_whole(buf, n, &h);
    ck_assert_int_eq(h.has_addrs, 0);
    n = v2(buf, 0x21, 0x00, body, 7); /* PROXY, AF_UNSPEC: whatever follows is skipped */
    parse_whole(buf, n, &h);
    ck_assert_int_eq(h.has_addrs, 0);
    n = v2(buf, 0x21, 0x31, body, 216); /* AF_UNIX stream */
    parse_whole(buf, n, &h);
    ck_assert_int_eq(h.has_addrs, 0);
    n = v2(buf, 0x21, 0x12, body, 12); /* AF_INET datagram */
    parse_whole(buf, n, &h);
    ck_assert_int_eq(h.has_addrs, 0);
}
END_TEST

START_TEST(v2_bad)
{
    uint8_t buf[512], body[64] = {0};
    uint8_t sig[12];
    memcpy(sig, SIG, 12);
    sig[7] = 'q';
    expect_bad(sig, 12);
    expect_bad(sig, 8);                             /* as soon as the wrong byte is in */
    expect_bad(buf, v2(buf, 0x11, 0x11, body, 12)); /* version 1 */
    expect_bad(buf, v2(buf, 0x31, 0x11, body, 12)); /* version 3 */
    expect_bad(buf, 13);                            /* ... seen from byte 13 */
    expect_bad(buf, v2(buf, 0x22, 0x11, body, 12)); /* command 2 */
    expect_bad(buf, v2(buf, 0x21, 0x41, body, 12)); /* family 4 */
    expect_bad(buf, v2(buf, 0x21, 0x13, body, 12)); /* transport 3 */
    expect_bad(buf, 14);
    expect_bad(buf, v2(buf, 0x21, 0x11, body, 11)); /* addresses longer than the header */
    expect_bad(buf, v2(buf, 0x21, 0x21, body, 35));
    expect_bad(buf, v2(buf, 0x21, 0x31, body, 0));
    /* TLVs that run past the header. */
    uint8_t t[12 + 8] = {0};
    memcpy(t + 12,
           "\x05\x00\x06"
           "abcde",
           8);
    expect_bad(buf, v2(buf, 0x21, 0x11, t, sizeof(t)));
    expect_bad(buf, v2(buf, 0x21, 0x11, t, 12 + 2)); /* a TLV header cut short */
}
END_TEST

START_TEST(v2_length_is_awaited_not_read_past)
{
    struct proxy_hdr h;
    uint8_t buf[16 + 100] = {0};
    memcpy(buf, SIG, 12);
    buf[12] = 0x21, buf[13] = 0x11, buf[14] = 0xff, buf[15] = 0xff; /* 65535 bytes announced */
    for (size_t i = 0; i <= sizeof(buf); i++)
        ck_assert_int_eq(parse(buf, i, &h), PROXY_PARSE_NEED_MORE);
}
END_TEST

START_TEST(build_parses_back)
{
    struct sock_addr s4 = {.family = AF_INET, .port = 1234}, d4 = {.family = AF_INET, .port = 80};
    struct sock_addr s6 = {.family = AF_INET6, .port = 5}, d6 = {.family = AF_INET6, .port = 6};
    inet_pton(AF_INET, "192.0.2.1", s4.ip);
    inet_pton(AF_INET, "198.51.100.2", d4.ip);
    inet_pton(AF_INET6, "2001:db8::1", s6.ip);
    inet_pton(AF_INET6, "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", d6.ip);
    uint8_t out[PROXY_BUILD_MAX];
    struct proxy_hdr h;
    char id[PROXY_UNIQUE_ID_MAX];
    memset(id, 'i', sizeof(id));
    for (int version = 1; version <= 2; version++) {
        int n = proxy_proto_build(out, sizeof(out), version, &s4, &d4, NULL, 0);
        ck_assert_int_gt(n, 0);
        parse_whole(out, (size_t)n, &h);
        ck_assert_int_eq(h.version, version);
        check_addr(&h.src, AF_INET, "192.0.2.1", 1234);
        check_addr(&h.dst, AF_INET, "198.51.100.2", 80);
        n = proxy_proto_build(out, sizeof(out), version, &s6, &d6, version == 2 ? id : NULL,
                              version == 2 ? sizeof(id) : 0);
        ck_assert_int_gt(n, 0);
        ck_assert_int_le(n, version == 1 ? PROXY_V1_MAX : PROXY_BUILD_MAX);
        parse_whole(out, (size_t)n, &h);
        check_addr(&h.src, AF_INET6, "2001:db8::1", 5);
        check_addr(&h.dst, AF_INET6, "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", 6);
        /* IPv4 beside IPv6: written IPv4-mapped. */
        n = proxy_proto_build(out, sizeof(out), version, &s4, &d6, NULL, 0);
        parse_whole(out, (size_t)n, &h);
        check_addr(&h.src, AF_INET6, "::ffff:192.0.2.1", 1234);
        /* Unknown: UNKNOWN / AF_UNSPEC, no address. */
        struct sock_addr none = {0};
        n = proxy_proto_build(out, sizeof(out), version, &none, &d4, NULL, 0);
        ck_assert_int_gt(n, 0);
        parse_whole(out, (size_t)n, &h);
        ck_assert_int_eq(h.has_addrs, 0);
    }
    ck_assert_int_eq(proxy_proto_build(out, sizeof(out), 1, NULL, NULL, NULL, 0), 15);
    ck_assert_mem_eq(out, "PROXY UNKNOWN\r\n", 15);
}
END_TEST

START_TEST(build_rejects)
{
    struct sock_addr s4 = {.family = AF_INET, .port = 1}, d4 = {.family = AF_INET, .port = 2};
    uint8_t out[PROXY_BUILD_MAX + 1];
    char id[PROXY_UNIQUE_ID_MAX + 1] = {0};
    ck_assert_int_eq(proxy_proto_build(out, sizeof(out), 3, &s4, &d4, NULL, 0), -EINVAL);
    ck_assert_int_eq(proxy_proto_build(out, sizeof(out), 2, &s4, &d4, id, sizeof(id)), -EINVAL);
    ck_assert_int_eq(proxy_proto_build(out, 10, 1, &s4, &d4, NULL, 0), -ENOSPC);
    ck_assert_int_eq(proxy_proto_build(out, 27, 2, &s4, &d4, NULL, 0), -ENOSPC);
    ck_assert_int_eq(proxy_proto_build(out, 28, 2, &s4, &d4, NULL, 0), 28);
}
END_TEST

static Suite *make_suite(void)
{
    Suite *s = suite_create("proxy_proto");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, v1_tcp4_and_tcp6);
    tcase_add_test(tc, v1_unknown_keeps_no_address);
    tcase_add_test(tc, v1_bad_fields);
    tcase_add_test(tc, v1_too_long);
    tcase_add_test(tc, v2_inet_and_inet6);
    tcase_add_test(tc, v2_local_unspec_unix_dgram_keep_no_address);
    tcase_add_test(tc, v2_bad);
    tcase_add_test(tc, v2_length_is_awaited_not_read_past);
    tcase_add_test(tc, build_parses_back);
    tcase_add_test(tc, build_rejects);
    suite_add_tcase(s, tc);
    return s;
}
