/* cmd_job.c - `tikd post`, `tikd queue` and `tikd job ...`: planning posts
 * and looking after them. The CLI writes jobs to the database and wakes the
 * daemon (SIGUSR1 to the pid in data_dir/tikd.pid); the daemon does the
 * work, so a post survives the CLI being closed. */
#include "engine.h"
#include "follow.h"
#include "views.h"

#include <errno.h>
#include <jansson.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "../core/clock.h"
#include "../core/job.h"
#include "../core/post.h"
#include "../core/runlock.h"
#include "../core/tiktok.h"

/* "+90s", "+5m", "+2h", "+1d", an ISO time "2026-12-01T10:00:00Z", or epoch seconds. */
static int parse_when(const char *s, double *out)
{
    char *end;
    if (s[0] == '+') {
        double v = strtod(s + 1, &end);
        double mul = *end == 's' || !*end ? 1
                     : *end == 'm'        ? 60
                     : *end == 'h'        ? 3600
                     : *end == 'd'        ? 86400
                                          : -1;
        if (end == s + 1 || mul < 0 || (*end && end[1]) || v < 0)
            return -1;
        *out = clock_now() + v * mul;
        return 0;
    }
    if (clock_parse_utc(s, out) == 0)
        return 0;
    double v = strtod(s, &end);
    if (end != s && !*end && v > 1e9) {
        *out = v;
        return 0;
    }
    return -1;
}

/* A whole number 0..max written in decimal digits only ("abc", "-1", "1e3"
 * and "" are refused, never read as 0). */
static int parse_count(const char *s, long max, int *out)
{
    if (!*s || strspn(s, "0123456789") != strlen(s) || strlen(s) > 10)
        return -1;
    long v = strtol(s, NULL, 10);
    if (v > max)
        return -1;
    *out = (int)v;
    return 0;
}

static void wake_daemon(struct cli *c)
{
    int woke = cli_wake_daemon(c);
    if (woke == 2)
        printf("(tikd run is starting: it will see the job)\n");
    else if (woke == 0)
        printf("(no tikd run is up: the job waits until it starts)\n");
}

/* Follow a job until it is final; 0 when it posted. */
/* One JSON line per change of a job followed with --wait --json. */
static void wait_event(const struct job *j)
{
    uint64_t done = 0;
    for (uint32_t i = 0; i < j->chunks_done && i < j->plan.count; i++) {
        uint64_t first, len;
        upload_chunk(&j->plan, i, &first, &len);
        done += len;
    }
    json_t *o = json_pack("{s:I, s:s, s:s, s:b}", "job", (json_int_t)j->id, "state",
                          job_state_name(j->state), "reason", j->reason, "final",
                          job_state_final(j->state));
    if (j->plan.count) {
        json_object_set_new(o, "chunks_done", json_integer(j->chunks_done));
        json_object_set_new(o, "chunks", json_integer(j->plan.count));
        json_object_set_new(o, "bytes_done", json_integer((json_int_t)done));
        json_object_set_new(o, "bytes", json_integer((json_int_t)j->plan.size));
    }
    if (j->publish_id[0])
        json_object_set_new(o, "publish_id", json_string(j->publish_id));
    if (j->post_ids[0])
        json_object_set_new(o, "post_ids", json_string(j->post_ids)); /* exact: text */
    char *s = json_dumps(o, JSON_COMPACT);
    if (s)
        printf("%s\n", s);
    fflush(stdout);
    free(s);
    json_decref(o);
}

/* An upload's progress line on a terminal: bytes, rate, time left. */
struct bar {
    double t0;
    uint64_t b0;
    bool shown;
};

static void human(uint64_t b, char *out, size_t n)
{
    if (b >= 1000000000ull)
        snprintf(out, n, "%.2f GB", b / 1e9);
    else if (b >= 1000000)
        snprintf(out, n, "%.1f MB", b / 1e6);
    else
        snprintf(out, n, "%.0f kB", b / 1e3);
}

