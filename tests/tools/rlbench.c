/* rlbench.c - `make bench`: decisions per second of tikd's rate limiter.
 *
 *   gcra:  the pure GCRA decision (allow_at + take), in C
 *   lua:   the same decision written in Lua, run by a bare Lua 5.4
 *          interpreter state (no sandbox): the peer
 *   store: a full budget decision as the pipeline takes it (rl_when +
 *          rl_spend for an init: the rate and the daily cap), 1000 per LMDB
 *          write transaction, so the figure is the limiter's, not fsync's
 *   commit: one durable LMDB commit with one decision: the cost every state
 *          change of a job pays (a post makes several)
 * Prints one line per figure. */
#include <lauxlib.h>
#include <lualib.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "../../core/ratelimit.h"
#include "../../core/store.h"

static double cpu(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static double wall(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static const char lua_gcra[] = "local count, per, burst, n = 6, 60, 1, ...\n"
                               "local T = per / count\n"
                               "local tau = T * (burst - 1)\n"
                               "local tat, now, allowed = 0, 0, 0\n"
                               "for i = 1, n do\n"
                               "  now = now + 1.7\n"
                               "  local at = tat - tau\n"
                               "  if at <= now then\n"
                               "    tat = (tat > now and tat or now) + T\n"
                               "    allowed = allowed + 1\n"
                               "  end\n"
                               "end\n"
                               "return allowed\n";

struct batch {
    struct rl_config c;
    double now;
    int n;
    long allowed;
};

static int batch_txn(struct store_txn *t, void *ctx)
{
    struct batch *b = ctx;
    static const char *const accounts[] = {"a", "b", "c", "d", "e", "f", "g", "h"};
    enum rl_budget bs[2] = {RL_VIDEO_INIT, RL_DAILY_POSTS};
    for (int i = 0; i < b->n; i++) {
        const char *acct = accounts[i & 7];
        double at;
        enum rl_budget which;
        b->now += 0.37;
        int rc = rl_when(t, &b->c, acct, bs, 2, b->now, &at, &which);
        if (rc == 0 && at <= b->now) {
            rc = rl_spend(t, &b->c, acct, bs, 2, b->now);
            b->allowed++;
        }
        if (rc != 0)
            return rc;
    }
    return 0;
}

static int defer_txn(struct store_txn *t, void *ctx)
{
    (void)ctx;
    return rl_note_deferred(t, RL_STATUS, 1); /* always writes a page */
}

int main(int argc, char **argv)
{
    const long n = 20000000;
    struct rl_rate r = {6, 60, 1};
    double tat = 0, now = 0, t0 = cpu();
    long allowed = 0;
    for (long i = 0; i < n; i++) {
        now += 1.7;
        if (rl_gcra_allow_at(&r, tat, now) <= now) {
            tat = rl_gcra_take(&r, tat, now);
            allowed++;
        }
    }
    double c_s = cpu() - t0;

    lua_State *L = luaL_newstate();
    luaL_openlibs(L);
    if (luaL_loadstring(L, lua_gcra) != LUA_OK)
        return 1;
    lua_pushinteger(L, n);
    t0 = cpu();
    if (lua_pcall(L, 1, 1, 0) != LUA_OK || lua_tointeger(L, -1) != allowed) {
        fprintf(stderr, "rlbench: the Lua peer disagrees\n");
        return 1;
    }
    double lua_s = cpu() - t0;
    lua_close(L);

    printf("   GCRA decisions, C: %.1f M/s   bare Lua 5.4: %.1f M/s   ratio C/Lua: %.1f\n",
           n / c_s / 1e6, n / lua_s / 1e6, lua_s / c_s);

    char dir[] = "/tmp/tikd-rlbench-XXXXXX";
    if (!mkdtemp(dir))
        return 1;
    struct store *s;
    struct store_opts o = {dir, 64 << 20, 1 << 30, false};
    struct tikd_err e = {0};
    if (store_open(&s, &o, &e) != 0) {
        fprintf(stderr, "rlbench: %s\n", e.msg);
        return 1;
    }
    struct batch b = {.n = 1000};
    rl_config_default(&b.c);
    int rounds = argc > 1 ? atoi(argv[1]) : 200;
    t0 = cpu();
    for (int i = 0; i < rounds; i++)
        if (store_write(s, batch_txn, &b, &e) != 0) {
            fprintf(stderr, "rlbench: %s\n", e.msg);
            return 1;
        }
    double st_s = cpu() - t0;
    printf("   budget decisions in LMDB (rate + daily cap, 8 accounts, 1000 per commit): "
           "%.0f k/s, %.2f us each (%ld allowed of %d)\n",
           rounds * 1000.0 / st_s / 1e3, st_s / (rounds * 1000.0) * 1e6, b.allowed, rounds * 1000);
    /* what one durable commit costs here: the floor under a post's CPU */
    double c0 = cpu(), w0 = wall();
    for (int i = 0; i < 300; i++)
        if (store_write(s, defer_txn, NULL, &e) != 0)
            return 1;
    double commit_cpu = (cpu() - c0) / 300, commit_wall = (wall() - w0) / 300;
    printf("   one durable LMDB commit (fdatasync): %.0f us of CPU, %.0f us of wall time\n",
           commit_cpu * 1e6, commit_wall * 1e6);
    printf("{\"gcra_c_mps\": %.3f, \"gcra_lua_mps\": %.3f, \"commit_cpu_us\": %.1f, "
           "\"commit_wall_us\": %.1f}\n",
           n / c_s / 1e6, n / lua_s / 1e6, commit_cpu * 1e6, commit_wall * 1e6);
    store_close(s);
    char cmd[64];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    return system(cmd) == 0 ? 0 : 1;
}
