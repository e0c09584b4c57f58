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
    unsigned char *rec, *rec2;
    size_t n, n2;
    if (jobrec_encode(&j, &rec, &n) != 0)
        return 0;
    /* the bytes after a big text field's NUL are unspecified: the two reads
     * are compared by what they write */
    if (jobrec_decode(rec, n, &again) != 0 || jobrec_encode(&again, &rec2, &n2) != 0)
        abort(); /* what was read must survive being written */
    if (n2 != n || memcmp(rec, rec2, n) != 0 || j.id != again.id || j.state != again.state)
        abort();
    free(rec);
    free(rec2);
    return 0;
}
