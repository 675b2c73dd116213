/* tests/unit/test_tls_hello.c — proxy/tls_hello.c: real ClientHellos from
 * openssl s_client (one record, and one its -split_send_frag cut into six),
 * and hand-built ones: split byte by byte and record by record, several
 * extensions, no SNI, ALPN, oversized, every length cut short, bad names,
 * bytes that are not TLS. */
#include <stdio.h>
#include <string.h>

#include "check_main.h"
#include "proxy/tls_hello.h"

/* openssl s_client -servername api.example.com -alpn h2,http/1.1 (OpenSSL 3.0) */
static const uint8_t REAL_HELLO[] = {
    0x16, 0x03, 0x01, 0x01, 0x4e, 0x01, 0x00, 0x01, 0x4a, 0x03, 0x03, 0xdd, 0xc0, 0x0d, 0x24, 0xdb,
    0xb5, 0xe0, 0x73, 0xa6, 0x43, 0xf5, 0x40, 0x7f, 0xb7, 0x6c, 0x19, 0x6b, 0x93, 0x9c, 0x13, 0x34,
    0x91, 0xd4, 0x72, 0xfd, 0xa7, 0xe4, 0xfc, 0xac, 0x5d, 0x4d, 0x6e, 0x20, 0x8d, 0xdf, 0x6a, 0xfb,
    0x95, 0xc1, 0x9e, 0x2e, 0x5b, 0xb0, 0xe5, 0x46, 0xad, 0xf2, 0x4a, 0x25, 0x5c, 0x70, 0x5f, 0x64,
    0x84, 0x9d, 0x92, 0x82, 0x9e, 0x89, 0x63, 0xfe, 0x15, 0x5f, 0x7c, 0x47, 0x00, 0x3e, 0x13, 0x02,
    0x13, 0x03, 0x13, 0x01, 0xc0, 0x2c, 0xc0, 0x30, 0x00, 0x9f, 0xcc, 0xa9, 0xcc, 0xa8, 0xcc, 0xaa,
    0xc0, 0x2b, 0xc0, 0x2f, 0x00, 0x9e, 0xc0, 0x24, 0xc0, 0x28, 0x00, 0x6b, 0xc0, 0x23, 0xc0, 0x27,
    0x00, 0x67, 0xc0, 0x0a, 0xc0, 0x14, 0x00, 0x39, 0xc0, 0x09, 0xc0, 0x13, 0x00, 0x33, 0x00, 0x9d,
    0x00, 0x9c, 0x00, 0x3d, 0x00, 0x3c, 0x00, 0x35, 0x00, 0x2f, 0x00, 0xff, 0x01, 0x00, 0x00, 0xc3,
    0x00, 0x00, 0x00, 0x14, 0x00, 0x12, 0x00, 0x00, 0x0f, 0x61, 0x70, 0x69, 0x2e, 0x65, 0x78, 0x61,
    0x6d, 0x70, 0x6c, 0x65, 0x2e, 0x63, 0x6f, 0x6d, 0x00, 0x0b, 0x00, 0x04, 0x03, 0x00, 0x01, 0x02,
    0x00, 0x0a, 0x00, 0x16, 0x00, 0x14, 0x00, 0x1d, 0x00, 0x17, 0x00, 0x1e, 0x00, 0x19, 0x00, 0x18,
    0x01, 0x00, 0x01, 0x01, 0x01, 0x02, 0x01, 0x03, 0x01, 0x04, 0x00, 0x23, 0x00, 0x00, 0x00, 0x10,
    0x00, 0x0e, 0x00, 0x0c, 0x02, 0x68, 0x32, 0x08, 0x68, 0x74, 0x74, 0x70, 0x2f, 0x31, 0x2e, 0x31,
    0x00, 0x16, 0x00, 0x00, 0x00, 0x17, 0x00, 0x00, 0x00, 0x0d, 0x00, 0x2a, 0x00, 0x28, 0x04, 0x03,
    0x05, 0x03, 0x06, 0x03, 0x08, 0x07, 0x08, 0x08, 0x08, 0x09, 0x08, 0x0a, 0x08, 0x0b, 0x08, 0x04,
    0x08, 0x05, 0x08, 0x06, 0x04, 0x01, 0x05, 0x01, 0x06, 0x01, 0x03, 0x03, 0x03, 0x01, 0x03, 0x02,
    0x04, 0x02, 0x05, 0x02, 0x06, 0x02, 0x00, 0x2b, 0x00, 0x09, 0x08, 0x03, 0x04, 0x03, 0x03, 0x03,
    0x02, 0x03, 0x01, 0x00, 0x2d, 0x00, 0x02, 0x01, 0x01, 0x00, 0x33, 0x00, 0x26, 0x00, 0x24, 0x00,
    0x1d, 0x00, 0x20, 0x31, 0x08, 0xe4, 0xb9, 0x75, 0xaa, 0xf7, 0x80, 0xdc, 0xf1, 0x3a, 0xee, 0xc4,
    0x30, 0x61, 0x07, 0x15, 0x5e, 0x7c, 0xc4, 0xd4, 0x03, 0xd2, 0x5f, 0x48, 0xf8, 0x49, 0xf7, 0x8c,
    0xc8, 0x50, 0x3f,
};
/* openssl s_client -servername split.example -alpn h2 -max_send_frag 512
 * -split_send_frag 64: the same kind of hello in six records */
