/* lua_hooks.c - the hooks' names, tables and folds (see lua_hooks.h).
 *
 * before_publish is a fold: one `struct before` walks the rule files in
 * order, each call started from the previous one's end, holding a reference
 * to its generation (a reload may retire it meanwhile). Answers are read by
 * read_decision() under lua_pcall with rawget only. */
#include "lua_hooks.h"
#include "lua_modules.h"
#include "lua_schedule.h"

#include <jansson.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../core/account.h"
#include "../core/intake.h"
#include "../core/job.h"
#include "../core/log.h"
#include "../core/tiktok.h"

/* ---- the tables -------------------------------------------------------------------- */

static void set_str(lua_State *L, const char *k, const char *v)
{
    lua_pushstring(L, v);
    lua_setfield(L, -2, k);
}

static void set_bool(lua_State *L, const char *k, bool v)
{
    lua_pushboolean(L, v);
    lua_setfield(L, -2, k);
}

/* A comma-separated list as a Lua list. */
static void push_list(lua_State *L, const char *csv)
{
    lua_createtable(L, 4, 0);
    lua_Integer n = 0;
    for (const char *q = csv; *q;) {
        size_t l = strcspn(q, ",");
        lua_pushlstring(L, q, l);
        lua_rawseti(L, -2, ++n);
        q += l + (q[l] == ',');
    }
}

void hooks_push_job(lua_State *L, const struct job *j)
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
    for (size_t i = 0; i < sizeof strs / sizeof strs[0]; i++)
        set_str(L, strs[i].key, (const char *)j + strs[i].off);
    set_str(L, "state", job_state_name(j->state));
    set_bool(L, "final", job_state_final(j->state));
    set_str(L, "mode", j->mode == JOB_DRAFT ? "draft" : "direct");
    set_str(L, "kind", j->kind == JOB_PHOTO ? "photo" : "video");
}

static int json_p(lua_State *L)
{
    lua_push_json(L, lua_touserdata(L, 1));
    return 1;
}

void hooks_push_media(lua_State *L, const struct intake_item *it)
{
    lua_createtable(L, 0, 6);
    set_str(L, "path", it->path);
    set_str(L, "name", it->name);
    set_str(L, "folder", it->folder);
    set_str(L, "hash", it->hash);
    lua_pushinteger(L, (lua_Integer)it->size);
    lua_setfield(L, -2, "size");
    json_t *meta = it->sidecar[0] ? json_loads(it->sidecar, JSON_DECODE_ANY, NULL) : NULL;
    if (meta) { /* built under a protected call of its own: meta is freed either way */
        lua_pushcfunction(L, json_p);
        lua_pushlightuserdata(L, meta);
        int st = lua_pcall(L, 1, 1, 0);
        json_decref(meta);
        if (st != LUA_OK)
            lua_error(L);
        lua_setfield(L, -2, "meta");
    }
}

void hooks_push_account(lua_State *L, const struct account *a)
{
    lua_createtable(L, 0, 5);
    set_str(L, "name", a->name);
    set_str(L, "state", account_state_name(a->state));
    set_str(L, "reason", a->reason);
    set_str(L, "open_id", a->open_id);
    set_str(L, "scopes", a->scopes);
}

void hooks_push_creator(lua_State *L, const struct tt_creator *c)
{
    lua_createtable(L, 0, 8);
    push_list(L, c->options);
    lua_setfield(L, -2, "privacy_options");
    lua_pushinteger(L, c->max_duration);
    lua_setfield(L, -2, "max_duration");
    set_str(L, "username", c->username);
    set_str(L, "nickname", c->nickname);
    set_bool(L, "comment_disabled", c->comment_disabled);
    set_bool(L, "duet_disabled", c->duet_disabled);
    set_bool(L, "stitch_disabled", c->stitch_disabled);
}

/* ---- pushed under protection ----------------------------------------------------- */

struct arg {
    void (*push)(lua_State *L, const void *obj);
    const void *obj;
};

static int arg_p(lua_State *L)
{
    struct arg *a = lua_touserdata(L, 1);
    a->push(L, a->obj);
    return 1;
}

/* One value from push(obj), or nil when pushing it failed. */
static int push_protected(lua_State *L, void (*push)(lua_State *, const void *), const void *obj)
{
    struct arg a = {push, obj};
    lua_pushcfunction(L, arg_p);
    lua_pushlightuserdata(L, &a);
    if (lua_pcall(L, 1, 1, 0) != LUA_OK) {
        lua_pop(L, 1);
        lua_pushnil(L);
    }
    return 1;
}

static void job_v(lua_State *L, const void *o)
{
    hooks_push_job(L, o);
}

static void media_v(lua_State *L, const void *o)
{
    hooks_push_media(L, o);
}

static void account_v(lua_State *L, const void *o)
{
    hooks_push_account(L, o);
}

