/* fuzz_jobrec.c - a job's stored form (core/jobrec): any bytes read as a
 * record are refused or read within their length, and what reads is written
 * again and reads back the same. */
#include "fuzz.h"

#include <stdlib.h>
#include <string.h>

#include "../../core/jobrec.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct job j, again;
    if (jobrec_decode(data, size, &j) != 0)
        return 0;
    unsigned char *rec;
    size_t n;
    if (jobrec_encode(&j, &rec, &n) != 0)
        return 0;
    if (jobrec_decode(rec, n, &again) != 0 || memcmp(&j, &again, sizeof j) != 0)
        abort(); /* what was read must survive being written */
    free(rec);
    return 0;
}
