/* lua_ratelimit.c - tikd.ratelimit: rules declare limiters of their own and
 * read TikTok's budgets.
 *
 *   local hourly = tikd.ratelimit.new("client-x", { count = 3, per = 3600 })
 *   local ok, at = hourly:take()    -- true, now | false, when one frees
 *   local ok, at = hourly:check()   -- the same question, nothing taken
 *   local b = tikd.ratelimit.budget("acme", "daily_posts")
 *   -- { used = 4, cap = 15, held = 1, next_at = <epoch s>, limited = true }
 *
 * A limiter is GCRA state in LMDB keyed by the calling rule file and its
 * name: it survives restarts and reloads, and one rule file cannot reach
 * another's. The userdata holds no C resource, only the name and the rate. */
#include "lua_args.h"
#include "lua_host.h"
#include "lua_modules.h"

#include <lauxlib.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "../core/account.h"
#include "../core/clock.h"
#include "../core/ratelimit.h"
#include "../core/store.h"

#define MT "tikd.ratelimit"

struct limiter {
    struct rl_rate rate;
    char name[128];
};

/* tikd.ratelimit.new(name, {count=, per=, burst=1}) -> limiter */
static int l_new(lua_State *L)
{
    size_t nl;
    const char *name = luaL_checklstring(L, 1, &nl);
    luaL_argcheck(L, nl > 0 && nl < sizeof((struct limiter *)0)->name && !memchr(name, 0, nl), 1,
                  "a name of 1 to 127 bytes");
    struct args a = args_table(L, 2, "tikd.ratelimit.new");
    struct rl_rate r;
    r.count = args_num(&a, "count", -1, 1, 1e9);
    r.per = args_num(&a, "per", -1, 0.001, 366.0 * 86400);
    r.burst = args_num(&a, "burst", 1, 1, 1e9);
    if (r.count < 0 || r.per < 0)
        return luaL_error(L, "tikd.ratelimit.new: count and per are required (count must be "
                             "from 1, per from 0.001 s)");
    struct limiter *l = lua_newuserdatauv(L, sizeof *l, 0);
    l->rate = r;
    memcpy(l->name, name, nl + 1);
    luaL_setmetatable(L, MT);
    return 1;
}

struct named_op {
    const char *owner;
    struct limiter *l;
    bool take, ok;
    double at;
};

static int named_txn(struct store_txn *t, void *ctx)
{
    struct named_op *o = ctx;
    return rl_named(t, o->owner, o->l->name, &o->l->rate, clock_now(), o->take, &o->ok, &o->at);
}

static int ask(lua_State *L, bool take)
{
    struct limiter *l = luaL_checkudata(L, 1, MT);
    struct store *s = host_store(L, "tikd.ratelimit");
    struct named_op o = {host_rule(L), l, take, false, 0};
    struct tikd_err e = {0};
    int rc = take ? store_write(s, named_txn, &o, &e) : store_read(s, named_txn, &o, &e);
    if (rc != 0)
        return luaL_error(L, "tikd.ratelimit: %s", e.msg[0] ? e.msg : "store failed");
    lua_pushboolean(L, o.ok);
    lua_pushnumber(L, o.at);
    return 2;
}

/* limiter:take() -> true, now | false, when one frees */
static int l_take(lua_State *L)
{
    return ask(L, true);
}

/* limiter:check() -> the same, taking nothing */
static int l_check(lua_State *L)
{
    return ask(L, false);
}

static int l_tostring(lua_State *L)
{
    struct limiter *l = luaL_checkudata(L, 1, MT);
    lua_pushfstring(L, "tikd.ratelimit(%s: %f per %f s, burst %f)", l->name, l->rate.count,
                    l->rate.per, l->rate.burst);
    return 1;
}

struct budget_op {
    lua_State *L;
    const struct rl_config *c;
    const char *account;
    enum rl_budget b;
    struct rl_view v;
};

static int budget_txn(struct store_txn *t, void *ctx)
{
    struct budget_op *o = ctx;
    struct account a;
    if (host_tenant(o->L) && (account_get(t, o->account, &a) != 0 || !host_sees(o->L, &a)))
        return TIKD_ENOTFOUND; /* another tenant's budget is none of its business */
    return rl_view(t, o->c, o->account, o->b, clock_now(), &o->v);
}

/* tikd.ratelimit.budget(account, name) -> { limited, used, cap, held, next_at } */
static int l_budget(lua_State *L)
{
    const char *account = luaL_checkstring(L, 1);
    const char *name = luaL_checkstring(L, 2);
    int b = rl_budget_parse(name);
    if (b < 0)
        return luaL_argerror(L, 2,
                             "unknown budget (video_init, inbox_init, content_init, "
                             "creator_info, status, daily_posts, pending_shares, "
                             "active_users)");
    const struct rl_config *c = host_opts_of(L)->limits;
    if (!c)
        return luaL_error(L, "tikd.ratelimit.budget is not available here");
    struct budget_op o = {L, c, account, (enum rl_budget)b, {0}};
    struct tikd_err e = {0};
    int rc = store_read(host_store(L, "tikd.ratelimit.budget"), budget_txn, &o, &e);
    if (rc == TIKD_ENOTFOUND)
        return luaL_error(L, "tikd.ratelimit.budget: no account named %s", account);
    if (rc != 0)
        return luaL_error(L, "tikd.ratelimit.budget: %s", e.msg[0] ? e.msg : "store failed");
    lua_createtable(L, 0, 5);
    lua_pushboolean(L, o.v.limited);
    lua_setfield(L, -2, "limited");
    lua_pushnumber(L, o.v.used);
    lua_setfield(L, -2, "used");
    lua_pushnumber(L, o.v.cap);
    lua_setfield(L, -2, "cap");
    lua_pushnumber(L, o.v.reserved);
    lua_setfield(L, -2, "held");
    lua_pushnumber(L, o.v.next_at);
    lua_setfield(L, -2, "next_at");
    return 1;
}

int luaopen_tikd_ratelimit(lua_State *L)
{
    static const luaL_Reg methods[] = {{"take", l_take}, {"check", l_check}, {NULL, NULL}};
    static const luaL_Reg fns[] = {{"new", l_new}, {"budget", l_budget}, {NULL, NULL}};
    host_class(L, MT, methods, l_tostring);
    luaL_newlib(L, fns);
    return 1;
}
