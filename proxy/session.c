/* proxy/session.c — a session's life on its sub-reactor: adoption, readiness
 * events, the starve list, idle timeout and close. The relay (backpressure,
 * half-close, reset forwarding) is the pump's (pump.c, proxy/pump.h);
 * upstream connects and retries are in session_dial.c. */
#define _GNU_SOURCE
#include "session.h"

#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

#include "backend.h"
#include "backend_latency.h"
#include "listener.h"
#include "pool.h"
#include "reactor/clock.h"
#include "reactor/pollmgr.h"
#include "reactor/random.h"
#include "sock.h"
#include "worker.h"

#define STARVE_RETRY_MS 10 /* how soon a session short of buffer memory reads again */

static void on_read(struct poller *p, struct fdop *op, void *data);
static void on_write(struct poller *p, struct fdop *op, void *data);
const struct fdop_ops session_io_ops = {.on_read = on_read, .on_write = on_write};

static void free_session(struct poller *p, struct poller_task *t, void *arg)
{
    struct session *s = arg;
    /* The last touch of s->pool: a reload frees a retired pool at 0. */
    pool_session_end(s->pool);
    free(s);
}

static int session_holds_bytes(const struct session *s)
{
    for (int d = 0; d < 2; d++)
        if (linkbuf_len(&s->side[d].in) || s->side[d].held)
            return 1;
    return 0;
}

void session_arm_timer(struct session *s)
{
    struct poller *p = s->w->poller;
    uint64_t idle_ms = s->pool->idle_timeout_ms;
    uint64_t at = idle_ms ? s->last_active_ms + idle_ms : UINT64_MAX;
    if (s->close_by_ms && s->close_by_ms < at)
        at = s->close_by_ms;
    if (at == UINT64_MAX)
        return;
    uint64_t now = poller_now_ms(p);
    poller_timer_start(p, &s->timer, at > now ? at - now : 0);
}

/* Nothing dropped: a FIN each way, as nginx closes on a timeout by default.
 * Bytes still buffered (a peer stopped reading) would be dropped: then both
 * sides must see a reset, not an end. */
static void close_timed_out(struct session *s, enum session_cause cause)
{
    session_set_cause(s, cause);
    session_close(s, session_holds_bytes(s) ? SESSION_RESET_BOTH : 0);
}

static void on_timer(void *loop, struct timer *t, void *data)
{
    struct session *s = data;
    struct poller *p = loop;
    if (s->state == SESSION_CONNECTING) {
        session_dial_failed(s, -ETIMEDOUT);
        return;
    }
    if (s->state == SESSION_INSPECTING) {
        session_inspect_timeout(s);
        return;
    }
    uint64_t now = poller_now_ms(p);
    if (s->close_by_ms && now >= s->close_by_ms) {
        counter_add(&s->w->c.max_age_closes, 1);
        close_timed_out(s, SESSION_CAUSE_MAX_AGE);
        return;
    }
    uint64_t idle_ms = s->pool->idle_timeout_ms;
    if (idle_ms && now - s->last_active_ms >= idle_ms) {
        counter_add(&s->w->c.idle_timeouts, 1);
        close_timed_out(s, SESSION_CAUSE_IDLE_TIMEOUT);
        return;
    }
    /* Activity only stamps last_active_ms; the timer re-arms here, lazily. */
    session_arm_timer(s);
}

