/* cmd_media.c - `tikd media check PATH...`: what tikd reads from a video or
 * an image, and whether TikTok's rules let it be posted, before any post is
 * planned. The same readers and rules as the pre-flight (core/media,
 * core/image); no network, and no config or database unless --account names
 * a creator whose limits are kept. A directory is checked
 * file by file (not recursively, hidden files skipped). */
#include "cli.h"
#include "engine.h"

#include "../core/account.h"
#include "../core/image.h"
#include "../core/media.h"

#include <dirent.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

struct verdict {
    bool json;
    int max_duration; /* the creator's longest video, 0: the API's */
    int checked, refused;
};

static void field_str(json_t *o, const char *k, const char *v)
{
    if (v && *v)
        json_object_set_new(o, k, json_string(v));
}

static void put_video(json_t *o, const struct media_info *mi)
{
    field_str(o, "container", mi->container);
    field_str(o, "mime", mi->mime);
    json_object_set_new(o, "bytes", json_integer((json_int_t)mi->size));
    if (!mi->probed)
        return;
    field_str(o, "demuxer", mi->demuxer);
    if (mi->has_video) {
        field_str(o, "codec", mi->codec);
        field_str(o, "codec_name", media_codec_label(mi->codec));
        field_str(o, "profile", mi->profile);
        field_str(o, "tag", mi->tag);
        field_str(o, "pix_fmt", mi->pix_fmt);
        json_object_set_new(o, "width", json_integer(mi->display_width));
        json_object_set_new(o, "height", json_integer(mi->display_height));
        json_object_set_new(o, "coded_width", json_integer(mi->width));
        json_object_set_new(o, "coded_height", json_integer(mi->height));
        json_object_set_new(o, "rotation", json_integer(mi->rotation));
        json_object_set_new(o, "fps", json_real(mi->fps));
        json_object_set_new(o, "video_bit_rate", json_integer(mi->video_bit_rate));
    }
    json_object_set_new(o, "duration_s", json_real(mi->duration));
    json_object_set_new(o, "bit_rate", json_integer(mi->bit_rate));
    if (mi->has_audio) {
        field_str(o, "audio_codec", mi->audio_codec);
        json_object_set_new(o, "audio_sample_rate", json_integer(mi->audio_rate));
        json_object_set_new(o, "audio_channels", json_integer(mi->audio_channels));
    }
}

/* What was read, in one line: "video mp4 H.264 High 1080x1920 30.00 fps
 * 12.0 s 2500 kbps aac 3906250 bytes". */
static void describe_video(const struct media_info *mi, char *buf, size_t n)
{
    if (!mi->probed) {
        snprintf(buf, n, "video %s %llu bytes", mi->container, (unsigned long long)mi->size);
        return;
    }
    char rot[24] = "", audio[40] = "";
    if (mi->rotation)
        snprintf(rot, sizeof rot, " (rotated %d)", mi->rotation);
    if (mi->has_audio)
        snprintf(audio, sizeof audio, " %s", mi->audio_codec);
    snprintf(buf, n, "video %s %s%s%s %dx%d%s %.2f fps %.1f s %.0f kbps%s %llu bytes",
             mi->container, mi->has_video ? media_codec_label(mi->codec) : "no video",
             mi->profile[0] ? " " : "", mi->profile, mi->display_width, mi->display_height, rot,
             mi->fps, mi->duration,
             (double)(mi->video_bit_rate ? mi->video_bit_rate : mi->bit_rate) / 1000, audio,
             (unsigned long long)mi->size);
}

/* One file read and judged: a video if its container reads, else an image
 * if its header does (a JPEG named .mp4 is a JPEG), else refused with the
 * video reader's reason. */
struct judged {
    bool video, image;
    struct media_info mi;
    struct image_info ii;
    struct media_verdict mv;
    enum media_level level;
    char why[1200], what[300];
};

static void judge_file(const char *path, int max_duration, struct judged *f)
{
    struct tikd_err ve = {0}, ie = {0};
    memset(f, 0, sizeof *f);
    f->video = media_probe(path, &f->mi, &ve) == 0;
    f->image = !f->video && image_probe(path, &f->ii, &ie) == 0;
    if (f->video) {
        media_judge(&f->mi, max_duration, &f->mv);
        f->level = f->mv.level;
        media_verdict_text(&f->mv, true, f->why, sizeof f->why);
        describe_video(&f->mi, f->what, sizeof f->what);
    } else if (f->image) {
        f->level =
            image_check_photo(&f->ii, f->why, sizeof f->why) == 0 ? MEDIA_PASS : MEDIA_REFUSE;
        snprintf(f->what, sizeof f->what, "image %s %dx%d %llu bytes", f->ii.format, f->ii.width,
                 f->ii.height, (unsigned long long)f->ii.size);
    } else {
        f->level = MEDIA_REFUSE;
        snprintf(f->why, sizeof f->why, "%s",
                 ve.msg[0] ? ve.msg : "not a video or an image tikd reads");
    }
}

