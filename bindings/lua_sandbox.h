/* lua_sandbox.h - the restricted environment every rule file, library module
 * and engine script runs in.
 *
 * Rule code is hostile (agencies share rule libraries), so each file gets its
 * own environment table holding only safe functions and read-only views of
 * the shared libraries, and a private require() cache, so no file can change
 * what another file sees. */
#ifndef TIKD_LUA_SANDBOX_H
#define TIKD_LUA_SANDBOX_H

#include <lua.h>
#include <stdbool.h>

#include "lua_strmatch.h"

/* The host's budgets, as the sandbox's C functions need them (every field
 * set; see lua_host.h for what each does). */
struct sandbox_meters {
    struct strmatch_meter steps;               /* matcher steps of the call */
    void (*charge)(lua_State *L, lua_Integer); /* C work, in instructions */
    bool (*spent)(lua_State *L);               /* the call has run out */
    bool (*output)(lua_State *L);              /* one more line of output? */
};

struct lib_set;

struct sandbox_opts {
    const char *scripts_dir;      /* the engine's Lua library */
    const char *rules_dir;        /* rule files; also a require() root */
    const char *const *lib_paths; /* further require() roots */
    size_t nlib;
    lua_Integer pattern_steps;          /* budget per string.find/match/gmatch/gsub */
    const struct sandbox_meters *meter; /* NULL: only the per-function budgets */
    const struct lib_set *libs;         /* pinned shared libraries: require() of one of their names
                                         * loads from the signed bundle only, never a folder */
    void (*lib_loaded)(lua_State *L, const char *name_at_version); /* NULL: not told */
};

/* Prepare a fresh state: open the safe standard libraries, strip and lock
 * the shared string metatable, install the budgeted pattern matcher and
 * build the read-only library views. Call once, right after lua_newstate(). */
void sandbox_open(lua_State *L, const struct sandbox_opts *o);

/* Register a C module that require(name) returns (a fresh instance per
 * environment, like package.preload). */
void sandbox_preload(lua_State *L, const char *name, lua_CFunction open);

/* Push a new environment table for the file called `name` (used in messages
 * and as the rule's identity for print()). */
void sandbox_new_env(lua_State *L, const char *name);

/* Load file `path` as a text chunk named `chunkname` with the environment
 * at the top of the stack as its _ENV; pushes the function or returns a
 * non-zero status with the message pushed. The environment is popped. */
int sandbox_load_file(lua_State *L, const char *path, const char *chunkname);

/* The same for text in memory (a library module from its bundle). */
int sandbox_load_buffer(lua_State *L, const char *text, size_t len, const char *chunkname);

/* The chunk name for a file: "@" + its folder's name + "/" + its name
 * ("@rules/hello.lua"), so messages read "rules/hello.lua:3: ...". */
void sandbox_chunk_name(const char *path, char *out, size_t n);

#endif
