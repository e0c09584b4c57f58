/* lua_upload.c - tikd.upload: rules plan posts through the same job ledger
 * as `tikd post`, so a rule gets the same checks and the same exactly-once
 * pipeline.
 *
 *   local id, err = tikd.upload.post{ account = "acme", media = "/srv/media/clip.mp4",
 *       privacy = "SELF_ONLY", caption = "...", key = "clip-2026-12-01" }
 *   local job = tikd.upload.await(id, 600)   -- waits without blocking anything
 *
 * Media must lie under a configured media root. `key` makes a plan
 * idempotent: the same key returns the same job, so a rule that runs again
 * (a reload, a restart) never posts twice. The job records the rule file
 * and generation that chose its privacy and settings. */
#include "lua_host.h"
#include "lua_modules.h"
#include "lua_schedule.h"

#include <ev.h>
#include <lauxlib.h>
#include <limits.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../core/account.h"
#include "../core/audit.h"
#include "../core/clock.h"
#include "../core/job.h"
#include "../core/log.h"
#include "../core/store.h"

#define AWAIT_POLL 0.25

static bool opt_bool(lua_State *L, int t, const char *k)
{
    lua_getfield(L, t, k);
    bool v = lua_toboolean(L, -1);
    lua_pop(L, 1);
    return v;
}

static const char *opt_str(lua_State *L, int t, const char *k)
{
    lua_getfield(L, t, k);
    const char *v = lua_isnil(L, -1) ? NULL : luaL_checkstring(L, -1);
    lua_pop(L, 1); /* the string stays alive in the table */
    return v;
}

static double opt_num(lua_State *L, int t, const char *k, double dflt)
{
    lua_getfield(L, t, k);
    double v = lua_isnil(L, -1) ? dflt : luaL_checknumber(L, -1);
    lua_pop(L, 1);
    return v;
}

/* Is path (resolved) under one of the media roots? */
static bool under_root(const struct host_opts *o, const char *path)
{
    for (size_t i = 0; i < o->nroots; i++) {
        char root[PATH_MAX];
        if (!realpath(o->media_roots[i], root))
            continue;
        size_t l = strlen(root);
        if (strncmp(path, root, l) == 0 && path[l] == '/')
            return true;
    }
    return false;
}

struct plan_ctx {
    struct job *j;
    const char *rule; /* keys are the rule file's own */
    const char *key;
    const struct schedule *sched; /* book its next free slot after `after` */
    double after, slot;
    uint64_t existing;
    const char *problem;
    struct tikd_err e;
};

static int plan_txn(struct store_txn *t, void *ctx)
{
    struct plan_ctx *pc = ctx;
    char k[600];
    size_t kl = 0;
    pc->existing = 0;
    if (pc->key) {
        int n = snprintf(k, sizeof k, "jobkey:%s%c%s", pc->rule, '\0', pc->key);
        kl = n > 0 && (size_t)n < sizeof k ? (size_t)n : 0;
        struct store_val v;
        if (kl && store_get(t, STORE_DB_META, k, kl, &v) == 0 && v.n == 8) {
            pc->existing = store_be64_get(v.p);
            return 0;
        }
    }
    struct account a;
    if (account_get(t, pc->j->account, &a) != 0) {
        pc->problem = "no such account";
        return TIKD_ENOTFOUND;
    }
    if (pc->sched) { /* the slot and the job in one transaction: never booked twice */
        double due;
        int rc = slots_next_free(t, pc->sched, pc->after, &pc->slot, &due, &pc->e);
        if (rc != 0) {
            pc->problem = pc->e.msg;
            return rc;
        }
        pc->j->due_at = pc->j->planned_at = due;
        pc->j->booked_slot = pc->slot;
    }
    int rc = job_create(t, pc->j);
    if (rc == 0 && pc->sched && (rc = slots_take(t, pc->sched, pc->slot, pc->j->id, &pc->e)))
        pc->problem = pc->e.msg;
    if (rc == 0 && kl) {
        unsigned char id[8];
        store_be64_put(id, pc->j->id);
        rc = store_put(t, STORE_DB_META, k, kl, id, 8);
    }
    return rc;
}

/* The media of a post: a file under a media root, or an https URL TikTok
 * pulls. Writes the resolved form into out; NULL, or the problem. */
