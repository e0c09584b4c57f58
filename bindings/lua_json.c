/* lua_json.c - JSON for rules: require "tikd.json" (also as "cjson").
 *
 *   json.encode(value) -> text       json.decode(text) -> value
 *   json.null                        (JSON null, in both directions)
 *
 * It speaks lua-cjson's dialect (arrays are tables with keys 1..n, a few
 * holes become nulls, number keys of an object become strings, {} is an
 * object), so rules written for lua-cjson keep working. It replaces
 * lua-cjson because a rule's JSON must live inside the rule's budgets:
 * lua-cjson builds its text with its own malloc, outside the state's memory
 * budget (one encode took the daemon to 616 MiB against a 256 MiB budget),
 * and calls exit() when that malloc fails. Here every byte is a Lua string
 * or buffer (the budgeted allocator), every value and every 16 bytes
 * scanned are charged to the call's instruction budget, and nesting is
 * bounded (so is the C stack). Strict RFC 8259 both ways: text that is not
 * JSON, strings that are not UTF-8, NaN and infinities are errors naming
 * where. */
#include "lua_host.h"
#include "lua_modules.h"

#include <errno.h>
#include <lauxlib.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define JSON_MAX_DEPTH 128
#define CHARGE_EVERY   1024
#define SPARSE_RATIO   2  /* lua-cjson's defaults: an array may have holes... */
#define SPARSE_SAFE    10 /* ...while max <= items * 2, or max <= 10 */

/* Work done, charged to the call in batches. */
struct meter {
    lua_State *L;
    lua_Integer work;
};

static void spend(struct meter *m, lua_Integer units)
{
    m->work += units;
    if (m->work >= CHARGE_EVERY) {
        host_charge(m->L, m->work);
        m->work = 0;
    }
}

/* Length of the valid UTF-8 sequence at s (of n bytes left), 0 if invalid. */
static size_t utf8_seq(const unsigned char *s, size_t n)
{
    unsigned c = s[0];
    size_t len;
    unsigned min;
    if (c < 0x80)
        return 1;
    if (c >= 0xc2 && c <= 0xdf)
        len = 2, min = 0x80;
    else if (c >= 0xe0 && c <= 0xef)
        len = 3, min = 0x800;
    else if (c >= 0xf0 && c <= 0xf4)
        len = 4, min = 0x10000;
    else
        return 0;
    if (n < len)
        return 0;
    unsigned cp = c & (0x3f >> (len - 1));
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xc0) != 0x80)
            return 0;
        cp = cp << 6 | (s[i] & 0x3f);
    }
    if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
        return 0;
    return len;
}

/* ---- encode ---------------------------------------------------------------- */

/* The text being written: a block from the state's own allocator (so the
 * call's memory budget covers it), owned by a userdata whose finalizer frees
 * it when an error cuts the encoding short. luaL_Buffer cannot be used: it
 * needs the top of the stack, and the encoder keeps the values it walks
 * there. */
struct jbuf {
    char *p;
    size_t n, cap;
    lua_Alloc f;
    void *ud;
};

static void jbuf_free(struct jbuf *j)
{
    if (j->p)
        j->f(j->ud, j->p, j->cap, 0);
    j->p = NULL;
}

static int jbuf_gc(lua_State *L)
{
    jbuf_free(lua_touserdata(L, 1));
    return 0;
}

struct enc {
    struct meter m;
    struct jbuf *b;
    int depth;
};

static void add(struct enc *e, const char *s, size_t n)
{
    struct jbuf *j = e->b;
    if (j->cap - j->n < n) {
        size_t cap = j->cap ? j->cap : 256;
        while (cap - j->n < n) {
            if (cap > (size_t)1 << 40)
                luaL_error(e->m.L, "json.encode: the text would be too long");
            cap *= 2;
        }
        char *p = j->f(j->ud, j->p, j->cap, cap);
        if (!p) { /* as Lua does: collect, and try once more */
            lua_gc(e->m.L, LUA_GCCOLLECT);
            p = j->f(j->ud, j->p, j->cap, cap);
        }
        if (!p)
            luaL_error(e->m.L, "json.encode: not enough memory");
        j->p = p;
        j->cap = cap;
    }
    memcpy(j->p + j->n, s, n);
    j->n += n;
}

