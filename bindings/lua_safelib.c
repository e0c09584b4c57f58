/* lua_safelib.c - budget-safe replacements for standard functions (see
 * lua_safelib.h). The table and coroutine functions follow Lua 5.4's
 * ltablib.c and lcorolib.c line for line where they are ported. */
#include "lua_safelib.h"
#include "lua_deadline.h"

#include <lauxlib.h>
#include <string.h>

#define REG_MTCOPY "tikd.safelib.mtcopy" /* weak: a rule's metatable -> its copy */
#define REG_MTINFO "tikd.safelib.mtinfo" /* weak: copy -> fields * 2 + protected */

/* Bytes a string function may write per instruction charged. */
#define BYTES_PER_UNIT 64

static const struct sandbox_meters *meters(lua_State *L)
{
    return lua_touserdata(L, lua_upvalueindex(1));
}

static void charge(lua_State *L, lua_Integer units)
{
    const struct sandbox_meters *m = meters(L);
    if (m && units > 0)
        m->charge(L, units);
}

static int spent(lua_State *L)
{
    const struct sandbox_meters *m = meters(L);
    return m && m->spent(L);
}

/* Call the original function (upvalue 2) with the n values on top; returns
 * its results. */
static int call_original(lua_State *L, int n)
{
    lua_pushvalue(L, lua_upvalueindex(2));
    lua_insert(L, -(n + 1));
    int base = lua_gettop(L) - n - 1;
    lua_call(L, n, LUA_MULTRET);
    return lua_gettop(L) - base;
}

/* ---- table ------------------------------------------------------------- */

#define TAB_R  1
#define TAB_W  2
#define TAB_L  4
#define TAB_RW (TAB_R | TAB_W)

static int checkfield(lua_State *L, const char *key, int n)
{
    lua_pushstring(L, key);
    return (lua_rawget(L, -n) != LUA_TNIL);
}

static void checktab(lua_State *L, int arg, int what)
{
    if (lua_type(L, arg) != LUA_TTABLE) {
        int n = 1;
        if (lua_getmetatable(L, arg) && (!(what & TAB_R) || checkfield(L, "__index", ++n)) &&
            (!(what & TAB_W) || checkfield(L, "__newindex", ++n)) &&
            (!(what & TAB_L) || checkfield(L, "__len", ++n)))
            lua_pop(L, n);
        else
            luaL_checktype(L, arg, LUA_TTABLE);
    }
}

/* The length of the table at 1, read once: a __len may answer differently
 * each time, so the functions below never let Lua's own read it again. */
static lua_Integer aux_getn(lua_State *L, int what)
{
    checktab(L, 1, what | TAB_L);
    return luaL_len(L, 1);
}

static int tinsert(lua_State *L)
{
    lua_Integer pos;
    lua_Integer e = aux_getn(L, TAB_RW);
    e = (lua_Integer)((lua_Unsigned)e + 1u); /* first empty element */
    switch (lua_gettop(L)) {
    case 2:
        pos = e;
        break;
    case 3: {
        pos = luaL_checkinteger(L, 2);
        luaL_argcheck(L, (lua_Unsigned)pos - 1u < (lua_Unsigned)e, 2, "position out of bounds");
        charge(L, e - pos);
        for (lua_Integer i = e; i > pos; i--) {
            lua_geti(L, 1, i - 1);
            lua_seti(L, 1, i);
        }
        break;
    }
    default:
        return luaL_error(L, "wrong number of arguments to 'insert'");
    }
    lua_seti(L, 1, pos);
    return 0;
}

static int tremove(lua_State *L)
{
    lua_Integer size = aux_getn(L, TAB_RW);
    lua_Integer pos = luaL_optinteger(L, 2, size);
    if (pos != size)
        luaL_argcheck(L, (lua_Unsigned)pos - 1u <= (lua_Unsigned)size, 2, "position out of bounds");
    if (size > pos)
        charge(L, size - pos);
    lua_geti(L, 1, pos);
    for (; pos < size; pos++) {
        lua_geti(L, 1, pos + 1);
        lua_seti(L, 1, pos);
    }
    lua_pushnil(L);
    lua_seti(L, 1, pos);
    return 1;
}

