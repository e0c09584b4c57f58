/* reloadbench.c - `make bench`: how long a reload takes. Builds a rule
 * generation from 100 rule files (each declares an account and a schedule
 * and defines hooks, ~40 lines) the way `tikd run` does on SIGHUP or a
 * saved file: a fresh sandboxed state, every file loaded and checked. The
 * peer is a bare Lua 5.4 state loading and running the same 100 files.
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
    "function on_published(job)\n"
    "    tikd.log.info(\"published\", { id = job.id, account = job.account })\n"
    "end\n";

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
                          .pattern_steps = 1000000};
    double best = 1e9;
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
        lua_close(L);
        double t = now() - t0;
        if (t < bare)
            bare = t;
    }
    printf("   reload of %d rule files (a fresh sandboxed generation, best of %d): %.1f ms;"
           " a bare Lua state loading them: %.1f ms; ratio %.1f (goal: well under 100 ms)\n",
           FILES, ROUNDS, best * 1e3, bare * 1e3, best / bare);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    return system(cmd) == 0 ? 0 : 1;
}