static const uint8_t REAL_SPLIT[] = {
    0x16, 0x03, 0x01, 0x00, 0x40, 0x01, 0x00, 0x01, 0x3f, 0x03, 0x03, 0x9f, 0x6c, 0xa4, 0x80, 0xb2,
    0x02, 0xbb, 0x5e, 0xa3, 0xbb, 0xb3, 0xa5, 0x93, 0xb3, 0x5c, 0x9d, 0xc0, 0x67, 0xf5, 0xd1, 0x51,
    0x29, 0x01, 0x85, 0xc9, 0xb0, 0x0d, 0x11, 0x8a, 0x35, 0x2d, 0x58, 0x20, 0x5a, 0x3b, 0xca, 0xfd,
    0xb0, 0xcc, 0x58, 0x1e, 0xa0, 0xdd, 0xd2, 0x6d, 0x46, 0xee, 0x61, 0x67, 0x30, 0x9b, 0x32, 0x2f,
    0x9f, 0x93, 0x03, 0xbd, 0x83, 0x16, 0x03, 0x01, 0x00, 0x40, 0xbb, 0x9b, 0xae, 0x8a, 0xbe, 0xaa,
    0x2f, 0x00, 0x3e, 0x13, 0x02, 0x13, 0x03, 0x13, 0x01, 0xc0, 0x2c, 0xc0, 0x30, 0x00, 0x9f, 0xcc,
    0xa9, 0xcc, 0xa8, 0xcc, 0xaa, 0xc0, 0x2b, 0xc0, 0x2f, 0x00, 0x9e, 0xc0, 0x24, 0xc0, 0x28, 0x00,
    0x6b, 0xc0, 0x23, 0xc0, 0x27, 0x00, 0x67, 0xc0, 0x0a, 0xc0, 0x14, 0x00, 0x39, 0xc0, 0x09, 0xc0,
    0x13, 0x00, 0x33, 0x00, 0x9d, 0x00, 0x9c, 0x00, 0x3d, 0x00, 0x16, 0x03, 0x01, 0x00, 0x40, 0x3c,
    0x00, 0x35, 0x00, 0x2f, 0x00, 0xff, 0x01, 0x00, 0x00, 0xb8, 0x00, 0x00, 0x00, 0x12, 0x00, 0x10,
    0x00, 0x00, 0x0d, 0x73, 0x70, 0x6c, 0x69, 0x74, 0x2e, 0x65, 0x78, 0x61, 0x6d, 0x70, 0x6c, 0x65,
    0x00, 0x0b, 0x00, 0x04, 0x03, 0x00, 0x01, 0x02, 0x00, 0x0a, 0x00, 0x16, 0x00, 0x14, 0x00, 0x1d,
    0x00, 0x17, 0x00, 0x1e, 0x00, 0x19, 0x00, 0x18, 0x01, 0x00, 0x01, 0x01, 0x01, 0x02, 0x01, 0x16,
    0x03, 0x01, 0x00, 0x40, 0x03, 0x01, 0x04, 0x00, 0x23, 0x00, 0x00, 0x00, 0x10, 0x00, 0x05, 0x00,
    0x03, 0x02, 0x68, 0x32, 0x00, 0x16, 0x00, 0x00, 0x00, 0x17, 0x00, 0x00, 0x00, 0x0d, 0x00, 0x2a,
    0x00, 0x28, 0x04, 0x03, 0x05, 0x03, 0x06, 0x03, 0x08, 0x07, 0x08, 0x08, 0x08, 0x09, 0x08, 0x0a,
    0x08, 0x0b, 0x08, 0x04, 0x08, 0x05, 0x08, 0x06, 0x04, 0x01, 0x05, 0x01, 0x06, 0x01, 0x03, 0x03,
    0x03, 0x01, 0x03, 0x02, 0x16, 0x03, 0x01, 0x00, 0x40, 0x04, 0x02, 0x05, 0x02, 0x06, 0x02, 0x00,
    0x2b, 0x00, 0x09, 0x08, 0x03, 0x04, 0x03, 0x03, 0x03, 0x02, 0x03, 0x01, 0x00, 0x2d, 0x00, 0x02,
    0x01, 0x01, 0x00, 0x33, 0x00, 0x26, 0x00, 0x24, 0x00, 0x1d, 0x00, 0x20, 0xa2, 0x33, 0xd2, 0xb7,
    0x12, 0xae, 0x40, 0x01, 0x2a, 0x13, 0xa3, 0x1e, 0x63, 0xbe, 0xe9, 0x1e, 0x89, 0xff, 0x28, 0x67,
    0xf5, 0xe2, 0x97, 0x7b, 0xe5, 0x7c, 0x8e, 0xbe, 0xc0, 0x16, 0x03, 0x01, 0x00, 0x03, 0x5c, 0xd1,
    0x1f,
};

