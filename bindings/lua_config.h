/* lua_config.h - reading tikd's config file.
 *
 * The file is Lua, evaluated in an empty sandbox (no libraries, a small
 * instruction budget): plain assignments, with sections as tables:
 *     data_dir = "/var/lib/tikd"
 *     log = { level = "info", format = "json" }
 *     tiktok = { api_url = "https://open.tiktokapis.com" }
 * Each value goes through config_set(), which owns every check. */
#ifndef TIKD_LUA_CONFIG_H
#define TIKD_LUA_CONFIG_H

#include "../core/config.h"

/* Defaults, then the file at path (NULL: none), then the environment, then
 * config_finish(). On failure c holds defaults-or-partial values the caller
 * must still config_free(). */
int config_load(struct tikd_config *c, const char *path, struct tikd_err *e);

#endif
