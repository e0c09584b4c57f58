/* lua_args.h - reading the fields of a table a rule hands to a tikd.*
 * function (`tikd.upload.post{ ... }`), one family like lauxlib's
 * luaL_check*:
 *
 *   struct args a = args_table(L, 1, "tikd.upload.post");
 *   const char *caption = args_str(&a, "caption", NULL);
 *   bool draft = args_bool(&a, "draft", false);
 *
 * Every field is read raw (lua_rawget), so no metamethod of the rule's table
 * runs while C reads it, and its type is checked: absent or nil gives the
 * default; anything else of the wrong type raises "tikd.upload.post: field
 * 'caption' must be a string, not a number" at the rule's line. A string
 * stays valid while the table holds it. */
#ifndef TIKD_LUA_ARGS_H
#define TIKD_LUA_ARGS_H

#include <lua.h>
#include <stdbool.h>
#include <stddef.h>

struct args {
    lua_State *L;
    int t;          /* absolute index of the table */
    const char *fn; /* for messages */
};

/* The table at argument arg (raises unless it is a table). */
struct args args_table(lua_State *L, int arg, const char *fn);

const char *args_str(const struct args *a, const char *k, const char *dflt);
/* ... with its length (*n is 0 for the default). */
const char *args_lstr(const struct args *a, const char *k, const char *dflt, size_t *n);
bool args_bool(const struct args *a, const char *k, bool dflt);
/* A number from min to max (NaN never is). */
double args_num(const struct args *a, const char *k, double dflt, double min, double max);
/* An integer from min to max. */
lua_Integer args_int(const struct args *a, const char *k, lua_Integer dflt, lua_Integer min,
                     lua_Integer max);

/* Push field k (raw) and return its type; the caller pops it. A value of a
 * type other than `want` (and not nil) raises, naming what was wanted. */
int args_push(const struct args *a, const char *k, int want);

/* Push field k (raw), whatever its type, and return the type. */
int args_get(const struct args *a, const char *k);

/* Raise "fn: field 'k' <what>" (never returns). */
int args_error(const struct args *a, const char *k, const char *what);

#endif
