/* cmd_media.c - `tikd media check PATH...`: what tikd reads from a video or
 * an image, and whether TikTok's rules let it be posted, before any post is
 * planned. The same readers and rules as the pre-flight (core/media,
 * core/image); no config, no database, no network. A directory is checked
 * file by file (not recursively, hidden files skipped). */
#include "cli.h"

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
    int checked, refused;
};

static void field_str(json_t *o, const char *k, const char *v)
{
    if (v && *v)
        json_object_set_new(o, k, json_string(v));
}

/* One file: a video if its container reads, else an image if its header
 * does (a JPEG named .mp4 is a JPEG), else refused with the video reader's
 * reason. */
static void check_file(struct verdict *v, const char *path)
{
    struct media_info mi;
    struct image_info ii;
    struct tikd_err ve = {0}, ie = {0};
    char why[600] = "";
    bool video = media_probe(path, &mi, &ve) == 0;
    bool image = !video && image_probe(path, &ii, &ie) == 0;
    bool ok;
    if (video)
        ok = media_check_video(&mi, 0, why, sizeof why) == 0;
    else if (image)
        ok = image_check_photo(&ii, why, sizeof why) == 0;
    else {
        ok = false;
        snprintf(why, sizeof why, "%s", ve.msg[0] ? ve.msg : "not a video or an image tikd reads");
    }
    v->checked++;
    v->refused += !ok;
    if (v->json) {
        json_t *o = json_object();
        json_object_set_new(o, "path", json_string(path));
        json_object_set_new(o, "verdict", json_string(ok ? "ok" : "refused"));
        json_object_set_new(o, "kind", json_string(video ? "video" : image ? "image" : "unknown"));
        field_str(o, "why", ok ? NULL : why);
        if (video) {
            field_str(o, "container", mi.container);
            field_str(o, "codec", mi.codec);
            field_str(o, "codec_name", mi.codec_name);
            json_object_set_new(o, "width", json_integer(mi.width));
            json_object_set_new(o, "height", json_integer(mi.height));
            json_object_set_new(o, "fps", json_real(mi.fps));
            json_object_set_new(o, "duration_s", json_real(mi.duration));
            json_object_set_new(o, "bytes", json_integer((json_int_t)mi.size));
            field_str(o, "mime", mi.mime);
        } else if (image) {
            field_str(o, "format", ii.format);
            json_object_set_new(o, "width", json_integer(ii.width));
            json_object_set_new(o, "height", json_integer(ii.height));
            json_object_set_new(o, "bytes", json_integer((json_int_t)ii.size));
            field_str(o, "mime", ii.mime);
        }
        char *s = json_dumps(o, JSON_COMPACT);
        if (s)
            printf("%s\n", s);
        free(s);
        json_decref(o);
        return;
    }
    char what[300] = "";
    if (video)
        snprintf(what, sizeof what, "video %s %s (%s) %dx%d %.2f fps %.1f s %llu bytes",
                 mi.container, mi.codec_name ? mi.codec_name : "unknown codec", mi.codec, mi.width,
                 mi.height, mi.fps, mi.duration, (unsigned long long)mi.size);
    else if (image)
        snprintf(what, sizeof what, "image %s %dx%d %llu bytes", ii.format, ii.width, ii.height,
                 (unsigned long long)ii.size);
    printf("%s: %s%s%s%s%s\n", path, ok ? "ok" : "refused", what[0] ? ": " : "", what,
           ok ? "" : ": ", ok ? "" : why);
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

static int run_media(struct cli *c, int argc, char **argv)
{
    (void)c;
    if (argc < 2 || strcmp(argv[1], "check") != 0)
        return cli_usage_error(&cmd_media, "expected: media check [--json] PATH...");
    struct verdict v = {0};
    int first = 2;
    if (argc > 2 && strcmp(argv[2], "--json") == 0) {
        v.json = true;
        first = 3;
    }
    if (first >= argc)
        return cli_usage_error(&cmd_media, "name at least one file or directory");
    int rc = 0;
    for (int i = first; i < argc; i++) {
        struct stat st;
        if (argv[i][0] == '-')
            return cli_usage_error(&cmd_media, "unknown option '%s'", argv[i]);
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
    "media", run_media, "media check [--json] PATH...",
    "check videos and images against TikTok's rules before posting",
    "Reads each file as the pre-flight does (an MP4, MOV or WebM container; a JPEG or WebP\n"
    "header) and checks it against TikTok's rules for any creator: format, codec, picture\n"
    "size, frame rate, duration up to 10 minutes (a creator's own maximum may be lower),\n"
    "file size. A directory is checked file by file. Prints one line per file (--json: one\n"
    "JSON object per line with every field read). Exit 0 when every file passes, 1 when\n"
    "one is refused or cannot be read. Needs no config, database or network.\n"};
