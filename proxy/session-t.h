/* proxy/session-t.h — the session struct and the verbs shared by session.c
 * (life, close), session_dial.c (upstream connect, retry) and the pump
 * (pump.c and its transports). Not for other files: they use proxy/session.h. */
#pragma once

#include <stdint.h>

#include "reactor/poller.h"

struct backend;
struct listener;
struct pool;
struct worker;

enum session_state {
    SESSION_NEW,        /* posted to a sub-reactor, not adopted yet */
    SESSION_CONNECTING, /* upstream connect in progress */
    SESSION_RELAYING,
    SESSION_CLOSED, /* fds closed, freed at the end of the loop iteration */
};

enum { SIDE_CLIENT = 0, SIDE_UPSTREAM = 1 };

/* One side's flags. Readiness is cached because fds are edge-triggered. */
enum {
    SIDE_RD_READY = 1u << 0, /* read until EAGAIN has not happened yet */
    SIDE_WR_READY = 1u << 1,
    SIDE_EOF = 1u << 2,    /* read returned 0: the peer shut its write side */
    SIDE_SHUT = 1u << 3,   /* we sent shutdown(SHUT_WR) on this fd */
    SIDE_PAUSED = 1u << 4, /* its buffer (linkbuf, or a pipe) passed the high watermark */
    SIDE_HUP = 1u << 5,    /* epoll said the peer shut or reset: read on to the end */
};

struct side {
    struct fdop op;
    struct linkbuf in; /* bytes read from this side, waiting for the other */
    uint8_t flags;
    uint8_t span;  /* copy: blocks booked per read; grows on full reads, shrinks on short */
    uint32_t held; /* bytes the transport holds outside the linkbuf (splice: the pipe's fill) */
};

/* A read may bring bytes: readable as far as we know, and no EOF seen yet. */
static inline int side_may_read(const struct side *sd)
{
    return (sd->flags & (SIDE_RD_READY | SIDE_EOF)) == SIDE_RD_READY;
}

struct session {
    struct poller_task task;      /* the hand-off, later the deferred free */
    struct worker *w;             /* not owned; NULL until adopted */
    struct listener *listener;    /* not owned */
    struct pool *pool;            /* not owned */
    struct backend *backend;      /* not owned; holds an active_connections slot when set */
    struct session *prev, *next;  /* worker's list */
    struct session *starved_next; /* worker's starved list, while `starved` */
    struct side side[2];
    struct timer timer; /* connect timeout, then idle timeout */
    uint64_t last_active_ms;
    uint64_t client_key; /* hashed client address, for source_hash */
    uint8_t state;
    uint8_t attempts;   /* backends tried */
    uint8_t addr_index; /* which of the backend's addresses is being dialed */
    uint8_t starved;    /* waiting for buffer memory (buffer_memory_limit) */
    void *xprt_ctx;     /* owned by the pool's transport (proxy/pump.h): splice's pipes, or NULL */
};

extern const struct fdop_ops session_io_ops;

/* session.c */
void session_close(struct session *s, unsigned reset_sides); /* bit i: RST side i */
/* A close that throws bytes away or cuts a stream sluice was asked to end
 * (drain deadline, disable with close, shutdown grace, connect exhausted)
 * resets both sides: a FIN would let a peer that reads to EOF take a cut
 * stream for a complete one (README "Close semantics"). */
#define SESSION_RESET_BOTH ((1u << SIDE_CLIENT) | (1u << SIDE_UPSTREAM))
void session_account(struct session *s, int d, size_t n); /* n bytes relayed out of side d */
/* Out of buffer memory on this poller: stop reading (the readiness stays
 * cached) and try again shortly, when writes may have freed blocks. */
void session_starve(struct session *s);

/* pump.c (proxy/pump.h): relays both directions as far as the sockets
 * allow, then forwards a half-close or closes the session when both are
 * done; a read or write error on one side resets the other. */
void pump_session(struct session *s);
/* The session closes: its transport lets go of s->xprt_ctx. */
void pump_release(struct session *s);

/* session_dial.c */
void session_dial(struct session *s, struct backend *avoid);
void session_dial_check(struct session *s); /* upstream readiness while connecting */
void session_dial_failed(struct session *s, int err);