/* table.move(a1, f, e, t [, a2]): its bounds are its arguments. */
static int tmove(lua_State *L)
{
    lua_Integer f = luaL_checkinteger(L, 2), e = luaL_checkinteger(L, 3);
    luaL_checkinteger(L, 4);
    if (e >= f)
        charge(L, (lua_Integer)((lua_Unsigned)e - (lua_Unsigned)f) + 1);
    return call_original(L, lua_gettop(L));
}

/* table.concat(t [, sep [, i [, j]]]) and table.unpack(t [, i [, j]]):
 * the length is read here, once, and handed on as j. */
static int tconcat(lua_State *L)
{
    lua_Integer i = luaL_optinteger(L, 3, 1);
    lua_Integer j = lua_isnoneornil(L, 4) ? aux_getn(L, TAB_R) : luaL_checkinteger(L, 4);
    if (j >= i)
        charge(L, (lua_Integer)((lua_Unsigned)j - (lua_Unsigned)i) + 1);
    lua_settop(L, 2);
    lua_pushinteger(L, i);
    lua_pushinteger(L, j);
    return call_original(L, 4);
}

static int tunpack(lua_State *L)
{
    lua_Integer i = luaL_optinteger(L, 2, 1);
    lua_Integer j = lua_isnoneornil(L, 3) ? luaL_len(L, 1) : luaL_checkinteger(L, 3);
    if (j >= i)
        charge(L, (lua_Integer)((lua_Unsigned)j - (lua_Unsigned)i) + 1);
    lua_settop(L, 1);
    lua_pushinteger(L, i);
    lua_pushinteger(L, j);
    return call_original(L, 3);
}

/* table.sort reads the length itself, so a table whose __len could change
 * its answer is refused; comparisons run in Lua (counted) or in C, charged
 * here as n log n. */
static int tsort(lua_State *L)
{
    checktab(L, 1, TAB_RW | TAB_L);
    if (luaL_getmetafield(L, 1, "__len") != LUA_TNIL)
        return luaL_error(L, "table.sort: a table with a __len metamethod cannot be sorted in "
                             "rules (its length could change under the sort)");
    lua_Integer n = (lua_Integer)lua_rawlen(L, 1), units = n;
    for (lua_Integer k = n; k > 1; k >>= 1)
        units += n;
    charge(L, units);
    return call_original(L, lua_gettop(L));
}

/* ---- string -------------------------------------------------------------- */

static int srep(lua_State *L)
{
    size_t l, lsep = 0;
    luaL_checklstring(L, 1, &l);
    lua_Integer n = luaL_checkinteger(L, 2);
    luaL_optlstring(L, 3, "", &lsep);
    if (n > 0) {
        double bytes = (double)n * (double)(l + lsep);
        charge(L, bytes / BYTES_PER_UNIT > 1e15 ? (lua_Integer)1e15
                                                : (lua_Integer)(bytes / BYTES_PER_UNIT));
    }
    return call_original(L, lua_gettop(L));
}

/* upper, lower, reverse: as many bytes out as in */
static int sbytes(lua_State *L)
{
    size_t l;
    luaL_checklstring(L, 1, &l);
    charge(L, (lua_Integer)(l / BYTES_PER_UNIT));
    return call_original(L, lua_gettop(L));
}

/* ---- coroutine ----------------------------------------------------------- */

#define REG_THREADS REG_HOSTTHREADS

int safelib_is_host_thread(lua_State *L, int idx)
{
    if (!lua_isthread(L, idx))
        return 0;
    lua_getfield(L, LUA_REGISTRYINDEX, REG_THREADS);
    lua_pushvalue(L, idx);
    int r = lua_rawget(L, -2) != LUA_TNIL;
    lua_pop(L, 2);
    return r;
}

