/* job.c - job records (JSON), the due index and planning checks (see
 * job.h). */
#include "job.h"
#include "image.h"
#include "mediaurl.h"
#include "slots.h"
#include "account.h"
#include "audit.h"
#include "clock.h"
#include "tiktok.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static const char *const state_names[] = {
    "scheduled", "preflight", "uploading", "processing", "deferred",
    "published", "in_inbox",  "failed",    "cancelled",  "awaiting_approval"};
static const char *const privacies[] = {"PUBLIC_TO_EVERYONE", "MUTUAL_FOLLOW_FRIENDS",
                                        "FOLLOWER_OF_CREATOR", "SELF_ONLY"}; /* §2.2 */
static const char NEXT_ID[] = "job_next_id";

const char *job_state_name(enum job_state s)
{
    return state_names[s];
}

bool job_state_final(enum job_state s)
{
    return s == JOB_PUBLISHED || s == JOB_IN_INBOX || s == JOB_FAILED || s == JOB_CANCELLED;
}

int job_state_parse(const char *name)
{
    for (int i = 0; i < (int)(sizeof state_names / sizeof state_names[0]); i++)
        if (strcmp(name, state_names[i]) == 0)
            return i;
    return -1;
}

long job_utf16_len(const char *s)
{
    const unsigned char *p = (const unsigned char *)s;
    long n = 0;
    while (*p) {
        int extra;
        unsigned cp;
        if (*p < 0x80) {
            cp = *p;
            extra = 0;
        } else if ((*p & 0xe0) == 0xc0) {
            cp = *p & 0x1f;
            extra = 1;
        } else if ((*p & 0xf0) == 0xe0) {
            cp = *p & 0x0f;
            extra = 2;
        } else if ((*p & 0xf8) == 0xf0) {
            cp = *p & 0x07;
            extra = 3;
        } else {
            return -1;
        }
        p++;
        for (int i = 0; i < extra; i++, p++) {
            if ((*p & 0xc0) != 0x80)
                return -1;
            cp = cp << 6 | (*p & 0x3f);
        }
        if ((extra == 1 && cp < 0x80) || (extra == 2 && cp < 0x800) ||
            (extra == 3 && (cp < 0x10000 || cp > 0x10ffff)) || (cp >= 0xd800 && cp <= 0xdfff))
            return -1; /* overlong, out of range, or a surrogate */
        n += cp >= 0x10000 ? 2 : 1;
    }
    return n;
}

int job_check_image(const char *path, char *why, size_t n)
{
    struct image_info ii;
    struct tikd_err e = {0};
    if (image_probe(path, &ii, &e) != 0) {
        snprintf(why, n, "%s", e.msg);
        return -1;
    }
    return image_check_photo(&ii, why, n);
}

