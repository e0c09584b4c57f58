/* media.c - the fast path (see media.h): a video's size and container from
 * its first bytes, and for ISO-BMFF (MP4, MOV, 3GP) the top-level box
 * headers, each checked against the file's size, so that an empty,
 * truncated or lying file is refused without starting the probe.
 *
 * Every read is a bounded pread into a local buffer and every offset is
 * checked against what was read; no media data is read. */
#include "media.h"
#include "fileio.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static uint32_t be32(const unsigned char *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static uint64_t be64(const unsigned char *p)
{
    return (uint64_t)be32(p) << 32 | be32(p + 4);
}

static void printable(char *out, const unsigned char *p, size_t n)
{
    for (size_t i = 0; i < n; i++) /* for messages, whatever the file holds */
        out[i] = p[i] >= 0x20 && p[i] < 0x7f ? (char)p[i] : '?';
    out[n] = '\0';
}

static bool brand_in(const unsigned char *b, const char *list)
{
    for (const char *s = list; *s; s += 5)
        if (memcmp(b, s, 4) == 0)
            return true;
    return false;
}

/* An EBML variable-length integer at p (n bytes left): its length in bytes
 * (0 when invalid), its value in *v with the length marker removed. */
static size_t vint(const unsigned char *p, size_t n, uint64_t *v)
{
    if (n == 0 || p[0] == 0)
        return 0;
    size_t len = 1;
    while (!(p[0] & (0x80 >> (len - 1))))
        len++;
    if (len > n)
        return 0;
    *v = p[0] & (0xFF >> len);
    for (size_t i = 1; i < len; i++)
        *v = *v << 8 | p[i];
    return len;
}

/* The DocType of an EBML header ("webm", "matroska"), from its first
 * bytes; 0, or -1 when the header does not say. */
static int ebml_doctype(const unsigned char *h, size_t n, char *out, size_t outn)
{
    uint64_t size;
    size_t l = vint(h + 4, n - 4, &size);
    if (!l)
        return -1;
    size_t off = 4 + l, end = size < n - off ? off + (size_t)size : n;
    while (off + 2 < end) {
        uint64_t id, len;
        size_t il = vint(h + off, end - off, &id); /* IDs keep their marker; compare raw */
        if (!il)
            return -1;
        uint32_t raw = 0;
        for (size_t i = 0; i < il; i++)
            raw = raw << 8 | h[off + i];
        size_t ll = vint(h + off + il, end - off - il, &len);
        if (!ll || len > end - off - il - ll)
            return -1;
        if (raw == 0x4282) { /* DocType */
            size_t k = len < outn - 1 ? (size_t)len : outn - 1;
            printable(out, h + off + il + ll, k);
            return 0;
        }
        off += il + ll + (size_t)len;
    }
    return -1;
}

static int fail(struct tikd_err *e, const char *path, const char *fmt, const char *arg)
{
    char msg[400];
    snprintf(msg, sizeof msg, fmt, arg);
    return tikd_fail(e, TIKD_EINVAL, "%s: %s", path, msg);
}

/* What the first bytes say the file is, for a file that is not ISO-BMFF. */
static int sniff_other(const char *path, const unsigned char *h, size_t n, struct media_info *mi,
                       struct tikd_err *e)
{
    if (n >= 4 && be32(h) == 0x1A45DFA3) {
        char doctype[24] = "";
        if (ebml_doctype(h, n, doctype, sizeof doctype) != 0)
            return fail(e, path, "%san EBML file whose header tikd cannot read", "");
        const char *c = strcmp(doctype, "webm") == 0       ? "webm"
                        : strcmp(doctype, "matroska") == 0 ? "matroska"
                                                           : NULL;
        if (c) {
            snprintf(mi->container, sizeof mi->container, "%s", c);
            return 0;
        }
        return fail(e, path, "an EBML file of type '%s', not WebM", doctype);
    }
    static const struct {
        const char *container;
        size_t off, len;
        const char *magic;
    } magics[] = {
        {"avi", 8, 4, "AVI "},
        {"flv", 0, 3, "FLV"},
        {"ogg", 0, 4, "OggS"},
        {"mpeg", 0, 4, "\0\0\1\xBA"},
        {"asf", 0, 4, "\x30\x26\xB2\x75"},
    };
    for (size_t i = 0; i < sizeof magics / sizeof magics[0]; i++)
        if (n >= magics[i].off + magics[i].len &&
            memcmp(h + magics[i].off, magics[i].magic, magics[i].len) == 0) {
            snprintf(mi->container, sizeof mi->container, "%s", magics[i].container);
            return 0;
        }
    if (n >= 189 && h[0] == 0x47 && h[188] == 0x47) {
        snprintf(mi->container, sizeof mi->container, "mpegts");
        return 0;
    }
    static const struct {
        size_t len;
        const char *magic, *what;
    } images[] = {
        {2, "\xFF\xD8", "a JPEG image"},
        {8, "\x89PNG\r\n\x1a\n", "a PNG image"},
        {4, "GIF8", "a GIF image"},
        {2, "BM", "a BMP image"},
    };
    for (size_t i = 0; i < sizeof images / sizeof images[0]; i++)
        if (n >= images[i].len && memcmp(h, images[i].magic, images[i].len) == 0)
            return fail(e, path, "%s, not a video", images[i].what);
    if (n >= 12 && memcmp(h, "RIFF", 4) == 0 && memcmp(h + 8, "WEBP", 4) == 0)
        return fail(e, path, "%sa WebP image, not a video", "");
    char start[9];
    printable(start, h, n < 8 ? n : 8);
    return fail(e, path,
                "not a video tikd knows (it starts with '%s'); TikTok accepts MP4, MOV or WebM",
                start);
}