static lua_State *getco(lua_State *L, const char *fn)
{
    lua_State *co = lua_tothread(L, 1);
    luaL_argexpected(L, co, 1, "coroutine");
    if (safelib_is_host_thread(L, 1))
        luaL_error(L,
                   "coroutine.%s: this coroutine is a running rule call owned by tikd; "
                   "rule code cannot resume or close it",
                   fn);
    return co;
}

/* Resume co with narg values from L; the wall clock follows the thread. */
static int auxresume(lua_State *L, lua_State *co, int narg)
{
    int status, nres;
    if (!lua_checkstack(co, narg)) {
        lua_pushliteral(L, "too many arguments to resume");
        return -1;
    }
    lua_xmove(L, co, narg);
    deadline_switch(co);
    status = lua_resume(co, L, narg, &nres);
    deadline_switch(L);
    if (status == LUA_OK || status == LUA_YIELD) {
        if (!lua_checkstack(L, nres + 1)) {
            lua_pop(co, nres);
            lua_pushliteral(L, "too many results to resume");
            return -1;
        }
        lua_xmove(co, L, nres);
        return nres;
    }
    lua_xmove(co, L, 1); /* the error */
    return -1;
}

static int co_resume(lua_State *L)
{
    lua_State *co = getco(L, "resume");
    int r = auxresume(L, co, lua_gettop(L) - 1);
    if (r < 0) {
        lua_pushboolean(L, 0);
        lua_insert(L, -2);
        return 2;
    }
    lua_pushboolean(L, 1);
    lua_insert(L, -(r + 1));
    return r + 1;
}

/* Close co's pending <close> variables, on co's own clock. */
static int close_thread(lua_State *L, lua_State *co)
{
    deadline_switch(co);
    int st = lua_resetthread(co);
    deadline_switch(L);
    return st;
}

static int auxwrap(lua_State *L)
{
    lua_State *co = lua_tothread(L, lua_upvalueindex(2));
    int r = auxresume(L, co, lua_gettop(L));
    if (r < 0) {
        int stat = lua_status(co);
        /* an error in the coroutine: close its variables, unless the call
         * has run out (then the coroutine may have hooks off, and none of
         * the rule's code may run) */
        if (stat != LUA_OK && stat != LUA_YIELD && !spent(L)) {
            stat = close_thread(L, co);
            lua_xmove(co, L, 1);
        }
        if (stat != LUA_ERRMEM && lua_type(L, -1) == LUA_TSTRING) {
            luaL_where(L, 1);
            lua_insert(L, -2);
            lua_concat(L, 2);
        }
        return lua_error(L);
    }
    return r;
}

static int co_wrap(lua_State *L)
{
    luaL_checktype(L, 1, LUA_TFUNCTION);
    lua_State *NL = lua_newthread(L);
    lua_pushvalue(L, 1);
    lua_xmove(L, NL, 1);
    lua_pushvalue(L, lua_upvalueindex(1));
    lua_insert(L, -2);
    lua_pushcclosure(L, auxwrap, 2);
    return 1;
}

/* coroutine.close: Lua's (upvalue 2), after the guards. */
static int co_close(lua_State *L)
{
    lua_State *co = getco(L, "close");
    if (spent(L)) {
        lua_pushboolean(L, 0);
        lua_pushliteral(L, "coroutine.close: the call's budget is spent");
        return 2;
    }
    deadline_switch(co);
    int n = call_original(L, lua_gettop(L));
    deadline_switch(L);
    return n;
}

/* ---- xpcall -------------------------------------------------------------- */

/* The rule's message handler (upvalue 2), unless the call has run out: then
 * the error goes on unchanged (Lua calls a handler with hooks off when the
 * error comes from a hook). */
