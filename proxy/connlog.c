/* proxy/connlog.c — the connection log's logger thread (proxy/connlog.h):
 * owns the rings, the file and its reopening, and the JSON formatting. The
 * pollers only fill ring slots; every syscall and every byte of formatting
 * is this thread's. Why format here and not on the poller: a record is a
 * ~300-byte copy of fields the session already holds, whereas a formatted
 * line costs a microsecond or more of snprintf on the data path; the logger
 * thread has the time, and a dropped record costs nothing to format. */
#define _GNU_SOURCE
#include "connlog.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdalign.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "reactor/clock.h"
#include "sock.h"

#define CONNLOG_IDLE_SLEEP_MS 10          /* a pass that found nothing sleeps this long */
#define CONNLOG_BATCH_BYTES   (64 * 1024) /* lines gathered per write(2) */
#define CONNLOG_LINE_MAX      2048        /* a line's worst case fits easily */
#define CONNLOG_FILE_MODE     0640

/* README "Connection log" states the slot size (ring_size's memory). */
_Static_assert(sizeof(struct connlog_rec) == 304, "a ring slot is 304 bytes");

struct connlog {
    struct logring *rings; /* owned array */
    size_t nrings;
    char *path; /* owned; NULL: stdout */
    int fd;     /* the file (owned), or STDOUT_FILENO */
    atomic_int reopen;
    atomic_int stop;
    pthread_t thread;
    int started;
    int write_failing; /* a failed write was reported; quiet until one succeeds */
    size_t len;        /* bytes waiting in batch */
    char batch[CONNLOG_BATCH_BYTES];
};

static int open_log(const char *path)
{
    int fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, CONNLOG_FILE_MODE);
    return fd < 0 ? -errno : fd;
}

int connlog_create(const struct cfg_log *cfg, size_t nrings, struct connlog **out)
{
    int err = -ENOMEM;
    struct connlog *l = calloc(1, sizeof(*l));
    if (!l)
        return -ENOMEM;
    l->fd = -1;
    if (cfg->path && !(l->path = strdup(cfg->path)))
        goto fail;
    /* Cache-line aligned (struct logring's alignas), which calloc does not promise. */
    size_t bytes = nrings * sizeof(*l->rings);
    if (!nrings || !(l->rings = aligned_alloc(alignof(struct logring), bytes)))
        goto fail;
    memset(l->rings, 0, bytes);
    for (; l->nrings < nrings; l->nrings++)
        if ((err = logring_init(&l->rings[l->nrings], cfg->ring_size, sizeof(struct connlog_rec))))
            goto fail;
    if (!l->path) {
        l->fd = STDOUT_FILENO;
    } else if ((l->fd = open_log(l->path)) < 0) {
        err = l->fd;
        l->fd = -1;
        log_error("log.path: cannot open \"%s\": %s", l->path, strerror(-err));
        goto fail;
    }
    *out = l;
    return 0;
fail:
    connlog_destroy(l);
    return err;
}

struct logring *connlog_ring(struct connlog *l, size_t i)
{
    return i < l->nrings ? &l->rings[i] : NULL;
}

void connlog_reopen(struct connlog *l)
{
    if (l)
        atomic_store(&l->reopen, 1);
}

/* Logger thread: the new file first, so a failed open keeps the old one. */
static void reopen_now(struct connlog *l)
{
    if (!l->path)
        return;
    int fd = open_log(l->path);
    if (fd < 0) {
        log_warn("log.path: cannot reopen \"%s\": %s; writing on to the old file", l->path,
                 strerror(-fd));
        return;
    }
    close(l->fd);
    l->fd = fd;
    log_info("connection log reopened: %s", l->path);
}

/* Logger thread: writes the batch. A failed write loses it (the next one
 * may succeed: a full disk frees up); the first failure of a run is logged. */
static void write_batch(struct connlog *l)
{
    size_t off = 0;
    while (off < l->len) {
        ssize_t n = write(l->fd, l->batch + off, l->len - off);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            if (!l->write_failing)
                log_warn("connection log: write failed: %s; lines are lost until it works",
                         n < 0 ? strerror(errno) : "nothing written");
            l->write_failing = 1;
            break;
        }
        off += (size_t)n;
    }
    if (off == l->len)
        l->write_failing = 0;
    l->len = 0;
}

/* Logger thread: one pass over every ring; returns how many lines it took. */
static size_t drain(struct connlog *l)
{
    struct timespec real;
    clock_gettime(CLOCK_REALTIME, &real);
    int64_t offset = (int64_t)real.tv_sec * 1000000000 + real.tv_nsec - (int64_t)clock_mono_ns();
    size_t lines = 0;
    for (size_t i = 0; i < l->nrings; i++) {
        struct logring *r = &l->rings[i];
        const struct connlog_rec *rec;
        /* At most one ring's worth per pass, so a busy ring cannot starve the others. */
        for (size_t k = 0; k < r->nslots && (rec = logring_peek(r)); k++) {
            if (sizeof(l->batch) - l->len < CONNLOG_LINE_MAX)
                write_batch(l);
            l->len += connlog_format(rec, offset, l->batch + l->len, sizeof(l->batch) - l->len);
            logring_release(r);
            lines++;
        }
    }
    if (l->len)
        write_batch(l);
    return lines;
}

