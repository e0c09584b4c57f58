/* job.c - job records (JSON), the due index and the job index (see job.h).
 *
 * STORE_DB_INDEX keys, each -> "" (the key says it all):
 *   'a' account NUL id(be64)           every job of an account
 *   'c' account NUL sha256hex NUL id   every job of an account with that video content
 *   'p' publish_id NUL id              every publish TikTok gave a job
 * They are written with the record and never removed (jobs are history), so
 * a lookup reads the job and checks that it still says what the key says. */
#include "job.h"
#include "audit.h"
#include "clock.h"
#include "mediaurl.h"
#include "slots.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const state_names[] = {
    "scheduled", "preflight", "uploading", "processing",        "deferred", "published",
    "in_inbox",  "failed",    "cancelled", "awaiting_approval", "unsure"};
static const char NEXT_ID[] = "job_next_id";

const char *job_state_name(enum job_state s)
{
    return state_names[s];
}

bool job_state_final(enum job_state s)
{
    return s == JOB_PUBLISHED || s == JOB_IN_INBOX || s == JOB_FAILED || s == JOB_CANCELLED;
}

bool job_is_pull(const struct job *j)
{
    return j->kind == JOB_PHOTO || strncmp(j->media, "https://", 8) == 0;
}

bool job_pull_unsettled(const struct job *j)
{
    return !job_state_final(j->state) && !j->publish_id[0] && j->init_sent_at > 0 && job_is_pull(j);
}

int job_add_post_id(struct job *j, const char *id)
{
    size_t n = strlen(id), have = strlen(j->post_ids);
    if (n == 0 || n > 30 || strspn(id, "0123456789") != n || have + n + 2 > sizeof j->post_ids)
        return 0;
    for (const char *p = j->post_ids; *p; p += strcspn(p, ","), p += *p == ',')
        if (strncmp(p, id, n) == 0 && (p[n] == ',' || p[n] == '\0'))
            return 0;
    snprintf(j->post_ids + have, sizeof j->post_ids - have, "%s%s", have ? "," : "", id);
    return 1;
}

/* A job the pipeline must look at again: one not final, or a published one
 * still asking TikTok for its post id. */
static bool has_due(const struct job *j)
{
    return !job_state_final(j->state) || (j->state == JOB_PUBLISHED && j->watch_until > 0);
}

int job_state_parse(const char *name)
{
    for (int i = 0; i < (int)(sizeof state_names / sizeof state_names[0]); i++)
        if (strcmp(name, state_names[i]) == 0)
            return i;
    return -1;
}

/* ---- records ---------------------------------------------------------------- */

static void due_key(const struct job *j, unsigned char k[16])
{
    store_be64_put(k, (uint64_t)(j->due_at * 1000));
    store_be64_put(k + 8, j->id);
}

/* What the probe read of a local video (media_info), for the pre-flight. */
static json_t *encode_probe(const struct media_info *m)
{
    return json_pack("{s:s, s:I, s:I, s:I, s:I, s:I, s:b, s:b, s:s, s:s, s:i, s:i, s:i, s:i, s:i, "
                     "s:f, s:f, s:I, s:I, s:s}",
                     "container", m->container, "size", (json_int_t)m->size, "dev",
                     (json_int_t)m->dev, "ino", (json_int_t)m->ino, "mtime_ns",
                     (json_int_t)m->mtime_ns, "ctime_ns", (json_int_t)m->ctime_ns, "video",
                     m->has_video, "audio", m->has_audio, "codec", m->codec, "profile", m->profile,
                     "width", m->width, "height", m->height, "display_width", m->display_width,
                     "display_height", m->display_height, "rotation", m->rotation, "fps", m->fps,
                     "duration", m->duration, "bit_rate", (json_int_t)m->bit_rate, "video_bit_rate",
                     (json_int_t)m->video_bit_rate, "audio_codec", m->audio_codec);
}

