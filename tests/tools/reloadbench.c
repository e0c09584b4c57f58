/* reloadbench.c - `make bench`: how long a reload takes, and one call into
 * a rule. Builds a rule generation from 100 rule files (each declares an
 * account and a schedule and defines hooks, ~40 lines) the way `tikd run`
 * does on SIGHUP or a saved file: a fresh sandboxed state, every file loaded
 * and checked. The peer is a bare Lua 5.4 state loading and running the same
 * 100 files. Then 200,000 calls into the rules, each on a thread of its file's
 * with every budget armed (instructions, memory, matcher steps, the wall
 * clock), against a bare state resuming a new coroutine per call (and, for
 * the floor, a bare lua_pcall, which no host whose calls can wait can use).
 * Usage: reloadbench SCRIPTS_DIR */
#include <lauxlib.h>
#include <lualib.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "../../bindings/lua_host.h"

#define FILES  100
#define ROUNDS 20
#define CALLS  200000

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static const char rule[] =
    "-- client %d\n"
    "local NAME = \"client-%03d\"\n"
    "tikd.account(NAME, { tz = \"Europe/Berlin\", privacy = \"SELF_ONLY\", daily_max = 3 })\n"
    "tikd.schedule(NAME .. \"-slots\", { account = NAME, slots = { \"0 9 * * *\", \"0 13 * * *\",\n"
    "    \"30 18 * * 1-5\" }, jitter = 600, spacing = 3600,\n"
    "    blackout = { { cron = \"0 22 * * *\", hours = 9 } } })\n"
    "local TAGS = { \"food\", \"travel\", \"client%d\" }\n"
    "local function title_of(item)\n"
    "    return (item.meta and item.meta.title) or item.name:gsub(\"%%.%%w+$\", \"\")\n"
    "end\n"
    "function on_media(item)\n"
    "    if not item.folder:match(\"/\" .. NAME .. \"$\") then return end\n"
    "    local caption = assert(tikd.caption(\"{title} {tags}\", { title = title_of(item),\n"
    "        tags = tikd.hashtags(TAGS) }))\n"
    "    return tikd.upload.post{ account = NAME, schedule = NAME .. \"-slots\",\n"
    "                             media = item.path, caption = caption, key = item.hash }\n"
    "end\n"
    "function ping(n) return n + 1 end\n"
    "function on_published(job)\n"
    "    tikd.log.info(\"published\", { id = job.id, account = job.account })\n"
    "end\n";

static int push_n(lua_State *L, void *ud)
{
    lua_pushinteger(L, *(int *)ud);
    return 1;
}

static void count_ok(void *ud, const struct call_result *r)
{
    *(int *)ud += r->ok;
}

/* Seconds per call: CALLS calls of ping() across the files. */
static double bench_calls(struct gen *g)
{
    int ok = 0;
    double t0 = now();
    for (int i = 0; i < CALLS; i++)
        gen_call(g, (size_t)i % gen_rule_count(g), "ping", push_n, &i, count_ok, &ok);
    double t = now() - t0;
    return ok == CALLS ? t / CALLS : -1;
}

static double bench_bare_calls(lua_State *L)
{
    double t0 = now();
    for (int i = 0; i < CALLS; i++) {
        lua_State *co = lua_newthread(L);
        lua_getglobal(co, "ping");
        lua_pushinteger(co, i);
        int nres;
        if (lua_resume(co, L, 1, &nres) != LUA_OK)
            return -1;
        lua_pop(L, 1);
    }
    return (now() - t0) / CALLS;
}

/* The floor below any host that lets a call wait: a plain lua_pcall. */
static double bench_bare_pcalls(lua_State *L)
{
    double t0 = now();
    for (int i = 0; i < CALLS; i++) {
        lua_getglobal(L, "ping");
        lua_pushinteger(L, i);
        if (lua_pcall(L, 1, 1, 0) != LUA_OK)
            return -1;
        lua_pop(L, 1);
    }
    return (now() - t0) / CALLS;
}

/* The same files for a bare interpreter: tikd's declarations as no-ops. */
static const char bare_prelude[] =
    "tikd = setmetatable({}, { __index = function() return function() return {} end end })\n";

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: reloadbench SCRIPTS_DIR\n");
        return 2;
    }
    char dir[] = "/tmp/tikd-reloadbench-XXXXXX";
    if (!mkdtemp(dir))
        return 1;
    for (int i = 0; i < FILES; i++) {
        char p[128];
        snprintf(p, sizeof p, "%s/client%03d.lua", dir, i);
        FILE *f = fopen(p, "w");
        if (!f)
            return 1;
        fprintf(f, rule, i, i, i);
        fclose(f);
    }
    struct host_opts o = {.scripts_dir = argv[1],
                          .rules_dir = dir,
                          .instructions = 10000000,
                          .call_memory = 32u << 20,
                          .state_memory = 256u << 20,
                          .pattern_steps = 1000000,
                          .call_time = 1};
    double best = 1e9, call = 0, bare_call = 0, bare_pcall = 0;
    for (int r = 0; r < ROUNDS; r++) {
        struct gen *g;
        struct gen_report rep = {0};
        struct tikd_err e = {0};
        double t0 = now();
        int rc = gen_build(&o, (unsigned)r + 1, &g, &rep, &e);
        double t = now() - t0;
        if (rc != 0) {
            fprintf(stderr, "reloadbench: %s %s\n", e.msg, rep.nerrors ? rep.errors[0] : "");
            return 1;
        }
        gen_report_free(&rep);
        if (r == 0)
            call = bench_calls(g);
        gen_release(g);
        if (t < best)
            best = t;
    }
    double bare = 1e9;
    for (int r = 0; r < ROUNDS; r++) {
        double t0 = now();
        lua_State *L = luaL_newstate();
        luaL_openlibs(L);
        if (luaL_dostring(L, bare_prelude) != LUA_OK)
            return 1;
        for (int i = 0; i < FILES; i++) {
            char p[128];
            snprintf(p, sizeof p, "%s/client%03d.lua", dir, i);
            if (luaL_dofile(L, p) != LUA_OK) {
                fprintf(stderr, "reloadbench: %s\n", lua_tostring(L, -1));
                return 1;
            }
        }
        double t = now() - t0;
        if (r == 0) {
            bare_call = bench_bare_calls(L);
            bare_pcall = bench_bare_pcalls(L);
        }
        lua_close(L);
        if (t < bare)
            bare = t;
    }
    printf("   reload of %d rule files (a fresh sandboxed generation, best of %d): %.1f ms;"
           " a bare Lua state loading them: %.1f ms; ratio %.1f (goal: well under 100 ms)\n",
           FILES, ROUNDS, best * 1e3, bare * 1e3, best / bare);
    if (call <= 0 || bare_call <= 0 || bare_pcall <= 0) {
        fprintf(stderr, "reloadbench: a call failed\n");
        return 1;
    }
    printf("   one call into a rule (a thread of its file's, every budget armed): %.2f us;"
           " a bare coroutine resume: %.2f us; ratio %.1f (goal: under 10 us)\n",
           call * 1e6, bare_call * 1e6, call / bare_call);
    /* the figures for tools/bench.py */
    printf("{\"reload_ms\": %.3f, \"reload_bare_ms\": %.3f, \"call_us\": %.4f, "
           "\"bare_call_us\": %.4f, \"bare_pcall_us\": %.4f}\n",
           best * 1e3, bare * 1e3, call * 1e6, bare_call * 1e6, bare_pcall * 1e6);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    return system(cmd) == 0 ? 0 : 1;
}