static void adopt(struct poller *p, struct poller_task *t, void *arg)
{
    struct session *s = arg;
    struct worker *w = poller_user(p);
    struct pool *pl = s->pool;
    s->w = w;
    histogram_record(&w->adopt_wait, clock_mono_ns() - s->accepted_ns);
    for (int i = 0; i < 2; i++) {
        linkbuf_init(&s->side[i].in, poller_blocks(p), pl->buffer_low_watermark,
                     pl->buffer_high_watermark);
        s->side[i].span = 1;
    }
    timer_init(&s->timer, on_timer, s);
    s->last_active_ms = poller_now_ms(p);
    if (pl->max_session_age_ms) {
        /* ±10 % jitter: sessions opened together (a deploy, a reconnect
         * storm) do not all end together. */
        uint64_t age = pl->max_session_age_ms, spread = age / 5;
        s->close_by_ms =
            s->last_active_ms + age - age / 10 + (spread ? random_next() % (spread + 1) : 0);
    }
    s->next = w->sessions;
    if (w->sessions)
        w->sessions->prev = s;
    w->sessions = s;
    counter_add(&w->c.active_connections, 1);
    counter_add(&w->c.total_connections, 1);
    /* TCP_NODELAY came with the fd: accepted sockets inherit the listener's. */
    /* Not registered: closed here, as session_close only closes registered fds. */
    if (poller_register_or_close(p, &s->side[SIDE_CLIENT].op, POLL_READ | POLL_WRITE | POLL_EDGE)) {
        session_set_cause(s, SESSION_CAUSE_LIMIT); /* epoll or memory: this host's limit */
        session_close(s, 0);
        return;
    }
    if (s->listener->inspect) {
        session_inspect(s); /* reads what the listener needs first, then dials */
        return;
    }
    session_dial(s, NULL);
}

static struct session *session_new(struct listener *l, int fd, const struct sockaddr *peer,
                                   uint32_t source)
{
    struct session *s = calloc(1, sizeof(*s));
    if (!s)
        return NULL;
    s->listener = l;
    s->pool = l->pool;
    pool_session_begin(s->pool);
    s->client_key = pool_client_key(s->pool, peer);
    sock_addr_from(&s->client, peer);
    s->source = source;
    s->accepted_ns = clock_mono_ns();
    s->state = SESSION_NEW;
    fdop_init(&s->side[SIDE_CLIENT].op, fd, &session_io_ops, s);
    fdop_init(&s->side[SIDE_UPSTREAM].op, -1, &session_io_ops, s);
    poller_task_init(&s->task, adopt, s);
    return s;
}

/* A sub-reactor that accepted fd itself (accept "reuseport", "shared"): the session
 * starts on this poller at once. */
static int session_start_here(struct worker *w, struct listener *l, int fd,
                              const struct sockaddr *peer, uint32_t source)
{
    struct session *s = session_new(l, fd, peer, source);
    if (!s) {
        close(fd);
        return -ENOMEM;
    }
    adopt(w->poller, &s->task, s);
    return 0;
}

/* Posts the new session to sub-reactor to (the main reactor's pick, or
 * another sub-reactor's when the accepting one carries more than its share). */
static int session_handoff(struct poller *to, struct listener *l, int fd,
                           const struct sockaddr *peer, uint32_t source)
{
    struct session *s = session_new(l, fd, peer, source);
    if (!s) {
        close(fd);
        return -ENOMEM;
    }
    int err = poller_post(to, &s->task);
    if (err) {
        close(fd);
        pool_session_end(s->pool);
        free(s);
    }
    return err;
}

int session_accept(struct listener *l, struct poller *p, int fd, const struct sockaddr *peer,
                   uint32_t source, void *pollers)
{
    if (l->accept == CFG_ACCEPT_SHARED) {
        struct poller *to = pollmgr_keep_or_pick(pollers, p);
        if (to != p)
            return session_handoff(to, l, fd, peer, source);
    }
    return listener_on_subs(l) ? session_start_here(poller_user(p), l, fd, peer, source)
                               : session_handoff(pollmgr_pick(pollers), l, fd, peer, source);
}

void session_starve_retry(void *loop, struct timer *t, void *data)
{
    struct worker *w = data;
    /* The batch lives in the worker, not on this stack, so a session closed
     * while another one is pumped can unlink itself from it (unstarve). */
    w->retrying = w->starved;
    w->starved = NULL;
    struct session *s;
    while ((s = w->retrying)) {
        w->retrying = s->starved_next;
        s->starved = 0;
        s->starved_next = NULL;
        pump_session(s); /* may starve again: it re-queues itself on w->starved */
    }
}

