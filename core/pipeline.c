/* pipeline.c - the job state machine (see pipeline.h).
 *
 * A `run` is a job being worked now; everything it knows that matters is in
 * LMDB, so every callback reads the job again before it acts and commits
 * the result in one transaction. Errors follow the one policy: RETRY was
 * already retried by the HTTP layer, so what reaches here is a job to try
 * again later (deferred, with its reason), to pause (REAUTH), or to fail
 * with TikTok's message and log_id. */
#include "pipeline.h"
#include "audit.h"
#include "clock.h"
#include "log.h"
#include "image.h"
#include "media.h"
#include "mediaurl.h"
#include "tiktok.h"

#include <ev.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#define CI_CACHE 64

struct creator {
    char account[65];
    double at;
    char options[160]; /* privacy_level_options, comma-separated */
    int max_duration;
    bool comment_disabled, duet_disabled, stitch_disabled;
};

struct run {
    struct pipeline *p;
    uint64_t id;
    bool resumed;    /* first step after a restart: resync uploads */
    int probe;       /* the photo whose URL is being checked (0-based) */
    bool probe_more; /* ... with a longer head: its header goes on past the first */
    bool asked;      /* the rules' before_publish answered for this init */
    struct http_xfer *x;
    struct run *next;
};

struct pipeline {
    struct pipeline_cfg c;
    char *api_url, *public_url;
    struct ev_loop *loop;
    struct store *s;
    struct oauth *o;
    struct http *h;
    ev_timer timer;
    struct run *runs;
    size_t nruns;
    struct creator ci[CI_CACHE];
    pipeline_outcome_fn outcome;
    void *outcome_ud;
    pipeline_before_fn before;
    void *before_ud;
    bool started;
};

static void step(struct run *r);
static struct creator *ci_find(struct pipeline *p, const char *account, bool fresh_only);
static void arm(struct pipeline *p);

/* ---- store helpers -------------------------------------------------------- */

static int load(struct pipeline *p, uint64_t id, struct job *j)
{
    return job_read(p->s, id, j);
}

static int init_budgets(const struct job *j, enum rl_budget *bs);

/* What a job's write does to TikTok's budgets, in the same transaction: a
 * request is counted exactly when the job records that it leaves. */
struct limit_op {
    enum { LIM_CLAIM = 1, LIM_RESERVE, LIM_CONSUME, LIM_BLOCK, LIM_WAIT } kind;
    enum rl_budget bs[4];
    int n;
    double until;         /* LIM_BLOCK: TikTok said bs[0] is spent until then */
    double at;            /* LIM_CLAIM refused (TIKD_EFULL): when bs allow it */
    enum rl_budget which; /* ... and the budget that holds it back */
};

struct put_ctx {
    struct pipeline *p;
    struct job *j;
    struct limit_op *op;
    const char *event; /* audit event, or NULL */
    char detail[800];
    int (*also)(struct store_txn *t, void *ud); /* more to write in the same transaction */
    void *also_ud;
};

/* Why a job waits for budget b until `at`, for `tikd queue`. */
static void budget_reason(const struct pipeline *p, enum rl_budget b, double at, char *why,
                          size_t n)
{
    struct rl_limit lim = rl_limit_of(&p->c.limits, b), *l = &lim;
    char when[32] = "later";
    time_t t = (time_t)ceil(at);
    struct tm tm;
    if (at < 1e17 && gmtime_r(&t, &tm))
        strftime(when, sizeof when, "%Y-%m-%d %H:%M:%S UTC", &tm);
    snprintf(why, n, "waiting for TikTok's %s budget (%g per %g s %s) until %s", rl_budget_name(b),
             l->count - l->margin, l->per,
             b == RL_ACTIVE_USERS ? "for the app" : "for this account", when);
}

static int limit_txn(struct store_txn *t, struct pipeline *p, struct job *j, struct limit_op *op)
{
    const struct rl_config *c = &p->c.limits;
    double now = clock_now();
    int rc = 0;
    switch (op->kind) {
    case LIM_CLAIM:
        rc = rl_when(t, c, j->account, op->bs, op->n, now, &op->at, &op->which);
        if (rc == 0 && op->at > now)
            return TIKD_EFULL; /* nothing is written */
        return rc ? rc : rl_spend(t, c, j->account, op->bs, op->n, now);
    case LIM_RESERVE: /* the job's next slot: now, or it waits for it */
        rc = rl_reserve(t, c, j->account, op->bs, op->n, now, &op->at, &op->which);
        if (rc == 0 && op->at > now) {
            j->state = JOB_DEFERRED;
            j->due_at = op->at;
            budget_reason(p, op->which, op->at, j->reason, sizeof j->reason);
            rc = rl_note_deferred(t, op->which, op->at - now);
        }
        j->slot_at = op->at < 1e17 ? op->at : 0;
        return rc;
    case LIM_CONSUME:
        return 0;
    case LIM_BLOCK: /* and the job waits for it */
        rc = rl_block(t, c, j->account, op->bs[0], op->until);
        return rc ? rc : rl_note_deferred(t, op->bs[0], j->due_at - now);
    case LIM_WAIT:
        return rl_note_deferred(t, op->bs[0], j->due_at - now);
    }
    return 0;
}

static int put_txn(struct store_txn *t, void *ctx)
{
    struct put_ctx *pc = ctx;
    struct job cur;
    int rc = job_get(t, pc->j->id, &cur);
    if (rc != 0)
        return rc;
    if (cur.state == JOB_CANCELLED && pc->j->state != JOB_CANCELLED)
        return TIKD_EEXIST; /* an operator cancelled it meanwhile: leave it */
    struct job *j = pc->j;
    bool moved = pc->op && pc->op->kind == LIM_RESERVE;
    bool parked = j->state == JOB_DEFERRED || job_state_final(j->state);
    bool consume = pc->op && pc->op->kind == LIM_CONSUME; /* the init leaves on its slot */
    if (cur.slot_at > 0 && !consume && (moved || parked || j->slot_at != cur.slot_at)) {
        /* the slot it held goes unused: give the caps their entries back */
        rc = pipeline_release_slot(t, &pc->p->c.limits, &cur);
        if (rc != 0)
            return rc;
        if (j->slot_at == cur.slot_at)
            j->slot_at = 0;
    }
    if (pc->op && (rc = limit_txn(t, pc->p, j, pc->op)) != 0)
        return rc;
    if (pc->also && (rc = pc->also(t, pc->also_ud)) != 0)
        return rc;
    rc = job_put(t, pc->j);
    if (rc == 0 && pc->event)
        rc = audit_append(t, "tikd", pc->event, pc->detail);
    return rc;
}

static int vsave(struct pipeline *p, struct job *j, struct limit_op *op, const char *event,
                 const char *fmt, va_list ap)
{
    struct put_ctx pc = {p, j, op, event, "", NULL, NULL};
    if (fmt)
        vsnprintf(pc.detail, sizeof pc.detail, fmt, ap);
    struct tikd_err e = {0};
    int rc = store_write(p->s, put_txn, &pc, &e);
    if (rc != 0 && rc != TIKD_EEXIST && rc != TIKD_EFULL)
        TLOG(TLOG_ERROR, "job.store_failed", LINT("job", j->id), LSTR("error", e.msg));
    return rc;
}

