/* proxy/sock.h — socket-option noise kept out of the data path (as Redis'
 * anet.c): listening and non-blocking dialing sockets, TCP_NODELAY, reset on
 * close, pending socket errors. Every function returns -errno on failure. */
#pragma once

#include <stddef.h>
#include <sys/socket.h>

#include "sock-t.h"

/* Non-blocking, close-on-exec, SO_REUSEADDR (and SO_REUSEPORT when asked),
 * TCP_NODELAY (inherited by accepted sockets), bound and listening. Returns the fd. */
int sock_listen(const struct sockaddr *addr, socklen_t len, int backlog, int reuseport);
/* Starts a non-blocking connect. Returns 0 with *fd set when connecting or
 * connected; -errno (and no fd) when the connect failed at once. */
int sock_dial(const struct sockaddr *addr, socklen_t len, int *fd);
int sock_set_nodelay(int fd);
/* Makes the next close() send a RST instead of a FIN. */
int sock_set_reset_on_close(int fd);
/* For a socket whose connect was started: 1 connected, 0 still in progress,
 * -errno when it failed. */
int sock_connected(int fd);
/* The pending error of a socket (SO_ERROR) as -errno, or 0. */
int sock_error(int fd);
/* This host is short of fds, socket buffers or memory (-errno): an accept
 * or a connect to any address would fail the same way, so the caller backs
 * off instead of trying elsewhere. */
int sock_shortage(int err);
/* A dial error that is this host's (a shortage, or no ephemeral port, or
 * epoll full), not the peer's: no other backend would do better, and no
 * backend's health may pay for it. */
int sock_local_error(int err);

/* The compact form of sa (family 0 when it is neither IPv4 nor IPv6). */
void sock_addr_from(struct sock_addr *out, const struct sockaddr *sa);
/* Back to a sockaddr; returns its length (0 for family 0). */
socklen_t sock_addr_to(const struct sock_addr *a, struct sockaddr_storage *out);
/* "192.0.2.1:80" or "[2001:db8::1]:80" ("-" for family 0), NUL-terminated
 * within len; returns what snprintf returns. */
int sock_addr_format(const struct sock_addr *a, char *buf, size_t len);
