/* proxy/connlog.h — the connection log (README "Connection log"): one JSON
 * line per finished session, and periodic lines for long ones. Each
 * sub-reactor hands raw records to the logger through its own bounded SPSC
 * ring (proxy/logring.h); one logger thread drains every ring, formats the
 * lines and writes them to a file or stdout, and reopens the file when asked
 * (SIGUSR1, logrotate). A poller never waits for it: a full ring drops the
 * line, and the session layer counts it (session_log.c). Knows no session:
 * the session fills a struct connlog_rec itself. */
#pragma once

#include <stddef.h>
#include <stdint.h>

#include "config/config.h"
#include "logring.h"
#include "sock-t.h"

#define CONNLOG_NAME_MAX 64 /* CFG_NAME_MAX: names are copied into the record */

enum connlog_event {
    CONNLOG_CLOSE, /* "event":"close": the session ended */
    CONNLOG_FLUSH, /* "event":"flush": still open, the line every flush_interval_ms */
};

/* One ring slot: raw fields, formatted on the logger thread (the poller
 * copies ~300 bytes and formats nothing). Names are copied, not pointed at:
 * a line may wait in the ring after its backend is deleted (or, with a
 * reload, its listener or pool retired). The cause's name is static. */
struct connlog_rec {
    uint64_t at_ns;           /* clock_mono_ns() when the line was taken */
    uint64_t accepted_ns;     /* the session's timestamps (0: never) */
    uint64_t dial_started_ns; /* the last dial's start */
    uint64_t connected_ns;
    uint64_t first_byte_ns;
    uint64_t bytes_in;             /* client → backend so far */
    uint64_t bytes_out;            /* backend → client so far */
    const char *cause;             /* not owned (static); NULL for a flush line */
    struct sock_addr client;       /* family 0: unknown */
    struct sock_addr backend_addr; /* the address dialed; family 0: no backend */
    uint8_t event;                 /* enum connlog_event */
    uint8_t retries;
    char listener[CONNLOG_NAME_MAX + 1]; /* "": none */
    char pool[CONNLOG_NAME_MAX + 1];
    char backend[CONNLOG_NAME_MAX + 1];
};

struct connlog;

/* Opens the log (cfg->path, appending, or stdout when NULL) and one ring of
 * cfg->ring_size slots per producer. 0, or -errno after logging what failed
 * (the path named). Before privileges are dropped. */
int connlog_create(const struct cfg_log *cfg, size_t nrings, struct connlog **out);
/* Ring i, for its producer: one poller (or, once the pollers are joined,
 * the thread that closes their sessions). */
struct logring *connlog_ring(struct connlog *l, size_t i);
/* Starts the logger thread ("sluice-log"). */
int connlog_start(struct connlog *l);
/* Any thread (the signal loop): the logger reopens the file at its next
 * turn, so a renamed file stops growing and a new one at the path gets the
 * lines. Nothing for stdout. */
void connlog_reopen(struct connlog *l);
/* Writes what the rings still hold, stops and joins the logger, closes the
 * file, frees. NULL is fine. After every producer has stopped. */
void connlog_destroy(struct connlog *l);

/* The logger's formatting, exposed for tests: one line (with its '\n') for
 * rec into buf; mono_to_real_ns turns a monotonic time into wall-clock ns.
 * Returns the length, or 0 when len is too short. */
size_t connlog_format(const struct connlog_rec *rec, int64_t mono_to_real_ns, char *buf,
                      size_t len);
