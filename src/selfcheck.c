/* src/selfcheck.c — see src/selfcheck.h. */
#define _GNU_SOURCE
#include "selfcheck.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "config/config_addr.h"
#include "proxy/sock.h"

#define REPLY_MAX 512

/* A wildcard bind is reached through loopback. */
static struct cfg_sockaddr target_of(const struct cfg_admin *admin)
{
    struct cfg_sockaddr t = admin->addr;
    if (t.ss.ss_family == AF_INET) {
        struct sockaddr_in *s4 = (struct sockaddr_in *)&t.ss;
        if (s4->sin_addr.s_addr == htonl(INADDR_ANY))
            s4->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    } else {
        struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&t.ss;
        if (IN6_IS_ADDR_UNSPECIFIED(&s6->sin6_addr))
            s6->sin6_addr = in6addr_loopback;
    }
    return t;
}

static int wait_for(int fd, short events, unsigned timeout_ms)
{
    struct pollfd pfd = {.fd = fd, .events = events};
    int r;
    do {
        r = poll(&pfd, 1, (int)timeout_ms);
    } while (r < 0 && errno == EINTR);
    return r > 0 ? 0 : -ETIMEDOUT;
}

int selfcheck_run(const struct cfg_admin *admin, const char *token, unsigned timeout_ms)
{
    struct cfg_sockaddr t = target_of(admin);
    int fd = -1;
    int err = sock_dial((const struct sockaddr *)&t.ss, t.len, &fd);
    if (!err)
        err = wait_for(fd, POLLOUT, timeout_ms);
    if (!err && (err = sock_connected(fd)) == 1)
        err = 0;
    if (err) {
        fprintf(stderr, "sluice: healthcheck: cannot connect to %s: %s\n", admin->listen,
                strerror(err < 0 ? -err : ETIMEDOUT));
        if (fd >= 0)
            close(fd);
        return 1;
    }
    /* The address dialled, an IP literal: the admin answers only Hosts that
     * no DNS rebinding can fake (IP literals, localhost, allowed_hosts). */
    char req[1024], host[64];
    config_addr_format(&t, host, sizeof(host));
    int n =
        snprintf(req, sizeof(req), "GET /healthz HTTP/1.0\r\nHost: %s\r\n%s%s%s\r\n", host,
                 token ? "Authorization: Bearer " : "", token ? token : "", token ? "\r\n" : "");
    char reply[REPLY_MAX + 1];
    size_t got = 0;
    if (n > 0 && (size_t)n < sizeof(req) && send(fd, req, (size_t)n, MSG_NOSIGNAL) == n) {
        while (got < REPLY_MAX && wait_for(fd, POLLIN, timeout_ms) == 0) {
            ssize_t r = recv(fd, reply + got, REPLY_MAX - got, 0);
            if (r <= 0)
                break;
            got += (size_t)r;
        }
    }
    close(fd);
    reply[got] = '\0';
    int status = 0;
    if (sscanf(reply, "HTTP/1.%*d %d", &status) == 1 && status == 200)
        return 0;
    fprintf(stderr, "sluice: healthcheck: %s/healthz answered %s\n", admin->listen,
            status ? (status == 401 ? "401 (wrong or missing token)" : "a non-200 status")
                   : "nothing usable");
    return 1;
}
