/* proxy/tls_hello.h — reads a TLS ClientHello's server name (SNI) and ALPN
 * protocols from the bytes a client sent so far, without decrypting or
 * consuming anything: a pure function over a buffer, for the SNI inspector.
 * It reassembles the handshake message across TLS records, bounds what it
 * looks at (TLS_HELLO_MAX) and checks every length against its enclosure.
 * It knows no session, socket or config. */
#pragma once

#include <stddef.h>
#include <stdint.h>

/* Bytes of input looked at, record headers included: a ClientHello that is
 * not complete within them is BAD. Real ones are 200 B to 2 KiB (post-quantum
 * key shares included); 16 KiB is one full record. */
#define TLS_HELLO_MAX 16384u
/* A host name: at most 253 characters (DNS), in labels of at most 63. */
#define TLS_SNI_MAX 253u
/* The ALPN protocol list kept (its wire form: length-prefixed names); whole
 * entries only, so a longer list keeps its first protocols. */
#define TLS_ALPN_MAX 256u

enum tls_hello_status {
    TLS_HELLO_NEED_MORE, /* a ClientHello so far: read more */
    TLS_HELLO_OK,        /* complete; *out filled */
    TLS_HELLO_BAD,       /* TLS handshake records, but malformed or oversized */
    TLS_HELLO_NOT_TLS,   /* the first bytes are not a TLS handshake record */
};

struct tls_hello {
    char sni[TLS_SNI_MAX + 1];  /* lowercased host_name, "" when the hello has none */
    uint8_t alpn[TLS_ALPN_MAX]; /* protocol_name_list entries: 1-byte length, name */
    uint16_t alpn_len;          /* bytes in alpn; 0: no ALPN extension */
    uint8_t nalpn;              /* protocols in alpn */
};

/* buf: the client's first len bytes. Reads at most min(len, TLS_HELLO_MAX)
 * bytes; fills *out only on TLS_HELLO_OK. Owner thread's stack: uses up to
 * TLS_HELLO_MAX bytes of it to join a hello split across records. */
enum tls_hello_status tls_hello_parse(const uint8_t *buf, size_t len, struct tls_hello *out);

/* Whether the hello's ALPN list holds the protocol name (exact bytes). */
int tls_hello_has_alpn(const struct tls_hello *h, const char *proto);

const char *tls_hello_status_name(enum tls_hello_status st);