/* A byte string under construction. */
struct bytes {
    uint8_t b[40000];
    size_t n;
};

static void put8(struct bytes *o, unsigned v)
{
    ck_assert_uint_lt(o->n, sizeof(o->b));
    o->b[o->n++] = (uint8_t)v;
}
static void put16(struct bytes *o, unsigned v)
{
    put8(o, v >> 8);
    put8(o, v & 0xff);
}
static void putn(struct bytes *o, const void *p, size_t n)
{
    ck_assert_uint_le(o->n + n, sizeof(o->b));
    if (n)
        memcpy(o->b + o->n, p, n);
    o->n += n;
}

/* An extension of type t with body p[0..n). */
static void ext(struct bytes *o, unsigned t, const void *p, size_t n)
{
    put16(o, t);
    put16(o, (unsigned)n);
    putn(o, p, n);
}

static void ext_sni(struct bytes *o, const char *name)
{
    struct bytes e = {.n = 0};
    size_t n = strlen(name);
    put16(&e, (unsigned)(n + 3));
    put8(&e, 0);
    put16(&e, (unsigned)n);
    putn(&e, name, n);
    ext(o, 0, e.b, e.n);
}

/* protos: names joined by ',' */
static void ext_alpn(struct bytes *o, const char *protos)
{
    struct bytes e = {.n = 2};
    for (const char *p = protos; *p;) {
        size_t n = strcspn(p, ",");
        put8(&e, (unsigned)n);
        putn(&e, p, n);
        p += n + (p[n] == ',');
    }
    e.b[0] = (uint8_t)((e.n - 2) >> 8);
    e.b[1] = (uint8_t)(e.n - 2);
    ext(o, 16, e.b, e.n);
}

/* The handshake message (header included) of a ClientHello carrying exts;
 * exts NULL: no extensions block at all. */
