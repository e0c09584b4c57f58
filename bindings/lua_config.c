/* lua_config.c - evaluate the config file and feed config_set() (see
 * lua_config.h). Keys are applied in sorted order so the first error
 * reported for a file is always the same one. */
#include "lua_config.h"

#include <lauxlib.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <lualib.h>
#include <stdlib.h>
#include <string.h>

#include "../core/fileio.h"

#define CONFIG_BUDGET    1000000
#define CONFIG_LIST_MAX  10000         /* items in one list value */
#define CONFIG_DEPTH_MAX 8             /* sections in sections */
#define CONFIG_MAX       (1024 * 1024) /* bytes: a config file is a page of assignments */

static void config_hook(lua_State *L, lua_Debug *ar)
{
    (void)ar;
    luaL_error(L, "the config file ran too long (it should only assign values)");
}

struct walk {
    struct tikd_config *c;
    struct tikd_err *e;
    const char *path;
};

static const char *getenv_const(const char *name)
{
    return getenv(name);
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static int is_list(lua_State *L, int t)
{
    lua_Integer n = (lua_Integer)lua_rawlen(L, t), count = 0;
    lua_pushnil(L);
    while (lua_next(L, t)) {
        count++;
        lua_pop(L, 1);
    }
    return count == n;
}

static int apply_table(lua_State *L, int t, const char *prefix, struct walk *w);

/* Apply the value on top of the stack to key `name`. */
static int apply_value(lua_State *L, const char *name, struct walk *w)
{
    int v = lua_gettop(L);
    struct config_value cv = {0};
    switch (lua_type(L, v)) {
    case LUA_TSTRING:
        cv.type = CV_STR;
        cv.s = lua_tostring(L, v);
        break;
    case LUA_TNUMBER:
        if (lua_isinteger(L, v)) {
            cv.type = CV_INT;
            cv.i = lua_tointeger(L, v);
        } else {
            cv.type = CV_NUM;
            cv.d = lua_tonumber(L, v);
        }
        break;
    case LUA_TBOOLEAN:
        cv.type = CV_BOOL;
        cv.b = lua_toboolean(L, v);
        break;
    case LUA_TTABLE:
        /* an array is a list value; a table with names is a section; {} is
         * an empty list where the key takes one, else an empty section */
        if (is_list(L, v) && (lua_rawlen(L, v) > 0 || config_has_key(name))) {
            if (!is_list(L, v))
                return tikd_fail(w->e, TIKD_EINVAL,
                                 "config: key '%s': a list must hold only items, not keys", name);
            size_t n = lua_rawlen(L, v);
            /* every item stays on the stack while config_set copies it */
            if (n > CONFIG_LIST_MAX || !lua_checkstack(L, (int)n))
                return tikd_fail(w->e, TIKD_EINVAL,
                                 "config: key '%s': a list of %zu items is too long (at most %d)",
                                 name, n, CONFIG_LIST_MAX);
            const char **items = calloc(n + 1, sizeof *items);
            if (!items)
                return tikd_fail(w->e, TIKD_ENOMEM, "config: out of memory");
            for (size_t i = 0; i < n; i++) {
                lua_rawgeti(L, v, (lua_Integer)i + 1);
                items[i] = lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1) : NULL;
                /* leave it on the stack so the string stays alive */
            }
            cv.type = CV_LIST;
            cv.list = items;
            cv.nlist = n;
            int rc = config_set(w->c, name, &cv, w->e);
            free(items);
            lua_settop(L, v);
            return rc;
        }
        {
            int depth = 0;
            for (const char *d = name; *d; d++)
                depth += *d == '.';
            if (depth >= CONFIG_DEPTH_MAX) /* config keys are two or three levels deep */
                return tikd_fail(w->e, TIKD_EINVAL,
                                 "config: key '%.200s...': sections nest too deep (a table that "
                                 "holds itself?)",
                                 name);
        }
        /* tenants.NAME = { ... }: the tenant exists even with every key left
         * to its default */
        if (strncmp(name, "tenants.", 8) == 0 && !strchr(name + 8, '.')) {
            int rc = config_tenant_add(w->c, name + 8, w->e);
            if (rc != 0)
                return rc;
        }
        return apply_table(L, v, name, w);
    default:
        return tikd_fail(w->e, TIKD_EINVAL, "config: key '%s': a %s value is not allowed", name,
                         luaL_typename(L, v));
    }
    return config_set(w->c, name, &cv, w->e);
}