static void *logger(void *arg)
{
    struct connlog *l = arg;
    const struct timespec idle = {0, CONNLOG_IDLE_SLEEP_MS * 1000000L};
    while (!atomic_load(&l->stop)) {
        if (atomic_exchange(&l->reopen, 0))
            reopen_now(l);
        if (drain(l) == 0)
            nanosleep(&idle, NULL);
    }
    /* The producers have stopped: what is left is all there will be. */
    while (drain(l))
        ;
    return NULL;
}

int connlog_start(struct connlog *l)
{
    int err = pthread_create(&l->thread, NULL, logger, l);
    if (err)
        return -err;
    pthread_setname_np(l->thread, "sluice-log");
    l->started = 1;
    return 0;
}

void connlog_destroy(struct connlog *l)
{
    if (!l)
        return;
    if (l->started) {
        atomic_store(&l->stop, 1);
        pthread_join(l->thread, NULL);
    }
    if (l->fd >= 0 && l->fd != STDOUT_FILENO)
        close(l->fd);
    for (size_t i = 0; i < l->nrings; i++)
        logring_fini(&l->rings[i]);
    free(l->rings);
    free(l->path);
    free(l);
}

/* A line being built in a caller's buffer; `full` once something did not fit. */
struct out {
    char *p;
    size_t len, cap;
    int full;
};

__attribute__((format(printf, 2, 3))) static void put(struct out *o, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = o->full ? -1 : vsnprintf(o->p + o->len, o->cap - o->len, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= o->cap - o->len)
        o->full = 1;
    else
        o->len += (size_t)n;
}

/* What a JSON string must escape: '"', '\\' and the control characters. */
static const char ESCAPED[] = "\"\\\x01\x02\x03\x04\x05\x06\x07\x08\x09\x0a\x0b\x0c\x0d\x0e\x0f"
                              "\x10\x11\x12\x13\x14\x15\x16\x17\x18\x19\x1a\x1b\x1c\x1d\x1e\x1f";

/* A JSON string, or null. Names are identifiers (config/config_json.c's
 * cfg_get_name) but are escaped anyway: a line must stay valid JSON. */
static void put_str(struct out *o, const char *s)
{
    if (!s) {
        put(o, "null");
        return;
    }
    put(o, "\"");
    while (*s) {
        size_t n = strcspn(s, ESCAPED);
        put(o, "%.*s", (int)n, s);
        s += n;
        if (!*s)
            break;
        unsigned char ch = (unsigned char)*s++;
        put(o, ch == '"' || ch == '\\' ? "\\%c" : "\\u%04x", ch);
    }
    put(o, "\"");
}

/* A duration in ms with µs precision (integers only: exact), or null when
 * either end is missing. */
static void put_ms(struct out *o, uint64_t from_ns, uint64_t to_ns)
{
    if (!from_ns || !to_ns || to_ns < from_ns) {
        put(o, "null");
        return;
    }
    uint64_t us = (to_ns - from_ns) / 1000;
    put(o, "%llu.%03llu", (unsigned long long)(us / 1000), (unsigned long long)(us % 1000));
}

static void put_addr(struct out *o, const struct sock_addr *a)
{
    char text[64];
    if (!a->family) {
        put(o, "null");
        return;
    }
    sock_addr_format(a, text, sizeof(text));
    put_str(o, text);
}

/* RFC 3339, UTC, milliseconds: 2026-12-01T18:25:17.123Z */
static void put_time(struct out *o, int64_t real_ns)
{
    time_t sec = (time_t)(real_ns / 1000000000);
    struct tm tm;
    char text[32];
    gmtime_r(&sec, &tm);
    strftime(text, sizeof(text), "%Y-%m-%dT%H:%M:%S", &tm);
    put(o, "\"%s.%03dZ\"", text, (int)(real_ns % 1000000000 / 1000000));
}

size_t connlog_format(const struct connlog_rec *rec, int64_t mono_to_real_ns, char *buf, size_t len)
{
    struct out o = {buf, 0, len, 0};
    put(&o, "{\"time\":");
    put_time(&o, (int64_t)rec->at_ns + mono_to_real_ns);
    put(&o, ",\"event\":\"%s\",\"listener\":", rec->event == CONNLOG_FLUSH ? "flush" : "close");
    put_str(&o, rec->listener[0] ? rec->listener : NULL);
    put(&o, ",\"pool\":");
    put_str(&o, rec->pool[0] ? rec->pool : NULL);
    put(&o, ",\"client\":");
    put_addr(&o, &rec->client);
    put(&o, ",\"backend\":");
    put_str(&o, rec->backend[0] ? rec->backend : NULL);
    put(&o, ",\"backend_address\":");
    put_addr(&o, &rec->backend_addr);
    put(&o,
        ",\"bytes_in\":%llu,\"bytes_out\":%llu,\"connect_ms\":", (unsigned long long)rec->bytes_in,
        (unsigned long long)rec->bytes_out);
    put_ms(&o, rec->dial_started_ns, rec->connected_ns);
    put(&o, ",\"first_byte_ms\":");
    put_ms(&o, rec->connected_ns, rec->first_byte_ns);
    put(&o, ",\"duration_ms\":");
    put_ms(&o, rec->accepted_ns, rec->at_ns);
    put(&o, ",\"retries\":%u,\"cause\":", rec->retries);
    put_str(&o, rec->cause);
    put(&o, "}\n");
    return o.full ? 0 : o.len;
}
