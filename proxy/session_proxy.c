/* proxy/session_proxy.c — the session's PROXY protocol: the inspector of a
 * listener with accept_proxy_protocol (the header's addresses become the
 * session's client and destination; the header is not forwarded), and the
 * header a pool with proxy_protocol sends first on each upstream connection.
 * The header's bytes are proxy_proto.c's. */
#define _GNU_SOURCE
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <sys/socket.h>

#include "inspect.h"
#include "pool.h"
#include "proxy_proto.h"
#include "reactor/random.h"
#include "sock.h"

#define UNIQUE_ID_LEN 32 /* hex: accepted_ns, then 64 random bits */

enum inspect_verdict session_proxy_inspect(struct session *s, const uint8_t *buf, size_t len,
                                           size_t *consume)
{
    struct proxy_hdr h;
    enum proxy_parse r = proxy_proto_parse(buf, len, &h);
    if (r == PROXY_PARSE_NEED_MORE)
        return INSPECT_NEED_MORE;
    if (r == PROXY_PARSE_BAD)
        return INSPECT_FAIL;
    /* LOCAL, UNKNOWN, AF_UNIX: the connection's own addresses stand. */
    if (h.has_addrs) {
        s->client = h.src;
        s->dst = h.dst;
    }
    *consume = h.len;
    return INSPECT_DONE;
}

/* Where the client connected to: its PROXY header's destination, else the
 * client socket's own address. */
static void session_dst(const struct session *s, struct sock_addr *out)
{
    if (s->dst.family) {
        *out = s->dst;
        return;
    }
    struct sockaddr_storage ss;
    socklen_t len = sizeof(ss);
    if (getsockname(s->side[SIDE_CLIENT].op.fd, (struct sockaddr *)&ss, &len) == 0)
        sock_addr_from(out, (const struct sockaddr *)&ss);
    else
        out->family = 0; /* the header then says UNKNOWN */
}

int session_proxy_send(struct session *s)
{
    uint8_t hdr[PROXY_BUILD_MAX];
    char id[UNIQUE_ID_LEN + 1];
    struct sock_addr dst;
    int version = s->pool->proxy_protocol == CFG_PROXY_PROTOCOL_V1 ? 1 : 2;
    session_dst(s, &dst);
    /* v2 carries a unique id: the accept time and a random draw, 32 hex digits. */
    size_t id_len = 0;
    if (version == 2)
        id_len = (size_t)snprintf(id, sizeof(id), "%016" PRIx64 "%016" PRIx64, s->accepted_ns,
                                  random_next());
    int n = proxy_proto_build(hdr, sizeof(hdr), version, &s->client, &dst, id, id_len);
    if (n < 0)
        return n;
    /* Bytes already buffered from the client go out right after: let them
     * share the header's segment. */
    int flags = MSG_NOSIGNAL | (linkbuf_len(&s->side[SIDE_CLIENT].in) ? MSG_MORE : 0);
    ssize_t w = send(s->side[SIDE_UPSTREAM].op.fd, hdr, (size_t)n, flags);
    if (w < 0)
        return -errno;
    /* A just-connected socket's send buffer (tcp_wmem's minimum is 4 KiB)
     * takes a header of at most PROXY_BUILD_MAX bytes whole. */
    return w == n ? 0 : -EIO;
}
