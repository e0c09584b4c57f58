/* pipeline_steps.c - what each of a job's states does (see pipeline_int.h):
 * the pre-flight (creator_info, kept with the run; the rules' last word;
 * the creator's privacy options; the media), the inits (a local video's
 * chunk plan, a pull from a URL, photos at their URLs), the chunks, and the
 * status until TikTok says published, in the inbox or failed. What TikTok is
 * asked and what its answers say is core/tiktok's; photos' URLs are
 * core/photos'. */
#include "pipeline_int.h"
#include "account.h"
#include "clock.h"
#include "log.h"
#include "media.h"
#include "post.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* ---- pre-flight: creator_info, the rules' last word, the media ---------------------- */

static void init_upload(struct run *r, struct job *j);
static bool pull_waits(struct run *r, struct job *j);
static void init_pull(struct run *r, struct job *j);
static void check_photos(struct run *r, struct job *j);
static void media_probed(void *arg, const struct media_info *mi, const struct tikd_err *pe);
static void media_ready(struct run *r, struct job *j, const struct media_info *mi);
static void probe_trouble(struct run *r, struct job *j, const struct tikd_err *e);

static bool is_url(const char *media)
{
    return strncmp(media, "https://", 8) == 0;
}

/* What creator_info says the creator turned off goes out off, whoever chose
 * otherwise (TikTok's audit: the settings shown and sent must follow the
 * creator's), and the job records it with who decided: creator_info. Photo
 * posts have comments only. False when the run ended. */
static bool creator_settings(struct run *r, struct job *j)
{
    const struct tt_creator *c = &r->creator;
    bool video = j->kind != JOB_PHOTO;
    char off[64] = "";
    if (c->comment_disabled && !j->opt.disable_comment) {
        j->opt.disable_comment = true;
        strcat(off, "comment");
    }
    if (video && c->duet_disabled && !j->opt.disable_duet) {
        j->opt.disable_duet = true;
        strcat(off, off[0] ? ",duet" : "duet");
    }
    if (video && c->stitch_disabled && !j->opt.disable_stitch) {
        j->opt.disable_stitch = true;
        strcat(off, off[0] ? ",stitch" : "stitch");
    }
    if (!off[0])
        return true;
    TLOG(TLOG_INFO, "job.settings_from_creator", LINT("job", j->id), LSTR("account", j->account),
         LSTR("disabled", off));
    if (pl_save(r->p, j, "job.changed", "job=%llu account=%s by=creator_info disabled=%s",
                (unsigned long long)j->id, j->account, off) != 0) {
        pl_run_end(r);
        return false;
    }
    return true;
}

/* After the rules had their say: what the creator allows, then the media. */
static void preflight_media(struct run *r, struct job *j)
{
    const struct tt_creator *c = &r->creator;
    if (j->mode == JOB_DIRECT && !tt_privacy_offered(c->options, j->privacy)) {
        bool self_only = strcmp(c->options, "SELF_ONLY") == 0;
        pl_fail(r, j, NULL, "privacy %s is not offered by this creator now (offered: %s)%s",
                j->privacy, c->options[0] ? c->options : "none",
                self_only ? "; an app TikTok has not audited may only post SELF_ONLY to "
                            "private accounts"
                          : "");
        return;
    }
    if (j->mode == JOB_DIRECT && !creator_settings(r, j))
        return;
    if (j->kind == JOB_PHOTO) {
        check_photos(r, j);
        return;
    }
    if (is_url(j->media)) {
        init_pull(r, j);
        return;
    }
    /* read when planned, unchanged since: judged again with this creator's
     * limits, not read again */
    struct stat st;
    if (j->probe.probed && stat(j->media, &st) == 0 && media_same_file(&j->probe, &st)) {
        struct media_info mi = j->probe;
        media_ready(r, j, &mi);
        return;
    }
    struct tikd_err e = {0};
    if (!(r->probe = media_probe_start(r->p->loop, j->media, media_probed, r, &e)))
        probe_trouble(r, j, &e);
}

/* The probe could not say: a file it refuses fails the job; a probe that
 * could not run or finish (not installed, out of processes, past its
 * deadline on a busy machine) is tried again later, the reason shown. */
static void probe_trouble(struct run *r, struct job *j, const struct tikd_err *e)
{
    if (e->code == TIKD_EINVAL || e->code == TIKD_ENOTFOUND) {
        pl_fail(r, j, NULL, "%s", e->msg);
        return;
    }
    char why[600];
    snprintf(why, sizeof why, "the media probe could not read the video: %.500s", e->msg);
    pl_later(r, j, JOB_DEFERRED, r->p->c.probe_retry, why);
}

