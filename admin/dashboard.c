/* admin/dashboard.c — serves the dashboard page (admin/dashboard.html, compiled
 * in by admin/dashboard_embed.cmake). Only the answer lives here: which
 * requests may have it is the router's and request_rules.c's business. */
#include "dashboard.h"

#include <stdlib.h>
#include <string.h>

#include "dashboard_page.h"
#include "reply.h"

void dashboard_reply(struct admin_response *rs)
{
    /* The response body is freed by the HTTP glue, so it gets its own copy. */
    char *body = malloc(dashboard_page_len + 1);
    if (!body) {
        reply_fail(rs, 500, "internal error", "out of memory");
        return;
    }
    memcpy(body, dashboard_page, dashboard_page_len + 1);
    rs->status = 200;
    rs->body = body;
    rs->content_type = "text/html; charset=utf-8";
    rs->csp = dashboard_csp;
}
