/* reactor/fdop.h — an fd with its callbacks and a void *data, as netpoll's
 * FDOperator. The callbacks live in a shared const table (one per kind of fd),
 * so an fdop costs 40 bytes whatever the number of callbacks. The memory is
 * the caller's (usually embedded in a session); the poller only points at it. */
#pragma once

#include <stdint.h>

struct poller;
struct fdop;

/* Runs on the poller's own thread. The callee may unregister and close the fd;
 * the fdop memory must stay valid until the end of the loop iteration (free it
 * from a poller_defer() task, never inside the callback). */
typedef void (*fdop_cb)(struct poller *p, struct fdop *op, void *data);

struct fdop_ops {
    fdop_cb on_read;  /* readable, or EOF pending */
    fdop_cb on_write; /* writable */
    fdop_cb on_hup;   /* hang-up or error; NULL: on_read and on_write are called instead */
};

struct fdop {
    int fd;                         /* -1 once unregistered */
    uint8_t pending;                /* POLL_EV_* queued by poller_rerun() */
    uint8_t revents;                /* POLL_EV_* of the event being dispatched (read-only) */
    const struct fdop_ops *ops;     /* not owned: static table */
    void *data;                     /* not owned: the callbacks' context */
    struct fdop *rq_next, *rq_prev; /* poller's re-run queue, owned by the poller */
};

static inline void fdop_init(struct fdop *op, int fd, const struct fdop_ops *ops, void *data)
{
    op->fd = fd;
    op->pending = 0;
    op->revents = 0;
    op->ops = ops;
    op->data = data;
    op->rq_next = op->rq_prev = 0;
}
