/* lua_media.c - tikd.media: what a video file is, for rules that route by it.
 *
 *   local m, err = tikd.media.probe(item.path)
 *   if m and m.height > m.width and m.duration <= 60 then ... end
 *
 * The same reader and rules as `tikd media check` and the planner
 * (core/media.h): the fast path in process, then FFmpeg's libavformat in a
 * confined process of its own, while the calling coroutine waits (the loop
 * goes on). Only files under media_roots can be read. */
#include "lua_args.h"
#include "lua_host.h"
#include "lua_modules.h"

#include <lauxlib.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "../core/media.h"

struct probe_wait {
    struct call *call;
    uint64_t ticket;
    struct media_probe *p;
    int max_duration;
};

struct result {
    const struct media_info *mi;
    const struct tikd_err *e;
    int max_duration;
};

static void set_str(lua_State *L, const char *k, const char *v)
{
    if (v && *v) {
        lua_pushstring(L, v);
        lua_setfield(L, -2, k);
    }
}

static void set_num(lua_State *L, const char *k, double v)
{
    lua_pushnumber(L, v);
    lua_setfield(L, -2, k);
}

static void set_int(lua_State *L, const char *k, lua_Integer v)
{
    lua_pushinteger(L, v);
    lua_setfield(L, -2, k);
}

/* The fields `tikd media check --json` prints, and the verdict. */
static int push_result(lua_State *L, void *ud)
{
    const struct result *r = ud;
    if (r->e->code != 0) {
        lua_pushnil(L);
        lua_pushstring(L, r->e->msg);
        return 2;
    }
    const struct media_info *mi = r->mi;
    struct media_verdict v;
    media_judge(mi, r->max_duration, &v);
    lua_createtable(L, 0, 24);
    set_str(L, "container", mi->container);
    set_str(L, "mime", mi->mime);
    set_int(L, "bytes", (lua_Integer)mi->size);
    if (mi->probed && mi->has_video) {
        set_str(L, "codec", mi->codec);
        set_str(L, "codec_name", media_codec_label(mi->codec));
        set_str(L, "profile", mi->profile);
        set_int(L, "width", mi->display_width);
        set_int(L, "height", mi->display_height);
        set_int(L, "coded_width", mi->width);
        set_int(L, "coded_height", mi->height);
        set_int(L, "rotation", mi->rotation);
        set_num(L, "fps", mi->fps);
    }
    if (mi->probed) {
        set_num(L, "duration", mi->duration);
        set_int(L, "bit_rate", mi->video_bit_rate ? mi->video_bit_rate : mi->bit_rate);
        set_str(L, "audio_codec", mi->audio_codec);
    }
    lua_pushstring(L, v.level == MEDIA_REFUSE ? "refused" : v.level == MEDIA_WARN ? "warn" : "ok");
    lua_setfield(L, -2, "verdict");
    lua_createtable(L, v.n, 0);
    for (int i = 0; i < v.n; i++) {
        lua_createtable(L, 0, 3);
        set_str(L, "rule", v.f[i].rule);
        set_str(L, "level", v.f[i].level == MEDIA_REFUSE ? "refuse" : "warn");
        set_str(L, "text", v.f[i].text);
        lua_rawseti(L, -2, i + 1);
    }
    lua_setfield(L, -2, "findings");
    return 1;
}

static void wait_cancel(void *ud)
{
    struct probe_wait *w = ud;
    media_probe_cancel(w->p);
    free(w);
}

static void probed(void *ud, const struct media_info *mi, const struct tikd_err *e)
{
    struct probe_wait *w = ud;
    struct result r = {mi, e, w->max_duration};
    struct call *c = w->call;
    uint64_t t = w->ticket;
    free(w);
    host_wake(c, t, push_result, &r); /* pushed before it returns: r outlives it */
}

/* tikd.media.probe(path [, max_duration]) -> fields and verdict, or nil and why */
static int l_probe(lua_State *L)
{
    const char *path = luaL_checkstring(L, 1);
    lua_Integer max = luaL_optinteger(L, 2, 0);
    luaL_argcheck(L, max >= 0 && max <= 86400, 2, "seconds, 0 to 86400");
    char real[PATH_MAX];
    const char *problem = host_media_file(host_opts_of(L), path, real, sizeof real);
    if (problem) {
        lua_pushnil(L);
        lua_pushfstring(L, "%s %s", path, problem);
        return 2;
    }
    struct call *c = host_can_wait(L);
    struct tikd_err e = {0};
    if (!c && host_opts_of(L)->loop) /* waiting here would stop the loop: say so */
        return luaL_error(L, "tikd.media.probe waits for the probe: call it from a hook or a "
                             "timer, not while the rules load or inside a sort or metamethod");
    if (!c) { /* no loop (rules check): the probe is waited for */
        struct media_info mi;
        media_probe(real, &mi, &e);
        struct result r = {&mi, &e, (int)max};
        return push_result(L, &r);
    }
    struct probe_wait *w = calloc(1, sizeof *w);
    if (!w)
        return luaL_error(L, "tikd.media.probe: out of memory");
    w->max_duration = (int)max;
    if (!(w->p = media_probe_start(host_loop(L, "tikd.media.probe"), real, probed, w, &e))) {
        free(w);
        lua_pushnil(L);
        lua_pushstring(L, e.msg);
        return 2;
    }
    w->call = c;
    w->ticket = host_wait(c, wait_cancel, w);
    return lua_yield(L, 0);
}

int luaopen_tikd_media(lua_State *L)
{
    static const luaL_Reg fns[] = {{"probe", l_probe}, {NULL, NULL}};
    luaL_newlib(L, fns);
    return 1;
}