static void hello_msg(struct bytes *o, const struct bytes *exts)
{
    struct bytes body = {.n = 0};
    static const uint8_t random[32] = {1, 2, 3};
    put16(&body, 0x0303);
    putn(&body, random, sizeof(random));
    put8(&body, 32); /* session id */
    putn(&body, random, 32);
    put16(&body, 4); /* two cipher suites */
    put16(&body, 0x1301);
    put16(&body, 0xc02f);
    put8(&body, 1); /* null compression */
    put8(&body, 0);
    if (exts) {
        put16(&body, (unsigned)exts->n);
        putn(&body, exts->b, exts->n);
    }
    put8(o, 1);
    put8(o, (unsigned)(body.n >> 16));
    put16(o, (unsigned)(body.n & 0xffff));
    putn(o, body.b, body.n);
}

/* msg cut into handshake records of at most frag bytes. */
static void records(struct bytes *o, const struct bytes *msg, size_t frag)
{
    for (size_t i = 0; i < msg->n; i += frag) {
        size_t n = msg->n - i < frag ? msg->n - i : frag;
        put8(o, 22);
        put16(o, 0x0301);
        put16(o, (unsigned)n);
        putn(o, msg->b + i, n);
    }
}

/* A full hello on the wire: SNI name (NULL: none), ALPN protos (NULL:
 * none), an unknown extension before and after, in records of frag bytes. */
static void build(struct bytes *wire, const char *name, const char *protos, size_t frag)
{
    struct bytes exts = {.n = 0}, msg = {.n = 0};
    static const uint8_t groups[] = {0, 4, 0, 0x1d, 0, 0x17};
    ext(&exts, 10, groups, sizeof(groups)); /* supported_groups */
    if (name)
        ext_sni(&exts, name);
    ext(&exts, 23, NULL, 0); /* extended_master_secret: empty */
    if (protos)
        ext_alpn(&exts, protos);
    ext(&exts, 0xfe0d, "ech?", 4);
    hello_msg(&msg, &exts);
    wire->n = 0;
    records(wire, &msg, frag);
}

static enum tls_hello_status parse(const uint8_t *b, size_t n, struct tls_hello *h)
{
    return tls_hello_parse(b, n, h);
}

/* Every proper prefix needs more; the whole parses OK. */
static void expect_prefixes_need_more(const uint8_t *b, size_t n, struct tls_hello *h)
{
    for (size_t i = 0; i < n; i++) {
        enum tls_hello_status st = parse(b, i, h);
        if (st != TLS_HELLO_NEED_MORE)
            ck_abort_msg("prefix %zu of %zu: %s", i, n, tls_hello_status_name(st));
    }
    ck_assert_int_eq(parse(b, n, h), TLS_HELLO_OK);
}

START_TEST(real_openssl_hello)
{
    struct tls_hello h;
    ck_assert_int_eq(parse(REAL_HELLO, sizeof(REAL_HELLO), &h), TLS_HELLO_OK);
    ck_assert_str_eq(h.sni, "api.example.com");
    ck_assert_uint_eq(h.nalpn, 2);
    ck_assert(tls_hello_has_alpn(&h, "h2"));
    ck_assert(tls_hello_has_alpn(&h, "http/1.1"));
    ck_assert(!tls_hello_has_alpn(&h, "h"));
    ck_assert(!tls_hello_has_alpn(&h, "http/1.0"));
    expect_prefixes_need_more(REAL_HELLO, sizeof(REAL_HELLO), &h);
    ck_assert_str_eq(h.sni, "api.example.com");
}
END_TEST

START_TEST(real_hello_in_six_records)
{
    struct tls_hello h;
    expect_prefixes_need_more(REAL_SPLIT, sizeof(REAL_SPLIT), &h);
    ck_assert_str_eq(h.sni, "split.example");
    ck_assert_uint_eq(h.nalpn, 1);
    ck_assert(tls_hello_has_alpn(&h, "h2"));
}
END_TEST

START_TEST(one_byte_records)
{
    static struct bytes w;
    struct tls_hello h;
    build(&w, "one.example", "h2", 1);
    expect_prefixes_need_more(w.b, w.n, &h);
    ck_assert_str_eq(h.sni, "one.example");
    /* Records of every small size, and bytes after the hello (the next
     * record, or TLS 1.3 early data) are not looked at. */
    for (size_t frag = 2; frag < 40; frag++) {
        build(&w, "one.example", "h2", frag);
        w.b[w.n++] = 23;
        w.b[w.n++] = 0xff;
        ck_assert_int_eq(parse(w.b, w.n, &h), TLS_HELLO_OK);
        ck_assert_str_eq(h.sni, "one.example");
    }
}
END_TEST