static int save(struct pipeline *p, struct job *j, const char *event, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static int save(struct pipeline *p, struct job *j, const char *event, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int rc = vsave(p, j, NULL, event, fmt, ap);
    va_end(ap);
    return rc;
}

/* save(), spending or blocking budgets in the same transaction. A refused
 * claim is TIKD_EFULL with op->at and op->which; nothing was written. */
static int save_op(struct pipeline *p, struct job *j, struct limit_op *op, const char *event,
                   const char *fmt, ...) __attribute__((format(printf, 5, 6)));

static int save_op(struct pipeline *p, struct job *j, struct limit_op *op, const char *event,
                   const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int rc = vsave(p, j, op, event, fmt, ap);
    va_end(ap);
    return rc;
}

/* save() of the write that precedes an init: the slot j held is spent, and
 * `also` (may be NULL) writes what must exist before TikTok hears of it. */
static int save_init(struct pipeline *p, struct job *j, int (*also)(struct store_txn *, void *),
                     void *ud)
{
    struct limit_op consume = {.kind = LIM_CONSUME};
    j->slot_at = 0;
    struct put_ctx pc = {p, j, &consume, NULL, "", also, ud};
    struct tikd_err e = {0};
    int rc = store_write(p->s, put_txn, &pc, &e);
    if (rc != 0 && rc != TIKD_EEXIST)
        TLOG(TLOG_ERROR, "job.store_failed", LINT("job", j->id), LSTR("error", e.msg));
    return rc;
}

/* ---- runs ------------------------------------------------------------------- */

static void run_end(struct run *r);

/* The job as committed now, for a callback to act on; false (and the run
 * ended) if it is gone or an operator cancelled it meanwhile. */
static bool reload(struct run *r, struct job *j)
{
    if (load(r->p, r->id, j) == 0 && j->state != JOB_CANCELLED)
        return true;
    run_end(r);
    return false;
}

static void run_end(struct run *r)
{
    struct pipeline *p = r->p;
    struct run **pp = &p->runs;
    while (*pp && *pp != r)
        pp = &(*pp)->next;
    if (*pp) {
        *pp = r->next;
        p->nruns--;
    }
    free(r);
    arm(p);
}

static void finish(struct run *r, struct job *j)
{
    struct pipeline *p = r->p;
    TLOG(j->state == JOB_FAILED ? TLOG_WARN : TLOG_INFO, "job.final", LINT("job", j->id),
         LSTR("account", j->account), LSTR("state", job_state_name(j->state)),
         LSTR("publish_id", j->publish_id), LSTR("post_ids", j->post_ids),
         LSTR("reason", j->reason));
    if (p->outcome)
        p->outcome(p->outcome_ud, j);
    run_end(r);
}

static void fail(struct run *r, struct job *j, const char *log_id, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static void fail(struct run *r, struct job *j, const char *log_id, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(j->reason, sizeof j->reason, fmt, ap);
    va_end(ap);
    j->state = JOB_FAILED;
    if (log_id)
        snprintf(j->log_id, sizeof j->log_id, "%s", log_id);
    if (save(r->p, j, "job.failed", "job=%llu account=%s log_id=%s reason=\"%.500s\"",
             (unsigned long long)j->id, j->account, j->log_id, j->reason) == 0)
        finish(r, j);
    else
        run_end(r);
}

/* Hand the job back to the timer: try again in `delay`, in `state` (with a
 * budget operation in the same transaction). */
static void later_op(struct run *r, struct job *j, enum job_state st, double delay, const char *why,
                     struct limit_op *op)
{
    j->state = st;
    j->due_at = clock_now() + delay;
    snprintf(j->reason, sizeof j->reason, "%s", why ? why : "");
    if (st == JOB_DEFERRED)
        TLOG(TLOG_INFO, "job.deferred", LINT("job", j->id), LSTR("account", j->account),
             LDBL("retry_in_s", delay), LSTR("reason", why));
    save_op(r->p, j, op, st == JOB_DEFERRED ? "job.deferred" : NULL,
            "job=%llu account=%s retry_in_s=%.0f reason=\"%.400s\"", (unsigned long long)j->id,
            j->account, delay, why ? why : "");
    run_end(r);
}

static void later(struct run *r, struct job *j, enum job_state st, double delay, const char *why)
{
    later_op(r, j, st, delay, why, NULL);
}

/* ---- TikTok's budgets ---------------------------------------------------------------- */

int pipeline_release_slot(struct store_txn *t, const struct rl_config *c, struct job *j)
{
    if (j->slot_at <= 0)
        return 0;
    enum rl_budget bs[4];
    int n = init_budgets(j, bs);
    int rc = rl_release(t, c, j->account, bs, n, j->slot_at, clock_now());
    if (rc == 0)
        j->slot_at = 0;
    return rc;
}

/* The budgets an init of j spends: its endpoint's, and the creator's (or
 * the app's) caps. */
static int init_budgets(const struct job *j, enum rl_budget *bs)
{
    int n = 0;
    bs[n++] = rl_init_budget(j->mode == JOB_DRAFT, j->kind == JOB_PHOTO);
    bs[n++] = j->mode == JOB_DRAFT ? RL_PENDING_SHARES : RL_DAILY_POSTS;
    bs[n++] = RL_ACTIVE_USERS;
    return n;
}

/* Wait for budget b until `at`: the job goes back to the timer with why. */
static void wait_budget(struct run *r, struct job *j, enum job_state st, double at,
                        enum rl_budget b)
{
    char why[300];
    budget_reason(r->p, b, at, why, sizeof why);
    TLOG(TLOG_DEBUG, "job.limited", LINT("job", j->id), LSTR("account", j->account),
         LSTR("budget", rl_budget_name(b)), LDBL("wait_s", at - clock_now()));
    struct limit_op op = {.kind = LIM_WAIT, .bs = {b}, .n = 1};
    double delay = at - clock_now();
    later_op(r, j, st, delay > 0 ? delay : 0, why, &op);
}

/* A slot is used at its moment: late by more than half the guard, requests
 * spaced at the limit could come closer than it at TikTok. */
static bool slot_fresh(const struct pipeline *p, const struct job *j)
{
    double now = clock_now(), late = p->c.limits.guard / 2;
    return j->slot_at > 0 && now >= j->slot_at - 0.005 && now - j->slot_at <= fmax(late, 0.002);
}

/* Hold the budgets of j's init for now: true when it may go now (the slot
 * is in j->slot_at, saved with state st); false when the run ended, the job
 * waiting for the slot reserved for it. */
static bool hold_init_slot(struct run *r, struct job *j, enum job_state st)
{
    if (slot_fresh(r->p, j))
        return true;
    struct limit_op op = {.kind = LIM_RESERVE};
    op.n = init_budgets(j, op.bs);
    j->state = st;
    if (save_op(r->p, j, &op, NULL, NULL) != 0) {
        run_end(r);
        return false;
    }
    if (j->state != JOB_DEFERRED)
        return true;
    TLOG(TLOG_DEBUG, "job.slot", LINT("job", j->id), LSTR("account", j->account),
         LSTR("budget", rl_budget_name(op.which)), LDBL("wait_s", op.at - clock_now()));
    run_end(r);
    return false;
}

/* Which budget a TikTok answer says is spent, and until when; -1: none. */
static int learned(struct pipeline *p, const struct http_resp *resp, int asked, double *until)
{
    const struct rl_config *c = &p->c.limits;
    double now = clock_now();
    const char *code = resp->out.code;
    if (strcmp(code, "rate_limit_exceeded") == 0 || resp->status == 429) {
        if (asked < 0)
            return -1;
        char ra[64];
        bool told = http_header_get(resp->headers, "Retry-After", ra, sizeof ra);
        /* no Retry-After: the rest of the window, as if it were full */
        *until = now +
                 (told && resp->out.retry_after > 0 ? resp->out.retry_after : c->window + c->guard);
        return asked;
    }
    *until = now + c->cap_probe;
    if (strcmp(code, "spam_risk_too_many_posts") == 0)
        return RL_DAILY_POSTS; /* other apps posted for this creator too */
    if (strcmp(code, "spam_risk_too_many_pending_share") == 0)
        return RL_PENDING_SHARES;
    if (strcmp(code, "reached_active_user_cap") == 0)
        return RL_ACTIVE_USERS;
    return -1;
}

/* What to do with a failed TikTok call (asked: the budget it spent, or -1),
 * by the policy's action; a budget TikTok says is spent is held shut. */
static void on_error(struct run *r, struct job *j, const struct http_resp *resp, const char *what,
                     int asked)
{
    char why[700];
    snprintf(why, sizeof why, "%s: %s (code %s%s%s)", what, resp->out.message, resp->out.code,
             resp->out.log_id[0] ? ", log_id " : "", resp->out.log_id);
    bool spam = strncmp(resp->out.code, "spam_risk", 9) == 0;
    if (strcmp(resp->out.code, "privacy_level_option_mismatch") == 0 || spam) {
        /* what we knew of the creator is stale: ask again next time */
        struct creator *c = ci_find(r->p, j->account, false);
        if (c)
            c->at = 0;
    }
    double until;
    int b = resp->out.action == POL_DEFER ? learned(r->p, resp, asked, &until) : -1;
    if (b >= 0) {
        struct limit_op op = {.kind = LIM_BLOCK, .bs = {(enum rl_budget)b}, .n = 1, .until = until};
        TLOG(TLOG_WARN, "limits.learned", LINT("job", j->id), LSTR("account", j->account),
             LSTR("budget", rl_budget_name((enum rl_budget)b)), LSTR("code", resp->out.code),
             LDBL("hold_s", until - clock_now()));
        later_op(r, j, j->state == JOB_PREFLIGHT ? JOB_DEFERRED : j->state, until - clock_now(),
                 why, &op);
        return;
    }
    switch (resp->out.action) {
    case POL_DEFER:
        later(r, j, JOB_DEFERRED, resp->out.retry_after > 0 ? resp->out.retry_after : 60, why);
        break;
    case POL_RETRY: /* the HTTP layer's attempts are spent: come back later */
        later(r, j, j->state == JOB_PREFLIGHT ? JOB_DEFERRED : j->state, 60, why);
        break;
    case POL_REAUTH:
        later(r, j, JOB_DEFERRED, 600, why); /* paused until the account is connected again */
        break;
    default:
        fail(r, j, resp->out.log_id, "%s", why);
    }
}

/* POST a JSON body to a TikTok API path for the job's account (the token is
 * added by the OAuth layer). Returns 0, or an error in e (nothing sent). */
static int api_post(struct run *r, const struct job *j, const char *path, const char *body,
                    enum http_retry retry, http_done_fn cb, struct tikd_err *e)
{
    char url[512];
    snprintf(url, sizeof url, "%s%s", r->p->api_url, path);
    return oauth_post_json(r->p->o, j->account, url, body, retry, cb, r, e);
}

/* ---- creator_info (pre-flight) -------------------------------------------------- */

static struct creator *ci_find(struct pipeline *p, const char *account, bool fresh_only)
{
    for (int i = 0; i < CI_CACHE; i++)
        if (strcmp(p->ci[i].account, account) == 0 &&
            (!fresh_only || clock_now() - p->ci[i].at < TT_CREATOR_INFO_TTL))
            return &p->ci[i];
    return NULL;
}

static struct creator *ci_slot(struct pipeline *p, const char *account)
{
    struct creator *c = ci_find(p, account, false);
    if (c)
        return c;
    c = &p->ci[0];
    for (int i = 1; i < CI_CACHE; i++)
        if (p->ci[i].at < c->at)
            c = &p->ci[i];
    memset(c, 0, sizeof *c);
    snprintf(c->account, sizeof c->account, "%s", account);
    return c;
}

static void init_upload(struct run *r, struct job *j, const struct creator *c);
static void init_pull_video(struct run *r, struct job *j, const struct creator *c);
static void init_photo(struct run *r, struct job *j);
static void check_photo_urls(struct run *r, struct job *j, int from);
static bool is_url(const char *media);

static void preflight_checks(struct run *r, struct job *j, const struct creator *c);
static void preflight(struct run *r, struct job *j);

/* The rules answered before_publish: cancel, defer, or change caption or
 * privacy (checked again as a planned post is), then on to the init. */
static void decided(void *token, const struct pipeline_decision *d)
{
    struct run *r = token;
    struct job j;
    if (!reload(r, &j))
        return;
    if (d->cancel) {
        j.state = JOB_CANCELLED;
        snprintf(j.reason, sizeof j.reason, "cancelled by %s: %s", d->chosen_by, d->reason);
        if (save(r->p, &j, "job.cancelled", "job=%llu account=%s by=%s reason=\"%.200s\"",
                 (unsigned long long)j.id, j.account, d->chosen_by, d->reason) == 0)
            finish(r, &j);
        else
            run_end(r);
        return;
    }
    if (d->defer > 0) {
        char why[500];
        snprintf(why, sizeof why, "deferred by %s: %s", d->chosen_by, d->reason);
        later(r, &j, JOB_DEFERRED, d->defer, why);
        return;
    }
    if (d->caption || d->privacy[0]) {
        if (d->caption)
            snprintf(j.caption, sizeof j.caption, "%s", d->caption);
        if (d->privacy[0] && j.mode == JOB_DIRECT)
            snprintf(j.privacy, sizeof j.privacy, "%s", d->privacy);
        snprintf(j.chosen_by, sizeof j.chosen_by, "%s", d->chosen_by);
        char why[2000];
        if (job_validate(&j, why, sizeof why) > 0) {
            fail(r, &j, NULL, "before_publish of %s made the post invalid: %s", d->chosen_by, why);
            return;
        }
        if (save(r->p, &j, "job.changed", "job=%llu account=%s by=%s privacy=%s",
                 (unsigned long long)j.id, j.account, d->chosen_by,
                 j.privacy[0] ? j.privacy : "-") != 0) {
            run_end(r);
            return;
        }
    }
    struct creator *c = ci_find(r->p, j.account, false);
    if (!c) { /* (the cache lost it meanwhile) ask again */
        preflight(r, &j);
        return;
    }
    preflight_checks(r, &j, c);
}

static void preflight_checks(struct run *r, struct job *j, const struct creator *c)
{
    if (r->p->before && !r->asked) { /* the rules may change, defer or cancel it first */
        r->asked = true;
        r->p->before(r->p->before_ud, j, c->options, decided, r);
        return;
    }
    if (j->mode == JOB_DIRECT) {
        bool offered = false;
        for (const char *q = c->options; *q;) {
            size_t l = strcspn(q, ",");
            offered |= l == strlen(j->privacy) && strncmp(q, j->privacy, l) == 0;
            q += l + (q[l] == ',');
        }
        if (!offered) {
            bool self_only = strcmp(c->options, "SELF_ONLY") == 0;
            fail(r, j, NULL, "privacy %s is not offered by this creator now (offered: %s)%s",
                 j->privacy, c->options[0] ? c->options : "none",
                 self_only ? "; an app TikTok has not audited may only post SELF_ONLY to "
                             "private accounts"
                           : "");
            return;
        }
    }
    if (j->kind == JOB_PHOTO) {
        check_photo_urls(r, j, 0);
        return;
    }
    if (is_url(j->media)) {
        init_pull_video(r, j, c);
        return;
    }
    struct media_info mi;
    struct tikd_err e = {0};
    char why[400];
    if (media_probe(j->media, &mi, &e) != 0) {
        fail(r, j, NULL, "%s", e.msg);
        return;
    }
    if (media_check_video(&mi, c->max_duration, why, sizeof why) != 0) {
        fail(r, j, NULL, "%s: %s", j->media, why);
        return;
    }
    if (upload_plan(mi.size, &j->plan, why, sizeof why) != 0) {
        fail(r, j, NULL, "%s: %s", j->media, why);
        return;
    }
    snprintf(j->mime, sizeof j->mime, "%s", mi.mime ? mi.mime : "video/mp4");
    /* the plan, before TikTok hears of it, using the init's slot (a new one
     * if creator_info took long) */
    if (!hold_init_slot(r, j, j->state))
        return;
    if (save_init(r->p, j, NULL, NULL) != 0) {
        run_end(r);
        return;
    }
    init_upload(r, j, c);
}

static void creator_done(void *ud, const struct http_resp *resp)
{
    struct run *r = ud;
    struct job j;
    if (!reload(r, &j))
        return;
    if (resp->out.action != POL_OK) {
        on_error(r, &j, resp, "creator_info", RL_CREATOR_INFO);
        return;
    }
    json_t *o = json_loadb(resp->body, resp->body_len, 0, NULL);
    json_t *d = json_object_get(o, "data");
    json_t *opts = json_object_get(d, "privacy_level_options");
    if (!json_is_array(opts)) {
        json_decref(o);
        fail(&*r, &j, resp->out.log_id, "creator_info: TikTok's answer has no privacy options");
        return;
    }
    struct creator *c = ci_slot(r->p, j.account);
    c->at = clock_now();
    size_t n = 0;
    c->options[0] = '\0';
    for (size_t i = 0; i < json_array_size(opts); i++) {
        const char *s = json_string_value(json_array_get(opts, i));
        if (s && n < sizeof c->options)
            n += (size_t)snprintf(c->options + n, sizeof c->options - n, "%s%s", i ? "," : "", s);
    }
    c->max_duration = (int)json_integer_value(json_object_get(d, "max_video_post_duration_sec"));
    c->comment_disabled = json_is_true(json_object_get(d, "comment_disabled"));
    c->duet_disabled = json_is_true(json_object_get(d, "duet_disabled"));
    c->stitch_disabled = json_is_true(json_object_get(d, "stitch_disabled"));
    json_decref(o);
    preflight_checks(r, &j, c);
}

static void preflight(struct run *r, struct job *j)
{
    struct pipeline *p = r->p;
    /* the init's slot first: a job that must wait spends no creator_info */
    j->reason[0] = '\0';
    if (!hold_init_slot(r, j, JOB_PREFLIGHT))
        return;
    struct creator *c = ci_find(p, j->account, true);
    struct limit_op op = {.kind = LIM_CLAIM, .bs = {RL_CREATOR_INFO}, .n = 1};
    j->state = JOB_PREFLIGHT;
    int rc = save_op(p, j, c ? NULL : &op, NULL, NULL);
    if (rc == TIKD_EFULL) {
        wait_budget(r, j, JOB_DEFERRED, op.at, op.which);
        return;
    }
    if (rc != 0) {
        run_end(r);
        return;
    }
    if (c) {
        preflight_checks(r, j, c);
        return;
    }
    struct tikd_err e = {0};
    if (api_post(r, j, TT_PATH_CREATOR_INFO, "{}", HTTP_RETRY_ALL, creator_done, &e) != 0)
        later(r, j, JOB_DEFERRED, 600, e.msg); /* e.g. the account needs reauth: paused */
}

/* ---- init --------------------------------------------------------------------------- */

static void init_done(void *ud, const struct http_resp *resp)
{
    struct run *r = ud;
    struct job j;
    if (!reload(r, &j))
        return;
    if (resp->out.action != POL_OK) {
        on_error(r, &j, resp, j.mode == JOB_DRAFT ? "inbox init" : "init",
                 rl_init_budget(j.mode == JOB_DRAFT, false));
        return;
    }
    json_t *o = json_loadb(resp->body, resp->body_len, 0, NULL);
    json_t *d = json_object_get(o, "data");
    const char *pid = json_string_value(json_object_get(d, "publish_id"));
    const char *url = json_string_value(json_object_get(d, "upload_url"));
    if (!pid || !url || strlen(pid) >= sizeof j.publish_id || strlen(url) >= sizeof j.upload_url) {
        json_decref(o);
        fail(r, &j, resp->out.log_id,
             "init: TikTok's answer lacks a usable publish_id or "
             "upload_url");
        return;
    }
    /* the publish is TikTok's now: record it before the first byte */
    snprintf(j.publish_id, sizeof j.publish_id, "%s", pid);
    snprintf(j.upload_url, sizeof j.upload_url, "%s", url);
    json_decref(o);
    j.upload_url_at = clock_now();
    j.chunks_done = 0;
    j.attempts++;
    j.state = JOB_UPLOADING;
    j.due_at = clock_now();
    if (save(r->p, &j, "job.init", "job=%llu account=%s publish_id=%s size=%llu chunks=%u",
             (unsigned long long)j.id, j.account, j.publish_id, (unsigned long long)j.plan.size,
             j.plan.count) != 0) {
        run_end(r);
        return;
    }
    step(r);
}

/* A video's post_info: what the creator sees and TikTok audits. The
 * creator's own "No one" settings force interactions off (spec §2.2). */
static json_t *video_post_info(const struct job *j, const struct creator *c)
{
    json_t *post = json_pack("{s:s, s:b, s:b, s:b, s:b, s:b, s:b}", "privacy_level", j->privacy,
                             "disable_comment", j->opt.disable_comment || c->comment_disabled,
                             "disable_duet", j->opt.disable_duet || c->duet_disabled,
                             "disable_stitch", j->opt.disable_stitch || c->stitch_disabled,
                             "brand_content_toggle", j->opt.brand_content, "brand_organic_toggle",
                             j->opt.brand_organic, "is_aigc", j->opt.is_aigc);
    if (post && j->caption[0])
        json_object_set_new(post, "title", json_string(j->caption));
    if (post && j->opt.cover_ms >= 0)
        json_object_set_new(post, "video_cover_timestamp_ms", json_integer(j->opt.cover_ms));
    return post;
}

static char *video_init_body(const struct job *j, const struct creator *c, json_t *source)
{
    json_t *body = json_object();
    if (j->mode == JOB_DIRECT) /* an inbox init takes source_info only (spec §7 #12) */
        json_object_set_new(body, "post_info", video_post_info(j, c));
    json_object_set_new(body, "source_info", source);
    char *s = json_dumps(body, JSON_COMPACT);
    json_decref(body);
    return s;
}

static void init_upload(struct run *r, struct job *j, const struct creator *c)
{
    json_t *source =
        json_pack("{s:s, s:I, s:I, s:I}", "source", "FILE_UPLOAD", "video_size",
                  (json_int_t)j->plan.size, "chunk_size", (json_int_t)j->plan.chunk_size,
                  "total_chunk_count", (json_int_t)j->plan.count);
    char *s = video_init_body(j, c, source);
    /* an init that may have reached TikTok is not sent twice: it counts
     * against the creator's daily cap */
    struct tikd_err e = {0};
    int rc = api_post(r, j, j->mode == JOB_DRAFT ? TT_PATH_INBOX_INIT : TT_PATH_VIDEO_INIT, s,
                      HTTP_RETRY_NOT_SENT, init_done, &e);
    free(s);
    if (rc != 0)
        later(r, j, JOB_DEFERRED, 600, e.msg);
}

static void send_pull_init(struct run *r, struct job *j, const char *path, char *s,
                           int (*also)(struct store_txn *, void *), void *ud);

/* A video TikTok pulls from its URL (spec §2.2 PULL_FROM_URL). */
static void init_pull_video(struct run *r, struct job *j, const struct creator *c)
{
    if (!hold_init_slot(r, j, j->state))
        return;
    json_t *source = json_pack("{s:s, s:s}", "source", "PULL_FROM_URL", "video_url", j->media);
    send_pull_init(r, j, j->mode == JOB_DRAFT ? TT_PATH_INBOX_INIT : TT_PATH_VIDEO_INIT,
                   video_init_body(j, c, source), NULL, NULL);
}

/* ---- pulls: TikTok fetches the media itself (spec §2.6, §2.9) ----------------------- */

static bool is_url(const char *media)
{
    return strncmp(media, "https://", 8) == 0;
}

/* The answer to a pull's init (a photo post, or a video from a URL). */
static void pull_init_done(void *ud, const struct http_resp *resp)
{
    struct run *r = ud;
    struct job j;
    if (!reload(r, &j))
        return;
    const char *what = j.kind == JOB_PHOTO ? "photo init" : "pull init";
    if (resp->out.action != POL_OK) {
        /* TikTok answered, or the request never left: no pull was started */
        bool never_left =
            strcmp(resp->out.code, "curl_7") == 0 || strcmp(resp->out.code, "curl_6") == 0;
        if (resp->status != 0 || never_left) {
            j.init_sent_at = 0;
            on_error(r, &j, resp, what, rl_init_budget(j.mode == JOB_DRAFT, j.kind == JOB_PHOTO));
            return;
        }
        /* no answer: TikTok may have started the pull; a second init could
         * post twice */
        fail(r, &j, NULL,
             "the %s got no answer (%s), so TikTok may be pulling the post already; it is "
             "not sent again (that could post it twice): check the account, then `tikd job "
             "retry %llu` if it did not arrive",
             what, resp->out.message, (unsigned long long)j.id);
        return;
    }
    json_t *o = json_loadb(resp->body, resp->body_len, 0, NULL);
    const char *pid = json_string_value(json_object_get(json_object_get(o, "data"), "publish_id"));
    if (!pid || strlen(pid) >= sizeof j.publish_id) {
        json_decref(o);
        fail(r, &j, resp->out.log_id, "%s: TikTok's answer lacks a usable publish_id", what);
        return;
    }
    snprintf(j.publish_id, sizeof j.publish_id, "%s", pid);
    json_decref(o);
    j.attempts++;
    j.state = JOB_PROCESSING;
    j.processing_deadline = clock_now() + r->p->c.processing_timeout;
    j.due_at = clock_now() + r->p->c.poll_first;
    save(r->p, &j, "job.init", "job=%llu account=%s publish_id=%s kind=%s source=pull",
         (unsigned long long)j.id, j.account, j.publish_id,
         j.kind == JOB_PHOTO ? "photo" : "video");
    run_end(r); /* the timer brings it back for its first status poll */
}

/* Send a pull's init body s to path: marked in the store as possibly sent
 * before it leaves (see step), with what `also` writes. Frees s. */
static void send_pull_init(struct run *r, struct job *j, const char *path, char *s,
                           int (*also)(struct store_txn *, void *), void *ud)
{
    j->init_sent_at = clock_now();
    int rc = s ? save_init(r->p, j, also, ud) : TIKD_ENOMEM;
    if (rc != 0) {
        free(s);
        run_end(r);
        return;
    }
    struct tikd_err e = {0};
    rc = api_post(r, j, path, s, HTTP_RETRY_NOT_SENT, pull_init_done, &e);
    free(s);
    if (rc != 0) {
        j->init_sent_at = 0; /* it never left */
        later(r, j, JOB_DEFERRED, 600, e.msg);
    }
}

/* ---- photos at URLs: a bounded fetch of each head, checked before the init ---- */

/* Photo `index` (0-based) of j, in out; false past the last. */
static bool photo_at(const struct job *j, int index, char *out, size_t n)
{
    const char *q = j->images;
    for (int i = 0; *q; i++) {
        size_t l = strcspn(q, "\n");
        if (i == index) {
            snprintf(out, n, "%.*s", (int)l, q);
            return true;
        }
        q += l + (q[l] == '\n');
    }
    return false;
}

static void url_checked(void *ud, const struct http_resp *resp)
{
    struct run *r = ud;
    r->x = NULL;
    struct job j;
    if (!reload(r, &j))
        return;
    int index = r->probe;
    char url[1024];
    photo_at(&j, index, url, sizeof url);
    if (resp->status == 0) { /* tikd cannot reach it; TikTok may: TikTok decides */
        TLOG(TLOG_WARN, "media.url_unchecked", LINT("job", j.id), LINT("photo", index + 1),
             LSTR("error", resp->out.message));
        check_photo_urls(r, &j, index + 1);
        return;
    }
    if (resp->status >= 300 && resp->status < 400) {
        fail(r, &j, NULL,
             "photo %d (%.300s): the URL redirects (HTTP %ld), and TikTok does not follow "
             "redirects: give the final URL",
             index + 1, url, resp->status);
        return;
    }
    if (resp->status != 200 && resp->status != 206) {
        fail(r, &j, NULL,
             "photo %d (%.300s): HTTP %ld when tikd fetched it, so TikTok could not pull it "
             "either",
             index + 1, url, resp->status);
        return;
    }
    uint64_t total = 0;
    char cr[128];
    if (resp->status == 206 && http_header_get(resp->headers, "Content-Range", cr, sizeof cr) &&
        strchr(cr, '/'))
        total = strtoull(strchr(cr, '/') + 1, NULL, 10);
    else if (resp->status == 200 && http_header_get(resp->headers, "Content-Length", cr, sizeof cr))
        total = strtoull(cr, NULL, 10);
    struct image_info ii;
    struct tikd_err e = {0};
    char bad[400];
    int rc = image_probe_buf((const unsigned char *)resp->body, resp->body_len, total, &ii, &e);
    if (rc != 0 && ii.head_short && !r->probe_more && resp->body_len >= IMAGE_HEAD_BYTES) {
        r->probe_more = true; /* a big EXIF or XMP first: fetch a longer head, once */
        check_photo_urls(r, &j, index);
        return;
    }
    r->probe_more = false;
    if (rc != 0 || image_check_photo(&ii, bad, sizeof bad) != 0) {
        fail(r, &j, NULL, "photo %d (%.300s): %.400s", index + 1, url, e.msg[0] ? e.msg : bad);
        return;
    }
    check_photo_urls(r, &j, index + 1);
}

/* Check the photos at URLs from `from` on, one at a time, then init. */
static void check_photo_urls(struct run *r, struct job *j, int from)
{
    char url[1024];
    for (int i = from; r->p->c.check_urls && photo_at(j, i, url, sizeof url); i++) {
        if (!is_url(url))
            continue;
        r->probe = i;
        size_t head = r->probe_more ? IMAGE_HEAD_MAX : IMAGE_HEAD_BYTES;
        char range[48];
        snprintf(range, sizeof range, "bytes=0-%zu", head - 1);
        struct http_header h[] = {{"Range", range}};
        struct http_req req = {.method = "GET",
                               .url = url,
                               .headers = h,
                               .nheaders = 1,
                               .timeout = 30,
                               .retry = HTTP_RETRY_ALL,
                               .max_attempts = 2,
                               .head_max = head};
        struct tikd_err e = {0};
        if (http_request(r->p->h, &req, url_checked, r, &r->x, &e) != 0)
            fail(r, j, NULL, "photo %d (%.300s): %s", i + 1, url, e.msg);
        return;
    }
    init_photo(r, j);
}

/* The local images of a photo job, published at URLs of their own. */
struct served {
    uint64_t job;
    int n;
    char token[JOB_IMAGES_MAX][MEDIAURL_TOKEN_LEN + 1];
    struct media_url u[JOB_IMAGES_MAX];
};

static int served_txn(struct store_txn *t, void *ud)
{
    struct served *sv = ud;
    int rc = mediaurl_del_job(t, sv->job); /* an earlier init's, if TikTok failed it */
    for (int i = 0; rc == 0 && i < sv->n; i++)
        rc = mediaurl_put(t, sv->token[i], &sv->u[i]);
    return rc;
}

static const char *base_name(const char *path)
{
    const char *b = strrchr(path, '/');
    return b && b[1] ? b + 1 : path;
}

/* The URL TikTok pulls photo `index` from: its own, or, for a local file,
 * one tikd serves (recorded in sv). 0, or -1 with why. */
static int photo_url(struct pipeline *p, struct served *sv, int index, const char *image, char *url,
                     size_t n, char *why, size_t wn)
{
    if (image[0] != '/') {
        snprintf(url, n, "%s", image);
        return 0;
    }
    const char *base = p->c.media_public_url;
    if (!base || !base[0]) {
        snprintf(why, wn,
                 "photo %d is a local file (%.160s), and media.public_url is not set: TikTok pulls "
                 "photos from a verified domain, so tikd serves local images there (see "
                 "docs/publishing.md)",
                 index + 1, base_name(image));
        return -1;
    }
    struct image_info ii;
    struct tikd_err e = {0};
    char bad[400];
    if (image_probe(image, &ii, &e) != 0 || image_check_photo(&ii, bad, sizeof bad) != 0) {
        snprintf(why, wn, "photo %d (%.160s): %.400s", index + 1, base_name(image),
                 e.msg[0] ? e.msg : bad);
        return -1;
    }
    char *token = sv->token[sv->n];
    if (mediaurl_token(token, &e) != 0) {
        snprintf(why, wn, "%s", e.msg);
        return -1;
    }
    struct media_url *u = &sv->u[sv->n++];
    u->job = sv->job;
    u->index = index;
    u->expires_at = clock_now() + p->c.media_url_ttl;
    snprintf(u->path, sizeof u->path, "%s", image);
    snprintf(u->mime, sizeof u->mime, "%s", ii.mime);
    snprintf(url, n, "%s%s%s%s", base, base[strlen(base) - 1] == '/' ? "" : "/", token,
             strcmp(ii.format, "webp") == 0 ? ".webp" : ".jpg");
    return 0;
}

static void init_photo(struct run *r, struct job *j)
{
    struct pipeline *p = r->p;
    /* the slot first: a job that must wait publishes no URL */
    if (!hold_init_slot(r, j, j->state))
        return;
    struct served *sv = calloc(1, sizeof *sv);
    if (sv)
        sv->job = j->id;
    json_t *images = json_array();
    char why[600] = "";
    int index = 0;
    for (const char *q = j->images; sv && *q && !why[0]; index++) {
        size_t l = strcspn(q, "\n");
        char image[1024], url[1200];
        snprintf(image, sizeof image, "%.*s", (int)(l < sizeof image ? l : sizeof image - 1), q);
        if (photo_url(p, sv, index, image, url, sizeof url, why, sizeof why) == 0)
            json_array_append_new(images, json_string(url));
        q += l + (q[l] == '\n');
    }
    if (!sv || why[0]) {
        json_decref(images);
        free(sv);
        if (why[0])
            fail(r, j, NULL, "%s", why);
        else
            run_end(r);
        return;
    }
    json_t *post = json_object();
    if (j->caption[0])
        json_object_set_new(post, "title", json_string(j->caption));
    if (j->description[0])
        json_object_set_new(post, "description", json_string(j->description));
    if (j->mode == JOB_DIRECT) {
        json_object_set_new(post, "privacy_level", json_string(j->privacy));
        json_object_set_new(post, "disable_comment", json_boolean(j->opt.disable_comment));
        json_object_set_new(post, "auto_add_music", json_boolean(j->opt.auto_add_music));
        json_object_set_new(post, "brand_content_toggle", json_boolean(j->opt.brand_content));
        json_object_set_new(post, "brand_organic_toggle", json_boolean(j->opt.brand_organic));
    }
    json_t *body = json_pack("{s:s, s:s, s:o, s:{s:s, s:o, s:i}}", "media_type", "PHOTO",
                             "post_mode", j->mode == JOB_DRAFT ? "MEDIA_UPLOAD" : "DIRECT_POST",
                             "post_info", post, "source_info", "source", "PULL_FROM_URL",
                             "photo_images", images, "photo_cover_index", j->cover_index);
    char *s = body ? json_dumps(body, JSON_COMPACT) : NULL;
    json_decref(body);
    /* a pull, once TikTok has it, runs by itself: mark that it may have left,
     * in the store, before it leaves, with the URLs it names */
    send_pull_init(r, j, TT_PATH_CONTENT_INIT, s, served_txn, sv);
    free(sv);
}

/* ---- upload ------------------------------------------------------------------------------- */

static void poll_status(struct run *r, struct job *j);

static void chunk_done(void *ud, const struct http_resp *resp)
{
    struct run *r = ud;
    r->x = NULL;
    struct job j;
    if (!reload(r, &j))
        return;
    if (resp->status == 206 || resp->status == 201 || resp->status == 200) {
        j.chunks_done++;
        if (j.chunks_done >= j.plan.count || resp->status == 201) {
            j.state = JOB_PROCESSING;
            j.processing_deadline = clock_now() + r->p->c.processing_timeout;
            j.due_at = clock_now() + r->p->c.poll_first;
        }
        TLOG(TLOG_INFO, "upload.chunk", LINT("job", j.id), LINT("chunk", j.chunks_done),
             LINT("of", j.plan.count));
        if (save(r->p, &j, j.state == JOB_PROCESSING ? "job.uploaded" : NULL,
                 "job=%llu publish_id=%s bytes=%llu", (unsigned long long)j.id, j.publish_id,
                 (unsigned long long)j.plan.size) != 0) {
            run_end(r);
            return;
        }
        if (j.state == JOB_PROCESSING)
            run_end(r); /* the timer brings it back for its first status poll */
        else
            step(r);
        return;
    }
    if (resp->status == 416) { /* TikTok has a different idea of progress: ask it */
        r->resumed = true;
        poll_status(r, &j);
        return;
    }
    if (resp->status == 403 || resp->status == 404) {
        fail(r, &j, NULL,
             "the upload URL of publish %s is %s: TikTok gives an hour to upload "
             "(spec §2.2)",
             j.publish_id, resp->status == 403 ? "expired" : "unknown");
        return;
    }
    on_error(r, &j, resp, "upload", -1);
}

static void put_chunk(struct run *r, struct job *j)
{
    uint64_t first, len;
    upload_chunk(&j->plan, j->chunks_done, &first, &len);
    struct stat st;
    if (stat(j->media, &st) != 0 || (uint64_t)st.st_size != j->plan.size) {
        fail(r, j, NULL, "%s changed or vanished during the upload (planned %llu bytes)", j->media,
             (unsigned long long)j->plan.size);
        return;
    }
    char ctype[64], range[96];
    snprintf(ctype, sizeof ctype, "%s", j->mime[0] ? j->mime : "video/mp4");
    snprintf(range, sizeof range, "bytes %llu-%llu/%llu", (unsigned long long)first,
             (unsigned long long)(first + len - 1), (unsigned long long)j->plan.size);
    struct http_header h[] = {{"Content-Type", ctype}, {"Content-Range", range}};
    struct http_req req = {.method = "PUT",
                           .url = j->upload_url,
                           .headers = h,
                           .nheaders = 2,
                           .body_file = j->media,
                           .body_off = (off_t)first,
                           .body_len = len,
                           .timeout = 0,
                           .retry = HTTP_RETRY_ALL};
    struct tikd_err e = {0};
    if (http_request(r->p->h, &req, chunk_done, r, &r->x, &e) != 0)
        fail(r, j, NULL, "upload: %s", e.msg);
}

/* ---- status ---------------------------------------------------------------------------------- */

static void status_done(void *ud, const struct http_resp *resp)
{
    struct run *r = ud;
    struct pipeline *p = r->p;
    struct job j;
    if (!reload(r, &j))
        return;
    if (resp->out.action != POL_OK) {
        on_error(r, &j, resp, "status", RL_STATUS);
        return;
    }
    json_t *o = json_loadb(resp->body, resp->body_len, 0, NULL);
    json_t *d = json_object_get(o, "data");
    const char *st = json_string_value(json_object_get(d, "status"));
    const char *fr = json_string_value(json_object_get(d, "fail_reason"));
    json_int_t uploaded = json_integer_value(json_object_get(d, "uploaded_bytes"));
    /* post ids are 19-digit integers: jansson keeps them exact as int64 */
    json_t *ids = json_object_get(d, "publicaly_available_post_id");
    size_t n = 0;
    j.post_ids[0] = '\0';
    for (size_t i = 0; json_is_array(ids) && i < json_array_size(ids); i++) {
        json_t *v = json_array_get(ids, i);
        char one[32] = "";
        if (json_is_integer(v))
            snprintf(one, sizeof one, "%lld", (long long)json_integer_value(v));
        else if (json_is_string(v))
            snprintf(one, sizeof one, "%s", json_string_value(v));
        if (one[0] && n < sizeof j.post_ids)
            n += (size_t)snprintf(j.post_ids + n, sizeof j.post_ids - n, "%s%s", n ? "," : "", one);
    }
    char status[40];
    snprintf(status, sizeof status, "%s", st ? st : "");
    char fail_reason[64];
    snprintf(fail_reason, sizeof fail_reason, "%s", fr ? fr : "");
    json_decref(o);

    if (j.state == JOB_UPLOADING && r->resumed) {
        /* resync after a restart or a 416: TikTok's uploaded_bytes decides */
        r->resumed = false;
        if (strcmp(status, "PROCESSING_UPLOAD") == 0 && (uint64_t)uploaded < j.plan.size) {
            j.chunks_done =
                j.plan.chunk_size ? (uint32_t)((uint64_t)uploaded / j.plan.chunk_size) : 0;
            if (j.chunks_done >= j.plan.count)
                j.chunks_done = j.plan.count - 1;
            save(p, &j, NULL, NULL);
            step(r);
            return;
        }
        if (strcmp(status, "FAILED") != 0) { /* all bytes arrived before the crash */
            j.chunks_done = j.plan.count;
            j.state = JOB_PROCESSING;
            j.processing_deadline = clock_now() + p->c.processing_timeout;
            save(p, &j, "job.uploaded", "job=%llu publish_id=%s resynced=1",
                 (unsigned long long)j.id, j.publish_id);
        }
    }
    if (strcmp(status, "PUBLISH_COMPLETE") == 0 ||
        (j.mode == JOB_DRAFT && strcmp(status, "SEND_TO_USER_INBOX") == 0)) {
        j.state = strcmp(status, "PUBLISH_COMPLETE") == 0 ? JOB_PUBLISHED : JOB_IN_INBOX;
        j.reason[0] = '\0';
        if (save(p, &j, j.state == JOB_PUBLISHED ? "job.published" : "job.in_inbox",
                 "job=%llu account=%s publish_id=%s post_ids=%s privacy=%s chosen_by=%s",
                 (unsigned long long)j.id, j.account, j.publish_id, j.post_ids,
                 j.privacy[0] ? j.privacy : "-", j.chosen_by) == 0)
            finish(r, &j);
        else
            run_end(r);
        return;
    }
    if (strcmp(status, "FAILED") == 0) {
        snprintf(j.fail_reason, sizeof j.fail_reason, "%s", fail_reason);
        bool retryable = strcmp(fail_reason, "internal") == 0 ||
                         strcmp(fail_reason, "video_pull_failed") == 0 ||
                         strcmp(fail_reason, "photo_pull_failed") == 0;
        if (retryable && j.attempts < p->c.max_inits) {
            /* TikTok reported this publish failed: a new init is allowed */
            j.publish_id[0] = j.upload_url[0] = '\0';
            j.chunks_done = 0;
            j.init_sent_at = 0;
            later(r, &j, JOB_DEFERRED, 30, "TikTok failed the publish (internal); posting again");
            return;
        }
        fail(r, &j, resp->out.log_id, "TikTok failed publish %s: %s", j.publish_id,
             fail_reason[0] ? fail_reason : "no reason given");
        return;
    }
    if (clock_now() > j.processing_deadline && j.processing_deadline > 0) {
        fail(r, &j, resp->out.log_id,
             "no final status from TikTok for publish %s within %.0f minutes (last: %s)",
             j.publish_id, p->c.processing_timeout / 60, status[0] ? status : "none");
        return;
    }
    /* still processing (or a status tikd does not know: treated the same) */
    double waited = clock_now() - (j.processing_deadline - p->c.processing_timeout);
    double next = p->c.poll_first;
    while (next < waited / 4 && next < p->c.poll_max)
        next *= 2;
    if (next > p->c.poll_max)
        next = p->c.poll_max;
    char why[80];
    snprintf(why, sizeof why, "TikTok status %s", status[0] ? status : "unknown");
    later(r, &j, j.state, next, why);
}

static void poll_status(struct run *r, struct job *j)
{
    struct limit_op op = {.kind = LIM_CLAIM, .bs = {RL_STATUS}, .n = 1};
    int rc = save_op(r->p, j, &op, NULL, NULL);
    if (rc == TIKD_EFULL) {
        wait_budget(r, j, j->state, op.at, RL_STATUS);
        return;
    }
    if (rc != 0) {
        run_end(r);
        return;
    }
    json_t *b = json_pack("{s:s}", "publish_id", j->publish_id);
    char *body = b ? json_dumps(b, JSON_COMPACT) : NULL;
    json_decref(b);
    struct tikd_err e = {0};
    rc = api_post(r, j, TT_PATH_STATUS, body, HTTP_RETRY_ALL, status_done, &e);
    free(body);
    if (rc != 0)
        later(r, j, j->state, 600, e.msg);
}

/* ---- the step and the timer --------------------------------------------------------------------
 */

static void step(struct run *r)
{
    struct job j;
    if (load(r->p, r->id, &j) != 0) {
        run_end(r);
        return;
    }
    switch (j.state) {
    case JOB_AWAITING_APPROVAL: /* due means its deadline passed */
        j.state = JOB_CANCELLED;
        snprintf(j.reason, sizeof j.reason, "not approved before its deadline");
        if (save(r->p, &j, "job.expired", "job=%llu account=%s reason=approval_deadline",
                 (unsigned long long)j.id, j.account) == 0)
            finish(r, &j);
        else
            run_end(r);
        return;
    case JOB_SCHEDULED:
    case JOB_DEFERRED:
    case JOB_PREFLIGHT:
        if (!j.publish_id[0] && j.init_sent_at > 0) {
            /* tikd stopped between sending a URL-pull init and storing its
             * answer: TikTok may be pulling already; another init could post
             * twice */
            fail(r, &j, NULL,
                 "tikd stopped while TikTok was being asked to pull this post, so it may already "
                 "be on its way; it is not sent again (that could post it twice): check the "
                 "account, then `tikd job retry %llu` if it did not arrive",
                 (unsigned long long)j.id);
            return;
        }
        if (j.publish_id[0]) { /* never init twice: go back to asking TikTok */
            j.state = JOB_PROCESSING;
            save(r->p, &j, NULL, NULL);
            poll_status(r, &j);
            return;
        }
        preflight(r, &j);
        return;
    case JOB_UPLOADING:
        if (r->resumed) {
            poll_status(r, &j);
            return;
        }
        put_chunk(r, &j);
        return;
    case JOB_PROCESSING:
        poll_status(r, &j);
        return;
    default:
        run_end(r);
    }
}

static bool is_running(struct pipeline *p, uint64_t id)
{
    for (struct run *r = p->runs; r; r = r->next)
        if (r->id == id)
            return true;
    return false;
}

struct due_list {
    struct pipeline *p;
    uint64_t ids[64];
    int n;
    double next; /* the earliest due entry of a job not being worked (0: none) */
};

static int collect_due(uint64_t id, double due, void *ctx)
{
    struct due_list *d = ctx;
    if (is_running(d->p, id))
        return 0;
    if (due > clock_now()) { /* the first one in the future: the timer's next moment */
        d->next = due;
        return 1;
    }
    if (d->n < 64 && d->p->nruns + (size_t)d->n < (size_t)d->p->c.max_active)
        d->ids[d->n++] = id;
    else if (!d->next)
        d->next = due; /* due now, no free slot: a run's end re-arms */
    return 0;
}

static int due_txn(struct store_txn *t, void *ctx)
{
    return job_foreach_due(t, 1e18, collect_due, ctx);
}

static void on_timer(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)loop;
    (void)revents;
    struct pipeline *p = w->data;
    struct due_list d = {.p = p};
    if (p->nruns < (size_t)p->c.max_active)
        store_read(p->s, due_txn, &d, NULL);
    for (int i = 0; i < d.n; i++) {
        struct run *r = calloc(1, sizeof *r);
        if (!r)
            break;
        r->p = p;
        r->id = d.ids[i];
        r->resumed = !p->started; /* the first pass after a start resyncs uploads */
        r->next = p->runs;
        p->runs = r;
        p->nruns++;
        step(r);
    }
    p->started = true;
    arm(p);
}

static void arm(struct pipeline *p)
{
    ev_timer_stop(p->loop, &p->timer);
    if (p->nruns >= (size_t)p->c.max_active)
        return; /* a run ending calls arm() again */
    struct due_list d = {.p = p};
    store_read(p->s, due_txn, &d, NULL);
    if (d.n == 0 && !d.next)
        return;
    double delay = d.n ? 0 : d.next - clock_now();
    ev_timer_set(&p->timer, delay > 0 ? delay : 0., 0.);
    ev_timer_start(p->loop, &p->timer);
}

void pipeline_kick(struct pipeline *p)
{
    arm(p);
}

size_t pipeline_active(const struct pipeline *p)
{
    return p->nruns;
}

void pipeline_on_before(struct pipeline *p, pipeline_before_fn fn, void *ud)
{
    p->before = fn;
    p->before_ud = ud;
}

void pipeline_on_outcome(struct pipeline *p, pipeline_outcome_fn fn, void *ud)
{
    p->outcome = fn;
    p->outcome_ud = ud;
}

int pipeline_new(struct pipeline **out, struct ev_loop *loop, struct store *s, struct oauth *o,
                 struct http *h, const struct pipeline_cfg *c, struct tikd_err *e)
{
    struct pipeline *p = calloc(1, sizeof *p);
    if (!p)
        return tikd_fail(e, TIKD_ENOMEM, "pipeline: out of memory");
    p->c = *c;
    p->api_url = strdup(c->api_url);
    p->c.api_url = p->api_url;
    p->public_url = c->media_public_url ? strdup(c->media_public_url) : NULL;
    p->c.media_public_url = p->public_url;
    if (p->c.media_url_ttl <= 0)
        p->c.media_url_ttl = 3600;
    if (p->c.max_active <= 0)
        p->c.max_active = 8;
    if (p->c.poll_first <= 0)
        p->c.poll_first = 2;
    if (p->c.poll_max <= 0)
        p->c.poll_max = 30;
    if (p->c.processing_timeout <= 0)
        p->c.processing_timeout = 1800;
    if (p->c.max_inits <= 0)
        p->c.max_inits = 3;
    p->loop = loop;
    p->s = s;
    p->o = o;
    p->h = h;
    ev_init(&p->timer, on_timer);
    p->timer.data = p;
    *out = p;
    return 0;
}

void pipeline_free(struct pipeline *p)
{
    if (!p)
        return;
    ev_timer_stop(p->loop, &p->timer);
    while (p->runs) {
        struct run *r = p->runs;
        p->runs = r->next;
        if (r->x)
            http_cancel(r->x);
        free(r);
    }
    free(p->api_url);
    free(p->public_url);
    free(p);
}