static const char *resolve_media(const struct host_opts *o, const char *media, char *out, size_t n)
{
    if (strncmp(media, "https://", 8) == 0) {
        if (strlen(media) >= n)
            return "the URL is too long";
        memcpy(out, media, strlen(media) + 1);
        return NULL;
    }
    char real[PATH_MAX];
    if (!realpath(media, real) || !under_root(o, real) || strlen(real) >= n)
        return "is not a readable file under media_roots";
    memcpy(out, real, strlen(real) + 1);
    return NULL;
}

/* tikd.upload.post{...} -> job id [, slot], or nil and the problems */
static int l_post(lua_State *L)
{
    luaL_checktype(L, 1, LUA_TTABLE);
    const struct host_opts *o = host_opts_of(L);
    struct store *s = host_store(L, "tikd.upload");
    const char *account = opt_str(L, 1, "account"), *media = opt_str(L, 1, "media");
    const char *caption = opt_str(L, 1, "caption"), *privacy = opt_str(L, 1, "privacy");
    const char *description = opt_str(L, 1, "description");
    const char *key = opt_str(L, 1, "key"), *sched_name = opt_str(L, 1, "schedule");
    lua_getfield(L, 1, "images");
    bool photo = !lua_isnil(L, -1);
    if (photo && !lua_istable(L, -1))
        return luaL_error(L, "tikd.upload.post: images must be a list of paths or https URLs");
    int images = lua_gettop(L);
    if (!account || (!media && !photo) || (media && photo))
        return luaL_error(L, "tikd.upload.post: account, and media (a video) or images (a photo "
                             "post), are required");
    if (key && (strlen(key) == 0 || strlen(key) > 128))
        return luaL_error(L, "tikd.upload.post: key must be 1 to 128 characters");
    const struct decls *d = decls_of(L);
    const struct schedule *sched = NULL;
    if (sched_name && !(sched = decls_schedule(d, sched_name)))
        return luaL_error(L, "tikd.upload.post: no schedule named '%s'", sched_name);
    if (sched && strcmp(sched->account, account) != 0)
        return luaL_error(L, "tikd.upload.post: schedule '%s' is for account %s, not %s",
                          sched_name, sched->account, account);
    /* the account's declared defaults fill what the call leaves out */
    const struct acct_decl *ad = decls_account(d, account);
    bool draft = opt_bool(L, 1, "draft"), approval = opt_bool(L, 1, "approval");
    if (!privacy && ad && ad->privacy[0] && !draft)
        privacy = ad->privacy;
    if (!caption && ad && ad->caption)
        caption = ad->caption;
    /* every field read (and type-checked, which may raise) before allocating */
    struct job_options opt = {
        .disable_comment = opt_bool(L, 1, "disable_comment"),
        .disable_duet = opt_bool(L, 1, "disable_duet"),
        .disable_stitch = opt_bool(L, 1, "disable_stitch"),
        .brand_content = opt_bool(L, 1, "brand_content"),
        .brand_organic = opt_bool(L, 1, "brand_organic"),
        .is_aigc = opt_bool(L, 1, "is_aigc"),
        .auto_add_music = opt_bool(L, 1, "auto_music"),
        .cover_ms = (int)opt_num(L, 1, "cover_ms", -1),
    };
    int cover_index = (int)opt_num(L, 1, "cover_index", 0);
    double at = opt_num(L, 1, "at", 0), after = opt_num(L, 1, "after", clock_now());
    double deadline = opt_num(L, 1, "approval_deadline", 0);
    struct job *j = calloc(1, sizeof *j);
    if (!j)
        return luaL_error(L, "tikd.upload.post: out of memory");
    const char *problem = NULL;
    char one[1200];
    if ((caption && strlen(caption) >= sizeof j->caption) ||
        (privacy && strlen(privacy) >= sizeof j->privacy) ||
        (description && strlen(description) >= sizeof j->description))
        problem = "the caption, description or privacy is too long";
    else if (media && (problem = resolve_media(o, media, j->media, sizeof j->media)))
        snprintf(one, sizeof one, "media %.900s %s", media, problem), problem = one;
    for (lua_Integer i = 1; photo && !problem && i <= luaL_len(L, images); i++) {
        lua_rawgeti(L, images, i);
        const char *img = lua_tostring(L, -1);
        char res[1024];
        const char *why = img ? resolve_media(o, img, res, sizeof res) : "is not a string";
        size_t have = strlen(j->images);
        if (why)
            snprintf(one, sizeof one, "image %d %s", (int)i, why), problem = one;
        else if (have + strlen(res) + 2 > sizeof j->images)
            problem = "too many or too long images";
        else
            snprintf(j->images + have, sizeof j->images - have, "%s%s", have ? "\n" : "", res);
        lua_pop(L, 1);
    }
    if (problem) {
        free(j);
        lua_pushnil(L);
        lua_pushstring(L, problem);
        return 2;
    }
    snprintf(j->account, sizeof j->account, "%s", account);
    snprintf(j->caption, sizeof j->caption, "%s", caption ? caption : "");
    snprintf(j->privacy, sizeof j->privacy, "%s", privacy ? privacy : "");
    snprintf(j->description, sizeof j->description, "%s", description ? description : "");
    j->kind = photo ? JOB_PHOTO : JOB_VIDEO;
    j->cover_index = cover_index;
    j->mode = draft ? JOB_DRAFT : JOB_DIRECT;
    j->opt = opt;
    j->planned_at = at;
    if (approval) {
        j->planned_at = at > 0 ? at : clock_now();
        j->due_at = deadline > 0 ? deadline : j->planned_at + 86400;
        j->state = JOB_AWAITING_APPROVAL;
        snprintf(j->reason, sizeof j->reason, "waits for an operator's approval");
    } else {
        j->due_at = at;
    }
    snprintf(j->chosen_by, sizeof j->chosen_by, "rule:%s@gen%u", host_rule(L), host_gen_id(L));
    char why[2000];
    if (job_validate(j, why, sizeof why) > 0) {
        free(j);
        lua_pushnil(L);
        lua_pushstring(L, why);
        return 2;
    }
    struct plan_ctx pc = {j, host_rule(L), key, approval ? NULL : sched, after, 0, 0, NULL, {0}};
    int rc = store_write(s, plan_txn, &pc, &pc.e);
    uint64_t id = pc.existing ? pc.existing : j->id;
    free(j);
    if (rc != 0) {
        lua_pushnil(L);
        lua_pushstring(L, pc.problem ? pc.problem : pc.e.msg);
        return 2;
    }
    if (!pc.existing && o->jobs_changed)
        o->jobs_changed(o->jobs_ud);
    lua_pushinteger(L, (lua_Integer)id);
    if (pc.sched && !pc.existing) {
        lua_pushnumber(L, pc.slot);
        return 2;
    }
    return 1;
}

