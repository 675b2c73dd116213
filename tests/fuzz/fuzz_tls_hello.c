/* tests/fuzz/fuzz_tls_hello.c — the ClientHello reader (proxy/tls_hello.c)
 * on arbitrary bytes, as they would sit in a client's buffer. Checks what the
 * parser promises besides not crashing: what it fills is well formed (a
 * lowercase name, whole ALPN entries), and reading on never changes a
 * decision: a prefix that parsed gives the same hello as the whole, and a
 * whole that needs more had prefixes that needed more. The input's last
 * byte picks the prefix. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "proxy/tls_hello.h"

static void check_filled(const struct tls_hello *h)
{
    size_t n = strlen(h->sni);
    if (n > TLS_SNI_MAX)
        abort();
    for (size_t i = 0; i < n; i++)
        if (h->sni[i] >= 'A' && h->sni[i] <= 'Z')
            abort();
    size_t i = 0, k = 0;
    while (i < h->alpn_len) {
        if (h->alpn[i] == 0)
            abort();
        i += 1u + h->alpn[i];
        k++;
    }
    if (i != h->alpn_len || k != h->nalpn)
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct tls_hello whole, part;
    enum tls_hello_status st = tls_hello_parse(data, size, &whole);
    if (st == TLS_HELLO_OK)
        check_filled(&whole);
    if (size == 0)
        return 0;
    size_t cut = (size_t)data[size - 1] * size / 256;
    enum tls_hello_status pst = tls_hello_parse(data, cut, &part);
    if (st == TLS_HELLO_NEED_MORE && pst != TLS_HELLO_NEED_MORE)
        abort();
    if (pst == TLS_HELLO_OK) {
        check_filled(&part);
        if (st != TLS_HELLO_OK || strcmp(part.sni, whole.sni) != 0 ||
            part.alpn_len != whole.alpn_len || memcmp(part.alpn, whole.alpn, part.alpn_len) != 0)
            abort();
    }
    if ((pst == TLS_HELLO_BAD || pst == TLS_HELLO_NOT_TLS) && st != pst)
        abort();
    return 0;
}
