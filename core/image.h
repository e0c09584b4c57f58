/* image.h - what a photo is, read from its header, before any API call:
 * TikTok refuses a carousel with "picture_size_check_failed" or a format
 * error and never says which image, so tikd checks each one first.
 *
 * JPEG and WebP (what TikTok takes) are read fully enough to give their
 * pixel size; PNG, GIF, BMP and HEIC/AVIF are recognised so that the refusal
 * can name them. Only the first bytes are read, never the picture data. */
#ifndef TIKD_IMAGE_H
#define TIKD_IMAGE_H

#include "err.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Leading bytes enough for image_probe_buf on a fetched head (a ranged GET
 * of a photo URL); a JPEG whose frame header lies later says "truncated". */
#define IMAGE_HEAD_BYTES 65536
/* The most of a file any probe reads: a header past it is "too large". */
#define IMAGE_HEAD_MAX (256u << 10)

struct image_info {
    char format[8];    /* "jpeg", "webp"; refused: "png", "gif", "bmp", "heic", "avif" */
    int width, height; /* pixels, as stored in the header (EXIF rotation not applied) */
    uint64_t size;     /* bytes: the file size, or the total given to image_probe_buf */
    const char *mime;  /* "image/jpeg", "image/webp", or NULL for a refused format */
    int jpeg_sof;      /* JPEG frame type: 0xC0 baseline, 0xC2 progressive, ...; else 0 */
    bool head_short;   /* on failure: only because the header goes on past len */
};

/* Read an image's header from buf, the first len bytes of a file whose
 * whole size is total (0 when unknown). Never reads past len. Fails with
 * TIKD_EINVAL and a message (empty, unknown format, truncated, a segment or
 * chunk that lies about its length, zero width or height); when the failure
 * is only that the header goes on past len, ii->head_short is set and the
 * message says "truncated". A refused format (PNG, GIF, BMP, HEIC, AVIF)
 * succeeds with mime NULL and its size when the header gives it (else 0x0),
 * so that image_check_photo can name it. */
int image_probe_buf(const unsigned char *buf, size_t len, uint64_t total, struct image_info *ii,
                    struct tikd_err *e);

/* The same for the file at path: reads at most its first 256 KiB (a JPEG
 * whose frame header lies later fails as "header too large") and takes size
 * from fstat. Fails with TIKD_EIO when the file cannot be opened or read,
 * TIKD_EINVAL for a directory, an empty file or bad content; messages name
 * the path. */
int image_probe(const char *path, struct image_info *ii, struct tikd_err *e);

/* Check ii against TikTok's photo rules (spec §4.2): JPEG or WebP, at most
 * 1080p (TT_PHOTO_MAX_SHORT x TT_PHOTO_MAX_LONG either way), at most
 * TT_PHOTO_MAX_BYTES. Returns 0, or -1 with why (n bytes, caller-owned)
 * naming every problem found and what TikTok accepts, "; "-separated. */
int image_check_photo(const struct image_info *ii, char *why, size_t n);

#endif
