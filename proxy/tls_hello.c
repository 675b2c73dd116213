/* proxy/tls_hello.c — the ClientHello reader behind proxy/tls_hello.h. Two
 * steps: join the handshake message from the TLS records that carry it (RFC
 * 8446 5.1: a handshake message may be split over several records), then walk
 * the ClientHello (4.1.2) with a bounded reader whose every read checks what
 * is left, down to the server_name (RFC 6066 3) and ALPN (RFC 7301 3.1)
 * extensions. Everything else is skipped by its length. */
#include "tls_hello.h"

#include <string.h>

#define REC_HDR         5     /* content type, version (2), length (2) */
#define REC_MAX         16384 /* TLSPlaintext.length: at most 2^14 */
#define HS_HDR          4     /* msg_type, length (3) */
#define CT_HANDSHAKE    22
#define HS_CLIENT_HELLO 1
#define TLS_MAJOR       3 /* SSL 3.0 to TLS 1.3 are 3.x on the wire */
#define RANDOM_LEN      32
#define SESSION_ID_MAX  32
#define EXT_SERVER_NAME 0
#define EXT_ALPN        16
#define NAME_TYPE_HOST  0
#define HOST_LABEL_MAX  63

/* A bounded reader: p..p+n is what is left of its enclosure. */
struct rd {
    const uint8_t *p;
    size_t n;
};

static int rd_u8(struct rd *r, unsigned *v)
{
    if (r->n < 1)
        return 0;
    *v = r->p[0];
    r->p++;
    r->n--;
    return 1;
}

static int rd_u16(struct rd *r, unsigned *v)
{
    if (r->n < 2)
        return 0;
    *v = (unsigned)r->p[0] << 8 | r->p[1];
    r->p += 2;
    r->n -= 2;
    return 1;
}

/* The next len bytes as a reader of their own (an extension, a list). */
static int rd_sub(struct rd *r, size_t len, struct rd *sub)
{
    if (r->n < len)
        return 0;
    sub->p = r->p;
    sub->n = len;
    r->p += len;
    r->n -= len;
    return 1;
}

static int rd_skip(struct rd *r, size_t len)
{
    struct rd unused;
    return rd_sub(r, len, &unused);
}

/* A DNS host name as RFC 6066 wants it (no trailing dot, no IP brackets):
 * labels of letters, digits, '-' and '_' (seen in internal names), 1 to 63
 * bytes each, 253 at most. Written lowercased to out (TLS_SNI_MAX + 1). */