static void bar_show(struct bar *b, uint64_t done, uint64_t total)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    double now = (double)ts.tv_sec + ts.tv_nsec / 1e9;
    if (!b->shown) {
        b->t0 = now;
        b->b0 = done;
    }
    b->shown = true;
    int w = 30, filled = total ? (int)((double)w * done / total) : 0;
    char d[32], t[32], rate[48] = "", left[32] = "";
    human(done, d, sizeof d);
    human(total, t, sizeof t);
    double secs = now - b->t0;
    if (secs > 0.5 && done > b->b0) {
        double r = (done - b->b0) / secs;
        char rs[32];
        human((uint64_t)r, rs, sizeof rs);
        snprintf(rate, sizeof rate, ", %s/s", rs);
        if (total > done) {
            long eta = (long)((total - done) / r + 0.5);
            snprintf(left, sizeof left, ", %ld:%02ld left", eta / 60, eta % 60);
        }
    }
    printf("\r[%.*s%*s] %3d%% %s of %s%s%s   ", filled, "##############################",
           w - filled, "", total ? (int)(100.0 * done / total) : 0, d, t, rate, left);
    fflush(stdout);
}

/* Follow a job until it is final; 0 when it posted. With a daemon running,
 * its event stream says when to look (and, on a terminal, how an upload's
 * bytes go); without one, the database is read every 0.1 s. */
static int wait_job(struct cli *c, uint64_t id, bool json)
{
    struct store *s;
    if (cli_open_store(c, true, &s))
        return 1;
    struct job *j = malloc(sizeof *j);
    char last[700] = "";
    bool tty = isatty(1);
    int rc = 1;
    char path[64];
    snprintf(path, sizeof path, "/api/v1/events?job=%llu", (unsigned long long)id);
    struct follow *f = follow_open(&c->cfg, path);
    struct bar bar = {0};
    for (;;) {
        if (job_read(s, id, j) != 0)
            break;
        char now[700];
        if (j->state == JOB_UPLOADING && j->plan.count && !f)
            snprintf(now, sizeof now, "uploading: chunk %u of %u", j->chunks_done, j->plan.count);
        else
            snprintf(now, sizeof now, "%s%s%s", job_state_name(j->state), j->reason[0] ? ": " : "",
                     j->reason);
        if (strcmp(now, last) != 0 && json) {
            wait_event(j);
            snprintf(last, sizeof last, "%s", now);
        } else if (strcmp(now, last) != 0) {
            if (tty && !f && j->state == JOB_UPLOADING && j->plan.count) {
                int w = 30, done = (int)(w * j->chunks_done / j->plan.count);
                printf("\r[%.*s%*s] %u/%u chunks", done, "##############################", w - done,
                       "", j->chunks_done, j->plan.count);
                fflush(stdout);
            } else {
                bool after_bar = bar.shown || (tty && strncmp(last, "uploading: chunk", 16) == 0);
                printf("%sjob %llu: %s\n", tty && after_bar ? "\n" : "", (unsigned long long)id,
                       now);
                bar.shown = false;
            }
            snprintf(last, sizeof last, "%s", now);
        }
        if (job_state_final(j->state)) {
            rc = j->state == JOB_PUBLISHED || j->state == JOB_IN_INBOX ? 0 : 1;
            if (j->post_ids[0] && !json)
                printf("post ids: %s\n", j->post_ids);
            break;
        }
        if (!f) {
            usleep(100 * 1000);
            continue;
        }
        /* the next event of this job (or, every 10 s, a look anyway) */
        const char *type, *data;
        int got;
        while ((got = follow_next(f, 10.0, &type, &data)) == 1 && strcmp(type, "progress") == 0) {
            json_t *p = json_loads(data, 0, NULL);
            if (tty && !json && p)
                bar_show(&bar, (uint64_t)json_integer_value(json_object_get(p, "bytes_done")),
                         (uint64_t)json_integer_value(json_object_get(p, "bytes")));
            json_decref(p);
        }
        if (got < 0) { /* the daemon went: the database from now on */
            follow_close(f);
            f = NULL;
        }
    }
    follow_close(f);
    free(j);
    store_close(s);
    return rc;
}

/* A large video read for its SHA-256 before it is planned: a line on the
 * terminal that says how far (a 4 GiB file takes seconds). */