void session_starve(struct session *s)
{
    struct worker *w = s->w;
    counter_add(&w->c.memory_starved, 1);
    if (s->starved)
        return;
    s->starved = 1;
    s->starved_next = w->starved;
    w->starved = s;
    if (!timer_armed(&w->starve_retry))
        poller_timer_start(w->poller, &w->starve_retry, STARVE_RETRY_MS);
}

static int unlink_from(struct session **pp, struct session *s)
{
    while (*pp && *pp != s)
        pp = &(*pp)->starved_next;
    if (!*pp)
        return 0;
    *pp = s->starved_next;
    return 1;
}

static void unstarve(struct session *s)
{
    if (!unlink_from(&s->w->starved, s))
        unlink_from(&s->w->retrying, s);
    s->starved = 0;
}

const char *session_cause_name(enum session_cause c)
{
    static const char *const names[SESSION_CAUSE_COUNT] = {
        [SESSION_CAUSE_NONE] = "none",
        [SESSION_CAUSE_CLIENT_EOF] = "client_eof",
        [SESSION_CAUSE_BACKEND_EOF] = "backend_eof",
        [SESSION_CAUSE_CLIENT_RESET] = "client_reset",
        [SESSION_CAUSE_BACKEND_RESET] = "backend_reset",
        [SESSION_CAUSE_IDLE_TIMEOUT] = "idle_timeout",
        [SESSION_CAUSE_CONNECT_FAILED] = "connect_failed",
        [SESSION_CAUSE_NO_BACKEND] = "no_backend",
        [SESSION_CAUSE_DRAIN_DEADLINE] = "drain_deadline",
        [SESSION_CAUSE_DISABLED] = "disabled",
        [SESSION_CAUSE_SHUTDOWN] = "shutdown",
        [SESSION_CAUSE_MAX_AGE] = "max_age",
        [SESSION_CAUSE_LIMIT] = "limit",
        [SESSION_CAUSE_INSPECT_FAILED] = "inspect_failed",
    };
    return (unsigned)c < SESSION_CAUSE_COUNT ? names[c] : "none";
}

void session_close(struct session *s, unsigned reset_sides)
{
    if (s->state == SESSION_CLOSED)
        return;
    struct worker *w = s->w;
    struct poller *p = w->poller;
    /* No cause named: both directions ended (the pump's normal end), and
     * the side whose EOF came first ended the session. */
    if (!s->cause && (s->side[SIDE_CLIENT].flags & SIDE_EOF_FIRST))
        session_set_cause(s, SESSION_CAUSE_CLIENT_EOF);
    else if (!s->cause && (s->side[SIDE_UPSTREAM].flags & SIDE_EOF_FIRST))
        session_set_cause(s, SESSION_CAUSE_BACKEND_EOF);
    session_log_close(s); /* while s->backend still names what it dialed */
    s->state = SESSION_CLOSED;
    for (int i = 0; i < 2; i++) {
        struct side *sd = &s->side[i];
        if (sd->op.fd >= 0) {
            if (reset_sides & (1u << i))
                sock_set_reset_on_close(sd->op.fd);
            close(poller_forget(p, &sd->op));
        }
        linkbuf_clear(&sd->in);
    }
    poller_timer_stop(p, &s->timer);
    if (s->starved)
        unstarve(s);
    pump_release(s);
    if (s->backend) {
        /* Before pool_done gives the slot back: a backend with no session
         * left may be deleted (and freed) by the admin. */
        if (s->connected_ns)
            backend_latency_record(s->backend, w->id, BACKEND_LATENCY_DURATION,
                                   clock_mono_ns() - s->accepted_ns);
        pool_done(s->pool, s->backend, POOL_FINISHED);
        s->backend = NULL;
    }
    source_limit_release(s->listener->sources, s->source);
    /* The last touch of s->listener: a reload frees a retired one at 0. */
    atomic_fetch_sub_explicit(&s->listener->active_connections, 1, memory_order_relaxed);
    counter_sub(&w->c.active_connections, 1);
    if (s->prev)
        s->prev->next = s->next;
    else
        w->sessions = s->next;
    if (s->next)
        s->next->prev = s->prev;
    poller_task_init(&s->task, free_session, s);
    poller_defer(p, &s->task);
}