START_TEST(several_extensions_missing_sni_no_alpn)
{
    static struct bytes w;
    struct tls_hello h;
    build(&w, "Mixed.CASE.Example", "h2,http/1.1,grpc-exp", 16384);
    ck_assert_int_eq(parse(w.b, w.n, &h), TLS_HELLO_OK);
    ck_assert_str_eq(h.sni, "mixed.case.example");
    ck_assert_uint_eq(h.nalpn, 3);
    ck_assert(tls_hello_has_alpn(&h, "grpc-exp"));
    build(&w, NULL, "h2", 16384);
    ck_assert_int_eq(parse(w.b, w.n, &h), TLS_HELLO_OK);
    ck_assert_str_eq(h.sni, "");
    ck_assert(tls_hello_has_alpn(&h, "h2"));
    build(&w, "x.example", NULL, 16384);
    ck_assert_int_eq(parse(w.b, w.n, &h), TLS_HELLO_OK);
    ck_assert_str_eq(h.sni, "x.example");
    ck_assert_uint_eq(h.alpn_len, 0);
    ck_assert(!tls_hello_has_alpn(&h, "h2"));
    /* No extensions block at all. */
    struct bytes msg = {.n = 0};
    hello_msg(&msg, NULL);
    w.n = 0;
    records(&w, &msg, 16384);
    ck_assert_int_eq(parse(w.b, w.n, &h), TLS_HELLO_OK);
    ck_assert_str_eq(h.sni, "");
}
END_TEST

START_TEST(alpn_list_keeps_whole_entries)
{
    static struct bytes w;
    struct tls_hello h;
    char protos[2048] = "";
    for (int i = 0; i < 40; i++) /* 40 x "protoNN-padding" (16 bytes each with its length) */
        snprintf(protos + strlen(protos), sizeof(protos) - strlen(protos), "%sproto%02d-padding",
                 i ? "," : "", i);
    build(&w, "a.example", protos, 16384);
    ck_assert_int_eq(parse(w.b, w.n, &h), TLS_HELLO_OK);
    ck_assert_uint_eq(h.nalpn, TLS_ALPN_MAX / 16);
    ck_assert(tls_hello_has_alpn(&h, "proto00-padding"));
    ck_assert(tls_hello_has_alpn(&h, "proto15-padding"));
    ck_assert(!tls_hello_has_alpn(&h, "proto16-padding"));
    /* An empty protocol name, or an empty list, is malformed. */
    struct bytes exts = {.n = 0}, msg = {.n = 0};
    static const uint8_t empty_name[] = {0, 3, 2, 'h', '2', 0};
    ext(&exts, 16, empty_name, sizeof(empty_name) - 1); /* list says 3, ok */
    hello_msg(&msg, &exts);
    w.n = 0;
    records(&w, &msg, 16384);
    ck_assert_int_eq(parse(w.b, w.n, &h), TLS_HELLO_OK);
    static const uint8_t zero[] = {0, 2, 0, 0};
    exts.n = msg.n = 0;
    ext(&exts, 16, zero, sizeof(zero)); /* a list of two zero-length names */
    hello_msg(&msg, &exts);
    w.n = 0;
    records(&w, &msg, 16384);
    ck_assert_int_eq(parse(w.b, w.n, &h), TLS_HELLO_BAD);
    static const uint8_t none[] = {0, 0};
    exts.n = msg.n = 0;
    ext(&exts, 16, none, 2);
    hello_msg(&msg, &exts);
    w.n = 0;
    records(&w, &msg, 16384);
    ck_assert_int_eq(parse(w.b, w.n, &h), TLS_HELLO_BAD);
}
END_TEST

