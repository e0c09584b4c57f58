/* post.c - the one planner and the operator's decisions on jobs (see
 * post.h).
 *
 * post_plan() reads before it writes: a key already planned answers at once;
 * then the checks, then the video's identity (hashing outside any
 * transaction, so a large file holds no write lock), then one write
 * transaction that checks the account, the content ledger and the key again
 * (another process may have planned meanwhile), books the slot and creates
 * the job. */
#include "post.h"

#include <ev.h>
#include "account.h"
#include "audit.h"
#include "budget.h"
#include "clock.h"
#include "image.h"
#include "ledger.h"
#include "tiktok.h"

#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* ---- the checks ----------------------------------------------------------------- */

/* A local video, read by the probe (or as the caller's probe read it) and
 * judged by TikTok's rules for any creator: a refusal names every rule it
 * breaks. */
static int check_video(struct post_req *r, struct tikd_err *e)
{
    struct media_info mi;
    const struct media_info *m = r->probed;
    int rc = m ? 0 : media_probe(r->j->media, &mi, e);
    if (rc != 0) {
        r->invalid = rc == TIKD_EINVAL;
        snprintf(r->problem, sizeof r->problem, "%s", e->msg);
        return rc;
    }
    r->j->probe = m ? *m : mi; /* the pre-flight judges it again unless the file changes */
    media_judge(&r->j->probe, 0, &r->media);
    if (r->media.level != MEDIA_REFUSE)
        return 0;
    char why[1400];
    media_verdict_text(&r->media, false, why, sizeof why);
    snprintf(r->problem, sizeof r->problem, "%.600s: %s", r->j->media, why);
    r->invalid = true;
    return tikd_fail(e, TIKD_EINVAL, "%.500s", r->problem);
}

static int check_image(const char *path, char *why, size_t n)
{
    struct image_info ii;
    struct tikd_err e = {0};
    if (image_probe(path, &ii, &e) != 0) {
        snprintf(why, n, "%.399s", e.msg);
        return -1;
    }
    return image_check_photo(&ii, why, n);
}

/* Which posts carry each setting (spec §2.2, §2.3, §2.6). */
enum { VIDEO_DIRECT = 1, VIDEO_DRAFT = 2, PHOTO_DIRECT = 4, PHOTO_DRAFT = 8 };

static const struct setting {
    const char *key, *flag; /* tikd.upload.post's field, tikd post's option */
    size_t off;             /* a bool in struct job_options; SIZE_MAX: cover_ms */
    unsigned carried;
} settings[] = {
    {"disable_comment", "--disable-comment", offsetof(struct job_options, disable_comment),
     VIDEO_DIRECT | PHOTO_DIRECT},
    {"disable_duet", "--disable-duet", offsetof(struct job_options, disable_duet), VIDEO_DIRECT},
    {"disable_stitch", "--disable-stitch", offsetof(struct job_options, disable_stitch),
     VIDEO_DIRECT},
    {"brand_content", "--brand-content", offsetof(struct job_options, brand_content),
     VIDEO_DIRECT | PHOTO_DIRECT},
    {"brand_organic", "--brand-organic", offsetof(struct job_options, brand_organic),
     VIDEO_DIRECT | PHOTO_DIRECT},
    {"is_aigc", "--aigc", offsetof(struct job_options, is_aigc), VIDEO_DIRECT},
    {"auto_music", "--auto-music", offsetof(struct job_options, auto_add_music), PHOTO_DIRECT},
    {"cover_ms", "--cover-ms", SIZE_MAX, VIDEO_DIRECT},
};

static bool setting_on(const struct job *j, const struct setting *st)
{
    if (st->off == SIZE_MAX)
        return j->opt.cover_ms >= 0;
    return *(const bool *)((const char *)&j->opt + st->off);
}

