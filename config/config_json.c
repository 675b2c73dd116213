/* config/config_json.c — the typed JSON readers of config/config_json.h. */
#define _GNU_SOURCE
#include "config_json.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config_addr.h"

void cfg_fail(struct cfg_ctx *c, const char *path, const char *fmt, ...)
{
    char msg[512];
    c->nerr++;
    if (c->nerr > CFG_MAX_ERRORS + 1)
        return;
    if (c->nerr == CFG_MAX_ERRORS + 1) {
        path = "";
        snprintf(msg, sizeof(msg), "(further errors not shown)");
    } else {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(msg, sizeof(msg), fmt, ap);
        va_end(ap);
    }
    char *line = NULL;
    int n = asprintf(&line, "%s: %s%s%s\n", c->file, path, *path ? ": " : "", msg);
    if (n < 0)
        return;
    char *grown = realloc(c->errs, c->errlen + (size_t)n + 1);
    if (grown) {
        memcpy(grown + c->errlen, line, (size_t)n + 1);
        c->errs = grown;
        c->errlen += (size_t)n;
    }
    free(line);
}

static const char *type_name(const json_t *v)
{
    switch (json_typeof(v)) {
    case JSON_OBJECT:
        return "an object";
    case JSON_ARRAY:
        return "an array";
    case JSON_STRING:
        return "a string";
    case JSON_INTEGER:
        return "an integer";
    case JSON_REAL:
        return "a number with a fraction";
    case JSON_TRUE:
    case JSON_FALSE:
        return "a boolean";
    case JSON_NULL:
    default:
        return "null";
    }
}

const char *cfg_type_name(const json_t *v)
{
    return type_name(v);
}

void cfg_join(char *out, const char *path, const char *key)
{
    snprintf(out, CFG_PATH_MAX, "%s%s%s", path, *path ? "." : "", key);
}

/* Every key of obj must be one of allowed (NULL-terminated). */
void cfg_check_keys(struct cfg_ctx *c, json_t *obj, const char *path, const char *const *allowed)
{
    const char *key;
    json_t *v;
    json_object_foreach(obj, key, v)
    {
        int ok = 0;
        for (const char *const *a = allowed; *a; a++)
            ok |= strcmp(key, *a) == 0;
        if (ok)
            continue;
        char list[256] = "", p[CFG_PATH_MAX];
        for (const char *const *a = allowed; *a; a++) {
            strncat(list, *a, sizeof(list) - strlen(list) - 1);
            if (a[1])
                strncat(list, ", ", sizeof(list) - strlen(list) - 1);
        }
        cfg_join(p, path, key);
        cfg_fail(c, p, "unknown key (expected one of: %s)", list);
    }
}

unsigned cfg_get_uint(struct cfg_ctx *c, json_t *obj, const char *path, const char *key,
                      unsigned def, unsigned min, unsigned max)
{
    json_t *v = json_object_get(obj, key);
    if (!v)
        return def;
    char p[CFG_PATH_MAX];
    cfg_join(p, path, key);
    if (!json_is_integer(v) || json_integer_value(v) < (json_int_t)min ||
        json_integer_value(v) > (json_int_t)max) {
        if (json_is_integer(v))
            cfg_fail(c, p, "expected an integer from %u to %u, got %lld", min, max,
                     (long long)json_integer_value(v));
        else
            cfg_fail(c, p, "expected an integer from %u to %u, got %s", min, max, type_name(v));
        return def;
    }
    return (unsigned)json_integer_value(v);
}

int cfg_get_bool(struct cfg_ctx *c, json_t *obj, const char *path, const char *key, int def)
{
    json_t *v = json_object_get(obj, key);
    if (!v)
        return def;
    if (!json_is_boolean(v)) {
        char p[CFG_PATH_MAX];
        cfg_join(p, path, key);
        cfg_fail(c, p, "expected true or false, got %s", type_name(v));
        return def;
    }
    return json_is_true(v);
}

/* Returns a malloc'd copy, def's copy when absent (NULL when def is NULL). */
char *cfg_get_string(struct cfg_ctx *c, json_t *obj, const char *path, const char *key,
                     int required, const char *def)
{
    json_t *v = json_object_get(obj, key);
    char p[CFG_PATH_MAX];
    cfg_join(p, path, key);
    if (!v || (json_is_null(v) && !required)) {
        if (required)
            cfg_fail(c, p, "missing (expected a string)");
        return def ? strdup(def) : NULL;
    }
    if (!json_is_string(v) || json_string_length(v) == 0) {
        cfg_fail(c, p, "expected a non-empty string, got %s",
                 json_is_string(v) ? "\"\"" : type_name(v));
        return def ? strdup(def) : NULL;
    }
    if (strlen(json_string_value(v)) != json_string_length(v)) {
        cfg_fail(c, p, "expected a string without NUL bytes");
        return def ? strdup(def) : NULL;
    }
    return strdup(json_string_value(v));
}