void session_close_all(struct worker *w)
{
    session_shed(w, UINT_MAX); /* the shutdown grace is over: every one, at once */
}

unsigned session_shed(struct worker *w, unsigned max)
{
    unsigned n = 0;
    for (; w->sessions && n < max; n++) {
        session_set_cause(w->sessions, SESSION_CAUSE_SHUTDOWN);
        session_close(w->sessions, SESSION_RESET_BOTH); /* closing unlinks it */
    }
    return n;
}

unsigned session_close_on_backend(struct worker *w, const struct backend *b, unsigned max)
{
    unsigned n = 0;
    struct session *s = w->sessions;
    while (s && n < max) {
        struct session *next = s->next; /* closing unlinks s */
        if (s->backend == b) {
            session_set_cause(s, backend_state_now(b) == BACKEND_DISABLED
                                     ? SESSION_CAUSE_DISABLED
                                     : SESSION_CAUSE_DRAIN_DEADLINE);
            session_close(s, SESSION_RESET_BOTH);
            n++;
        }
        s = next;
    }
    return n;
}

void session_account(struct session *s, int d, size_t n)
{
    struct worker *w = s->w;
    if (d == SIDE_CLIENT) {
        counter_add(&w->c.bytes_in, n);
        s->bytes_in += n;
    } else {
        s->bytes_out += n;
        if (!s->first_byte_ns) {
            s->first_byte_ns = clock_mono_ns();
            backend_latency_record(s->backend, w->id, BACKEND_LATENCY_FIRST_BYTE,
                                   s->first_byte_ns - s->connected_ns);
        }
    }
    if (d == SIDE_CLIENT) {
        atomic_fetch_add_explicit(&s->backend->bytes_in, n, memory_order_relaxed);
    } else {
        counter_add(&w->c.bytes_out, n);
        atomic_fetch_add_explicit(&s->backend->bytes_out, n, memory_order_relaxed);
    }
}

/* An event on side i while the upstream connects is the dial's: 1 when it
 * took it. */
static inline int dial_takes(struct session *s, int i)
{
    if (i == SIDE_UPSTREAM && s->state == SESSION_CONNECTING) {
        session_dial_check(s);
        return 1;
    }
    return 0;
}

/* cppcheck-suppress constParameter ; the signature is fdop_cb's */
static void on_read(struct poller *p, struct fdop *op, void *data)
{
    struct session *s = data;
    int i = op == &s->side[SIDE_UPSTREAM].op;
    if (dial_takes(s, i))
        return;
    s->side[i].flags |= SIDE_RD_READY;
    if (op->revents & (POLL_EV_RDHUP | POLL_EV_HUP))
        s->side[i].flags |= SIDE_HUP;
    pump_session(s);
}

/* cppcheck-suppress constParameter ; the signature is fdop_cb's */
static void on_write(struct poller *p, struct fdop *op, void *data)
{
    struct session *s = data;
    int i = op == &s->side[SIDE_UPSTREAM].op;
    if (dial_takes(s, i))
        return;
    s->side[i].flags |= SIDE_WR_READY;
    /* Only the direction into this side can make progress on a write event. */
    if (linkbuf_len(&s->side[!i].in) || s->side[!i].held || (s->side[!i].flags & SIDE_EOF))
        pump_session(s);
}