/* One top-level box: its header h (got bytes of it) at off, left bytes to
 * the end of the file; *off moves past it. */
static int box_at(const char *path, int fd, uint64_t at, uint64_t left, const unsigned char *h,
                  ssize_t got, struct media_info *mi, bool *have_moov, bool *have_mdat,
                  uint64_t *off, struct tikd_err *e)
{
    if (got < 0)
        return tikd_fail(e, TIKD_EIO, "%s: cannot read: read failed", path);
    if (got < 8)
        return tikd_fail(e, TIKD_EINVAL,
                         "%s: the file ends inside a box header at byte %llu (truncated)", path,
                         (unsigned long long)at);
    uint64_t size = be32(h), hdr = 8;
    if (size == 1) {
        if (got < 16)
            return tikd_fail(e, TIKD_EINVAL,
                             "%s: the file ends inside a box header at byte %llu "
                             "(truncated)",
                             path, (unsigned long long)at);
        size = be64(h + 8);
        hdr = 16;
    } else if (size == 0) {
        size = left;
    }
    char type[5];
    printable(type, h + 4, 4);
    if (size < hdr || size > left)
        return tikd_fail(e, TIKD_EINVAL,
                         "%s: box '%s' at byte %llu claims %llu bytes but the file has %llu "
                         "left: the file is truncated, or the box lies about its size",
                         path, type, (unsigned long long)at, (unsigned long long)size,
                         (unsigned long long)left);
    if (at == 0) {
        unsigned char brand[4] = "";
        if (size < hdr + 4 || pread(fd, brand, 4, (off_t)(at + hdr)) != 4)
            return tikd_fail(e, TIKD_EINVAL, "%s: the ftyp box has no brand", path);
        if (brand_in(brand, "heic heix heim heis hevc hevx mif1 msf1 avif avis "))
            return fail(e, path, "%san HEIC or AVIF image, not a video", "");
        const char *c = memcmp(brand, "qt  ", 4) == 0 ? "mov"
                        : memcmp(brand, "3g", 2) == 0 ? "3gp"
                                                      : "mp4";
        snprintf(mi->container, sizeof mi->container, "%s", c);
    }
    *have_moov |= memcmp(h + 4, "moov", 4) == 0;
    *have_mdat |= memcmp(h + 4, "mdat", 4) == 0;
    *off = at + size;
    return 0;
}

/* The most top-level boxes a video may have: a fragmented file has two per
 * fragment (a fragment a frame, 10 minutes at 60 fps: 72000). More is not a
 * video but a file built to keep the walk busy. */
#define BOXES_MAX 200000

/* Header bytes at off (up to 16, fewer at the end of the file). A header
 * is read by itself (16 bytes), so a file of large boxes (a fragmented
 * video: moof, mdat, moof, ...) costs one small read per box; after a run of
 * SMALL_RUN small boxes a window of 64 KiB is read instead, so a file built
 * of tiny boxes costs one read per window, not one per box. */
#define SMALL_BOX 4096
#define SMALL_RUN 32

struct window {
    unsigned char b[65536];
    uint64_t at;
    size_t n;
    unsigned small; /* small boxes in a row, just before */
};

static ssize_t header_at(int fd, struct window *w, uint64_t off, uint64_t left,
                         const unsigned char **h)
{
    size_t want = left < 16 ? (size_t)left : 16;
    if (off < w->at || off + want > w->at + w->n) {
        size_t n = w->small >= SMALL_RUN ? sizeof w->b : 16;
        ssize_t got = pread(fd, w->b, n, (off_t)off);
        if (got < 0)
            return -1;
        w->at = off;
        w->n = (size_t)got;
    }
    *h = w->b + (off - w->at);
    size_t have = (size_t)(w->at + w->n - off);
    return (ssize_t)(have < want ? have : want);
}

