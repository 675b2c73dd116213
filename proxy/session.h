/* proxy/session.h — a proxied connection: a client fd, an upstream fd and a
 * linkbuf per direction, living on one sub-reactor for its whole life. The
 * session's verbs: first those the composition root calls, then those its own
 * files share (session.c, session_dial.c and the pump). Its types are in
 * proxy/session-t.h. */
#pragma once

#include <stddef.h>
#include <stdint.h>

#include "session-t.h"

struct sockaddr;

struct timer;

struct backend;
struct listener;
struct poller;
struct worker;

/* Every listener's listener_conn_cb: takes ownership of an accepted client fd
 * and of its place in the listener's source table (on failure, -errno, the fd
 * is already closed and the place is still the caller's). Accepted on the main
 * reactor, the session is posted to the sub-reactor that pollmgr_pick(pollers)
 * gives; accepted by a sub-reactor itself (accept "reuseport"), it starts on
 * p at once. pollers: the struct pollmgr of the running proxy. */
int session_accept(struct listener *l, struct poller *p, int fd, const struct sockaddr *peer,
                   uint32_t source, void *pollers);

/* Owner thread, or any thread once the worker's poller has stopped: closes
 * every session of the worker (a forced close: RST to both sides). Frees run
 * as deferred tasks. */
void session_close_all(struct worker *w);

/* Owner thread: closes the worker's sessions on backend b (a forced close:
 * RST to both sides); returns how many. Drain deadlines and disable-with-close
 * use it. */
unsigned session_close_on_backend(struct worker *w, const struct backend *b);

/* The worker's timer callback that retries sessions which ran out of buffer
 * memory (buffer_memory_limit); runtime.c arms nothing, session.c does. */
void session_starve_retry(void *loop, struct timer *t, void *data);

/* Between the session's own files (session.c, session_dial.c, the pump and
 * its transports); owner thread only. */

/* A read may bring bytes: readable as far as we know, and no EOF seen yet. */
static inline int side_may_read(const struct side *sd)
{
    return (sd->flags & (SIDE_RD_READY | SIDE_EOF)) == SIDE_RD_READY;
}

extern const struct fdop_ops session_io_ops;

/* session.c */
/* The close cause's name in the connection log and the stats ("client_eof", ...). */
const char *session_cause_name(enum session_cause c);
/* Records why s is about to close; the first cause set wins. Call it before
 * session_close() wherever the reason is known there and only there. */
static inline void session_set_cause(struct session *s, enum session_cause c)
{
    if (!s->cause)
        s->cause = (uint8_t)c;
}
void session_close(struct session *s, unsigned reset_sides); /* SESSION_RESET_BOTH, ... */
void session_account(struct session *s, int d, size_t n);    /* n bytes relayed out of side d */
/* Out of buffer memory on this poller: stop reading (the readiness stays
 * cached) and try again shortly, when writes may have freed blocks. */
void session_starve(struct session *s);

/* pump.c (proxy/pump.h): relays both directions as far as the sockets
 * allow, then forwards a half-close or closes the session when both are
 * done; a read or write error on one side resets the other. Declared here so
 * that no session file includes proxy/pump.h: the pump sits above the
 * session (pump.h includes this header), and the include graph stays a tree. */
void pump_session(struct session *s);
/* The session closes: its transport lets go of s->xprt_ctx. */
void pump_release(struct session *s);

/* session_dial.c */
void session_dial(struct session *s, struct backend *avoid);
void session_dial_check(struct session *s); /* upstream readiness while connecting */
void session_dial_failed(struct session *s, int err);