static int msgh(lua_State *L)
{
    if (spent(L))
        return 1;
    lua_pushvalue(L, lua_upvalueindex(2));
    lua_insert(L, 1);
    lua_call(L, lua_gettop(L) - 1, 1);
    return 1;
}

static int finishpcall(lua_State *L, int status, lua_KContext extra)
{
    if (status != LUA_OK && status != LUA_YIELD) {
        lua_pushboolean(L, 0);
        lua_pushvalue(L, -2);
        return 2;
    }
    return lua_gettop(L) - (int)extra;
}

static int sb_xpcall(lua_State *L)
{
    int n = lua_gettop(L);
    luaL_checktype(L, 2, LUA_TFUNCTION);
    lua_pushvalue(L, lua_upvalueindex(1));
    lua_pushvalue(L, 2);
    lua_pushcclosure(L, msgh, 2);
    lua_replace(L, 2);
    lua_pushboolean(L, 1);
    lua_pushvalue(L, 1);
    lua_rotate(L, 3, 2);
    int status = lua_pcallk(L, n - 2, LUA_MULTRET, 2, 2, finishpcall);
    return finishpcall(L, status, 2);
}

/* ---- setmetatable -------------------------------------------------------- */

static int is_event(lua_State *L, int key)
{
    if (lua_type(L, key) != LUA_TSTRING)
        return 0;
    const char *k = lua_tostring(L, key);
    return k[0] == '_' && k[1] == '_';
}

/* Is the copy at `copy` (info `info`) still what the rule's metatable `mt`
 * says? Counts the fields walked into *walked. */
static int copy_current(lua_State *L, int mt, int copy, lua_Integer info, lua_Integer *walked)
{
    lua_Integer fields = 0;
    int same = 1;
    lua_pushnil(L);
    while (lua_next(L, mt)) {
        ++*walked;
        if (is_event(L, -2)) {
            fields++;
            lua_pushvalue(L, -2);
            lua_rawget(L, copy);
            same &= lua_rawequal(L, -1, -2);
            lua_pop(L, 1);
        }
        lua_pop(L, 1);
    }
    lua_pushliteral(L, "__metatable");
    int own_mt = lua_rawget(L, mt) != LUA_TNIL;
    lua_pop(L, 1);
    return same && fields + !own_mt == info / 2;
}

/* Push a fresh copy of the metamethods of the table at mt, checked. */
static void make_copy(lua_State *L, int mt, lua_Integer *walked, lua_Integer *info)
{
    lua_newtable(L);
    int copy = lua_gettop(L);
    lua_Integer fields = 0;
    lua_pushnil(L);
    while (lua_next(L, mt)) {
        ++*walked;
        if (is_event(L, -2)) {
            const char *k = lua_tostring(L, -2);
            if (strcmp(k, "__gc") == 0)
                luaL_error(L, "setmetatable: __gc metamethods are not allowed in rules "
                              "(finalizers would run outside the CPU budget)");
            if (strcmp(k, "__call") == 0 && lua_type(L, -1) != LUA_TFUNCTION)
                luaL_error(L, "setmetatable: __call must be a function in rules, not a %s",
                           luaL_typename(L, -1));
            lua_pushvalue(L, -2);
            lua_insert(L, -2);
            lua_rawset(L, copy);
            fields++;
        } else {
            lua_pop(L, 1);
        }
    }
    lua_pushliteral(L, "__metatable");
    int own_mt = lua_rawget(L, mt) != LUA_TNIL;
    lua_pop(L, 1);
    if (!own_mt) { /* getmetatable() gives the rule its own table back */
        lua_pushvalue(L, mt);
        lua_setfield(L, copy, "__metatable");
    }
    *info = (fields + !own_mt) * 2 + own_mt;
}