static void decode_probe(json_t *o, struct media_info *m);

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
    json_object_set_new(o, "spent_at", json_real(j->spent_at));
    json_object_set_new(o, "booked_slot", json_real(j->booked_slot));
    json_object_set_new(o, "mime", json_string(j->mime));
    if (j->probe.probed)
        json_object_set_new(o, "probe", encode_probe(&j->probe));
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
    if (j->tenant[0])
        json_object_set_new(o, "tenant", json_string(j->tenant));
    if (j->libs[0])
        json_object_set_new(o, "libs", json_string(j->libs));
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
    if (j->watch_until > 0)
        json_object_set_new(o, "watch_until", json_real(j->watch_until));
    if (j->orphans)
        json_object_set_new(o, "orphans", json_integer(j->orphans));
    json_object_set_new(o, "fail_reason", json_string(j->fail_reason));
    json_object_set_new(o, "log_id", json_string(j->log_id));
    return o;
}

static void sget(json_t *o, const char *k, char *out, size_t n);

static void decode_probe(json_t *o, struct media_info *m)
{
    memset(m, 0, sizeof *m);
    if (!json_is_object(o))
        return;
    m->probed = true;
    sget(o, "container", m->container, sizeof m->container);
    m->mime = media_mime_of(m->container);
    m->size = (uint64_t)json_integer_value(json_object_get(o, "size"));
    m->dev = (uint64_t)json_integer_value(json_object_get(o, "dev"));
    m->ino = (uint64_t)json_integer_value(json_object_get(o, "ino"));
    m->mtime_ns = json_integer_value(json_object_get(o, "mtime_ns"));
    m->ctime_ns = json_integer_value(json_object_get(o, "ctime_ns"));
    m->has_video = json_is_true(json_object_get(o, "video"));
    m->has_audio = json_is_true(json_object_get(o, "audio"));
    sget(o, "codec", m->codec, sizeof m->codec);
    sget(o, "profile", m->profile, sizeof m->profile);
    sget(o, "audio_codec", m->audio_codec, sizeof m->audio_codec);
    m->width = (int)json_integer_value(json_object_get(o, "width"));
    m->height = (int)json_integer_value(json_object_get(o, "height"));
    m->display_width = (int)json_integer_value(json_object_get(o, "display_width"));
    m->display_height = (int)json_integer_value(json_object_get(o, "display_height"));
    m->rotation = (int)json_integer_value(json_object_get(o, "rotation"));
    m->fps = json_number_value(json_object_get(o, "fps"));
    m->duration = json_number_value(json_object_get(o, "duration"));
    m->bit_rate = json_integer_value(json_object_get(o, "bit_rate"));
    m->video_bit_rate = json_integer_value(json_object_get(o, "video_bit_rate"));
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
    j->spent_at = json_number_value(json_object_get(o, "spent_at"));
    j->booked_slot = json_number_value(json_object_get(o, "booked_slot"));
    sget(o, "mime", j->mime, sizeof j->mime);
    decode_probe(json_object_get(o, "probe"), &j->probe);
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
    sget(o, "tenant", j->tenant, sizeof j->tenant);
    sget(o, "libs", j->libs, sizeof j->libs);
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
    j->watch_until = json_number_value(json_object_get(o, "watch_until"));
    j->orphans = (int)json_integer_value(json_object_get(o, "orphans"));
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
    if (rc == 0 && has_due(j)) {
        unsigned char dk[16];
        due_key(j, dk);
        rc = store_put(t, STORE_DB_DUE, dk, 16, "", 0);
    }
    return rc;
}

/* ---- the job index ---------------------------------------------------------- */

/* An index key: tag, then parts joined by NUL, then the id; its length. */
static size_t index_key(unsigned char *k, size_t n, char tag, const char *a, const char *b,
                        uint64_t id)
{
    size_t la = strlen(a), lb = b ? strlen(b) + 1 : 0;
    if (2 + la + lb + 8 > n)
        return 0;
    k[0] = (unsigned char)tag;
    memcpy(k + 1, a, la + 1);
    if (b)
        memcpy(k + 2 + la, b, lb);
    if (id)
        store_be64_put(k + 2 + la + lb, id);
    return 2 + la + lb + (id ? 8 : 0);
}

static int index_put(struct store_txn *t, char tag, const char *a, const char *b, uint64_t id)
{
    unsigned char k[400];
    size_t kl = index_key(k, sizeof k, tag, a, b, id);
    return kl ? store_put(t, STORE_DB_INDEX, k, kl, "", 0) : TIKD_EINVAL;
}