/* The probe read the video again (off the loop, in its own process): the
 * file changed since it was planned, or was planned by an older tikd. */
static void media_probed(void *arg, const struct media_info *mi, const struct tikd_err *pe)
{
    struct run *r = arg;
    r->probe = NULL;
    struct job j;
    if (!pl_go_on(r) || !pl_reload(r, &j))
        return;
    if (pe->code != 0) {
        probe_trouble(r, &j, pe);
        return;
    }
    j.probe = *mi; /* saved with the plan below */
    media_ready(r, &j, mi);
}

/* TikTok's rules with this creator's longest duration, then the chunk plan
 * and the init. */
static void media_ready(struct run *r, struct job *j, const struct media_info *mi)
{
    char why[600];
    if (media_check_video(mi, r->creator.max_duration, why, sizeof why) != 0) {
        pl_fail(r, j, NULL, "%s: %s", j->media, why);
        return;
    }
    if (upload_plan(mi->size, &j->plan, why, sizeof why) != 0) {
        pl_fail(r, j, NULL, "%s: %s", j->media, why);
        return;
    }
    snprintf(j->mime, sizeof j->mime, "%s", mi->mime ? mi->mime : "video/mp4");
    /* the plan, before TikTok hears of it, using the init's slot (a new one
     * if creator_info took long) */
    if (!pl_hold_init_slot(r, j, j->state))
        return;
    j->init_sent_at = clock_now(); /* a lost answer leaves a session at TikTok: counted */
    if (pl_save_init(r->p, j, NULL, NULL) != 0) {
        pl_run_end(r);
        return;
    }
    init_upload(r, j);
}

/* The rules answered before_publish: cancel, defer, or change caption or
 * privacy (checked again as a planned post is), then on to the media. */
static void decided(void *token, const struct post_decision *d)
{
    struct run *r = token;
    struct job j;
    if (!pl_go_on(r) || !pl_reload(r, &j))
        return;
    char why[2400], detail[1000];
    switch (post_decide(&j, d, clock_now(), why, sizeof why)) {
    case POST_CANCELLED:
        snprintf(detail, sizeof detail,
                 "job=%llu account=%s by=%s reason=\"%.200s\" tenant=%s libs=%.100s",
                 (unsigned long long)j.id, j.account, d->chosen_by, d->reason,
                 j.tenant[0] ? j.tenant : "-", d->libs[0] ? d->libs : "-");
        pl_cancelled(r, &j, "job.cancelled", detail);
        return;
    case POST_DEFERRED:
        snprintf(why, sizeof why, "%s", j.reason);
        pl_later(r, &j, JOB_DEFERRED, d->defer, why);
        return;
    case POST_INVALID:
        pl_fail(r, &j, NULL, "%s", why);
        return;
    case POST_CHANGED:
        if (pl_save(
                r->p, &j, "job.changed", "job=%llu account=%s by=%s privacy=%s tenant=%s libs=%s",
                (unsigned long long)j.id, j.account, d->chosen_by, j.privacy[0] ? j.privacy : "-",
                j.tenant[0] ? j.tenant : "-", j.libs[0] ? j.libs : "-") != 0) {
            pl_run_end(r);
            return;
        }
        break;
    case POST_GO:
        break;
    }
    preflight_media(r, &j);
}

/* The creator is known: the rules may change, defer or cancel the post. */
static void preflight_rules(struct run *r, struct job *j)
{
    if (r->p->before && !r->asked) {
        r->asked = true;
        r->p->before(r->p->before_ud, j, &r->creator, decided, r);
        return;
    }
    preflight_media(r, j);
}

static void creator_done(void *ud, const struct http_resp *resp)
{
    struct run *r = ud;
    struct job j;
    if (!pl_reload(r, &j))
        return;
    if (resp->out.action != POL_OK) {
        pl_on_error(r, &j, resp, "creator_info", RL_CREATOR_INFO);
        return;
    }
    char why[200];
    if (tt_decode_creator(resp, &r->creator, why, sizeof why) != 0) {
        pl_fail(r, &j, resp->out.log_id, "%s", why);
        return;
    }
    r->have_creator = true;
    tt_creators_put(r->p->creators, j.account, &r->creator, clock_now());
    struct tikd_err ne = {0}; /* for `tikd media check --account`; a write only on a change */
    if (r->creator.max_duration > 0 &&
        account_note_creator(r->p->s, j.account, r->creator.max_duration, clock_now(), &ne) != 0)
        TLOG(TLOG_DEBUG, "account.creator_unsaved", LSTR("account", j.account),
             LSTR("reason", ne.msg));
    if (pl_go_on(r))
        preflight_rules(r, &j);
}