START_TEST(oversized)
{
    static struct bytes w, exts, msg;
    struct tls_hello h;
    /* A declared handshake length past the bound: bad at once. */
    static const uint8_t big[] = {22, 3, 1, 0, 9, 1, 0, 0x40, 0x00};
    ck_assert_int_eq(parse(big, sizeof(big), &h), TLS_HELLO_BAD);
    /* ... also when its record says it holds all of it. */
    static const uint8_t big1[] = {22, 3, 1, 0x40, 0x00, 1, 0, 0x3f, 0xfc};
    ck_assert_int_eq(parse(big1, sizeof(big1), &h), TLS_HELLO_BAD);
    /* A padding extension that makes the hello 17 KB, in two records. */
    static uint8_t pad[17000];
    exts.n = msg.n = 0;
    ext_sni(&exts, "big.example");
    ext(&exts, 21, pad, sizeof(pad));
    hello_msg(&msg, &exts);
    w.n = 0;
    records(&w, &msg, 16384);
    ck_assert_int_eq(parse(w.b, w.n, &h), TLS_HELLO_BAD);
    /* A hello that fits in the bound, but whose records (4-byte fragments,
     * 9 bytes each on the wire) do not: bad once the bound is reached, not
     * before, and never read past. */
    exts.n = msg.n = 0;
    ext_sni(&exts, "frag.example");
    ext(&exts, 21, pad, 8000);
    hello_msg(&msg, &exts);
    w.n = 0;
    records(&w, &msg, 4);
    ck_assert_uint_gt(w.n, TLS_HELLO_MAX);
    ck_assert_int_eq(parse(w.b, TLS_HELLO_MAX - 1, &h), TLS_HELLO_NEED_MORE);
    ck_assert_int_eq(parse(w.b, TLS_HELLO_MAX, &h), TLS_HELLO_BAD);
    ck_assert_int_eq(parse(w.b, w.n, &h), TLS_HELLO_BAD);
    /* ... while the same hello in 1 KiB records is fine. */
    w.n = 0;
    records(&w, &msg, 1024);
    ck_assert_int_eq(parse(w.b, w.n, &h), TLS_HELLO_OK);
    ck_assert_str_eq(h.sni, "frag.example");
}
END_TEST

/* Each length field of a one-record hello, off by one either way (and 0
 * and 0xffff): BAD or NEED_MORE, never OK with a wrong name, never a read
 * past the buffer (ASan). */
START_TEST(every_length_off_by_one)
{
    static struct bytes w, mut;
    struct tls_hello h;
    build(&w, "len.example", "h2", 16384);
    /* Every 1- and 2-byte window is tried as a length. */
    for (size_t i = 0; i + 1 < w.n; i++) {
        static const int deltas[] = {-1, 1};
        for (int k = 0; k < 2; k++) {
            mut = w;
            unsigned v = (unsigned)mut.b[i] << 8 | mut.b[i + 1];
            v = (v + (unsigned)deltas[k]) & 0xffff;
            mut.b[i] = (uint8_t)(v >> 8);
            mut.b[i + 1] = (uint8_t)v;
            enum tls_hello_status st = parse(mut.b, mut.n, &h);
            if (st == TLS_HELLO_OK) /* random bytes and the like */
                ck_assert(strcmp(h.sni, "len.example") == 0 || h.sni[0] == '\0' ||
                          strlen(h.sni) == strlen("len.example"));
        }
    }
    /* The named ones, each cut or stretched. */
    struct {
        const char *what;
        size_t at; /* offset of a 2-byte length in the wire form */
    } fields[] = {
        {"record", 3},
        {"cipher_suites", 5 + 4 + 2 + 32 + 1 + 32},
        {"extensions", 5 + 4 + 2 + 32 + 1 + 32 + 2 + 4 + 2},
    };
    for (size_t f = 0; f < sizeof(fields) / sizeof(fields[0]); f++) {
        for (int delta = -3; delta <= 3; delta++) {
            /* A record longer than the hello only holds more bytes after it. */
            if (!delta || (f == 0 && delta > 0))
                continue;
            mut = w;
            size_t at = fields[f].at;
            unsigned v = ((unsigned)mut.b[at] << 8 | mut.b[at + 1]) + (unsigned)delta;
            mut.b[at] = (uint8_t)(v >> 8);
            mut.b[at + 1] = (uint8_t)v;
            enum tls_hello_status st = parse(mut.b, mut.n, &h);
            if (st == TLS_HELLO_OK)
                ck_abort_msg("%s %+d: parsed", fields[f].what, delta);
        }
    }
    /* A session id longer than 32 bytes. */
    static const uint8_t sid[] = {22, 3, 1, 0, 45, 1, 0, 0, 41, 3, 3};
    mut.n = 0;
    putn(&mut, sid, sizeof(sid));
    for (int i = 0; i < 32; i++)
        put8(&mut, 0);
    put8(&mut, 33); /* a session id longer than 32 */
    for (int i = 0; i < 5; i++)
        put8(&mut, 0);
    ck_assert_int_eq(parse(mut.b, mut.n, &h), TLS_HELLO_NEED_MORE);
    put8(&mut, 0); /* the whole message: now it is read, and refused */
    ck_assert_int_eq(parse(mut.b, mut.n, &h), TLS_HELLO_BAD);
}
END_TEST

