/* tests/unit/test_pump.c — proxy/pump.c and its transports (pump_copy.c,
 * pump_splice.c) driven by real sessions on one poller run from this thread
 * (poller_run_once in bounded loops): a client socket pair in front, a
 * loopback TCP "backend" behind (this test's listening socket). Relaying both
 * ways, the watermarks (pause at the high one, resume under the low one),
 * half-close, reset forwarding and the budget's re-run, for each transport
 * (loop index 0: copy, 1: splice); and splice relaying through the linkbuf
 * when no pipe can be had. TCP pairs throughout: splice needs a socket the
 * kernel can splice, and a reset must be a reset. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include "check_main.h"
#include "config/config_addr.h"
#include "proxy/pipe_cache.h"
#include "proxy/pump.h"
#include "proxy/backend.h"
#include "proxy/listener.h"
#include "proxy/pool.h"
#include "proxy/session-t.h"
#include "proxy/session.h"
#include "proxy/worker.h"

#define SPINS    20000 /* poller passes any one wait may take at most */
#define CHUNK    65536
#define MAX_READ PIPE_CACHE_PIPE_SIZE /* one read at most: a pipe, or copy's 16 blocks (less) */

static const enum cfg_zero_copy transports[] = {CFG_ZERO_COPY_NONE, CFG_ZERO_COPY_SPLICE};

static struct poller *loop;
static struct worker w;
static struct pool pl;
static struct listener lst;
static int backend_lfd = -1; /* the backend's listening socket */
static int client = -1;      /* this test's end of the client pair */
static int backend = -1;     /* the backend's accepted end of the upstream connection */
static struct session *s;

static int tcp_listener(int rcvbuf, struct sockaddr_in *addr)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    ck_assert_int_ge(fd, 0);
    /* Inherited by accepted sockets, so the window is that size from the
     * start. Past net.core.rmem_max only with CAP_NET_ADMIN (FORCE). */
    if (rcvbuf && setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &rcvbuf, sizeof(rcvbuf)) < 0)
        ck_assert_int_eq(setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof(rcvbuf)), 0);
    *addr = (struct sockaddr_in){.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(*addr);
    ck_assert_int_eq(bind(fd, (struct sockaddr *)addr, len), 0);
    ck_assert_int_eq(listen(fd, 8), 0);
    ck_assert_int_eq(getsockname(fd, (struct sockaddr *)addr, &len), 0);
    return fd;
}

/* Both ends non-blocking; *proxy_end goes to the session. */
static void tcp_pair(int *test_end, int *proxy_end, int proxy_rcvbuf)
{
    struct sockaddr_in a;
    int lfd = tcp_listener(proxy_rcvbuf, &a);
    int c = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    ck_assert_int_ge(c, 0);
    int r = connect(c, (struct sockaddr *)&a, sizeof(a));
    ck_assert(r == 0 || errno == EINPROGRESS);
    int fd = -1;
    for (int i = 0; i < SPINS && fd < 0; i++) {
        fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0)
            usleep(100);
    }
    ck_assert_int_ge(fd, 0);
    close(lfd);
    *test_end = c;
    *proxy_end = fd;
}

static void run(int timeout_ms)
{
    ck_assert_int_ge(poller_run_once(loop, timeout_ms), 0);
}

/* Runs the poller until an iteration has nothing to do. */
static void settle(void)
{
    for (int i = 0; i < SPINS; i++)
        if (poller_run_once(loop, 0) == 0 && poller_run_once(loop, 0) == 0)
            return;
    ck_abort_msg("the poller never went quiet");
}

/* A session of a pool of one backend (this test's listener) with the given
 * transport and watermarks, relaying: dialed, connected and accepted. */