void lua_push_job(lua_State *L, const struct job *j)
{
    lua_createtable(L, 0, 12);
    lua_pushinteger(L, (lua_Integer)j->id);
    lua_setfield(L, -2, "id");
    static const struct {
        const char *key;
        size_t off;
    } strs[] = {
        {"account", offsetof(struct job, account)},
        {"caption", offsetof(struct job, caption)},
        {"privacy", offsetof(struct job, privacy)},
        {"reason", offsetof(struct job, reason)},
        {"publish_id", offsetof(struct job, publish_id)},
        {"post_ids", offsetof(struct job, post_ids)}, /* exact: strings, never rounded numbers */
        {"chosen_by", offsetof(struct job, chosen_by)},
    };
    for (size_t i = 0; i < sizeof strs / sizeof strs[0]; i++) {
        lua_pushstring(L, (const char *)j + strs[i].off);
        lua_setfield(L, -2, strs[i].key);
    }
    lua_pushstring(L, job_state_name(j->state));
    lua_setfield(L, -2, "state");
    lua_pushboolean(L, job_state_final(j->state));
    lua_setfield(L, -2, "final");
    lua_pushstring(L, j->mode == JOB_DRAFT ? "draft" : "direct");
    lua_setfield(L, -2, "mode");
    lua_pushstring(L, j->kind == JOB_PHOTO ? "photo" : "video");
    lua_setfield(L, -2, "kind");
}

/* tikd.upload.status(id) -> job table, or nil and a message */
struct skip_ctx {
    const char *who;
    char detail[900];
};

static int skip_txn(struct store_txn *t, void *ctx)
{
    struct skip_ctx *sc = ctx;
    return audit_append(t, sc->who, "post.skipped", sc->detail);
}

/* tikd.upload.skip{ account=, media=, reason= } -> true: a deliberate "not
 * this one", on the record (audit log) with the rule and generation. */