struct hash_progress {
    const char *path;
    uint64_t total;
    int shown; /* the percentage on screen, -1: none */
};

static void hash_progress(void *ud, uint64_t done)
{
    struct hash_progress *hp = ud;
    int pct = hp->total ? (int)(done * 100 / hp->total) : 0;
    if (pct == hp->shown)
        return;
    hp->shown = pct;
    const char *base = strrchr(hp->path, '/');
    fprintf(stderr, "\rtikd: reading %s for its SHA-256: %d%% of %.1f GB",
            base ? base + 1 : hp->path, pct > 100 ? 100 : pct, (double)hp->total / 1e9);
    fflush(stderr);
}

static int run_post(struct cli *c, int argc, char **argv)
{
    struct job *j = calloc(1, sizeof *j);
    if (!j)
        return 1;
    j->opt.cover_ms = -1;
    snprintf(j->chosen_by, sizeof j->chosen_by, "operator");
    const char *file = NULL;
    bool wait = false, approval = false, local_images = false, json = false, again = false;
    double deadline = 0, at = 0;
    int rc = 0;
    for (int i = 1; i < argc && rc == 0; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
#define NEEDS_VALUE                                                                                \
    if (!v) {                                                                                      \
        rc = cli_usage_error(&cmd_post, "%s needs a value", a);                                    \
        break;                                                                                     \
    }                                                                                              \
    i++
        if (strcmp(a, "--account") == 0) {
            NEEDS_VALUE;
            snprintf(j->account, sizeof j->account, "%s", v);
        } else if (strcmp(a, "--caption") == 0) {
            NEEDS_VALUE;
            if (strlen(v) >= sizeof j->caption)
                rc = cli_usage_error(&cmd_post, "the caption is too long");
            snprintf(j->caption, sizeof j->caption, "%s", v);
        } else if (strcmp(a, "--privacy") == 0) {
            NEEDS_VALUE;
            snprintf(j->privacy, sizeof j->privacy, "%s", v);
        } else if (strcmp(a, "--at") == 0) {
            NEEDS_VALUE;
            if (parse_when(v, &at) != 0)
                rc = cli_usage_error(&cmd_post,
                                     "--at takes +90s, +5m, +2h, +1d or "
                                     "2026-12-01T10:00:00Z, not '%s'",
                                     v);
        } else if (strcmp(a, "--photo") == 0) {
            NEEDS_VALUE;
            /* a URL TikTok pulls as it is, or a local image tikd serves it */
            char real[PATH_MAX];
            if (strncmp(v, "https://", 8) != 0 && strncmp(v, "http://", 7) != 0) {
                if (!realpath(v, real)) {
                    fprintf(stderr, "tikd: cannot read the image %s\n", v);
                    rc = 1;
                    break;
                }
                v = real;
                local_images = true;
            }
            size_t have = strlen(j->images);
            if (have + strlen(v) + 2 > sizeof j->images)
                rc = cli_usage_error(&cmd_post, "too many or too long --photo values");
            else
                snprintf(j->images + have, sizeof j->images - have, "%s%s", have ? "\n" : "", v);
            j->kind = JOB_PHOTO;
        } else if (strcmp(a, "--description") == 0) {
            NEEDS_VALUE;
            if (strlen(v) >= sizeof j->description)
                rc = cli_usage_error(&cmd_post, "the description is too long");
            snprintf(j->description, sizeof j->description, "%s", v);
        } else if (strcmp(a, "--cover-index") == 0) {
            NEEDS_VALUE;
            if (parse_count(v, 34, &j->cover_index) != 0)
                rc = cli_usage_error(&cmd_post, "--cover-index takes 0 to 34, not '%s'", v);
        } else if (strcmp(a, "--auto-music") == 0) {
            j->opt.auto_add_music = true;
        } else if (strcmp(a, "--cover-ms") == 0) {
            NEEDS_VALUE;
            if (parse_count(v, 24 * 3600 * 1000, &j->opt.cover_ms) != 0)
                rc = cli_usage_error(&cmd_post,
                                     "--cover-ms takes a time in the video in milliseconds, "
                                     "not '%s'",
                                     v);
        } else if (strcmp(a, "--approval-deadline") == 0) {
            NEEDS_VALUE;
            approval = true;
            if (parse_when(v, &deadline) != 0)
                rc = cli_usage_error(&cmd_post,
                                     "--approval-deadline takes +2h, +1d or "
                                     "2026-12-01T10:00:00Z, not '%s'",
                                     v);
        } else if (strcmp(a, "--approval") == 0) {
            approval = true;
        } else if (strcmp(a, "--draft") == 0) {
            j->mode = JOB_DRAFT;
        } else if (strcmp(a, "--wait") == 0) {
            wait = true;
        } else if (strcmp(a, "--json") == 0) {
            json = true;
        } else if (strcmp(a, "--again") == 0) {
            again = true;
        } else if (strcmp(a, "--disable-comment") == 0) {
            j->opt.disable_comment = true;
        } else if (strcmp(a, "--disable-duet") == 0) {
            j->opt.disable_duet = true;
        } else if (strcmp(a, "--disable-stitch") == 0) {
            j->opt.disable_stitch = true;
        } else if (strcmp(a, "--brand-content") == 0) {
            j->opt.brand_content = true;
        } else if (strcmp(a, "--brand-organic") == 0) {
            j->opt.brand_organic = true;
        } else if (strcmp(a, "--aigc") == 0) {
            j->opt.is_aigc = true;
        } else if (a[0] == '-') {
            rc = cli_unknown(&cmd_post, "option", a);
        } else if (file) {
            rc = cli_usage_error(&cmd_post, "unexpected argument '%s'", a);
        } else {
            file = a;
        }
#undef NEEDS_VALUE
    }
    if (rc == 0 && j->kind == JOB_PHOTO && file)
        rc = cli_usage_error(&cmd_post, "a photo post takes --photo URLs, not a FILE");
    if (rc == 0 && ((!file && j->kind != JOB_PHOTO) || !j->account[0]))
        rc = cli_usage_error(&cmd_post, "expected a FILE (or --photo URLs) and --account NAME");
    if (rc != 0) {
        free(j);
        return rc;
    }
    if (local_images &&
        (cli_config(c) != 0 || !c->cfg.media_public_url || !c->cfg.media_public_url[0])) {
        fprintf(stderr, "tikd: local images need media.public_url: TikTok pulls photos only "
                        "from a verified domain, so tikd serves them there (see "
                        "docs/publishing.md), or give https URLs\n");
        free(j);
        return 1;
    }
    /* the absolute path even of a file that is not there, so the planner
     * can say which file it looked for */
    char real[PATH_MAX], cwd[PATH_MAX];
    const char *path = j->kind == JOB_PHOTO ? "" : file;
    if (j->kind == JOB_VIDEO && strncmp(file, "https://", 8) != 0 &&
        strncmp(file, "http://", 7) != 0) {
        if (realpath(file, real))
            path = real;
        else if (file[0] != '/' && getcwd(cwd, sizeof cwd) &&
                 (size_t)snprintf(real, sizeof real, "%s/%s", cwd, file) < sizeof real)
            path = real;
    }
    if (strlen(path) >= sizeof j->media) {
        fprintf(stderr, "tikd: the media path is longer than %zu bytes\n", sizeof j->media - 1);
        free(j);
        return 1;
    }
    memcpy(j->media, path, strlen(path) + 1);
    struct engine en;
    if (engine_open(c, &en, ENG_STORE)) {
        free(j);
        return 1;
    }
    struct post_req *pr = calloc(1, sizeof *pr);
    struct tikd_err e = {0};
    struct hash_progress hp = {j->media, 0, -1};
    struct stat hst;
    bool show = isatty(STDERR_FILENO) && stat(j->media, &hst) == 0 && hst.st_size >= (64 << 20);
    if (pr) {
        hp.total = show ? (uint64_t)hst.st_size : 0;
        *pr = (struct post_req){.j = j,
                                .at = at,
                                .approval = approval,
                                .deadline = deadline,
                                .again = again,
                                .progress = show ? hash_progress : NULL,
                                .progress_ud = &hp};
        rc = post_plan(en.store, pr, &e);
        if (hp.shown >= 0)
            fputs("\r\033[K", stderr); /* the progress line, cleared */
    }
    engine_close(&en);
    if (!pr || rc != 0) {
        if (!pr)
            fprintf(stderr, "tikd: out of memory\n");
        else if (pr->invalid && strchr(pr->problem, '\n'))
            fprintf(stderr, "tikd: the post is not valid:\n%s\n", pr->problem);
        else if (pr->invalid)
            fprintf(stderr, "tikd: the post is not valid: %s\n", pr->problem);
        else if (rc == TIKD_EEXIST)
            fprintf(stderr, "tikd: %s\n", pr->problem);
        else
            fprintf(stderr, "tikd: cannot plan the post: %s\n",
                    pr->problem[0] ? pr->problem : e.msg);
        free(pr);
        free(j);
        return 1;
    }
    for (int i = 0; i < pr->media.n; i++) /* what TikTok's rules warn of: said, not refused */
        fprintf(stderr, "warning: %s\n", pr->media.f[i].text);
    free(pr);
    char due[32], until[32];
    cli_fmt_time(j->planned_at, due, sizeof due);
    cli_fmt_time(j->due_at, until, sizeof until);
    if (!json) /* --json: the events say it */
        printf("job %llu planned: %s %s to %s at %s%s%s\n", (unsigned long long)j->id,
               j->mode == JOB_DRAFT ? "draft of" : "post of",
               j->kind == JOB_PHOTO ? "a photo carousel" : j->media, j->account, due,
               j->privacy[0] ? ", privacy " : "", j->privacy);
    if (approval && !json)
        printf("it waits for `tikd job approve %llu` (or reject) until %s\n",
               (unsigned long long)j->id, until);
    wake_daemon(c);
    uint64_t id = j->id;
    free(j);
    return wait ? wait_job(c, id, json) : 0;
}