START_TEST(bad_names)
{
    static struct bytes w;
    struct tls_hello h;
    char long_label[80], long_name[300];
    memset(long_label, 'a', 64);
    strcpy(long_label + 64, ".example");
    memset(long_name, 0, sizeof(long_name));
    for (int i = 0; i < 254; i++)
        long_name[i] = i % 2 ? '.' : 'a';
    long_name[253] = 'b'; /* 254 characters, labels of one */
    const char *bad[] = {"",       "a..b",         ".a",    "a.",    "a b.example",
                         "a/b",    "\x80.example", "a:443", "[::1]", long_label,
                         long_name};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        build(&w, bad[i], NULL, 16384);
        if (parse(w.b, w.n, &h) != TLS_HELLO_BAD)
            ck_abort_msg("name \"%s\" accepted", bad[i]);
    }
    char label63[80];
    snprintf(label63, sizeof(label63), "%.63s.example", long_label); /* 63 bytes: fine */
    build(&w, label63, NULL, 16384);
    ck_assert_int_eq(parse(w.b, w.n, &h), TLS_HELLO_OK);
    long_name[253] = '\0'; /* 253 characters: fine */
    long_name[252] = 'c';
    build(&w, long_name, NULL, 16384);
    ck_assert_int_eq(parse(w.b, w.n, &h), TLS_HELLO_OK);
    ck_assert_uint_eq(strlen(h.sni), 253);
    build(&w, "under_score-1.Example", NULL, 16384);
    ck_assert_int_eq(parse(w.b, w.n, &h), TLS_HELLO_OK);
    ck_assert_str_eq(h.sni, "under_score-1.example");
    /* Two server_name extensions, or two host_names in one list. */
    struct bytes exts = {.n = 0}, msg = {.n = 0};
    ext_sni(&exts, "a.example");
    ext_sni(&exts, "b.example");
    hello_msg(&msg, &exts);
    w.n = 0;
    records(&w, &msg, 16384);
    ck_assert_int_eq(parse(w.b, w.n, &h), TLS_HELLO_BAD);
    static const uint8_t two[] = {0, 8, 0, 0, 1, 'a', 0, 0, 1, 'b'};
    exts.n = msg.n = 0;
    ext(&exts, 0, two, sizeof(two));
    hello_msg(&msg, &exts);
    w.n = 0;
    records(&w, &msg, 16384);
    ck_assert_int_eq(parse(w.b, w.n, &h), TLS_HELLO_BAD);
    /* An unknown name type is skipped by its length; the host_name counts. */
    static const uint8_t other[] = {0, 8, 7, 0, 1, 'z', 0, 0, 1, 'b'};
    exts.n = msg.n = 0;
    ext(&exts, 0, other, sizeof(other));
    hello_msg(&msg, &exts);
    w.n = 0;
    records(&w, &msg, 16384);
    ck_assert_int_eq(parse(w.b, w.n, &h), TLS_HELLO_OK);
    ck_assert_str_eq(h.sni, "b");
    /* An empty server_name extension (a server's reply form) is malformed. */
    exts.n = msg.n = 0;
    ext(&exts, 0, NULL, 0);
    hello_msg(&msg, &exts);
    w.n = 0;
    records(&w, &msg, 16384);
    ck_assert_int_eq(parse(w.b, w.n, &h), TLS_HELLO_BAD);
}
END_TEST