int post_validate(const struct job *j, char *why, size_t n)
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
    long units = tt_utf16_len(j->caption);
    long max = j->kind == JOB_PHOTO ? TT_PHOTO_TITLE_MAX : TT_VIDEO_TITLE_MAX;
    if (units < 0)
        PROBLEM("the caption is not valid UTF-8");
    else if (units > max)
        PROBLEM("the %s is %ld UTF-16 units long; TikTok allows %ld for a %s (emoji above "
                "U+FFFF count 2)",
                j->kind == JOB_PHOTO ? "title" : "caption", units, max,
                j->kind == JOB_PHOTO ? "photo post" : "video");
    if (j->kind == JOB_PHOTO) {
        long d = tt_utf16_len(j->description);
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
                if (check_image(one, bad, sizeof bad) != 0)
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
        bool known = tt_privacy_known(j->privacy);
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
    /* settings a post of this kind and mode cannot carry are refused, never
     * accepted and dropped: TikTok would never see them */
    unsigned as = j->kind == JOB_PHOTO ? (j->mode == JOB_DRAFT ? PHOTO_DRAFT : PHOTO_DIRECT)
                                       : (j->mode == JOB_DRAFT ? VIDEO_DRAFT : VIDEO_DIRECT);
    for (size_t i = 0; i < sizeof settings / sizeof settings[0]; i++) {
        const struct setting *st = &settings[i];
        if (!setting_on(j, st) || (st->carried & as))
            continue;
        static const char *const names[] = {"video post", "video draft", "photo post",
                                            "photo draft"};
        unsigned kind =
            j->kind == JOB_PHOTO ? PHOTO_DIRECT | PHOTO_DRAFT : VIDEO_DIRECT | VIDEO_DRAFT;
        const char *why_not =
            !(st->carried & kind)
                ? (j->kind == JOB_PHOTO ? "TikTok takes it for videos only (spec §2.6)"
                                        : "TikTok takes it for photo posts only (spec §2.6)")
            : j->kind == JOB_PHOTO ? "TikTok takes it for direct photo posts only (spec §2.6): "
                                     "the creator sets it in the TikTok app"
                                   : "TikTok's inbox init takes only the video and its caption "
                                     "(spec §2.3): the creator sets the rest in the TikTok app";
        PROBLEM("a %s cannot carry %s (%s): %s", names[__builtin_ctz(as)], st->key, st->flag,
                why_not);
    }
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
        PROBLEM("the media file %s %s", j->media,
                errno == ENOENT ? "does not exist" : "cannot be read");
    else if (!S_ISREG(st.st_mode))
        PROBLEM("the media %s is not a regular file", j->media);
    else if (st.st_size == 0)
        PROBLEM("the media file %s is empty", j->media);
#undef PROBLEM
    if (o && why[o - 1] == '\n')
        why[o - 1] = '\0';
    return problems;
}

/* ---- planning --------------------------------------------------------------------- */

/* META "jobkey:" scope NUL key -> job id (be64); its length, or 0. */
static size_t key_of(const struct post_req *r, char *k, size_t n)
{
    if (!r->key)
        return 0;
    int l = snprintf(k, n, "jobkey:%s%c%s", r->key_scope ? r->key_scope : "", '\0', r->key);
    return l > 0 && (size_t)l < n ? (size_t)l : 0;
}

struct plan_ctx {
    struct post_req *r;
    char key[600];
    size_t kl;
    struct tikd_err *e;
};

static int key_txn(struct store_txn *t, void *ctx)
{
    struct plan_ctx *pc = ctx;
    struct store_val v;
    if (pc->kl && store_get(t, STORE_DB_META, pc->key, pc->kl, &v) == 0 && v.n == 8) {
        pc->r->j->id = store_be64_get(v.p);
        pc->r->existing = true;
    }
    return 0;
}

