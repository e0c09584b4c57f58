/* lua_sandbox.c - per-file environments for hostile rule code (see
 * lua_sandbox.h).
 *
 * Stock Lua 5.4 has no read-only tables, so shared libraries are handed out
 * as userdata views (__index to the real table, no __newindex, a locked
 * metatable): rawset() cannot write through them and pairs() walks them
 * without exposing the table. The shared string metatable is locked and
 * string.dump removed from it. The functions that could escape a budget are
 * replaced (lua_safelib.c); finalizers (__gc) are refused because they run
 * with hooks off, outside any CPU budget. */
#include "lua_sandbox.h"
#include "lua_safelib.h"
#include "lua_strmatch.h"

#include <errno.h>
#include <lauxlib.h>
#include <lualib.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "../core/fileio.h"
#include "../core/libs.h"
#include "../core/log.h"

#define REG_OPTS    "tikd.sandbox.opts"
#define REG_LIBS    "tikd.sandbox.libs"
#define REG_PRELOAD "tikd.sandbox.preload"
#define REG_BASE    "tikd.sandbox.base"
#define MAX_SOURCE  (4 * 1024 * 1024)

static const struct sandbox_opts *opts_of(lua_State *L)
{
    lua_getfield(L, LUA_REGISTRYINDEX, REG_OPTS);
    const struct sandbox_opts *o = lua_touserdata(L, -1);
    lua_pop(L, 1);
    return o;
}

/* ---- read-only library views ----------------------------------------- */

static int ro_newindex(lua_State *L)
{
    return luaL_error(L, "attempt to modify read-only library table '%s'",
                      lua_tostring(L, lua_upvalueindex(1)));
}

static int ro_next(lua_State *L)
{
    lua_settop(L, 2);
    lua_pushvalue(L, 2);
    if (lua_next(L, lua_upvalueindex(1)))
        return 2;
    lua_pushnil(L);
    return 1;
}

static int ro_pairs(lua_State *L)
{
    lua_getmetatable(L, 1); /* raw: __metatable only affects getmetatable() */
    lua_getfield(L, -1, "__index");
    lua_pushcclosure(L, ro_next, 1);
    lua_pushvalue(L, 1);
    lua_pushnil(L);
    return 3;
}

static int ro_len(lua_State *L)
{
    lua_getmetatable(L, 1);
    lua_getfield(L, -1, "__index");
    lua_pushinteger(L, (lua_Integer)lua_rawlen(L, -1));
    return 1;
}

/* Replace the table at the top of the stack by a read-only view of it. */
static void make_view(lua_State *L, const char *name)
{
    int real = lua_gettop(L);
    lua_newuserdatauv(L, 0, 0);
    lua_createtable(L, 0, 6);
    lua_pushvalue(L, real);
    lua_setfield(L, -2, "__index");
    lua_pushstring(L, name);
    lua_pushcclosure(L, ro_newindex, 1);
    lua_setfield(L, -2, "__newindex");
    lua_pushcfunction(L, ro_pairs);
    lua_setfield(L, -2, "__pairs");
    lua_pushcfunction(L, ro_len);
    lua_setfield(L, -2, "__len");
    lua_pushboolean(L, 0);
    lua_setfield(L, -2, "__metatable");
    lua_pushfstring(L, "library %s", name);
    lua_setfield(L, -2, "__name");
    lua_setmetatable(L, -2);
    lua_replace(L, real);
}

/* Copy the named fields of the table at `src` into a new table. */
static void copy_fields(lua_State *L, int src, const char *const *names)
{
    lua_newtable(L);
    for (; *names; names++) {
        lua_getfield(L, src, *names);
        lua_setfield(L, -2, *names);
    }
}

/* ---- replacements for dangerous base functions ------------------------ */

