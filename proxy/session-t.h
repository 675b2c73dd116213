/* proxy/session-t.h — the session's types only (HAProxy's -t.h rule): the
 * struct, its states and a side's flags, for the files that read a session's
 * fields: session.c, session_dial.c and the pump. The verbs are in
 * proxy/session.h. */
#pragma once

#include <stdint.h>

#include "reactor/poller.h"
#include "sock-t.h"

struct backend;
struct listener;
struct pool;
struct worker;

enum session_state {
    SESSION_NEW,        /* posted to a sub-reactor, not adopted yet */
    SESSION_INSPECTING, /* reading what the listener needs before dialing (inspect.c) */
    SESSION_CONNECTING, /* upstream connect in progress */
    SESSION_RELAYING,
    SESSION_CLOSED, /* fds closed, freed at the end of the loop iteration */
};

enum { SIDE_CLIENT = 0, SIDE_UPSTREAM = 1 };

/* Why a session ended: the connection log's close cause, a fixed list
 * (README "Connection log"). The first cause set wins (session_set_cause);
 * a close that names none is judged by session_close from the sides' flags. */
enum session_cause {
    SESSION_CAUSE_NONE = 0,
    SESSION_CAUSE_CLIENT_EOF,     /* the client ended first, and the session ran out */
    SESSION_CAUSE_BACKEND_EOF,    /* the backend ended first */
    SESSION_CAUSE_CLIENT_RESET,   /* a read or write error on the client's side */
    SESSION_CAUSE_BACKEND_RESET,  /* ... on the backend's side */
    SESSION_CAUSE_IDLE_TIMEOUT,   /* pools[].idle_timeout_ms */
    SESSION_CAUSE_CONNECT_FAILED, /* every dial failed (retries spent) */
    SESSION_CAUSE_NO_BACKEND,     /* no backend was up to dial */
    SESSION_CAUSE_DRAIN_DEADLINE, /* the backend's drain deadline passed */
    SESSION_CAUSE_DISABLED,       /* the backend was disabled with close */
    SESSION_CAUSE_SHUTDOWN,       /* the shutdown grace ended, or a second signal */
    SESSION_CAUSE_MAX_AGE,        /* pools[].max_session_age_ms */
    SESSION_CAUSE_LIMIT,          /* a limit refused it (buffer memory, per-source, ...) */
    SESSION_CAUSE_INSPECT_FAILED, /* the inspect phase: bad or missing PROXY header, or late */
    SESSION_CAUSE_COUNT
};

/* One side's flags. Readiness is cached because fds are edge-triggered. */
enum {
    SIDE_RD_READY = 1u << 0, /* read until EAGAIN has not happened yet */
    SIDE_WR_READY = 1u << 1,
    SIDE_EOF = 1u << 2,    /* read returned 0: the peer shut its write side */
    SIDE_SHUT = 1u << 3,   /* we sent shutdown(SHUT_WR) on this fd */
    SIDE_PAUSED = 1u << 4, /* its buffer (linkbuf, or a pipe) passed the high watermark */
    SIDE_HUP = 1u << 5,    /* epoll said the peer shut or reset: read on to the end */
    SIDE_EOF_FIRST =
        1u << 6, /* its EOF came before the other side's: who ended (the log's cause) */
};

struct side {
    struct fdop op;
    struct linkbuf in; /* bytes read from this side, waiting for the other */
    uint8_t flags;
    uint8_t span;  /* copy: blocks booked per read; grows on full reads, shrinks on short */
    uint32_t held; /* bytes the transport holds outside the linkbuf (splice: the pipe's fill) */
};

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
    uint64_t close_by_ms;     /* max_session_age_ms (jittered) ends it then; 0: never */
    uint64_t accepted_ns;     /* clock_mono_ns() when accepted */
    uint64_t dial_started_ns; /* ... when the last dial (backend, address) began */
    uint64_t connected_ns;    /* ... when the upstream connect completed; 0 before */
    uint64_t first_byte_ns;   /* ... when the backend's first byte was relayed; 0 before */
    uint64_t bytes_in;        /* relayed client → backend (the connection log's) */
    uint64_t bytes_out;       /* relayed backend → client */
    uint64_t client_key;      /* hashed client address, for source_hash */
    struct sock_addr client;  /* the client's address and port: accepted, or its PROXY header's */
    /* The address the client connected to, per its PROXY header; family 0
     * without one (the client fd's own then: getsockname when needed). */
    struct sock_addr dst;
    uint32_t source; /* its place in listener->sources (SOURCE_NONE: none) */
    uint8_t state;
    uint8_t attempts;   /* backends tried */
    uint8_t addr_index; /* which of the backend's addresses is being dialed */
    uint8_t starved;    /* waiting for buffer memory (buffer_memory_limit) */
    uint8_t cause;      /* enum session_cause: why it ended; NONE while it runs */
    uint8_t inspect;    /* SESSION_INSPECTING: the listener's inspector running now */
    void *xprt_ctx;     /* owned by the pool's transport (proxy/pump.h): splice's pipes, or NULL */
};

/* session_close()'s reset_sides: bit i resets side i. A close that throws
 * bytes away or cuts a stream sluice was asked to end (drain deadline,
 * disable with close, shutdown grace, connect exhausted) resets both sides: a
 * FIN would let a peer that reads to EOF take a cut stream for a complete one
 * (README "Close semantics"). */
#define SESSION_RESET_BOTH ((1u << SIDE_CLIENT) | (1u << SIDE_UPSTREAM))