void pl_preflight(struct run *r, struct job *j)
{
    struct pipeline *p = r->p;
    if (pull_waits(r, j)) /* no creator_info for a pull that could not go */
        return;
    /* the init's slot first: a job that must wait spends no creator_info */
    j->reason[0] = '\0';
    if (!pl_hold_init_slot(r, j, JOB_PREFLIGHT))
        return;
    const struct tt_creator *known = tt_creators_get(p->creators, j->account, clock_now());
    if (known) {
        r->creator = *known;
        r->have_creator = true;
    }
    struct budget_op op = {.kind = BUDGET_CLAIM, .bs = {RL_CREATOR_INFO}, .n = 1};
    j->state = JOB_PREFLIGHT;
    int rc = pl_save_op(p, j, r->have_creator ? NULL : &op, NULL, NULL);
    if (rc == TIKD_EFULL) {
        pl_wait_budget(r, j, JOB_DEFERRED, op.at, op.which);
        return;
    }
    if (rc != 0) {
        pl_run_end(r);
        return;
    }
    if (r->have_creator) {
        preflight_rules(r, j);
        return;
    }
    pl_ask(r, j, TT_CREATOR_INFO, strdup("{}"), creator_done);
}

/* ---- inits ------------------------------------------------------------------------ */

static void init_done(void *ud, const struct http_resp *resp)
{
    struct run *r = ud;
    /* an upload init that TikTok refused, or whose server failed, did not
     * count; one that got no answer may have */
    bool lost = resp->out.action != POL_OK && policy_may_have_acted(resp->status, &resp->out) &&
                resp->status < 500;
    pl_init_answered(r->p, r->id, resp->out.action == POL_OK || lost);
    struct job j;
    if (!pl_reload(r, &j))
        return;
    const char *what = j.mode == JOB_DRAFT ? "inbox init" : "init";
    j.init_sent_at = 0; /* answered: saved with whatever the answer leads to */
    if (lost && !pl_orphan(r, &j,
                           resp->status ? "the upload's init got an answer that does not say"
                                        : "the upload's init got no answer"))
        return;
    if (resp->out.action != POL_OK) {
        pl_on_error(r, &j, resp, what, rl_init_budget(j.mode == JOB_DRAFT, false));
        return;
    }
    struct tt_init in;
    char why[200];
    if (tt_decode_init(resp, true, &in, why, sizeof why) != 0) {
        pl_fail(r, &j, resp->out.log_id, "init: %s", why);
        return;
    }
    /* the publish is TikTok's now: record it before the first byte */
    snprintf(j.publish_id, sizeof j.publish_id, "%s", in.publish_id);
    snprintf(j.upload_url, sizeof j.upload_url, "%s", in.upload_url);
    j.upload_url_at = clock_now();
    j.chunks_done = 0;
    j.attempts++;
    j.state = JOB_UPLOADING;
    j.due_at = clock_now();
    r->resumed = false; /* this run made the init: nothing was sent, nothing to ask */
    if (pl_save(r->p, &j, "job.init", "job=%llu account=%s publish_id=%s size=%llu chunks=%u",
                (unsigned long long)j.id, j.account, j.publish_id, (unsigned long long)j.plan.size,
                j.plan.count) != 0) {
        pl_run_end(r);
        return;
    }
    pl_step(r);
}

/* A video from a local file (FILE_UPLOAD): an init that may have reached
 * TikTok is not sent twice, it counts against the creator's daily cap. */
static void init_upload(struct run *r, struct job *j)
{
    char *body = tt_body_video_init(j, &r->creator);
    struct tikd_err e = {0};
    int rc = tt_send(&r->p->api, j->account, j->mode == JOB_DRAFT ? TT_INBOX_INIT : TT_VIDEO_INIT,
                     body, init_done, r, &e);
    free(body);
    if (rc != 0) {
        pl_init_answered(r->p, j->id, false); /* it never left */
        j->spent_at = 0;
        j->init_sent_at = 0;
        pl_later(r, j, JOB_DEFERRED, pl_unsent_delay(&e), e.msg);
    }
}

