/* mediarules.c - TikTok's video rules as one table (see media.h).
 *
 * Each row is a value read from the file, the bounds or the names TikTok
 * accepts, and what breaking it means: MEDIA_REFUSE for a documented rule
 * (spec §4.1, TikTok's media transfer guide), MEDIA_WARN where the spec
 * marks the limit as unknown or the number is a recommendation. Rows of one
 * `field` are tried in order and only the first broken one is reported, so
 * a refusal is never repeated as a warning. */
#include "media.h"
#include "tiktok.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

enum value {
    V_CONTAINER,
    V_VIDEO,
    V_CODEC,
    V_BYTES,
    V_DURATION,
    V_FPS,
    V_WIDTH,
    V_HEIGHT,
    V_SHORT,
    V_KBPS,
    V_AUDIO
};

struct rule {
    const char *id;
    enum value v;
    const char *field;      /* rows of one field: the first broken one is reported */
    enum media_level level; /* when broken */
    bool needs_probe;
    double lo, hi;       /* numeric rows: lo <= value <= hi (hi < 0: the creator's maximum) */
    const char *names;   /* name rows: one of these, space separated */
    const char *accepts; /* what TikTok takes, for the message */
    const char *source;  /* where the rule comes from */
};

#define CREATOR_MAX (-1.0)

static const struct rule rules[] = {
    {"video.container", V_CONTAINER, "container", MEDIA_REFUSE, false, 0, 0, "mp4 mov webm 3gp",
     "MP4 (recommended), MOV or WebM", "spec 4.1"},
    {"video.container.3gp", V_CONTAINER, "container", MEDIA_WARN, false, 0, 0, "mp4 mov webm",
     "MP4, MOV or WebM; a 3GP file is an MP4 variant TikTok does not name (sent as video/mp4)",
     "spec 4.1"},
    {"video.size", V_BYTES, "size", MEDIA_REFUSE, false, 1, TT_VIDEO_MAX_BYTES, NULL,
     "files up to 4 GB", "spec 4.1"},
    {"video.track", V_VIDEO, "track", MEDIA_REFUSE, true, 0, 0, NULL, "a file with a video track",
     "spec 4.1"},
    {"video.codec", V_CODEC, "codec", MEDIA_REFUSE, true, 0, 0, "h264 hevc vp8 vp9",
     "H.264 (recommended), H.265, VP8 or VP9", "spec 4.1"},
    {"video.duration.unknown", V_DURATION, "duration", MEDIA_REFUSE, true, 1e-6, 1e18, NULL,
     "a file that says how long it lasts", "spec 4.1"},
    {"video.duration.max", V_DURATION, "duration", MEDIA_REFUSE, true, 0, CREATOR_MAX, NULL,
     "up to the creator's max_video_post_duration_sec (at most 600 s; 0.5 s of slack)",
     "spec 4.1, creator_info"},
    {"video.duration.min", V_DURATION, "duration", MEDIA_WARN, true, 3, 1e9, NULL,
     "3 s or longer (the minimum is not documented by TikTok: a warning)", "seed note"},
    {"video.fps", V_FPS, "fps", MEDIA_REFUSE, true, TT_VIDEO_MIN_FPS - 0.01,
     TT_VIDEO_MAX_FPS + 0.01, NULL, "23 to 60 fps", "spec 4.1 (frame_rate_check_failed)"},
    {"video.width", V_WIDTH, "picture", MEDIA_REFUSE, true, TT_VIDEO_MIN_SIDE, TT_VIDEO_MAX_SIDE,
     NULL, "360 to 4096 pixels on both sides", "spec 4.1 (picture_size_check_failed)"},
    {"video.height", V_HEIGHT, "picture", MEDIA_REFUSE, true, TT_VIDEO_MIN_SIDE, TT_VIDEO_MAX_SIDE,
     NULL, "360 to 4096 pixels on both sides", "spec 4.1 (picture_size_check_failed)"},
    {"video.side.720", V_SHORT, "picture", MEDIA_WARN, true, 720, 1e9, NULL,
     "720 pixels or more on the short side (one client's error text; unconfirmed: a warning)",
     "spec 4.1 [OBS]"},
    {"video.bitrate", V_KBPS, "bitrate", MEDIA_WARN, true, 1000, 6000, NULL,
     "1000 to 6000 kbps (a recommendation, not a documented limit: a warning)", "seed note"},
    {"video.audio", V_AUDIO, "audio", MEDIA_WARN, true, 0, 0, "aac opus vorbis",
     "AAC (Opus or Vorbis in WebM); TikTok documents no audio codec: a warning",
     "spec 4.1 [UNKNOWN]"},
};

#define NRULES (sizeof rules / sizeof rules[0])

static bool name_in(const char *name, const char *list)
{
    size_t n = strlen(name);
    for (const char *s = list; n && (s = strstr(s, name)); s += n)
        if ((s == list || s[-1] == ' ') && (s[n] == ' ' || s[n] == '\0'))
            return true;
    return false;
}

static double number(const struct media_info *mi, enum value v)
{
    switch (v) {
    case V_BYTES:
        return (double)mi->size;
    case V_DURATION:
        return mi->duration;
    case V_FPS:
        return mi->fps;
    case V_WIDTH:
        return mi->display_width;
    case V_HEIGHT:
        return mi->display_height;
    case V_SHORT:
        return mi->display_width < mi->display_height ? mi->display_width : mi->display_height;
    case V_KBPS:
        return (double)(mi->video_bit_rate ? mi->video_bit_rate : mi->bit_rate) / 1000.0;
    default:
        return 0;
    }
}