START_TEST(not_tls_and_bad_records)
{
    struct tls_hello h;
    ck_assert_int_eq(parse((const uint8_t *)"", 0, &h), TLS_HELLO_NEED_MORE);
    ck_assert_int_eq(parse((const uint8_t *)"\x16", 1, &h), TLS_HELLO_NEED_MORE);
    ck_assert_int_eq(parse((const uint8_t *)"\x16\x03", 2, &h), TLS_HELLO_NEED_MORE);
    ck_assert_int_eq(parse((const uint8_t *)"GET / HTTP/1.1\r\n", 16, &h), TLS_HELLO_NOT_TLS);
    ck_assert_int_eq(parse((const uint8_t *)"G", 1, &h), TLS_HELLO_NOT_TLS);
    ck_assert_int_eq(parse((const uint8_t *)"*1\r\n$4\r\nPING\r\n", 14, &h), TLS_HELLO_NOT_TLS);
    ck_assert_int_eq(parse((const uint8_t *)"\x16\x01", 2, &h), TLS_HELLO_NOT_TLS);
    /* SSLv2-compatible hello: no extensions, so no SNI; not routable. */
    static const uint8_t v2[] = {0x80, 0x2e, 0x01, 0x03, 0x01};
    ck_assert_int_eq(parse(v2, sizeof(v2), &h), TLS_HELLO_NOT_TLS);
    /* TLS records, but not a hello: an alert, a zero-length record, a
     * ServerHello, an alert after the first fragment. */
    static const uint8_t alert[] = {21, 3, 3, 0, 2, 2, 40};
    ck_assert_int_eq(parse(alert, sizeof(alert), &h), TLS_HELLO_NOT_TLS);
    static const uint8_t empty[] = {22, 3, 1, 0, 0, 22, 3, 1};
    ck_assert_int_eq(parse(empty, sizeof(empty), &h), TLS_HELLO_BAD);
    static const uint8_t server_hello[] = {22, 3, 3, 0, 4, 2, 0, 0, 70};
    ck_assert_int_eq(parse(server_hello, sizeof(server_hello), &h), TLS_HELLO_BAD);
    static const uint8_t then_alert[] = {22, 3, 1, 0, 4, 1, 0, 0, 70, 21, 3, 3, 0, 2, 2, 40};
    ck_assert_int_eq(parse(then_alert, sizeof(then_alert), &h), TLS_HELLO_BAD);
    static const uint8_t too_long_record[] = {22, 3, 1, 0x40, 0x01, 1, 0, 0, 70};
    ck_assert_int_eq(parse(too_long_record, sizeof(too_long_record), &h), TLS_HELLO_BAD);
    /* The real hello with its version byte or record type changed. */
    static uint8_t m[sizeof(REAL_HELLO)];
    memcpy(m, REAL_HELLO, sizeof(m));
    m[0] = 23;
    ck_assert_int_eq(parse(m, sizeof(m), &h), TLS_HELLO_NOT_TLS);
    memcpy(m, REAL_HELLO, sizeof(m));
    m[9] = 2; /* legacy_version 2.3 */
    ck_assert_int_eq(parse(m, sizeof(m), &h), TLS_HELLO_BAD);
}
END_TEST

static Suite *make_suite(void)
{
    Suite *s = suite_create("tls_hello");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, real_openssl_hello);
    tcase_add_test(tc, real_hello_in_six_records);
    tcase_add_test(tc, one_byte_records);
    tcase_add_test(tc, several_extensions_missing_sni_no_alpn);
    tcase_add_test(tc, alpn_list_keeps_whole_entries);
    tcase_add_test(tc, oversized);
    tcase_add_test(tc, every_length_off_by_one);
    tcase_add_test(tc, bad_names);
    tcase_add_test(tc, not_tls_and_bad_records);
    suite_add_tcase(s, tc);
    return s;
}
