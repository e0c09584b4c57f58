/* lua_modules.c - the table of C modules preloaded into rule states. */
#include "lua_modules.h"

#include <jansson.h>

#include "../core/intake.h"

#include <lua-cjson.h>

const struct host_module host_modules[] = {
    {"tikd.time", luaopen_tikd_time},
    {"tikd.log", luaopen_tikd_log},
    {"tikd.http", luaopen_tikd_http},
    {"tikd.oauth", luaopen_tikd_oauth},
    {"tikd.upload", luaopen_tikd_upload},
    {"tikd.ratelimit", luaopen_tikd_ratelimit},
    {"tikd.kv", luaopen_tikd_kv},
    {"tikd.cron", luaopen_tikd_cron},
    {"tikd.schedule", luaopen_tikd_schedule},
    {"cjson", luaopen_cjson}, /* a fresh instance (own settings) per environment */
    {NULL, NULL},
};

void lua_push_media_item(lua_State *L, const struct intake_item *it)
{
    lua_createtable(L, 0, 6);
    lua_pushstring(L, it->path);
    lua_setfield(L, -2, "path");
    lua_pushstring(L, it->name);
    lua_setfield(L, -2, "name");
    lua_pushstring(L, it->folder);
    lua_setfield(L, -2, "folder");
    lua_pushstring(L, it->hash);
    lua_setfield(L, -2, "hash");
    lua_pushinteger(L, (lua_Integer)it->size);
    lua_setfield(L, -2, "size");
    json_t *meta = it->sidecar[0] ? json_loads(it->sidecar, JSON_DECODE_ANY, NULL) : NULL;
    if (meta) {
        lua_push_json(L, meta);
        json_decref(meta);
        lua_setfield(L, -2, "meta");
    }
}

static int push_media_p(lua_State *L)
{
    lua_push_media_item(L, lua_touserdata(L, 1));
    return 1;
}

int lua_push_media_arg(lua_State *L, void *item)
{
    lua_pushcfunction(L, push_media_p);
    lua_pushlightuserdata(L, item);
    if (lua_pcall(L, 1, 1, 0) != LUA_OK) {
        lua_pop(L, 1);
        lua_pushnil(L);
    }
    return 1;
}
