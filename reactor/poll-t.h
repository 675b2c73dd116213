/* reactor/poll-t.h — types only: which kernel interface a poller's backend
 * uses. config/config.h stores this enum (the "io" key) and
 * reactor/poll.c spells its names (poll_kind_name). */
#pragma once

enum poll_kind {
    POLL_KIND_EPOLL, /* "epoll" */
    POLL_KIND_URING, /* "io_uring" */
};
