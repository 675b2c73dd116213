/* tests/unit/test_linkbuf.c — reactor/linkbuf.c: byte-exact round trips
 * across block boundaries against a flat reference, reserve/commit/skip/release
 * invariants, recvmsg/sendmsg through socketpairs, watermarks, the block cache. */
#define _GNU_SOURCE
#include <errno.h>
#include <stdint.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "check_main.h"
#include "reactor/linkbuf.h"

static uint64_t rng = 0x9e3779b97f4a7c15ull;
static uint64_t next_rand(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}

/* Reads lb into out (up to cap) through peek/skip/release in random steps. */
static size_t read_random(struct linkbuf *lb, unsigned char *out, size_t max)
{
    size_t got = 0;
    while (linkbuf_len(lb) && got < max) {
        struct iovec iov[LINKBUF_MAX_IOV];
        size_t avail;
        int n = linkbuf_peek(lb, iov, 1 + (int)(next_rand() % LINKBUF_MAX_IOV), &avail);
        ck_assert_int_gt(n, 0);
        size_t take = 1 + next_rand() % avail;
        if (take > max - got)
            take = max - got;
        size_t left = take;
        for (int i = 0; i < n && left; i++) {
            size_t k = iov[i].iov_len < left ? iov[i].iov_len : left;
            memcpy(out + got, iov[i].iov_base, k);
            got += k;
            left -= k;
        }
        linkbuf_skip(lb, take);
        linkbuf_release(lb);
    }
    return got;
}

START_TEST(random_round_trip_matches_reference)
{
    struct lb_cache cache;
    lb_cache_init(&cache, 64);
    struct linkbuf lb;
    linkbuf_init(&lb, &cache, 1000, 100000);
    enum { TOTAL = 8 << 20 };
    unsigned char *src = malloc(TOTAL), *dst = malloc(TOTAL);
    for (size_t i = 0; i < TOTAL; i++)
        src[i] = (unsigned char)next_rand();
    size_t written = 0, read = 0;
    for (int round = 0; round < 100000 && read < TOTAL; round++) {
        if (written < TOTAL && (next_rand() & 1)) {
            struct iovec iov[LINKBUF_MAX_IOV];
            size_t want = 1 + next_rand() % (3 * LINKBUF_BLOCK_DATA);
            int n = linkbuf_reserve(&lb, want, iov, 1 + (int)(next_rand() % LINKBUF_MAX_IOV));
            ck_assert_int_gt(n, 0);
            size_t booked = 0;
            for (int i = 0; i < n; i++)
                booked += iov[i].iov_len;
            size_t commit = next_rand() % (booked + 1);
            if (commit > TOTAL - written)
                commit = TOTAL - written;
            size_t left = commit;
            for (int i = 0; i < n && left; i++) {
                size_t k = iov[i].iov_len < left ? iov[i].iov_len : left;
                memcpy(iov[i].iov_base, src + written + (commit - left), k);
                left -= k;
            }
            size_t before = linkbuf_len(&lb);
            linkbuf_commit(&lb, commit);
            written += commit;
            ck_assert_uint_eq(linkbuf_len(&lb), before + commit);
        } else {
            size_t max = 1 + next_rand() % (2 * LINKBUF_BLOCK_DATA);
            read += read_random(&lb, dst + read, max);
        }
        ck_assert_uint_eq(linkbuf_len(&lb), written - read);
        if (linkbuf_len(&lb) == 0)
            ck_assert_ptr_null(lb.head);
    }
    read += read_random(&lb, dst + read, TOTAL - read);
    ck_assert_uint_eq(read, written);
    ck_assert_int_eq(memcmp(src, dst, read), 0);
    ck_assert_ptr_null(lb.head);
    ck_assert_uint_eq(atomic_load(&cache.in_use), 0);
    linkbuf_clear(&lb);
    lb_cache_free(&cache);
    free(src);
    free(dst);
}
END_TEST

START_TEST(empty_buffer_holds_no_block)
{
    struct lb_cache cache;
    lb_cache_init(&cache, 8);
    struct linkbuf lb;
    linkbuf_init(&lb, &cache, 10, 100);
    struct iovec iov[4];
    ck_assert_int_eq(linkbuf_reserve(&lb, 10, iov, 4), 1);
    ck_assert_uint_eq(atomic_load(&cache.in_use), 1);
    linkbuf_commit(&lb, 0); /* a read that found nothing */
    ck_assert_ptr_null(lb.head);
    ck_assert_uint_eq(atomic_load(&cache.in_use), 0);
    ck_assert_uint_eq(atomic_load(&cache.cached), 1);

    ck_assert_int_eq(linkbuf_reserve(&lb, 5, iov, 4), 1);
    memcpy(iov[0].iov_base, "hello", 5);
    linkbuf_commit(&lb, 5);
    ck_assert_uint_eq(linkbuf_len(&lb), 5);
    linkbuf_skip(&lb, 5);
    linkbuf_release(&lb);
    ck_assert_ptr_null(lb.head);
    ck_assert_uint_eq(atomic_load(&cache.in_use), 0);
    lb_cache_free(&cache);
    ck_assert_uint_eq(atomic_load(&cache.cached), 0);
}
END_TEST