const struct cli_cmd cmd_post = {
    "post", run_post, "post FILE|URL|--photo IMAGE... --account NAME [options]",
    "plan a video or photo post (or a draft)",
    "FILE is a local MP4/MOV/WebM (uploaded in chunks) or an https URL on a domain verified\n"
    "for the app (TikTok pulls it).\n"
    "  --privacy P          PUBLIC_TO_EVERYONE, MUTUAL_FOLLOW_FRIENDS, FOLLOWER_OF_CREATOR or\n"
    "                       SELF_ONLY: required for a direct post (tikd never picks one)\n"
    "  --caption TEXT       up to 2200 UTF-16 units, #hashtags and @mentions included\n"
    "  --draft              send to the creator's TikTok inbox instead of posting\n"
    "  --photo URL|IMAGE    a photo post: 1 to 35 https URLs on a domain verified for the app,\n"
    "                       or local JPEG/WebP files tikd serves at media.public_url\n"
    "                       (TikTok pulls them); the caption is the title (90 units), with\n"
    "  --description TEXT   up to 4000 units, --cover-index N (0-based), --auto-music\n"
    "  --at WHEN            +90s, +5m, +2h, +1d or 2026-12-01T10:00:00Z (default: now)\n"
    "  --disable-comment, --disable-duet, --disable-stitch, --brand-content,\n"
    "  --brand-organic, --aigc, --cover-ms N\n"
    "  --approval           hold the job until an operator runs `tikd job approve ID`\n"
    "  --approval-deadline WHEN  ...until then (default: a day after the planned time);\n"
    "                       past it the job is cancelled with the reason\n"
    "  --wait               follow the job until it is published, in the inbox or failed\n"
    "                       (a progress bar on a terminal, a line per change otherwise)\n"
    "  --again              post a video this account already has planned or posted\n"
    "                       (tikd knows content by its SHA-256, as the media intake does)\n"
    "  --json               with --wait: one JSON object per change (state, chunks and bytes\n"
    "                       uploaded, publish_id, post ids as exact text)\n"
    "The post is checked when planned (caption, privacy, options, the file) and again\n"
    "before the upload (the creator's privacy options and longest duration, the video's\n"
    "container, codec, size, frame rate). `tikd run` does the work.\n"};

