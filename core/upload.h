/* upload.h - the chunk plan for a FILE_UPLOAD (spec §2.5). */
#ifndef TIKD_UPLOAD_H
#define TIKD_UPLOAD_H

#include <stddef.h>
#include <stdint.h>

struct chunk_plan {
    uint64_t size;       /* video_size */
    uint64_t chunk_size; /* chunk_size */
    uint32_t count;      /* total_chunk_count = floor(size / chunk_size) */
};

/* Plan the upload of size bytes: one request up to 64,000,000 bytes, else
 * 10,000,000-byte chunks with the remainder in the last. -1 and why for a
 * size TikTok cannot take. */
int upload_plan(uint64_t size, struct chunk_plan *p, char *why, size_t n);

/* Bytes [first, first+len) of chunk i (0-based); the last takes the rest. */
void upload_chunk(const struct chunk_plan *p, uint32_t i, uint64_t *first, uint64_t *len);

#endif
