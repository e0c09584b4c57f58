/*
 * lua_strmatch.h - step-budgeted string.find/match/gmatch/gsub for rule states.
 */
#ifndef TIKD_LUA_STRMATCH_H
#define TIKD_LUA_STRMATCH_H

#include <lua.h>

/* A budget that spans many library calls (a rule call's): steps(L) gives
 * the steps it has left (NULL: no budget now), which the matcher counts
 * down; out(L) is called, and must raise, when they run out. */
struct strmatch_meter {
    lua_Integer *(*steps)(lua_State *L);
    void (*out)(lua_State *L);
};

/* Replace find, match, gmatch and gsub in the table at stack index `idx`
 * (the real `string` library table of a rule state) with versions that behave
 * exactly like Lua 5.4's but abort a call with a Lua error once its matcher has
 * taken more than `max_steps` steps, or once `meter` (may be NULL; it must
 * outlive the state) has none left. */
void strmatch_install(lua_State *L, int idx, lua_Integer max_steps,
                      const struct strmatch_meter *meter);

#endif /* TIKD_LUA_STRMATCH_H */
