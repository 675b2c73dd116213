/* admin/request_rules.h — whether an admin request may be served at all,
 * decided before any route runs (README "Admin request rules"). */
#pragma once

#include <stddef.h>

#include "request.h"

struct admin_rules {
    const char *token; /* not owned; NULL: no auth */
    /* Host names accepted besides IP literals and localhost
     * (admin.allowed_hosts); not owned (the config outlives the admin). */
    char *const *allowed_hosts;
    size_t nallowed_hosts;
};

/* The first two rules only, Host and Origin (a page of another site): 0, or
 * 403 with *error and detail as below. For the dashboard page, which holds
 * no data and so needs no token. Pure. */
int admin_request_foreign(const struct admin_rules *a, const struct admin_request *rq,
                          const char **error, char *detail, size_t n);

/* 0 when rq may be served; otherwise the HTTP status to answer (401, 403,
 * 413, 415, 400) with *error its short name and detail (n bytes) the reason.
 * Pure: any thread, no lock needed. */
int admin_request_refused(const struct admin_rules *a, const struct admin_request *rq,
                          const char **error, char *detail, size_t n);