int job_validate(const struct job *j, char *why, size_t n)
{
    int problems = 0;
    size_t o = 0;
    why[0] = '\0';
#define PROBLEM(...)                                                                               \
    do {                                                                                           \
        problems++;                                                                                \
        if (o < n)                                                                                 \
            o += (size_t)snprintf(why + o, n - o, __VA_ARGS__);                                    \
        if (o < n)                                                                                 \
            o += (size_t)snprintf(why + o, n - o, "\n");                                           \
    } while (0)
    if (!account_name_valid(j->account))
        PROBLEM("the account name '%s' is not valid", j->account);
    long units = job_utf16_len(j->caption);
    long max = j->kind == JOB_PHOTO ? TT_PHOTO_TITLE_MAX : TT_VIDEO_TITLE_MAX;
    if (units < 0)
        PROBLEM("the caption is not valid UTF-8");
    else if (units > max)
        PROBLEM("the %s is %ld UTF-16 units long; TikTok allows %ld for a %s (emoji above "
                "U+FFFF count 2)",
                j->kind == JOB_PHOTO ? "title" : "caption", units, max,
                j->kind == JOB_PHOTO ? "photo post" : "video");
    if (j->kind == JOB_PHOTO) {
        long d = job_utf16_len(j->description);
        if (d < 0)
            PROBLEM("the description is not valid UTF-8");
        else if (d > TT_PHOTO_DESCRIPTION_MAX)
            PROBLEM("the description is %ld UTF-16 units long; TikTok allows %d", d,
                    TT_PHOTO_DESCRIPTION_MAX);
        int count = 0;
        for (const char *p = j->images; *p;) {
            size_t l = strcspn(p, "\n");
            count++;
            char one[1024], bad[400];
            snprintf(one, sizeof one, "%.*s", (int)(l < sizeof one ? l : sizeof one - 1), p);
            if (one[0] == '/') { /* a local image, served to TikTok by tikd */
                if (job_check_image(one, bad, sizeof bad) != 0)
                    PROBLEM("photo %d (%s): %s", count, one, bad);
            } else if (l < 9 || strncmp(p, "https://", 8) != 0 || memchr(p, ' ', l)) {
                PROBLEM("photo %d is neither an https:// URL (TikTok pulls photos only from https "
                        "URLs on a verified domain) nor an absolute path of a local image",
                        count);
            }
            p += l + (p[l] == '\n');
        }
        if (count < 1 || count > JOB_IMAGES_MAX)
            PROBLEM("a photo post has 1 to %d images, not %d", JOB_IMAGES_MAX, count);
        else if (j->cover_index < 0 || j->cover_index >= count)
            PROBLEM("the cover index %d is not one of the %d images (0-based)", j->cover_index,
                    count);
    } else if (j->description[0] || j->images[0]) {
        PROBLEM("a video post has no description or images (use --caption)");
    }
    if (j->mode == JOB_DIRECT) {
        bool known = false;
        for (size_t i = 0; i < sizeof privacies / sizeof privacies[0]; i++)
            known |= strcmp(j->privacy, privacies[i]) == 0;
        if (!j->privacy[0])
            PROBLEM("choose a privacy level: PUBLIC_TO_EVERYONE, MUTUAL_FOLLOW_FRIENDS, "
                    "FOLLOWER_OF_CREATOR or SELF_ONLY (tikd never picks one for you: TikTok's "
                    "audit requires a deliberate choice)");
        else if (!known)
            PROBLEM("unknown privacy level '%s': use PUBLIC_TO_EVERYONE, MUTUAL_FOLLOW_FRIENDS, "
                    "FOLLOWER_OF_CREATOR or SELF_ONLY",
                    j->privacy);
        if (j->opt.brand_content && strcmp(j->privacy, "SELF_ONLY") == 0)
            PROBLEM("branded content cannot be SELF_ONLY (TikTok's content sharing rules)");
    } else if (j->privacy[0]) {
        PROBLEM("a draft has no privacy level: the creator chooses it in the TikTok app");
    }
    if (j->opt.cover_ms < -1)
        PROBLEM("the cover timestamp must be 0 or more milliseconds");
    struct stat st;
    if (j->kind == JOB_PHOTO)
        ; /* checked above */
    else if (strncmp(j->media, "https://", 8) == 0) {
        if (strlen(j->media) < 12 || strpbrk(j->media, " \t\r\n"))
            PROBLEM("the video URL %s is not valid", j->media);
        /* TikTok pulls it: its domain must be verified for the app */
    } else if (strncmp(j->media, "http://", 7) == 0)
        PROBLEM("TikTok pulls videos only from https URLs on a verified domain: %s", j->media);
    else if (j->media[0] != '/')
        PROBLEM("the media path must be absolute: %s", j->media);
    else if (stat(j->media, &st) != 0)
        PROBLEM("cannot read the media file %s", j->media);
    else if (!S_ISREG(st.st_mode))
        PROBLEM("the media %s is not a regular file", j->media);
    else if (st.st_size == 0)
        PROBLEM("the media file %s is empty", j->media);
#undef PROBLEM
    if (o && why[o - 1] == '\n')
        why[o - 1] = '\0';
    return problems;
}

/* ---- records ---------------------------------------------------------------- */

static void due_key(const struct job *j, unsigned char k[16])
{
    store_be64_put(k, (uint64_t)(j->due_at * 1000));
    store_be64_put(k + 8, j->id);
}

