/*
 * lua_strmatch.h - step-budgeted string.find/match/gmatch/gsub for rule states.
 */
#ifndef TIKD_LUA_STRMATCH_H
#define TIKD_LUA_STRMATCH_H

#include <lua.h>

/* Replace find, match, gmatch and gsub in the table at stack index `idx`
 * (the real `string` library table of a rule state) with versions that behave
 * exactly like Lua 5.4's but abort a call with a Lua error once its matcher has
 * taken more than `max_steps` steps. */
void strmatch_install(lua_State *L, int idx, lua_Integer max_steps);

#endif /* TIKD_LUA_STRMATCH_H */