static int apply_table(lua_State *L, int t, const char *prefix, struct walk *w)
{
    size_t n = 0, cap = 16;
    char **names = malloc(cap * sizeof *names);
    if (!names)
        return tikd_fail(w->e, TIKD_ENOMEM, "config: out of memory");
    int rc = 0;
    lua_pushnil(L);
    while (lua_next(L, t)) {
        lua_pop(L, 1);
        if (lua_type(L, -1) != LUA_TSTRING) {
            rc = tikd_fail(w->e, TIKD_EINVAL,
                           "config: %s%s%s holds a value without a name (only name = value "
                           "assignments are allowed)",
                           prefix ? "section '" : "the file", prefix ? prefix : "",
                           prefix ? "'" : "");
            lua_pop(L, 1);
            break;
        }
        if (n == cap) {
            char **g = realloc(names, (cap *= 2) * sizeof *names);
            if (!g) {
                rc = tikd_fail(w->e, TIKD_ENOMEM, "config: out of memory");
                lua_pop(L, 1);
                break;
            }
            names = g;
        }
        const char *k = lua_tostring(L, -1);
        size_t need = strlen(k) + (prefix ? strlen(prefix) + 2 : 1);
        names[n] = malloc(need);
        if (!names[n]) {
            rc = tikd_fail(w->e, TIKD_ENOMEM, "config: out of memory");
            lua_pop(L, 1);
            break;
        }
        snprintf(names[n], need, "%s%s%s", prefix ? prefix : "", prefix ? "." : "", k);
        n++;
    }
    if (rc == 0)
        qsort(names, n, sizeof *names, cmp_str);
    for (size_t i = 0; i < n && rc == 0; i++) {
        const char *leaf = prefix ? names[i] + strlen(prefix) + 1 : names[i];
        lua_getfield(L, t, leaf);
        rc = apply_value(L, names[i], w);
        lua_settop(L, t);
    }
    for (size_t i = 0; i < n; i++)
        free(names[i]);
    free(names);
    return rc;
}

/* Protected: evaluate the file and apply what it assigned. */
static int eval_file(lua_State *L)
{
    struct walk *w = lua_touserdata(L, 1);
    /* a FIFO or a device named as the config is refused, never waited on */
    char *text;
    size_t len;
    struct tikd_err fe = {0};
    if (fileio_read_all(w->path, CONFIG_MAX, &text, &len, &fe) != 0)
        return luaL_error(L, "%s", fe.msg);
    lua_pushfstring(L, "@%s", w->path);
    int st = luaL_loadbufferx(L, text, len, lua_tostring(L, -1), "t");
    free(text);
    if (st != LUA_OK)
        return lua_error(L);
    lua_remove(L, -2);
    lua_newtable(L); /* the file's globals */
    lua_pushvalue(L, -1);
    lua_setupvalue(L, -3, 1);
    lua_insert(L, -2);
    lua_sethook(L, config_hook, LUA_MASKCOUNT, CONFIG_BUDGET);
    lua_call(L, 0, 1);
    lua_sethook(L, NULL, 0, 0);
    if (!lua_isnil(L, -1) && !lua_istable(L, -1))
        return luaL_error(L, "%s: returned a %s: a config file sets values or returns a table",
                          w->path, luaL_typename(L, -1));
    int t = lua_istable(L, -1) ? lua_gettop(L) : lua_gettop(L) - 1; /* `return {...}` or globals */
    lua_pushinteger(L, apply_table(L, t, NULL, w));
    return 1;
}

int config_load(struct tikd_config *c, const char *path, struct tikd_err *e)
{
    config_init(c);
    if (path) {
        char real[PATH_MAX];
        if (!realpath(path, real))
            return tikd_fail(e, TIKD_EIO, "config: cannot read %s: %s", path, strerror(errno));
        char *slash = strrchr(real, '/');
        if (slash)
            *slash = '\0';
        c->base_dir = strdup(real[0] ? real : "/");
        lua_State *L = luaL_newstate();
        if (!L)
            return tikd_fail(e, TIKD_ENOMEM, "config: out of memory");
        struct walk w = {c, e, path};
        tikd_err_clear(e);
        lua_pushcfunction(L, eval_file);
        lua_pushlightuserdata(L, &w);
        int rc;
        if (lua_pcall(L, 1, 1, 0) != LUA_OK) {
            const char *msg = lua_tostring(L, -1);
            rc = tikd_fail(e, TIKD_EINVAL, "config: %s", msg ? msg : "error in the config file");
        } else {
            rc = (int)lua_tointeger(L, -1);
        }
        lua_close(L);
        if (rc != 0)
            return rc;
    }
    int rc = config_apply_env(c, getenv_const, e);
    if (rc == 0)
        rc = config_finish(c, e);
    return rc;
}
