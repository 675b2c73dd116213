/* tests/unit/test_connlog.c — proxy/connlog.c: a record becomes one exact
 * JSON line (times, nulls for what never happened, escaping); the logger
 * thread writes what the rings hold, everything left at its stop included,
 * and after a reopen writes to the new file at the path while the renamed
 * one stops growing. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "check_main.h"
#include "proxy/connlog.h"
#include "proxy/sock.h"

static void addr4(struct sock_addr *a, const char *ip, unsigned port)
{
    struct sockaddr_in sin = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    inet_pton(AF_INET, ip, &sin.sin_addr);
    sock_addr_from(a, (const struct sockaddr *)&sin);
}

static void sample(struct connlog_rec *r)
{
    memset(r, 0, sizeof(*r));
    r->accepted_ns = 1000000000;     /* mono 1 s */
    r->dial_started_ns = 1000500000; /* +0.5 ms */
    r->connected_ns = 1001750000;    /* connect 1.25 ms */
    r->first_byte_ns = 1003750123;   /* first byte 2.000123 ms later */
    r->at_ns = 2500000000;           /* duration 1.5 s */
    r->bytes_in = 12;
    r->bytes_out = 3456;
    strcpy(r->listener, "redis");
    strcpy(r->pool, "cache");
    r->cause = "backend_eof";
    addr4(&r->client, "192.0.2.7", 40000);
    addr4(&r->backend_addr, "10.0.0.1", 6379);
    strcpy(r->backend, "r1");
    r->event = CONNLOG_CLOSE;
    r->retries = 2;
}

/* Wall clock = mono + this: mono 2.5 s is 2026-12-01T18:00:00.250Z. */
#define OFFSET_NS (1796148000LL * 1000000000LL - 2250000000LL)

START_TEST(a_record_is_one_exact_line)
{
    struct connlog_rec r;
    char buf[2048];
    sample(&r);
    size_t n = connlog_format(&r, OFFSET_NS, buf, sizeof(buf));
    const char *want =
        "{\"time\":\"2026-12-01T18:00:00.250Z\",\"event\":\"close\",\"listener\":\"redis\","
        "\"pool\":\"cache\",\"client\":\"192.0.2.7:40000\",\"backend\":\"r1\","
        "\"backend_address\":\"10.0.0.1:6379\",\"bytes_in\":12,\"bytes_out\":3456,"
        "\"connect_ms\":1.250,\"first_byte_ms\":2.000,\"duration_ms\":1500.000,\"retries\":2,"
        "\"cause\":\"backend_eof\"}\n";
    ck_assert_str_eq(buf, want);
    ck_assert_uint_eq(n, strlen(want));
    ck_assert_uint_eq(connlog_format(&r, OFFSET_NS, buf, 100), 0); /* too short: nothing */
}
END_TEST

START_TEST(what_never_happened_is_null)
{
    struct connlog_rec r;
    char buf[2048];
    sample(&r);
    r.connected_ns = 0; /* never connected: no connect or first byte time */
    r.first_byte_ns = 0;
    r.backend[0] = '\0';
    r.backend_addr.family = 0;
    r.pool[0] = '\0';
    r.event = CONNLOG_FLUSH;
    r.cause = NULL;
    connlog_format(&r, OFFSET_NS, buf, sizeof(buf));
    ck_assert_ptr_nonnull(strstr(buf, "\"event\":\"flush\""));
    ck_assert_ptr_nonnull(strstr(buf, "\"pool\":null"));
    ck_assert_ptr_nonnull(strstr(buf, "\"backend\":null,\"backend_address\":null"));
    ck_assert_ptr_nonnull(strstr(buf, "\"connect_ms\":null,\"first_byte_ms\":null"));
    ck_assert_ptr_nonnull(strstr(buf, "\"cause\":null}"));
    /* A first byte but no connect time: still null, never a negative. */
    r.first_byte_ns = 5;
    connlog_format(&r, OFFSET_NS, buf, sizeof(buf));
    ck_assert_ptr_nonnull(strstr(buf, "\"first_byte_ms\":null"));
}
END_TEST

