/* lua_oauth.c - tikd.oauth: accounts as opaque handles.
 *
 * A rule can list accounts and read what an operator could read (name,
 * state, open_id, scopes, expiry times) through a `tikd.account` handle. A
 * handle holds the account's name only: no token, no way to get one; the
 * engine adds credentials inside C when it calls TikTok for an account. */
#include "lua_hooks.h"
#include "lua_host.h"
#include "lua_modules.h"

#include <lauxlib.h>
#include <stdio.h>
#include <string.h>

#include "../core/account.h"
#include "../core/store.h"

#define HANDLE "tikd.account"

struct handle {
    char name[ACCT_NAME_MAX + 1];
};

struct get_ctx {
    const char *name;
    struct account a;
};

static int get_txn(struct store_txn *t, void *ctx)
{
    struct get_ctx *g = ctx;
    return account_get(t, g->name, &g->a);
}

/* tikd.oauth.account(name) -> handle, or nil and a message */
static int l_account(lua_State *L)
{
    const char *name = luaL_checkstring(L, 1);
    struct get_ctx g = {.name = name};
    if (!account_name_valid(name) ||
        store_read(host_store(L, "tikd.oauth"), get_txn, &g, NULL) != 0 || !host_sees(L, &g.a)) {
        lua_pushnil(L);
        lua_pushfstring(L, "no account named %s", name);
        return 2;
    }
    struct handle *h = lua_newuserdatauv(L, sizeof *h, 0);
    snprintf(h->name, sizeof h->name, "%s", name);
    luaL_setmetatable(L, HANDLE);
    return 1;
}

struct list_ctx {
    lua_State *L;
    lua_Integer n;
};

static int list_one(const struct account *a, void *ctx)
{
    struct list_ctx *l = ctx;
    if (!host_sees(l->L, a))
        return 0; /* another tenant's */
    lua_pushstring(l->L, a->name);
    lua_rawseti(l->L, -2, ++l->n);
    return 0;
}

static int list_txn(struct store_txn *t, void *ctx)
{
    return account_foreach(t, list_one, ctx);
}

/* tikd.oauth.accounts() -> { "name", ... } in name order (the tenant's own) */
static int l_accounts(lua_State *L)
{
    struct store *s = host_store(L, "tikd.oauth");
    lua_newtable(L);
    struct list_ctx l = {L, 0};
    store_read(s, list_txn, &l, NULL);
    return 1;
}

/* handle:info() -> { name, state, reason, open_id, scopes, access_expires_at,
 * refresh_expires_at }, or nil and a message if the account was removed */
static int h_info(lua_State *L)
{
    struct handle *h = luaL_checkudata(L, 1, HANDLE);
    struct get_ctx g = {.name = h->name};
    if (store_read(host_store(L, "tikd.oauth"), get_txn, &g, NULL) != 0 || !host_sees(L, &g.a)) {
        lua_pushnil(L);
        lua_pushfstring(L, "account %s was removed", h->name);
        return 2;
    }
    hooks_push_account(L, &g.a); /* what on_account sees, and the expiry times */
    lua_pushnumber(L, g.a.access_expires_at);
    lua_setfield(L, -2, "access_expires_at");
    lua_pushnumber(L, g.a.refresh_expires_at);
    lua_setfield(L, -2, "refresh_expires_at");
    return 1;
}

static int h_name(lua_State *L)
{
    struct handle *h = luaL_checkudata(L, 1, HANDLE);
    lua_pushstring(L, h->name);
    return 1;
}

static int h_tostring(lua_State *L)
{
    struct handle *h = luaL_checkudata(L, 1, HANDLE);
    lua_pushfstring(L, "tikd.account(%s)", h->name);
    return 1;
}

static int h_eq(lua_State *L)
{
    struct handle *a = luaL_checkudata(L, 1, HANDLE), *b = luaL_checkudata(L, 2, HANDLE);
    lua_pushboolean(L, strcmp(a->name, b->name) == 0);
    return 1;
}

int luaopen_tikd_oauth(lua_State *L)
{
    static const luaL_Reg methods[] = {{"info", h_info}, {"name", h_name}, {NULL, NULL}};
    static const luaL_Reg meta[] = {{"__tostring", h_tostring}, {"__eq", h_eq}, {NULL, NULL}};
    if (luaL_newmetatable(L, HANDLE)) {
        luaL_setfuncs(L, meta, 0);
        luaL_newlib(L, methods);
        lua_setfield(L, -2, "__index");
        lua_pushliteral(L, "tikd.account");
        lua_setfield(L, -2, "__metatable"); /* rules cannot reach or change it */
    }
    lua_pop(L, 1);
    static const luaL_Reg fns[] = {{"account", l_account}, {"accounts", l_accounts}, {NULL, NULL}};
    luaL_newlib(L, fns);
    return 1;
}