/* The answer to a pull's init (a photo post, or a video from a URL). */
static void late_cancel_done(void *ud, const struct http_resp *resp)
{
    struct run *r = ud;
    TLOG(resp->out.action == POL_OK ? TLOG_INFO : TLOG_WARN, "job.cancel_at_tiktok",
         LINT("job", r->id), LBOOL("stopped", resp->out.action == POL_OK),
         LSTR("message", resp->out.message));
    pl_run_end(r);
}

/* The operator cancelled j while its pull's init was on its way, and TikTok
 * took it: the publish goes on the record (the job stays cancelled), and
 * TikTok is asked to stop the pull, best effort (spec §2.8). */
static void cancelled_in_flight(struct run *r, struct job *j, const char *publish_id)
{
    snprintf(j->publish_id, sizeof j->publish_id, "%s", publish_id);
    snprintf(j->reason, sizeof j->reason,
             "cancelled by the operator while its init was on its way; TikTok took it as publish "
             "%.80s, and was asked to stop it: it may still appear",
             publish_id);
    TLOG(TLOG_WARN, "job.cancelled_in_flight", LINT("job", j->id), LSTR("account", j->account),
         LSTR("publish_id", publish_id));
    if (pl_save(r->p, j, "job.cancelled_in_flight", "job=%llu account=%s publish_id=%s",
                (unsigned long long)j->id, j->account, j->publish_id) != 0) {
        pl_run_end(r);
        return;
    }
    struct tikd_err e = {0};
    char *body = tt_body_publish_id(j->publish_id);
    int rc = tt_send(&r->p->api, j->account, TT_CANCEL, body, late_cancel_done, r, &e);
    free(body);
    if (rc != 0)
        pl_run_end(r);
}

static void pull_init_done(void *ud, const struct http_resp *resp)
{
    struct run *r = ud;
    /* a pull TikTok may have started counts (it is not sent again either) */
    pl_init_answered(r->p, r->id, policy_may_have_acted(resp->status, &resp->out));
    struct job j;
    struct tt_init in;
    char why[200];
    if (job_read(r->p->s, r->id, &j) == 0 && j.state == JOB_CANCELLED && !j.publish_id[0] &&
        resp->out.action == POL_OK && tt_decode_init(resp, false, &in, why, sizeof why) == 0) {
        cancelled_in_flight(r, &j, in.publish_id);
        return;
    }
    if (!pl_reload(r, &j))
        return;
    if (j.publish_id[0]) { /* never overwrite a publish on record (webhooks wait for answers) */
        pl_run_end(r);
        return;
    }
    const char *what = j.kind == JOB_PHOTO ? "photo init" : "pull init";
    if (resp->out.action != POL_OK) {
        /* A pull is not idempotent: no answer, a 5xx or a garbled answer
         * may come after TikTok took the work, and a second init could post
         * it twice. Only a proven refusal is tried again. */
        if (!policy_may_have_acted(resp->status, &resp->out)) {
            j.init_sent_at = 0;
            pl_on_error(r, &j, resp, what,
                        rl_init_budget(j.mode == JOB_DRAFT, j.kind == JOB_PHOTO));
            return;
        }
        char lost[400];
        snprintf(lost, sizeof lost, "the %s got %s (%.200s%s%.80s)", what,
                 resp->status == 0 ? "no answer" : "an answer that does not say no",
                 resp->out.message, resp->out.log_id[0] ? ", log_id " : "", resp->out.log_id);
        if (resp->out.log_id[0])
            snprintf(j.log_id, sizeof j.log_id, "%s", resp->out.log_id);
        pl_unsure(r, &j, lost);
        return;
    }
    if (tt_decode_init(resp, false, &in, why, sizeof why) != 0) {
        pl_fail(r, &j, resp->out.log_id, "%s: %s", what, why);
        return;
    }
    snprintf(j.publish_id, sizeof j.publish_id, "%s", in.publish_id);
    j.attempts++;
    j.state = JOB_PROCESSING;
    j.processing_deadline = clock_now() + r->p->c.processing_timeout;
    j.due_at = clock_now() + r->p->c.poll_first;
    pl_save(r->p, &j, "job.init", "job=%llu account=%s publish_id=%s kind=%s source=pull",
            (unsigned long long)j.id, j.account, j.publish_id,
            j.kind == JOB_PHOTO ? "photo" : "video");
    pl_run_end(r); /* the timer brings it back for its first status poll */
}

