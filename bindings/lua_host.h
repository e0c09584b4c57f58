/* lua_host.h - rule generations and the coroutine runner.
 *
 * A generation is one fresh, sandboxed lua_State holding the engine's Lua
 * library and every rule file of the rules dir, each in its own environment.
 * C calls into it only through gen_call(): each call runs in a new coroutine
 * with its own instruction and memory budget; an async primitive (tikd.sleep,
 * later tikd.http) parks the coroutine with host_wait() and the event loop
 * resumes it with host_wake(). A generation lives while it is current or has
 * a call running, so a reload never cuts a call short.
 *
 * Single-threaded: everything here runs on the loop thread. */
#ifndef TIKD_LUA_HOST_H
#define TIKD_LUA_HOST_H

#include <lauxlib.h>
#include <lua.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../core/err.h"

struct ev_loop;
struct http;
struct store;
struct gen;
struct call;

struct rl_config;
struct lib_set;
struct account;

struct host_opts {
    const char *scripts_dir;      /* the engine's Lua library (scripts/) */
    const char *rules_dir;        /* rule files: every *.lua except *_test.lua */
    const char *const *lib_paths; /* further require() roots */
    size_t nlib;
    long long instructions;        /* per call */
    size_t call_memory;            /* bytes a call may grow the state by */
    size_t state_memory;           /* bytes the whole state may hold */
    size_t rule_memory;            /* bytes one rule file may hold (0: state_memory) */
    long long pattern_steps;       /* matcher steps per call */
    double call_time;              /* seconds a call may run on the loop (0: no bound) */
    struct ev_loop *loop;          /* NULL: no async primitives (rules check) */
    struct http *http;             /* for tikd.http; NULL: not available */
    struct store *store;           /* for tikd.oauth (account handles); NULL: not available */
    const char *const *http_allow; /* hosts tikd.http may reach (http.allow_hosts) */
    size_t nallow;
    const char *const *media_roots; /* folders tikd.upload may post from */
    size_t nroots;
    const char *const *intake; /* the watched folders whose media these rules are offered */
    size_t nintake;
    const struct rl_config *limits; /* TikTok's budgets, for tikd.ratelimit.budget */
    void (*jobs_changed)(void *ud); /* tikd.upload planned a job: wake the pipeline */
    void *jobs_ud;
    bool (*plans_for)(void *ud, const char *account); /* a cluster: false when another node
                                                       * holds the account (its rules plan
                                                       * for it), or NULL */
    const char *const *extra_files; /* loaded after the rules, each as one more rule file
                                     * (`tikd rules test` adds the test file) */
    size_t nextra;
    const char *tenant;      /* the tenant whose rules these are: they see only its accounts,
                              * jobs and kv (NULL: no tenants configured, every account) */
    const char *const *pins; /* shared libraries, "name=range": resolved among the installed
                              * bundles at each build (core/libs); require() of a pinned
                              * name loads only from its bundle */
    size_t npins;
    const char *const *trust; /* the keys those bundles must be signed by */
    size_t ntrust;
    bool test;            /* test mode: require "tikd.test" works (and only then) */
    const char *test_dir; /* test mode: a scratch folder tikd.test may write media into */
};

/* Errors found while building a generation, one "file:line: message" each
 * (extra files count as rule files). */
struct gen_report {
    size_t nfiles;
    size_t nerrors;
    char **errors;
};
void gen_report_free(struct gen_report *r);

/* Build generation `id` from o (copied). On success *out holds one reference.
 * If any rule file fails to load, every error is listed in rep and the
 * generation is discarded (TIKD_ESCRIPT). */
int gen_build(const struct host_opts *o, unsigned id, struct gen **out, struct gen_report *rep,
              struct tikd_err *e);

void gen_retain(struct gen *g);
/* Drop a reference; the state closes when the last one (owner or running
 * call) goes. */
void gen_release(struct gen *g);

unsigned gen_id(const struct gen *g);
size_t gen_rule_count(const struct gen *g);
const char *gen_rule_name(const struct gen *g, size_t i);
/* True if rule i defines a global function called fn. */
bool gen_rule_has(struct gen *g, size_t i, const char *fn);
/* Call each(ud, name, line) for every global function of rule i whose name
 * starts with prefix, in no particular order; line is where the function is
 * defined (-1 for a C function). Lua is not touched during each. */
void gen_rule_functions(struct gen *g, size_t i, const char *prefix,
                        void (*each)(void *ud, const char *name, int line), void *ud);
/* Calls started and not yet finished. */
size_t gen_live_calls(const struct gen *g);
/* Bytes the state holds now. */
size_t gen_memory(const struct gen *g);

/* How a call ended. */
struct call_result {
    bool ok;
    bool budget;       /* ended by its instruction or memory budget */
    bool cancelled;    /* ended by gen_cancel_all (shutdown), not by itself */
    const char *rule;  /* rule file name */
    const char *fn;    /* function called */
    const char *error; /* message with file:line, when !ok */
    lua_State *L;      /* results on its stack when ok (valid during done) */
    int nresults;
};

