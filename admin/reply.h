/* admin/reply.h — how the admin API answers (admin/reply.c): JSON replies,
 * errors that change nothing, and body readers that answer 400 themselves. */
#pragma once

#include <jansson.h>

#include "request.h"

/* Takes body (may be NULL: 500). */
void reply_json(struct admin_response *rs, int status, json_t *body);
/* {"error": error, "detail": printf(fmt, ...)}, the detail kept printable ASCII. */
__attribute__((format(printf, 4, 5))) void reply_fail(struct admin_response *rs, int status,
                                                      const char *error, const char *fmt, ...);
/* 405 naming the methods the path takes (also in Allow). */
void reply_not_allowed(const struct admin_request *rq, struct admin_response *rs,
                       const char *allow);
/* The optional JSON object body, whose keys must be in allowed (NULL-ended):
 * the object (a new empty one when there is no body), or NULL after a 400. */
json_t *reply_body_object(const struct admin_request *rq, struct admin_response *rs,
                          const char *const *allowed);
/* An optional integer key within [min, max]: 1 read into *out, 0 absent
 * (*out untouched), -1 after a 400. */
int reply_int_key(json_t *o, const char *key, long long min, long long max, long long *out,
                  struct admin_response *rs);