static void addc(struct enc *e, char c)
{
    add(e, &c, 1);
}

static void adds(struct enc *e, const char *s)
{
    add(e, s, strlen(s));
}

static int enc_fail(struct enc *e, const char *what)
{
    return luaL_error(e->m.L, "json.encode: %s", what);
}

static void enc_string(struct enc *e, const char *s, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    spend(&e->m, 1 + (lua_Integer)(n / 16));
    addc(e, '"');
    for (size_t i = 0; i < n;) {
        unsigned char c = (unsigned char)s[i];
        if (c >= 0x80) {
            size_t l = utf8_seq((const unsigned char *)s + i, n - i);
            if (!l)
                enc_fail(e, "a string is not valid UTF-8 (JSON text is UTF-8)");
            add(e, s + i, l);
            i += l;
            continue;
        }
        if (c == '"' || c == '\\') {
            addc(e, '\\');
            addc(e, (char)c);
        } else if (c < 0x20) {
            const char *esc = c == '\n'   ? "\\n"
                              : c == '\t' ? "\\t"
                              : c == '\r' ? "\\r"
                              : c == '\b' ? "\\b"
                              : c == '\f' ? "\\f"
                                          : NULL;
            if (esc) {
                adds(e, esc);
            } else {
                char u[7] = {'\\', 'u', '0', '0', hex[c >> 4], hex[c & 15], 0};
                adds(e, u);
            }
        } else {
            addc(e, (char)c);
        }
        i++;
    }
    addc(e, '"');
}

/* The shortest text that reads back as the same double. */
static void enc_double(struct enc *e, double d)
{
    if (!isfinite(d))
        enc_fail(e, "numbers must be finite (JSON has no NaN or infinity)");
    char buf[40];
    for (int prec = 15; prec <= 17; prec++) {
        snprintf(buf, sizeof buf, "%.*g", prec, d);
        if (strtod(buf, NULL) == d)
            break;
    }
    adds(e, buf);
}

static void enc_value(struct enc *e, int idx);

/* How the table at idx goes out: as an array of n items (holes are null),
 * or as an object (n = -1). */
static lua_Integer table_shape(struct enc *e, int idx)
{
    lua_State *L = e->m.L;
    lua_Integer items = 0, max = 0;
    int object = 0;
    lua_pushnil(L);
    while (lua_next(L, idx)) {
        lua_pop(L, 1);
        spend(&e->m, 1);
        if (lua_type(L, -1) == LUA_TNUMBER) {
            lua_Integer k;
            int isint;
            k = lua_tointegerx(L, -1, &isint);
            if (isint && k >= 1) {
                items++;
                if (k > max)
                    max = k;
                continue;
            }
        } else if (lua_type(L, -1) != LUA_TSTRING) {
            enc_fail(e, "table keys must be strings or numbers");
        }
        object = 1;
    }
    if (object || items == 0)
        return -1;
    if (max > items * SPARSE_RATIO && max > SPARSE_SAFE)
        enc_fail(e, "an array is too sparse (keys up to a large n, few of them set)");
    return max;
}

static void enc_table(struct enc *e, int idx)
{
    lua_State *L = e->m.L;
    if (e->depth >= JSON_MAX_DEPTH)
        enc_fail(e, "tables nested more than 128 deep (or a table inside itself)");
    luaL_checkstack(L, 6, "json.encode: nested too deeply");
    e->depth++;
    lua_Integer n = table_shape(e, idx);
    if (n >= 0) {
        addc(e, '[');
        for (lua_Integer i = 1; i <= n; i++) {
            if (i > 1)
                addc(e, ',');
            lua_rawgeti(L, idx, i);
            enc_value(e, lua_gettop(L));
        }
        addc(e, ']');
    } else {
        addc(e, '{');
        int first = 1;
        lua_pushnil(L);
        while (lua_next(L, idx)) {
            if (!first)
                addc(e, ',');
            first = 0;
            size_t kl;
            if (lua_type(L, -2) == LUA_TSTRING) {
                const char *k = lua_tolstring(L, -2, &kl);
                enc_string(e, k, kl);
            } else { /* a number key: as text, like lua-cjson */
                char kb[48];
                if (lua_isinteger(L, -2))
                    snprintf(kb, sizeof kb, "%lld", (long long)lua_tointeger(L, -2));
                else
                    snprintf(kb, sizeof kb, "%.17g", lua_tonumber(L, -2));
                enc_string(e, kb, strlen(kb));
            }
            addc(e, ':');
            enc_value(e, lua_gettop(L));
        }
        addc(e, '}');
    }
    e->depth--;
}