static int l_skip(lua_State *L)
{
    luaL_checktype(L, 1, LUA_TTABLE);
    const char *account = opt_str(L, 1, "account"), *media = opt_str(L, 1, "media");
    const char *reason = opt_str(L, 1, "reason");
    if (!reason || !*reason)
        return luaL_error(L, "tikd.upload.skip: a reason is required");
    struct store *s = host_store(L, "tikd.upload");
    char who[200];
    snprintf(who, sizeof who, "rule:%s@gen%u", host_rule(L), host_gen_id(L));
    struct skip_ctx sc = {who, ""};
    snprintf(sc.detail, sizeof sc.detail, "account=%.64s media=\"%.300s\" reason=\"%.400s\"",
             account ? account : "-", media ? media : "-", reason);
    struct tikd_err e = {0};
    if (store_write(s, skip_txn, &sc, &e) != 0)
        return luaL_error(L, "tikd.upload.skip: %s", e.msg);
    TLOG(TLOG_INFO, "post.skipped", LSTR("by", who), LSTR("account", account ? account : "-"),
         LSTR("media", media ? media : "-"), LSTR("reason", reason));
    lua_pushboolean(L, 1);
    return 1;
}

static int l_status(lua_State *L)
{
    lua_Integer id = luaL_checkinteger(L, 1);
    struct job *j = malloc(sizeof *j);
    if (!j)
        return luaL_error(L, "out of memory");
    if (id <= 0 || job_read(host_store(L, "tikd.upload"), (uint64_t)id, j) != 0) {
        free(j);
        lua_pushnil(L);
        lua_pushfstring(L, "no job %I", id);
        return 2;
    }
    lua_push_job(L, j);
    free(j);
    return 1;
}

struct awaiter {
    ev_timer w;
    struct ev_loop *loop;
    struct store *s;
    struct call *call;
    uint64_t ticket, id;
    double deadline;
    struct job j;
    bool timed_out;
};

static void awaiter_cancel(void *ud)
{
    struct awaiter *a = ud;
    ev_timer_stop(a->loop, &a->w);
    free(a);
}

static int push_result(lua_State *L, void *ud)
{
    struct awaiter *a = ud;
    if (a->timed_out) {
        lua_pushnil(L);
        lua_pushfstring(L, "job %I is not final yet (%s)", (lua_Integer)a->id,
                        job_state_name(a->j.state));
        return 2;
    }
    lua_push_job(L, &a->j);
    return 1;
}

static void on_poll(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)revents;
    struct awaiter *a = (struct awaiter *)w;
    bool have = job_read(a->s, a->id, &a->j) == 0;
    a->timed_out = clock_now() >= a->deadline;
    if (have && !job_state_final(a->j.state) && !a->timed_out)
        return; /* look again at the next tick */
    ev_timer_stop(loop, w);
    struct call *c = a->call;
    uint64_t t = a->ticket;
    host_wake(c, t, push_result, a);
    free(a);
}

/* tikd.upload.await(id [, timeout_s]) -> the final job table, or nil and a
 * message on timeout; the calling coroutine waits on the loop. */
static int l_await(lua_State *L)
{
    lua_Integer id = luaL_checkinteger(L, 1);
    lua_Number timeout = luaL_optnumber(L, 2, 3600);
    luaL_argcheck(L, timeout >= 0 && timeout <= 31622400, 2, "0 to 366 days");
    struct store *s = host_store(L, "tikd.upload");
    struct call *c = host_check_wait(L, "tikd.upload.await");
    struct awaiter *a = calloc(1, sizeof *a);
    if (!a)
        return luaL_error(L, "out of memory");
    a->loop = host_loop(L, "tikd.upload.await");
    a->s = s;
    a->call = c;
    a->id = (uint64_t)id;
    a->deadline = clock_now() + timeout;
    ev_timer_init(&a->w, on_poll, 0., AWAIT_POLL);
    ev_timer_start(a->loop, &a->w);
    a->ticket = host_wait(c, awaiter_cancel, a);
    return lua_yield(L, 0);
}

int luaopen_tikd_upload(lua_State *L)
{
    static const luaL_Reg fns[] = {
        {"post", l_post}, {"skip", l_skip}, {"status", l_status}, {"await", l_await}, {NULL, NULL}};
    luaL_newlib(L, fns);
    return 1;
}