START_TEST(strings_stay_json)
{
    struct connlog_rec r;
    char buf[2048];
    sample(&r);
    strcpy(r.listener, "a\"b\\c\n");
    connlog_format(&r, OFFSET_NS, buf, sizeof(buf));
    ck_assert_ptr_nonnull(strstr(buf, "\"listener\":\"a\\\"b\\\\c\\u000a\""));
}
END_TEST

static size_t count_lines(const char *path)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return 0;
    size_t n = 0;
    int ch;
    while ((ch = fgetc(f)) != EOF)
        n += ch == '\n';
    fclose(f);
    return n;
}

static void put_lines(struct logring *ring, int n)
{
    for (int i = 0; i < n; i++) {
        struct connlog_rec *r;
        while (!(r = logring_reserve(ring))) {
            struct timespec ms = {0, 1000000};
            nanosleep(&ms, NULL); /* a test may wait; a poller never does */
        }
        sample(r);
        logring_commit(ring);
    }
}

static int wait_lines(const char *path, size_t n)
{
    for (int i = 0; i < 5000 && count_lines(path) < n; i++) {
        struct timespec ms = {0, 2000000};
        nanosleep(&ms, NULL);
    }
    return count_lines(path) == n;
}

START_TEST(the_logger_writes_reopens_and_empties_the_rings_at_stop)
{
    char dir[] = "/tmp/sluice-connlog-XXXXXX";
    ck_assert_ptr_nonnull(mkdtemp(dir));
    char path[256], rotated[256];
    snprintf(path, sizeof(path), "%s/conn.log", dir);
    snprintf(rotated, sizeof(rotated), "%s/conn.log.1", dir);
    struct cfg_log cfg = {.connections = 1, .path = path, .ring_size = 8};
    struct connlog *l = NULL;
    ck_assert_int_eq(connlog_create(&cfg, 2, &l), 0);
    ck_assert_ptr_null(connlog_ring(l, 2));
    ck_assert_int_eq(connlog_start(l), 0);
    put_lines(connlog_ring(l, 0), 20); /* more than a ring holds: the logger keeps up */
    put_lines(connlog_ring(l, 1), 5);
    ck_assert(wait_lines(path, 25));

    ck_assert_int_eq(rename(path, rotated), 0);
    connlog_reopen(l);
    struct stat st;
    for (int i = 0; i < 5000 && stat(path, &st) != 0; i++) {
        struct timespec ms = {0, 2000000};
        nanosleep(&ms, NULL);
    }
    ck_assert_int_eq(stat(path, &st), 0);
    put_lines(connlog_ring(l, 1), 3);
    ck_assert(wait_lines(path, 3));
    ck_assert_uint_eq(count_lines(rotated), 25);

    /* Lines still in a ring when the logger stops are written, not lost. */
    put_lines(connlog_ring(l, 0), 8);
    connlog_destroy(l);
    ck_assert_uint_eq(count_lines(path), 11);
    unlink(path);
    unlink(rotated);
    rmdir(dir);
}
END_TEST

START_TEST(an_unopenable_path_fails_the_create)
{
    struct cfg_log cfg = {.connections = 1, .path = "/nonexistent-dir/x/conn.log", .ring_size = 4};
    struct connlog *l = NULL;
    ck_assert_int_lt(connlog_create(&cfg, 1, &l), 0);
    ck_assert_ptr_null(l);
}
END_TEST

static Suite *make_suite(void)
{
    Suite *s = suite_create("connlog");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, a_record_is_one_exact_line);
    tcase_add_test(tc, what_never_happened_is_null);
    tcase_add_test(tc, strings_stay_json);
    tcase_add_test(tc, the_logger_writes_reopens_and_empties_the_rings_at_stop);
    tcase_add_test(tc, an_unopenable_path_fails_the_create);
    suite_add_tcase(s, tc);
    return s;
}
