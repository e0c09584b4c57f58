/* fuzz_query.c - the OAuth callback's query parser: every parameter the
 * callback reads, from any query string, into buffers of the sizes it uses
 * (and a tiny one). */
#include "fuzz.h"

#include <stdlib.h>
#include <string.h>

#include "../../core/codec.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *q = malloc(size + 1);
    if (!q)
        return 0;
    memcpy(q, data, size);
    q[size] = '\0';
    static const char *const names[] = {"state", "code", "error", "error_description", "scopes"};
    char big[1024], small[4];
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        codec_query_param(q, names[i], big, sizeof big);
        codec_query_param(q, names[i], small, sizeof small);
    }
    free(q);
    return 0;
}