/* ---- queue and job --------------------------------------------------------------- */

struct queue_ctx {
    int state;
    const char *account;
    bool all;
    int shown, corrupt;
    json_t *json;       /* --json: the rows as the admin API shows them */
    const char *tenant; /* --tenant: only the jobs planned in it */
};

static void queue_bad(uint64_t id, void *ctx)
{
    struct queue_ctx *q = ctx;
    fprintf(stderr, "tikd queue: the record of job %llu is corrupt and cannot be read\n",
            (unsigned long long)id);
    q->corrupt++;
}

static int queue_row(const struct job *j, void *ctx)
{
    struct queue_ctx *q = ctx;
    if (q->state >= 0 && (int)j->state != q->state)
        return 0;
    if (q->state < 0 && !q->all && job_state_final(j->state))
        return 0;
    if (q->account && strcmp(q->account, j->account) != 0)
        return 0;
    if (q->tenant && strcmp(q->tenant, j->tenant) != 0)
        return 0;
    if (q->json)
        return json_array_append_new(q->json, view_job(j, 0));
    char due[32];
    cli_fmt_time(job_state_final(j->state) ? 0 : j->due_at, due, sizeof due);
    const char *slash = strrchr(j->media, '/');
    char media[64];
    if (j->kind == JOB_PHOTO) { /* its images: how many, and the first */
        int n = 0;
        for (const char *p = j->images; *p; p++)
            n += *p == '\n' || p[1] == '\0';
        const char *first = j->images, *nl = strchr(first, '\n');
        const char *base = memrchr(first, '/', nl ? (size_t)(nl - first) : strlen(first));
        snprintf(media, sizeof media, "%d images: %.*s", n,
                 (int)((nl ? nl : first + strlen(first)) - (base ? base + 1 : first)),
                 base ? base + 1 : first);
    } else {
        snprintf(media, sizeof media, "%.63s", slash ? slash + 1 : j->media);
    }
    printf("%-6llu %-11s %-16s %-6s %-21s %-24.24s %s\n", (unsigned long long)j->id,
           job_state_name(j->state), j->account, j->mode == JOB_DRAFT ? "draft" : "direct", due,
           media, j->reason);
    q->shown++;
    return 0;
}

