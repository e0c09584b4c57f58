/* views.c - JSON views of the engine's records (see views.h). */
#include "views.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../core/account.h"
#include "../core/admin.h"
#include "../core/audit.h"
#include "../core/job.h"
#include "../core/ratelimit.h"
#include "../core/store.h"

json_t *view_time(double t)
{
    if (t <= 0)
        return json_null();
    time_t s = (time_t)t;
    struct tm tm;
    char buf[32];
    if (!gmtime_r(&s, &tm) || !strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm))
        return json_null();
    return json_string(buf);
}

/* A string as JSON; bytes that are not UTF-8 (a file name may hold any)
 * are shown as U+FFFD rather than failing the whole view. */
static json_t *jstr(const char *s)
{
    json_t *v = json_string(s ? s : "");
    if (v)
        return v;
    size_t n = strlen(s);
    char *b = malloc(n * 3 + 1), *w = b;
    if (!b)
        return json_string("");
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p < 0x80) {
            *w++ = (char)*p;
        } else {
            memcpy(w, "\xEF\xBF\xBD", 3);
            w += 3;
        }
    }
    *w = '\0';
    v = json_string(b);
    free(b);
    return v ? v : json_string("");
}

/* A comma- or newline-separated list as an array of its non-empty items. */
static json_t *split(const char *s, char sep)
{
    json_t *a = json_array();
    while (a && s && *s) {
        const char *e = strchr(s, sep);
        size_t n = e ? (size_t)(e - s) : strlen(s);
        if (n) {
            char *item = strndup(s, n);
            json_array_append_new(a, jstr(item ? item : ""));
            free(item);
        }
        s = e ? e + 1 : s + n;
    }
    return a;
}

static json_t *str_or_null(const char *s)
{
    return s && *s ? jstr(s) : json_null();
}

json_t *view_job(const struct job *j, int detail)
{
    bool final = job_state_final(j->state);
    json_t *o = json_pack(
        "{s:I, s:s, s:s, s:s, s:s, s:o, s:o, s:o, s:o}", "id", (json_int_t)j->id, "state",
        job_state_name(j->state), "account", j->account, "mode",
        j->mode == JOB_DRAFT ? "draft" : "direct", "kind", j->kind == JOB_PHOTO ? "photo" : "video",
        "reason", str_or_null(j->reason), "due_at", final ? json_null() : view_time(j->due_at),
        "media", j->kind == JOB_PHOTO ? json_null() : str_or_null(j->media), "images",
        j->kind == JOB_PHOTO ? split(j->images, '\n') : json_array());
    if (o)
        json_object_set_new(o, "tenant", str_or_null(j->tenant));
    if (!o || !detail)
        return o;
    json_t *opt = json_pack(
        "{s:b, s:b, s:b, s:b, s:b, s:b}", "disable_comment", j->opt.disable_comment, "disable_duet",
        j->opt.disable_duet, "disable_stitch", j->opt.disable_stitch, "brand_content",
        j->opt.brand_content, "brand_organic", j->opt.brand_organic, "is_aigc", j->opt.is_aigc);
    json_t *up = json_pack("{s:i, s:i, s:I}", "chunks_done", (int)j->chunks_done, "chunks",
                           (int)j->plan.count, "bytes", (json_int_t)j->plan.size);
    /* the video as the media probe read it when planned (what an approver looks at) */
    const struct media_info *m = &j->probe;
    json_t *video =
        j->kind == JOB_VIDEO && m->probed
            ? json_pack("{s:s, s:s, s:i, s:i, s:f, s:f, s:I, s:s, s:I}", "container", m->container,
                        "codec", m->codec, "width", m->display_width, "height", m->display_height,
                        "fps", m->fps, "duration", m->duration, "bit_rate", (json_int_t)m->bit_rate,
                        "audio_codec", m->audio_codec, "size", (json_int_t)m->size)
            : json_null();
    json_object_update_new(
        o, json_pack("{s:o, s:o, s:s, s:o, s:o, s:o, s:o, s:o, s:i, s:o, s:o, s:o, s:o, s:o, "
                     "s:i, s:o}",
                     "caption", jstr(j->caption), "privacy", str_or_null(j->privacy), "chosen_by",
                     j->chosen_by, "options", opt ? opt : json_null(), "planned_at",
                     view_time(j->planned_at), "created_at", view_time(j->created_at), "updated_at",
                     view_time(j->updated_at), "description", str_or_null(j->description),
                     "attempts", j->attempts, "publish_id", str_or_null(j->publish_id), "upload",
                     up ? up : json_null(), "post_ids", split(j->post_ids, ','), "fail_reason",
                     str_or_null(j->fail_reason), "log_id", str_or_null(j->log_id), "orphans",
                     j->orphans, "watch_until", view_time(j->watch_until)));
    json_object_set_new(o, "video", video ? video : json_null());
    json_object_set_new(o, "libs", split(j->libs, ','));
    return o;
}