/* Another pull of j's account, kind and mode whose init may have reached
 * TikTok unanswered (in flight, or unsure for less than `hold`): its id, or
 * 0. */
struct unsettled_ctx {
    const struct job *j;
    double hold;
    uint64_t other;
    enum job_state state;
};

static int unsettled_one(const struct job *o, void *ctx)
{
    struct unsettled_ctx *u = ctx;
    if (o->id == u->j->id || !job_pull_unsettled(o) || o->mode != u->j->mode ||
        (o->kind == JOB_PHOTO) != (u->j->kind == JOB_PHOTO) ||
        (o->state == JOB_UNSURE && clock_now() - o->init_sent_at >= u->hold))
        return 0;
    u->other = o->id;
    u->state = o->state;
    return 1;
}

static int unsettled_txn(struct store_txn *t, void *ctx)
{
    struct unsettled_ctx *u = ctx;
    return job_foreach_account_open(t, u->j->account, unsettled_one, u);
}

/* An unsure pull holds the next one of its kind this long at most: TikTok's
 * webhook for a pull it took comes within minutes (a photo post's within
 * seconds); one it never names may never have reached it. */
#define UNSURE_HOLD 600.0

/* One pull of a kind per account until TikTok said what became of it: a
 * webhook for a publish tikd never heard of can then name its job (an unsure
 * one's) without a guess (core/webhook). True when j waits (the run ended). */
static bool pull_waits(struct run *r, struct job *j)
{
    double hold = r->p->c.unsure_wait < UNSURE_HOLD ? r->p->c.unsure_wait : UNSURE_HOLD;
    struct unsettled_ctx u = {j, hold, 0, JOB_SCHEDULED};
    if (!job_is_pull(j) || store_read(r->p->s, unsettled_txn, &u, NULL) < 0 || !u.other)
        return false;
    char why[300];
    snprintf(why, sizeof why,
             "waits for job %llu, a %s of this account whose init TikTok has not answered yet: "
             "one at a time, so TikTok's webhooks can say which publish is whose",
             (unsigned long long)u.other, j->kind == JOB_PHOTO ? "photo post" : "pull");
    pl_later(r, j, JOB_SCHEDULED, u.state == JOB_UNSURE ? 5 : 1, why); /* a local look */
    return true;
}

/* Send a pull's init (call c, body owned here): marked in the store as
 * possibly sent before it leaves (see step), with what `also` writes. */
static void send_pull_init(struct run *r, struct job *j, enum tt_call c, char *body,
                           int (*also)(struct store_txn *, const void *), const void *ud)
{
    /* checked again here: another pull may have left since the pre-flight
     * (nothing runs between this read and the commit below) */
    if (pull_waits(r, j)) {
        free(body);
        return;
    }
    j->init_sent_at = clock_now();
    int rc = body ? pl_save_init(r->p, j, also, ud) : TIKD_ENOMEM;
    if (rc != 0) {
        free(body);
        pl_run_end(r);
        return;
    }
    struct tikd_err e = {0};
    rc = tt_send(&r->p->api, j->account, c, body, pull_init_done, r, &e);
    free(body);
    if (rc != 0) {
        j->init_sent_at = 0; /* it never left */
        pl_init_answered(r->p, j->id, false);
        j->spent_at = 0;
        pl_later(r, j, JOB_DEFERRED, pl_unsent_delay(&e), e.msg);
    }
}

/* A video TikTok pulls from its URL (spec §2.2 PULL_FROM_URL). */
static void init_pull(struct run *r, struct job *j)
{
    if (!pl_hold_init_slot(r, j, j->state))
        return;
    send_pull_init(r, j, j->mode == JOB_DRAFT ? TT_INBOX_INIT : TT_VIDEO_INIT,
                   tt_body_video_init(j, &r->creator), NULL, NULL);
}

static int served_txn(struct store_txn *t, const void *ud)
{
    return photos_served_txn(t, ud);
}

