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

/* Owner thread: closes up to max of the worker's sessions on backend b (a
 * forced close: RST to both sides); returns how many. Drain deadlines and
 * disable-with-close use it, paced by shed_rate_per_s. */
unsigned session_close_on_backend(struct worker *w, const struct backend *b, unsigned max);
/* Owner thread: closes up to max of the worker's sessions (the shutdown
 * grace is over: RST to both sides); returns how many. */
unsigned session_shed(struct worker *w, unsigned max);

/* The worker's timer callback that retries sessions which ran out of buffer
 * memory (buffer_memory_limit); runtime.c arms nothing, session.c does. */
void session_starve_retry(void *loop, struct timer *t, void *data);

/* The worker's timer callback for the connection log's periodic lines
 * (log.flush_interval_ms; data: the worker): a "flush" line for each of its
 * sessions open at least that long. session_log.c. */
void session_log_flush(void *loop, struct timer *t, void *data);

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
/* Arms the session's timer for a relaying session: the idle timeout from
 * last_active_ms, or its max age if that comes first; nothing if neither. */
void session_arm_timer(struct session *s);
/* session_log.c: the session's "close" line, if the connection log is on. */
void session_log_close(struct session *s);
void session_account(struct session *s, int d, size_t n); /* n bytes relayed out of side d */
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

/* inspect.c (proxy/inspect.h): the inspect phase of a listener that reads
 * something before dialing (listener.inspect != 0). session_inspect starts
 * it on an adopted, registered session and dials when every inspector is
 * done; session_inspect_timeout is the session timer's while inspecting. */
void session_inspect(struct session *s);
void session_inspect_timeout(struct session *s);

/* session_proxy.c: a pool with proxy_protocol: writes the PROXY header
 * (v1 or v2, the client's address as the session knows it) on the upstream
 * fd that just connected, before any client byte. 0 or -errno. */
int session_proxy_send(struct session *s);

/* session_dial.c */
void session_dial(struct session *s, struct backend *avoid);
void session_dial_check(struct session *s); /* upstream readiness while connecting */
void session_dial_failed(struct session *s, int err);
