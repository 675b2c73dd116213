/* tests/fuzz/fuzz_admin.c — the admin router without libmicrohttpd: method,
 * path, Authorization and body from the input; every answer must be a known
 * status with a JSON body (or none for 204), and the runtime must survive
 * whatever state changes the input asks for. Input layout:
 *   byte 0: method (bit 7: the authorization line instead of the token;
 *   bit 6: a text/plain body); then path '\n' authorization '\n' body. */
#define _GNU_SOURCE
#include <jansson.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "admin/router.h"
#include "config/config.h"
#include "config/config_addr.h"
#include "proxy/runtime.h"

static const char CONFIG[] =
    "{\"pollers\":2,\"admin\":{\"listen\":\"127.0.0.1:1\"},"
    "\"listeners\":[{\"name\":\"l\",\"listen\":\"127.0.0.1:2\",\"pool\":\"p\"}],"
    "\"pools\":[{\"name\":\"p\",\"backends\":[{\"name\":\"b0\",\"address\":\"127.0.0.1:3\"},"
    "{\"name\":\"b1\",\"address\":\"127.0.0.1:4\",\"weight\":3}]},"
    "{\"name\":\"h\",\"balance\":\"source_hash\",\"maglev_table_size\":251,"
    "\"backends\":[{\"name\":\"x\",\"address\":\"127.0.0.1:5\"}]}]}";
/* No health_check in any pool: the fuzzer adds backends with any address it
 * likes, and a checker would connect to them. Nothing here opens a socket to
 * a backend (no listener, so no session). */
#define RESET_EVERY 5000 /* runs between fresh runtimes: state must not pile up */

static struct admin_ctx ctx;
static struct runtime *rt;

static void setup(void)
{
    struct config *cfg;
    char *errors;
    config_addr_resolve_names(0);
    if (rt) {
        admin_ctx_fini(&ctx);
        runtime_destroy(rt);
    }
    if (config_load_buffer(CONFIG, sizeof(CONFIG) - 1, "fuzz", &cfg, &errors) ||
        runtime_create(cfg, RUNTIME_NO_LISTEN, &rt) || runtime_start(rt) ||
        admin_ctx_init(&ctx, rt, "fuzz-token"))
        abort();
}

static char *take_line(const char **p, const char *end)
{
    const char *nl = memchr(*p, '\n', (size_t)(end - *p));
    const char *stop = nl ? nl : end;
    char *s = strndup(*p, (size_t)(stop - *p));
    *p = nl ? nl + 1 : end;
    return s;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const char *const methods[] = {"GET", "POST", "PATCH", "DELETE", "PUT", "HEAD", "X"};
    static unsigned runs;
    if (runs++ % RESET_EVERY == 0)
        setup();
    if (size == 0)
        return 0;
    const char *p = (const char *)data + 1, *end = (const char *)data + size;
    char *path = take_line(&p, end);
    char *auth = take_line(&p, end);
    struct admin_request rq = {
        .method = methods[data[0] % (sizeof(methods) / sizeof(methods[0]))],
        .path = path,
        .wait = NULL, /* ?wait= sleeps: not fuzzed */
        .host = "localhost:1",
        .origin = NULL,
        .authorization = (data[0] & 0x80) ? auth : "Bearer fuzz-token",
        .content_type = (data[0] & 0x40) ? "text/plain" : "application/json",
        .body = p,
        .body_len = (size_t)(end - p),
        .body_too_large = (size_t)(end - p) > ADMIN_BODY_MAX,
    };
    struct admin_response rs;
    admin_route(&ctx, &rq, &rs);
    if (rs.status < 200 || rs.status > 599)
        abort();
    if (rs.status != 204) {
        if (!rs.body)
            abort();
        if (strncmp(rs.content_type, "application/json", 16) == 0) {
            json_t *j = json_loads(rs.body, 0, NULL);
            if (!j)
                abort();
            if (rs.status >= 400 && (!json_is_string(json_object_get(j, "error")) ||
                                     !json_is_string(json_object_get(j, "detail"))))
                abort();
            json_decref(j);
        }
    }
    free(rs.body);
    free(path);
    free(auth);
    return 0;
}
