/* job.c - job records (core/jobrec), the due index and the job index (see job.h).
 *
 * STORE_DB_INDEX keys, each -> "" (the key says it all):
 *   'a' account NUL id(be64)           every job of an account
 *   'c' account NUL sha256hex NUL id   every job of an account with that video content
 *   'p' publish_id NUL id              every publish TikTok gave a job
 *   'o' account NUL id(be64)           every job of an account not final yet
 * They are written with the record and, but for 'o', never removed (jobs are
 * history), so a lookup reads the job and checks that it still says what the
 * key says. 'o' follows the state: what looks at an account's waiting jobs
 * costs those jobs, not its history. */
#include "job.h"
#include "audit.h"
#include "jobrec.h"
#include "clock.h"
#include "mediaurl.h"
#include "slots.h"

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

static int write_record(struct store_txn *t, const struct job *j)
{
    unsigned char *rec;
    size_t n;
    if (jobrec_encode(j, &rec, &n) != 0)
        return TIKD_ENOMEM;
    unsigned char k[8];
    store_be64_put(k, j->id);
    int rc = store_put(t, STORE_DB_JOBS, k, 8, rec, n);
    free(rec);
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

static int index_del(struct store_txn *t, char tag, const char *a, uint64_t id)
{
    unsigned char k[400];
    size_t kl = index_key(k, sizeof k, tag, a, NULL, id);
    return kl ? store_del(t, STORE_DB_INDEX, k, kl) : TIKD_EINVAL;
}

/* The index entries j needs that old (NULL: a new job) did not, and the
 * open entry it no longer needs. */
static int index_job(struct store_txn *t, const struct job *old, const struct job *j)
{
    int rc = 0;
    bool was_open = old && !job_state_final(old->state), open = !job_state_final(j->state);
    if (!old)
        rc = index_put(t, 'a', j->account, NULL, j->id);
    if (rc == 0 && open != was_open)
        rc = open ? index_put(t, 'o', j->account, NULL, j->id)
                  : index_del(t, 'o', j->account, j->id);
    if (rc == 0 && j->media_hash[0] && (!old || strcmp(old->media_hash, j->media_hash) != 0))
        rc = index_put(t, 'c', j->account, j->media_hash, j->id);
    if (rc == 0 && j->publish_id[0] && (!old || strcmp(old->publish_id, j->publish_id) != 0))
        rc = index_put(t, 'p', j->publish_id, NULL, j->id);
    if (rc == 0 && j->origin[0] && (!old || strcmp(old->origin, j->origin) != 0))
        rc = index_put(t, 'x', j->origin, NULL, j->id);
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

int job_foreach_account_open(struct store_txn *t, const char *account,
                             int (*fn)(const struct job *j, void *ctx), void *ctx)
{
    return index_foreach(t, 'o', account, NULL, fn, ctx);
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
    int rc = index_foreach(t, 'o', account, NULL, wake_one, &w); /* collected first: the walk
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

static int open_one(const struct job *j, void *ctx)
{
    return job_state_final(j->state) ? 0 : index_put(ctx, 'o', j->account, NULL, j->id);
}

/* a record that cannot be read is left out (tikd status counts it; job
 * show names it): it cannot be worked, and must not stop the upgrade */
static void open_bad(uint64_t id, void *ctx)
{
    (void)id;
    (void)ctx;
}

int job_open_index_build(struct store_txn *t)
{
    return job_foreach_all(t, open_one, open_bad, t);
}

/* ---- records, continued ------------------------------------------------------- */

/* ---- counts ------------------------------------------------------------------ */

static const char COUNTS[] = "job_counts";
#define NCOUNTS (3 + 16) /* jobs, orphans, orphan_jobs, by_state[16]: little-endian u64s */

int job_counts_get(struct store_txn *t, struct job_counts *c)
{
    memset(c, 0, sizeof *c);
    struct store_val v;
    int rc = store_get(t, STORE_DB_META, COUNTS, sizeof COUNTS - 1, &v);
    if (rc == TIKD_ENOTFOUND)
        return 0;
    if (rc != 0)
        return rc;
    if (v.n != NCOUNTS * 8)
        return TIKD_ECORRUPT;
    uint64_t n[NCOUNTS] = {0};
    const unsigned char *p = v.p;
    for (int i = 0; i < NCOUNTS; i++)
        for (int b = 0; b < 8; b++)
            n[i] |= (uint64_t)p[i * 8 + b] << (8 * b);
    c->jobs = n[0];
    c->orphans = n[1];
    c->orphan_jobs = n[2];
    memcpy(c->by_state, n + 3, sizeof c->by_state);
    return 0;
}

static int counts_put(struct store_txn *t, const struct job_counts *c)
{
    uint64_t n[NCOUNTS] = {c->jobs, c->orphans, c->orphan_jobs};
    memcpy(n + 3, c->by_state, sizeof c->by_state);
    unsigned char p[NCOUNTS * 8];
    for (int i = 0; i < NCOUNTS; i++)
        for (int b = 0; b < 8; b++)
            p[i * 8 + b] = (unsigned char)(n[i] >> (8 * b));
    return store_put(t, STORE_DB_META, COUNTS, sizeof COUNTS - 1, p, sizeof p);
}

/* old (NULL: a new job) became j: the counts follow. */
static int counts_move(struct store_txn *t, const struct job *old, const struct job *j)
{
    if (old && old->state == j->state && old->orphans == j->orphans)
        return 0;
    struct job_counts c;
    int rc = job_counts_get(t, &c);
    if (rc != 0)
        return rc;
    if (old) {
        c.by_state[old->state & 15]--;
        c.orphans -= (uint64_t)(old->orphans > 0 ? old->orphans : 0);
        c.orphan_jobs -= old->orphans > 0;
    } else {
        c.jobs++;
    }
    c.by_state[j->state & 15]++;
    c.orphans += (uint64_t)(j->orphans > 0 ? j->orphans : 0);
    c.orphan_jobs += j->orphans > 0;
    return counts_put(t, &c);
}

static int count_one(const struct job *j, void *ctx)
{
    struct job_counts *c = ctx;
    c->jobs++;
    c->by_state[j->state & 15]++;
    c->orphans += (uint64_t)(j->orphans > 0 ? j->orphans : 0);
    c->orphan_jobs += j->orphans > 0;
    return 0;
}

static void count_bad(uint64_t id, void *ctx)
{
    (void)id;
    (void)ctx; /* a record that cannot be read is not counted */
}

int job_counts_build(struct store_txn *t)
{
    struct job_counts c = {0};
    int rc = job_foreach_all(t, count_one, count_bad, &c);
    return rc ? rc : counts_put(t, &c);
}

static int next_id(struct store_txn *t, uint64_t *id)
{
    struct store_val v;
    uint64_t next = 1;
    if (store_get(t, STORE_DB_META, NEXT_ID, sizeof NEXT_ID - 1, &v) == 0 && v.n == 8)
        next = store_be64_get(v.p);
    unsigned char nb[8];
    store_be64_put(nb, next + 1);
    *id = next;
    return store_put(t, STORE_DB_META, NEXT_ID, sizeof NEXT_ID - 1, nb, 8);
}

int job_create(struct store_txn *t, struct job *j)
{
    int rc = next_id(t, &j->id);
    if (rc != 0)
        return rc;
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
    if (rc == 0)
        rc = counts_move(t, NULL, j);
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

int job_import(struct store_txn *t, struct job *j, uint64_t local_id)
{
    j->imported_at = clock_now();
    if (local_id) {
        struct job old;
        int rc = job_get(t, local_id, &old);
        if (rc != 0)
            return rc;
        j->id = local_id;
        double updated = j->updated_at;
        rc = job_put_over(t, &old, j);
        j->updated_at = updated; /* as its holder left it (job_put_over stamped now) */
        return rc ? rc : write_record(t, j);
    }
    int rc = next_id(t, &j->id);
    if (rc == 0)
        rc = write_record(t, j);
    if (rc == 0)
        rc = index_job(t, NULL, j);
    if (rc == 0)
        rc = counts_move(t, NULL, j);
    char detail[300];
    snprintf(detail, sizeof detail, "job=%llu account=%s origin=%s state=%s",
             (unsigned long long)j->id, j->account, j->origin[0] ? j->origin : "-",
             job_state_name(j->state));
    return rc ? rc : audit_append(t, "tikd", "job.imported", detail);
}

struct origin_find {
    size_t plen;
    uint64_t id;
};

static int origin_one(struct store_val k, struct store_val v, void *ctx)
{
    (void)v;
    struct origin_find *f = ctx;
    if (k.n != f->plen + 8)
        return 0;
    f->id = store_be64_get((const unsigned char *)k.p + f->plen);
    return 1;
}

int job_find_origin(struct store_txn *t, const char *origin, uint64_t *id)
{
    unsigned char k[400];
    size_t kl = index_key(k, sizeof k, 'x', origin, NULL, 0);
    if (!kl)
        return TIKD_ENOTFOUND;
    struct origin_find f = {kl, 0};
    int rc = store_foreach(t, STORE_DB_INDEX, k, kl, origin_one, &f);
    if (rc < 0)
        return rc;
    *id = f.id;
    return f.id ? 0 : TIKD_ENOTFOUND;
}

int job_get(struct store_txn *t, uint64_t id, struct job *j)
{
    unsigned char k[8];
    store_be64_put(k, id);
    struct store_val v;
    int rc = store_get(t, STORE_DB_JOBS, k, 8, &v);
    return rc ? rc : jobrec_decode(v.p, v.n, j);
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
    return rc ? rc : job_put_over(t, &old, j);
}

int job_put_over(struct store_txn *t, const struct job *old, struct job *j)
{
    int rc;
    if (has_due(old)) {
        unsigned char dk[16];
        due_key(old, dk);
        rc = store_del(t, STORE_DB_DUE, dk, 16);
        if (rc != 0)
            return rc;
    }
    if (job_state_final(j->state) && !job_state_final(old->state) &&
        (rc = mediaurl_del_job(t, j->id)) != 0)
        return rc; /* an ended job's images are served no more */
    if (j->state == JOB_CANCELLED && old->state != JOB_CANCELLED && j->booked_slot > 0 &&
        (rc = slots_release(t, j->account, j->booked_slot)) != 0)
        return rc; /* a cancelled post gives its schedule slot back */
    j->updated_at = clock_now();
    rc = write_record(t, j);
    if (rc == 0)
        rc = index_job(t, old, j);
    return rc ? rc : counts_move(t, old, j);
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
    int rc = jobrec_decode(v.p, v.n, j);
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
