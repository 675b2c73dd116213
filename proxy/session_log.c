/* proxy/session_log.c — a session's lines in the connection log
 * (proxy/connlog.h): the record of a session, filled straight into its
 * poller's ring slot at close and, for long sessions, every
 * log.flush_interval_ms. Owner thread only; a full ring drops the line and
 * counts it (log_dropped), it never waits. */
#define _GNU_SOURCE
#include <string.h>

#include "backend.h"
#include "connlog.h"
#include "listener.h"
#include "pool.h"
#include "reactor/clock.h"
#include "session.h"
#include "sock.h"
#include "worker.h"

/* dst holds CONNLOG_NAME_MAX + 1 bytes; NULL or longer names are cut, as
 * the config never makes them. */
static void copy_name(char *dst, const char *src)
{
    size_t n = src ? strnlen(src, CONNLOG_NAME_MAX) : 0;
    memcpy(dst, src ? src : "", n);
    dst[n] = '\0';
}

static void fill(struct connlog_rec *r, const struct session *s, enum connlog_event ev,
                 uint64_t now_ns)
{
    const struct backend *b = s->backend;
    r->at_ns = now_ns;
    r->accepted_ns = s->accepted_ns;
    r->dial_started_ns = s->dial_started_ns;
    r->connected_ns = s->connected_ns;
    r->first_byte_ns = s->first_byte_ns;
    r->bytes_in = s->bytes_in;
    r->bytes_out = s->bytes_out;
    copy_name(r->listener, s->listener ? s->listener->name : NULL);
    copy_name(r->pool, s->pool ? s->pool->name : NULL);
    r->cause = ev == CONNLOG_CLOSE ? session_cause_name((enum session_cause)s->cause) : NULL;
    r->client = s->client;
    r->event = (uint8_t)ev;
    r->retries = s->attempts > 1 ? (uint8_t)(s->attempts - 1) : 0;
    /* The backend the session holds (connected, or being dialed); none after
     * every dial failed: may_retry gave it back. */
    const struct cfg_addrs *addrs =
        b ? atomic_load_explicit(&b->addrs, memory_order_acquire) : NULL;
    if (b && s->addr_index < addrs->n) {
        copy_name(r->backend, b->name);
        sock_addr_from(&r->backend_addr, (const struct sockaddr *)&addrs->a[s->addr_index].ss);
    } else {
        r->backend[0] = '\0';
        r->backend_addr.family = 0;
    }
}

static void put(struct session *s, enum connlog_event ev, uint64_t now_ns)
{
    struct worker *w = s->w;
    struct connlog_rec *r = logring_reserve(w->log);
    if (!r) {
        counter_add(&w->c.log_dropped, 1);
        return;
    }
    fill(r, s, ev, now_ns);
    logring_commit(w->log);
    counter_add(&w->c.log_lines, 1);
}

void session_log_close(struct session *s)
{
    if (s->w->log)
        put(s, CONNLOG_CLOSE, clock_mono_ns());
}

void session_log_flush(void *loop, struct timer *t, void *data)
{
    struct worker *w = data;
    uint64_t now = clock_mono_ns();
    uint64_t min_age_ns = (uint64_t)w->log_flush_ms * 1000000u;
    /* One walk per interval rather than a timer per session: a session gets
     * its first line within two intervals of its start, then one per interval. */
    for (struct session *s = w->sessions; s && w->log; s = s->next)
        if (now - s->accepted_ns >= min_age_ns)
            put(s, CONNLOG_FLUSH, now);
    poller_timer_start(w->poller, t, w->log_flush_ms);
}