static int host_name_take(const uint8_t *s, size_t n, char *out)
{
    size_t label = 0;
    if (n == 0 || n > TLS_SNI_MAX)
        return 0;
    for (size_t i = 0; i < n; i++) {
        uint8_t ch = s[i];
        if (ch == '.') {
            if (label == 0)
                return 0;
            label = 0;
        } else if ((ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') || ch == '-' || ch == '_') {
            label++;
        } else if (ch >= 'A' && ch <= 'Z') {
            ch = (uint8_t)(ch - 'A' + 'a');
            label++;
        } else {
            return 0;
        }
        if (label > HOST_LABEL_MAX)
            return 0;
        out[i] = (char)ch;
    }
    if (label == 0) /* a trailing dot */
        return 0;
    out[n] = '\0';
    return 1;
}

/* server_name: a non-empty ServerNameList holding at most one host_name. */
static int take_sni(struct rd *e, struct tls_hello *out)
{
    unsigned len, type, nlen;
    struct rd name;
    int hosts = 0;
    if (!rd_u16(e, &len) || len != e->n || len == 0)
        return 0;
    while (e->n) {
        if (!rd_u8(e, &type) || !rd_u16(e, &nlen) || !rd_sub(e, nlen, &name))
            return 0;
        if (type != NAME_TYPE_HOST)
            continue; /* no other type is defined; its length still bounds it */
        if (hosts++ || !host_name_take(name.p, name.n, out->sni))
            return 0;
    }
    return 1;
}

/* application_layer_protocol_negotiation: a non-empty list of non-empty
 * names; the first ones that fit in TLS_ALPN_MAX are kept whole. */
static int take_alpn(struct rd *e, struct tls_hello *out)
{
    unsigned len, plen;
    struct rd name;
    if (!rd_u16(e, &len) || len != e->n || len < 2)
        return 0;
    while (e->n) {
        if (!rd_u8(e, &plen) || plen == 0 || !rd_sub(e, plen, &name))
            return 0;
        if (out->alpn_len + 1 + plen > TLS_ALPN_MAX || out->nalpn == UINT8_MAX)
            continue;
        out->alpn[out->alpn_len] = (uint8_t)plen;
        memcpy(out->alpn + out->alpn_len + 1, name.p, plen);
        out->alpn_len = (uint16_t)(out->alpn_len + 1 + plen);
        out->nalpn++;
    }
    return 1;
}

/* The ClientHello's body (after its 4-byte handshake header). */
static enum tls_hello_status parse_body(const uint8_t *p, size_t n, struct tls_hello *out)
{
    struct rd r = {p, n}, e;
    unsigned v, type, elen;
    int sni = 0, alpn = 0;
    memset(out, 0, sizeof(*out));
    if (!rd_u16(&r, &v) || v >> 8 != TLS_MAJOR || !rd_skip(&r, RANDOM_LEN)) /* version, random */
        return TLS_HELLO_BAD;
    if (!rd_u8(&r, &v) || v > SESSION_ID_MAX || !rd_skip(&r, v)) /* legacy_session_id */
        return TLS_HELLO_BAD;
    if (!rd_u16(&r, &v) || v < 2 || v % 2 || !rd_skip(&r, v)) /* cipher_suites */
        return TLS_HELLO_BAD;
    if (!rd_u8(&r, &v) || v < 1 || !rd_skip(&r, v)) /* legacy_compression_methods */
        return TLS_HELLO_BAD;
    if (r.n == 0) /* no extensions at all (before TLS 1.2 they were optional) */
        return TLS_HELLO_OK;
    if (!rd_u16(&r, &v) || v != r.n) /* the extensions fill the rest exactly */
        return TLS_HELLO_BAD;
    while (r.n) {
        if (!rd_u16(&r, &type) || !rd_u16(&r, &elen) || !rd_sub(&r, elen, &e))
            return TLS_HELLO_BAD;
        /* Each extension at most once (RFC 8446 4.2); checked for ours. */
        if (type == EXT_SERVER_NAME && (sni++ || !take_sni(&e, out)))
            return TLS_HELLO_BAD;
        if (type == EXT_ALPN && (alpn++ || !take_alpn(&e, out)))
            return TLS_HELLO_BAD;
    }
    return TLS_HELLO_OK;
}

enum tls_hello_status tls_hello_parse(const uint8_t *buf, size_t len, struct tls_hello *out)
{
    /* Past TLS_HELLO_MAX nothing is looked at: a hello not complete by then
     * is too big, however its records are cut. */
    int full = len >= TLS_HELLO_MAX;
    if (full)
        len = TLS_HELLO_MAX;
    if ((len >= 1 && buf[0] != CT_HANDSHAKE) || (len >= 2 && buf[1] != TLS_MAJOR))
        return TLS_HELLO_NOT_TLS;
    /* The usual case: the first record holds the whole hello. It is read in
     * place, and a client that sends it a byte at a time costs no copies. */
    if (len >= REC_HDR + HS_HDR && buf[REC_HDR] == HS_CLIENT_HELLO) {
        size_t rlen = (size_t)buf[3] << 8 | buf[4];
        size_t want = HS_HDR + ((size_t)buf[6] << 16 | (size_t)buf[7] << 8 | buf[8]);
        if (rlen <= REC_MAX && want <= rlen) {
            if (want > TLS_HELLO_MAX - REC_HDR)
                return TLS_HELLO_BAD;
            if (len < REC_HDR + want)
                return full ? TLS_HELLO_BAD : TLS_HELLO_NEED_MORE;
            return parse_body(buf + REC_HDR + HS_HDR, want - HS_HDR, out);
        }
    }
    /* The handshake message, joined from its records' fragments. */
    uint8_t msg[TLS_HELLO_MAX];
    size_t have = 0, want = 0, pos = 0;
    for (;;) {
        if (len - pos < REC_HDR)
            return full ? TLS_HELLO_BAD : TLS_HELLO_NEED_MORE;
        const uint8_t *h = buf + pos;
        size_t rlen = (size_t)h[3] << 8 | h[4];
        /* Only handshake records until the hello is whole; a zero-length
         * handshake fragment is forbidden (RFC 8446 5.1). */
        if (h[0] != CT_HANDSHAKE || h[1] != TLS_MAJOR || rlen == 0 || rlen > REC_MAX)
            return TLS_HELLO_BAD;
        pos += REC_HDR;
        size_t got = len - pos < rlen ? len - pos : rlen;
        /* have <= pos - REC_HDR and pos + got <= len <= sizeof(msg). */
        memcpy(msg + have, buf + pos, got);
        have += got;
        pos += got;
        if (!want && have >= HS_HDR) {
            if (msg[0] != HS_CLIENT_HELLO)
                return TLS_HELLO_BAD;
            want = HS_HDR + ((size_t)msg[1] << 16 | (size_t)msg[2] << 8 | msg[3]);
            if (want > TLS_HELLO_MAX - REC_HDR)
                return TLS_HELLO_BAD;
        }
        if (want && have >= want) /* bytes after the hello are not ours to read */
            return parse_body(msg + HS_HDR, want - HS_HDR, out);
        if (got < rlen)
            return full ? TLS_HELLO_BAD : TLS_HELLO_NEED_MORE;
    }
}

int tls_hello_has_alpn(const struct tls_hello *h, const char *proto)
{
    size_t n = strlen(proto);
    for (size_t i = 0; i < h->alpn_len; i += 1u + h->alpn[i])
        if (h->alpn[i] == n && memcmp(h->alpn + i + 1, proto, n) == 0)
            return 1;
    return 0;
}

const char *tls_hello_status_name(enum tls_hello_status st)
{
    switch (st) {
    case TLS_HELLO_NEED_MORE:
        return "need_more";
    case TLS_HELLO_OK:
        return "ok";
    case TLS_HELLO_BAD:
        return "bad";
    case TLS_HELLO_NOT_TLS:
        return "not_tls";
    }
    return "?";
}