static int plan_txn(struct store_txn *t, void *ctx)
{
    struct plan_ctx *pc = ctx;
    struct post_req *r = pc->r;
    struct job *j = r->j;
    int rc = key_txn(t, pc);
    if (rc != 0 || r->existing)
        return rc;
    struct account a;
    if (account_get(t, j->account, &a) != 0 || !account_in_tenant(&a, r->tenant)) {
        snprintf(r->problem, sizeof r->problem, "no such account: %s (see `tikd account list`)",
                 j->account);
        return tikd_fail(pc->e, TIKD_ENOTFOUND, "%s", r->problem);
    }
    snprintf(j->tenant, sizeof j->tenant, "%s", a.tenant); /* whose rules hear of it */
    enum job_state had;
    if (j->media_hash[0] && !r->again &&
        job_find_content(t, j->account, j->media_hash, &r->same_as, &had) == 0) {
        snprintf(r->problem, sizeof r->problem,
                 "%s already has this content as job %llu (%s): the same video is not posted "
                 "twice; ask again (tikd post --again, tikd.upload.post{ again = true }) to post "
                 "it once more",
                 j->account, (unsigned long long)r->same_as, job_state_name(had));
        return tikd_fail(pc->e, TIKD_EEXIST, "%.500s", r->problem);
    }
    if (r->sched && !r->approval) { /* the slot and the job in one transaction: never booked
                                     * twice */
        double due;
        rc = slots_next_free(t, r->sched, r->after, &r->slot, &due, pc->e);
        if (rc != 0) {
            snprintf(r->problem, sizeof r->problem, "%s", pc->e->msg);
            return rc;
        }
        j->due_at = j->planned_at = due;
        j->booked_slot = r->slot;
    }
    if (pc->kl) { /* the key goes with the job (a cluster's next holder knows it) */
        snprintf(j->key_scope, sizeof j->key_scope, "%s", r->key_scope ? r->key_scope : "");
        snprintf(j->key, sizeof j->key, "%s", r->key);
    }
    rc = job_create(t, j);
    if (rc == 0 && r->sched && !r->approval &&
        (rc = slots_take(t, r->sched, r->slot, j->id, pc->e)) != 0)
        snprintf(r->problem, sizeof r->problem, "%s", pc->e->msg);
    if (rc == 0 && pc->kl) {
        unsigned char id[8];
        store_be64_put(id, j->id);
        rc = store_put(t, STORE_DB_META, pc->key, pc->kl, id, 8);
    }
    return rc;
}

/* When the post goes: at its time, or held for approval until a deadline. */
static int when(struct post_req *r, struct tikd_err *e)
{
    struct job *j = r->j;
    double now = clock_now();
    if (!r->approval) {
        j->state = JOB_SCHEDULED;
        j->due_at = j->planned_at = r->at;
        return 0;
    }
    j->planned_at = r->at > 0 ? r->at : now;
    j->due_at = r->deadline > 0 ? r->deadline : j->planned_at + 86400;
    if (j->due_at <= now) {
        snprintf(r->problem, sizeof r->problem, "the approval deadline is already past");
        return tikd_fail(e, TIKD_EINVAL, "%s", r->problem);
    }
    j->state = JOB_AWAITING_APPROVAL;
    snprintf(j->reason, sizeof j->reason, "waits for an operator's approval");
    return 0;
}

int post_plan(struct store *s, struct post_req *r, struct tikd_err *e)
{
    struct job *j = r->j;
    struct plan_ctx pc = {.r = r, .e = e};
    r->existing = r->invalid = false;
    r->same_as = 0;
    r->slot = 0;
    r->problem[0] = '\0';
    pc.kl = key_of(r, pc.key, sizeof pc.key);
    if (r->key && !pc.kl)
        return tikd_fail(e, TIKD_EINVAL, "the key is too long");
    int rc = pc.kl ? store_read(s, key_txn, &pc, e) : 0;
    if (rc != 0 || r->existing)
        return rc; /* planned before: the same job, whatever changed since */
    if ((rc = when(r, e)) != 0)
        return rc;
    if (post_validate(j, r->problem, sizeof r->problem) > 0) {
        r->invalid = true;
        return tikd_fail(e, TIKD_EINVAL, "%.500s", r->problem);
    }
    j->media_hash[0] = '\0';
    memset(&r->media, 0, sizeof r->media);
    if (j->kind == JOB_VIDEO && j->media[0] == '/' && (rc = check_video(r, e)) != 0)
        return rc;
    if (j->kind == JOB_VIDEO && j->media[0] == '/') {
        /* the video's identity, as the media intake knows content */
        struct intake_item *it = malloc(sizeof *it);
        bool fresh;
        char hash[65];
        struct ledger_fp fp;
        struct stat st;
        if (it && !r->hash && r->progress && stat(j->media, &st) == 0 &&
            (fp = ledger_fp_of(&st), !ledger_known(s, j->media, &fp, NULL))) {
            /* read here with progress (a large file takes seconds) */
            if ((rc = ledger_hash_path(j->media, hash, &fp, r->progress, r->progress_ud, e)) != 0) {
                snprintf(r->problem, sizeof r->problem, "%s", e->msg);
                free(it);
                return rc;
            }
            r->hash = hash;
            r->hashed_fp = &fp;
        }
        rc = !it       ? TIKD_ENOMEM
             : r->hash ? ledger_identify_hashed(s, j->media, r->hash, r->hashed_fp, it, &fresh, e)
                       : ledger_identify(s, j->media, it, &fresh, e);
        if (r->hash == hash) /* not the caller's: gone with this frame */
            r->hash = NULL, r->hashed_fp = NULL;
        if (rc == 0)
            memcpy(j->media_hash, it->hash, sizeof j->media_hash);
        else
            snprintf(r->problem, sizeof r->problem, "%s", it ? e->msg : "out of memory");
        free(it);
        if (rc != 0)
            return rc;
    }
    return store_write(s, plan_txn, &pc, e);
}

