/* proxy/health.c — active checks and passive accounting (proxy/health.h). */
#define _GNU_SOURCE
#include "health.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "backend.h"
#include "log.h"
#include "pool.h"
#include "reactor/clock.h"
#include "reactor/poller.h"
#include "sock.h"
#include "worker.h"

#define JITTER_PERCENT 10

enum hc_phase { HC_IDLE, HC_CONNECTING, HC_SENDING, HC_READING };

struct health_check {
    struct backend *b; /* not owned */
    struct pool *pl;   /* not owned */
    struct poller *p;  /* not owned: the poller it runs on */
    struct fdop op;
    struct timer timer;
    uint8_t phase;
    uint8_t addr_index; /* which of the backend's addresses is being dialed */
    size_t sent, got;   /* bytes of send written, of expect matched */
    uint64_t started_ns;
    /* Posted by health_check_start_on / health_check_stop_on: carried here so
     * that posting needs no allocation and a full inbox is the only failure. */
    struct poller_task start, stop;
};

const char *health_result_name(enum health_result r)
{
    static const char *const names[] = {"none",   "ok",       "refused", "timeout",
                                        "closed", "mismatch", "error"};
    return (unsigned)r < sizeof(names) / sizeof(names[0]) ? names[r] : "unknown";
}

int health_expect_feed(const char *expect, size_t expect_len, size_t *got, const char *data,
                       size_t n)
{
    size_t left = expect_len - *got;
    size_t k = n < left ? n : left;
    if (memcmp(expect + *got, data, k) != 0)
        return -1;
    *got += k;
    return *got == expect_len;
}

/* Active evidence: the checks' own counts, which no session touches, so that
 * `fall` failed checks take a backend down however much traffic connects.
 * The transitions run on every check past the threshold, not only when
 * `healthy` flips: they are idempotent, and a state left disagreeing with
 * health (an operator change racing a check) is put right by the next check.
 * Sessions' connects are counted apart, behind pool_done (proxy/pool.c). */
void health_record(struct pool *pl, struct backend *b, int ok)
{
    if (ok) {
        atomic_store_explicit(&b->consecutive_failures, 0, memory_order_relaxed);
        unsigned s = atomic_fetch_add(&b->consecutive_successes, 1) + 1;
        if (s >= pl->health_check.rise)
            backend_go_up(b, pl->name, "health checks pass");
        return;
    }
    atomic_store_explicit(&b->consecutive_successes, 0, memory_order_relaxed);
    unsigned f = atomic_fetch_add(&b->consecutive_failures, 1) + 1;
    if (f >= pl->health_check.fall)
        backend_go_down(b, pl->name, "health checks fail");
}

void health_tick(struct pool *pl, struct backend *b, uint64_t now_ms)
{
    uint64_t until = atomic_load_explicit(&b->down_until_ms, memory_order_relaxed);
    if (!until || now_ms < until)
        return;
    uint64_t expect = until;
    if (atomic_compare_exchange_strong(&b->down_until_ms, &expect, 0)) {
        atomic_store(&b->window_fails, 0);
        backend_go_up(b, pl->name, "fail_window_ms passed");
    }
}

/* --- the active checker ---------------------------------------------------- */

static void on_io(struct poller *p, struct fdop *op, void *data);
static const struct fdop_ops hc_ops = {.on_read = on_io, .on_write = on_io};

static uint64_t jittered(const struct health_check *hc)
{
    uint64_t base = hc->pl->health_check.interval_ms;
    uint64_t span = base * JITTER_PERCENT / 100;
    uint64_t r = (clock_mono_ns() ^ (uintptr_t)hc) * 0x9e3779b97f4a7c15ull >> 33;
    return base - span + (span ? r % (2 * span + 1) : 0);
}