/* A photo post: every image at a URL TikTok can pull, then the init. */
static void init_photo(struct run *r, struct job *j)
{
    struct pipeline *p = r->p;
    /* the slot first: a job that must wait publishes no URL */
    if (!pl_hold_init_slot(r, j, j->state))
        return;
    struct photos_served *sv = malloc(sizeof *sv);
    char why[600];
    if (!sv) {
        pl_run_end(r);
        return;
    }
    if (photos_urls(j, p->c.media_public_url, p->c.media_url_ttl, clock_now(), sv, why,
                    sizeof why) != 0) {
        free(sv);
        pl_fail(r, j, NULL, "%s", why);
        return;
    }
    const char *urls[JOB_IMAGES_MAX];
    for (int i = 0; i < sv->nurl; i++)
        urls[i] = sv->url[i];
    /* a pull, once TikTok has it, runs by itself: the URLs it names are
     * recorded with the mark that it may have left, before it leaves */
    send_pull_init(r, j, TT_CONTENT_INIT, tt_body_photo_init(j, urls, (size_t)sv->nurl), served_txn,
                   sv);
    free(sv);
}

static void photos_checked(void *ud, int rc, const char *why)
{
    struct run *r = ud;
    r->check = NULL;
    struct job j;
    if (!pl_go_on(r) || !pl_reload(r, &j))
        return;
    if (rc != 0)
        pl_fail(r, &j, NULL, "%s", why);
    else
        init_photo(r, &j);
}

/* Check the photos at URLs (media.check_urls), then init. */
static void check_photos(struct run *r, struct job *j)
{
    struct tikd_err e = {0};
    int rc =
        r->p->c.check_urls ? photos_check_start(r->p->h, j, photos_checked, r, &r->check, &e) : 1;
    if (rc == 1)
        init_photo(r, j);
    else if (rc != 0)
        pl_fail(r, j, NULL, "%s", e.msg);
}

/* ---- upload --------------------------------------------------------------------- */

static void chunk_done(void *ud, const struct http_resp *resp)
{
    struct run *r = ud;
    r->x = NULL;
    struct job j;
    if (!pl_reload(r, &j))
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
        if (pl_save(r->p, &j, j.state == JOB_PROCESSING ? "job.uploaded" : NULL,
                    "job=%llu publish_id=%s bytes=%llu", (unsigned long long)j.id, j.publish_id,
                    (unsigned long long)j.plan.size) != 0) {
            pl_run_end(r);
            return;
        }
        if (j.state == JOB_PROCESSING)
            pl_run_end(r); /* the timer brings it back for its first status poll */
        else
            pl_step(r);
        return;
    }
    if (resp->status == 416) { /* TikTok has a different idea of progress: ask it */
        r->resumed = true;
        if (pl_go_on(r))
            pl_poll_status(r, &j);
        return;
    }
    if (resp->status == 403 || resp->status == 404) {
        pl_fail(r, &j, NULL,
                "the upload URL of publish %s is %s: TikTok gives an hour to upload "
                "(spec §2.2)",
                j.publish_id, resp->status == 403 ? "expired" : "unknown");
        return;
    }
    pl_on_error(r, &j, resp, "upload", -1);
}

/* A chunk's bytes as they go: told as bytes of the whole video. */
static void chunk_progress(void *ud, uint64_t sent, uint64_t total)
{
    (void)total;
    struct run *r = ud;
    if (r->p->progress)
        r->p->progress(r->p->progress_ud, r->account, r->id, r->chunk_first + sent, r->size);
}

void pl_put_chunk(struct run *r, struct job *j)
{
    struct stat st;
    if (stat(j->media, &st) != 0 || (uint64_t)st.st_size != j->plan.size) {
        pl_fail(r, j, NULL, "%s changed or vanished during the upload (planned %llu bytes)",
                j->media, (unsigned long long)j->plan.size);
        return;
    }
    struct tikd_err e = {0};
    uint64_t len;
    upload_chunk(&j->plan, j->chunks_done, &r->chunk_first, &len);
    r->size = j->plan.size;
    snprintf(r->account, sizeof r->account, "%s", j->account);
    if (tt_put_chunk_progress(r->p->h, j, j->chunks_done, chunk_done, r, chunk_progress, r, &r->x,
                              &e) != 0)
        pl_fail(r, j, NULL, "upload: %s", e.msg);
}

/* ---- status ------------------------------------------------------------------------ */

/* After a restart or a 416, TikTok's uploaded_bytes decides where the upload
 * stands: true when the run went on from there (the caller is done). */