/* The index entries j needs that old (NULL: a new job) did not. */
static int index_job(struct store_txn *t, const struct job *old, const struct job *j)
{
    int rc = 0;
    if (!old)
        rc = index_put(t, 'a', j->account, NULL, j->id);
    if (rc == 0 && j->media_hash[0] && (!old || strcmp(old->media_hash, j->media_hash) != 0))
        rc = index_put(t, 'c', j->account, j->media_hash, j->id);
    if (rc == 0 && j->publish_id[0] && (!old || strcmp(old->publish_id, j->publish_id) != 0))
        rc = index_put(t, 'p', j->publish_id, NULL, j->id);
    return rc;
}

struct index_walk {
    struct store_txn *t;
    int (*fn)(const struct job *, void *);
    void *ctx;
    struct job *j;
};

static int index_each(struct store_val k, struct store_val v, void *ctx)
{
    (void)v;
    struct index_walk *w = ctx;
    if (k.n < 8)
        return 0;
    int rc = job_get(w->t, store_be64_get((const unsigned char *)k.p + k.n - 8), w->j);
    if (rc == TIKD_ENOTFOUND)
        return 0;
    return rc ? rc : w->fn(w->j, w->ctx);
}

/* Every job under the prefix tag a [NUL b] NUL, in id order. */
static int index_foreach(struct store_txn *t, char tag, const char *a, const char *b,
                         int (*fn)(const struct job *, void *), void *ctx)
{
    unsigned char k[400];
    size_t kl = index_key(k, sizeof k, tag, a, b, 0);
    if (!kl)
        return 0;
    struct index_walk w = {t, fn, ctx, malloc(sizeof(struct job))};
    if (!w.j)
        return TIKD_ENOMEM;
    int rc = store_foreach(t, STORE_DB_INDEX, k, kl, index_each, &w);
    free(w.j);
    return rc;
}

int job_foreach_account(struct store_txn *t, const char *account,
                        int (*fn)(const struct job *j, void *ctx), void *ctx)
{
    return index_foreach(t, 'a', account, NULL, fn, ctx);
}

struct content_ctx {
    const char *account, *hash;
    uint64_t id;
    enum job_state state;
};

static int content_one(const struct job *j, void *ctx)
{
    struct content_ctx *c = ctx;
    if (strcmp(j->media_hash, c->hash) != 0 || strcmp(j->account, c->account) != 0 ||
        j->state == JOB_FAILED || j->state == JOB_CANCELLED)
        return 0;
    c->id = j->id;
    c->state = j->state;
    return 1;
}

int job_find_content(struct store_txn *t, const char *account, const char *hash, uint64_t *id,
                     enum job_state *state)
{
    struct content_ctx c = {account, hash, 0, JOB_SCHEDULED};
    int rc = index_foreach(t, 'c', account, hash, content_one, &c);
    if (rc < 0)
        return rc;
    if (!c.id)
        return TIKD_ENOTFOUND;
    *id = c.id;
    if (state)
        *state = c.state;
    return 0;
}

struct publish_ctx {
    const char *publish_id;
    uint64_t id;
};

static int publish_one(const struct job *j, void *ctx)
{
    struct publish_ctx *c = ctx;
    if (strcmp(j->publish_id, c->publish_id) != 0)
        return 0; /* TikTok failed that publish and the job has another one now */
    c->id = j->id;
    return 1;
}

int job_find_publish(struct store_txn *t, const char *publish_id, uint64_t *id)
{
    struct publish_ctx c = {publish_id, 0};
    int rc = index_foreach(t, 'p', publish_id, NULL, publish_one, &c);
    if (rc < 0)
        return rc;
    if (!c.id)
        return TIKD_ENOTFOUND;
    *id = c.id;
    return 0;
}

struct wake_ctx {
    uint64_t *ids;
    size_t n, cap;
};

