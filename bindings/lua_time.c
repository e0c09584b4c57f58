/* lua_time.c - tikd.time: the clock and tikd.sleep, the simplest async
 * primitive and the model for the others: check that the caller may wait,
 * arm a libev watcher owned by C, park the coroutine with a ticket, and let
 * the loop resume it. */
#include "lua_host.h"
#include "lua_modules.h"

#include <ev.h>
#include <lauxlib.h>
#include <math.h>
#include <stdlib.h>

#include "../core/clock.h"

#define MAX_SLEEP (366.0 * 24 * 3600)

struct sleeper {
    ev_timer w;
    struct ev_loop *loop;
    struct call *call;
    uint64_t ticket;
};

static void sleeper_cancel(void *ud)
{
    struct sleeper *s = ud;
    ev_timer_stop(s->loop, &s->w);
    free(s);
}

static int push_true(lua_State *L, void *ud)
{
    (void)ud;
    lua_pushboolean(L, 1);
    return 1;
}

static void sleeper_fire(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)revents;
    struct sleeper *s = (struct sleeper *)w;
    ev_timer_stop(loop, w);
    struct call *c = s->call;
    uint64_t t = s->ticket;
    free(s);
    host_wake(c, t, push_true, NULL);
}

/* tikd.sleep(seconds) -> true, after at least `seconds` of loop time. */
static int l_sleep(lua_State *L)
{
    lua_Number secs = luaL_checknumber(L, 1);
    luaL_argcheck(L, secs >= 0 && secs <= MAX_SLEEP && !isnan(secs), 1,
                  "seconds must be from 0 to 31622400 (366 days)");
    struct call *c = host_check_wait(L, "tikd.sleep");
    struct sleeper *s = malloc(sizeof *s);
    if (!s)
        return luaL_error(L, "tikd.sleep: out of memory");
    s->loop = host_loop(L, "tikd.sleep");
    s->call = c;
    ev_timer_init(&s->w, sleeper_fire, (ev_tstamp)secs, 0.);
    ev_timer_start(s->loop, &s->w);
    s->ticket = host_wait(c, sleeper_cancel, s);
    return lua_yield(L, 0);
}

/* tikd.now() -> seconds since the epoch (float), from tikd's clock. */
static int l_now(lua_State *L)
{
    lua_pushnumber(L, clock_now());
    return 1;
}

int luaopen_tikd_time(lua_State *L)
{
    static const luaL_Reg fns[] = {{"sleep", l_sleep}, {"now", l_now}, {NULL, NULL}};
    luaL_newlib(L, fns);
    return 1;
}