static void start(int xi, unsigned low, unsigned high, int backend_rcvbuf, int client_rcvbuf)
{
    ck_assert_ptr_nonnull(freopen("/dev/null", "w", stderr)); /* no health logs */
    struct sockaddr_in a;
    backend_lfd = tcp_listener(backend_rcvbuf, &a);
    char addr[64], why[128];
    snprintf(addr, sizeof(addr), "127.0.0.1:%u", ntohs(a.sin_port));
    static struct cfg_backend bs[1];
    bs[0] = (struct cfg_backend){.name = "b0", .address = addr, .weight = 1};
    ck_assert_int_eq(config_addr_parse_all(addr, 0, &bs[0].addrs, why, sizeof(why)), 0);
    struct cfg_pool cp = {.name = "p",
                          .zero_copy = transports[xi],
                          .connect_timeout_ms = 10000,
                          .buffer_high_watermark = high,
                          .buffer_low_watermark = low,
                          .backends = bs,
                          .nbackends = 1};
    ck_assert_int_eq(pool_init(&pl, &cp), 0);
    ck_assert_int_eq(poller_create(1, NULL, &loop), 0);
    memset(&w, 0, sizeof(w));
    worker_init(&w, loop, session_starve_retry);
    memset(&lst, 0, sizeof(lst));
    lst.pool = &pl;
    lst.accept = CFG_ACCEPT_REUSEPORT; /* session_accept adopts on this poller */

    int proxy_end;
    tcp_pair(&client, &proxy_end, client_rcvbuf);
    atomic_fetch_add(&lst.active_connections, 1); /* as the listener does */
    struct sockaddr_in peer = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    ck_assert_int_eq(
        session_accept(&lst, loop, proxy_end, (struct sockaddr *)&peer, SOURCE_NONE, NULL), 0);
    s = w.sessions;
    ck_assert_ptr_nonnull(s);
    for (int i = 0; i < SPINS && (backend < 0 || s->state != SESSION_RELAYING); i++) {
        run(1);
        if (backend < 0)
            backend = accept4(backend_lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
    }
    ck_assert_int_ge(backend, 0);
    ck_assert_int_eq(s->state, SESSION_RELAYING);
    settle();
}

static void finish(void)
{
    session_close_all(&w);
    settle();
    counter_sub(&w.c.pipes_cached, pipe_cache_close(&w.pipes));
    ck_assert_uint_eq(counter_get(&w.c.pipes_in_use), 0);
    ck_assert_uint_eq(counter_get(&w.c.pipes_cached), 0);
    poller_destroy(loop);
    pool_fini(&pl);
    close(backend_lfd);
    if (client >= 0)
        close(client);
    if (backend >= 0)
        close(backend);
    backend_lfd = client = backend = -1;
    s = NULL;
}

/* The stream both directions carry: byte i is i % PERIOD, so the bytes from
 * any offset are a slice of one table (no per-call fill: these loops spin). */
#define PERIOD 251
static uint8_t stream[CHUNK + PERIOD];

static const uint8_t *stream_at(uint64_t off)
{
    if (!stream[1])
        for (size_t i = 0; i < sizeof(stream); i++)
            stream[i] = (uint8_t)(i % PERIOD);
    return stream + off % PERIOD;
}

/* Writes up to n bytes of the stream from offset *off; returns how many went. */
static size_t send_pattern(int fd, uint64_t *off, size_t n)
{
    ssize_t r = send(fd, stream_at(*off), n < CHUNK ? n : CHUNK, MSG_NOSIGNAL);
    if (r < 0) {
        ck_assert_int_eq(errno, EAGAIN);
        return 0;
    }
    *off += (uint64_t)r;
    return (size_t)r;
}

/* Reads what is there, checking it is the stream from offset *off. */
static size_t recv_pattern(int fd, uint64_t *off)
{
    static uint8_t buf[CHUNK];
    ssize_t r = recv(fd, buf, sizeof(buf), 0);
    if (r < 0) {
        ck_assert_int_eq(errno, EAGAIN);
        return 0;
    }
    ck_assert_msg(memcmp(buf, stream_at(*off), (size_t)r) == 0, "bytes out of order after %llu",
                  (unsigned long long)*off);
    *off += (uint64_t)r;
    return (size_t)r;
}

/* Runs the poller until fd has n bytes (or EOF when n == 0) for us; returns
 * what recv returned last (the byte count, 0 at EOF, -errno). */
static ssize_t recv_exact(int fd, char *buf, size_t n)
{
    size_t got = 0;
    for (int i = 0; i < SPINS; i++) {
        run(1);
        ssize_t r = recv(fd, buf + got, n - got, 0);
        if (r < 0 && errno == EAGAIN)
            continue;
        if (r <= 0)
            return r < 0 ? -errno : 0;
        got += (size_t)r;
        if (got == n)
            return (ssize_t)got;
    }
    ck_abort_msg("no bytes for %zu spins", (size_t)SPINS);
    return -1;
}

static uint64_t intake(void)
{
    /* What the proxy took from the client: sent on, in the linkbuf, in a pipe. */
    return counter_get(&w.c.bytes_in) + linkbuf_len(&s->side[SIDE_CLIENT].in) +
           s->side[SIDE_CLIENT].held;
}

START_TEST(relays_both_ways)
{
    start(_i, 16384, 65536, 0, 0);
    char buf[64];
    for (int round = 0; round < 20; round++) {
        char req[32], resp[32];
        int nq = snprintf(req, sizeof(req), "request %d", round);
        int np = snprintf(resp, sizeof(resp), "the answer to %d", round);
        ck_assert_int_eq(send(client, req, (size_t)nq, 0), nq);
        ck_assert_int_eq(recv_exact(backend, buf, (size_t)nq), nq);
        ck_assert_mem_eq(buf, req, (size_t)nq);
        ck_assert_int_eq(send(backend, resp, (size_t)np, 0), np);
        ck_assert_int_eq(recv_exact(client, buf, (size_t)np), np);
        ck_assert_mem_eq(buf, resp, (size_t)np);
    }
    ck_assert_uint_eq(counter_get(&w.c.bytes_in), atomic_load(&s->backend->bytes_in));
    ck_assert_uint_eq(counter_get(&w.c.bytes_out), atomic_load(&s->backend->bytes_out));
    ck_assert_uint_gt(counter_get(&w.c.bytes_in), 0);
    if (_i == 1) {
        /* A pipe is held only while bytes are in it: both went back. */
        settle();
        ck_assert_uint_eq(counter_get(&w.c.pipes_in_use), 0);
        ck_assert_uint_ge(counter_get(&w.c.pipes_cached), 1);
    }
    finish();
}
END_TEST

START_TEST(pauses_at_high_and_resumes_under_low)
{
    const unsigned low = 16384, high = 65536;
    start(_i, low, high, 4096, 0);
    /* Small buffers on the upstream connection: the backend's stall reaches
     * the proxy's buffer quickly. */
    int small = 4096;
    ck_assert_int_eq(
        setsockopt(s->side[SIDE_UPSTREAM].op.fd, SOL_SOCKET, SO_SNDBUF, &small, sizeof(small)), 0);
    const uint64_t total = 2u << 20;
    uint64_t sent = 0, got = 0;
    struct side *src = &s->side[SIDE_CLIENT];
    /* The backend reads nothing: the client must end up blocked. */
    int blocked = 0;
    for (int i = 0; i < SPINS && blocked < 50; i++) {
        blocked = send_pattern(client, &sent, CHUNK) ? 0 : blocked + 1;
        run(0);
    }
    ck_assert_int_eq(blocked, 50);
    settle();
    if (_i == 0) {
        ck_assert(src->flags & SIDE_PAUSED);
        ck_assert_uint_ge(linkbuf_len(&src->in), high);
        ck_assert_uint_le(linkbuf_len(&src->in), high + 2 * LINKBUF_BLOCK_SIZE);
    } else {
        ck_assert_uint_gt(src->held, 0); /* the pipe is this direction's buffer */
    }
    ck_assert(src->flags & SIDE_RD_READY); /* paused, not read dry: the readiness stays */
    uint64_t took = intake();
    for (int i = 0; i < 20; i++)
        run(0);
    ck_assert_uint_eq(intake(), took); /* and nothing more is read */

    /* The backend reads: everything arrives, in order; reading resumes only
     * once the buffer is under the low watermark. */
    int paused = 1, resumed = 0;
    for (int i = 0; i < 50 * SPINS && (sent < total || got < sent); i++) {
        if (sent < total)
            send_pattern(client, &sent, total - sent);
        recv_pattern(backend, &got);
        uint64_t len0 = linkbuf_len(&src->in), out0 = counter_get(&w.c.bytes_in);
        uint64_t took0 = intake();
        run(0);
        /* A read after a pause only once the writes took the buffer under low. */
        if (paused && _i == 0 && intake() > took0)
            ck_assert_uint_le(len0 - (counter_get(&w.c.bytes_in) - out0), low);
        int now = (src->flags & SIDE_PAUSED) != 0;
        if (now && _i == 0)
            ck_assert_uint_gt(linkbuf_len(&src->in), low);
        if (now && _i == 1)
            ck_assert_uint_gt(src->held, 0); /* a full pipe */
        if (paused && !now)
            resumed++;
        paused = now;
    }
    ck_assert_uint_eq(got, sent);
    ck_assert_int_gt(resumed, 0);
    ck_assert_uint_eq(counter_get(&w.c.bytes_in), sent);
    finish();
}
END_TEST

START_TEST(forwards_half_close)
{
    start(_i, 16384, 65536, 0, 0);
    char buf[16];
    /* The FIN comes with the bytes (one edge: RDHUP with the data). */
    ck_assert_int_eq(send(client, "abc", 3, 0), 3);
    ck_assert_int_eq(shutdown(client, SHUT_WR), 0);
    ck_assert_int_eq(recv_exact(backend, buf, 3), 3);
    ck_assert_mem_eq(buf, "abc", 3);
    ck_assert_int_eq(recv_exact(backend, buf, sizeof(buf)), 0); /* the EOF, forwarded */
    ck_assert_ptr_eq(w.sessions, s);                            /* half open: still relaying */
    ck_assert_int_eq(s->state, SESSION_RELAYING);
    /* The other direction still flows, then ends the session. */
    ck_assert_int_eq(send(backend, "xyz", 3, 0), 3);
    ck_assert_int_eq(recv_exact(client, buf, 3), 3);
    ck_assert_mem_eq(buf, "xyz", 3);
    ck_assert_int_eq(shutdown(backend, SHUT_WR), 0);
    ck_assert_int_eq(recv_exact(client, buf, sizeof(buf)), 0);
    settle();
    ck_assert_ptr_null(w.sessions);
    ck_assert_uint_eq(counter_get(&w.c.active_connections), 0);
    ck_assert_uint_eq(counter_get(&w.c.resets), 0);
    ck_assert_uint_eq(counter_get(&w.c.pipes_in_use), 0);
    s = NULL;
    finish();
}
END_TEST

START_TEST(forwards_a_reset)
{
    start(_i, 16384, 65536, 0, 0);
    char buf[16];
    ck_assert_int_eq(send(client, "abc", 3, 0), 3);
    ck_assert_int_eq(recv_exact(backend, buf, 3), 3);
    struct linger lg = {1, 0};
    ck_assert_int_eq(setsockopt(backend, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg)), 0);
    close(backend);
    backend = -1;
    ck_assert_int_eq(recv_exact(client, buf, sizeof(buf)), -ECONNRESET);
    settle();
    ck_assert_ptr_null(w.sessions);
    ck_assert_uint_eq(counter_get(&w.c.resets), 1);
    s = NULL;
    finish();
}
END_TEST

