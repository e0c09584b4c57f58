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
#include "lua_args.h"
#include "lua_hooks.h"
#include "lua_host.h"
#include "lua_modules.h"
#include "lua_schedule.h"

#include <ev.h>
#include <lauxlib.h>
#include <limits.h>
#include <stdint.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "../core/audit.h"
#include "../core/clock.h"
#include "../core/job.h"
#include "../core/ledger.h"
#include "../core/log.h"
#include "../core/media.h"
#include "../core/post.h"
#include "../core/store.h"

#define AWAIT_POLL 0.25

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
    return host_media_file(o, media, out, n);
}

static int refuse(lua_State *L, const char *problem)
{
    lua_pushnil(L);
    lua_pushstring(L, problem);
    return 2;
}

/* A plan's state, kept across the waits for the video's hash and for the
 * media probe (a userdata on the call's stack: freed by the GC, whatever
 * happens). */
struct upload_plan {
    struct post_req r;
    char hash[65];
    struct ledger_fp fp;
    bool hashing, hashed; /* a wait for the hash began; it ended: ok, or why */
    bool probing, probed; /* the same for the probe */
    bool ok;
    char why[700];
    char scope[300]; /* the key's: the rule file within its tenant */
    struct media_info mi;
};

/* A wait for the media probe (malloc'd: freed when it ends or is cancelled). */
struct probe_wait {
    struct call *call;
    uint64_t ticket;
    struct media_probe *p;
    struct upload_plan *up;
};

/* A wait for the video's hash (malloc'd: freed when it ends or is cancelled). */
struct hash_wait {
    struct call *call;
    uint64_t ticket;
    struct ledger_hashing *h;
    struct upload_plan *up;
};

static bool known(struct store *s, const char *path)
{
    struct stat st;
    if (stat(path, &st) != 0)
        return true; /* nothing to read: the planner says what is wrong */
    struct ledger_fp fp = ledger_fp_of(&st);
    return ledger_known(s, path, &fp, NULL);
}

static void hash_wait_cancel(void *ud)
{
    struct hash_wait *hw = ud;
    ledger_hash_cancel(hw->h);
    free(hw);
}

static int push_nothing(lua_State *L, void *ud)
{
    (void)L;
    (void)ud;
    return 0;
}

static void hashed(void *ud, int rc, const char *hash, const struct ledger_fp *fp, const char *why)
{
    struct hash_wait *hw = ud;
    struct upload_plan *up = hw->up;
    up->hashed = true;
    up->ok = rc == 0;
    if (rc == 0) {
        memcpy(up->hash, hash, sizeof up->hash);
        up->fp = *fp;
        up->r.hash = up->hash;
        up->r.hashed_fp = &up->fp;
    } else {
        snprintf(up->why, sizeof up->why, "%s", why);
    }
    struct call *c = hw->call;
    uint64_t t = hw->ticket;
    free(hw);
    host_wake(c, t, push_nothing, NULL);
}

/* Plan up->r (its video's identity known or not) and answer the rule. */
static int finish(lua_State *L, struct upload_plan *up)
{
    const struct host_opts *o = host_opts_of(L);
    struct post_req *r = &up->r;
    struct tikd_err e = {0};
    if (post_plan(host_store(L, "tikd.upload"), r, &e) != 0)
        return refuse(L, r->problem[0] ? r->problem : e.msg);
    if (!r->existing && o->jobs_changed)
        o->jobs_changed(o->jobs_ud);
    lua_pushinteger(L, (lua_Integer)r->j->id);
    if (r->sched && !r->approval && !r->existing) {
        lua_pushnumber(L, r->slot);
        return 2;
    }
    return 1;
}

static void probe_wait_cancel(void *ud)
{
    struct probe_wait *pw = ud;
    media_probe_cancel(pw->p);
    free(pw);
}

