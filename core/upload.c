/* upload.c - the chunk arithmetic of spec §2.5 (see upload.h). */
#include "upload.h"
#include "tiktok.h"

#include <stdio.h>

int upload_plan(uint64_t size, struct chunk_plan *p, char *why, size_t n)
{
    if (size == 0) {
        snprintf(why, n, "the file is empty");
        return -1;
    }
    if (size > TT_VIDEO_MAX_BYTES) {
        snprintf(why, n, "the file is %llu bytes; TikTok takes videos up to 4 GB",
                 (unsigned long long)size);
        return -1;
    }
    p->size = size;
    if (size <= TT_SINGLE_CHUNK_MAX) {
        p->chunk_size = size; /* whole: required under 5 MB, allowed up to 64 MB */
        p->count = 1;
        return 0;
    }
    p->chunk_size = TT_CHUNK_SIZE;
    p->count = (uint32_t)(size / TT_CHUNK_SIZE); /* rounded down: the last takes the rest */
    return 0;
}

void upload_chunk(const struct chunk_plan *p, uint32_t i, uint64_t *first, uint64_t *len)
{
    *first = (uint64_t)i * p->chunk_size;
    *len = i + 1 == p->count ? p->size - *first : p->chunk_size;
}
