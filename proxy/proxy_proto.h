/* proxy/proxy_proto.h — HAProxy's PROXY protocol, versions 1 (text) and 2
 * (binary), as pure functions over a byte buffer: a parser that never reads
 * past the bytes it is given and says whether it needs more, and a builder.
 * No socket, no session: the session's use of them is in session_proxy.c. */
#pragma once

#include <stddef.h>
#include <stdint.h>

#include "sock-t.h"

#define PROXY_V1_MAX        107 /* the longest v1 line, "PROXY TCP6 ... \r\n" included */
#define PROXY_V2_HDR        16  /* v2's fixed part: signature, version/command, family, length */
#define PROXY_V2_SIG_LEN    12
#define PROXY_UNIQUE_ID_MAX 128 /* PP2_TYPE_UNIQUE_ID: at most 128 bytes (the spec) */
/* The longest header proxy_proto_build writes: v2 with IPv6 addresses and a
 * unique id TLV (v1 is shorter). */
#define PROXY_BUILD_MAX (PROXY_V2_HDR + 36 + 3 + PROXY_UNIQUE_ID_MAX)

enum proxy_parse {
    PROXY_PARSE_BAD = -1,      /* not a PROXY header, or a malformed one */
    PROXY_PARSE_NEED_MORE = 0, /* a valid beginning: read more */
    PROXY_PARSE_OK = 1,        /* a whole header: see struct proxy_hdr */
};

struct proxy_hdr {
    uint32_t len;    /* the header's bytes, to drop before the payload */
    uint8_t version; /* 1 or 2 */
    /* The addresses are the client's and the one it connected to: 1 for v1
     * TCP4/TCP6 and v2 PROXY over AF_INET/AF_INET6 (stream). 0 for v1
     * UNKNOWN, v2 LOCAL (a health check of the sender itself), and v2
     * AF_UNSPEC/AF_UNIX or datagram: the connection's own addresses stand. */
    uint8_t has_addrs;
    struct sock_addr src, dst; /* when has_addrs */
};

/* Parses the header at the start of buf[0, len). PROXY_PARSE_OK fills *out;
 * PROXY_PARSE_NEED_MORE when buf is a valid beginning of a header (len 0
 * included); PROXY_PARSE_BAD otherwise, as soon as the bytes prove it (a
 * wrong signature, a v1 line with no CRLF within PROXY_V1_MAX bytes, bad
 * fields, a v2 version or command that is not 2 / LOCAL|PROXY, addresses
 * longer than the header, a TLV running past it). Reads only buf[0, len). */
enum proxy_parse proxy_proto_parse(const uint8_t *buf, size_t len, struct proxy_hdr *out);

/* Writes a version (1 or 2) header into out (cap bytes) saying that src
 * connected to dst; returns its length, or -EINVAL (a version other than 1
 * or 2, or a unique id longer than PROXY_UNIQUE_ID_MAX) or -ENOSPC. With
 * either address unknown (family 0) it writes v1 "PROXY UNKNOWN" or a v2
 * PROXY with AF_UNSPEC: the receiver keeps the connection's addresses. An
 * IPv4 address beside an IPv6 one is written IPv4-mapped. v2 adds
 * PP2_TYPE_UNIQUE_ID when id_len > 0 (v1 has no room for it). */
int proxy_proto_build(uint8_t *out, size_t cap, int version, const struct sock_addr *src,
                      const struct sock_addr *dst, const void *unique_id, size_t id_len);
