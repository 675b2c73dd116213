/* config/config_json.h — the JSON readers config_parse.c is built from:
 * typed getters that apply a default, record an error naming the file, the
 * JSON path and what was expected, and never stop at the first error.
 * Private to config/. */
#pragma once

#include <jansson.h>
#include <stddef.h>

#include "config.h"

#define CFG_PATH_MAX   128
#define CFG_NAME_MAX   64
#define CFG_MAX_ERRORS 50
#define HC_PAYLOAD_MAX 1024

struct cfg_ctx {
    const char *file;
    char *errs; /* owned, grows */
    size_t errlen;
    int nerr;
    /* resolver.servers is set: host names are resolved at start through
     * them, not at load through the system resolver (config_dns.c). */
    int names_at_start;
};

/* Records "FILE: PATH: message" (at most CFG_MAX_ERRORS lines, then one "further errors"). */
__attribute__((format(printf, 3, 4))) void cfg_fail(struct cfg_ctx *c, const char *path,
                                                    const char *fmt, ...);
/* "a string", "an array", ... for messages that say what was found. */
const char *cfg_type_name(const json_t *v);
/* out (CFG_PATH_MAX bytes) = path + "." + key */
void cfg_join(char *out, const char *path, const char *key);
/* Every key of obj must be one of allowed (NULL-terminated). */
void cfg_check_keys(struct cfg_ctx *c, json_t *obj, const char *path, const char *const *allowed);
unsigned cfg_get_uint(struct cfg_ctx *c, json_t *obj, const char *path, const char *key,
                      unsigned def, unsigned min, unsigned max);
/* true or false; def when absent. */
int cfg_get_bool(struct cfg_ctx *c, json_t *obj, const char *path, const char *key, int def);
/* A malloc'd copy; def's copy when absent (NULL when def is NULL). */
char *cfg_get_string(struct cfg_ctx *c, json_t *obj, const char *path, const char *key,
                     int required, const char *def);
/* The required "name": an identifier used in URLs and metric labels. */
char *cfg_get_name(struct cfg_ctx *c, json_t *obj, const char *path);
int cfg_get_enum(struct cfg_ctx *c, json_t *obj, const char *path, const char *key,
                 const char *const *names, int def);
void cfg_get_addr(struct cfg_ctx *c, const char *path, const char *key, const char *text,
                  int allow_hostname, struct cfg_sockaddr *out);
/* A backend's address: every address its host name resolves to. */
void cfg_get_addrs(struct cfg_ctx *c, const char *path, const char *key, const char *text,
                   struct cfg_addrs *out);
/* The non-empty array at key, or NULL after recording why. */
json_t *cfg_get_array(struct cfg_ctx *c, json_t *obj, const char *path, const char *key);
int cfg_is_object(struct cfg_ctx *c, json_t *v, const char *path);
/* An optional top-level section ("admin", "log", "resolver"): the object at
 * key with its keys checked against allowed, or NULL when it is absent or is
 * no object (that is recorded as an error). The getters above take NULL for
 * obj and give their defaults: jansson's json_object_get returns NULL for it. */
json_t *cfg_get_section(struct cfg_ctx *c, json_t *root, const char *key,
                        const char *const *allowed);
/* null, or a string of 1 to HC_PAYLOAD_MAX bytes (JSON escapes allowed); malloc'd. */
char *cfg_get_payload(struct cfg_ctx *c, json_t *obj, const char *path, const char *key,
                      size_t *len);
