/* lua_log.c - tikd.log: rule log lines through the core logger, so they get
 * the same format and the same secret redaction as the engine's own. */
#include "lua_host.h"
#include "lua_modules.h"

#include <lauxlib.h>
#include <string.h>

#include "../core/log.h"

#define MAX_FIELDS 16
#define MAX_TEXT   2048 /* bytes of the message or of one field kept */

static int valid_key(const char *k)
{
    if (!*k || strlen(k) > 40)
        return 0;
    for (; *k; k++)
        if (!((*k >= 'a' && *k <= 'z') || (*k >= '0' && *k <= '9') || *k == '_' || *k == '.'))
            return 0;
    return 1;
}

/* The string at idx, cut to MAX_TEXT bytes (a cut copy is pushed and
 * stays on the stack). */
static const char *capped(lua_State *L, int idx)
{
    size_t n;
    const char *s = lua_tolstring(L, idx, &n);
    if (n <= MAX_TEXT)
        return s;
    lua_pushlstring(L, s, MAX_TEXT);
    lua_pushliteral(L, "... (cut at 2048 bytes)");
    lua_concat(L, 2);
    return lua_tostring(L, -1);
}

/* log.<level>(message [, fields]): fields is a table of key = string,
 * number or boolean, keys in [a-z0-9_.]. Output is metered per call and
 * per rule file (host_output). */
static int emit(lua_State *L, enum tlog_level lvl)
{
    if (lvl < tlog_threshold)
        return 0;
    luaL_checkstring(L, 1);
    if (!host_output(L))
        return 0;
    const char *msg = capped(L, 1);
    struct tlog_field f[MAX_FIELDS + 3];
    int n = 0;
    f[n++] = (struct tlog_field)LSTR("rule", host_rule(L));
    f[n++] = (struct tlog_field)LSTR("msg", msg);
    if (!lua_isnoneornil(L, 2)) {
        luaL_checktype(L, 2, LUA_TTABLE);
        lua_pushnil(L);
        while (lua_next(L, 2)) {
            luaL_checkstack(L, 4, "tikd.log: too many fields");
            int key = lua_gettop(L) - 1;
            if (lua_type(L, -2) != LUA_TSTRING || !valid_key(lua_tostring(L, -2)))
                return luaL_error(L, "tikd.log: field names must be strings of [a-z0-9_.]");
            if (n == MAX_FIELDS + 2)
                return luaL_error(L, "tikd.log: at most %d fields", MAX_FIELDS);
            const char *k = lua_tostring(L, -2);
            switch (lua_type(L, -1)) {
            case LUA_TNUMBER:
                if (lua_isinteger(L, -1))
                    f[n++] = (struct tlog_field)LINT(k, lua_tointeger(L, -1));
                else
                    f[n++] = (struct tlog_field)LDBL(k, lua_tonumber(L, -1));
                break;
            case LUA_TBOOLEAN:
                f[n++] = (struct tlog_field)LBOOL(k, lua_toboolean(L, -1));
                break;
            case LUA_TSTRING:
                f[n++] = (struct tlog_field)LSTR(k, capped(L, -1));
                break;
            default:
                return luaL_error(L, "tikd.log: field '%s' must be a string, number or boolean", k);
            }
            /* keep the value (and key) alive on the stack: pop nothing, but
             * lua_next needs the key on top */
            lua_pushvalue(L, key);
        }
    }
    f[n] = (struct tlog_field){0};
    tlog_emit(lvl, "rule.log", f);
    return 0;
}

static int l_debug(lua_State *L)
{
    return emit(L, TLOG_DEBUG);
}
static int l_info(lua_State *L)
{
    return emit(L, TLOG_INFO);
}
static int l_warn(lua_State *L)
{
    return emit(L, TLOG_WARN);
}
static int l_error(lua_State *L)
{
    return emit(L, TLOG_ERROR);
}

int luaopen_tikd_log(lua_State *L)
{
    static const luaL_Reg fns[] = {
        {"debug", l_debug}, {"info", l_info}, {"warn", l_warn}, {"error", l_error}, {NULL, NULL}};
    luaL_newlib(L, fns);
    return 1;
}
