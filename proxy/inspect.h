/* proxy/inspect.h — the inspectors' contract. A listener that must read
 * something from its client before it can dial (a PROXY header; later a TLS
 * ClientHello for SNI) makes each session start in SESSION_INSPECTING: the
 * client's bytes are read into its own linkbuf (side[SIDE_CLIENT].in) under
 * the listener's inspect_timeout_ms, and after each read the listener's
 * inspectors run over them, one after the other in enum listener_inspect's
 * order. The phase itself (reading, the deadline, counting, then the dial)
 * is inspect.c's; an inspector is one function in a file of its own. */
#pragma once

#include <stddef.h>
#include <stdint.h>

#include "session.h"

/* The most bytes an inspector is shown: a PROXY header followed by one whole
 * TLS record (16 KiB and its 5-byte header). An inspector still wanting more
 * once this much is buffered has failed. */
#define INSPECT_MAX_BYTES (16u * 1024 + 1024)

enum inspect_verdict {
    INSPECT_NEED_MORE, /* a valid beginning: run me again after the next read */
    INSPECT_DONE,      /* mine is read: on to the next inspector, or dial */
    INSPECT_FAIL,      /* bad bytes: reset the client, count it on the listener */
};

/* One step of an inspector over buf[0, len): the client's bytes buffered so
 * far, after what earlier inspectors consumed (contiguous, at most
 * INSPECT_MAX_BYTES; len may be 0). Owner thread; it must not read past len
 * nor keep buf. With INSPECT_DONE it may set *consume (0 on entry) to drop a
 * prefix (the PROXY header is not forwarded; a ClientHello is, so SNI
 * consumes nothing), and it may change s->client, s->dst and s->pool: the
 * phase then recomputes s->client_key for source_hash and dials. */
typedef enum inspect_verdict (*inspect_fn)(struct session *s, const uint8_t *buf, size_t len,
                                           size_t *consume);

/* The inspectors, listed in inspect.c's table by enum listener_inspect. */
enum inspect_verdict session_proxy_inspect(struct session *s, const uint8_t *buf, size_t len,
                                           size_t *consume); /* session_proxy.c */
enum inspect_verdict session_sni_inspect(struct session *s, const uint8_t *buf, size_t len,
                                         size_t *consume); /* session_sni.c */