static int queue_txn(struct store_txn *t, void *ctx)
{
    return job_foreach_all(t, queue_row, queue_bad, ctx);
}

static int run_queue(struct cli *c, int argc, char **argv)
{
    struct queue_ctx q = {-1, NULL, false, 0, 0, NULL, NULL};
    bool json = cli_take_flag(&argc, argv, "--json");
    const struct tenant_cfg *t;
    if (cli_take_tenant(c, &cmd_queue, &argc, argv, &t))
        return 1;
    q.tenant = t ? t->name : NULL;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--state") == 0 && i + 1 < argc) {
            q.state = job_state_parse(argv[++i]);
            if (q.state < 0)
                return cli_usage_error(&cmd_queue, "unknown state '%s'", argv[i]);
        } else if (strcmp(argv[i], "--account") == 0 && i + 1 < argc) {
            q.account = argv[++i];
        } else if (strcmp(argv[i], "--all") == 0) {
            q.all = true;
        } else {
            return argv[i][0] == '-'
                       ? cli_unknown(&cmd_queue, "option", argv[i])
                       : cli_usage_error(&cmd_queue, "unexpected argument '%s'", argv[i]);
        }
    }
    struct store *s;
    if (cli_open_store(c, true, &s))
        return 1;
    if (json)
        q.json = json_array();
    else
        printf("%-6s %-11s %-16s %-6s %-21s %-24s %s\n", "ID", "STATE", "ACCOUNT", "MODE", "DUE",
               "MEDIA", "WHY");
    struct tikd_err e = {0};
    int rc = store_read(s, queue_txn, &q, &e);
    store_close(s);
    if (rc != 0)
        fprintf(stderr, "tikd queue: %s\n", e.msg[0] ? e.msg : "cannot read the database");
    if (json && rc == 0 && cli_print_json(q.json) != 0)
        return 1;
    if (json && rc != 0)
        json_decref(q.json);
    return rc || q.corrupt ? 1 : 0;
}