static int sb_collectgarbage(lua_State *L)
{
    const char *opt = luaL_optstring(L, 1, "count");
    if (strcmp(opt, "count") != 0)
        return luaL_error(L, "collectgarbage: only \"count\" is allowed in rules, not \"%s\"", opt);
    int kb = lua_gc(L, LUA_GCCOUNT, 0), b = lua_gc(L, LUA_GCCOUNTB, 0);
    lua_pushnumber(L, (lua_Number)kb + (lua_Number)b / 1024.0);
    return 1;
}

/* load(chunk [, chunkname [, mode [, env]]]): text only; the default
 * environment is the caller's own (upvalue 1), never the global table. */
static int sb_load(lua_State *L)
{
    int nargs = lua_gettop(L);
    const char *mode = luaL_optstring(L, 3, "t");
    lua_settop(L, 4); /* fixed slots for the arguments, below what we push */
    if (strcmp(mode, "t") != 0)
        return luaL_error(L, "load: only text chunks (mode \"t\") are allowed in rules");
    lua_getfield(L, LUA_REGISTRYINDEX, REG_BASE);
    lua_getfield(L, -1, "load");
    lua_pushvalue(L, 1);
    if (lua_isnoneornil(L, 2))
        lua_pushliteral(L, "=(load)");
    else
        lua_pushvalue(L, 2);
    lua_pushliteral(L, "t");
    if (nargs >= 4)
        lua_pushvalue(L, 4); /* an explicit env, even nil, as in stock load */
    else
        lua_pushvalue(L, lua_upvalueindex(1));
    lua_call(L, 4, 2); /* the function, or nil and a message */
    if (lua_isnil(L, -2))
        return 2;
    lua_pop(L, 1);
    return 1;
}

/* print(...): one rule.print line of at most PRINT_MAX bytes, as the
 * host's output meter allows. */
#define PRINT_MAX 4096

static int sb_print(lua_State *L)
{
    const struct sandbox_opts *o = lua_touserdata(L, lua_upvalueindex(2));
    if (o->meter && !o->meter->output(L))
        return 0;
    int n = lua_gettop(L);
    luaL_Buffer b;
    luaL_buffinit(L, &b);
    size_t len = 0;
    for (int i = 1; i <= n; i++) {
        size_t l;
        if (i > 1)
            luaL_addchar(&b, '\t');
        const char *str = luaL_tolstring(L, i, &l);
        if (len + l > PRINT_MAX) {
            lua_pushlstring(L, str, PRINT_MAX - len);
            lua_remove(L, -2);
            luaL_addvalue(&b);
            luaL_addstring(&b, "... (cut at 4096 bytes)");
            break;
        }
        luaL_addvalue(&b);
        len += l + 1;
    }
    luaL_pushresult(&b);
    TLOG(TLOG_INFO, "rule.print", LSTR("rule", lua_tostring(L, lua_upvalueindex(1))),
         LSTR("msg", lua_tostring(L, -1)));
    return 0;
}

/* ---- require ----------------------------------------------------------- */

static int valid_module_name(const char *n)
{
    size_t len = strlen(n);
    if (len == 0 || len > 128 || n[0] == '.' || n[len - 1] == '.' || strstr(n, ".."))
        return 0;
    for (const char *p = n; *p; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
              *p == '_' || *p == '.' || *p == '-'))
            return 0;
    return 1;
}

static int file_exists(const char *p)
{
    struct stat st;
    return stat(p, &st) == 0 && S_ISREG(st.st_mode);
}

/* Find name under one root as root/a/b.lua or root/a/b/init.lua. */
static int find_in(const char *root, const char *name, char *out, size_t n)
{
    char rel[256];
    snprintf(rel, sizeof rel, "%s", name);
    for (char *p = rel; *p; p++)
        if (*p == '.')
            *p = '/';
    snprintf(out, n, "%s/%s.lua", root, rel);
    if (file_exists(out))
        return 1;
    snprintf(out, n, "%s/%s/init.lua", root, rel);
    return file_exists(out);
}

/* A chunk name for messages: the root's last component and the path below
 * it ("rules/hello.lua"), short but unambiguous. */
