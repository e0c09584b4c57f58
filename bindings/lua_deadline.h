/* lua_deadline.h - a wall clock for rule calls that holds inside C.
 *
 * The count hook only runs between VM instructions, and only every so many;
 * a single instruction can spend long in C (a concat of two large strings, a
 * library function). So a POSIX timer sends the thread that runs rule code a
 * signal when the running call's time is up, and the handler arms that Lua
 * thread's hook to fire on its very next instruction (lua_sethook is safe
 * from a signal handler; lua.c stops scripts on Ctrl-C the same way).
 *
 * The timer is armed lazily and left running while calls keep coming: most
 * calls cost two clock reads and no system call.
 *
 * One thread runs rule code (the loop thread). Nested calls (a rule test
 * calling into the rules it tests) save and restore the running slice. */
#ifndef TIKD_LUA_DEADLINE_H
#define TIKD_LUA_DEADLINE_H

#include <lua.h>
#include <stdbool.h>
#include <stdint.h>

/* A slice of a call on the loop: from deadline_enter to deadline_leave. */
struct deadline_slice {
    int64_t start_ns;
    int64_t deadline_ns;
    lua_State *thread, *saved_thread;
    int64_t saved_deadline;
    bool saved_expired;
};

/* Nanoseconds on the monotonic clock. */
int64_t deadline_now(void);

/* L starts running with `left_ns` of its call's time budget left; when it
 * runs out, L's hook is set to `hook` with a count of 1 and
 * deadline_expired() turns true. */
void deadline_enter(struct deadline_slice *s, lua_State *L, int64_t left_ns, lua_Hook hook);

/* The Lua thread running now changed (a rule resumed or left one of its own
 * coroutines): the signal arms that one's hook. */
lua_State *deadline_switch(lua_State *L);

/* True once the running slice passed its deadline. */
bool deadline_expired(void);

/* The slice ends; returns the nanoseconds it took. */
int64_t deadline_leave(struct deadline_slice *s);

#endif
