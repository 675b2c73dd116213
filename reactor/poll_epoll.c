/* reactor/poll_epoll.c — the epoll backend of reactor/poll.h (the default): epoll for
 * readiness, one eventfd for cross-thread wake-ups. Owns both fds. */
#define _GNU_SOURCE
#include "poll.h"

#include <errno.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#define POLL_EPOLL_MAX_BATCH 256

struct poll_epoll {
    struct poll_backend head; /* kind: POLL_KIND_EPOLL */
    int epfd;
    int wakefd;
    struct epoll_event evs[POLL_EPOLL_MAX_BATCH];
};

static uint32_t interest_to_epoll(uint32_t interest)
{
    /* EPOLLEXCLUSIVE takes no EPOLLRDHUP (EINVAL). */
    uint32_t e = interest & POLL_EXCLUSIVE ? EPOLLEXCLUSIVE : EPOLLRDHUP;
    if (interest & POLL_READ)
        e |= EPOLLIN;
    if (interest & POLL_WRITE)
        e |= EPOLLOUT;
    if (interest & POLL_EDGE)
        e |= EPOLLET;
    return e;
}

static struct poll_epoll *E(struct poll_backend *pb)
{
    return (struct poll_epoll *)pb;
}

int poll_epoll_open(struct poll_backend **out)
{
    struct poll_epoll *pb = calloc(1, sizeof(*pb));
    if (!pb)
        return -ENOMEM;
    pb->head.kind = POLL_KIND_EPOLL;
    int err;
    pb->epfd = epoll_create1(EPOLL_CLOEXEC);
    if (pb->epfd < 0) {
        err = -errno;
        goto fail_free;
    }
    pb->wakefd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (pb->wakefd < 0) {
        err = -errno;
        goto fail_ep;
    }
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = NULL};
    if (epoll_ctl(pb->epfd, EPOLL_CTL_ADD, pb->wakefd, &ev) < 0) {
        err = -errno;
        goto fail_wake;
    }
    *out = &pb->head;
    return 0;
fail_wake:
    close(pb->wakefd);
fail_ep:
    close(pb->epfd);
fail_free:
    free(pb);
    return err;
}

void poll_epoll_close(struct poll_backend *b)
{
    struct poll_epoll *pb = E(b);
    close(pb->wakefd);
    close(pb->epfd);
    free(pb);
}

static int ctl(struct poll_epoll *pb, int op, int fd, uint32_t interest, void *ptr)
{
    struct epoll_event ev = {.events = interest_to_epoll(interest), .data.ptr = ptr};
    return epoll_ctl(pb->epfd, op, fd, &ev) < 0 ? -errno : 0;
}

int poll_epoll_add(struct poll_backend *pb, int fd, uint32_t interest, void *ptr)
{
    return ctl(E(pb), EPOLL_CTL_ADD, fd, interest, ptr);
}

int poll_epoll_del(struct poll_backend *pb, int fd)
{
    struct epoll_event ev = {0};
    return epoll_ctl(E(pb)->epfd, EPOLL_CTL_DEL, fd, &ev) < 0 ? -errno : 0;
}

int poll_epoll_wait(struct poll_backend *b, struct poll_event *out, int max, int timeout_ms)
{
    struct poll_epoll *pb = E(b);
    if (max > POLL_EPOLL_MAX_BATCH)
        max = POLL_EPOLL_MAX_BATCH;
    int n = epoll_wait(pb->epfd, pb->evs, max, timeout_ms);
    if (n < 0)
        return errno == EINTR ? 0 : -errno;
    for (int i = 0; i < n; i++) {
        uint32_t e = pb->evs[i].events, r = 0;
        out[i].ptr = pb->evs[i].data.ptr;
        if (!out[i].ptr) {
            uint64_t v;
            /* Read the counter back to zero; EAGAIN just means another wait already did. */
            while (read(pb->wakefd, &v, sizeof(v)) < 0 && errno == EINTR)
                ;
        }
        if (e & EPOLLIN)
            r |= POLL_EV_IN;
        if (e & EPOLLOUT)
            r |= POLL_EV_OUT;
        if (e & (EPOLLHUP | EPOLLERR))
            r |= POLL_EV_HUP;
        if (e & EPOLLRDHUP)
            r |= POLL_EV_RDHUP;
        out[i].events = r;
    }
    return n;
}

void poll_epoll_wake(struct poll_backend *pb)
{
    uint64_t one = 1;
    /* EAGAIN means the counter is saturated: a wake-up is pending anyway. */
    while (write(E(pb)->wakefd, &one, sizeof(one)) < 0 && errno == EINTR)
        ;
}
