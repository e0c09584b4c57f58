/* lua_cron.c - tikd.cron: cron schedules and wall-clock time in IANA zones,
 * the Lua face of core/cron.
 *
 *   local s = tikd.cron.parse("30 9 * * MON-FRI")  -- raises on a bad expression
 *   local at = s:next(tikd.now(), "Europe/Berlin")   -- epoch seconds, or nil, why
 *   local lt = tikd.cron.localtime(at, "Europe/Berlin") -- { year=, hour=, abbr="CET", ... }
 *   local t = tikd.cron.time{ year = 2026, month = 3, day = 8, hour = 9, tz = "Asia/Tokyo" }
 *
 * A schedule is plain data in its userdata (no C resource). Zones default to
 * UTC; daylight-saving gaps and repeats follow core/cron.h (fold=0). */
#include "lua_args.h"
#include "lua_host.h"
#include "lua_modules.h"

#include <lauxlib.h>
#include <string.h>

#include "../core/cron.h"

#define MT "tikd.cron"

/* The zone argument at idx: a name, or "UTC" when absent. */
static const char *opt_tz(lua_State *L, int idx)
{
    size_t n;
    const char *tz = luaL_optlstring(L, idx, "UTC", &n);
    if (strlen(tz) != n)
        luaL_argerror(L, idx, "a time zone name has no NUL byte");
    return tz;
}

/* Whole seconds from core/cron, as a Lua integer. */
static void push_time(lua_State *L, double t)
{
    lua_Integer i;
    if (lua_numbertointeger(t, &i))
        lua_pushinteger(L, i);
    else
        lua_pushnumber(L, t);
}

/* tikd.cron.parse(expr) -> schedule, or raises with the parse message */
static int l_parse(lua_State *L)
{
    const char *expr = luaL_checkstring(L, 1);
    struct cron c;
    struct tikd_err e = {0};
    if (cron_parse(expr, &c, &e) != 0)
        return luaL_error(L, "%s", e.msg);
    struct cron *u = lua_newuserdatauv(L, sizeof *u, 0);
    *u = c;
    luaL_setmetatable(L, MT);
    return 1;
}

/* schedule:next(after [, tz]) -> the first firing strictly after `after`,
 * or nil and why when there is none within 5 years */
static int l_next(lua_State *L)
{
    const struct cron *c = luaL_checkudata(L, 1, MT);
    lua_Number after = luaL_checknumber(L, 2);
    const char *tz = opt_tz(L, 3);
    struct tikd_err e = {0};
    double t;
    int rc = cron_next(c, tz, after, &t, &e);
    if (rc == TIKD_ENOTFOUND) {
        lua_pushnil(L);
        lua_pushstring(L, e.msg);
        return 2;
    }
    if (rc != 0)
        return luaL_error(L, "%s", e.msg);
    push_time(L, t);
    return 1;
}

static int l_tostring(lua_State *L)
{
    const struct cron *c = luaL_checkudata(L, 1, MT);
    lua_pushfstring(L, "tikd.cron(%s)", c->expr);
    return 1;
}

static void set_int(lua_State *L, const char *k, lua_Integer v)
{
    lua_pushinteger(L, v);
    lua_setfield(L, -2, k);
}

/* tikd.cron.localtime(t [, tz]) -> { year, month, day, hour, min, sec, wday
 * (1 = Sunday, as os.date), yday, utc_offset, abbr } */
static int l_localtime(lua_State *L)
{
    lua_Number t = luaL_checknumber(L, 1);
    const char *tz = opt_tz(L, 2);
    struct cron_local lt;
    struct tikd_err e = {0};
    if (cron_localtime(tz, t, &lt, &e) != 0)
        return luaL_error(L, "%s", e.msg);
    lua_createtable(L, 0, 10);
    set_int(L, "year", lt.year);
    set_int(L, "month", lt.month);
    set_int(L, "day", lt.day);
    set_int(L, "hour", lt.hour);
    set_int(L, "min", lt.minute);
    set_int(L, "sec", lt.second);
    set_int(L, "wday", lt.wday + 1);
    set_int(L, "yday", lt.yday);
    set_int(L, "utc_offset", lt.utc_offset);
    lua_pushstring(L, lt.abbr);
    lua_setfield(L, -2, "abbr");
    return 1;
}

/* An integer field of a; a required one must be there. */
static int field_int(const struct args *a, const char *k, bool required)
{
    if (required) {
        int type = args_get(a, k);
        lua_pop(a->L, 1);
        if (type == LUA_TNIL)
            args_error(a, k, "is missing");
    }
    lua_Integer v = args_int(a, k, 0, LUA_MININTEGER, LUA_MAXINTEGER);
    if (v < -100000 || v > 100000)
        args_error(a, k, "is out of range");
    return (int)v;
}

/* tikd.cron.time{ year=, month=, day=, hour=0, min=0, sec=0, tz="UTC" } ->
 * epoch seconds; a skipped local time reads with the offset before the gap,
 * a repeated one is its first occurrence */
static int l_time(lua_State *L)
{
    struct args a = args_table(L, 1, "tikd.cron.time");
    struct cron_local lt = {0};
    lt.year = field_int(&a, "year", true);
    lt.month = field_int(&a, "month", true);
    lt.day = field_int(&a, "day", true);
    lt.hour = field_int(&a, "hour", false);
    lt.minute = field_int(&a, "min", false);
    lt.second = field_int(&a, "sec", false);
    args_push(&a, "tz", LUA_TSTRING);
    const char *tz = opt_tz(L, lua_gettop(L));
    struct tikd_err e = {0};
    double t;
    if (cron_mktime(tz, &lt, &t, &e) != 0)
        return luaL_error(L, "%s", e.msg);
    push_time(L, t);
    return 1;
}

/* tikd.cron.zone_ok(tz) -> true | false, message */
static int l_zone_ok(lua_State *L)
{
    size_t n;
    const char *tz = luaL_checklstring(L, 1, &n);
    struct tikd_err e = {0};
    if (strlen(tz) != n)
        tikd_fail(&e, TIKD_EINVAL, "unknown time zone (the name has a NUL byte)");
    else
        cron_tz_check(tz, &e);
    lua_pushboolean(L, e.msg[0] == '\0');
    if (e.msg[0] == '\0')
        return 1;
    lua_pushstring(L, e.msg);
    return 2;
}

int luaopen_tikd_cron(lua_State *L)
{
    static const luaL_Reg methods[] = {{"next", l_next}, {NULL, NULL}};
    static const luaL_Reg fns[] = {{"parse", l_parse},
                                   {"localtime", l_localtime},
                                   {"time", l_time},
                                   {"zone_ok", l_zone_ok},
                                   {NULL, NULL}};
    host_class(L, MT, methods, l_tostring);
    luaL_newlib(L, fns);
    return 1;
}
