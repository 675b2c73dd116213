/* admin/dashboard_page.h — the dashboard page as compiled in: its bytes and
 * its Content-Security-Policy, both generated at build time from
 * admin/dashboard.html by admin/dashboard_embed.cmake (see there for the
 * policy). Read only by admin/dashboard.c. */
#pragma once

#include <stddef.h>

extern const char dashboard_page[];     /* the HTML, NUL-terminated */
extern const size_t dashboard_page_len; /* without the NUL */
extern const char dashboard_csp[];      /* the page's policy: its inline code by hash */
