/* tests/fuzz/fuzz_proxy_proto.c — the PROXY protocol parser on arbitrary
 * bytes: no read past them (ASan), and verdicts that agree with each other:
 * an OK header is OK alone and every shorter prefix of it needs more; a
 * prefix of something that needs more needs more too; a bad start stays bad
 * whatever follows. Then the builder: addresses taken from the input are
 * built into v1 and v2 headers and must parse back to themselves. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "proxy/proxy_proto.h"

static enum proxy_parse parse_copy(const uint8_t *data, size_t len, struct proxy_hdr *h)
{
    uint8_t *copy = malloc(len ? len : 1); /* exactly len: ASan sees any overread */
    if (!copy)
        abort();
    memcpy(copy, data, len);
    enum proxy_parse r = proxy_proto_parse(copy, len, h);
    free(copy);
    return r;
}

static void check_parse(const uint8_t *data, size_t size)
{
    struct proxy_hdr h, h2;
    enum proxy_parse r = proxy_proto_parse(data, size, &h);
    if (r == PROXY_PARSE_OK) {
        if (h.len == 0 || h.len > size || (h.version != 1 && h.version != 2))
            abort();
        if (h.has_addrs &&
            (h.src.family != h.dst.family || (h.src.family != AF_INET && h.src.family != AF_INET6)))
            abort();
        if (parse_copy(data, h.len, &h2) != PROXY_PARSE_OK || memcmp(&h, &h2, sizeof(h)) != 0)
            abort();
        /* Every prefix needs more (a few of them when the header is long). */
        size_t step = h.len > 512 ? h.len / 64 : 1;
        for (size_t i = 0; i < h.len; i += step)
            if (parse_copy(data, i, &h2) != PROXY_PARSE_NEED_MORE)
                abort();
        if (parse_copy(data, h.len - 1, &h2) != PROXY_PARSE_NEED_MORE)
            abort();
    } else if (r == PROXY_PARSE_NEED_MORE) {
        if (size && parse_copy(data, size - 1, &h2) != PROXY_PARSE_NEED_MORE)
            abort();
    } else if (r == PROXY_PARSE_BAD) {
        uint8_t *more = malloc(size + 1);
        if (!more)
            abort();
        memcpy(more, data, size);
        more[size] = '\n';
        if (proxy_proto_parse(more, size + 1, &h2) != PROXY_PARSE_BAD)
            abort();
        free(more);
    } else {
        abort();
    }
}

static void check_build(const uint8_t *data, size_t size)
{
    if (size < 40)
        return;
    struct sock_addr src = {0}, dst = {0};
    int fam = data[0] & 1 ? AF_INET6 : AF_INET;
    src.family = (uint8_t)fam;
    dst.family = (uint8_t)((data[0] & 2) ? fam : AF_INET6 + AF_INET - fam);
    memcpy(src.ip, data + 1, 16);
    memcpy(dst.ip, data + 17, 16);
    if (src.family == AF_INET)
        memset(src.ip + 4, 0, 12);
    if (dst.family == AF_INET)
        memset(dst.ip + 4, 0, 12);
    src.port = (uint16_t)(data[33] << 8 | data[34]);
    dst.port = (uint16_t)(data[35] << 8 | data[36]);
    size_t id_len = data[37] % (PROXY_UNIQUE_ID_MAX + 1);
    if (id_len > size - 38)
        id_len = size - 38;
    for (int version = 1; version <= 2; version++) {
        uint8_t out[PROXY_BUILD_MAX];
        int n = proxy_proto_build(out, sizeof(out), version, &src, &dst, data + 38,
                                  version == 2 ? id_len : 0);
        struct proxy_hdr h;
        if (n <= 0 || parse_copy(out, (size_t)n, &h) != PROXY_PARSE_OK || h.len != (size_t)n ||
            !h.has_addrs || h.src.port != src.port || h.dst.port != dst.port)
            abort();
        if (src.family == dst.family &&
            (h.src.family != src.family || memcmp(h.src.ip, src.ip, 16) != 0 ||
             memcmp(h.dst.ip, dst.ip, 16) != 0))
            abort();
        if (src.family != dst.family && h.src.family != AF_INET6)
            abort(); /* mixed: written IPv4-mapped */
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    check_parse(data, size);
    check_build(data, size);
    return 0;
}
