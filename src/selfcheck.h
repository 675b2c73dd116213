/* src/selfcheck.h — `sluice --healthcheck`: asks a running sluice's admin
 * endpoint for /healthz, so a container HEALTHCHECK needs no curl in the
 * image. Blocking, bounded by a timeout; for the CLI only. */
#pragma once

#include "config/config.h"

/* 0 when /healthz answered 200; 1 otherwise, with the reason on stderr. */
int selfcheck_run(const struct cfg_admin *admin, const char *token, unsigned timeout_ms);