START_TEST(spent_budget_reruns_without_an_event)
{
    /* Watermarks far above the budget, and a receive window of megabytes on
     * the proxy's client socket: the bytes wait there, so reads are full
     * (a short read would end the pass: copy takes it for an empty socket). */
    const int window = 8 << 20;
    start(_i, 8u << 20, 16u << 20, 0, window);
    int rcvbuf = 0;
    socklen_t len = sizeof(rcvbuf);
    ck_assert_int_eq(getsockopt(s->side[SIDE_CLIENT].op.fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, &len),
                     0);
    ck_assert_msg(rcvbuf >= window, "SO_RCVBUF %d: needs root or net.core.rmem_max >= %d", rcvbuf,
                  window / 2);
    uint64_t sent = 0, got = 0;
    for (int i = 0; i < SPINS && send_pattern(client, &sent, CHUNK);)
        i++;
    int queued = 0;
    ck_assert_int_eq(ioctl(s->side[SIDE_CLIENT].op.fd, FIONREAD, &queued), 0);
    ck_assert_int_gt(queued, 2 * (PUMP_BUDGET_BYTES + MAX_READ));
    uint64_t events = atomic_load(&poller_counters(loop)->events);
    int polled = poller_run_once(loop, 1000); /* the edge, then a re-run pass */
    ck_assert_int_ge(polled, 1);
    uint64_t reruns = atomic_load(&poller_counters(loop)->events) - events - (uint64_t)polled;
    ck_assert_uint_ge(reruns, 1); /* the budget, not the data, ended the first pass */
    ck_assert_uint_le(intake(), (1 + reruns) * (PUMP_BUDGET_BYTES + MAX_READ));
    ck_assert_uint_lt(intake(), sent);
    /* No byte is written from here on: the re-runs read the rest, which no
     * new edge would announce (it waited in the socket already). */
    for (int i = 0; i < 50 * SPINS && got < sent; i++) {
        recv_pattern(backend, &got);
        run(0);
    }
    ck_assert_uint_eq(got, sent);
    finish();
}
END_TEST

