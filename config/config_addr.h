/* config/config_addr.h — "IPv4:port", "[IPv6]:port" and, where allowed,
 * "host:port" (resolved once, now) into socket addresses; and back to text. */
#pragma once

#include <stddef.h>

#include "config.h"

/* Returns 0, or -1 with a short reason in why (what was expected). */
int config_addr_parse(const char *text, int allow_hostname, struct cfg_sockaddr *out, char *why,
                      size_t whylen);
/* The same, keeping every address a host name resolves to (at most
 * CFG_ADDRS_MAX, duplicates dropped) where config_addr_parse keeps the first. */
int config_addr_parse_all(const char *text, int allow_hostname, struct cfg_addrs *out, char *why,
                          size_t whylen);
/* Tells "host:port" from an address literal without resolving anything:
 * 1 with host (a NUL-terminated name) and port set, 0 for an address
 * literal, -1 with a reason in why when text is neither. */
int config_addr_host(const char *text, char *host, size_t hostlen, unsigned *port, char *why,
                     size_t whylen);
/* "1.2.3.4:80" / "[::1]:80" into buf; returns buf. */
char *config_addr_format(const struct cfg_sockaddr *a, char *buf, size_t len);

/* Host names are resolved by default; fuzzers turn it off (no DNS, no
 * network, deterministic): a name then fails like an unknown host. Not
 * thread-safe: set once at start. */
void config_addr_resolve_names(int on);