/* Names are identifiers used in URLs and metrics labels. */
char *cfg_get_name(struct cfg_ctx *c, json_t *obj, const char *path)
{
    char *name = cfg_get_string(c, obj, path, "name", 1, NULL);
    if (!name)
        return NULL;
    char p[CFG_PATH_MAX];
    cfg_join(p, path, "name");
    size_t n = strlen(name);
    int ok = n <= CFG_NAME_MAX;
    for (size_t i = 0; ok && i < n; i++) {
        char ch = name[i];
        ok = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
             ch == '-' || ch == '_' || ch == '.';
    }
    if (!ok)
        cfg_fail(c, p, "expected 1 to %d characters of A-Z a-z 0-9 - _ ., got \"%s\"", CFG_NAME_MAX,
                 name);
    return name;
}

int cfg_get_enum(struct cfg_ctx *c, json_t *obj, const char *path, const char *key,
                 const char *const *names, int def)
{
    json_t *v = json_object_get(obj, key);
    if (!v)
        return def;
    char p[CFG_PATH_MAX], list[128] = "";
    cfg_join(p, path, key);
    for (int i = 0; names[i]; i++) {
        if (json_is_string(v) && strcmp(json_string_value(v), names[i]) == 0)
            return i;
        strncat(list, names[i], sizeof(list) - strlen(list) - 1);
        if (names[i + 1])
            strncat(list, ", ", sizeof(list) - strlen(list) - 1);
    }
    if (json_is_string(v))
        cfg_fail(c, p, "expected one of: %s, got \"%s\"", list, json_string_value(v));
    else
        cfg_fail(c, p, "expected one of: %s, got %s", list, type_name(v));
    return def;
}

void cfg_get_addr(struct cfg_ctx *c, const char *path, const char *key, const char *text,
                  int allow_hostname, struct cfg_sockaddr *out)
{
    char why[256], p[CFG_PATH_MAX];
    if (!text)
        return;
    cfg_join(p, path, key);
    if (config_addr_parse(text, allow_hostname, out, why, sizeof(why)) < 0)
        cfg_fail(c, p, "%s", why);
}

void cfg_get_addrs(struct cfg_ctx *c, const char *path, const char *key, const char *text,
                   struct cfg_addrs *out)
{
    char why[256], p[CFG_PATH_MAX];
    if (!text)
        return;
    cfg_join(p, path, key);
    if (config_addr_parse_all(text, 1, out, why, sizeof(why)) < 0)
        cfg_fail(c, p, "%s", why);
}

/* Returns the array at key (or NULL), after checking it is a non-empty array. */
json_t *cfg_get_array(struct cfg_ctx *c, json_t *obj, const char *path, const char *key)
{
    json_t *v = json_object_get(obj, key);
    char p[CFG_PATH_MAX];
    cfg_join(p, path, key);
    if (!v) {
        cfg_fail(c, p, "missing (expected a non-empty array)");
        return NULL;
    }
    if (!json_is_array(v) || json_array_size(v) == 0) {
        cfg_fail(c, p, "expected a non-empty array, got %s",
                 json_is_array(v) ? "an empty array" : type_name(v));
        return NULL;
    }
    return v;
}

int cfg_is_object(struct cfg_ctx *c, json_t *v, const char *path)
{
    if (json_is_object(v))
        return 1;
    cfg_fail(c, path, "expected an object, got %s", type_name(v));
    return 0;
}

json_t *cfg_get_section(struct cfg_ctx *c, json_t *root, const char *key,
                        const char *const *allowed)
{
    json_t *v = json_object_get(root, key);
    if (!v || !cfg_is_object(c, v, key))
        return NULL;
    cfg_check_keys(c, v, key, allowed);
    return v;
}

/* A string that may hold any bytes but NUL-free JSON text ("PING\r\n"). */
char *cfg_get_payload(struct cfg_ctx *c, json_t *obj, const char *path, const char *key,
                      size_t *len)
{
    json_t *v = json_object_get(obj, key);
    *len = 0;
    if (!v || json_is_null(v))
        return NULL;
    char p[CFG_PATH_MAX];
    cfg_join(p, path, key);
    if (!json_is_string(v) || json_string_length(v) == 0 ||
        json_string_length(v) > HC_PAYLOAD_MAX) {
        cfg_fail(c, p, "expected null or a string of 1 to %d bytes", HC_PAYLOAD_MAX);
        return NULL;
    }
    *len = json_string_length(v);
    char *out = malloc(*len + 1);
    if (out) {
        memcpy(out, json_string_value(v), *len + 1);
    }
    return out;
}