const struct cli_cmd cmd_queue = {
    "queue", run_queue, "queue [--state S] [--account A] [--tenant T] [--all] [--json]",
    "list jobs: what waits, why, and until when",
    "Without options: every job that is not final. --all includes published, in_inbox,\n"
    "failed and cancelled ones. A photo post shows how many images and the first.\n"
    "--tenant T: only the jobs of tenant T's accounts.\n"
    "--json: the rows as GET /api/v1/jobs shows them.\n"};

struct change_ctx {
    uint64_t id;
    enum post_change what;
    const struct rl_config *limits;
    struct post_changed out;
};

static int change_txn(struct store_txn *t, void *ctx)
{
    struct change_ctx *cc = ctx;
    return post_change(t, cc->limits, cc->id, cc->what, "operator", &cc->out);
}

static int show_job(struct cli *c, uint64_t id)
{
    struct store *s;
    if (cli_open_store(c, true, &s))
        return 1;
    struct job *j = malloc(sizeof *j);
    int rc = job_read(s, id, j);
    store_close(s);
    if (rc != 0) {
        fprintf(stderr, "tikd: no job %llu\n", (unsigned long long)id);
        free(j);
        return 1;
    }
    char due[32], cr[32], up[32];
    cli_fmt_time(j->due_at, due, sizeof due);
    cli_fmt_time(j->created_at, cr, sizeof cr);
    cli_fmt_time(j->updated_at, up, sizeof up);
    printf("job:          %llu\nstate:        %s\nreason:       %s\naccount:      %s\n"
           "mode:         %s\nmedia:        %s\ncaption:      %s\nprivacy:      %s\n"
           "chosen by:    %s\noptions:      comment %s, duet %s, stitch %s, brand content %s, "
           "brand organic %s, AI-generated %s\ndue:          %s\ncreated:      %s\n"
           "updated:      %s\nattempts:     %d\npublish_id:   %s\nupload:       %u of %u "
           "chunks (%llu bytes)\npost ids:     %s\nfail reason:  %s\nlog_id:       %s\n"
           "orphans:      %d upload session%s left at TikTok by lost init answers\n",
           (unsigned long long)j->id, job_state_name(j->state), j->reason[0] ? j->reason : "-",
           j->account, j->mode == JOB_DRAFT ? "draft (inbox)" : "direct post", j->media,
           j->caption[0] ? j->caption : "-", j->privacy[0] ? j->privacy : "-", j->chosen_by,
           j->opt.disable_comment ? "off" : "on", j->opt.disable_duet ? "off" : "on",
           j->opt.disable_stitch ? "off" : "on", j->opt.brand_content ? "yes" : "no",
           j->opt.brand_organic ? "yes" : "no", j->opt.is_aigc ? "yes" : "no",
           job_state_final(j->state) ? "-" : due, cr, up, j->attempts,
           j->publish_id[0] ? j->publish_id : "-", j->chunks_done, j->plan.count,
           (unsigned long long)j->plan.size, j->post_ids[0] ? j->post_ids : "-",
           j->fail_reason[0] ? j->fail_reason : "-", j->log_id[0] ? j->log_id : "-", j->orphans,
           j->orphans == 1 ? "" : "s");
    if (j->watch_until > 0) {
        char until[32];
        cli_fmt_time(j->watch_until, until, sizeof until);
        printf("%-13s %s\n", j->state == JOB_UNSURE ? "waits until:" : "post id until:", until);
    }
    free(j);
    return 0;
}

/* The job is cancelled in tikd; TikTok may still be pulling it. A pull can
 * be called back, best effort (spec §2.8); an upload cannot. */