int cli_media_line(const char *path, int max_duration, char *line, size_t n)
{
    struct judged *f = malloc(sizeof *f);
    if (!f) {
        snprintf(line, n, "%s: cannot check: out of memory", path);
        return MEDIA_REFUSE;
    }
    judge_file(path, max_duration, f);
    snprintf(line, n, "%s: %s%s%s%s%s", path,
             f->level == MEDIA_WARN     ? "ok with warnings"
             : f->level == MEDIA_REFUSE ? "refused"
                                        : "ok",
             f->what[0] ? ": " : "", f->what, f->why[0] ? ": " : "", f->why);
    int level = f->level;
    free(f);
    return level;
}

static void check_file(struct verdict *v, const char *path)
{
    if (!v->json) {
        char line[2000];
        v->checked++;
        v->refused += cli_media_line(path, v->max_duration, line, sizeof line) == MEDIA_REFUSE;
        printf("%s\n", line);
        return;
    }
    struct judged *f = malloc(sizeof *f);
    if (!f) {
        fprintf(stderr, "tikd media: out of memory\n");
        v->checked++, v->refused++;
        return;
    }
    judge_file(path, v->max_duration, f);
    v->checked++;
    v->refused += f->level == MEDIA_REFUSE;
    const char *verdict = f->level == MEDIA_REFUSE ? "refused"
                          : f->level == MEDIA_WARN ? "warn"
                                                   : "ok";
    json_t *o = json_object();
    json_object_set_new(o, "path", json_string(path));
    json_object_set_new(o, "verdict", json_string(verdict));
    json_object_set_new(o, "kind",
                        json_string(f->video   ? "video"
                                    : f->image ? "image"
                                               : "unknown"));
    if (f->video) {
        put_video(o, &f->mi);
        json_t *fs = json_array();
        for (int i = 0; i < f->mv.n; i++) {
            json_t *x = json_object();
            json_object_set_new(x, "rule", json_string(f->mv.f[i].rule));
            json_object_set_new(x, "level",
                                json_string(f->mv.f[i].level == MEDIA_REFUSE ? "refuse" : "warn"));
            json_object_set_new(x, "text", json_string(f->mv.f[i].text));
            json_array_append_new(fs, x);
        }
        json_object_set_new(o, "findings", fs);
        if (f->level == MEDIA_REFUSE)
            field_str(o, "why", media_verdict_text(&f->mv, false, f->why, sizeof f->why));
    } else {
        field_str(o, "why", f->level == MEDIA_REFUSE ? f->why : NULL);
    }
    if (f->image) {
        field_str(o, "format", f->ii.format);
        json_object_set_new(o, "width", json_integer(f->ii.width));
        json_object_set_new(o, "height", json_integer(f->ii.height));
        json_object_set_new(o, "bytes", json_integer((json_int_t)f->ii.size));
        field_str(o, "mime", f->ii.mime);
    }
    char *s = json_dumps(o, JSON_COMPACT);
    if (s)
        printf("%s\n", s);
    free(s);
    json_decref(o);
    free(f);
}

