/* lua_safelib.h - the standard functions rules get in place of Lua's own,
 * where Lua's would let rule code escape a budget.
 *
 * - C work is charged to the call: table.insert/remove/move/concat/unpack/
 *   sort by the elements they touch, string.rep/upper/lower/reverse by the
 *   bytes they write (the count hook sees none of it).
 * - No rule code runs once the call's budget is spent: xpcall's message
 *   handler and the <close> handlers of a coroutine that died in the budget
 *   error are skipped (Lua would run them with hooks off).
 * - The running Lua thread is known to the wall clock, so its signal arms
 *   the hook of the coroutine that is running (lua_deadline.h).
 * - setmetatable keeps a private copy of the metamethods: later edits of the
 *   rule's table change nothing Lua consults (a __call that is not a
 *   function, or a __gc added afterwards, would run C with no instruction
 *   counted or Lua with hooks off).
 *
 * Each function takes the meters (may be NULL: nothing is charged) as an
 * upvalue. */
#ifndef TIKD_LUA_SAFELIB_H
#define TIKD_LUA_SAFELIB_H

#include <lua.h>

#include "lua_sandbox.h"

/* Replace the functions named above in the real library tables at `table`,
 * `string` and `coroutine` (stack indexes). */
void safelib_install(lua_State *L, int table, int string, int coroutine,
                     const struct sandbox_meters *m);

/* Push the rule's setmetatable / xpcall. */
void safelib_push_setmetatable(lua_State *L, const struct sandbox_meters *m);
void safelib_push_xpcall(lua_State *L, const struct sandbox_meters *m);

/* True if the thread at idx runs a rule call of the host's (rule code may
 * not resume or close it). */
int safelib_is_host_thread(lua_State *L, int idx);

#define REG_HOSTTHREADS "tikd.host.threads"

#endif
