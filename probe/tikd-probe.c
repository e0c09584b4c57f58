/* tikd-probe.c - read what a video file is with FFmpeg's libavformat, in a
 * process of its own: tikd starts one per file (core/probe.c) and reads one
 * JSON object from its standard output.
 *
 * libavformat is a large parser and the files come from clients (intake
 * folders, rules, uploads), so this process is the blast wall:
 *  - the file arrives already open on standard input; the process opens no
 *    file of its own (RLIMIT_NOFILE stops it), writes none (RLIMIT_FSIZE 0)
 *    and gains no privilege (PR_SET_NO_NEW_PRIVS);
 *  - libavformat reads through our own read/seek callbacks, its io_open is
 *    refused (no external references, no playlists, no protocols) and only
 *    the demuxers named in DEMUXERS are tried;
 *  - CPU, address space and wall time are capped here (RLIMIT_CPU, RLIMIT_AS,
 *    alarm) and again by tikd, which kills the process at its deadline.
 * Whatever the file does to this process, tikd reads "the probe failed".
 *
 * What it reports is what ffprobe reports for the same file, because it is
 * the same library driven the same way: avformat_open_input then
 * avformat_find_stream_info with the default probe size and analysis
 * duration. Output: {"ok":true,"format":...,"streams":...} or
 * {"ok":false,"error":"..."}, one line. */
#include <errno.h>
#include <jansson.h>
#include <libavcodec/avcodec.h>
#include <libavformat/avformat.h>
#include <libavutil/display.h>
#include <libavutil/pixdesc.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <unistd.h>

#if defined(__SANITIZE_ADDRESS__)
#define UNDER_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define UNDER_ASAN 1
#endif
#endif

/* Containers a TikTok video can be in, and the ones a user may mistake for
 * one (so that the refusal can name them). Image sequence demuxers and
 * anything that opens other files or URLs are left out. */
#define DEMUXERS                                                                                   \
    "mov,mp4,m4a,3gp,3g2,mj2,matroska,webm,avi,flv,mpegts,mpeg,asf,ogg,"                           \
    "h264,hevc,mp3,wav,aac"

#define CPU_SECONDS   10
#define WALL_SECONDS  20
#define ADDRESS_SPACE (1024ull << 20)

static int read_fd(void *opaque, uint8_t *buf, int n)
{
    int fd = *(int *)opaque;
    ssize_t got;
    do
        got = read(fd, buf, (size_t)n);
    while (got < 0 && errno == EINTR);
    if (got < 0)
        return AVERROR(errno);
    return got == 0 ? AVERROR_EOF : (int)got;
}

static int64_t seek_fd(void *opaque, int64_t off, int whence)
{
    int fd = *(int *)opaque;
    if (whence == AVSEEK_SIZE) {
        off_t cur = lseek(fd, 0, SEEK_CUR), end = lseek(fd, 0, SEEK_END);
        if (cur < 0 || end < 0 || lseek(fd, cur, SEEK_SET) < 0)
            return AVERROR(errno);
        return end;
    }
    off_t r = lseek(fd, (off_t)off, whence & ~AVSEEK_FORCE);
    return r < 0 ? AVERROR(errno) : r;
}

static int refuse_open(struct AVFormatContext *s, AVIOContext **pb, const char *url, int flags,
                       AVDictionary **options)
{
    (void)s, (void)pb, (void)url, (void)flags, (void)options;
    return AVERROR(EPERM);
}

static void say(json_t *o)
{
    char *s = json_dumps(o, JSON_COMPACT);
    if (s) {
        fputs(s, stdout);
        fputc('\n', stdout);
    }
    free(s);
    json_decref(o);
    fflush(stdout);
}

static int fail(const char *what, int err)
{
    char buf[AV_ERROR_MAX_STRING_SIZE] = "";
    json_t *o = json_object();
    json_object_set_new(o, "ok", json_false());
    if (err)
        av_strerror(err, buf, sizeof buf);
    json_object_set_new(o, "error", json_sprintf("%s%s%s", what, err ? ": " : "", buf));
    say(o);
    return 1;
}

static void confine(void)
{
    struct rlimit cpu = {CPU_SECONDS, CPU_SECONDS + 1}, none = {0, 0}, files = {8, 8};
    setrlimit(RLIMIT_CPU, &cpu);
    setrlimit(RLIMIT_FSIZE, &none);
    setrlimit(RLIMIT_CORE, &none);
    setrlimit(RLIMIT_NOFILE, &files);
#ifndef UNDER_ASAN /* ASan reserves terabytes of shadow address space */
    struct rlimit as = {ADDRESS_SPACE, ADDRESS_SPACE};
    setrlimit(RLIMIT_AS, &as);
#endif
    prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0);
    prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
    signal(SIGALRM, SIG_DFL);
    alarm(WALL_SECONDS);
}

static double q2d_or(AVRational r, double dflt)
{
    return r.num && r.den ? av_q2d(r) : dflt;
}

static void set_str(json_t *o, const char *k, const char *v)
{
    if (v && *v)
        json_object_set_new(o, k, json_string(v));
}