static int by_name(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Every file of a directory, in name order. */
static int check_dir(struct verdict *v, const char *dir)
{
    DIR *d = opendir(dir);
    if (!d) {
        fprintf(stderr, "tikd media: cannot open %s\n", dir);
        return 1;
    }
    char **names = NULL;
    size_t n = 0, cap = 0;
    int rc = 0;
    for (struct dirent *de; (de = readdir(d));) {
        if (de->d_name[0] == '.')
            continue;
        if (n == cap) {
            size_t nc = cap ? cap * 2 : 64;
            char **g = realloc(names, nc * sizeof *g);
            if (!g) {
                rc = 1;
                break;
            }
            names = g;
            cap = nc;
        }
        if (!(names[n] = strdup(de->d_name))) {
            rc = 1;
            break;
        }
        n++;
    }
    closedir(d);
    if (n)
        qsort(names, n, sizeof *names, by_name);
    for (size_t i = 0; i < n; i++) {
        char path[4096];
        struct stat st;
        snprintf(path, sizeof path, "%s/%s", dir, names[i]);
        if (rc == 0 && lstat(path, &st) == 0 && !S_ISDIR(st.st_mode))
            check_file(v, path);
        free(names[i]);
    }
    free(names);
    if (rc)
        fprintf(stderr, "tikd media: out of memory reading %s\n", dir);
    return rc;
}

struct creator_ctx {
    const char *name;
    struct account a;
};

static int read_account(struct store_txn *t, void *ctx)
{
    struct creator_ctx *cc = ctx;
    return account_get(t, cc->name, &cc->a);
}

/* The creator's longest video as creator_info last said it (the account
 * record keeps it from each pre-flight); 0 with a note when never asked. */
static int creator_limit(struct cli *c, const char *name, int *max)
{
    struct engine en;
    if (engine_open(c, &en, ENG_STORE))
        return 1;
    struct creator_ctx cc = {.name = name};
    struct tikd_err e = {0};
    int rc = store_read(en.store, read_account, &cc, &e);
    engine_close(&en);
    if (rc == TIKD_ENOTFOUND) {
        fprintf(stderr, "tikd media: no such account '%s'\n", name);
        return 1;
    }
    if (rc != 0) {
        fprintf(stderr, "tikd media: %s\n", e.msg);
        return 1;
    }
    *max = cc.a.max_video_s;
    if (cc.a.creator_at > 0) {
        char when[32];
        cli_fmt_time(cc.a.creator_at, when, sizeof when);
        fprintf(stderr, "note: %s may post videos up to %d s (creator_info, %s)\n", name, *max,
                when);
    } else {
        fprintf(stderr,
                "note: creator_info has not been asked for %s yet (its first post asks): "
                "checked against TikTok's 600 s ceiling\n",
                name);
    }
    return 0;
}

/* `tikd media rules`: the table media_judge applies. */
static int print_rules(void)
{
    const struct media_rule_doc *d;
    size_t n = media_rules_doc(&d);
    for (size_t i = 0; i < n; i++)
        printf("%-20s %-6s %s [%s]\n", d[i].rule, d[i].level, d[i].accepts, d[i].source);
    printf("%-20s %-6s %s [%s]\n", "photo.*", "refuse",
           "JPEG or WebP, at most 1080x1920 either way, at most 20 MB", "spec 4.2");
    return 0;
}

static int run_media(struct cli *c, int argc, char **argv)
{
    if (argc == 2 && strcmp(argv[1], "rules") == 0)
        return print_rules();
    if (argc < 2 || strcmp(argv[1], "check") != 0)
        return cli_usage_error(&cmd_media, "expected: media check|rules");
    struct verdict v = {0};
    const char *account = NULL;
    int first = 2;
    for (; first < argc && argv[first][0] == '-'; first++) {
        char *end;
        long max;
        if (strcmp(argv[first], "--json") == 0)
            v.json = true;
        else if (strcmp(argv[first], "--max-duration") == 0 && first + 1 < argc &&
                 (max = strtol(argv[first + 1], &end, 10)) > 0 && max <= 86400 && !*end)
            v.max_duration = (int)max, first++;
        else if (strcmp(argv[first], "--max-duration") == 0)
            return cli_usage_error(&cmd_media, "--max-duration takes seconds, 1 to 86400");
        else if (strcmp(argv[first], "--account") == 0 && first + 1 < argc)
            account = argv[++first];
        else if (strcmp(argv[first], "--account") == 0)
            return cli_usage_error(&cmd_media, "--account takes an account name");
        else
            return cli_unknown(&cmd_media, "option", argv[first]);
    }
    if (first >= argc)
        return cli_usage_error(&cmd_media, "name at least one file or directory");
    if (account && v.max_duration)
        return cli_usage_error(&cmd_media, "--account or --max-duration, not both");
    /* works without a config (any file on any machine); with one, its media.probe */
    if (c->config_path && cli_config(c))
        return 1;
    if (account && creator_limit(c, account, &v.max_duration) != 0)
        return 1;
    int rc = 0;
    for (int i = first; i < argc; i++) {
        struct stat st;
        if (stat(argv[i], &st) == 0 && S_ISDIR(st.st_mode))
            rc |= check_dir(&v, argv[i]);
        else
            check_file(&v, argv[i]);
    }
    if (!v.json && v.checked > 1)
        printf("%d checked, %d refused\n", v.checked, v.refused);
    return rc || v.refused ? 1 : 0;
}

const struct cli_cmd cmd_media = {
    "media", run_media,
    "media check [--json] [--account A | --max-duration S] PATH... | media rules",
    "check videos and images against TikTok's rules before posting",
    "check: reads each file as the pre-flight does: its container from the first bytes,\n"
    "then (for MP4, MOV and WebM) FFmpeg's libavformat in a confined process of its own:\n"
    "codec, profile, picture size as shown (rotation applied), frame rate, duration (edit\n"
    "lists and fragments applied), bit rate, audio; for images the JPEG or WebP header.\n"
    "Each file is judged by TikTok's rules (tikd media rules): a refusal names the rule,\n"
    "what was found and what TikTok accepts; a warning (a limit TikTok leaves unclear or\n"
    "a recommendation) does not refuse. --account A applies that creator's longest video\n"
    "as creator_info last said it (kept from each post's pre-flight; needs the config),\n"
    "--max-duration S a given one (default: the API's 600 s). A\n"
    "directory is checked file by file. One line per file (--json: one JSON object per\n"
    "line with every field read and each finding). Exit 0 when no file is refused, 1\n"
    "when one is refused or cannot be read. Needs no network, and no config or database\n"
    "without --account.\n"
    "rules: prints the table of rules, with what TikTok accepts and where it is said.\n"};
