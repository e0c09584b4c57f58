/* lua_http.c - tikd.http: HTTP requests from rules, through core/http (same
 * timeouts, TLS verification, retries and breakers as the engine's own).
 *
 * A rule may reach only the hosts the operator listed in http.allow_hosts;
 * the engine's TikTok calls are made in C and never go through here, so no
 * token is ever within reach of Lua. The calling coroutine waits; the loop
 * resumes it with the response table or nil and a message. */
#include "lua_args.h"
#include "lua_host.h"
#include "lua_modules.h"

#include <lauxlib.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "../core/http.h"

#define MAX_HEADERS 32

struct wait {
    struct call *call;
    uint64_t ticket;
    struct http_xfer *x;
};

/* Is host[:port] of url allowed? Fills why when not. */
static int allowed(const struct host_opts *o, const char *url, char *why, size_t n)
{
    const char *p = strstr(url, "://");
    if (!p || (strncmp(url, "http://", 7) != 0 && strncmp(url, "https://", 8) != 0)) {
        snprintf(why, n, "only http:// and https:// URLs are allowed");
        return 0;
    }
    p += 3;
    size_t hl = strcspn(p, "/?#");
    if (memchr(p, '@', hl)) {
        snprintf(why, n, "URLs with credentials (user@host) are not allowed");
        return 0;
    }
    char hostport[256];
    if (hl == 0 || hl >= sizeof hostport) {
        snprintf(why, n, "the URL has no usable host");
        return 0;
    }
    memcpy(hostport, p, hl);
    hostport[hl] = '\0';
    char host[256];
    snprintf(host, sizeof host, "%s", hostport);
    char *colon = host[0] == '[' ? strstr(host, "]:") : strrchr(host, ':');
    if (colon)
        colon[host[0] == '[' ? 1 : 0] = '\0';
    for (size_t i = 0; i < o->nallow; i++) {
        const char *a = o->http_allow[i];
        if (strcasecmp(a, hostport) == 0 || (!strchr(a, ':') && strcasecmp(a, host) == 0))
            return 1;
        if (strncmp(a, "*.", 2) == 0) {
            size_t al = strlen(a + 1), hl2 = strlen(host); /* ".example.com" */
            if (hl2 > al && strcasecmp(host + hl2 - al, a + 1) == 0)
                return 1;
        }
    }
    snprintf(why, n, "host '%s' is not in http.allow_hosts", hostport);
    return 0;
}

static void wait_cancel(void *ud)
{
    struct wait *w = ud;
    http_cancel(w->x);
    free(w);
}

static int push_resp(lua_State *L, void *ud)
{
    const struct http_resp *r = ud;
    if (r->out.action != POL_OK && r->status == 0) {
        lua_pushnil(L);
        lua_pushstring(L, r->out.message);
        lua_pushstring(L, r->out.code);
        return 3;
    }
    lua_createtable(L, 0, 4);
    lua_pushinteger(L, r->status);
    lua_setfield(L, -2, "status");
    lua_pushlstring(L, r->body, r->body_len);
    lua_setfield(L, -2, "body");
    lua_pushinteger(L, r->attempts);
    lua_setfield(L, -2, "attempts");
    lua_newtable(L); /* headers, lower-cased names */
    for (const char *line = r->headers; line && *line;) {
        const char *eol = strchr(line, '\n');
        size_t ll = eol ? (size_t)(eol - line) : strlen(line);
        const char *colon = memchr(line, ':', ll);
        if (colon && colon > line) {
            luaL_Buffer b;
            luaL_buffinit(L, &b);
            for (const char *c = line; c < colon; c++)
                luaL_addchar(&b, (char)(*c >= 'A' && *c <= 'Z' ? *c + 32 : *c));
            luaL_pushresult(&b);
            const char *v = colon + 1;
            while (*v == ' ')
                v++;
            size_t vl = (size_t)(line + ll - v);
            while (vl && (v[vl - 1] == '\r' || v[vl - 1] == ' '))
                vl--;
            lua_pushlstring(L, v, vl);
            lua_settable(L, -3);
        }
        line = eol ? eol + 1 : NULL;
    }
    lua_setfield(L, -2, "headers");
    return 1;
}

static void on_done(void *ud, const struct http_resp *r)
{
    struct wait *w = ud;
    struct call *c = w->call;
    uint64_t t = w->ticket;
    free(w);
    host_wake(c, t, push_resp, (void *)r);
}

/* tikd.http.request{ url=, method="GET", headers={...}, body="", timeout=s }
 *   -> { status=, body=, headers={...}, attempts= } or nil, message, code */
static int l_request(lua_State *L)
{
    struct args a = args_table(L, 1, "tikd.http.request");
    const struct host_opts *o = host_opts_of(L);
    if (!o->http)
        return luaL_error(L, "tikd.http is not available here (no HTTP client)");
    struct http_req req = {.metric = "rule"};
    req.url = args_str(&a, "url", NULL);
    if (!req.url)
        return args_error(&a, "url", "is required");
    char why[300];
    if (!allowed(o, req.url, why, sizeof why))
        return luaL_error(L, "tikd.http: %s", why);
    req.method = args_str(&a, "method", "GET");
    size_t blen = 0;
    req.body = args_lstr(&a, "body", NULL, &blen);
    req.body_len = blen;
    req.timeout = args_num(&a, "timeout", 0, 0, 3600);
    struct http_header hdrs[MAX_HEADERS];
    size_t nh = 0;
    if (args_push(&a, "headers", LUA_TTABLE) == LUA_TTABLE) {
        int ht = lua_gettop(L);
        lua_pushnil(L);
        while (lua_next(L, ht)) {
            if (nh == MAX_HEADERS)
                return luaL_error(L, "tikd.http: at most %d headers", MAX_HEADERS);
            if (lua_type(L, -2) != LUA_TSTRING || lua_type(L, -1) != LUA_TSTRING)
                return luaL_error(L, "tikd.http: header names and values must be strings");
            const char *name = lua_tostring(L, -2), *val = lua_tostring(L, -1);
            if (!*name || strpbrk(name, "\r\n: ") || strpbrk(val, "\r\n"))
                return luaL_error(L, "tikd.http: header '%s' has a space, colon or line break",
                                  name);
            hdrs[nh].name = name;
            hdrs[nh].value = val;
            nh++;
            /* leave name and value on the stack (they must outlive the
             * loop) and hand lua_next a copy of the name */
            luaL_checkstack(L, 2, "tikd.http: too many headers");
            lua_pushvalue(L, -2);
        }
    }
    req.headers = hdrs;
    req.nheaders = nh;
    req.retry = strcmp(req.method, "GET") == 0 || strcmp(req.method, "HEAD") == 0
                    ? HTTP_RETRY_ALL
                    : HTTP_RETRY_NOT_SENT;
    struct call *c = host_check_wait(L, "tikd.http.request");
    struct wait *w = malloc(sizeof *w);
    if (!w)
        return luaL_error(L, "tikd.http: out of memory");
    struct tikd_err e = {0};
    if (http_request(o->http, &req, on_done, w, &w->x, &e) != 0) {
        free(w);
        return luaL_error(L, "tikd.http: %s", e.msg);
    }
    w->call = c;
    w->ticket = host_wait(c, wait_cancel, w);
    return lua_yield(L, 0);
}

int luaopen_tikd_http(lua_State *L)
{
    static const luaL_Reg fns[] = {{"request", l_request}, {NULL, NULL}};
    luaL_newlib(L, fns);
    return 1;
}
