/* fuzz_webhook.c - a webhook as the public listener receives it: the
 * TikTok-Signature header (the input's first line) checked against the body
 * (the rest), and the body decoded whether or not it verified. */
#include "fuzz.h"

#include <stdlib.h>
#include <string.h>

#include "../../core/webhook.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *buf = malloc(size + 1);
    if (!buf)
        return 0;
    memcpy(buf, data, size);
    buf[size] = '\0';
    char *nl = memchr(buf, '\n', size);
    const char *header = nl ? buf : "";
    const char *body = nl ? nl + 1 : buf;
    if (nl)
        *nl = '\0';
    size_t n = size - (size_t)(body - buf);
    char why[300];
    webhook_verify("fuzz-client-secret", header, body, n, 1800000000.0, 300, why, sizeof why);
    struct webhook_event ev;
    webhook_parse(body, n, &ev, why, sizeof why);
    free(buf);
    return 0;
}
