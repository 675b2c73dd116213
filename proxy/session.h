/* proxy/session.h — a proxied connection: a client fd, an upstream fd and a
 * linkbuf per direction, living on one sub-reactor for its whole life. */
#pragma once

#include <stdint.h>

struct timer;

struct backend;
struct runtime;
struct listener;
struct worker;

/* Main reactor: wraps an accepted client fd into a session and posts it to the
 * sub-reactor the poll manager picks. Takes ownership of fd: on failure
 * (-errno) the fd is already closed. */
int session_handoff(struct runtime *rt, struct listener *l, int fd, uint64_t client_key);

/* A sub-reactor that accepted fd itself (accept "reuseport"): the session
 * starts on this poller at once. Takes ownership of fd as session_handoff. */
int session_start_here(struct worker *w, struct listener *l, int fd, uint64_t client_key);

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
