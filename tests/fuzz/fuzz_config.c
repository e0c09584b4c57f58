/* fuzz_config.c - the config reader: any file given as --config, evaluated
 * in its budgeted Lua state and applied key by key; then the environment
 * step and the final checks. */
#include "fuzz.h"

#include "../../bindings/lua_config.h"
#include "../../core/log.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char path[64];
    int fd = fuzz_file(data, size, path, sizeof path);
    if (fd < 0)
        return 0;
    struct tikd_config c;
    struct tikd_err e = {0};
    config_load(&c, path, &e);
    config_free(&c);
    tlog_secret_clear(); /* a client secret it read is registered: start clean */
    return 0;
}
