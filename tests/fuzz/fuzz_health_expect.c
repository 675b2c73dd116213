/* tests/fuzz/fuzz_health_expect.c — the health check's reply matching, fed
 * in arbitrary chunks, against a plain prefix comparison of the whole reply.
 * Input: byte 0 = expect length, then expect, then the reply; chunk sizes
 * come from the reply bytes themselves. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "proxy/health.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2)
        return 0;
    size_t elen = 1 + data[0] % 64;
    if (1 + elen > size)
        return 0;
    const char *expect = (const char *)data + 1;
    const char *reply = expect + elen;
    size_t rlen = size - 1 - elen;
    /* Reference: matched when the reply starts with expect; mismatch as soon
     * as the first differing byte arrives; otherwise more is needed. */
    size_t common = 0;
    while (common < elen && common < rlen && reply[common] == expect[common])
        common++;
    int want = common == elen ? 1 : (common < rlen ? -1 : 0);

    size_t got = 0, off = 0;
    int r = 0;
    while (off < rlen && r == 0) {
        size_t chunk = 1 + (unsigned char)reply[off] % 7;
        if (chunk > rlen - off)
            chunk = rlen - off;
        r = health_expect_feed(expect, elen, &got, reply + off, chunk);
        off += chunk;
    }
    if (r != want || got > elen)
        abort();
    return 0;
}
