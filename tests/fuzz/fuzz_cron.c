/* fuzz_cron.c - the cron parser, and the next firing of what parsed in a
 * zone with a gap and one with an overlap (the input's first byte picks). */
#include "fuzz.h"

#include <stdlib.h>
#include <string.h>

#include "../../core/cron.h"

static const char *const zones[] = {"UTC", "America/New_York", "Australia/Lord_Howe",
                                    "Asia/Kolkata"};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1 || size > 512)
        return 0;
    char *expr = malloc(size);
    if (!expr)
        return 0;
    memcpy(expr, data + 1, size - 1);
    expr[size - 1] = '\0';
    struct cron c;
    struct tikd_err e = {0};
    if (cron_parse(expr, &c, &e) == 0 && cron_can_fire(&c)) {
        double next;
        cron_next(&c, zones[data[0] % 4], 1796000000.0 + data[0] * 3600.0, &next, &e);
    }
    free(expr);
    return 0;
}