static void media_read(void *ud, const struct media_info *mi, const struct tikd_err *e)
{
    struct probe_wait *pw = ud;
    struct upload_plan *up = pw->up;
    up->probed = true;
    up->ok = e->code == 0;
    if (up->ok) {
        up->mi = *mi;
        up->r.probed = &up->mi;
    } else {
        snprintf(up->why, sizeof up->why, "%s", e->msg);
    }
    struct call *c = pw->call;
    uint64_t t = pw->ticket;
    free(pw);
    host_wake(c, t, push_nothing, NULL);
}

static int post_k(lua_State *L, int status, lua_KContext ctx);

/* The next wait of a plan whose call can wait (the loop's): the video's
 * hash (read a slice at a time, unless the ledger knows the file), then
 * the media probe (in its own process); then the plan. A hash that cannot
 * be read here is left to the planner; a probe that cannot start refuses
 * the post (the planner would wait for it on the loop). */
static int go_on(lua_State *L, int upi)
{
    struct upload_plan *up = lua_touserdata(L, upi);
    struct job *j = up->r.j;
    bool local = j->kind == JOB_VIDEO && j->media[0] == '/';
    struct call *c = local ? host_can_wait(L) : NULL;
    struct tikd_err e = {0};
    if (local && !c && host_opts_of(L)->loop) /* the planner would wait for the probe here */
        return luaL_error(L, "tikd.upload.post of a video waits for the media probe: call it from "
                             "a hook or a timer, not inside a sort or metamethod");
    if (c && !up->hashing) {
        up->hashing = true;
        struct hash_wait *hw =
            !known(host_store(L, "tikd.upload"), j->media) ? calloc(1, sizeof *hw) : NULL;
        if (hw && ledger_hash_start(host_loop(L, "tikd.upload.post"), j->media, hashed, hw, &hw->h,
                                    &e) == 0) {
            hw->call = c;
            hw->up = up;
            hw->ticket = host_wait(c, hash_wait_cancel, hw);
            return lua_yieldk(L, 0, (lua_KContext)upi, post_k);
        }
        free(hw);
    }
    if (c && !up->probing) {
        up->probing = true;
        tikd_err_clear(&e);
        int now = media_probe_now(j->media, &up->mi, &e); /* known at once: no wait */
        if (now == 0)
            up->r.probed = &up->mi;
        else if (now < 0)
            return refuse(L, e.msg);
    }
    if (c && up->probing && !up->r.probed) {
        struct probe_wait *pw = calloc(1, sizeof *pw);
        if (pw && (pw->p = media_probe_start(host_loop(L, "tikd.upload.post"), j->media, media_read,
                                             pw, &e))) {
            pw->call = c;
            pw->up = up;
            pw->ticket = host_wait(c, probe_wait_cancel, pw);
            return lua_yieldk(L, 0, (lua_KContext)upi, post_k);
        }
        free(pw); /* never probed on the loop instead: refused, with why */
        return refuse(L, e.msg[0] ? e.msg : "out of memory");
    }
    return finish(L, up);
}

/* Back from a wait (the plan's userdata is at ctx). */
static int post_k(lua_State *L, int status, lua_KContext ctx)
{
    (void)status;
    struct upload_plan *up = lua_touserdata(L, (int)ctx);
    if (!up || !(up->hashed || up->probed))
        return luaL_error(L, "tikd.upload.post: resumed without what it waited for");
    if (!up->ok)
        return refuse(L, up->why);
    return go_on(L, (int)ctx);
}