static void cancel_pull(struct cli *c, const struct post_changed *pc)
{
    struct engine en;
    if (engine_open(c, &en, ENG_NET))
        return;
    struct tt_api api = {en.oauth, c->cfg.api_url};
    char *body = tt_body_publish_id(pc->publish_id);
    struct engine_answer cr = {0};
    struct tikd_err e = {0};
    if (tt_send(&api, pc->account, TT_CANCEL, body, engine_answered, &cr, &e) != 0)
        snprintf(cr.msg, sizeof cr.msg, "%s", e.msg);
    else
        engine_wait(&en, &cr.done);
    free(body);
    engine_answer_free(&cr);
    engine_close(&en);
    if (cr.ok)
        printf("TikTok stopped pulling publish %s\n", pc->publish_id);
    else
        printf("TikTok did not stop pulling publish %s: %s; it may still appear on the "
               "account\n",
               pc->publish_id, cr.msg);
}

static int job_view(struct store_txn *t, void *ud, json_t **out)
{
    return view_job_full(t, *(uint64_t *)ud, out);
}

static int run_job(struct cli *c, int argc, char **argv)
{
    bool json = cli_take_flag(&argc, argv, "--json");
    if (argc != 3)
        return cli_usage_error(&cmd_job, "expected: job show|approve|reject|cancel|retry ID");
    char *end;
    unsigned long long id = strtoull(argv[2], &end, 10);
    if (*end || id == 0)
        return cli_usage_error(&cmd_job, "'%s' is not a job id", argv[2]);
    if (strcmp(argv[1], "show") == 0) {
        if (cli_config(c))
            return 1;
        uint64_t jid = id;
        char what[40];
        snprintf(what, sizeof what, "job %llu", id);
        return json ? cli_json_view(c, job_view, &jid, what) : show_job(c, id);
    }
    if (json)
        return cli_unknown(&cmd_job, "option", "--json");
    static const struct {
        const char *verb;
        enum post_change what;
    } verbs[] = {{"cancel", POST_CANCEL},
                 {"retry", POST_RETRY},
                 {"approve", POST_APPROVE},
                 {"reject", POST_REJECT}};
    int what = -1;
    for (int i = 0; i < 4; i++)
        if (strcmp(argv[1], verbs[i].verb) == 0)
            what = (int)verbs[i].what;
    if (what < 0)
        return cli_unknown(&cmd_job, "subcommand", argv[1]);
    struct engine en;
    if (engine_open(c, &en, ENG_STORE))
        return 1;
    struct change_ctx cc = {.id = id, .what = (enum post_change)what, .limits = &c->cfg.limits};
    struct tikd_err e = {0};
    int rc = store_write(en.store, change_txn, &cc, &e);
    engine_close(&en);
    if (rc == 0)
        printf("%s\n", cc.out.msg);
    else if (rc == TIKD_EINVAL || rc == TIKD_ENOTFOUND) /* refused: the message says why */
        fprintf(stderr, "tikd: %s\n", cc.out.msg[0] ? cc.out.msg : e.msg);
    else /* it did not commit, whatever the transaction had done */
        fprintf(stderr, "tikd: job %llu was not changed: %s\n", id,
                e.msg[0] ? e.msg : tikd_strerror(rc));
    if (rc == 0)
        wake_daemon(c);
    if (rc == 0 && cc.out.pulling)
        cancel_pull(c, &cc.out);
    return rc ? 1 : 0;
}

const struct cli_cmd cmd_job = {
    "job", run_job, "job show [--json]|approve|reject|cancel|retry ID",
    "one job in detail; approve, reject, cancel or retry it",
    "  job show ID     every field: state, why, publish_id, progress, post ids, who chose\n"
    "                  (--json: every field and its history, as GET /api/v1/jobs/ID)\n"
    "  job approve ID  let a job that awaits approval go ahead (at its planned time)\n"
    "  job reject ID   cancel a job that awaits approval, with the reason\n"
    "  job cancel ID   stop a job that is not final; a pull TikTok is running (photos, video\n"
    "                  URLs) is called back at TikTok, best effort; an uploaded video TikTok\n"
    "                  is processing cannot be (FILE_UPLOAD has no cancel, spec §2.8)\n"
    "  job retry ID    plan a failed or cancelled job again, unless TikTok may still post it\n"};
