/* media.h - what a video file is, and whether TikTok's rules let it be
 * posted, before any API call: TikTok only says "file_format_check_failed"
 * after the upload, and never what was wrong.
 *
 * Two readers, one result:
 *  - media_sniff, in process and fast: the file's size and container from
 *    its first bytes and, for MP4/MOV, its top-level box headers. It refuses
 *    only what is plainly not a video (empty, truncated, a box that lies,
 *    no movie header, an unknown format) and reads no media data;
 *  - the probe, FFmpeg's libavformat in a confined child process
 *    (probe/tikd-probe.c): codec, profile, picture size and rotation, frame
 *    rate, duration with edit lists and fragments applied, bit rate, audio.
 *    It never runs on the event loop: media_probe waits for it (commands),
 *    media_probe_start does not (the daemon).
 * TikTok's rules are one table (media_judge, core/mediarules.c). */
#ifndef TIKD_MEDIA_H
#define TIKD_MEDIA_H

#include "err.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct ev_loop;
struct stat;

struct media_info {
    /* from media_sniff */
    char container[12];         /* "mp4", "mov", "3gp", "webm", "matroska", "avi", "flv", "mpegts",
                                   "mpeg", "ogg", "asf" */
    const char *mime;           /* the upload's Content-Type (containers TikTok takes), else NULL */
    uint64_t size;              /* bytes */
    uint64_t dev, ino;          /* the file read: device, inode, and its change times (ns) ... */
    int64_t mtime_ns, ctime_ns; /* ... so that a later look can tell it is the same file */
    /* from the probe (probed is set) */
    bool probed;
    char demuxer[48]; /* libavformat's demuxer, e.g. "mov,mp4,m4a,3gp,3g2,mj2" */
    bool has_video, has_audio;
    char codec[16];                    /* FFmpeg's codec name: "h264", "hevc", "vp9", ... */
    char profile[40];                  /* "High", "Main 10", ... or "" */
    char tag[8];                       /* the container's codec tag: "avc1", "hvc1", ... or "" */
    char pix_fmt[24];                  /* "yuv420p", ... or "" */
    int width, height;                 /* coded picture size */
    int rotation;                      /* display rotation, degrees counter-clockwise (-180..180) */
    int display_width, display_height; /* as shown: the coded size turned by rotation */
    double fps;                        /* average frame rate */
    double duration;        /* seconds: the container's (edit lists and fragments applied) */
    int64_t bit_rate;       /* bits per second of the whole file, or 0 when unknown */
    int64_t video_bit_rate; /* of the video stream, or 0 when unknown */
    char audio_codec[16];   /* "aac", "opus", ... or "" */
    int audio_rate, audio_channels;
};

/* Read path's size and container (the fast path). Fails with TIKD_EINVAL
 * and a message naming path and what is wrong, TIKD_ENOTFOUND or TIKD_EIO
 * when it cannot be read. An image fails as "a JPEG image, not a video". */
int media_sniff(const char *path, struct media_info *mi, struct tikd_err *e);

/* The same on a descriptor already open on path (st its fstat). */
int media_sniff_fd(int fd, const struct stat *st, const char *path, struct media_info *mi,
                   struct tikd_err *e);

/* media_sniff, then the probe, waiting for it (at most MEDIA_PROBE_SECONDS,
 * or what media_set_probe_program set).
 * The probe is skipped when the sniff alone already breaks a rule (a
 * container TikTok does not take, a file over 4 GB): mi->probed tells. A
 * file the probe cannot read fails with TIKD_EINVAL; a probe that cannot
 * start, crashes or times out with TIKD_EIO. For commands, never the loop. */
int media_probe(const char *path, struct media_info *mi, struct tikd_err *e);

#define MEDIA_PROBE_SECONDS 30

/* What can be said of path without starting the probe, in process and at
 * once: 0 with mi when the sniff alone decides or the probe read this very
 * file before (same inode, size and change times), 1 when the probe must
 * run, or the sniff's refusal (as media_sniff). */
int media_probe_now(const char *path, struct media_info *mi, struct tikd_err *e);

/* The same without waiting: done(arg, mi, e) is called once from the loop
 * (e->code 0 on success), never from inside media_probe_start. Returns the
 * probe, or NULL with e set when it cannot start (done is then not called).
 * On libev's default loop (which reaps every child) the probe's end comes
 * from an ev_child watcher; on another loop it is polled for. */
struct media_probe;
typedef void (*media_probe_done)(void *arg, const struct media_info *mi, const struct tikd_err *e);
struct media_probe *media_probe_start(struct ev_loop *loop, const char *path, media_probe_done done,
                                      void *arg, struct tikd_err *e);

/* Stop a probe before done was called: its process group is killed, done
 * is never called. The default loop reaps it (never waited for here); on
 * another loop it is reaped at once. */
void media_probe_cancel(struct media_probe *p);

/* Where the probe program is (NULL or "": found beside the running binary,
 * else under the install prefix) and how long it may take (<= 0: the
 * default MEDIA_PROBE_SECONDS). */
void media_set_probe_program(const char *path, double seconds);
const char *media_probe_program(void);

/* Fill mi from the probe's JSON line (exposed for tests and the fuzzer). */
int media_parse_probe(const char *json, size_t len, struct media_info *mi, struct tikd_err *e);

/* True when st (a later stat of the file) is the file mi was read from,
 * unchanged. */
bool media_same_file(const struct media_info *mi, const struct stat *st);

/* The upload's Content-Type for a container, or NULL (TikTok takes it not). */
const char *media_mime_of(const char *container);

/* A human name for mi->codec ("H.264" for "h264"), or the name itself. */
const char *media_codec_label(const char *codec);

/* TikTok's video rules (spec §4.1), one row each in core/mediarules.c. */
enum media_level { MEDIA_PASS, MEDIA_WARN, MEDIA_REFUSE };

struct media_finding {
    const char *rule;       /* "video.fps", ... */
    enum media_level level; /* MEDIA_WARN or MEDIA_REFUSE */
    char text[240];         /* what was found and what TikTok accepts */
};

#define MEDIA_FINDINGS_MAX 16

struct media_verdict {
    enum media_level level; /* the worst finding's, MEDIA_PASS when none */
    int n;
    struct media_finding f[MEDIA_FINDINGS_MAX];
};

/* Judge mi against every rule; max_duration_s is the creator's longest
 * allowed video (creator_info), <= 0 when not known (the API's 600 s).
 * Rules that need the probe are skipped when mi->probed is false. */
void media_judge(const struct media_info *mi, int max_duration_s, struct media_verdict *v);

/* The refusals (or, with warnings, every finding) of v joined by "; " into
 * buf; returns buf. */
const char *media_verdict_text(const struct media_verdict *v, bool warnings, char *buf, size_t n);

/* media_judge for a caller that wants only yes or no: 0, or -1 with why
 * naming every refusal and what TikTok accepts. */
int media_check_video(const struct media_info *mi, int max_duration_s, char *why, size_t n);

/* The table itself, for documentation (tikd media rules) and tests. */
struct media_rule_doc {
    const char *rule, *level, *accepts, *source;
};
size_t media_rules_doc(const struct media_rule_doc **out);

#endif
