/* tests/fuzz/fuzz_config.c — the config loader: bytes → a validated config
 * or an error list; never a crash, a leak, or an error without text. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "config/config.h"
#include "config/config_addr.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static int init;
    if (!init) {
        config_addr_resolve_names(0); /* no DNS from a fuzzer */
        init = 1;
    }
    struct config *cfg = NULL;
    char *errors = NULL;
    int n = config_load_buffer((const char *)data, size, "fuzz.json", &cfg, &errors);
    if (n == 0) {
        if (!cfg || errors)
            abort();
        /* A valid config is internally consistent. */
        for (size_t i = 0; i < cfg->nlisteners; i++)
            if (cfg->listeners[i].pool_index >= cfg->npools)
                abort();
        for (size_t i = 0; i < cfg->npools; i++)
            if (cfg->pools[i].nbackends == 0 ||
                cfg->pools[i].buffer_low_watermark >= cfg->pools[i].buffer_high_watermark)
                abort();
    } else if (cfg || (errors && strstr(errors, "fuzz.json") != errors)) {
        abort();
    }
    config_free(cfg);
    free(errors);
    return 0;
}
