/* reactor/poll.h — the OS readiness seam: one backend per poller.
 * poll_epoll.c implements it with epoll + an eventfd for wake-ups,
 * poll_uring.c with io_uring poll requests; poll.c picks one per poller (a
 * kind field and a switch). It knows nothing about callbacks, timers or
 * sessions: that is poller.c's job.
 * All functions return 0 / a count on success and a negative errno on failure. */
#pragma once

#include <stdint.h>

#include "poll-t.h"

/* Interest bits passed to poll_backend_add. There is no modify: to change
 * what an fd is watched for, delete it and add it again (the listener's
 * EMFILE pause does); every caller registers once. */
enum {
    POLL_READ = 1u << 0,
    POLL_WRITE = 1u << 1,
    POLL_EDGE = 1u << 2, /* report readiness transitions only (epoll EPOLLET) */
    /* One fd watched by several pollers: an event wakes one waiting poller,
     * not all (EPOLLEXCLUSIVE). It reports no RDHUP. */
    POLL_EXCLUSIVE = 1u << 3,
};

/* Event bits reported by poll_backend_wait. */
enum {
    POLL_EV_IN = 1u << 0,
    POLL_EV_OUT = 1u << 1,
    POLL_EV_HUP = 1u << 2,   /* peer closed both directions, or error: read/write will tell */
    POLL_EV_RDHUP = 1u << 3, /* peer shut its write side: read returns 0 soon */
};

struct poll_event {
    void *ptr; /* the pointer given at add time; NULL marks a wake-up */
    uint32_t events;
};

struct poll_backend;

/* "epoll" or "io_uring". */
const char *poll_kind_name(enum poll_kind kind);

/* Opens a backend of kind `want`. When io_uring cannot be set up (ENOSYS,
 * EPERM from seccomp or kernel.io_uring_disabled, ENOMEM from RLIMIT_MEMLOCK,
 * a kernel without multishot poll) it opens epoll instead and stores why in
 * *fallback (a negative errno); *fallback is 0 when `want` opened. */
int poll_backend_open(enum poll_kind want, struct poll_backend **out, int *fallback);
void poll_backend_close(struct poll_backend *pb);
/* What is really in use (after any fallback). */
enum poll_kind poll_backend_kind(const struct poll_backend *pb);

int poll_backend_add(struct poll_backend *pb, int fd, uint32_t interest, void *ptr);
int poll_backend_del(struct poll_backend *pb, int fd);
/* For an fd the caller closes right after and never duplicated. epoll: a
 * no-op, the close removes it. io_uring: a poll request holds its own file
 * reference, so close alone would keep the socket alive (no FIN sent): this
 * queues the removal as del does. */
int poll_backend_forget(struct poll_backend *pb, int fd);

/* Waits up to timeout_ms (-1: forever, 0: not at all) and fills at most max
 * events; a signal or the timeout returns 0. A wake-up from
 * poll_backend_wake() is reported once as an event with ptr == NULL. The
 * io_uring backend submits every add/del queued since the last wait in
 * the same kernel entry. Events for an fd deleted before this wait are never
 * reported. */
int poll_backend_wait(struct poll_backend *pb, struct poll_event *out, int max, int timeout_ms);

/* Any thread, async-signal-safe: makes a blocked or the next wait return. */
void poll_backend_wake(struct poll_backend *pb);

/* For poll.c and the backends only: the head every backend's struct starts
 * with (its kind, for poll.c's switch) and each backend's verbs. */
struct poll_backend {
    enum poll_kind kind;
};

int poll_epoll_open(struct poll_backend **out);
void poll_epoll_close(struct poll_backend *pb);
int poll_epoll_add(struct poll_backend *pb, int fd, uint32_t interest, void *ptr);
int poll_epoll_del(struct poll_backend *pb, int fd);
int poll_epoll_wait(struct poll_backend *pb, struct poll_event *out, int max, int timeout_ms);
void poll_epoll_wake(struct poll_backend *pb);

int poll_uring_open(struct poll_backend **out);
void poll_uring_close(struct poll_backend *pb);
int poll_uring_add(struct poll_backend *pb, int fd, uint32_t interest, void *ptr);
int poll_uring_del(struct poll_backend *pb, int fd);
int poll_uring_wait(struct poll_backend *pb, struct poll_event *out, int max, int timeout_ms);
void poll_uring_wake(struct poll_backend *pb);