static json_t *video_of(const AVStream *st, double fmt_duration)
{
    const AVCodecParameters *cp = st->codecpar;
    json_t *v = json_object();
    set_str(v, "codec", avcodec_get_name(cp->codec_id));
    set_str(v, "profile", avcodec_profile_name(cp->codec_id, cp->profile));
    char tag[AV_FOURCC_MAX_STRING_SIZE] = "";
    if (cp->codec_tag)
        av_fourcc_make_string(tag, cp->codec_tag);
    set_str(v, "tag", tag);
    set_str(v, "pix_fmt", av_get_pix_fmt_name((enum AVPixelFormat)cp->format));
    json_object_set_new(v, "width", json_integer(cp->width));
    json_object_set_new(v, "height", json_integer(cp->height));
    double rotation = 0;
#if LIBAVFORMAT_VERSION_MAJOR >= 61 /* FFmpeg 7: side data lives with the codec parameters */
    const AVPacketSideData *sd = av_packet_side_data_get(
        st->codecpar->coded_side_data, st->codecpar->nb_coded_side_data, AV_PKT_DATA_DISPLAYMATRIX);
    const uint8_t *m = sd ? sd->data : NULL;
#else
    const uint8_t *m = av_stream_get_side_data(st, AV_PKT_DATA_DISPLAYMATRIX, NULL);
#endif
    if (m) {
        rotation = av_display_rotation_get((const int32_t *)m);
        if (isnan(rotation))
            rotation = 0;
    }
    json_object_set_new(v, "rotation", json_real(rotation));
    double fps = q2d_or(st->avg_frame_rate, q2d_or(st->r_frame_rate, 0));
    json_object_set_new(v, "fps", json_real(fps));
    json_object_set_new(v, "r_fps", json_real(q2d_or(st->r_frame_rate, 0)));
    double d = st->duration != AV_NOPTS_VALUE ? (double)st->duration * av_q2d(st->time_base)
                                              : fmt_duration;
    json_object_set_new(v, "duration", json_real(d));
    json_object_set_new(v, "frames", json_integer(st->nb_frames));
    json_object_set_new(v, "bit_rate", json_integer(cp->bit_rate));
    return v;
}

static json_t *audio_of(const AVStream *st)
{
    const AVCodecParameters *cp = st->codecpar;
    json_t *a = json_object();
    set_str(a, "codec", avcodec_get_name(cp->codec_id));
    set_str(a, "profile", avcodec_profile_name(cp->codec_id, cp->profile));
    json_object_set_new(a, "sample_rate", json_integer(cp->sample_rate));
    json_object_set_new(a, "channels", json_integer(cp->ch_layout.nb_channels));
    json_object_set_new(a, "bit_rate", json_integer(cp->bit_rate));
    return a;
}

int main(int argc, char **argv)
{
    (void)argv;
    if (argc != 1) {
        fprintf(stderr, "usage: tikd-probe < FILE  (started by tikd; prints one JSON line)\n");
        return 2;
    }
    confine();
    av_log_set_level(AV_LOG_QUIET);
    static int fd = 0;
    unsigned char *buf = av_malloc(1 << 16);
    AVIOContext *pb = buf ? avio_alloc_context(buf, 1 << 16, 0, &fd, read_fd, NULL, seek_fd) : NULL;
    AVFormatContext *ctx = pb ? avformat_alloc_context() : NULL;
    if (!ctx)
        return fail("out of memory", 0);
    ctx->pb = pb;
    ctx->io_open = refuse_open;
    ctx->format_whitelist = av_strdup(DEMUXERS);
    ctx->protocol_whitelist = av_strdup("none");
    AVDictionary *opts = NULL;
    av_dict_set(&opts, "enable_drefs", "0", 0);
    int rc = avformat_open_input(&ctx, NULL, NULL, &opts);
    av_dict_free(&opts);
    if (rc < 0)
        return fail("not a video container tikd can read", rc);
    rc = avformat_find_stream_info(ctx, NULL);
    if (rc < 0)
        return fail("cannot read the streams", rc);

    json_t *o = json_object();
    json_object_set_new(o, "ok", json_true());
    set_str(o, "demuxer", ctx->iformat->name);
    const AVDictionaryEntry *brand = av_dict_get(ctx->metadata, "major_brand", NULL, 0);
    set_str(o, "major_brand", brand ? brand->value : NULL);
    double duration = ctx->duration != AV_NOPTS_VALUE ? (double)ctx->duration / AV_TIME_BASE : 0;
    json_object_set_new(o, "duration", json_real(duration));
    json_object_set_new(o, "bit_rate", json_integer(ctx->bit_rate));
    json_object_set_new(o, "streams", json_integer(ctx->nb_streams));
    json_t *video = NULL, *audio = NULL;
    for (unsigned i = 0; i < ctx->nb_streams; i++) {
        const AVStream *st = ctx->streams[i];
        enum AVMediaType t = st->codecpar->codec_type;
        if (t == AVMEDIA_TYPE_VIDEO && !video && !(st->disposition & AV_DISPOSITION_ATTACHED_PIC))
            video = video_of(st, duration);
        else if (t == AVMEDIA_TYPE_AUDIO && !audio)
            audio = audio_of(st);
    }
    if (video)
        json_object_set_new(o, "video", video);
    if (audio)
        json_object_set_new(o, "audio", audio);
    say(o);
    avformat_close_input(&ctx);
    av_freep(&pb->buffer);
    avio_context_free(&pb);
    return 0;
}