json_t *view_account(const struct account *a)
{
    json_t *o = json_pack(
        "{s:s, s:s, s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o}", "name", a->name, "state",
        account_state_name(a->state), "open_id", str_or_null(a->open_id), "scopes",
        split(a->scopes, ','), "access_expires_at", view_time(a->access_expires_at),
        "refresh_expires_at", view_time(a->refresh_expires_at), "reason", str_or_null(a->reason),
        "created_at", view_time(a->created_at), "updated_at", view_time(a->updated_at),
        "max_video_s", a->max_video_s > 0 ? json_integer(a->max_video_s) : json_null());
    if (o)
        json_object_set_new(o, "tenant", str_or_null(a->tenant));
    return o;
}

json_t *view_token(const struct admin_token *k)
{
    return json_pack("{s:s, s:s, s:o, s:o, s:o}", "name", k->name, "role", admin_role_name(k->role),
                     "created_at", view_time(k->created_at), "last_used", view_time(k->last_used),
                     "tenant", str_or_null(k->tenant));
}

json_t *view_audit(const struct audit_rec *r)
{
    return json_pack("{s:I, s:o, s:s, s:s, s:o}", "seq", (json_int_t)r->seq, "time",
                     view_time(r->time), "actor", r->actor ? r->actor : "", "event",
                     r->event ? r->event : "", "detail", str_or_null(r->detail));
}

/* ---- views that read the store ------------------------------------------------------ */

struct history {
    char prefix[32];
    size_t n;
    json_t *events;
};

static int job_event(const struct audit_rec *r, void *ctx)
{
    struct history *h = ctx;
    const char *d = r->detail ? r->detail : "";
    if (strncmp(d, h->prefix, h->n) == 0 && (d[h->n] == ' ' || d[h->n] == '\0'))
        json_array_append_new(h->events, view_audit(r));
    return 0;
}

int view_job_full(struct store_txn *t, uint64_t id, json_t **out)
{
    *out = NULL;
    struct job *j = malloc(sizeof *j);
    if (!j)
        return TIKD_ENOMEM;
    int rc = job_get(t, id, j);
    struct history h = {.events = json_array()};
    h.n = (size_t)snprintf(h.prefix, sizeof h.prefix, "job=%llu", (unsigned long long)id);
    /* (a walk of the whole log: an index of records by job is issue 17's) */
    if (rc == 0)
        rc = audit_foreach(t, 0, job_event, &h);
    if (rc == 0 && (*out = view_job(j, 1)))
        json_object_set_new(*out, "history", h.events);
    else
        json_decref(h.events);
    free(j);
    return rc ? rc : *out ? 0 : TIKD_ENOMEM;
}

struct open_jobs {
    json_t *jobs;
};

static int open_job(const struct job *j, void *ctx)
{
    struct open_jobs *x = ctx;
    if (!job_state_final(j->state))
        json_array_append_new(x->jobs, view_job(j, 0));
    return 0;
}

int view_account_full(struct store_txn *t, const char *name, json_t **out)
{
    *out = NULL;
    struct account a;
    int rc = account_get(t, name, &a);
    if (rc != 0)
        return rc;
    struct open_jobs x = {json_array()};
    rc = job_foreach_account_open(t, name, open_job, &x);
    if (rc < 0 || !(*out = view_account(&a))) {
        json_decref(x.jobs);
        return rc < 0 ? rc : TIKD_ENOMEM;
    }
    json_object_set_new(*out, "open_jobs", x.jobs);
    return 0;
}

static json_t *budget(struct store_txn *t, const struct rl_config *rc, double now,
                      const char *account, enum rl_budget b)
{
    struct rl_view v;
    if (rl_view(t, rc, account, b, now, &v) != 0)
        return NULL;
    if (!v.limited)
        return json_pack("{s:b}", "limited", false);
    return json_pack("{s:b, s:f, s:f, s:f, s:o, s:o}", "limited", true, "used", v.used, "reserved",
                     v.reserved, "cap", v.cap, "next_at",
                     v.next_at >= 1e17 ? json_null() : view_time(v.next_at > now ? v.next_at : now),
                     "closed_by_tiktok_until",
                     v.blocked_until > now ? view_time(v.blocked_until) : json_null());
}

