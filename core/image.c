/* image.c - the photo header reader and TikTok's photo rules (see image.h).
 *
 * Every byte is read only after need() has checked it lies below len (the
 * bytes held); a length field is also checked against total (the file's
 * size, when known) by in_file(). Past len but inside the file is a short
 * head ("truncated", more bytes would tell); past the file's end is a cut
 * file or a length that lies. A JPEG is walked segment by segment, by their
 * lengths, up to its first frame header (SOFn); nothing after it is read. */
#include "image.h"
#include "fileio.h"
#include "tiktok.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

struct rd {
    const unsigned char *p;
    size_t len;     /* bytes held at p */
    uint64_t total; /* the file's size, 0 when unknown */
    struct image_info *ii;
    struct tikd_err *e;
};

static unsigned be16(const unsigned char *p)
{
    return (unsigned)p[0] << 8 | p[1];
}

static uint32_t be32(const unsigned char *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static unsigned le16(const unsigned char *p)
{
    return p[0] | (unsigned)p[1] << 8;
}

static uint32_t le24(const unsigned char *p)
{
    return p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16;
}

static uint32_t le32(const unsigned char *p)
{
    return le24(p) | (uint32_t)p[3] << 24;
}

/* 0 when bytes [0, end) are held; else fail saying where `what` was cut. */
static int need(struct rd *r, uint64_t end, const char *what)
{
    if (end <= r->len)
        return 0;
    if (r->total && end > r->total)
        return tikd_fail(r->e, TIKD_EINVAL,
                         "the file ends at byte %llu, inside %s: it is truncated",
                         (unsigned long long)r->total, what);
    r->ii->head_short = true;
    return tikd_fail(r->e, TIKD_EINVAL, "%s goes on past the first %zu bytes (truncated header)",
                     what, r->len);
}

/* 0 when a segment or chunk at off, declared to end at end, fits the file. */
static int in_file(struct rd *r, uint64_t off, uint64_t end, const char *what)
{
    if (!r->total || end <= r->total)
        return 0;
    return tikd_fail(r->e, TIKD_EINVAL,
                     "%s at byte %llu runs to byte %llu but the file ends at byte %llu: the file "
                     "is truncated, or it lies about its length",
                     what, (unsigned long long)off, (unsigned long long)end,
                     (unsigned long long)r->total);
}

/* Whether the held bytes at off match s; bytes beyond len count as a match,
 * so that a cut-short signature reads as truncated rather than unknown. */
static bool has(const struct rd *r, size_t off, const char *s, size_t n)
{
    for (size_t i = 0; i < n && off + i < r->len; i++)
        if (r->p[off + i] != (unsigned char)s[i])
            return false;
    return true;
}

/* Four bytes as text for a message, whatever the file holds. */
static void fourcc(const unsigned char *p, char out[5])
{
    for (int i = 0; i < 4; i++)
        out[i] = p[i] >= 0x20 && p[i] < 0x7f ? (char)p[i] : '?';
    out[4] = '\0';
}

static bool is_sof(int m)
{
    return m >= 0xC0 && m <= 0xCF && m != 0xC4 && m != 0xC8 && m != 0xCC;
}

static void segment_name(int m, char *out, size_t n)
{
    if (is_sof(m))
        snprintf(out, n, "frame header SOF%d", m - 0xC0);
    else if (m >= 0xE0 && m <= 0xEF)
        snprintf(out, n, "segment APP%d", m - 0xE0);
    else if (m == 0xC4 || m == 0xCC || m == 0xDB || m == 0xDD || m == 0xFE)
        snprintf(out, n, "segment %s",
                 m == 0xC4   ? "DHT"
                 : m == 0xCC ? "DAC"
                 : m == 0xDB ? "DQT"
                 : m == 0xDD ? "DRI"
                             : "COM");
    else
        snprintf(out, n, "segment FF%02X", m);
}

static int probe_jpeg(struct rd *r)
{
    char what[48];
    uint64_t off = 2; /* after SOI */
    for (;;) {
        if (need(r, off + 2, "the next JPEG marker"))
            return TIKD_EINVAL;
        if (r->p[off] != 0xFF)
            return tikd_fail(r->e, TIKD_EINVAL,
                             "expected a JPEG marker at byte %llu, found 0x%02x: the segment "
                             "before it has a wrong length, or the file is corrupt",
                             (unsigned long long)off, r->p[off]);
        while (r->p[off + 1] == 0xFF) /* fill bytes may pad a marker */
            if (need(r, ++off + 2, "the next JPEG marker"))
                return TIKD_EINVAL;
        int m = r->p[off + 1];
        if (m == 0x01 || (m >= 0xD0 && m <= 0xD7)) { /* TEM, RSTn: no length */
            off += 2;
            continue;
        }
        if (m == 0xD9 || m == 0xDA)
            return tikd_fail(r->e, TIKD_EINVAL,
                             "the JPEG reaches its %s at byte %llu before any frame header (SOF)",
                             m == 0xD9 ? "end (EOI)" : "scan (SOS)", (unsigned long long)off);
        if (m == 0x00 || m == 0xD8)
            return tikd_fail(r->e, TIKD_EINVAL, "bad JPEG marker FF%02X at byte %llu", m,
                             (unsigned long long)off);
        segment_name(m, what, sizeof what);
        if (need(r, off + 4, what))
            return TIKD_EINVAL;
        unsigned seglen = be16(r->p + off + 2); /* counts itself, not the marker */
        if (seglen < 2 || (is_sof(m) && seglen < 8))
            return tikd_fail(r->e, TIKD_EINVAL,
                             "%s at byte %llu has length %u, less than its header needs: the "
                             "length lies",
                             what, (unsigned long long)off, seglen);
        uint64_t end = off + 2 + seglen;
        if (in_file(r, off, end, what) || need(r, end, what))
            return TIKD_EINVAL;
        if (is_sof(m)) { /* precision (1), height (2), width (2), components (1) */
            r->ii->jpeg_sof = m;
            r->ii->height = (int)be16(r->p + off + 5);
            r->ii->width = (int)be16(r->p + off + 7);
            return 0;
        }
        off = end;
    }
}

static int probe_webp(struct rd *r)
{
    if (need(r, 20, "the RIFF header and first WebP chunk header"))
        return TIKD_EINVAL;
    uint64_t riff_end = 8 + (uint64_t)le32(r->p + 4);
    if (riff_end < 20)
        return tikd_fail(r->e, TIKD_EINVAL,
                         "the RIFF header claims %llu bytes, too few for a WebP chunk: its length "
                         "lies",
                         (unsigned long long)(riff_end - 8));
    if (in_file(r, 0, riff_end, "the RIFF container"))
        return TIKD_EINVAL;
    char cc[5];
    fourcc(r->p + 12, cc);
    uint64_t csize = le32(r->p + 16);
    if (20 + csize > riff_end)
        return tikd_fail(r->e, TIKD_EINVAL,
                         "WebP chunk '%s' claims %llu bytes but the RIFF container holds %llu "
                         "after it: its length lies",
                         cc, (unsigned long long)csize, (unsigned long long)(riff_end - 20));
    unsigned hdr = strcmp(cc, "VP8 ") == 0 || strcmp(cc, "VP8X") == 0 ? 10
                   : strcmp(cc, "VP8L") == 0                          ? 5
                                                                      : 0;
    if (!hdr)
        return tikd_fail(r->e, TIKD_EINVAL,
                         "unknown first WebP chunk '%s' (a WebP starts with VP8, VP8L or VP8X)",
                         cc);
    if (csize < hdr)
        return tikd_fail(r->e, TIKD_EINVAL,
                         "WebP chunk '%s' is %llu bytes, shorter than its %u-byte header: its "
                         "length lies",
                         cc, (unsigned long long)csize, hdr);
    if (need(r, 20 + hdr, "the WebP image header"))
        return TIKD_EINVAL;
    const unsigned char *c = r->p + 20;
    if (cc[3] == ' ') { /* lossy: frame tag (3), start code (3), 14-bit width and height */
        if (c[0] & 1)
            return tikd_fail(r->e, TIKD_EINVAL, "the WebP's VP8 frame is not a key frame");
        if (c[3] != 0x9d || c[4] != 0x01 || c[5] != 0x2a)
            return tikd_fail(r->e, TIKD_EINVAL, "the WebP's VP8 start code (9d 01 2a) is missing");
        r->ii->width = (int)(le16(c + 6) & 0x3fff);
        r->ii->height = (int)(le16(c + 8) & 0x3fff);
    } else if (cc[3] == 'L') { /* lossless: signature, then 14 bits each of width-1, height-1 */
        uint32_t b = le32(c + 1);
        if (c[0] != 0x2f || b >> 29 != 0)
            return tikd_fail(r->e, TIKD_EINVAL,
                             "the WebP's VP8L header is not valid (signature 0x%02x, version %u)",
                             c[0], (unsigned)(b >> 29));
        r->ii->width = (int)(b & 0x3fff) + 1;
        r->ii->height = (int)(b >> 14 & 0x3fff) + 1;
    } else { /* extended: flags (1), reserved (3), 24 bits each of width-1, height-1 */
        r->ii->width = (int)le24(c + 4) + 1;
        r->ii->height = (int)le24(c + 7) + 1;
    }
    return 0;
}

/* Whether the 4 bytes at b are one of list's space-separated brands. */
static bool brand_in(const unsigned char *b, const char *list)
{
    for (size_t i = 0; i + 4 <= strlen(list); i += 5)
        if (memcmp(b, list + i, 4) == 0)
            return true;
    return false;
}

static int clamp_dim(int64_t v)
{
    v = v < 0 ? -v : v; /* a BMP stored top-down has a negative height */
    return v > 0x7fffffff ? 0 : (int)v;
}

/* Name a refused format, with its size when the header gives it easily.
 * Returns 1 when recognised, 0 when not. */
static int probe_refused(struct rd *r)
{
    const unsigned char *p = r->p;
    struct image_info *ii = r->ii;
    const char *fmt = NULL;
    int64_t w = 0, h = 0;
    if (r->len >= 8 && memcmp(p, "\x89PNG\r\n\x1a\n", 8) == 0) {
        fmt = "png";
        if (r->len >= 24 && memcmp(p + 12, "IHDR", 4) == 0) {
            w = be32(p + 16);
            h = be32(p + 20);
        }
    } else if (r->len >= 6 && (memcmp(p, "GIF87a", 6) == 0 || memcmp(p, "GIF89a", 6) == 0)) {
        fmt = "gif";
        if (r->len >= 10) { /* the logical screen */
            w = le16(p + 6);
            h = le16(p + 8);
        }
    } else if (r->len >= 26 && p[0] == 'B' && p[1] == 'M' &&
               (le32(p + 14) == 12 || (le32(p + 14) >= 40 && le32(p + 14) <= 124))) {
        bool core = le32(p + 14) == 12; /* the OS/2 header has 16-bit sides */
        fmt = "bmp";
        w = core ? (int32_t)le16(p + 18) : (int32_t)le32(p + 18);
        h = core ? (int32_t)le16(p + 20) : (int32_t)le32(p + 22);
    } else if (r->len >= 12 && memcmp(p + 4, "ftyp", 4) == 0) {
        if (brand_in(p + 8, "avif avis"))
            fmt = "avif";
        else if (brand_in(p + 8, "heic heix heim heis hevc hevx mif1 msf1"))
            fmt = "heic";
        /* a generic HEIF (mif1, msf1) that lists avif among its compatible brands is AVIF */
        for (size_t o = 16; brand_in(p + 8, "mif1 msf1") && o + 4 <= be32(p) && o + 4 <= r->len;
             o += 4)
            if (brand_in(p + o, "avif"))
                fmt = "avif";
    }
    if (!fmt)
        return 0;
    snprintf(ii->format, sizeof ii->format, "%s", fmt);
    ii->width = clamp_dim(w);
    ii->height = clamp_dim(h);
    return 1;
}

int image_probe_buf(const unsigned char *buf, size_t len, uint64_t total, struct image_info *ii,
                    struct tikd_err *e)
{
    memset(ii, 0, sizeof *ii);
    ii->size = total;
    struct rd r = {buf, buf ? len : 0, total && total < len ? len : total, ii, e};
    if (r.len == 0 && total == 0)
        return tikd_fail(e, TIKD_EINVAL, "the image is empty (no bytes)");
    if (r.len == 0)
        return need(&r, 1, "the image header");
    int rc;
    if (has(&r, 0, "\xFF\xD8", 2)) {
        snprintf(ii->format, sizeof ii->format, "jpeg");
        rc = probe_jpeg(&r);
    } else if (has(&r, 0, "RIFF", 4) && has(&r, 8, "WEBP", 4)) {
        snprintf(ii->format, sizeof ii->format, "webp");
        rc = probe_webp(&r);
    } else if (probe_refused(&r)) {
        return 0;
    } else {
        char hex[3 * 8 + 1], brand[5];
        size_t i = 0;
        for (; i < 8 && i < r.len; i++)
            snprintf(hex + 3 * i, sizeof hex - 3 * i, "%02x ", buf[i]);
        hex[3 * i - 1] = '\0'; /* r.len > 0, so i >= 1 */
        if (r.len >= 12 && memcmp(buf + 4, "ftyp", 4) == 0) {
            fourcc(buf + 8, brand);
            return tikd_fail(e, TIKD_EINVAL,
                             "unknown image format: an ISO-BMFF file of brand '%s' (a video?); "
                             "TikTok takes JPEG or WebP photos",
                             brand);
        }
        return tikd_fail(e, TIKD_EINVAL,
                         "unknown image format (it starts with %s); TikTok takes JPEG or WebP",
                         hex);
    }
    if (rc != 0)
        return rc;
    if (ii->width == 0 || ii->height == 0)
        return tikd_fail(e, TIKD_EINVAL,
                         "the %s header gives a size of %dx%d: zero width or height",
                         ii->format[0] == 'j' ? "JPEG" : "WebP", ii->width, ii->height);
    ii->mime = ii->format[0] == 'j' ? "image/jpeg" : "image/webp";
    return 0;
}

int image_probe(const char *path, struct image_info *ii, struct tikd_err *e)
{
    memset(ii, 0, sizeof *ii);
    struct stat st;
    int fd = fileio_open_read(path, &st, e); /* a FIFO: refused below, never waited on */
    if (fd < 0)
        return fd;
    int rc = 0;
    unsigned char *buf = NULL;
    uint64_t size = (uint64_t)st.st_size;
    if (S_ISDIR(st.st_mode)) {
        rc = tikd_fail(e, TIKD_EINVAL, "%s: is a directory, not an image file", path);
        goto out;
    }
    if (!S_ISREG(st.st_mode)) {
        rc = tikd_fail(e, TIKD_EINVAL, "%s: not a regular file", path);
        goto out;
    }
    if (size == 0) {
        rc = tikd_fail(e, TIKD_EINVAL, "%s: the file is empty", path);
        goto out;
    }
    size_t want = size < IMAGE_HEAD_MAX ? (size_t)size : IMAGE_HEAD_MAX, got = 0;
    buf = malloc(want);
    if (!buf) {
        rc = tikd_fail(e, TIKD_ENOMEM, "%s: out of memory", path);
        goto out;
    }
    while (got < want) {
        ssize_t k = pread(fd, buf + got, want - got, (off_t)got);
        if (k < 0 && errno == EINTR)
            continue;
        if (k < 0) {
            rc = tikd_fail(e, TIKD_EIO, "%s: cannot read: %s", path, strerror(errno));
            goto out;
        }
        if (k == 0) { /* the file shrank under us: what we read is all there is */
            size = got;
            break;
        }
        got += (size_t)k;
    }
    struct tikd_err pe = {0};
    rc = image_probe_buf(buf, got, size, ii, &pe);
    if (rc != 0 && ii->head_short)
        tikd_fail(e, rc,
                  "%s: header too large: the image header does not end within the first %u KiB "
                  "that tikd reads (a very large EXIF or embedded preview?)",
                  path, IMAGE_HEAD_MAX >> 10);
    else if (rc != 0)
        tikd_fail(e, rc, "%s: %.480s", path, pe.msg);
out:
    ii->size = size;
    free(buf);
    close(fd);
    return rc;
}

struct why {
    char *s;
    size_t n, used;
    int count;
};

/* Append one problem to w, "; "-separated, cut to fit. */
__attribute__((format(printf, 2, 3))) static void say(struct why *w, const char *fmt, ...)
{
    char part[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(part, sizeof part, fmt, ap);
    va_end(ap);
    if (w->used + 1 < w->n) {
        int k = snprintf(w->s + w->used, w->n - w->used, "%s%s", w->count ? "; " : "", part);
        if (k > 0)
            w->used += (size_t)k < w->n - w->used ? (size_t)k : w->n - w->used - 1;
    }
    w->count++;
}

int image_check_photo(const struct image_info *ii, char *why, size_t n)
{
    struct why w = {why, n, 0, 0};
    if (n)
        why[0] = '\0';
    bool ok_format = strcmp(ii->format, "jpeg") == 0 || strcmp(ii->format, "webp") == 0;
    if (!ok_format) {
        char up[sizeof ii->format] = "";
        for (size_t i = 0; i + 1 < sizeof up && ii->format[i]; i++)
            up[i] = (char)(ii->format[i] >= 'a' && ii->format[i] <= 'z' ? ii->format[i] - 32
                                                                        : ii->format[i]);
        say(&w, "%s is not accepted: TikTok takes JPEG or WebP", up[0] ? up : "this format");
    }
    int lng = ii->width > ii->height ? ii->width : ii->height;
    int shrt = ii->width > ii->height ? ii->height : ii->width;
    if (ok_format && (ii->width <= 0 || ii->height <= 0))
        say(&w, "the picture size is unknown; TikTok takes at most %dx%d either way",
            TT_PHOTO_MAX_SHORT, TT_PHOTO_MAX_LONG);
    else if (lng > TT_PHOTO_MAX_LONG || shrt > TT_PHOTO_MAX_SHORT)
        say(&w, "%dx%d is larger than TikTok's 1080p photo limit (at most %dx%d either way)",
            ii->width, ii->height, TT_PHOTO_MAX_SHORT, TT_PHOTO_MAX_LONG);
    if (ii->size > TT_PHOTO_MAX_BYTES)
        say(&w, "the file is %llu bytes (%.1f MB); TikTok takes photos up to 20 MB (%llu bytes)",
            (unsigned long long)ii->size, (double)ii->size / 1e6, TT_PHOTO_MAX_BYTES);
    return w.count ? -1 : 0;
}