/* Writes the value at idx (absolute) and pops it if it is on top (the
 * buffer needs the stack as it found it). */
static void enc_value(struct enc *e, int idx)
{
    lua_State *L = e->m.L;
    spend(&e->m, 1);
    switch (lua_type(L, idx)) {
    case LUA_TNIL:
        adds(e, "null");
        break;
    case LUA_TBOOLEAN:
        adds(e, lua_toboolean(L, idx) ? "true" : "false");
        break;
    case LUA_TNUMBER:
        if (lua_isinteger(L, idx)) {
            char buf[24];
            snprintf(buf, sizeof buf, "%lld", (long long)lua_tointeger(L, idx));
            adds(e, buf);
        } else {
            enc_double(e, lua_tonumber(L, idx));
        }
        break;
    case LUA_TSTRING: {
        size_t n;
        const char *s = lua_tolstring(L, idx, &n);
        enc_string(e, s, n);
        break;
    }
    case LUA_TTABLE:
        enc_table(e, idx);
        break;
    case LUA_TLIGHTUSERDATA:
        if (lua_touserdata(L, idx) == NULL) {
            adds(e, "null");
            break;
        }
        /* fall through */
    default: {
        char what[80];
        snprintf(what, sizeof what, "cannot encode a %s", luaL_typename(L, idx));
        enc_fail(e, what);
    }
    }
    if (idx == lua_gettop(L))
        lua_pop(L, 1);
}

static int l_encode(lua_State *L)
{
    luaL_checkany(L, 1);
    lua_settop(L, 1);
    struct jbuf *j = lua_newuserdatauv(L, sizeof *j, 0);
    memset(j, 0, sizeof *j);
    j->f = lua_getallocf(L, &j->ud);
    if (luaL_newmetatable(L, "tikd.json.buffer")) {
        lua_pushcfunction(L, jbuf_gc);
        lua_setfield(L, -2, "__gc");
    }
    lua_setmetatable(L, -2);
    struct enc e = {{L, 0}, j, 0};
    lua_pushvalue(L, 1);
    enc_value(&e, lua_gettop(L));
    host_charge(L, e.m.work);
    lua_pushlstring(L, j->p ? j->p : "", j->n);
    jbuf_free(j); /* now, not at the next cycle */
    return 1;
}

/* ---- decode ---------------------------------------------------------------- */

struct dec {
    struct meter m;
    const char *start, *p, *end;
    int depth;
};

static int dec_fail(struct dec *d, const char *what)
{
    return luaL_error(d->m.L, "json.decode: %s at byte %d", what, (int)(d->p - d->start) + 1);
}

static void skip_ws(struct dec *d)
{
    while (d->p < d->end && (*d->p == ' ' || *d->p == '\t' || *d->p == '\n' || *d->p == '\r'))
        d->p++;
}