static json_t *encode(const struct job *j)
{
    json_t *o = json_object();
    json_object_set_new(o, "id", json_integer((json_int_t)j->id));
    json_object_set_new(o, "account", json_string(j->account));
    json_object_set_new(o, "mode", json_string(j->mode == JOB_DRAFT ? "draft" : "direct"));
    json_object_set_new(o, "kind", json_string(j->kind == JOB_PHOTO ? "photo" : "video"));
    json_object_set_new(o, "media", json_string(j->media));
    json_object_set_new(o, "images", json_string(j->images));
    json_object_set_new(o, "media_hash", json_string(j->media_hash));
    json_object_set_new(o, "cover_index", json_integer(j->cover_index));
    json_object_set_new(o, "description", json_string(j->description));
    json_object_set_new(o, "init_sent_at", json_real(j->init_sent_at));
    json_object_set_new(o, "slot_at", json_real(j->slot_at));
    json_object_set_new(o, "booked_slot", json_real(j->booked_slot));
    json_object_set_new(o, "mime", json_string(j->mime));
    json_object_set_new(o, "caption", json_string(j->caption));
    json_object_set_new(o, "privacy", json_string(j->privacy));
    json_object_set_new(o, "options",
                        json_pack("{s:b, s:b, s:b, s:b, s:b, s:b, s:i}", "disable_comment",
                                  j->opt.disable_comment, "disable_duet", j->opt.disable_duet,
                                  "disable_stitch", j->opt.disable_stitch, "brand_content",
                                  j->opt.brand_content, "brand_organic", j->opt.brand_organic,
                                  "is_aigc", j->opt.is_aigc, "cover_ms", j->opt.cover_ms));
    json_object_set_new(json_object_get(o, "options"), "auto_add_music",
                        json_boolean(j->opt.auto_add_music));
    json_object_set_new(o, "chosen_by", json_string(j->chosen_by));
    json_object_set_new(o, "state", json_string(state_names[j->state]));
    json_object_set_new(o, "reason", json_string(j->reason));
    json_object_set_new(o, "due_at", json_real(j->due_at));
    json_object_set_new(o, "created_at", json_real(j->created_at));
    json_object_set_new(o, "updated_at", json_real(j->updated_at));
    json_object_set_new(o, "processing_deadline", json_real(j->processing_deadline));
    json_object_set_new(o, "planned_at", json_real(j->planned_at));
    json_object_set_new(o, "attempts", json_integer(j->attempts));
    json_object_set_new(o, "publish_id", json_string(j->publish_id));
    json_object_set_new(o, "upload_url", json_string(j->upload_url));
    json_object_set_new(o, "upload_url_at", json_real(j->upload_url_at));
    json_object_set_new(o, "plan",
                        json_pack("{s:I, s:I, s:i}", "size", (json_int_t)j->plan.size, "chunk_size",
                                  (json_int_t)j->plan.chunk_size, "count", (int)j->plan.count));
    json_object_set_new(o, "chunks_done", json_integer(j->chunks_done));
    json_object_set_new(o, "post_ids", json_string(j->post_ids));
    json_object_set_new(o, "fail_reason", json_string(j->fail_reason));
    json_object_set_new(o, "log_id", json_string(j->log_id));
    return o;
}

static void sget(json_t *o, const char *k, char *out, size_t n)
{
    const char *v = json_string_value(json_object_get(o, k));
    snprintf(out, n, "%s", v ? v : "");
}