void sandbox_chunk_name(const char *path, char *out, size_t n)
{
    const char *slash = strrchr(path, '/');
    const char *start = path;
    if (slash) {
        const char *p = slash;
        while (p > path && p[-1] != '/')
            p--;
        start = p;
    }
    size_t len = strlen(start);
    if (len > n - 2)
        len = n - 2; /* a very long name is cut; messages stay readable */
    out[0] = '@';
    memcpy(out + 1, start, len);
    out[len + 1] = '\0';
}

static int sb_require(lua_State *L)
{
    const char *name = luaL_checkstring(L, 1);
    int loaded = lua_upvalueindex(1);
    if (!valid_module_name(name))
        return luaL_error(L, "require: invalid module name '%s' (letters, digits, _ - and dots)",
                          name);
    if (lua_getfield(L, loaded, name) != LUA_TNIL) {
        if (lua_islightuserdata(L, -1))
            return luaL_error(L, "require: module '%s' requires itself (a require loop)", name);
        return 1;
    }
    lua_pop(L, 1);
    lua_pushlightuserdata(L, (void *)sb_require); /* loading sentinel */
    lua_setfield(L, loaded, name);

    const struct sandbox_opts *so = opts_of(L);
    char top[80];
    snprintf(top, sizeof top, "%.*s", (int)strcspn(name, "."), name);
    const struct lib_bundle *lib = so->libs ? lib_set_find(so->libs, top) : NULL;
    lua_getfield(L, LUA_REGISTRYINDEX, REG_PRELOAD);
    if (lua_getfield(L, -1, name) == LUA_TFUNCTION) {
        lua_pushstring(L, name);
        lua_call(L, 1, 1);
    } else if (lib) { /* a pinned library: its signed bundle, whatever lies in folders */
        lua_pop(L, 2);
        const struct lib_file *f = lib_module(lib, name);
        if (!f) {
            lua_pushnil(L);
            lua_setfield(L, loaded, name);
            return luaL_error(L, "require: library %s@%s has no module '%s'", lib->name,
                              lib->version, name);
        }
        char chunk[300];
        snprintf(chunk, sizeof chunk, "@%s@%s/%s", lib->name, lib->version, f->path);
        sandbox_new_env(L, chunk + 1);
        if (sandbox_load_buffer(L, f->data, f->len, chunk) != LUA_OK) {
            lua_pushnil(L);
            lua_setfield(L, loaded, name);
            return lua_error(L);
        }
        if (so->lib_loaded) {
            char at[160];
            snprintf(at, sizeof at, "%s@%s", lib->name, lib->version);
            so->lib_loaded(L, at);
        }
        lua_pushstring(L, name);
        lua_call(L, 1, 1);
    } else {
        lua_pop(L, 2);
        const struct sandbox_opts *o = opts_of(L);
        char path[4096];
        int found = o->scripts_dir && find_in(o->scripts_dir, name, path, sizeof path);
        for (size_t i = 0; !found && i < o->nlib; i++)
            found = find_in(o->lib_paths[i], name, path, sizeof path);
        if (!found && o->rules_dir)
            found = find_in(o->rules_dir, name, path, sizeof path);
        if (!found) {
            lua_pushnil(L);
            lua_setfield(L, loaded, name);
            return luaL_error(L,
                              "require: module '%s' not found (rules may require pure-Lua modules "
                              "from the engine library, the rules dir and lib_paths only)",
                              name);
        }
        char chunk[256];
        sandbox_chunk_name(path, chunk, sizeof chunk);
        sandbox_new_env(L, chunk + 1);
        if (sandbox_load_file(L, path, chunk) != LUA_OK) {
            lua_pushnil(L);
            lua_setfield(L, loaded, name);
            return lua_error(L);
        }
        lua_pushstring(L, name);
        lua_call(L, 1, 1);
    }
    if (lua_isnil(L, -1)) {
        lua_pop(L, 1);
        lua_pushboolean(L, 1);
    }
    lua_pushvalue(L, -1);
    lua_setfield(L, loaded, name);
    return 1;
}

