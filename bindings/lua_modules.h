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
int luaopen_tikd_ratelimit(lua_State *L); /* bindings/lua_ratelimit.c: new, budget */
int luaopen_tikd_kv(lua_State *L);        /* bindings/lua_kv.c: get, set, incr, keys */
int luaopen_tikd_cron(lua_State *L);      /* bindings/lua_cron.c: parse, localtime, time, zone_ok */
int luaopen_tikd_schedule(
    lua_State *L); /* bindings/lua_schedule.c: account, schedule, every, at, next_slot */

/* bindings/lua_test.c: the C half of tikd.test (scripts/tikd/test.lua), preloaded as
 * "tikd.test.host" in test mode only (host_opts.test) */
int luaopen_tikd_test(lua_State *L);

struct job;
/* Push a job as the table rules see (tikd.upload, on_published, on_failed):
 * id, account, state, final, mode, kind, caption, privacy, reason,
 * publish_id, post_ids (a string), chosen_by. Never a token. */
void lua_push_job(lua_State *L, const struct job *j);

struct json_t;
/* Push a JSON value as Lua values (objects and arrays as new tables,
 * integers exact, null as nil). May raise (memory). */
void lua_push_json(lua_State *L, struct json_t *j);

struct intake_item;
/* Push a media item as on_media sees it: path, name, folder, hash (SHA-256
 * of the content), size, and meta (the decoded sidecar NAME.json, or nil). */
void lua_push_media_item(lua_State *L, const struct intake_item *it);

/* The same as on_media's argument (a host_push_fn; item is a struct
 * intake_item), under lua_pcall: a sidecar nested too deeply or a state out
 * of memory gives the hook nil instead of raising outside any protected
 * call. */
int lua_push_media_arg(lua_State *L, void *item);

#endif