int hooks_arg_job(lua_State *L, void *job)
{
    return push_protected(L, job_v, job);
}

int hooks_arg_media(lua_State *L, void *item)
{
    return push_protected(L, media_v, item);
}

int hooks_arg_account(lua_State *L, void *account)
{
    return push_protected(L, account_v, account);
}

static void alert_v(lua_State *L, const void *o)
{
    const struct hook_alert *a = o;
    lua_createtable(L, 0, 3);
    lua_pushstring(L, a->kind);
    lua_setfield(L, -2, "kind");
    lua_pushstring(L, a->subject);
    lua_setfield(L, -2, "subject");
    lua_pushstring(L, a->detail);
    lua_setfield(L, -2, "detail");
}

int hooks_arg_alert(lua_State *L, void *alert)
{
    return push_protected(L, alert_v, alert);
}

/* ---- calling ---------------------------------------------------------------------- */

void hooks_logged(void *ud, const struct call_result *r)
{
    (void)ud;
    if (r->ok)
        TLOG(TLOG_DEBUG, "rule.call_done", LSTR("rule", r->rule), LSTR("fn", r->fn));
    else
        TLOG(TLOG_WARN, "rule.call_failed", LSTR("rule", r->rule), LSTR("fn", r->fn),
             LBOOL("budget", r->budget), LSTR("error", r->error));
}

size_t hooks_call(struct gen *g, size_t count, const char *fn, host_push_fn push, void *ud,
                  host_done_fn done, void *done_ud)
{
    size_t started = 0;
    for (size_t i = 0; i < count && i < gen_rule_count(g); i++)
        if (gen_rule_has(g, i, fn) &&
            gen_call(g, i, fn, push, ud, done ? done : hooks_logged, done ? done_ud : NULL) == 0)
            started++;
    return started;
}

const char *hooks_outcome(const struct job *j)
{
    return j->state == JOB_PUBLISHED || j->state == JOB_IN_INBOX ? HOOK_ON_PUBLISHED
                                                                 : HOOK_ON_FAILED;
}

/* ---- before_publish ------------------------------------------------------------------ */

struct before {
    struct gen *g; /* held */
    size_t next, count;
    const bool *stop;
    pipeline_decided_fn done;
    void *token;
    struct job j; /* as the rules see it, with what earlier rules changed */
    struct tt_creator c;
    struct post_decision dec;
};

static int push_before(lua_State *L, void *ud)
{
    struct before *b = ud;
    hooks_arg_job(L, &b->j);
    push_protected(L, (void (*)(lua_State *, const void *))hooks_push_creator, &b->c);
    return 2;
}

/* What one rule answered, copied out of its table. */
struct answer {
    bool cancel;
    double defer;
    char reason[300];
    char *caption; /* malloc'd */
    char privacy[32];
    bool has_privacy;
};

/* Read the table at 1 into the struct answer at 2: raw fields, types
 * checked; anything else is ignored. */
static int read_decision(lua_State *L)
{
    struct answer *a = lua_touserdata(L, 2);
    lua_settop(L, 2);
    static const char *const keys[] = {"reason", "cancel", "defer", "caption", "privacy"};
    for (int i = 0; i < 5; i++) {
        lua_pushstring(L, keys[i]);
        lua_rawget(L, 1);
    }
    if (lua_type(L, 3) == LUA_TSTRING)
        snprintf(a->reason, sizeof a->reason, "%s", lua_tostring(L, 3));
    a->cancel = lua_type(L, 4) == LUA_TBOOLEAN && lua_toboolean(L, 4);
    a->defer = lua_type(L, 5) == LUA_TNUMBER ? lua_tonumber(L, 5) : 0;
    if (lua_type(L, 6) == LUA_TSTRING && !(a->caption = strdup(lua_tostring(L, 6))))
        return luaL_error(L, "out of memory");
    if (lua_type(L, 7) == LUA_TSTRING) {
        snprintf(a->privacy, sizeof a->privacy, "%s", lua_tostring(L, 7));
        a->has_privacy = true;
    }
    return 0;
}

static void before_next(struct before *b);

static void before_end(struct before *b)
{
    b->done(b->token, &b->dec);
    gen_release(b->g);
    free(b->dec.caption);
    free(b);
}

/* One rule answered: nil (no opinion), or { caption=, privacy=, defer=s,
 * cancel=true, reason= }. A rule that fails is logged and has no say. */
