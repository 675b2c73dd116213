/* proxy/session.h — a proxied connection: a client fd, an upstream fd and a
 * linkbuf per direction, living on one sub-reactor for its whole life. */
#pragma once

#include <stdint.h>

struct timer;

struct backend;
struct listener;
struct poller;
struct worker;

/* Every listener's listener_conn_cb: takes ownership of an accepted client fd
 * (on failure, -errno, the fd is already closed). Accepted on the main
 * reactor, the session is posted to the sub-reactor that pollmgr_pick(pollers)
 * gives; accepted by a sub-reactor itself (accept "reuseport"), it starts on
 * p at once. pollers: the struct pollmgr of the running proxy. */
int session_accept(struct listener *l, struct poller *p, int fd, uint64_t client_key,
                   void *pollers);

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