struct limits_ctx {
    struct store_txn *t;
    const struct rl_config *rc;
    double now;
    const char *only, *tenant;
    json_t *accounts;
};

static int limits_account(const struct account *a, void *ctx)
{
    struct limits_ctx *x = ctx;
    if ((x->only && strcmp(x->only, a->name) != 0) || !account_in_tenant(a, x->tenant))
        return 0;
    json_t *o = json_object();
    for (int b = 0; b < RL__COUNT; b++) {
        if (b == RL_ACTIVE_USERS || b == RL_TENANT_POSTS)
            continue; /* the app's, a tenant's: not the account's */
        json_t *v = budget(x->t, x->rc, x->now, a->name, (enum rl_budget)b);
        if (!v) {
            json_decref(o);
            return TIKD_ESTORE;
        }
        json_object_set_new(o, rl_budget_name((enum rl_budget)b), v);
    }
    return json_object_set_new(x->accounts, a->name, o);
}

/* Each tenant's own quota (only tenant's, when one is named). */
static json_t *tenant_quotas(struct store_txn *t, const struct rl_config *rc, double now,
                             const char *tenant)
{
    json_t *o = json_object();
    for (size_t i = 0; o && i < rc->nquotas; i++) {
        const struct rl_quota *q = &rc->quotas[i];
        if (q->per_day <= 0 || (tenant && strcmp(tenant, q->tenant) != 0))
            continue;
        struct rl_config tc = *rc;
        tc.tenant = q->tenant;
        tc.l[RL_TENANT_POSTS] = (struct rl_limit){q->per_day, 86400, 1, 0};
        json_t *v = budget(t, &tc, now, "", RL_TENANT_POSTS);
        if (!v) {
            json_decref(o);
            return NULL;
        }
        json_object_set_new(o, q->tenant, v);
    }
    return o;
}

int view_limits(struct store_txn *t, const struct rl_config *rc, double now, const char *only,
                const char *tenant, json_t **out)
{
    *out = NULL;
    struct limits_ctx x = {t, rc, now, only, tenant, json_object()};
    int r = account_foreach(t, limits_account, &x);
    if (r == 0 && only && !json_object_get(x.accounts, only))
        r = TIKD_ENOTFOUND;
    json_t *app = r == 0 ? budget(t, rc, now, "", RL_ACTIVE_USERS) : NULL;
    json_t *quotas = r == 0 ? tenant_quotas(t, rc, now, tenant) : NULL;
    json_t *decisions = json_object();
    for (int b = 0; r == 0 && b < RL__COUNT; b++) {
        struct rl_metrics m;
        if ((r = rl_metrics(t, (enum rl_budget)b, &m)) != 0)
            break;
        json_object_set_new(decisions, rl_budget_name((enum rl_budget)b),
                            json_pack("{s:I, s:I, s:f}", "allowed", (json_int_t)m.allowed,
                                      "deferred", (json_int_t)m.deferred, "waited_s", m.waited));
    }
    if (r != 0) {
        json_decref(x.accounts);
        json_decref(app);
        json_decref(quotas);
        json_decref(decisions);
        return r;
    }
    *out = json_pack("{s:o, s:o, s:o, s:o}", "accounts", x.accounts, "app_active_users",
                     app ? app : json_null(), "tenant_quotas", quotas ? quotas : json_object(),
                     "decisions", decisions);
    return *out ? 0 : TIKD_ENOMEM;
}

int view_status(struct store_txn *t, json_t **out)
{
    static const char key[] = "daemon.status";
    struct store_val v;
    json_t *st = store_get(t, STORE_DB_META, key, sizeof key - 1, &v) == 0
                     ? json_loadb(v.p, v.n, 0, NULL)
                     : NULL;
    if (!json_is_object(st)) {
        json_decref(st);
        st = json_object();
    }
    struct job_counts n;
    int rc = job_counts_get(t, &n); /* one lookup, however many jobs */
    if (rc != 0) {
        json_decref(st);
        return rc;
    }
    json_t *by = json_object();
    for (int s = 0; s < 16; s++)
        if (n.by_state[s])
            json_object_set_new(by, job_state_name((enum job_state)s),
                                json_integer((json_int_t)n.by_state[s]));
    json_object_set_new(st, "jobs",
                        json_pack("{s:I, s:o, s:I}", "total", (json_int_t)n.jobs, "by_state", by,
                                  "orphan_sessions", (json_int_t)n.orphans));
    *out = st;
    return 0;
}
