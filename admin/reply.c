/* admin/reply.c — how the admin API answers: a JSON reply, the
 * {"error", "detail"} error, 405 with Allow, and the body readers that answer
 * 400 themselves (a JSON object with known keys, an integer in range). Knows
 * no route and no runtime. */
#define _GNU_SOURCE
#include "reply.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void reply_json(struct admin_response *rs, int status, json_t *body)
{
    rs->status = status;
    rs->content_type = "application/json";
    rs->body = body ? json_dumps(body, JSON_COMPACT) : NULL;
    json_decref(body);
    if (!rs->body) {
        rs->status = 500;
        rs->body = strdup("{\"error\":\"internal error\",\"detail\":\"cannot build the reply\"}");
    }
}

void reply_fail(struct admin_response *rs, int status, const char *error, const char *fmt, ...)
{
    char detail[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(detail, sizeof(detail), fmt, ap);
    va_end(ap);
    /* Details may echo what the client sent (a name in the path): keep them
     * printable ASCII, so the reply is valid JSON and a log-safe line. */
    for (char *c = detail; *c; c++)
        if ((unsigned char)*c < 0x20 || (unsigned char)*c > 0x7e)
            *c = '?';
    reply_json(rs, status, json_pack("{s:s, s:s}", "error", error, "detail", detail));
}

/* Parses an optional JSON object body. Returns the object (a new empty one
 * when there is no body), or NULL after replying 400. */
json_t *reply_body_object(const struct admin_request *rq, struct admin_response *rs,
                          const char *const *allowed)
{
    if (rq->body_len == 0)
        return json_object();
    json_error_t err;
    json_t *o = json_loadb(rq->body, rq->body_len, JSON_REJECT_DUPLICATES, &err);
    if (!o) {
        reply_fail(rs, 400, "malformed JSON", "line %d, column %d: %s", err.line, err.column,
                   err.text);
        return NULL;
    }
    if (!json_is_object(o)) {
        json_decref(o);
        reply_fail(rs, 400, "bad request", "expected a JSON object as the body");
        return NULL;
    }
    const char *key;
    json_t *v;
    json_object_foreach(o, key, v)
    {
        int ok = 0;
        for (const char *const *k = allowed; *k; k++)
            ok |= strcmp(*k, key) == 0;
        if (!ok) {
            char list[128] = "";
            for (const char *const *k = allowed; *k; k++) {
                strncat(list, *k, sizeof(list) - strlen(list) - 1);
                if (k[1])
                    strncat(list, ", ", sizeof(list) - strlen(list) - 1);
            }
            reply_fail(rs, 400, "bad request", "unknown key \"%.64s\" (expected: %s)", key,
                       *list ? list : "no body");
            json_decref(o);
            return NULL;
        }
    }
    return o;
}

/* Reads an optional integer key within [min, max]; 0 and *out untouched when
 * absent, -1 after replying 400. */
int reply_int_key(json_t *o, const char *key, long long min, long long max, long long *out,
                  struct admin_response *rs)
{
    json_t *v = json_object_get(o, key);
    if (!v)
        return 0;
    if (!json_is_integer(v) || json_integer_value(v) < min || json_integer_value(v) > max) {
        reply_fail(rs, 400, "bad request", "%s: expected an integer from %lld to %lld", key, min,
                   max);
        return -1;
    }
    *out = json_integer_value(v);
    return 1;
}

void reply_not_allowed(const struct admin_request *rq, struct admin_response *rs, const char *allow)
{
    reply_fail(rs, 405, "method not allowed", "%.16s is not allowed here (allowed: %s)", rq->method,
               allow);
    rs->allow = allow;
}
