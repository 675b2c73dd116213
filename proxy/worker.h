/* proxy/worker.h — the proxy's per-poller context: the sessions living on one
 * poller, its starved list, its splice pipe cache and its counters. The data
 * path (listener, session, health) reaches its worker through
 * poller_user(); nothing here knows the runtime that built it. */
#pragma once

#include <stdatomic.h>
#include <stdint.h>

#include "pipe_cache.h"
#include "reactor/counter.h"
#include "reactor/poller.h"

struct logring;
struct session;

/* Per-poller proxy counters: written by the owning poller thread only
 * (reactor/counter.h), summed by readers. Names are the ones the stats API uses. */
struct worker_counters {
    atomic_uint_fast64_t active_connections; /* sessions open on this poller */
    atomic_uint_fast64_t total_connections;  /* sessions ever adopted */
    atomic_uint_fast64_t accepted;           /* main: accept4() successes */
    atomic_uint_fast64_t refused;            /* main: closed at once for a limit */
    atomic_uint_fast64_t dialed;             /* upstream connects started */
    atomic_uint_fast64_t connect_failures;   /* connects that failed or timed out */
    atomic_uint_fast64_t retries;            /* connects retried on another backend */
    atomic_uint_fast64_t connect_exhausted;  /* sessions closed after the retry budget */
    atomic_uint_fast64_t idle_timeouts;      /* sessions closed for idleness */
    atomic_uint_fast64_t max_age_closes;     /* sessions closed at max_session_age_ms */
    atomic_uint_fast64_t shutdown_forced;    /* sessions closed when the shutdown grace ended */
    atomic_uint_fast64_t resets;             /* sessions ended by a reset (either side) */
    atomic_uint_fast64_t bytes_in;           /* client → backend */
    atomic_uint_fast64_t bytes_out;          /* backend → client */
    atomic_uint_fast64_t memory_starved;     /* reads put off: buffer_memory_limit reached */
    atomic_uint_fast64_t local_errors;       /* dials, checks that failed here (EMFILE...) */
    atomic_uint_fast64_t pipes_in_use;       /* splice: pipes holding a direction's bytes */
    atomic_uint_fast64_t pipes_cached;       /* splice: empty pipes kept for reuse */
    atomic_uint_fast64_t log_lines;          /* connection log lines handed to the logger */
    atomic_uint_fast64_t log_dropped;        /* ... dropped: this poller's ring was full */
};

struct worker {
    struct poller *poller;     /* not owned */
    struct session *sessions;  /* owned: intrusive list of live sessions */
    struct session *starved;   /* not owned: sessions waiting for buffer memory */
    struct session *retrying;  /* not owned: the starved batch being retried now */
    struct timer starve_retry; /* retries the starved list (the session layer's callback) */
    struct pipe_cache pipes;
    /* The connection log (proxy/connlog.h): this poller's ring, which it
     * alone fills; NULL when log.connections is off. Not owned (the runtime's). */
    struct logring *log;
    struct timer log_flush; /* periodic lines (session_log.c's callback); armed by runtime */
    unsigned log_flush_ms;  /* log.flush_interval_ms; 0: no periodic lines */
    struct worker_counters c;
    unsigned id;                 /* poller_id(poller): its slot in per-poller tables */
    struct histogram adopt_wait; /* accept -> adoption on this poller (owner-only) */
};

/* Binds a zeroed w to p: poller_user(p) is w from now on. starve_retry is
 * the session layer's timer callback for the starved list (data: w); the
 * worker only owns the timer. Before p runs. */
void worker_init(struct worker *w, struct poller *p, timer_cb starve_retry);
