/* proxy/session_proxy.c — the session's PROXY protocol: the inspector of a
 * listener with accept_proxy_protocol (the header's addresses become the
 * session's client and destination; the header is not forwarded). The
 * header's bytes are proxy_proto.c's. */
#define _GNU_SOURCE
#include "inspect.h"
#include "proxy_proto.h"

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
