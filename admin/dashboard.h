/* admin/dashboard.h — the live dashboard: `GET /` on the admin endpoint
 * answers one self-contained page that reads the JSON API from the browser.
 * The page holds no data, so it needs no token; its API calls do. */
#pragma once

#include "request.h"

/* Fills rs with the page (200, text/html, its Content-Security-Policy). */
void dashboard_reply(struct admin_response *rs);