static bool resync(struct run *r, struct job *j, const struct tt_status *s)
{
    r->resumed = false;
    if (strcmp(s->status, "PROCESSING_UPLOAD") == 0 && s->uploaded_bytes < j->plan.size) {
        j->chunks_done =
            j->plan.chunk_size ? (uint32_t)(s->uploaded_bytes / j->plan.chunk_size) : 0;
        if (j->chunks_done >= j->plan.count)
            j->chunks_done = j->plan.count - 1;
        pl_save(r->p, j, NULL, NULL);
        pl_step(r);
        return true;
    }
    if (strcmp(s->status, "FAILED") != 0) { /* all bytes arrived before the crash */
        j->chunks_done = j->plan.count;
        j->state = JOB_PROCESSING;
        j->processing_deadline = clock_now() + r->p->c.processing_timeout;
        pl_save(r->p, j, "job.uploaded", "job=%llu publish_id=%s resynced=1",
                (unsigned long long)j->id, j->publish_id);
    }
    return false;
}

/* The next poll, backing off from poll_first as the wait grows (to `most`). */
static double poll_next(const struct pipeline *p, double waited, double most)
{
    double next = p->c.poll_first;
    while (next < waited / 4 && next < most)
        next *= 2;
    return next > most ? most : next;
}

/* Add every id of the comma-separated list to j's; how many were new. */
static int add_post_ids(struct job *j, const char *list)
{
    int added = 0;
    char one[32];
    for (const char *p = list; *p; p += *p == ',') {
        size_t n = strcspn(p, ",");
        snprintf(one, sizeof one, "%.*s", (int)(n < sizeof one ? n : sizeof one - 1), p);
        added += job_add_post_id(j, one);
        p += n;
    }
    return added;
}

#define POST_ID_POLL_MAX 600.0 /* moderation can take hours: no need to ask often */
#define IN_MODERATION    "published; its public post id comes once TikTok's moderation ends"

void pl_post_id_missing(struct run *r, struct job *j, const char *last)
{
    j->watch_until = 0;
    snprintf(j->reason, sizeof j->reason,
             "published; TikTok gave no public post id within %.0f minutes (still in moderation, "
             "or no longer public): the publicly_available webhook may bring it",
             r->p->c.post_id_wait / 60);
    TLOG(TLOG_WARN, "job.post_id_missing", LINT("job", j->id), LSTR("account", j->account),
         LSTR("publish_id", j->publish_id), LSTR("last", last));
    pl_save(r->p, j, NULL, NULL);
    pl_run_end(r);
}

/* A published public post asks for its post id, which TikTok gives once
 * moderation ends (spec §2.7), until post_id_wait; the
 * post.publish.publicly_available webhook may bring it first. */
static void post_id_status(struct run *r, struct job *j, const struct http_resp *resp,
                           const struct tt_status *s)
{
    struct pipeline *p = r->p;
    double now = clock_now();
    bool have = resp->out.action == POL_OK && (add_post_ids(j, s->post_ids) || j->post_ids[0]);
    if (!have && (now >= j->watch_until || resp->out.action == POL_FAIL)) {
        /* its time is up, or TikTok will not say (the publish is unknown to it) */
        pl_post_id_missing(r, j, resp->out.message);
        return;
    }
    if (resp->out.action != POL_OK) { /* ask again later; the post is published whatever */
        char why[300];
        snprintf(why, sizeof why, "published; asking TikTok for its post id: %.240s",
                 resp->out.message);
        double until = 0; /* a 429 holds the token's status budget, as for any poll */
        int b = resp->out.action == POL_DEFER
                    ? budget_learned(&p->c.limits, resp, RL_STATUS, now, &until)
                    : -1;
        struct budget_op op = {.kind = BUDGET_BLOCK, .bs = {(enum rl_budget)b}, .n = 1};
        op.until = until;
        double wait = resp->out.retry_after > 60 ? resp->out.retry_after : 60;
        pl_later_op(r, j, j->state, b >= 0 && until - now > wait ? until - now : wait, why,
                    b >= 0 ? &op : NULL);
        return;
    }
    if (have) {
        j->watch_until = 0;
        j->reason[0] = '\0';
        TLOG(TLOG_INFO, "job.post_id", LINT("job", j->id), LSTR("account", j->account),
             LSTR("publish_id", j->publish_id), LSTR("post_ids", j->post_ids));
        pl_save(p, j, "job.post_id", "job=%llu account=%s publish_id=%s post_id=%s via=status",
                (unsigned long long)j->id, j->account, j->publish_id, j->post_ids);
        pl_run_end(r);
        return;
    }
    double since = now - (j->watch_until - p->c.post_id_wait);
    pl_later(r, j, j->state, poll_next(p, since, POST_ID_POLL_MAX), IN_MODERATION);
}