static int hexval(int c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

static unsigned read_u4(struct dec *d)
{
    if (d->end - d->p < 4)
        dec_fail(d, "a \\u escape needs four hex digits");
    unsigned v = 0;
    for (int i = 0; i < 4; i++) {
        int h = hexval((unsigned char)d->p[i]);
        if (h < 0)
            dec_fail(d, "a \\u escape needs four hex digits");
        v = v << 4 | (unsigned)h;
    }
    d->p += 4;
    return v;
}

static void add_utf8(luaL_Buffer *b, unsigned cp)
{
    char u[4];
    int n;
    if (cp < 0x80)
        u[0] = (char)cp, n = 1;
    else if (cp < 0x800)
        u[0] = (char)(0xc0 | cp >> 6), u[1] = (char)(0x80 | (cp & 0x3f)), n = 2;
    else if (cp < 0x10000)
        u[0] = (char)(0xe0 | cp >> 12), u[1] = (char)(0x80 | (cp >> 6 & 0x3f)),
        u[2] = (char)(0x80 | (cp & 0x3f)), n = 3;
    else
        u[0] = (char)(0xf0 | cp >> 18), u[1] = (char)(0x80 | (cp >> 12 & 0x3f)),
        u[2] = (char)(0x80 | (cp >> 6 & 0x3f)), u[3] = (char)(0x80 | (cp & 0x3f)), n = 4;
    luaL_addlstring(b, u, (size_t)n);
}

/* The string starting at the opening quote: pushed. */
static void dec_string(struct dec *d)
{
    lua_State *L = d->m.L;
    const char *s = ++d->p;
    /* the common case: no escapes, pushed straight from the text */
    while (d->p < d->end && *d->p != '"' && *d->p != '\\') {
        unsigned char c = (unsigned char)*d->p;
        if (c < 0x20)
            dec_fail(d, "a control character inside a string");
        size_t l = c < 0x80 ? 1 : utf8_seq((const unsigned char *)d->p, (size_t)(d->end - d->p));
        if (!l)
            dec_fail(d, "a string is not valid UTF-8");
        d->p += l;
    }
    if (d->p >= d->end)
        dec_fail(d, "a string is not closed");
    spend(&d->m, 1 + (lua_Integer)((d->p - s) / 16));
    if (*d->p == '"') {
        lua_pushlstring(L, s, (size_t)(d->p - s));
        d->p++;
        return;
    }
    luaL_Buffer b;
    luaL_buffinit(L, &b);
    luaL_addlstring(&b, s, (size_t)(d->p - s));
    for (;;) {
        if (d->p >= d->end)
            dec_fail(d, "a string is not closed");
        unsigned char c = (unsigned char)*d->p;
        if (c == '"')
            break;
        if (c < 0x20)
            dec_fail(d, "a control character inside a string");
        if (c != '\\') {
            size_t l =
                c < 0x80 ? 1 : utf8_seq((const unsigned char *)d->p, (size_t)(d->end - d->p));
            if (!l)
                dec_fail(d, "a string is not valid UTF-8");
            luaL_addlstring(&b, d->p, l);
            d->p += l;
            continue;
        }
        if (++d->p >= d->end)
            dec_fail(d, "a string is not closed");
        char esc = *d->p++;
        spend(&d->m, 1);
        switch (esc) {
        case '"':
        case '\\':
        case '/':
            luaL_addchar(&b, esc);
            break;
        case 'b':
            luaL_addchar(&b, '\b');
            break;
        case 'f':
            luaL_addchar(&b, '\f');
            break;
        case 'n':
            luaL_addchar(&b, '\n');
            break;
        case 'r':
            luaL_addchar(&b, '\r');
            break;
        case 't':
            luaL_addchar(&b, '\t');
            break;
        case 'u': {
            unsigned cp = read_u4(d);
            if (cp >= 0xdc00 && cp <= 0xdfff)
                dec_fail(d, "a \\u escape is a lone low surrogate");
            if (cp >= 0xd800 && cp <= 0xdbff) {
                if (d->end - d->p < 2 || d->p[0] != '\\' || d->p[1] != 'u')
                    dec_fail(d, "a \\u escape is a lone high surrogate");
                d->p += 2;
                unsigned lo = read_u4(d);
                if (lo < 0xdc00 || lo > 0xdfff)
                    dec_fail(d, "a \\u escape is a lone high surrogate");
                cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
            }
            add_utf8(&b, cp);
            break;
        }
        default:
            d->p--;
            dec_fail(d, "an unknown escape in a string");
        }
    }
    d->p++;
    luaL_pushresult(&b);
}

static int is_digit(const struct dec *d)
{
    return d->p < d->end && *d->p >= '0' && *d->p <= '9';
}

static void dec_number(struct dec *d)
{
    const char *s = d->p;
    int integral = 1;
    if (*d->p == '-')
        d->p++;
    if (!is_digit(d))
        dec_fail(d, "a number needs a digit");
    if (*d->p == '0')
        d->p++;
    else
        while (is_digit(d))
            d->p++;
    if (d->p < d->end && *d->p == '.') {
        integral = 0;
        d->p++;
        if (!is_digit(d))
            dec_fail(d, "a number needs a digit after '.'");
        while (is_digit(d))
            d->p++;
    }
    if (d->p < d->end && (*d->p == 'e' || *d->p == 'E')) {
        integral = 0;
        d->p++;
        if (d->p < d->end && (*d->p == '+' || *d->p == '-'))
            d->p++;
        if (!is_digit(d))
            dec_fail(d, "a number needs a digit in its exponent");
        while (is_digit(d))
            d->p++;
    }
    size_t n = (size_t)(d->p - s);
    char buf[400];
    if (n >= sizeof buf)
        dec_fail(d, "a number is longer than 400 characters");
    memcpy(buf, s, n);
    buf[n] = '\0';
    if (integral) { /* an integer, unless it does not fit */
        char *endp;
        errno = 0;
        long long v = strtoll(buf, &endp, 10);
        if (errno == 0) {
            lua_pushinteger(d->m.L, (lua_Integer)v);
            return;
        }
    }
    lua_pushnumber(d->m.L, strtod(buf, NULL));
}

static void dec_literal(struct dec *d, const char *word)
{
    size_t n = strlen(word);
    if ((size_t)(d->end - d->p) < n || memcmp(d->p, word, n) != 0)
        dec_fail(d, "not a JSON value");
    d->p += n;
}

static void dec_value(struct dec *d);

static void dec_container(struct dec *d, char close)
{
    lua_State *L = d->m.L;
    if (++d->depth > JSON_MAX_DEPTH)
        dec_fail(d, "nested more than 128 deep");
    luaL_checkstack(L, 4, "json.decode: nested too deeply");
    lua_newtable(L);
    d->p++;
    skip_ws(d);
    lua_Integer i = 0;
    if (d->p < d->end && *d->p == close) {
        d->p++;
        d->depth--;
        return;
    }
    for (;;) {
        if (close == '}') {
            skip_ws(d);
            if (d->p >= d->end || *d->p != '"')
                dec_fail(d, "an object key must be a string");
            dec_string(d);
            skip_ws(d);
            if (d->p >= d->end || *d->p != ':')
                dec_fail(d, "expected ':' after an object key");
            d->p++;
            dec_value(d);
            lua_rawset(L, -3);
        } else {
            dec_value(d);
            lua_rawseti(L, -2, ++i);
        }
        skip_ws(d);
        if (d->p < d->end && *d->p == ',') {
            d->p++;
            continue;
        }
        if (d->p < d->end && *d->p == close) {
            d->p++;
            break;
        }
        dec_fail(d, close == '}' ? "expected ',' or '}'" : "expected ',' or ']'");
    }
    d->depth--;
}

static void dec_value(struct dec *d)
{
    skip_ws(d);
    if (d->p >= d->end)
        dec_fail(d, "the text ends where a value should be");
    spend(&d->m, 1);
    switch (*d->p) {
    case '{':
        dec_container(d, '}');
        break;
    case '[':
        dec_container(d, ']');
        break;
    case '"':
        dec_string(d);
        break;
    case 't':
        dec_literal(d, "true");
        lua_pushboolean(d->m.L, 1);
        break;
    case 'f':
        dec_literal(d, "false");
        lua_pushboolean(d->m.L, 0);
        break;
    case 'n':
        dec_literal(d, "null");
        lua_pushlightuserdata(d->m.L, NULL);
        break;
    default:
        if (*d->p == '-' || (*d->p >= '0' && *d->p <= '9'))
            dec_number(d);
        else
            dec_fail(d, "not a JSON value");
    }
}

static int l_decode(lua_State *L)
{
    size_t n;
    const char *s = luaL_checklstring(L, 1, &n);
    struct dec d = {{L, 0}, s, s, s + n, 0};
    dec_value(&d);
    skip_ws(&d);
    if (d.p != d.end)
        dec_fail(&d, "more text after the value");
    host_charge(L, d.m.work);
    return 1;
}

int luaopen_tikd_json(lua_State *L)
{
    static const luaL_Reg fns[] = {{"encode", l_encode}, {"decode", l_decode}, {NULL, NULL}};
    luaL_newlib(L, fns);
    lua_pushlightuserdata(L, NULL);
    lua_setfield(L, -2, "null");
    return 1;
}