static int decode(const void *p, size_t n, struct job *j)
{
    json_t *o = json_loadb(p, n, 0, NULL);
    if (!json_is_object(o)) {
        json_decref(o);
        return TIKD_ECORRUPT;
    }
    memset(j, 0, sizeof *j);
    j->id = (uint64_t)json_integer_value(json_object_get(o, "id"));
    sget(o, "account", j->account, sizeof j->account);
    char mode[16], state[32];
    sget(o, "mode", mode, sizeof mode);
    j->mode = strcmp(mode, "draft") == 0 ? JOB_DRAFT : JOB_DIRECT;
    char kind[16];
    sget(o, "kind", kind, sizeof kind);
    j->kind = strcmp(kind, "photo") == 0 ? JOB_PHOTO : JOB_VIDEO;
    sget(o, "media", j->media, sizeof j->media);
    sget(o, "images", j->images, sizeof j->images);
    sget(o, "media_hash", j->media_hash, sizeof j->media_hash);
    j->cover_index = (int)json_integer_value(json_object_get(o, "cover_index"));
    sget(o, "description", j->description, sizeof j->description);
    j->init_sent_at = json_number_value(json_object_get(o, "init_sent_at"));
    j->slot_at = json_number_value(json_object_get(o, "slot_at"));
    j->booked_slot = json_number_value(json_object_get(o, "booked_slot"));
    sget(o, "mime", j->mime, sizeof j->mime);
    sget(o, "caption", j->caption, sizeof j->caption);
    sget(o, "privacy", j->privacy, sizeof j->privacy);
    json_t *op = json_object_get(o, "options");
    j->opt.disable_comment = json_is_true(json_object_get(op, "disable_comment"));
    j->opt.disable_duet = json_is_true(json_object_get(op, "disable_duet"));
    j->opt.disable_stitch = json_is_true(json_object_get(op, "disable_stitch"));
    j->opt.brand_content = json_is_true(json_object_get(op, "brand_content"));
    j->opt.brand_organic = json_is_true(json_object_get(op, "brand_organic"));
    j->opt.is_aigc = json_is_true(json_object_get(op, "is_aigc"));
    j->opt.cover_ms = (int)json_integer_value(json_object_get(op, "cover_ms"));
    j->opt.auto_add_music = json_is_true(json_object_get(op, "auto_add_music"));
    sget(o, "chosen_by", j->chosen_by, sizeof j->chosen_by);
    sget(o, "state", state, sizeof state);
    int st = job_state_parse(state);
    j->state = st < 0 ? JOB_FAILED : (enum job_state)st;
    sget(o, "reason", j->reason, sizeof j->reason);
    j->due_at = json_number_value(json_object_get(o, "due_at"));
    j->created_at = json_number_value(json_object_get(o, "created_at"));
    j->updated_at = json_number_value(json_object_get(o, "updated_at"));
    j->processing_deadline = json_number_value(json_object_get(o, "processing_deadline"));
    j->planned_at = json_number_value(json_object_get(o, "planned_at"));
    j->attempts = (int)json_integer_value(json_object_get(o, "attempts"));
    sget(o, "publish_id", j->publish_id, sizeof j->publish_id);
    sget(o, "upload_url", j->upload_url, sizeof j->upload_url);
    j->upload_url_at = json_number_value(json_object_get(o, "upload_url_at"));
    json_t *pl = json_object_get(o, "plan");
    j->plan.size = (uint64_t)json_integer_value(json_object_get(pl, "size"));
    j->plan.chunk_size = (uint64_t)json_integer_value(json_object_get(pl, "chunk_size"));
    j->plan.count = (uint32_t)json_integer_value(json_object_get(pl, "count"));
    j->chunks_done = (uint32_t)json_integer_value(json_object_get(o, "chunks_done"));
    sget(o, "post_ids", j->post_ids, sizeof j->post_ids);
    sget(o, "fail_reason", j->fail_reason, sizeof j->fail_reason);
    sget(o, "log_id", j->log_id, sizeof j->log_id);
    json_decref(o);
    return j->id ? 0 : TIKD_ECORRUPT;
}

static int write_record(struct store_txn *t, const struct job *j)
{
    json_t *o = encode(j);
    char *s = o ? json_dumps(o, JSON_COMPACT | JSON_REAL_PRECISION(17)) : NULL;
    json_decref(o);
    if (!s)
        return TIKD_ENOMEM;
    unsigned char k[8];
    store_be64_put(k, j->id);
    int rc = store_put(t, STORE_DB_JOBS, k, 8, s, strlen(s));
    free(s);
    if (rc == 0 && !job_state_final(j->state)) {
        unsigned char dk[16];
        due_key(j, dk);
        rc = store_put(t, STORE_DB_DUE, dk, 16, "", 0);
    }
    return rc;
}

int job_create(struct store_txn *t, struct job *j)
{
    struct store_val v;
    uint64_t next = 1;
    if (store_get(t, STORE_DB_META, NEXT_ID, sizeof NEXT_ID - 1, &v) == 0 && v.n == 8)
        next = store_be64_get(v.p);
    unsigned char nb[8];
    store_be64_put(nb, next + 1);
    int rc = store_put(t, STORE_DB_META, NEXT_ID, sizeof NEXT_ID - 1, nb, 8);
    if (rc != 0)
        return rc;
    j->id = next;
    j->created_at = j->updated_at = clock_now();
    if (j->state != JOB_AWAITING_APPROVAL)
        j->state = JOB_SCHEDULED;
    if (j->planned_at <= 0)
        j->planned_at = j->state == JOB_SCHEDULED && j->due_at > 0 ? j->due_at : j->created_at;
    if (j->due_at <= 0)
        j->due_at = j->planned_at;
    rc = write_record(t, j);
    char detail[1024];
    snprintf(detail, sizeof detail,
             "job=%llu account=%s mode=%s approval=%s privacy=%s chosen_by=%s disable_comment=%d "
             "disable_duet=%d disable_stitch=%d brand_content=%d brand_organic=%d is_aigc=%d "
             "media=%.300s",
             (unsigned long long)j->id, j->account, j->mode == JOB_DRAFT ? "draft" : "direct",
             j->state == JOB_AWAITING_APPROVAL ? "required" : "no",
             j->privacy[0] ? j->privacy : "-", j->chosen_by, j->opt.disable_comment,
             j->opt.disable_duet, j->opt.disable_stitch, j->opt.brand_content, j->opt.brand_organic,
             j->opt.is_aigc, j->media);
    return rc ? rc : audit_append(t, j->chosen_by, "job.planned", detail);
}

