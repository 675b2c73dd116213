/* proxy/health.h — backend health: active checks (a TCP connect, optionally a
 * payload sent and a reply prefix expected) run from a sub-reactor, never a
 * thread per check, and the return of passive-down backends. `fall`
 * consecutive failures take an up backend down, `rise` consecutive successes
 * bring a down one back; operator states (draining, disabled) are never
 * overridden (backend_go_down/up). Sessions' connect results are counted
 * behind the peer API (pool_done, proxy/pool.h): toward `fall` with active
 * checks, and without them `max_fails` within `fail_window_ms` take a backend
 * down for `fail_window_ms` (nginx's rule), which health_tick ends. */
#pragma once

#include <stddef.h>
#include <stdint.h>

struct backend;
struct pool;
struct poller;
struct health_check;

enum health_result {
    HEALTH_NONE, /* no check has finished yet */
    HEALTH_OK,
    HEALTH_REFUSED,  /* connect failed */
    HEALTH_TIMEOUT,  /* no connect or no full reply within timeout_ms */
    HEALTH_CLOSED,   /* the backend closed before the full expected reply */
    HEALTH_MISMATCH, /* the reply did not start with `expect` */
    HEALTH_ERROR,    /* could not run here (no fd, no memory): not counted, see local_errors */
};

const char *health_result_name(enum health_result r);

/* The `expect` check as a pure function: feeds n reply bytes after *got
 * already matched. Returns 1 once all of expect matched (bytes past it are
 * ignored), 0 when more bytes are needed, -1 on a mismatch. Fuzzed. */
int health_expect_feed(const char *expect, size_t expect_len, size_t *got, const char *data,
                       size_t n);

/* Any thread: a finished active check. Its own streaks count toward rise and
 * fall; sessions' connects are counted apart (pool_done), so traffic never
 * resets the checks. */
void health_record(struct pool *pl, struct backend *b, int ok);
/* Sub-reactors' housekeeping: brings backends that pool_done took down for
 * max_fails back when their fail_window_ms has passed. */
void health_tick(struct pool *pl, struct backend *b, uint64_t now_ms);

/* Creates the active checker of b on poller p and arms its first check at a
 * random point within one interval. Call before the poller runs, or on its
 * thread. */
int health_check_attach(struct pool *pl, struct backend *b, struct poller *p);
/* Admin thread (serialised): creates b's checker for poller p and posts its
 * start there. 0: b->hc is set, and the start is queued (runtime_quiesce()
 * after this returns proves it ran); nothing may free b before a stop has run.
 * -EAGAIN (inbox full), -ESHUTDOWN or -ENOMEM: nothing was created or posted,
 * b is untouched and the caller may free it. */
int health_check_start_on(struct pool *pl, struct backend *b, struct poller *p);
/* Owner thread, or any thread once the poller stopped: stops and frees b's checker. */
void health_check_detach(struct backend *b);
/* Admin thread (serialised), at most once per checker: posts the detach of
 * b's checker to its poller, behind a start still queued there. 0: queued, or
 * no checker (runtime_quiesce() after this returns proves it ran, and b may
 * then be freed). -EAGAIN (inbox full) or -ESHUTDOWN: nothing was posted and
 * the checker still runs and points at b, which must not be freed. Never
 * -ENOMEM: the task lives in the checker. */
int health_check_stop_on(struct backend *b);