/* tikd.upload.post{...} -> job id [, slot], or nil and the problems */
static int l_post(lua_State *L)
{
    struct args a = args_table(L, 1, "tikd.upload.post");
    const struct host_opts *o = host_opts_of(L);
    host_store(L, "tikd.upload"); /* raises before any work when there is no database */
    const char *account = args_str(&a, "account", NULL), *media = args_str(&a, "media", NULL);
    const char *caption = args_str(&a, "caption", NULL), *privacy = args_str(&a, "privacy", NULL);
    const char *description = args_str(&a, "description", NULL);
    const char *key = args_str(&a, "key", NULL), *sched_name = args_str(&a, "schedule", NULL);
    bool photo = args_push(&a, "images", LUA_TTABLE) == LUA_TTABLE;
    int images = lua_gettop(L);
    if (!account || (!media && !photo) || (media && photo))
        return luaL_error(L, "tikd.upload.post: account, and media (a video) or images (a photo "
                             "post), are required");
    if (key && (strlen(key) == 0 || strlen(key) > 128))
        return luaL_error(L, "tikd.upload.post: key must be 1 to 128 characters");
    if (o->plans_for && !o->plans_for(o->jobs_ud, account)) {
        /* every node runs the same rules: the holder's call is the one */
        char why[200];
        snprintf(why, sizeof why,
                 "account %.64s is held by another node of the cluster: its rules plan for it",
                 account);
        return refuse(L, why);
    }
    const struct decls *d = decls_of(L);
    const struct schedule *sched = NULL;
    if (sched_name && !(sched = decls_schedule(d, sched_name)))
        return luaL_error(L, "tikd.upload.post: no schedule named '%s'", sched_name);
    if (sched && strcmp(sched->account, account) != 0)
        return luaL_error(L, "tikd.upload.post: schedule '%s' is for account %s, not %s",
                          sched_name, sched->account, account);
    /* the account's declared defaults fill what the call leaves out */
    const struct acct_decl *ad = decls_account(d, account);
    bool draft = args_bool(&a, "draft", false), approval = args_bool(&a, "approval", false);
    if (!privacy && ad && ad->privacy[0] && !draft)
        privacy = ad->privacy;
    if (!caption && ad && ad->caption)
        caption = ad->caption;
    /* every field read (and type-checked, which may raise) before allocating */
    struct job_options opt = {
        .disable_comment = args_bool(&a, "disable_comment", false),
        .disable_duet = args_bool(&a, "disable_duet", false),
        .disable_stitch = args_bool(&a, "disable_stitch", false),
        .brand_content = args_bool(&a, "brand_content", false),
        .brand_organic = args_bool(&a, "brand_organic", false),
        .is_aigc = args_bool(&a, "is_aigc", false),
        .auto_add_music = args_bool(&a, "auto_music", false),
        .cover_ms = (int)args_int(&a, "cover_ms", -1, INT32_MIN, INT32_MAX),
    };
    int cover_index = (int)args_int(&a, "cover_index", 0, INT32_MIN, INT32_MAX);
    double at = args_num(&a, "at", 0, 0, 1e12), after = args_num(&a, "after", clock_now(), 0, 1e12);
    double deadline = args_num(&a, "approval_deadline", 0, 0, 1e12);
    bool again = args_bool(&a, "again", false);
    lua_Integer nimages = photo ? (lua_Integer)lua_rawlen(L, images) : 0;
    struct job *j = lua_newuserdatauv(L, sizeof *j, 0); /* freed by the GC, whatever raises */
    memset(j, 0, sizeof *j);
    const char *problem = NULL;
    char one[1200];
    if ((caption && strlen(caption) >= sizeof j->caption) ||
        (privacy && strlen(privacy) >= sizeof j->privacy) ||
        (description && strlen(description) >= sizeof j->description))
        problem = "the caption, description or privacy is too long";
    else if (media && (problem = resolve_media(o, media, j->media, sizeof j->media)))
        snprintf(one, sizeof one, "media %.900s %s", media, problem), problem = one;
    for (lua_Integer i = 1; photo && !problem && i <= nimages; i++) {
        lua_rawgeti(L, images, i);
        const char *img = lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1) : NULL;
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
    if (problem)
        return refuse(L, problem);
    snprintf(j->account, sizeof j->account, "%s", account);
    snprintf(j->caption, sizeof j->caption, "%s", caption ? caption : "");
    snprintf(j->privacy, sizeof j->privacy, "%s", privacy ? privacy : "");
    snprintf(j->description, sizeof j->description, "%s", description ? description : "");
    j->kind = photo ? JOB_PHOTO : JOB_VIDEO;
    j->cover_index = cover_index;
    j->mode = draft ? JOB_DRAFT : JOB_DIRECT;
    j->opt = opt;
    host_who(L, j->chosen_by, sizeof j->chosen_by);
    snprintf(j->libs, sizeof j->libs, "%s", host_rule_libs(L));
    struct upload_plan *up = lua_newuserdatauv(L, sizeof *up, 0);
    int upi = lua_gettop(L);
    memset(up, 0, sizeof *up);
    /* a key is the rule file's own, within its tenant */
    snprintf(up->scope, sizeof up->scope, "%s%s%s", host_tenant(L) ? host_tenant(L) : "",
             host_tenant(L) ? ":" : "", host_rule(L));
    up->r = (struct post_req){.j = j,
                              .at = at,
                              .approval = approval,
                              .deadline = deadline,
                              .sched = sched,
                              .after = after,
                              .tenant = host_tenant(L),
                              .key_scope = up->scope,
                              .key = key,
                              .again = again};
    /* a video is hashed and probed while this call waits: a large file
     * stalls nothing, a hostile one costs the probe's process */
    return go_on(L, upi);
}

