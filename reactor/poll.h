/* reactor/poll.h — the OS readiness seam: one backend per poller.
 * poll_epoll.c implements it with epoll + an eventfd for wake-ups; a kqueue or
 * io_uring backend would be a sibling file behind the same verbs. It knows
 * nothing about callbacks, timers or sessions: that is poller.c's job.
 * All functions return 0 / a count on success and a negative errno on failure. */
#pragma once

#include <stdint.h>

/* Interest bits passed to poll_backend_add/mod. */
enum {
    POLL_READ = 1u << 0,
    POLL_WRITE = 1u << 1,
    POLL_EDGE = 1u << 2, /* report readiness transitions only (epoll EPOLLET) */
    /* One fd watched by several pollers: an event wakes one waiting poller,
     * not all (EPOLLEXCLUSIVE). add only: such a registration cannot be
     * modified (delete and add it again), and reports no RDHUP. */
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

int poll_backend_open(struct poll_backend **out);
void poll_backend_close(struct poll_backend *pb);

int poll_backend_add(struct poll_backend *pb, int fd, uint32_t interest, void *ptr);
int poll_backend_mod(struct poll_backend *pb, int fd, uint32_t interest, void *ptr);
int poll_backend_del(struct poll_backend *pb, int fd);

/* Waits up to timeout_ms (-1: forever) and fills at most max events. A wake-up
 * from poll_backend_wake() is reported once as an event with ptr == NULL. */
int poll_backend_wait(struct poll_backend *pb, struct poll_event *out, int max, int timeout_ms);

/* Any thread, async-signal-safe: makes a blocked or the next wait return. */
void poll_backend_wake(struct poll_backend *pb);
