/* media.h - what a video file is, read from its container, before any API
 * call: TikTok only says "file_format_check_failed" after the upload, and
 * never which image or what was wrong.
 *
 * MP4 and MOV (ISO-BMFF) are read by a small, bounds-checked box reader:
 * only box headers and the moov box (capped) are read, never the media
 * data. WebM is recognised by its EBML header; its details are not read. */
#ifndef TIKD_MEDIA_H
#define TIKD_MEDIA_H

#include "err.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct media_info {
    char container[8];      /* "mp4", "mov", "webm" */
    char codec[8];          /* sample entry fourcc: "avc1", "hvc1", "vp09", ... */
    const char *codec_name; /* "H.264", "H.265", "VP9", ... or NULL when unknown */
    double duration;        /* seconds */
    int width, height;
    double fps;
    uint64_t size;    /* bytes */
    const char *mime; /* Content-Type for the upload */
};

/* Read the container of path. A file that is not a readable MP4, MOV or
 * WebM fails with TIKD_EINVAL and a message saying what is wrong (empty,
 * truncated, a box whose size lies, no video track, ...). */
int media_probe(const char *path, struct media_info *mi, struct tikd_err *e);

/* Check mi against TikTok's video rules (spec §4.1) and the creator's
 * longest allowed duration (max_duration_s <= 0: the API's 600 s). Returns
 * 0, or -1 with why saying what is wrong and what TikTok accepts. */
int media_check_video(const struct media_info *mi, int max_duration_s, char *why, size_t n);

#endif