/* ---- planning from the loop ------------------------------------------------------------- */

struct post_async {
    struct ev_loop *loop;
    struct store *s;
    struct post_req *r;
    post_planned_fn done;
    void *ud;
    struct ledger_hashing *hashing;
    struct media_probe *probe;
    ev_timer later; /* the plan itself, on the next turn (never inside post_plan_start) */
    char hash[65];
    struct ledger_fp fp;
    struct media_info mi;
    int rc;
    struct tikd_err e;
};

static void async_end(struct post_async *a)
{
    ev_timer_stop(a->loop, &a->later);
    post_planned_fn done = a->done;
    void *ud = a->ud;
    struct post_req *r = a->r;
    int rc = a->rc;
    struct tikd_err e = a->e;
    if (rc == 0)
        rc = post_plan(a->s, r, &e);
    if (r->hash == a->hash) /* ours: gone with a */
        r->hash = NULL, r->hashed_fp = NULL;
    if (r->probed == &a->mi)
        r->probed = NULL;
    free(a);
    done(ud, rc, r, &e);
}

static void on_later(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)loop;
    (void)revents;
    async_end(w->data);
}

static void next_turn(struct post_async *a)
{
    ev_timer_set(&a->later, 0., 0.);
    ev_timer_start(a->loop, &a->later);
}

static void async_probed(void *ud, const struct media_info *mi, const struct tikd_err *pe)
{
    struct post_async *a = ud;
    a->probe = NULL;
    if (pe->code == 0) {
        a->mi = *mi;
        a->r->probed = &a->mi;
    } else {
        a->rc = pe->code;
        a->e = *pe;
        snprintf(a->r->problem, sizeof a->r->problem, "%s", pe->msg);
    }
    next_turn(a);
}

static void async_probe(struct post_async *a)
{
    struct tikd_err e = {0};
    int now = media_probe_now(a->r->j->media, &a->mi, &e); /* known at once: no wait */
    if (now == 0) {
        a->r->probed = &a->mi;
    } else if (now < 0) {
        a->rc = e.code ? e.code : TIKD_EINVAL;
        a->e = e;
        snprintf(a->r->problem, sizeof a->r->problem, "%s", e.msg);
    } else if (!(a->probe = media_probe_start(a->loop, a->r->j->media, async_probed, a, &e))) {
        a->rc = e.code ? e.code : TIKD_EIO; /* never probed on the loop instead */
        a->e = e;
        snprintf(a->r->problem, sizeof a->r->problem, "%s", e.msg);
    } else {
        return;
    }
    next_turn(a);
}

static void async_hashed(void *ud, int rc, const char *hash, const struct ledger_fp *fp,
                         const char *why)
{
    struct post_async *a = ud;
    a->hashing = NULL;
    if (rc != 0) {
        a->rc = rc;
        tikd_fail(&a->e, rc, "%s", why ? why : "the file could not be read");
        snprintf(a->r->problem, sizeof a->r->problem, "%s", a->e.msg);
        next_turn(a);
        return;
    }
    memcpy(a->hash, hash, sizeof a->hash);
    a->fp = *fp;
    a->r->hash = a->hash;
    a->r->hashed_fp = &a->fp;
    async_probe(a);
}

int post_plan_start(struct ev_loop *loop, struct store *s, struct post_req *r, post_planned_fn done,
                    void *ud, struct post_async **out, struct tikd_err *e)
{
    *out = NULL;
    struct post_async *a = calloc(1, sizeof *a);
    if (!a)
        return tikd_fail(e, TIKD_ENOMEM, "out of memory");
    a->loop = loop;
    a->s = s;
    a->r = r;
    a->done = done;
    a->ud = ud;
    ev_init(&a->later, on_later);
    a->later.data = a;
    *out = a;
    const struct job *j = r->j;
    if (j->kind != JOB_VIDEO || j->media[0] != '/' || r->probed) {
        next_turn(a); /* nothing to read first */
        return 0;
    }
    struct stat st;
    struct ledger_fp fp;
    if (!r->hash && stat(j->media, &st) == 0 && S_ISREG(st.st_mode) &&
        (fp = ledger_fp_of(&st), !ledger_known(s, j->media, &fp, NULL)) &&
        ledger_hash_start(loop, j->media, async_hashed, a, &a->hashing, e) == 0)
        return 0;
    tikd_err_clear(e);
    async_probe(a); /* known (or unreadable: the planner says why) */
    return 0;
}