static void before_done(void *ud, const struct call_result *r)
{
    struct before *b = ud;
    if (!r->ok) {
        hooks_logged(NULL, r);
        before_next(b);
        return;
    }
    struct answer a = {0};
    lua_State *L = r->L;
    bool read = false;
    if (r->nresults >= 1 && lua_type(L, -r->nresults) == LUA_TTABLE && lua_checkstack(L, 4)) {
        int t = lua_absindex(L, -r->nresults);
        lua_pushcfunction(L, read_decision);
        lua_pushvalue(L, t);
        lua_pushlightuserdata(L, &a);
        read = lua_pcall(L, 2, 0, 0) == LUA_OK;
        if (!read) {
            lua_pop(L, 1);
            free(a.caption);
            TLOG(TLOG_WARN, "rule.call_failed", LSTR("rule", r->rule), LSTR("fn", r->fn),
                 LSTR("error", "its answer could not be read (out of memory)"));
        }
    }
    if (!read) {
        before_next(b);
        return;
    }
    char who[160];
    snprintf(who, sizeof who, "rule:%s@gen%u", r->rule, gen_id(b->g));
    snprintf(b->dec.reason, sizeof b->dec.reason, "%s", a.reason);
    if (a.caption || a.has_privacy || a.cancel || a.defer > 0) /* b->next: past the rule asked */
        snprintf(b->dec.libs, sizeof b->dec.libs, "%s", gen_rule_libs(b->g, b->next - 1));
    if (a.caption) {
        free(b->dec.caption);
        b->dec.caption = a.caption;
        snprintf(b->j.caption, sizeof b->j.caption, "%s", a.caption);
        snprintf(b->dec.chosen_by, sizeof b->dec.chosen_by, "%s", who);
    }
    if (a.has_privacy) {
        snprintf(b->dec.privacy, sizeof b->dec.privacy, "%s", a.privacy);
        snprintf(b->j.privacy, sizeof b->j.privacy, "%s", a.privacy);
        snprintf(b->dec.chosen_by, sizeof b->dec.chosen_by, "%s", who);
    }
    if (a.cancel || a.defer > 0) { /* the last word: no more rules are asked */
        b->dec.cancel = a.cancel;
        b->dec.defer = a.cancel                  ? 0
                       : a.defer < 1             ? 1
                       : a.defer > 366 * 86400.0 ? 366 * 86400.0
                                                 : a.defer;
        snprintf(b->dec.chosen_by, sizeof b->dec.chosen_by, "%s", who);
        before_end(b);
        return;
    }
    before_next(b);
}

static void before_next(struct before *b)
{
    while (b->next < b->count && !(b->stop && *b->stop)) {
        size_t i = b->next++;
        if (gen_rule_has(b->g, i, HOOK_BEFORE) &&
            gen_call(b->g, i, HOOK_BEFORE, push_before, b, before_done, b) == 0)
            return; /* before_done goes on (it may have already) */
    }
    before_end(b);
}

/* A post a rule planned with its account's declared privacy, which the
 * creator does not offer now: the first of the account's preferred levels
 * that is offered, recorded as the declaring rule's choice. */
static void privacy_fallback(struct before *b)
{
    const struct job *j = &b->j;
    const char *offered = b->c.options;
    const struct acct_decl *a = decls_account(decls_of_gen(b->g), j->account);
    if (!a || a->nprefer < 2 || j->mode != JOB_DIRECT || strncmp(j->chosen_by, "rule:", 5) ||
        strcmp(j->privacy, a->privacy) || tt_privacy_offered(offered, j->privacy))
        return;
    for (int i = 1; i < a->nprefer; i++) {
        if (!tt_privacy_offered(offered, a->prefer[i]))
            continue;
        snprintf(b->dec.privacy, sizeof b->dec.privacy, "%s", a->prefer[i]);
        snprintf(b->j.privacy, sizeof b->j.privacy, "%s", a->prefer[i]);
        snprintf(b->dec.chosen_by, sizeof b->dec.chosen_by, "rule:%s@gen%u", a->rule, gen_id(b->g));
        TLOG(TLOG_INFO, "job.privacy_fallback", LINT("job", j->id), LSTR("account", j->account),
             LSTR("wanted", a->privacy), LSTR("took", a->prefer[i]), LSTR("offered", offered),
             LSTR("note", strcmp(offered, "SELF_ONLY") == 0
                              ? "an app TikTok has not audited may only post SELF_ONLY to "
                                "private accounts"
                              : ""));
        return;
    }
}

bool hooks_before_wanted(struct gen *g, const char *account)
{
    const struct acct_decl *a = decls_account(decls_of_gen(g), account);
    if (a && a->nprefer > 1)
        return true;
    for (size_t i = 0; i < gen_rule_count(g); i++)
        if (gen_rule_has(g, i, HOOK_BEFORE))
            return true;
    return false;
}

int hooks_before_publish(struct gen *g, size_t count, const struct job *j,
                         const struct tt_creator *c, const bool *stop, pipeline_decided_fn done,
                         void *token)
{
    struct before *b = calloc(1, sizeof *b);
    if (!b)
        return TIKD_ENOMEM;
    b->g = g;
    gen_retain(g);
    b->count = count;
    b->stop = stop;
    b->done = done;
    b->token = token;
    b->j = *j;
    b->c = *c;
    privacy_fallback(b);
    before_next(b);
    return 0;
}