/* ---- state setup ------------------------------------------------------- */

void sandbox_preload(lua_State *L, const char *name, lua_CFunction open)
{
    lua_getfield(L, LUA_REGISTRYINDEX, REG_PRELOAD);
    lua_pushcfunction(L, open);
    lua_setfield(L, -2, name);
    lua_pop(L, 1);
}

void sandbox_open(lua_State *L, const struct sandbox_opts *o)
{
    lua_pushlightuserdata(L, (void *)o);
    lua_setfield(L, LUA_REGISTRYINDEX, REG_OPTS);
    lua_newtable(L);
    lua_setfield(L, LUA_REGISTRYINDEX, REG_PRELOAD);
    lua_newtable(L); /* weak-keyed set of the threads rule calls run in */
    lua_createtable(L, 0, 1);
    lua_pushliteral(L, "k");
    lua_setfield(L, -2, "__mode");
    lua_setmetatable(L, -2);
    lua_setfield(L, LUA_REGISTRYINDEX, REG_HOSTTHREADS);

    luaL_requiref(L, "_G", luaopen_base, 0);
    static const char *const basefns[] = {
        "assert", "error",        "ipairs",   "next", "pairs",    "pcall",  "xpcall",
        "select", "tonumber",     "tostring", "type", "rawequal", "rawlen", "rawget",
        "rawset", "getmetatable", "_VERSION", "load", NULL};
    copy_fields(L, lua_gettop(L), basefns);
    safelib_push_xpcall(L, o->meter);
    lua_setfield(L, -2, "xpcall");
    safelib_push_setmetatable(L, o->meter);
    lua_setfield(L, -2, "setmetatable");
    lua_setfield(L, LUA_REGISTRYINDEX, REG_BASE);
    lua_pop(L, 1);

    /* string: no dump (reachable through ("").dump too), budgeted matcher,
     * and a metatable rules cannot fetch or change */
    luaL_requiref(L, "string", luaopen_string, 0);
    lua_pushnil(L);
    lua_setfield(L, -2, "dump");
    strmatch_install(L, lua_gettop(L), o->pattern_steps, o->meter ? &o->meter->steps : NULL);
    lua_pushliteral(L, "");
    lua_getmetatable(L, -1);
    lua_pushboolean(L, 0);
    lua_setfield(L, -2, "__metatable");
    lua_pop(L, 2);
    int string_idx = lua_gettop(L);

    luaL_requiref(L, "table", luaopen_table, 0);
    luaL_requiref(L, "math", luaopen_math, 0);
    luaL_requiref(L, "utf8", luaopen_utf8, 0);
    luaL_requiref(L, "coroutine", luaopen_coroutine, 0);
    luaL_requiref(L, "os", luaopen_os, 0);
    int first = string_idx;
    safelib_install(L, first + 1, string_idx, first + 4, o->meter);

    lua_createtable(L, 0, 6); /* the views */
    int libs = lua_gettop(L);
    static const char *const names[] = {"string", "table", "math", "utf8", "coroutine"};
    for (int i = 0; i < 5; i++) {
        lua_pushvalue(L, first + i);
        if (i == 4) { /* coroutine: what rules may use of it */
            int co = lua_gettop(L);
            static const char *const cofns[] = {"create", "isyieldable", "running",
                                                "status", "wrap",        "yield",
                                                "resume", "close",       NULL};
            copy_fields(L, co, cofns);
            lua_replace(L, co);
        }
        make_view(L, names[i]);
        lua_setfield(L, libs, names[i]);
    }
    static const char *const osfns[] = {"time", "clock", "date", "difftime", NULL};
    copy_fields(L, first + 5, osfns);
    make_view(L, "os");
    lua_setfield(L, libs, "os");
    lua_setfield(L, LUA_REGISTRYINDEX, REG_LIBS);
    lua_settop(L, string_idx - 1);

    /* The main state's global table is never handed to rule code; empty
     * it so nothing reaches a chunk that is loaded without an environment. */
    lua_pushglobaltable(L);
    lua_pushnil(L);
    while (lua_next(L, -2)) {
        lua_pop(L, 1);
        lua_pushvalue(L, -1);
        lua_pushnil(L);
        lua_rawset(L, -4);
    }
    lua_pop(L, 1);
}