static int wake_one(const struct job *j, void *ctx)
{
    struct wake_ctx *w = ctx;
    /* a state whose due moment is a wait to try again (not a planned time,
     * an approval deadline or an unsure job's) */
    bool waits = j->state == JOB_DEFERRED || j->state == JOB_PREFLIGHT ||
                 j->state == JOB_UPLOADING || j->state == JOB_PROCESSING;
    if (!waits || j->due_at <= clock_now() || strncmp(j->reason, "deferred by rule:", 17) == 0)
        return 0;
    if (w->n == w->cap) {
        size_t nc = w->cap ? w->cap * 2 : 16;
        uint64_t *g = realloc(w->ids, nc * sizeof *g);
        if (!g)
            return TIKD_ENOMEM;
        w->ids = g;
        w->cap = nc;
    }
    w->ids[w->n++] = j->id;
    return 0;
}

int job_wake_account(struct store_txn *t, const char *account)
{
    struct wake_ctx w = {0};
    int rc = index_foreach(t, 'a', account, NULL, wake_one, &w); /* collected first: the walk
                                                                  * must not see its writes */
    struct job *j = w.n ? malloc(sizeof *j) : NULL;
    if (w.n && !j)
        rc = TIKD_ENOMEM;
    for (size_t i = 0; rc >= 0 && i < w.n; i++)
        if ((rc = job_get(t, w.ids[i], j)) == 0) {
            j->due_at = clock_now();
            rc = job_put(t, j);
        }
    free(j);
    free(w.ids);
    return rc < 0 ? rc : 0;
}

static int any_key(struct store_val k, struct store_val v, void *ctx)
{
    (void)k;
    (void)v;
    (void)ctx;
    return 1;
}

int job_publish_seen(struct store_txn *t, const char *publish_id)
{
    unsigned char k[400];
    size_t kl = index_key(k, sizeof k, 'p', publish_id, NULL, 0);
    return kl ? store_foreach(t, STORE_DB_INDEX, k, kl, any_key, NULL) : 0;
}

static int index_one(const struct job *j, void *ctx)
{
    return index_job(ctx, NULL, j);
}

int job_index_build(struct store_txn *t)
{
    return job_foreach(t, index_one, t);
}

/* ---- records, continued ------------------------------------------------------- */

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
    if (rc == 0)
        rc = index_job(t, NULL, j);
    char detail[1024];
    snprintf(detail, sizeof detail,
             "job=%llu account=%s mode=%s approval=%s privacy=%s chosen_by=%s disable_comment=%d "
             "disable_duet=%d disable_stitch=%d brand_content=%d brand_organic=%d is_aigc=%d "
             "media=%.300s tenant=%s libs=%s",
             (unsigned long long)j->id, j->account, j->mode == JOB_DRAFT ? "draft" : "direct",
             j->state == JOB_AWAITING_APPROVAL ? "required" : "no",
             j->privacy[0] ? j->privacy : "-", j->chosen_by, j->opt.disable_comment,
             j->opt.disable_duet, j->opt.disable_stitch, j->opt.brand_content, j->opt.brand_organic,
             j->opt.is_aigc, j->media, j->tenant[0] ? j->tenant : "-", j->libs[0] ? j->libs : "-");
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
    if (has_due(&old)) {
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
    rc = write_record(t, j);
    return rc ? rc : index_job(t, &old, j);
}

struct each {
    int (*fn)(const struct job *, void *);
    void (*bad)(uint64_t id, void *);
    void *ctx;
};

static int each_cb(struct store_val k, struct store_val v, void *ctx)
{
    struct each *e = ctx;
    struct job *j = malloc(sizeof *j);
    if (!j)
        return TIKD_ENOMEM;
    int rc = decode(v.p, v.n, j);
    if (rc == 0) {
        rc = e->fn(j, e->ctx);
    } else if (e->bad && rc == TIKD_ECORRUPT) {
        e->bad(k.n == 8 ? store_be64_get(k.p) : 0, e->ctx);
        rc = 0;
    }
    free(j);
    return rc;
}

int job_foreach(struct store_txn *t, int (*fn)(const struct job *, void *), void *ctx)
{
    struct each e = {fn, NULL, ctx};
    return store_foreach(t, STORE_DB_JOBS, NULL, 0, each_cb, &e);
}

int job_foreach_all(struct store_txn *t, int (*fn)(const struct job *, void *),
                    void (*bad)(uint64_t id, void *), void *ctx)
{
    struct each e = {fn, bad, ctx};
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