/* The value a row found, as the message shows it. */
static void found(const struct media_info *mi, const struct rule *r, char *buf, size_t n)
{
    switch (r->v) {
    case V_CONTAINER:
        snprintf(buf, n, "the container is %s", mi->container[0] ? mi->container : "unknown");
        break;
    case V_VIDEO:
        snprintf(buf, n, "the file has no video track%s", mi->has_audio ? " (audio only)" : "");
        break;
    case V_CODEC:
        snprintf(buf, n, "the video codec is %s (%s)", media_codec_label(mi->codec),
                 mi->codec[0] ? mi->codec : "?");
        break;
    case V_BYTES:
        snprintf(buf, n, "the file is %.2f GB", (double)mi->size / 1e9);
        break;
    case V_DURATION:
        if (mi->duration > 0)
            snprintf(buf, n, "the video lasts %.2f s", mi->duration);
        else
            snprintf(buf, n, "the file gives no duration");
        break;
    case V_FPS:
        snprintf(buf, n, "the frame rate is %.2f fps", mi->fps);
        break;
    case V_WIDTH:
    case V_HEIGHT:
    case V_SHORT:
        snprintf(buf, n, "the picture is %dx%d as shown%s", mi->display_width, mi->display_height,
                 mi->rotation ? " (rotated)" : "");
        break;
    case V_KBPS:
        snprintf(buf, n, "the bit rate is %.0f kbps", number(mi, V_KBPS));
        break;
    case V_AUDIO:
        snprintf(buf, n, "the audio codec is %s", mi->audio_codec);
        break;
    }
}

static bool broken(const struct media_info *mi, const struct rule *r, int max_duration_s,
                   double *hi)
{
    *hi = r->hi < 0 ? (max_duration_s > 0 ? max_duration_s : TT_VIDEO_MAX_DURATION) + 0.5 : r->hi;
    switch (r->v) {
    case V_CONTAINER:
        return !name_in(mi->container, r->names);
    case V_VIDEO:
        return !mi->has_video;
    case V_CODEC:
        return mi->has_video && !name_in(mi->codec, r->names);
    case V_AUDIO:
        return mi->has_audio && !name_in(mi->audio_codec, r->names);
    case V_KBPS:
        return mi->has_video && number(mi, V_KBPS) > 0 &&
               (number(mi, V_KBPS) < r->lo || number(mi, V_KBPS) > *hi);
    case V_BYTES:
        break;
    default:
        if (!mi->has_video)
            return false; /* video.track says it */
        break;
    }
    double x = number(mi, r->v);
    return isnan(x) || x < r->lo || x > *hi;
}

void media_judge(const struct media_info *mi, int max_duration_s, struct media_verdict *v)
{
    memset(v, 0, sizeof *v);
    const char *done[NRULES];
    size_t ndone = 0;
    for (size_t i = 0; i < NRULES; i++) {
        const struct rule *r = &rules[i];
        double hi;
        bool seen = false;
        for (size_t k = 0; k < ndone; k++)
            seen |= strcmp(done[k], r->field) == 0;
        if (seen || (r->needs_probe && !mi->probed) || !broken(mi, r, max_duration_s, &hi))
            continue;
        done[ndone++] = r->field;
        if (v->n == MEDIA_FINDINGS_MAX)
            continue;
        struct media_finding *f = &v->f[v->n++];
        char what[120];
        found(mi, r, what, sizeof what);
        f->rule = r->id;
        f->level = r->level;
        if (r->v == V_DURATION && r->hi < 0)
            snprintf(f->text, sizeof f->text, "%s; this creator may post up to %d s (%s)", what,
                     max_duration_s > 0 ? max_duration_s : TT_VIDEO_MAX_DURATION, r->id);
        else
            snprintf(f->text, sizeof f->text, "%s; TikTok accepts %s (%s)", what, r->accepts,
                     r->id);
        if (r->level > v->level)
            v->level = r->level;
    }
}

const char *media_verdict_text(const struct media_verdict *v, bool warnings, char *buf, size_t n)
{
    size_t used = 0;
    if (n)
        buf[0] = '\0';
    for (int pass = 0; pass < (warnings ? 2 : 1); pass++) /* refusals, then warnings */
        for (int i = 0; i < v->n && used < n; i++) {
            bool warn = v->f[i].level == MEDIA_WARN;
            if (warn != (pass == 1))
                continue;
            int w = snprintf(buf + used, n - used, "%s%s%s", used ? "; " : "",
                             warn ? "warning: " : "", v->f[i].text);
            used += w > 0 ? (size_t)w : 0;
        }
    return buf;
}

int media_check_video(const struct media_info *mi, int max_duration_s, char *why, size_t n)
{
    struct media_verdict v;
    media_judge(mi, max_duration_s, &v);
    if (v.level != MEDIA_REFUSE)
        return 0;
    media_verdict_text(&v, false, why, n);
    return -1;
}

size_t media_rules_doc(const struct media_rule_doc **out)
{
    static struct media_rule_doc doc[NRULES];
    for (size_t i = 0; i < NRULES; i++)
        doc[i] =
            (struct media_rule_doc){rules[i].id, rules[i].level == MEDIA_REFUSE ? "refuse" : "warn",
                                    rules[i].accepts, rules[i].source};
    *out = doc;
    return NRULES;
}
