/* media.c - the ISO-BMFF box reader and TikTok's video rules (see media.h).
 *
 * Every offset read is checked against the end of the buffer it points into
 * (struct span); a box whose declared size runs past its parent or the file
 * is an error ("the file is truncated, or box X lies about its size"). */
#include "media.h"
#include "fileio.h"
#include "tiktok.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define MOOV_MAX (64u << 20) /* a moov larger than this is not a sane short video */

struct span {
    const unsigned char *p;
    size_t n;
};

static uint32_t be32(const unsigned char *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static uint64_t be64(const unsigned char *p)
{
    return (uint64_t)be32(p) << 32 | be32(p + 4);
}

/* Find the first child box of type `type` inside s; fills body. Returns 0,
 * 1 when absent, -1 when a box lies about its size. */
static int find_box(struct span s, const char *type, struct span *body, char *bad)
{
    size_t off = 0;
    while (off + 8 <= s.n) {
        uint64_t size = be32(s.p + off);
        size_t hdr = 8;
        if (size == 1) {
            if (off + 16 > s.n)
                return -1;
            size = be64(s.p + off + 8);
            hdr = 16;
        } else if (size == 0) {
            size = s.n - off;
        }
        if (size < hdr || size > s.n - off) {
            memcpy(bad, s.p + off + 4, 4);
            bad[4] = '\0';
            return -1;
        }
        if (memcmp(s.p + off + 4, type, 4) == 0) {
            *body = (struct span){s.p + off + hdr, (size_t)size - hdr};
            return 0;
        }
        off += (size_t)size;
    }
    return 1;
}

/* A path of nested boxes, e.g. "mdia/minf/stbl/stsd". */
static int find_path(struct span s, const char *path, struct span *out, char *bad)
{
    char type[5] = {0};
    while (*path) {
        memcpy(type, path, 4);
        int rc = find_box(s, type, &s, bad);
        if (rc)
            return rc;
        path += 4;
        if (*path == '/')
            path++;
    }
    *out = s;
    return 0;
}

static const struct {
    const char *fourcc, *name;
} codecs[] = {
    {"avc1", "H.264"},       {"avc3", "H.264"},  {"hvc1", "H.265"},  {"hev1", "H.265"},
    {"vp08", "VP8"},         {"vp09", "VP9"},    {"av01", "AV1"},    {"mp4v", "MPEG-4 Part 2"},
    {"jpeg", "Motion JPEG"}, {"apcn", "ProRes"}, {"apch", "ProRes"},
};

/* Fill mi from one video trak; 0 or -1 with e. */
static int read_video_trak(struct span trak, struct media_info *mi, struct tikd_err *e, char *bad)
{
    struct span mdhd, stsd, stts, tkhd;
    if (find_path(trak, "mdia/mdhd", &mdhd, bad) || mdhd.n < 24)
        return tikd_fail(e, TIKD_EINVAL, "the video track has no valid media header (mdhd)");
    uint32_t timescale;
    uint64_t duration;
    if (mdhd.p[0] == 1) {
        if (mdhd.n < 32)
            return tikd_fail(e, TIKD_EINVAL, "the media header (mdhd) is cut short");
        timescale = be32(mdhd.p + 20);
        duration = be64(mdhd.p + 24);
    } else {
        timescale = be32(mdhd.p + 12);
        duration = be32(mdhd.p + 16);
    }
    if (timescale == 0)
        return tikd_fail(e, TIKD_EINVAL, "the video track's timescale is 0");
    mi->duration = (double)duration / timescale;
    if (find_path(trak, "mdia/minf/stbl/stsd", &stsd, bad) || stsd.n < 16)
        return tikd_fail(e, TIKD_EINVAL, "the video track has no sample description (stsd)");
    /* full box header (4) + entry count (4), then the first sample entry */
    struct span entry = {stsd.p + 8, stsd.n - 8};
    uint32_t esize = be32(entry.p);
    if (esize < 8 + 28 || esize > entry.n)
        return tikd_fail(e, TIKD_EINVAL,
                         "the video sample entry is cut short or lies about its "
                         "size");
    memcpy(mi->codec, entry.p + 4, 4);
    mi->codec[4] = '\0';
    for (size_t i = 0; i < sizeof codecs / sizeof codecs[0]; i++)
        if (memcmp(mi->codec, codecs[i].fourcc, 4) == 0)
            mi->codec_name = codecs[i].name;
    /* VisualSampleEntry: 6 reserved, 2 data ref index, 16 pre-defined and
     * reserved, then width and height (16 bits each) */
    mi->width = (int)(entry.p[8 + 24] << 8 | entry.p[8 + 25]);
    mi->height = (int)(entry.p[8 + 26] << 8 | entry.p[8 + 27]);
    if ((mi->width == 0 || mi->height == 0) && find_box(trak, "tkhd", &tkhd, bad) == 0 &&
        tkhd.n >= 84) {
        size_t o = tkhd.n - 8; /* width and height, 16.16 fixed point, end the box */
        mi->width = (int)(be32(tkhd.p + o) >> 16);
        mi->height = (int)(be32(tkhd.p + o + 4) >> 16);
    }
    if (find_path(trak, "mdia/minf/stbl/stts", &stts, bad) == 0 && stts.n >= 8) {
        uint32_t n = be32(stts.p + 4);
        uint64_t samples = 0;
        for (uint32_t i = 0; i < n && 8 + (size_t)(i + 1) * 8 <= stts.n; i++)
            samples += be32(stts.p + 8 + (size_t)i * 8);
        if (mi->duration > 0)
            mi->fps = (double)samples / mi->duration;
    }
    return 0;
}

static bool is_video_trak(struct span trak, char *bad)
{
    struct span hdlr;
    return find_path(trak, "mdia/hdlr", &hdlr, bad) == 0 && hdlr.n >= 12 &&
           memcmp(hdlr.p + 8, "vide", 4) == 0;
}

int media_probe(const char *path, struct media_info *mi, struct tikd_err *e)
{
    memset(mi, 0, sizeof *mi);
    struct stat st;
    int fd = fileio_open_read(path, &st, e); /* a FIFO: refused below, never waited on */
    if (fd < 0)
        return fd;
    int rc = 0;
    unsigned char *moov = NULL;
    char bad[5] = "?";
    mi->size = (uint64_t)st.st_size;
    if (!S_ISREG(st.st_mode)) {
        rc = tikd_fail(e, TIKD_EINVAL, "%s: not a regular file", path);
        goto out;
    }
    if (st.st_size == 0) {
        rc = tikd_fail(e, TIKD_EINVAL, "%s: the file is empty", path);
        goto out;
    }
    unsigned char head[16];
    ssize_t hn = pread(fd, head, sizeof head, 0);
    if (hn >= 4 && be32(head) == 0x1A45DFA3) { /* EBML: WebM (or Matroska) */
        snprintf(mi->container, sizeof mi->container, "webm");
        mi->mime = "video/webm";
        goto out;
    }
    /* walk the top-level boxes by their headers */
    uint64_t off = 0, fsize = (uint64_t)st.st_size;
    bool have_ftyp = false, have_mdat = false;
    uint64_t moov_off = 0, moov_size = 0;
    while (off < fsize) {
        unsigned char h[16];
        if (fsize - off < 8 || pread(fd, h, 16, (off_t)off) < 8) {
            rc = tikd_fail(e, TIKD_EINVAL,
                           "%s: the file ends inside a box header at byte %llu "
                           "(truncated)",
                           path, (unsigned long long)off);
            goto out;
        }
        uint64_t size = be32(h), hdr = 8;
        if (size == 1) {
            if (fsize - off < 16) {
                rc = tikd_fail(e, TIKD_EINVAL, "%s: truncated box header", path);
                goto out;
            }
            size = be64(h + 8);
            hdr = 16;
        } else if (size == 0) {
            size = fsize - off;
        }
        char type[5];
        for (int i = 0; i < 4; i++) /* printable in messages, whatever the file holds */
            type[i] = h[4 + i] >= 0x20 && h[4 + i] < 0x7f ? (char)h[4 + i] : '?';
        type[4] = '\0';
        if (off == 0 && strcmp(type, "ftyp") != 0) {
            rc = tikd_fail(e, TIKD_EINVAL,
                           "%s: not an MP4, MOV or WebM file (it starts with "
                           "'%s', not an ftyp box)",
                           path, type);
            goto out;
        }
        if (size < hdr || size > fsize - off) {
            rc = tikd_fail(e, TIKD_EINVAL,
                           "%s: box '%s' at byte %llu claims %llu bytes but the file has %llu "
                           "left: the file is truncated, or the box lies about its size",
                           path, type, (unsigned long long)off, (unsigned long long)size,
                           (unsigned long long)(fsize - off));
            goto out;
        }
        if (strcmp(type, "ftyp") == 0) {
            have_ftyp = true;
            unsigned char brand[4]; /* the major brand follows the header, 8 or 16 bytes */
            bool qt = size >= hdr + 4 && pread(fd, brand, 4, (off_t)(off + hdr)) == 4 &&
                      memcmp(brand, "qt  ", 4) == 0;
            snprintf(mi->container, sizeof mi->container, qt ? "mov" : "mp4");
            mi->mime = strcmp(mi->container, "mov") == 0 ? "video/quicktime" : "video/mp4";
        } else if (strcmp(type, "moov") == 0) {
            moov_off = off + hdr;
            moov_size = size - hdr;
        } else if (strcmp(type, "mdat") == 0) {
            have_mdat = true;
        }
        off += size;
    }
    if (!have_ftyp || !moov_size) {
        rc = tikd_fail(e, TIKD_EINVAL, "%s: no movie header (moov box): not a playable MP4/MOV",
                       path);
        goto out;
    }
    if (!have_mdat) {
        rc = tikd_fail(e, TIKD_EINVAL, "%s: no media data (mdat box)", path);
        goto out;
    }
    if (moov_size > MOOV_MAX) {
        rc = tikd_fail(e, TIKD_EINVAL,
                       "%s: the movie header is %llu bytes, larger than tikd "
                       "reads (%u)",
                       path, (unsigned long long)moov_size, MOOV_MAX);
        goto out;
    }
    moov = malloc(moov_size ? moov_size : 1);
    if (!moov || pread(fd, moov, moov_size, (off_t)moov_off) != (ssize_t)moov_size) {
        rc = tikd_fail(e, TIKD_EIO, "%s: cannot read the movie header", path);
        goto out;
    }
    struct span m = {moov, (size_t)moov_size}, trak;
    bool found = false;
    while (!found) {
        int f = find_box(m, "trak", &trak, bad);
        if (f < 0) {
            rc = tikd_fail(e, TIKD_EINVAL,
                           "%s: box '%s' inside the movie header lies about its "
                           "size",
                           path, bad);
            goto out;
        }
        if (f > 0)
            break;
        if (is_video_trak(trak, bad)) {
            found = true;
            break;
        }
        /* continue after this trak */
        size_t used = (size_t)(trak.p + trak.n - m.p);
        m = (struct span){m.p + used, m.n - used};
    }
    if (!found) {
        rc = tikd_fail(e, TIKD_EINVAL, "%s: no video track (only audio or nothing)", path);
        goto out;
    }
    rc = read_video_trak(trak, mi, e, bad);
    if (rc != 0) {
        char msg[sizeof e->msg];
        snprintf(msg, sizeof msg, "%s: %.400s", path, e->msg);
        tikd_fail(e, rc, "%s", msg);
    }
out:
    free(moov);
    close(fd);
    return rc;
}

int media_check_video(const struct media_info *mi, int max_duration_s, char *why, size_t n)
{
    int max = max_duration_s > 0 ? max_duration_s : TT_VIDEO_MAX_DURATION;
    if (mi->size > TT_VIDEO_MAX_BYTES) {
        snprintf(why, n, "the file is %.2f GB; TikTok accepts videos up to 4 GB",
                 (double)mi->size / 1e9);
        return -1;
    }
    if (strcmp(mi->container, "webm") == 0)
        return 0; /* recognised; its codec, size and rate are left to TikTok */
    if (!mi->codec_name ||
        !(strcmp(mi->codec_name, "H.264") == 0 || strcmp(mi->codec_name, "H.265") == 0 ||
          strcmp(mi->codec_name, "VP8") == 0 || strcmp(mi->codec_name, "VP9") == 0)) {
        snprintf(why, n,
                 "the video codec is %s ('%s'); TikTok accepts H.264 (recommended), H.265, "
                 "VP8 or VP9",
                 mi->codec_name ? mi->codec_name : "unknown", mi->codec);
        return -1;
    }
    if (mi->width < TT_VIDEO_MIN_SIDE || mi->height < TT_VIDEO_MIN_SIDE ||
        mi->width > TT_VIDEO_MAX_SIDE || mi->height > TT_VIDEO_MAX_SIDE) {
        snprintf(why, n, "the picture is %dx%d; TikTok accepts %d to %d pixels on both sides",
                 mi->width, mi->height, TT_VIDEO_MIN_SIDE, TT_VIDEO_MAX_SIDE);
        return -1;
    }
    if (mi->fps < TT_VIDEO_MIN_FPS - 0.01 || mi->fps > TT_VIDEO_MAX_FPS + 0.01) {
        snprintf(why, n, "the frame rate is %.2f fps; TikTok accepts 23 to 60 fps", mi->fps);
        return -1;
    }
    if (mi->duration <= 0) {
        snprintf(why, n, "the video has no duration");
        return -1;
    }
    if (mi->duration > max + 0.5) {
        snprintf(why, n, "the video lasts %.1f s; this creator may post up to %d s", mi->duration,
                 max);
        return -1;
    }
    return 0;
}
