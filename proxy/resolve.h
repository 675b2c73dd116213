/* proxy/resolve.h — the rules of DNS discovery as pure functions, apart from
 * the resolver thread that applies them (proxy/resolver.c), so they are
 * unit-tested alone: when to resolve again, how a backend found by DNS is
 * named, SRV weights, and the TTL of an answer in DNS wire format. */
#pragma once

#include <stddef.h>
#include <stdint.h>

#include "config/config.h"

#define RESOLVE_MAX_WEIGHT 1000 /* a backend's weight at most (config's MAX_WEIGHT) */

/* Milliseconds until a name whose records live ttl_s seconds is resolved
 * again: the TTL clamped to [min_ms, max_ms]. */
unsigned resolve_next_ms(uint32_t ttl_s, unsigned min_ms, unsigned max_ms);

/* The name of the backend that an address found for backend `name` becomes
 * with "resolve": "all" or "srv": NAME@ADDR:PORT ("redis@10.0.0.7:6379",
 * "redis@[fd00::7]:6379"). 0, or -ENAMETOOLONG when it does not fit len. */
int resolve_backend_name(const char *name, const struct cfg_sockaddr *a, char *buf, size_t len);
/* 1 when backend_name was made by resolve_backend_name from `name` (config
 * names cannot hold '@', so the prefix "NAME@" is unambiguous). */
int resolve_owns(const char *name, const char *backend_name);

/* Backend weights for SRV records' weights w[0..n) (one priority): each
 * record's own, scaled down in proportion when the largest is above
 * RESOLVE_MAX_WEIGHT (a non-zero weight stays at least 1). Weight 0 (RFC
 * 2782: "very small chance") is 0, never picked while another target has
 * weight, and 1 when every record has 0: then all are picked alike. */
void resolve_srv_weights(const unsigned *w, size_t n, unsigned *out);

/* The smallest TTL among the answer records of a DNS response (abuf, alen);
 * `fallback` when it has none or cannot be read. */
uint32_t resolve_answer_ttl(const unsigned char *abuf, size_t alen, uint32_t fallback);