/* Push arguments for a call; returns how many. */
typedef int (*host_push_fn)(lua_State *L, void *ud);
typedef void (*host_done_fn)(void *ud, const struct call_result *r);

/* Start fn of rule i in a new coroutine with arguments from push (may be
 * NULL). done (may be NULL) is called exactly once, when it returns, fails,
 * runs out of budget or is cancelled, possibly before gen_call returns.
 * Returns TIKD_ENOTFOUND if the rule has no such function. */
int gen_call(struct gen *g, size_t rule, const char *fn, host_push_fn push, void *push_ud,
             host_done_fn done, void *done_ud);

/* Cancel every running call of g (shutdown): each done sees !ok and
 * `reason`. */
void gen_cancel_all(struct gen *g, const char *reason);

/* ---- for async primitives (bindings/lua_*.c) ------------------------- */

/* The call whose own coroutine is L, if L may wait; otherwise raises a Lua
 * error naming `what` and why it cannot wait here. Never returns NULL. */
struct call *host_check_wait(lua_State *L, const char *what);

/* The same question without raising: the call, or NULL when L cannot wait
 * here (a primitive that can also work synchronously asks this). */
struct call *host_can_wait(lua_State *L);

/* A local media file a rule names: resolved (symlinks and ".." followed)
 * into out, NULL when it lies under one of o's media roots, else the
 * problem ("is not a readable file under media_roots"). */
const char *host_media_file(const struct host_opts *o, const char *path, char *out, size_t n);

/* The event loop async primitives run on (raises if there is none). */
struct ev_loop *host_loop(lua_State *L, const char *what);

/* Park call c: returns a ticket for host_wake(). cancel(ud) is called if the
 * call is cancelled while parked; it must release what the wait holds.
 * Then `return lua_yield(L, 0);`. */
uint64_t host_wait(struct call *c, void (*cancel)(void *ud), void *ud);

/* Resume call c from the loop with results from push. A ticket that is not
 * the call's current one (a stale completion) is ignored. */
void host_wake(struct call *c, uint64_t ticket, host_push_fn push, void *ud);

/* A module's C state for the generation of L under key (a string constant):
 * made with make() on first use, freed with free_fn with the generation.
 * NULL without make when there is none yet (or when out of slots/memory). */
void *host_ext(lua_State *L, const char *key, void *(*make)(void), void (*free_fn)(void *));
/* The same, from outside (the daemon reads what a generation declared). */
void *gen_ext_get(struct gen *g, const char *key);

/* True while L's generation is loading its rule files (declarations are
 * allowed then, and only then). */
bool host_loading(lua_State *L);

/* The database of L's generation; raises "<what> is not available here" when
 * there is none (`tikd rules check`). */
struct store *host_store(lua_State *L, const char *what);

/* Register the metatable `name` of a module's userdata: methods as __index,
 * tostring as __tostring, and locked (getmetatable gives "locked"). */
void host_class(lua_State *L, const char *name, const luaL_Reg *methods, lua_CFunction tostring);

/* The options the generation of L was built with (valid while it lives). */
const struct host_opts *host_opts_of(lua_State *L);

/* The id of the generation L belongs to. */
unsigned host_gen_id(lua_State *L);

/* The generation L belongs to, for bindings that call into other rules
 * (tikd.test): not a reference, valid while the calling code runs. */
struct gen *host_gen(lua_State *L);

/* Charge C work of a library function to the running call's instruction
 * budget (one unit is about one VM instruction); raises the budget error,
 * at the rule's line, when it runs out. */
void host_charge(lua_State *L, lua_Integer units);

/* True once the running call ran out of a budget: nothing of the rule may
 * run any more (message handlers, coroutine closes). */
bool host_spent(lua_State *L);

/* May the running call write one more line of output (print, tikd.log)?
 * False past 200 lines per call or 1200 per rule file per minute; the lines
 * held back are counted in one rule.output_suppressed line. */
bool host_output(lua_State *L);

/* The rule file whose call (or load) is running now, for messages. */
const char *host_rule(lua_State *L);

/* The tenant of L's generation (NULL: no tenants). */
const char *host_tenant(lua_State *L);

/* May the rules of L see account a (its tenant's, or no tenants)? Every
 * binding asks before it tells or does anything about an account, and says
 * of one it may not see what it says of one that does not exist. */
bool host_sees(lua_State *L, const struct account *a);

/* Who a rule's choice is on the record as: "rule:FILE@genN". */
void host_who(lua_State *L, char *out, size_t n);

/* The shared libraries (name@version, comma-separated) the running rule file
 * has loaded, "" for none. */
const char *host_rule_libs(lua_State *L);
/* ... and those of rule i of g. */
const char *gen_rule_libs(const struct gen *g, size_t i);
/* Note that the running rule file loaded library name@version. */
void host_note_lib(lua_State *L, const char *name_at_version);

#endif
