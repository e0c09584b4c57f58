/* lua_args.c - raw, type-checked reads of a rule's argument tables (see
 * lua_args.h). Errors are raised with luaL_error at level 1, which names the
 * rule's line that called the tikd.* function. */
#include "lua_args.h"

#include <lauxlib.h>
#include <math.h>
#include <stdio.h>

struct args args_table(lua_State *L, int arg, const char *fn)
{
    if (lua_type(L, arg) != LUA_TTABLE)
        luaL_error(L, "%s: expected a table, got %s", fn, luaL_typename(L, arg));
    return (struct args){L, lua_absindex(L, arg), fn};
}

int args_error(const struct args *a, const char *k, const char *what)
{
    return luaL_error(a->L, "%s: field '%s' %s", a->fn, k, what);
}

int args_get(const struct args *a, const char *k)
{
    lua_pushstring(a->L, k);
    return lua_rawget(a->L, a->t);
}

int args_push(const struct args *a, const char *k, int want)
{
    int type = args_get(a, k);
    if (type != want && type != LUA_TNIL) {
        lua_pop(a->L, 1);
        luaL_error(a->L, "%s: field '%s' must be a %s, not a %s", a->fn, k,
                   lua_typename(a->L, want), lua_typename(a->L, type));
    }
    return type;
}

const char *args_lstr(const struct args *a, const char *k, const char *dflt, size_t *n)
{
    const char *v = dflt;
    *n = 0;
    if (args_push(a, k, LUA_TSTRING) == LUA_TSTRING)
        v = lua_tolstring(a->L, -1, n);
    lua_pop(a->L, 1); /* the string stays alive: the table holds it */
    return v;
}

const char *args_str(const struct args *a, const char *k, const char *dflt)
{
    size_t n;
    return args_lstr(a, k, dflt, &n);
}

bool args_bool(const struct args *a, const char *k, bool dflt)
{
    bool v = dflt;
    if (args_push(a, k, LUA_TBOOLEAN) == LUA_TBOOLEAN)
        v = lua_toboolean(a->L, -1);
    lua_pop(a->L, 1);
    return v;
}

double args_num(const struct args *a, const char *k, double dflt, double min, double max)
{
    double v = dflt;
    bool given = args_push(a, k, LUA_TNUMBER) == LUA_TNUMBER;
    if (given)
        v = lua_tonumber(a->L, -1);
    lua_pop(a->L, 1);
    if (given && (isnan(v) || v < min || v > max)) {
        char msg[300]; /* lua_pushfstring has no %g */
        snprintf(msg, sizeof msg, "%s: %s must be from %g to %g", a->fn, k, min, max);
        luaL_error(a->L, "%s", msg);
    }
    return v;
}

lua_Integer args_int(const struct args *a, const char *k, lua_Integer dflt, lua_Integer min,
                     lua_Integer max)
{
    lua_Integer v = dflt;
    int isint = 1, type = args_get(a, k);
    bool given = type == LUA_TNUMBER;
    if (given)
        v = lua_tointegerx(a->L, -1, &isint);
    lua_pop(a->L, 1);
    if ((type != LUA_TNIL && !given) || !isint)
        luaL_error(a->L, "%s: field '%s' must be an integer%s%s", a->fn, k, given ? "" : ", not a ",
                   given ? "" : lua_typename(a->L, type));
    if (given && (v < min || v > max))
        luaL_error(a->L, "%s: %s must be from %I to %I", a->fn, k, min, max);
    return v;
}