static void finish(struct health_check *hc, enum health_result r)
{
    struct backend *b = hc->b;
    if (hc->op.fd >= 0)
        close(poller_forget(hc->p, &hc->op));
    atomic_store(&b->last_check_latency_us, (clock_mono_ns() - hc->started_ns) / 1000u);
    atomic_store(&b->last_check_result, r);
    atomic_fetch_add(&b->checks_total, 1);
    if (r != HEALTH_OK)
        atomic_fetch_add(&b->checks_failed, 1);
    hc->phase = HC_IDLE;
    poller_timer_start(hc->p, &hc->timer, jittered(hc));
    health_record(hc->pl, b, r == HEALTH_OK);
}

/* The check could not even start for a reason of this host (no fd, no
 * memory): it says nothing about the backend, so it is counted in the
 * poller's local_errors, shown as last_check "error", and neither counts as a
 * check nor toward rise or fall (sessions' dials are exempt the same way).
 * The next one runs an interval later. */
static void skip_local(struct health_check *hc)
{
    struct worker *w = poller_user(hc->p);
    counter_add(&w->c.local_errors, 1);
    atomic_store(&hc->b->last_check_result, HEALTH_ERROR);
    hc->phase = HC_IDLE;
    poller_timer_start(hc->p, &hc->timer, jittered(hc));
}

/* Connects to the backend from its address i on, as a session does (a name
 * may resolve to ::1 and 127.0.0.1 with one listening); 0 or -errno, where
 * sock_local_error() tells a failure of this host. */
static int dial_from(struct health_check *hc, unsigned i)
{
    int fd;
    int err = backend_dial(hc->b, &i, &fd);
    if (err)
        return err;
    fdop_init(&hc->op, fd, &hc_ops, hc);
    err = poller_register_or_close(hc->p, &hc->op, POLL_READ | POLL_WRITE | POLL_EDGE);
    if (err)
        return err; /* epoll's ENOMEM, ENOSPC: local errors, never the backend's */
    hc->addr_index = (uint8_t)i;
    return 0;
}

/* A dial that did not start: this host's failure or the backend's. */
static void dial_failed(struct health_check *hc, int err)
{
    if (sock_local_error(err))
        skip_local(hc);
    else
        finish(hc, HEALTH_REFUSED); /* refused, unreachable: the connect failed */
}

static void probe(struct health_check *hc)
{
    struct backend *b = hc->b;
    hc->started_ns = clock_mono_ns();
    hc->sent = hc->got = 0;
    if (atomic_load(&b->state) == BACKEND_DISABLED) {
        poller_timer_start(hc->p, &hc->timer, jittered(hc)); /* maintenance: not checked */
        return;
    }
    int err = dial_from(hc, 0);
    if (err) {
        dial_failed(hc, err);
        return;
    }
    hc->phase = HC_CONNECTING;
    poller_timer_start(hc->p, &hc->timer, hc->pl->health_check.timeout_ms);
}

static void on_timer(void *loop, struct timer *t, void *data)
{
    struct health_check *hc = data;
    if (hc->phase == HC_IDLE)
        probe(hc);
    else
        finish(hc, HEALTH_TIMEOUT);
}

/* What a send's or recv's n says: 1 when bytes moved, 0 to call again
 * (EINTR), -1 when this event is over: EAGAIN waits for the next one, an
 * error or EOF finishes the check (closed). */
static int moved(struct health_check *hc, ssize_t n)
{
    if (n > 0)
        return 1;
    if (n < 0 && errno == EINTR)
        return 0;
    if (n < 0 && errno == EAGAIN)
        return -1;
    finish(hc, HEALTH_CLOSED);
    return -1;
}