START_TEST(reserve_spans_blocks_and_release_frees_consumed)
{
    struct lb_cache cache;
    lb_cache_init(&cache, 8);
    struct linkbuf lb;
    linkbuf_init(&lb, &cache, 10, 100);
    struct iovec iov[LINKBUF_MAX_IOV];
    int n = linkbuf_reserve(&lb, 3 * LINKBUF_BLOCK_DATA, iov, LINKBUF_MAX_IOV);
    ck_assert_int_eq(n, 3);
    for (int i = 0; i < n; i++)
        ck_assert_uint_eq(iov[i].iov_len, LINKBUF_BLOCK_DATA);
    linkbuf_commit(&lb, 2 * LINKBUF_BLOCK_DATA + 7);
    ck_assert_uint_eq(atomic_load(&cache.in_use), 3);
    /* The next booking continues in the third block, after the 7 bytes. */
    n = linkbuf_reserve(&lb, 1, iov, LINKBUF_MAX_IOV);
    ck_assert_int_eq(n, 1);
    ck_assert_uint_eq(iov[0].iov_len, LINKBUF_BLOCK_DATA - 7);
    linkbuf_commit(&lb, 0);
    linkbuf_skip(&lb, LINKBUF_BLOCK_DATA + 1);
    linkbuf_release(&lb);
    ck_assert_uint_eq(atomic_load(&cache.in_use), 2);
    /* A peek limited to one iovec still shows the rest of block two. */
    size_t bytes;
    ck_assert_int_eq(linkbuf_peek(&lb, iov, 1, &bytes), 1);
    ck_assert_uint_eq(bytes, LINKBUF_BLOCK_DATA - 1);
    linkbuf_clear(&lb);
    ck_assert_uint_eq(atomic_load(&cache.in_use), 0);
    lb_cache_free(&cache);
}
END_TEST

START_TEST(cache_reuses_blocks_and_frees_beyond_cap)
{
    struct lb_cache cache;
    lb_cache_init(&cache, 4);
    struct linkbuf lb;
    linkbuf_init(&lb, &cache, 10, 100);
    struct iovec iov[LINKBUF_MAX_IOV];
    ck_assert_int_eq(linkbuf_reserve(&lb, 10 * LINKBUF_BLOCK_DATA, iov, LINKBUF_MAX_IOV), 10);
    void *first = iov[0].iov_base;
    linkbuf_commit(&lb, 10 * LINKBUF_BLOCK_DATA);
    ck_assert_uint_eq(atomic_load(&cache.in_use), 10);
    linkbuf_clear(&lb);
    ck_assert_uint_eq(atomic_load(&cache.in_use), 0);
    ck_assert_uint_eq(atomic_load(&cache.cached), 4);
    /* Cached blocks come back first (LIFO): no malloc on the hot path. */
    ck_assert_int_eq(linkbuf_reserve(&lb, 1, iov, 1), 1);
    ck_assert_uint_eq(atomic_load(&cache.cached), 3);
    (void)first;
    linkbuf_commit(&lb, 0);
    lb_cache_free(&cache);
}
END_TEST

static void use_blocks(struct linkbuf *lb, int n, void **bases)
{
    struct iovec iov[LINKBUF_MAX_IOV];
    ck_assert_int_eq(linkbuf_reserve(lb, (size_t)n * LINKBUF_BLOCK_DATA, iov, LINKBUF_MAX_IOV), n);
    for (int i = 0; bases && i < n; i++)
        bases[i] = iov[i].iov_base;
    linkbuf_commit(lb, (size_t)n * LINKBUF_BLOCK_DATA);
    linkbuf_clear(lb);
}