void sandbox_new_env(lua_State *L, const char *name)
{
    lua_createtable(L, 0, 32);
    int env = lua_gettop(L);
    lua_getfield(L, LUA_REGISTRYINDEX, REG_BASE);
    static const char *const safe[] = {
        "assert", "error",        "ipairs",   "next",         "pairs",    "pcall",  "xpcall",
        "select", "tonumber",     "tostring", "type",         "rawequal", "rawlen", "rawget",
        "rawset", "getmetatable", "_VERSION", "setmetatable", NULL};
    for (const char *const *s = safe; *s; s++) {
        lua_getfield(L, -1, *s);
        lua_setfield(L, env, *s);
    }
    lua_pop(L, 1);
    lua_getfield(L, LUA_REGISTRYINDEX, REG_LIBS);
    lua_pushnil(L);
    while (lua_next(L, -2)) {
        lua_pushvalue(L, -2);
        lua_insert(L, -2);
        lua_settable(L, env);
    }
    lua_pop(L, 1);
    lua_getfield(L, env, "table");
    lua_getfield(L, -1, "unpack");
    lua_setfield(L, env, "unpack");
    lua_pop(L, 1);

    lua_pushcfunction(L, sb_collectgarbage);
    lua_setfield(L, env, "collectgarbage");
    lua_pushvalue(L, env);
    lua_pushcclosure(L, sb_load, 1);
    lua_setfield(L, env, "load");
    lua_pushstring(L, name);
    lua_getfield(L, LUA_REGISTRYINDEX, REG_OPTS);
    lua_pushcclosure(L, sb_print, 2);
    lua_setfield(L, env, "print");
    lua_newtable(L); /* this file's private require cache */
    lua_pushcclosure(L, sb_require, 1);
    lua_setfield(L, env, "require");
    lua_pushvalue(L, env);
    lua_setfield(L, env, "_G");
}

int sandbox_load_buffer(lua_State *L, const char *text, size_t len, const char *chunkname)
{
    int env = lua_gettop(L);
    int st = luaL_loadbufferx(L, text, len, chunkname, "t"); /* protected: never raises */
    if (st != LUA_OK) {
        lua_replace(L, env);
        lua_settop(L, env);
        return st;
    }
    lua_pushvalue(L, env);
    lua_setupvalue(L, -2, 1); /* _ENV */
    lua_replace(L, env);
    lua_settop(L, env);
    return LUA_OK;
}

int sandbox_load_file(lua_State *L, const char *path, const char *chunkname)
{
    int env = lua_gettop(L);
    /* a FIFO, a device or a huge file named *.lua is refused, never waited
     * on or read whole */
    char *text;
    size_t textlen;
    struct tikd_err e = {0};
    if (fileio_read_all(path, MAX_SOURCE, &text, &textlen, &e) != 0) {
        lua_pop(L, 1);
        const char *why = strstr(e.msg, ": ");
        lua_pushfstring(L, "%s%s", chunkname + 1,
                        e.code == TIKD_EFULL ? ": file larger than 4 MiB: not a rule file"
                        : why                ? why
                                             : ": cannot read");
        return LUA_ERRFILE;
    }
    int st = luaL_loadbufferx(L, text, textlen, chunkname, "t"); /* protected: never raises */
    free(text);
    if (st != LUA_OK) {
        lua_replace(L, env); /* message replaces env */
        lua_settop(L, env);
        return st;
    }
    lua_pushvalue(L, env);
    lua_setupvalue(L, -2, 1); /* _ENV */
    lua_replace(L, env);      /* function replaces env */
    lua_settop(L, env);
    return LUA_OK;
}
