/* views.c - JSON views of the engine's records (see views.h). */
#include "views.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../core/account.h"
#include "../core/admin.h"
#include "../core/audit.h"
#include "../core/job.h"

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
    if (!o || !detail)
        return o;
    json_t *opt = json_pack(
        "{s:b, s:b, s:b, s:b, s:b, s:b}", "disable_comment", j->opt.disable_comment, "disable_duet",
        j->opt.disable_duet, "disable_stitch", j->opt.disable_stitch, "brand_content",
        j->opt.brand_content, "brand_organic", j->opt.brand_organic, "is_aigc", j->opt.is_aigc);
    json_t *up = json_pack("{s:i, s:i, s:I}", "chunks_done", (int)j->chunks_done, "chunks",
                           (int)j->plan.count, "bytes", (json_int_t)j->plan.size);
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
    return o;
}

json_t *view_account(const struct account *a)
{
    return json_pack("{s:s, s:s, s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o}", "name", a->name, "state",
                     account_state_name(a->state), "open_id", str_or_null(a->open_id), "scopes",
                     split(a->scopes, ','), "access_expires_at", view_time(a->access_expires_at),
                     "refresh_expires_at", view_time(a->refresh_expires_at), "reason",
                     str_or_null(a->reason), "created_at", view_time(a->created_at), "updated_at",
                     view_time(a->updated_at), "max_video_s",
                     a->max_video_s > 0 ? json_integer(a->max_video_s) : json_null());
}

json_t *view_token(const struct admin_token *k)
{
    return json_pack("{s:s, s:s, s:o, s:o}", "name", k->name, "role", admin_role_name(k->role),
                     "created_at", view_time(k->created_at), "last_used", view_time(k->last_used));
}

json_t *view_audit(const struct audit_rec *r)
{
    return json_pack("{s:I, s:o, s:s, s:s, s:o}", "seq", (json_int_t)r->seq, "time",
                     view_time(r->time), "actor", r->actor ? r->actor : "", "event",
                     r->event ? r->event : "", "detail", str_or_null(r->detail));
}