START_TEST(splice_without_a_pipe_relays_through_the_linkbuf)
{
    start(1, 16384, 65536, 0, 0);
    /* No pipe in the cache (the connect's first pass took and gave back
     * one), and no fd left for a new one: the lowest free fd is the limit. */
    counter_sub(&w.c.pipes_cached, pipe_cache_close(&w.pipes));
    int lowest = open("/dev/null", O_RDONLY);
    ck_assert_int_ge(lowest, 0);
    close(lowest);
    struct rlimit old, none;
    ck_assert_int_eq(getrlimit(RLIMIT_NOFILE, &old), 0);
    none = (struct rlimit){.rlim_cur = (rlim_t)lowest, .rlim_max = old.rlim_max};
    ck_assert_int_eq(setrlimit(RLIMIT_NOFILE, &none), 0);
    int fds[2];
    ck_assert_int_eq(pipe(fds), -1);
    char buf[16];
    for (int round = 0; round < 3; round++) {
        ck_assert_int_eq(send(client, "ping", 4, 0), 4);
        ck_assert_int_eq(recv_exact(backend, buf, 4), 4);
        ck_assert_mem_eq(buf, "ping", 4);
        ck_assert_int_eq(send(backend, "pong", 4, 0), 4);
        ck_assert_int_eq(recv_exact(client, buf, 4), 4);
        ck_assert_mem_eq(buf, "pong", 4);
    }
    ck_assert_uint_eq(counter_get(&w.c.pipes_in_use), 0);
    ck_assert_uint_eq(counter_get(&w.c.bytes_in), 12);
    ck_assert_uint_eq(counter_get(&w.c.bytes_out), 12);
    ck_assert_int_eq(setrlimit(RLIMIT_NOFILE, &old), 0);
    /* Fds again: the next bytes go through a pipe, which goes back empty. */
    ck_assert_int_eq(send(client, "ping", 4, 0), 4);
    ck_assert_int_eq(recv_exact(backend, buf, 4), 4);
    settle();
    ck_assert_uint_eq(counter_get(&w.c.pipes_cached), 1);
    finish();
}
END_TEST

static Suite *make_suite(void)
{
    Suite *su = suite_create("pump");
    TCase *tc = tcase_create("transports");
    tcase_set_timeout(tc, 60);
    int n = (int)(sizeof(transports) / sizeof(transports[0]));
    tcase_add_loop_test(tc, relays_both_ways, 0, n);
    tcase_add_loop_test(tc, pauses_at_high_and_resumes_under_low, 0, n);
    tcase_add_loop_test(tc, forwards_half_close, 0, n);
    tcase_add_loop_test(tc, forwards_a_reset, 0, n);
    tcase_add_loop_test(tc, spent_budget_reruns_without_an_event, 0, n);
    tcase_add_test(tc, splice_without_a_pipe_relays_through_the_linkbuf);
    suite_add_tcase(su, tc);
    return su;
}