static int sb_setmetatable(lua_State *L)
{
    int t = lua_type(L, 2);
    luaL_checktype(L, 1, LUA_TTABLE);
    luaL_argexpected(L, t == LUA_TNIL || t == LUA_TTABLE, 2, "nil or table");
    lua_settop(L, 2);
    lua_getfield(L, LUA_REGISTRYINDEX, REG_MTCOPY); /* 3 */
    lua_getfield(L, LUA_REGISTRYINDEX, REG_MTINFO); /* 4 */
    if (lua_getmetatable(L, 1)) {                   /* the copy it has now */
        lua_rawget(L, 4);
        lua_Integer info = lua_tointeger(L, -1);
        int theirs = lua_isnil(L, -1);
        lua_pop(L, 1);
        if (info & 1 || (theirs && luaL_getmetafield(L, 1, "__metatable") != LUA_TNIL))
            return luaL_error(L, "cannot change a protected metatable");
    }
    lua_Integer walked = 0;
    if (t == LUA_TTABLE) {
        lua_pushvalue(L, 2);
        lua_rawget(L, 3); /* 5: the cached copy */
        lua_Integer info = 0;
        int fresh = lua_isnil(L, 5);
        if (!fresh) {
            lua_pushvalue(L, 5);
            lua_rawget(L, 4);
            info = lua_tointeger(L, -1);
            lua_pop(L, 1);
            fresh = !copy_current(L, 2, 5, info, &walked);
        }
        if (fresh) {
            lua_pop(L, 1);
            make_copy(L, 2, &walked, &info);
            lua_pushvalue(L, 2);
            lua_pushvalue(L, 5);
            lua_rawset(L, 3);
            lua_pushvalue(L, 5);
            lua_pushinteger(L, info);
            lua_rawset(L, 4);
        }
        lua_setmetatable(L, 1);
    } else {
        lua_pushnil(L);
        lua_setmetatable(L, 1);
    }
    charge(L, walked);
    lua_settop(L, 1);
    return 1;
}

/* ---- installing ---------------------------------------------------------- */

static void weak_table(lua_State *L, const char *name)
{
    lua_newtable(L);
    lua_createtable(L, 0, 1);
    lua_pushliteral(L, "k");
    lua_setfield(L, -2, "__mode");
    lua_setmetatable(L, -2);
    lua_setfield(L, LUA_REGISTRYINDEX, name);
}

struct repl {
    const char *name;
    lua_CFunction fn;
};

/* t[name] = closure(fn, meters, original t[name]) for each. */
static void replace(lua_State *L, int t, const struct repl *r, const struct sandbox_meters *m)
{
    for (; r->name; r++) {
        lua_pushlightuserdata(L, (void *)m);
        lua_getfield(L, t, r->name);
        lua_pushcclosure(L, r->fn, 2);
        lua_setfield(L, t, r->name);
    }
}

void safelib_install(lua_State *L, int table, int string, int coroutine,
                     const struct sandbox_meters *m)
{
    weak_table(L, REG_MTCOPY);
    weak_table(L, REG_MTINFO);
    static const struct repl tab[] = {{"insert", tinsert}, {"remove", tremove}, {"move", tmove},
                                      {"concat", tconcat}, {"unpack", tunpack}, {"sort", tsort},
                                      {NULL, NULL}};
    static const struct repl str[] = {
        {"rep", srep}, {"upper", sbytes}, {"lower", sbytes}, {"reverse", sbytes}, {NULL, NULL}};
    static const struct repl co[] = {
        {"resume", co_resume}, {"wrap", co_wrap}, {"close", co_close}, {NULL, NULL}};
    replace(L, table, tab, m);
    replace(L, string, str, m);
    replace(L, coroutine, co, m);
}

void safelib_push_setmetatable(lua_State *L, const struct sandbox_meters *m)
{
    lua_pushlightuserdata(L, (void *)m);
    lua_pushcclosure(L, sb_setmetatable, 1);
}

void safelib_push_xpcall(lua_State *L, const struct sandbox_meters *m)
{
    lua_pushlightuserdata(L, (void *)m);
    lua_pushcclosure(L, sb_xpcall, 1);
}