int job_get(struct store_txn *t, uint64_t id, struct job *j)
{
    unsigned char k[8];
    store_be64_put(k, id);
    struct store_val v;
    int rc = store_get(t, STORE_DB_JOBS, k, 8, &v);
    return rc ? rc : decode(v.p, v.n, j);
}

struct read_ctx {
    uint64_t id;
    struct job *j;
};

static int read_txn(struct store_txn *t, void *ctx)
{
    struct read_ctx *r = ctx;
    return job_get(t, r->id, r->j);
}

int job_read(struct store *s, uint64_t id, struct job *j)
{
    struct read_ctx r = {id, j};
    return store_read(s, read_txn, &r, NULL);
}

int job_put(struct store_txn *t, struct job *j)
{
    struct job old;
    int rc = job_get(t, j->id, &old);
    if (rc != 0)
        return rc;
    if (!job_state_final(old.state)) {
        unsigned char dk[16];
        due_key(&old, dk);
        rc = store_del(t, STORE_DB_DUE, dk, 16);
        if (rc != 0)
            return rc;
    }
    if (job_state_final(j->state) && !job_state_final(old.state) &&
        (rc = mediaurl_del_job(t, j->id)) != 0)
        return rc; /* an ended job's images are served no more */
    if (j->state == JOB_CANCELLED && old.state != JOB_CANCELLED && j->booked_slot > 0 &&
        (rc = slots_release(t, j->account, j->booked_slot)) != 0)
        return rc; /* a cancelled post gives its schedule slot back */
    j->updated_at = clock_now();
    return write_record(t, j);
}

struct each {
    int (*fn)(const struct job *, void *);
    void *ctx;
};

static int each_cb(struct store_val k, struct store_val v, void *ctx)
{
    (void)k;
    struct each *e = ctx;
    struct job *j = malloc(sizeof *j);
    if (!j)
        return TIKD_ENOMEM;
    int rc = decode(v.p, v.n, j);
    if (rc == 0)
        rc = e->fn(j, e->ctx);
    free(j);
    return rc;
}

int job_foreach(struct store_txn *t, int (*fn)(const struct job *, void *), void *ctx)
{
    struct each e = {fn, ctx};
    return store_foreach(t, STORE_DB_JOBS, NULL, 0, each_cb, &e);
}

struct first_due {
    uint64_t id;
    double due;
    bool found;
};

static int first_cb(struct store_val k, struct store_val v, void *ctx)
{
    (void)v;
    struct first_due *f = ctx;
    if (k.n != 16)
        return 0;
    f->due = (double)store_be64_get(k.p) / 1000.0;
    f->id = store_be64_get((const unsigned char *)k.p + 8);
    f->found = true;
    return 1;
}

int job_next_due(struct store_txn *t, uint64_t *id, double *due)
{
    struct first_due f = {0};
    int rc = store_foreach(t, STORE_DB_DUE, NULL, 0, first_cb, &f);
    if (rc < 0)
        return rc;
    if (!f.found)
        return TIKD_ENOTFOUND;
    *id = f.id;
    *due = f.due;
    return 0;
}

struct due_walk {
    double until;
    int (*fn)(uint64_t, double, void *);
    void *ctx;
};

static int due_cb(struct store_val k, struct store_val v, void *ctx)
{
    (void)v;
    struct due_walk *w = ctx;
    if (k.n != 16)
        return 0;
    double due = (double)store_be64_get(k.p) / 1000.0;
    if (due > w->until)
        return 1; /* in due order: nothing later is due */
    return w->fn(store_be64_get((const unsigned char *)k.p + 8), due, w->ctx);
}

int job_foreach_due(struct store_txn *t, double until, int (*fn)(uint64_t, double, void *),
                    void *ctx)
{
    struct due_walk w = {until, fn, ctx};
    int rc = store_foreach(t, STORE_DB_DUE, NULL, 0, due_cb, &w);
    return rc == 1 ? 0 : rc;
}