void post_plan_cancel(struct post_async *a)
{
    if (!a)
        return;
    ledger_hash_cancel(a->hashing);
    media_probe_cancel(a->probe);
    ev_timer_stop(a->loop, &a->later);
    if (a->r->hash == a->hash)
        a->r->hash = NULL, a->r->hashed_fp = NULL;
    if (a->r->probed == &a->mi)
        a->r->probed = NULL;
    free(a);
}

enum post_verdict post_decide(struct job *j, const struct post_decision *d, double now, char *why,
                              size_t n)
{
    if (d->cancel) {
        j->state = JOB_CANCELLED;
        snprintf(j->reason, sizeof j->reason, "cancelled by %s: %s", d->chosen_by, d->reason);
        return POST_CANCELLED;
    }
    if (d->defer > 0) {
        j->state = JOB_DEFERRED;
        j->due_at = now + d->defer;
        snprintf(j->reason, sizeof j->reason, "deferred by %s: %s", d->chosen_by, d->reason);
        return POST_DEFERRED;
    }
    if (!d->caption && !d->privacy[0])
        return POST_GO;
    if (d->caption)
        snprintf(j->caption, sizeof j->caption, "%s", d->caption);
    if (d->privacy[0] && j->mode == JOB_DIRECT)
        snprintf(j->privacy, sizeof j->privacy, "%s", d->privacy);
    snprintf(j->chosen_by, sizeof j->chosen_by, "%s", d->chosen_by);
    snprintf(j->libs, sizeof j->libs, "%s", d->libs);
    char problems[2000];
    if (post_validate(j, problems, sizeof problems) > 0) {
        snprintf(why, n, "before_publish of %s made the post invalid: %s", d->chosen_by, problems);
        return POST_INVALID;
    }
    return POST_CHANGED;
}

/* ---- the operator's decisions ------------------------------------------------------ */

static int cancel_job(struct store_txn *t, const struct rl_config *c, struct job *j,
                      const char *actor, const char *event, const char *code, const char *why)
{
    j->state = JOB_CANCELLED;
    j->watch_until = 0; /* an unsure job's wait ends with it */
    snprintf(j->reason, sizeof j->reason, "%s", why);
    int rc = budget_release_slot(t, c, j); /* the init slot; job_put gives the schedule's */
    if (rc == 0)
        rc = job_put(t, j);
    char detail[200];
    snprintf(detail, sizeof detail, "job=%llu account=%s reason=%s", (unsigned long long)j->id,
             j->account, code);
    return rc ? rc : audit_append(t, actor, event, detail);
}