/* tikd.upload.status(id) -> job table, or nil and a message */
struct skip_ctx {
    const char *who;
    char detail[1200];
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
    struct args a = args_table(L, 1, "tikd.upload.skip");
    const char *account = args_str(&a, "account", NULL), *media = args_str(&a, "media", NULL);
    const char *reason = args_str(&a, "reason", NULL);
    if (!reason || !*reason)
        return luaL_error(L, "tikd.upload.skip: a reason is required");
    struct store *s = host_store(L, "tikd.upload");
    char who[200];
    host_who(L, who, sizeof who);
    struct skip_ctx sc = {who, ""};
    snprintf(sc.detail, sizeof sc.detail,
             "account=%.64s media=\"%.300s\" reason=\"%.400s\" tenant=%s libs=%.150s",
             account ? account : "-", media ? media : "-", reason,
             host_tenant(L) ? host_tenant(L) : "-", *host_rule_libs(L) ? host_rule_libs(L) : "-");
    struct tikd_err e = {0};
    if (store_write(s, skip_txn, &sc, &e) != 0)
        return luaL_error(L, "tikd.upload.skip: %s", e.msg);
    TLOG(TLOG_INFO, "post.skipped", LSTR("by", who), LSTR("account", account ? account : "-"),
         LSTR("media", media ? media : "-"), LSTR("reason", reason));
    lua_pushboolean(L, 1);
    return 1;
}

/* Job id as the rules of L may see it: their tenant's, or none. */
static bool read_own_job(lua_State *L, struct store *s, lua_Integer id, struct job *j)
{
    const char *tenant = host_tenant(L);
    return id > 0 && job_read(s, (uint64_t)id, j) == 0 && (!tenant || !strcmp(j->tenant, tenant));
}

static int l_status(lua_State *L)
{
    lua_Integer id = luaL_checkinteger(L, 1);
    struct job *j = malloc(sizeof *j);
    if (!j)
        return luaL_error(L, "out of memory");
    if (!read_own_job(L, host_store(L, "tikd.upload"), id, j)) {
        free(j);
        lua_pushnil(L);
        lua_pushfstring(L, "no job %I", id);
        return 2;
    }
    hooks_push_job(L, j);
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
    hooks_push_job(L, &a->j);
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
    if (!read_own_job(L, s, id, &a->j)) {
        free(a);
        lua_pushnil(L);
        lua_pushfstring(L, "no job %I", id);
        return 2;
    }
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
