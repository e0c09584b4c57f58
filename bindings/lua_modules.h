/* lua_modules.h - the C modules every rule state can require().
 *
 * Each tikd.* module is a thin Lua face of one core mechanism, one file
 * each (bindings/lua_<module>.c); this table is the only list of them. */
#ifndef TIKD_LUA_MODULES_H
#define TIKD_LUA_MODULES_H

#include <lua.h>

struct host_module {
    const char *name;
    lua_CFunction open;
};

/* NULL-terminated. */
extern const struct host_module host_modules[];

int luaopen_tikd_time(lua_State *L);      /* bindings/lua_time.c: sleep, now */
int luaopen_tikd_log(lua_State *L);       /* bindings/lua_log.c: debug, info, warn, error */
int luaopen_tikd_http(lua_State *L);      /* bindings/lua_http.c: request */
int luaopen_tikd_oauth(lua_State *L);     /* bindings/lua_oauth.c: account handles */
int luaopen_tikd_upload(lua_State *L);    /* bindings/lua_upload.c: post, status, await */
int luaopen_tikd_media(lua_State *L);     /* bindings/lua_media.c: probe */
int luaopen_tikd_ratelimit(lua_State *L); /* bindings/lua_ratelimit.c: new, budget */
int luaopen_tikd_kv(lua_State *L);        /* bindings/lua_kv.c: get, set, incr, keys */
int luaopen_tikd_cron(lua_State *L);      /* bindings/lua_cron.c: parse, localtime, time, zone_ok */
int luaopen_tikd_schedule(
    lua_State *L); /* bindings/lua_schedule.c: account, schedule, every, at, next_slot */
int luaopen_tikd_json(lua_State *L); /* bindings/lua_json.c: encode, decode, null (also "cjson") */

/* bindings/lua_test.c: the C half of tikd.test (scripts/tikd/test.lua), preloaded as
 * "tikd.test.host" in test mode only (host_opts.test) */
int luaopen_tikd_test(lua_State *L);

struct json_t;
/* Push a JSON value as Lua values (objects and arrays as new tables,
 * integers exact, null as nil). May raise (memory). */
void lua_push_json(lua_State *L, struct json_t *j);

#endif