static void advance(struct health_check *hc)
{
    const struct cfg_health_check *cfg = &hc->pl->health_check;
    if (hc->phase == HC_CONNECTING) {
        int r = sock_connected(hc->op.fd);
        if (r == 0)
            return;
        if (r < 0) {
            /* The next address, within the same timeout_ms. */
            close(poller_forget(hc->p, &hc->op));
            int err = hc->addr_index + 1u < backend_addrs(hc->b)->n
                          ? dial_from(hc, hc->addr_index + 1u)
                          : r;
            if (err)
                dial_failed(hc, err);
            return;
        }
        hc->phase = cfg->send ? HC_SENDING : HC_READING;
    }
    if (hc->phase == HC_SENDING) {
        while (hc->sent < cfg->send_len) {
            ssize_t n =
                send(hc->op.fd, cfg->send + hc->sent, cfg->send_len - hc->sent, MSG_NOSIGNAL);
            int r = moved(hc, n);
            if (r < 0)
                return;
            if (r > 0)
                hc->sent += (size_t)n;
        }
        hc->phase = HC_READING;
    }
    if (!cfg->expect) {
        finish(hc, HEALTH_OK);
        return;
    }
    for (;;) {
        char buf[256];
        ssize_t n = recv(hc->op.fd, buf, sizeof(buf), 0);
        int r = moved(hc, n);
        if (r < 0)
            return;
        if (r == 0)
            continue;
        r = health_expect_feed(cfg->expect, cfg->expect_len, &hc->got, buf, (size_t)n);
        if (r != 0) {
            finish(hc, r > 0 ? HEALTH_OK : HEALTH_MISMATCH);
            return;
        }
    }
}

static void on_io(struct poller *p, struct fdop *op, void *data)
{
    struct health_check *hc = data;
    if (hc->phase != HC_IDLE)
        advance(hc);
}

static struct health_check *checker_new(struct pool *pl, struct backend *b, struct poller *p)
{
    struct health_check *hc = calloc(1, sizeof(*hc));
    if (!hc)
        return NULL;
    hc->b = b;
    hc->pl = pl;
    hc->p = p;
    hc->phase = HC_IDLE;
    fdop_init(&hc->op, -1, &hc_ops, hc);
    timer_init(&hc->timer, on_timer, hc);
    return hc;
}

/* On hc's poller: arms the first check. */
static int checker_arm(struct health_check *hc)
{
    /* Spread the first checks over one interval instead of all at start. */
    uint64_t first = (clock_mono_ns() ^ (uintptr_t)hc) % (hc->pl->health_check.interval_ms + 1);
    return poller_timer_start(hc->p, &hc->timer, first);
}

int health_check_attach(struct pool *pl, struct backend *b, struct poller *p)
{
    struct health_check *hc = checker_new(pl, b, p);
    if (!hc)
        return -ENOMEM;
    b->hc = hc;
    return checker_arm(hc);
}

static void start_task(struct poller *p, struct poller_task *t, void *arg)
{
    struct health_check *hc = arg;
    if (checker_arm(hc) < 0)
        log_warn("pool %s backend %s: out of memory arming its health check", hc->pl->name,
                 hc->b->name);
}

int health_check_start_on(struct pool *pl, struct backend *b, struct poller *p)
{
    struct health_check *hc = checker_new(pl, b, p);
    if (!hc)
        return -ENOMEM;
    /* b->hc is set here, on the caller's thread, so that a health_check_stop_on
     * called later by the same (serialised) caller finds it and queues the stop
     * behind this start on the same inbox, even if the start has not run yet. */
    b->hc = hc;
    poller_task_init(&hc->start, start_task, hc);
    int err = poller_post(p, &hc->start);
    if (err) {
        b->hc = NULL;
        free(hc);
    }
    return err;
}

void health_check_detach(struct backend *b)
{
    struct health_check *hc = b->hc;
    if (!hc)
        return;
    if (hc->op.fd >= 0)
        close(poller_forget(hc->p, &hc->op));
    poller_timer_stop(hc->p, &hc->timer);
    b->hc = NULL;
    free(hc);
}

static void stop_task(struct poller *p, struct poller_task *t, void *arg)
{
    health_check_detach(arg); /* frees t too: it lives in the checker */
}

int health_check_stop_on(struct backend *b)
{
    struct health_check *hc = b->hc;
    if (!hc)
        return 0;
    poller_task_init(&hc->stop, stop_task, b);
    return poller_post(hc->p, &hc->stop);
}
