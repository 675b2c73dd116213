/* admin/admin.h — the admin HTTP endpoint (libmicrohttpd, its own threads,
 * never a sub-reactor's): JSON stats, backend drain/enable/disable/weight,
 * add/remove backends, health and readiness, Prometheus metrics. */
#pragma once

#include "config/config.h"

struct admin;
struct runtime;

/* The token the endpoint requires: the config's admin.token, else
 * $SLUICE_ADMIN_TOKEN, else NULL (no auth; only allowed on loopback). */
const char *admin_token_from(const struct cfg_admin *cfg);

/* Binds and starts serving. Refuses (-EACCES, with the reason logged) a
 * non-loopback address without a token. Returns 0 or -errno. */
int admin_start(struct runtime *rt, const struct cfg_admin *cfg, struct admin **out);
/* Shutdown has begun: every pending ?wait= answers now and later ones do not
 * wait; everything else is served until admin_stop. Never blocks. */
void admin_begin_shutdown(struct admin *a);
/* Ends the waits, lets answers in flight go out (1 s at most), stops. */
void admin_stop(struct admin *a);
