/* lua_modules.c - the table of C modules preloaded into rule states. */
#include "lua_modules.h"

const struct host_module host_modules[] = {
    {"tikd.time", luaopen_tikd_time},
    {"tikd.log", luaopen_tikd_log},
    {"tikd.http", luaopen_tikd_http},
    {"tikd.oauth", luaopen_tikd_oauth},
    {"tikd.upload", luaopen_tikd_upload},
    {"tikd.media", luaopen_tikd_media},
    {"tikd.ratelimit", luaopen_tikd_ratelimit},
    {"tikd.kv", luaopen_tikd_kv},
    {"tikd.cron", luaopen_tikd_cron},
    {"tikd.schedule", luaopen_tikd_schedule},
    {"tikd.json", luaopen_tikd_json},
    {"cjson", luaopen_tikd_json}, /* the same module under lua-cjson's name */
    {NULL, NULL},
};