static void status_done(void *ud, const struct http_resp *resp)
{
    struct run *r = ud;
    struct pipeline *p = r->p;
    struct job j;
    if (!pl_reload(r, &j))
        return;
    struct tt_status s;
    char why[200];
    if (resp->out.action != POL_OK || tt_decode_status(resp, &s, why, sizeof why) != 0)
        s = (struct tt_status){0}; /* an answer without data: still processing, as far as we know */
    if (j.state == JOB_PUBLISHED) {
        if (j.watch_until > 0)
            post_id_status(r, &j, resp, &s);
        else
            pl_run_end(r); /* the webhook brought the id meanwhile */
        return;
    }
    if (resp->out.action != POL_OK) {
        pl_on_error(r, &j, resp, "status", RL_STATUS);
        return;
    }
    add_post_ids(&j, s.post_ids); /* a webhook may have brought some first */
    if (j.state == JOB_UPLOADING && r->resumed && resync(r, &j, &s))
        return;
    bool complete = strcmp(s.status, "PUBLISH_COMPLETE") == 0;
    if (complete || (j.mode == JOB_DRAFT && strcmp(s.status, "SEND_TO_USER_INBOX") == 0)) {
        j.state = complete ? JOB_PUBLISHED : JOB_IN_INBOX;
        j.reason[0] = '\0';
        if (complete && j.mode == JOB_DIRECT && !j.post_ids[0] && p->c.post_id_wait > 0 &&
            strcmp(j.privacy, "PUBLIC_TO_EVERYONE") == 0) {
            /* public, and in moderation: its post id comes later */
            j.watch_until = clock_now() + p->c.post_id_wait;
            j.due_at = clock_now() + p->c.poll_first;
            snprintf(j.reason, sizeof j.reason, "%s", IN_MODERATION);
        }
        if (pl_save(p, &j, complete ? "job.published" : "job.in_inbox",
                    "job=%llu account=%s publish_id=%s post_ids=%s privacy=%s chosen_by=%s",
                    (unsigned long long)j.id, j.account, j.publish_id, j.post_ids,
                    j.privacy[0] ? j.privacy : "-", j.chosen_by) == 0)
            pl_finish(r, &j);
        else
            pl_run_end(r);
        return;
    }
    if (strcmp(s.status, "FAILED") == 0) {
        snprintf(j.fail_reason, sizeof j.fail_reason, "%s", s.fail_reason);
        if (tt_fail_retryable(s.fail_reason) && j.attempts < p->c.max_inits) {
            /* TikTok reported this publish failed: a new init is allowed */
            j.publish_id[0] = j.upload_url[0] = '\0';
            j.chunks_done = 0;
            j.init_sent_at = 0;
            pl_later(r, &j, JOB_DEFERRED, 30,
                     "TikTok failed the publish (internal); posting again");
            return;
        }
        pl_fail(r, &j, resp->out.log_id, "TikTok failed publish %s: %s", j.publish_id,
                s.fail_reason[0] ? s.fail_reason : "no reason given");
        return;
    }
    if (clock_now() > j.processing_deadline && j.processing_deadline > 0) {
        pl_fail(r, &j, resp->out.log_id,
                "no final status from TikTok for publish %s within %.0f minutes (last: %s)",
                j.publish_id, p->c.processing_timeout / 60, s.status[0] ? s.status : "none");
        return;
    }
    /* still processing (or a status tikd does not know: treated the same) */
    double waited = clock_now() - (j.processing_deadline - p->c.processing_timeout);
    snprintf(why, sizeof why, "TikTok status %s", s.status[0] ? s.status : "unknown");
    pl_later(r, &j, j.state, poll_next(p, waited, p->c.poll_max), why);
}

void pl_poll_status(struct run *r, struct job *j)
{
    if (j->state == JOB_PROCESSING && j->processing_deadline <= 0) /* adopted by a webhook */
        j->processing_deadline = clock_now() + r->p->c.processing_timeout;
    struct budget_op op = {.kind = BUDGET_CLAIM, .bs = {RL_STATUS}, .n = 1};
    int rc = pl_save_op(r->p, j, &op, NULL, NULL);
    if (rc == TIKD_EFULL) {
        pl_wait_budget(r, j, j->state, op.at, RL_STATUS);
        return;
    }
    if (rc != 0) {
        pl_run_end(r);
        return;
    }
    pl_ask(r, j, TT_STATUS, tt_body_publish_id(j->publish_id), status_done);
}