/* Walk the top-level boxes of an ISO-BMFF file by their headers. */
static int walk_boxes(const char *path, int fd, uint64_t fsize, struct media_info *mi,
                      struct tikd_err *e)
{
    bool have_moov = false, have_mdat = false;
    struct window *w = malloc(sizeof *w);
    if (!w)
        return tikd_fail(e, TIKD_ENOMEM, "out of memory");
    w->at = w->n = 0;
    w->small = 0;
    int rc = 0;
    unsigned long boxes = 0;
    for (uint64_t off = 0; rc == 0 && off < fsize; boxes++) {
        const unsigned char *h;
        uint64_t left = fsize - off;
        if (boxes == BOXES_MAX) {
            rc = tikd_fail(e, TIKD_EINVAL,
                           "%s: more than %d top-level boxes: not a video tikd reads", path,
                           BOXES_MAX);
            break;
        }
        ssize_t got = header_at(fd, w, off, left, &h);
        uint64_t at = off;
        rc = box_at(path, fd, off, left, h, got, mi, &have_moov, &have_mdat, &off, e);
        w->small = off - at < SMALL_BOX ? w->small + 1 : 0;
    }
    free(w);
    if (rc != 0)
        return rc;
    if (!have_moov)
        return tikd_fail(e, TIKD_EINVAL, "%s: no movie header (moov box): not a playable MP4/MOV",
                         path);
    if (!have_mdat)
        return tikd_fail(e, TIKD_EINVAL, "%s: no media data (mdat box)", path);
    return 0;
}

int media_sniff_fd(int fd, const struct stat *st, const char *path, struct media_info *mi,
                   struct tikd_err *e)
{
    memset(mi, 0, sizeof *mi);
    int rc;
    unsigned char h[512];
    ssize_t n;
    mi->size = (uint64_t)st->st_size;
    if (!S_ISREG(st->st_mode))
        rc = tikd_fail(e, TIKD_EINVAL, "%s: not a regular file", path);
    else if (st->st_size == 0)
        rc = tikd_fail(e, TIKD_EINVAL, "%s: the file is empty", path);
    else if ((n = pread(fd, h, sizeof h, 0)) < 0)
        rc = tikd_fail(e, TIKD_EIO, "%s: cannot read: read failed", path);
    else if (n >= 8 && memcmp(h + 4, "ftyp", 4) == 0)
        rc = walk_boxes(path, fd, (uint64_t)st->st_size, mi, e);
    else
        rc = sniff_other(path, h, (size_t)n, mi, e);
    mi->dev = (uint64_t)st->st_dev;
    mi->ino = (uint64_t)st->st_ino;
    mi->mtime_ns = (int64_t)st->st_mtim.tv_sec * 1000000000 + st->st_mtim.tv_nsec;
    mi->ctime_ns = (int64_t)st->st_ctim.tv_sec * 1000000000 + st->st_ctim.tv_nsec;
    if (rc == 0)
        mi->mime = media_mime_of(mi->container);
    return rc;
}

const char *media_mime_of(const char *c)
{
    return strcmp(c, "mp4") == 0 || strcmp(c, "3gp") == 0 ? "video/mp4"
           : strcmp(c, "mov") == 0                        ? "video/quicktime"
           : strcmp(c, "webm") == 0                       ? "video/webm"
                                                          : NULL;
}

bool media_same_file(const struct media_info *mi, const struct stat *st)
{
    return S_ISREG(st->st_mode) && mi->dev == (uint64_t)st->st_dev &&
           mi->ino == (uint64_t)st->st_ino && mi->size == (uint64_t)st->st_size &&
           mi->mtime_ns == (int64_t)st->st_mtim.tv_sec * 1000000000 + st->st_mtim.tv_nsec &&
           mi->ctime_ns == (int64_t)st->st_ctim.tv_sec * 1000000000 + st->st_ctim.tv_nsec;
}

int media_sniff(const char *path, struct media_info *mi, struct tikd_err *e)
{
    struct stat st;
    int fd = fileio_open_read(path, &st, e); /* a FIFO: refused, never waited on */
    if (fd < 0) {
        memset(mi, 0, sizeof *mi);
        return fd;
    }
    int rc = media_sniff_fd(fd, &st, path, mi, e);
    close(fd);
    return rc;
}

const char *media_codec_label(const char *codec)
{
    static const struct {
        const char *codec, *label;
    } labels[] = {
        {"h264", "H.264"},        {"hevc", "H.265"},    {"vp8", "VP8"},
        {"vp9", "VP9"},           {"av1", "AV1"},       {"mpeg4", "MPEG-4 Part 2"},
        {"mjpeg", "Motion JPEG"}, {"prores", "ProRes"}, {"mpeg2video", "MPEG-2"},
        {"h263", "H.263"},
    };
    for (size_t i = 0; i < sizeof labels / sizeof labels[0]; i++)
        if (strcmp(codec, labels[i].codec) == 0)
            return labels[i].label;
    return codec[0] ? codec : "unknown";
}