START_TEST(cache_trim_frees_what_a_period_did_not_need)
{
    struct lb_cache cache;
    lb_cache_init(&cache, 64);
    struct linkbuf lb;
    linkbuf_init(&lb, &cache, 10, 1u << 30);
    use_blocks(&lb, 16, NULL); /* a burst */
    ck_assert_uint_eq(atomic_load(&cache.cached), 16);
    /* The cache was empty during the burst's period: nothing sat idle all along. */
    ck_assert_uint_eq(lb_cache_trim(&cache), 0);
    ck_assert_uint_eq(atomic_load(&cache.cached), 16);
    /* Steady use of 4 blocks through the next period: 12 were never needed. */
    void *hot[4], *again[4];
    for (int i = 0; i < 3; i++)
        use_blocks(&lb, 4, hot);
    ck_assert_uint_eq(lb_cache_trim(&cache), 12);
    ck_assert_uint_eq(atomic_load(&cache.cached), 4);
    use_blocks(&lb, 4, again); /* the hot blocks were kept, the cold ones freed */
    for (int i = 0; i < 4; i++) {
        int found = 0;
        for (int j = 0; j < 4; j++)
            found |= again[i] == hot[j];
        ck_assert_msg(found, "block %d was not one of the hot ones", i);
    }
    /* A quiet period: the rest goes; an empty cache stays empty and usable. */
    ck_assert_uint_eq(lb_cache_trim(&cache), 0); /* used in this period */
    ck_assert_uint_eq(lb_cache_trim(&cache), 4);
    ck_assert_uint_eq(atomic_load(&cache.cached), 0);
    ck_assert_uint_eq(lb_cache_trim(&cache), 0);
    use_blocks(&lb, 2, NULL);
    ck_assert_uint_eq(atomic_load(&cache.cached), 2);
    lb_cache_free(&cache);
}
END_TEST

START_TEST(watermarks)
{
    struct lb_cache cache;
    lb_cache_init(&cache, 4);
    struct linkbuf lb;
    linkbuf_init(&lb, &cache, 100, 1000);
    struct iovec iov[LINKBUF_MAX_IOV];
    ck_assert(linkbuf_below_low(&lb));
    ck_assert(!linkbuf_above_high(&lb));
    linkbuf_reserve(&lb, 1000, iov, LINKBUF_MAX_IOV);
    linkbuf_commit(&lb, 999);
    ck_assert(!linkbuf_above_high(&lb));
    ck_assert(!linkbuf_below_low(&lb));
    linkbuf_reserve(&lb, 1, iov, LINKBUF_MAX_IOV);
    linkbuf_commit(&lb, 1);
    ck_assert(linkbuf_above_high(&lb));
    linkbuf_skip(&lb, 900);
    ck_assert(linkbuf_below_low(&lb));
    linkbuf_clear(&lb);
    lb_cache_free(&cache);
}
END_TEST

START_TEST(recv_send_through_a_socketpair)
{
    int a[2], b[2];
    ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, a), 0);
    ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, b), 0);
    struct lb_cache cache;
    lb_cache_init(&cache, 16);
    struct linkbuf lb;
    linkbuf_init(&lb, &cache, 0, 1 << 20);
    enum { TOTAL = 2 << 20 };
    unsigned char *src = malloc(TOTAL), *dst = malloc(TOTAL);
    for (size_t i = 0; i < TOTAL; i++)
        src[i] = (unsigned char)next_rand();
    size_t sent = 0, got = 0;
    for (int round = 0; round < 1000000 && got < TOTAL; round++) {
        if (sent < TOTAL) {
            ssize_t w = write(a[1], src + sent, TOTAL - sent);
            if (w > 0)
                sent += (size_t)w;
        }
        ssize_t r = linkbuf_recv_from(&lb, a[0], 1 + next_rand() % (4 * LINKBUF_BLOCK_DATA), NULL);
        ck_assert(r > 0 || r == -EAGAIN);
        ssize_t w = linkbuf_send_to(&lb, b[1]);
        ck_assert(w >= 0 || w == -EAGAIN);
        ssize_t g = read(b[0], dst + got, TOTAL - got);
        if (g > 0)
            got += (size_t)g;
    }
    ck_assert_uint_eq(got, TOTAL);
    ck_assert_int_eq(memcmp(src, dst, TOTAL), 0);
    /* A vanished peer is EPIPE, not SIGPIPE (the test would die). */
    close(b[0]);
    ck_assert_int_eq(linkbuf_recv_from(&lb, a[0], 10, NULL), -EAGAIN);
    close(a[1]);
    ck_assert_int_eq(linkbuf_recv_from(&lb, a[0], 10, NULL), 0); /* EOF */
    ck_assert_ptr_null(lb.head); /* an empty buffer holds no block */
    struct iovec iov[1];
    linkbuf_reserve(&lb, 1, iov, 1);
    linkbuf_commit(&lb, 1);
    ck_assert_int_eq(linkbuf_send_to(&lb, b[1]), -EPIPE);
    linkbuf_clear(&lb);
    close(a[0]);
    close(b[1]);
    lb_cache_free(&cache);
    free(src);
    free(dst);
}
END_TEST

static Suite *make_suite(void)
{
    Suite *s = suite_create("linkbuf");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, random_round_trip_matches_reference);
    tcase_add_test(tc, empty_buffer_holds_no_block);
    tcase_add_test(tc, reserve_spans_blocks_and_release_frees_consumed);
    tcase_add_test(tc, cache_reuses_blocks_and_frees_beyond_cap);
    tcase_add_test(tc, cache_trim_frees_what_a_period_did_not_need);
    tcase_add_test(tc, watermarks);
    tcase_add_test(tc, recv_send_through_a_socketpair);
    suite_add_tcase(s, tc);
    return s;
}
