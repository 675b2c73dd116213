/* reactor/poll.c — reactor/poll.h's verbs: a switch on the backend's kind
 * (epoll first: the default pays one predictable branch), and the fallback
 * from io_uring to epoll at open. */
#include "poll.h"

#include <stddef.h>

const char *poll_kind_name(enum poll_kind kind)
{
    return kind == POLL_KIND_URING ? "io_uring" : "epoll";
}

int poll_backend_open(enum poll_kind want, struct poll_backend **out, int *fallback)
{
    *fallback = 0;
    if (want == POLL_KIND_URING) {
        int err = poll_uring_open(out);
        if (!err)
            return 0;
        *fallback = err;
    }
    return poll_epoll_open(out);
}

enum poll_kind poll_backend_kind(const struct poll_backend *pb)
{
    return pb->kind;
}

void poll_backend_close(struct poll_backend *pb)
{
    if (!pb)
        return;
    if (pb->kind == POLL_KIND_EPOLL)
        poll_epoll_close(pb);
    else
        poll_uring_close(pb);
}

int poll_backend_add(struct poll_backend *pb, int fd, uint32_t interest, void *ptr)
{
    if (pb->kind == POLL_KIND_EPOLL)
        return poll_epoll_add(pb, fd, interest, ptr);
    return poll_uring_add(pb, fd, interest, ptr);
}

int poll_backend_del(struct poll_backend *pb, int fd)
{
    if (pb->kind == POLL_KIND_EPOLL)
        return poll_epoll_del(pb, fd);
    return poll_uring_del(pb, fd);
}

int poll_backend_forget(struct poll_backend *pb, int fd)
{
    if (pb->kind == POLL_KIND_EPOLL)
        return 0; /* the caller's close removes it from the epoll set */
    return poll_uring_del(pb, fd);
}

int poll_backend_wait(struct poll_backend *pb, struct poll_event *out, int max, int timeout_ms)
{
    if (pb->kind == POLL_KIND_EPOLL)
        return poll_epoll_wait(pb, out, max, timeout_ms);
    return poll_uring_wait(pb, out, max, timeout_ms);
}

void poll_backend_wake(struct poll_backend *pb)
{
    if (pb->kind == POLL_KIND_EPOLL)
        poll_epoll_wake(pb);
    else
        poll_uring_wake(pb);
}
