/* proxy/route.h — which of a listener's routes (config "routes") a TLS
 * client takes, from the server name and ALPN protocols of its ClientHello:
 * a pure function over the config's routes, for the SNI inspector. */
#pragma once

#include <stddef.h>

#include "config/config.h"

struct tls_hello;

/* The index of the route h takes, or -1 when none matches and there is no
 * default. The most specific route wins: an exact name, then a "*." wildcard
 * (one label), then a route without "sni"; at each of these, a route whose
 * "alpn" the client offers beats one without "alpn"; the default comes last.
 * Between equals, the first listed. h->sni is lowercase ("" when the hello
 * named no server), as are the routes' names. */
int route_match(const struct cfg_route *routes, size_t n, const struct tls_hello *h);

/* Whether the lowercase name matches the lowercase pattern: equal, or
 * pattern "*.rest" and name one label (no dot, not empty) followed by ".rest". */
int route_name_matches(const char *pattern, const char *name);
