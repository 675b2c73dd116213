/* tests/fuzz/fuzz_linkbuf.c — linkbuf driven by a byte-coded program of
 * reserve/commit, peek, skip, release and clear, checked at every step
 * against a flat reference queue. The block cache has a small cap and a limit
 * so the ENOMEM paths run too. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "reactor/linkbuf.h"

#define REF_MAX (4u << 20)

static unsigned char ref[REF_MAX];
static size_t ref_head, ref_len;
static unsigned char next_byte;
static unsigned char pattern[LINKBUF_BLOCK_SIZE + 256]; /* pattern[i] == (uint8_t)i */

/* Full: every peeked byte against the reference. Quick: lengths, the empty
 * rule and the first bytes only (run after every op; the full one on op 3
 * and at the end, so long programs stay fast). */
static void check(const struct linkbuf *lb, int full)
{
    if (linkbuf_len(lb) != ref_len)
        abort();
    if (!full) {
        struct iovec iov[1];
        size_t bytes;
        int n = linkbuf_peek(lb, iov, 1, &bytes);
        size_t k = n ? (iov[0].iov_len < 64 ? iov[0].iov_len : 64) : 0;
        if ((ref_len && !n) || (k && memcmp(iov[0].iov_base, ref + ref_head, k)))
            abort();
        if (ref_len == 0 && lb->head)
            abort();
        return;
    }
    struct iovec iov[LINKBUF_MAX_IOV];
    size_t bytes;
    int n = linkbuf_peek(lb, iov, LINKBUF_MAX_IOV, &bytes);
    size_t off = 0;
    for (int i = 0; i < n; i++) {
        if (iov[i].iov_len == 0 || memcmp(iov[i].iov_base, ref + ref_head + off, iov[i].iov_len))
            abort();
        off += iov[i].iov_len;
    }
    if (off != bytes || bytes > ref_len || (ref_len && !n))
        abort();
    if (ref_len == 0 && lb->head)
        abort(); /* an empty linkbuf holds no block */
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (pattern[1] == 0)
        for (size_t i = 0; i < sizeof(pattern); i++)
            pattern[i] = (unsigned char)i;
    struct lb_cache cache;
    lb_cache_init(&cache, 4);
    lb_cache_set_limit(&cache, 1 + (size ? data[0] % 24 : 8));
    struct linkbuf lb;
    linkbuf_init(&lb, &cache, 100, 100000);
    ref_head = ref_len = 0;
    for (size_t i = 1; i + 2 < size; i += 3) {
        unsigned arg = (unsigned)data[i + 1] << 8 | data[i + 2];
        switch (data[i] % 5) {
        case 0: {                          /* reserve + commit: arg scaled to span several blocks */
            size_t want = (size_t)arg + 1; /* up to 4 blocks */
            struct iovec iov[LINKBUF_MAX_IOV];
            int n = linkbuf_reserve(&lb, want, iov, 1 + data[i] % LINKBUF_MAX_IOV);
            if (n < 0) {
                if (atomic_load(&cache.in_use) < cache.limit)
                    abort(); /* ENOMEM only at the limit */
                break;
            }
            size_t booked = 0;
            for (int k = 0; k < n; k++)
                booked += iov[k].iov_len;
            size_t commit = booked ? (size_t)(arg * 7919u) % (booked + 1) : 0;
            if (ref_head + ref_len + commit > REF_MAX)
                commit = 0;
            size_t left = commit;
            for (int k = 0; k < n && left; k++) {
                size_t c = iov[k].iov_len < left ? iov[k].iov_len : left;
                /* A running byte counter, copied from a pattern (no per-byte
                 * loop: coverage instrumentation would make it crawl). */
                memcpy(iov[k].iov_base, pattern + next_byte, c);
                memcpy(ref + ref_head + ref_len, pattern + next_byte, c);
                ref_len += c;
                next_byte = (unsigned char)(next_byte + c);
                left -= c;
            }
            linkbuf_commit(&lb, commit);
            break;
        }
        case 1: { /* skip */
            size_t n = ref_len ? arg % (ref_len + 1) : 0;
            linkbuf_skip(&lb, n);
            ref_head += n;
            ref_len -= n;
            if (ref_len == 0)
                ref_head = 0, linkbuf_release(&lb);
            break;
        }
        case 2:
            linkbuf_release(&lb);
            if (ref_len == 0)
                ref_head = 0;
            break;
        case 3:
            check(&lb, 1);
            break;
        default:
            if (arg % 16 == 0) {
                linkbuf_clear(&lb);
                ref_head = ref_len = 0;
            }
            break;
        }
        check(&lb, 0);
    }
    check(&lb, 1);
    linkbuf_clear(&lb);
    if (atomic_load(&cache.in_use) != 0)
        abort();
    lb_cache_free(&cache);
    return 0;
}