int post_change(struct store_txn *t, const struct rl_config *c, uint64_t id, enum post_change what,
                const char *actor, struct post_changed *out)
{
    memset(out, 0, sizeof *out);
    struct job *j = malloc(sizeof *j);
    if (!j)
        return TIKD_ENOMEM;
    int rc = job_get(t, id, j);
    unsigned long long n = (unsigned long long)id;
    if (rc != 0) {
        snprintf(out->msg, sizeof out->msg, "no job %llu", n);
        goto out;
    }
    snprintf(out->account, sizeof out->account, "%s", j->account);
    rc = TIKD_EINVAL;
    switch (what) {
    case POST_APPROVE:
    case POST_REJECT:
        if (j->state != JOB_AWAITING_APPROVAL) {
            snprintf(out->msg, sizeof out->msg, "job %llu is %s, not awaiting approval", n,
                     job_state_name(j->state));
            goto out;
        }
        if (what == POST_REJECT) {
            rc = cancel_job(t, c, j, actor, "job.rejected", "rejected", "rejected by the operator");
            snprintf(out->msg, sizeof out->msg, "job %llu rejected", n);
            goto out;
        }
        j->state = JOB_SCHEDULED;
        j->due_at = j->planned_at > clock_now() ? j->planned_at : clock_now();
        j->reason[0] = '\0';
        snprintf(out->msg, sizeof out->msg, "job %llu approved", n);
        break;
    case POST_CANCEL: {
        if (job_state_final(j->state)) {
            snprintf(out->msg, sizeof out->msg, "job %llu is already %s", n,
                     job_state_name(j->state));
            goto out;
        }
        /* processing, or a pull's init may have reached TikTok unanswered */
        bool at_tiktok = j->state == JOB_PROCESSING || (j->init_sent_at > 0 && !j->publish_id[0]);
        out->pulling = at_tiktok && j->publish_id[0] &&
                       (j->kind == JOB_PHOTO || strncmp(j->media, "https://", 8) == 0);
        snprintf(out->publish_id, sizeof out->publish_id, "%s", j->publish_id);
        rc = cancel_job(t, c, j, actor, "job.cancelled", "operator",
                        at_tiktok ? "cancelled by the operator (TikTok was already processing "
                                    "it: it may still appear)"
                                  : "cancelled by the operator");
        snprintf(out->msg, sizeof out->msg, "job %llu cancelled", n);
        goto out;
    }
    case POST_RETRY:
        if (j->state != JOB_FAILED && j->state != JOB_CANCELLED && j->state != JOB_UNSURE) {
            snprintf(out->msg, sizeof out->msg,
                     "job %llu is %s: only failed, cancelled or unsure jobs can be retried", n,
                     job_state_name(j->state));
            goto out;
        }
        if (j->publish_id[0] && !j->fail_reason[0]) {
            snprintf(out->msg, sizeof out->msg,
                     "job %llu has publish %s at TikTok, which never reported it failed: a "
                     "retry could post twice; plan a new post if you are sure",
                     n, j->publish_id);
            goto out;
        }
        uint64_t other;
        enum job_state had;
        if (j->media_hash[0] && job_find_content(t, j->account, j->media_hash, &other, &had) == 0) {
            snprintf(out->msg, sizeof out->msg,
                     "job %llu's video is planned or posted again as job %llu (%s): a retry "
                     "would post it twice; cancel job %llu first, or plan the video anew with "
                     "`tikd post --again`",
                     n, (unsigned long long)other, job_state_name(had), (unsigned long long)other);
            goto out;
        }
        j->publish_id[0] = j->upload_url[0] = j->fail_reason[0] = '\0';
        j->init_sent_at = j->watch_until = 0;
        j->chunks_done = 0;
        j->state = JOB_SCHEDULED;
        j->reason[0] = '\0';
        j->due_at = clock_now();
        snprintf(out->msg, sizeof out->msg, "job %llu scheduled again", n);
        break;
    }
    rc = job_put(t, j);
    char detail[200];
    snprintf(detail, sizeof detail, "job=%llu account=%s", n, j->account);
    if (rc == 0)
        rc = audit_append(t, actor, what == POST_APPROVE ? "job.approved" : "job.retried", detail);
out:
    free(j);
    return rc;
}

struct ids {
    uint64_t *v;
    size_t n, cap;
};

static int pending_id(const struct job *j, void *ctx)
{
    struct ids *ids = ctx;
    if (job_state_final(j->state))
        return 0;
    if (ids->n == ids->cap) {
        size_t nc = ids->cap ? ids->cap * 2 : 64;
        uint64_t *g = realloc(ids->v, nc * sizeof *g);
        if (!g)
            return TIKD_ENOMEM;
        ids->v = g;
        ids->cap = nc;
    }
    ids->v[ids->n++] = j->id;
    return 0;
}

int post_cancel_account(struct store_txn *t, const struct rl_config *c, const char *account,
                        const char *actor, int *n)
{
    struct ids ids = {0};
    char why[200];
    snprintf(why, sizeof why, "cancelled: account %s was removed", account);
    *n = 0;
    int rc = job_foreach_account_open(t, account, pending_id, &ids);
    struct job *j = rc == 0 ? malloc(sizeof *j) : NULL;
    if (rc == 0 && !j)
        rc = TIKD_ENOMEM;
    for (size_t i = 0; rc == 0 && i < ids.n; i++) {
        if ((rc = job_get(t, ids.v[i], j)) == 0 &&
            (rc = cancel_job(t, c, j, actor, "job.cancelled", "account_removed", why)) == 0)
            (*n)++;
    }
    free(j);
    free(ids.v);
    return rc;
}
