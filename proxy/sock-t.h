/* proxy/sock-t.h — the compact socket address a session keeps (types only;
 * the verbs are in proxy/sock.h): 20 bytes instead of a sockaddr_storage's
 * 128, since every open session holds one. */
#pragma once

#include <stdint.h>

struct sock_addr {
    uint8_t family; /* AF_INET, AF_INET6, or 0: unknown */
    uint8_t pad;
    uint16_t port;  /* host byte order */
    uint8_t ip[16]; /* AF_INET: the first 4 bytes */
};
