/* lua_kv.c - tikd.kv: a small key/value store of each rule file's own.
 *
 *   local n = tikd.kv.incr("variant")          -- 1, 2, 3 ... atomically
 *   tikd.kv.set("last", { at = tikd.now(), ids = { 1, 2 } })
 *   local last = tikd.kv.get("last")           -- the table again, or nil
 *   for _, k in ipairs(tikd.kv.keys("client:")) do tikd.kv.set(k, nil) end
 *
 * Values are JSON in LMDB (STORE_DB_KV, key = rule file '\0' key): they
 * survive restarts and reloads, and one rule file never reaches another's.
 * Lua integers stay integers and floats stay floats. No Lua error is raised
 * while a transaction or a C allocation is held: the work returns a message
 * and the error comes after everything is released. */
#include "lua_host.h"
#include "lua_modules.h"

#include <jansson.h>
#include <lauxlib.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../core/store.h"

#define KV_MAX_KEY   256        /* bytes of a key */
#define KV_MAX_VALUE (64 << 10) /* bytes of a value as JSON */
#define KV_MAX_DEPTH 16         /* tables inside tables */
#define KV_MAX_KEYS  10000      /* keys one tikd.kv.keys() may return */
#define KV_MAX_DBKEY 511        /* LMDB's key size limit */
#define JSON_FLAGS   (JSON_COMPACT | JSON_ENCODE_ANY | JSON_REAL_PRECISION(17))
#define JSON_LOAD    (JSON_DECODE_ANY | JSON_ALLOW_NUL)

/* The database key: the calling rule file, '\0', then the key (or prefix);
 * a tenant's rule file's is "\x01TENANT\0" first (a rule name never starts
 * with \x01), so tenants never share a key whatever their files are
 * called. */
struct dbkey {
    char b[KV_MAX_DBKEY];
    size_t n;
};

static void make_key(lua_State *L, struct dbkey *k, const char *fn, const char *key, size_t kl)
{
    const char *rule = host_rule(L), *tenant = host_tenant(L);
    size_t rl = strlen(rule), tl = tenant ? strlen(tenant) + 2 : 0;
    if (tl + rl + 1 + kl > sizeof k->b)
        luaL_error(L, "%s: the rule file name %s is too long for tikd.kv", fn, rule);
    if (tenant) {
        k->b[0] = '\x01';
        memcpy(k->b + 1, tenant, tl - 1); /* with its NUL */
    }
    memcpy(k->b + tl, rule, rl + 1);
    memcpy(k->b + tl + rl + 1, key, kl);
    k->n = tl + rl + 1 + kl;
}

static void check_key(lua_State *L, int arg, const char *fn, struct dbkey *k)
{
    size_t kl;
    const char *key = luaL_checklstring(L, arg, &kl);
    if (kl < 1 || kl > KV_MAX_KEY)
        luaL_argerror(L, arg, "a key of 1 to 256 bytes");
    make_key(L, k, fn, key, kl);
}

/* ---- Lua -> JSON ---------------------------------------------------------------------------- */

struct enc {
    lua_State *L;
    size_t size;                      /* a lower bound of the JSON's length */
    const void *tables[KV_MAX_DEPTH]; /* the tables being encoded, outermost first */
    int depth;
    char path[160]; /* where in the value we are, for messages */
    size_t plen;
    char msg[400];
};

static json_t *enc_fail(struct enc *x, const char *what)
{
    if (x->plen)
        snprintf(x->msg, sizeof x->msg, "%s (at value%s)", what, x->path);
    else
        snprintf(x->msg, sizeof x->msg, "%s", what);
    return NULL;
}

static bool enc_grow(struct enc *x, size_t n)
{
    x->size += n;
    return x->size <= KV_MAX_VALUE;
}

static const char too_big[] = "the value is larger than 65536 bytes as JSON";

/* Appends ".key" or "[i]" to the path; returns the length to go back to. */
static size_t path_push(struct enc *x, int key)
{
    size_t old = x->plen;
    int n;
    if (lua_type(x->L, key) == LUA_TSTRING) {
        size_t kl;
        const char *k = lua_tolstring(x->L, key, &kl);
        char shown[48];
        size_t i = 0;
        for (; i < kl && i < sizeof shown - 4; i++)
            shown[i] = k[i] >= 0x20 && k[i] < 0x7f ? k[i] : '?';
        snprintf(shown + i, sizeof shown - i, "%s", i < kl ? "..." : "");
        n = snprintf(x->path + old, sizeof x->path - old, ".%s", shown);
    } else {
        n = snprintf(x->path + old, sizeof x->path - old, "[%lld]",
                     (long long)lua_tointeger(x->L, key));
    }
    x->plen = n < 0 ? old : old + (size_t)n;
    if (x->plen >= sizeof x->path)
        x->plen = sizeof x->path - 1;
    return old;
}

static void path_pop(struct enc *x, size_t old)
{
    x->plen = old;
    x->path[old] = '\0';
}

static json_t *enc_value(struct enc *x, int idx);

/* The table at idx (absolute): an array when its keys are exactly 1..n, an
 * object when they are all strings. */
static json_t *enc_table(struct enc *x, int idx)
{
    lua_State *L = x->L;
    const void *p = lua_topointer(L, idx);
    for (int i = 0; i < x->depth; i++)
        if (x->tables[i] == p)
            return enc_fail(x, "the value contains a cycle (a table inside itself)");
    if (x->depth == KV_MAX_DEPTH)
        return enc_fail(x, "tables are nested more than 16 deep");
    if (!lua_checkstack(L, 4))
        return enc_fail(x, "out of Lua stack");
    lua_Integer nint = 0, max = 0, nstr = 0;
    lua_pushnil(L);
    while (lua_next(L, idx)) {
        if (lua_type(L, -2) == LUA_TSTRING) {
            size_t kl;
            const char *k = lua_tolstring(L, -2, &kl);
            nstr++;
            if (memchr(k, '\0', kl)) {
                lua_pop(L, 2);
                return enc_fail(x, "a table key contains a NUL byte");
            }
        } else if (lua_isinteger(L, -2) && lua_tointeger(L, -2) >= 1) {
            nint++;
            if (lua_tointeger(L, -2) > max)
                max = lua_tointeger(L, -2);
        } else {
            lua_pop(L, 2);
            return enc_fail(x, "table keys must be strings, or 1..n for an array");
        }
        lua_pop(L, 1);
    }
    if (nint && nstr)
        return enc_fail(x, "a table mixes array items (1..n) and string keys");
    if (nint && max != nint)
        return enc_fail(x, "an array has holes (its keys must be exactly 1..n)");
    if (!enc_grow(x, 2))
        return enc_fail(x, too_big);
    x->tables[x->depth++] = p;
    json_t *out = nint ? json_array() : json_object();
    if (!out) {
        x->depth--;
        return enc_fail(x, "out of memory");
    }
    if (nint) {
        for (lua_Integer i = 1; i <= nint; i++) {
            lua_pushinteger(L, i);
            size_t old = path_push(x, lua_gettop(L));
            lua_pop(L, 1);
            lua_rawgeti(L, idx, i);
            json_t *v = enc_value(x, lua_gettop(L));
            lua_pop(L, 1);
            path_pop(x, old);
            if (!v || json_array_append_new(out, v) != 0 || !enc_grow(x, 1)) {
                if (v && !x->msg[0])
                    enc_fail(x, x->size > KV_MAX_VALUE ? too_big : "out of memory");
                json_decref(out);
                x->depth--;
                return NULL;
            }
        }
    } else {
        lua_pushnil(L);
        while (lua_next(L, idx)) {
            size_t kl, old = path_push(x, lua_gettop(L) - 1);
            const char *k = lua_tolstring(L, -2, &kl);
            json_t *v = enc_value(x, lua_gettop(L));
            int rc = -1;
            if (v && enc_grow(x, kl + 4)) {
                rc = json_object_setn_new(out, k, kl, v); /* takes v, even on failure */
                if (rc != 0)
                    enc_fail(x, "a table key is not valid UTF-8");
            } else if (v) {
                json_decref(v);
                enc_fail(x, too_big);
            }
            path_pop(x, old);
            if (rc != 0) {
                lua_pop(L, 2);
                json_decref(out);
                x->depth--;
                return NULL;
            }
            lua_pop(L, 1);
        }
    }
    x->depth--;
    return out;
}

/* The value at idx (absolute), or NULL with x->msg set. */
static json_t *enc_value(struct enc *x, int idx)
{
    lua_State *L = x->L;
    json_t *v;
    switch (lua_type(L, idx)) {
    case LUA_TBOOLEAN:
        if (!enc_grow(x, 4))
            return enc_fail(x, too_big);
        v = json_boolean(lua_toboolean(L, idx));
        break;
    case LUA_TNUMBER:
        if (lua_isinteger(L, idx)) {
            if (!enc_grow(x, 1))
                return enc_fail(x, too_big);
            v = json_integer((json_int_t)lua_tointeger(L, idx));
        } else {
            double d = lua_tonumber(L, idx);
            if (!isfinite(d))
                return enc_fail(x, "numbers must be finite (not NaN or infinity)");
            if (!enc_grow(x, 3))
                return enc_fail(x, too_big);
            v = json_real(d);
        }
        break;
    case LUA_TSTRING: {
        size_t n;
        const char *s = lua_tolstring(L, idx, &n);
        if (n > KV_MAX_VALUE || !enc_grow(x, n + 2))
            return enc_fail(x, too_big);
        v = json_stringn(s, n);
        if (!v)
            return enc_fail(x, "strings must be valid UTF-8");
        return v;
    }
    case LUA_TTABLE:
        return enc_table(x, idx);
    default: {
        char what[120];
        snprintf(what, sizeof what,
                 "cannot store a %s (only strings, numbers, booleans and tables of them)",
                 lua_typename(L, lua_type(L, idx)));
        return enc_fail(x, what);
    }
    }
    return v ? v : enc_fail(x, "out of memory");
}

/* The value at idx as JSON text (the caller frees it), or NULL with msg. */
static char *encode(lua_State *L, int idx, size_t *len, char *msg, size_t msglen)
{
    struct enc x = {.L = L};
    json_t *j = enc_value(&x, idx);
    char *s = NULL;
    if (j) {
        s = json_dumps(j, JSON_FLAGS);
        json_decref(j);
        if (!s)
            snprintf(x.msg, sizeof x.msg, "out of memory");
        else if ((*len = strlen(s)) > KV_MAX_VALUE) {
            free(s);
            s = NULL;
            snprintf(x.msg, sizeof x.msg, "%s", too_big);
        }
    }
    if (!s)
        snprintf(msg, msglen, "%s", x.msg);
    return s;
}

/* ---- JSON -> Lua ---------------------------------------------------------------------------- */

void lua_push_json(lua_State *L, json_t *j)
{
    luaL_checkstack(L, 4, "a JSON value nested too deeply");
    switch (json_typeof(j)) {
    case JSON_OBJECT: {
        const char *k;
        size_t kl;
        json_t *v;
        lua_createtable(L, 0, (int)json_object_size(j));
        json_object_keylen_foreach(j, k, kl, v)
        {
            lua_pushlstring(L, k, kl);
            lua_push_json(L, v);
            lua_rawset(L, -3);
        }
        break;
    }
    case JSON_ARRAY: {
        size_t n = json_array_size(j);
        lua_createtable(L, (int)n, 0);
        for (size_t i = 0; i < n; i++) {
            lua_push_json(L, json_array_get(j, i));
            lua_rawseti(L, -2, (lua_Integer)i + 1);
        }
        break;
    }
    case JSON_STRING:
        lua_pushlstring(L, json_string_value(j), json_string_length(j));
        break;
    case JSON_INTEGER:
        lua_pushinteger(L, (lua_Integer)json_integer_value(j));
        break;
    case JSON_REAL:
        lua_pushnumber(L, json_real_value(j));
        break;
    case JSON_TRUE:
    case JSON_FALSE:
        lua_pushboolean(L, json_is_true(j));
        break;
    case JSON_NULL:
        lua_pushnil(L);
        break;
    }
}

static int push_json_p(lua_State *L)
{
    lua_push_json(L, lua_touserdata(L, 1));
    return 1;
}

/* Push j (which is released either way), raising only after the release:
 * building the tables may fail on the call's memory budget. */
static int push_and_free(lua_State *L, json_t *j)
{
    lua_pushcfunction(L, push_json_p);
    lua_pushlightuserdata(L, j);
    int st = lua_pcall(L, 1, 1, 0);
    json_decref(j);
    return st == LUA_OK ? 1 : lua_error(L);
}

/* ---- get / set ------------------------------------------------------------------------------ */

struct get_op {
    const struct dbkey *k;
    json_t *v; /* NULL: no such key */
    struct tikd_err *e;
};

static int get_txn(struct store_txn *t, void *ctx)
{
    struct get_op *o = ctx;
    struct store_val v;
    int rc = store_get(t, STORE_DB_KV, o->k->b, o->k->n, &v);
    if (rc == TIKD_ENOTFOUND)
        return 0;
    if (rc != 0)
        return rc;
    json_error_t je;
    o->v = json_loadb(v.p, v.n, JSON_LOAD, &je);
    if (!o->v)
        return tikd_fail(o->e, TIKD_ECORRUPT, "the stored value is not JSON: %s", je.text);
    return 0;
}

/* tikd.kv.get(key) -> value or nil */
static int l_get(lua_State *L)
{
    struct dbkey k;
    check_key(L, 1, "tikd.kv.get", &k);
    struct store *s = host_store(L, "tikd.kv");
    struct tikd_err e = {0};
    struct get_op o = {&k, NULL, &e};
    int rc = store_read(s, get_txn, &o, &e);
    if (rc != 0) {
        json_decref(o.v);
        return luaL_error(L, "tikd.kv.get: %s", e.msg[0] ? e.msg : "store failed");
    }
    if (!o.v) {
        lua_pushnil(L);
        return 1;
    }
    return push_and_free(L, o.v);
}

struct set_op {
    const struct dbkey *k;
    const char *v; /* NULL: delete */
    size_t n;
};

static int set_txn(struct store_txn *t, void *ctx)
{
    struct set_op *o = ctx;
    if (!o->v)
        return store_del(t, STORE_DB_KV, o->k->b, o->k->n);
    return store_put(t, STORE_DB_KV, o->k->b, o->k->n, o->v, o->n);
}

/* tikd.kv.set(key, value): value nil deletes the key. */
static int l_set(lua_State *L)
{
    struct dbkey k;
    check_key(L, 1, "tikd.kv.set", &k);
    luaL_checkany(L, 2);
    struct store *s = host_store(L, "tikd.kv");
    struct set_op o = {&k, NULL, 0};
    char *json = NULL;
    char msg[400];
    if (!lua_isnil(L, 2)) {
        json = encode(L, 2, &o.n, msg, sizeof msg);
        if (!json)
            return luaL_error(L, "tikd.kv.set: %s", msg);
        o.v = json;
    }
    struct tikd_err e = {0};
    int rc = store_write(s, set_txn, &o, &e);
    free(json);
    if (rc != 0)
        return luaL_error(L, "tikd.kv.set: %s", e.msg[0] ? e.msg : "store failed");
    return 0;
}

/* ---- incr ----------------------------------------------------------------------------------- */

struct incr_op {
    const struct dbkey *k;
    lua_Integer by, result;
    struct tikd_err *e;
};

static const char *json_kind(const json_t *j)
{
    switch (json_typeof(j)) {
    case JSON_OBJECT:
    case JSON_ARRAY:
        return "table";
    case JSON_STRING:
        return "string";
    case JSON_REAL:
        return "float";
    case JSON_TRUE:
    case JSON_FALSE:
        return "boolean";
    default:
        return "value";
    }
}

static int incr_txn(struct store_txn *t, void *ctx)
{
    struct incr_op *o = ctx;
    struct store_val v;
    long long cur = 0;
    int rc = store_get(t, STORE_DB_KV, o->k->b, o->k->n, &v);
    if (rc == 0) {
        json_error_t je;
        json_t *j = json_loadb(v.p, v.n, JSON_LOAD, &je);
        if (!j)
            return tikd_fail(o->e, TIKD_ECORRUPT, "the stored value is not JSON: %s", je.text);
        bool isint = json_is_integer(j);
        const char *kind = json_kind(j);
        cur = isint ? (long long)json_integer_value(j) : 0;
        json_decref(j);
        if (!isint)
            return tikd_fail(o->e, TIKD_EINVAL, "the key holds a %s, not an integer", kind);
    } else if (rc != TIKD_ENOTFOUND) {
        return rc;
    }
    long long next;
    if (__builtin_add_overflow(cur, (long long)o->by, &next))
        return tikd_fail(o->e, TIKD_EINVAL, "%lld %+lld overflows a Lua integer", cur,
                         (long long)o->by);
    char buf[32];
    int n = snprintf(buf, sizeof buf, "%lld", next);
    if ((rc = store_put(t, STORE_DB_KV, o->k->b, o->k->n, buf, (size_t)n)) != 0)
        return rc;
    o->result = (lua_Integer)next;
    return 0;
}

/* tikd.kv.incr(key [, by=1]) -> the new value, in one transaction */
static int l_incr(lua_State *L)
{
    struct dbkey k;
    check_key(L, 1, "tikd.kv.incr", &k);
    lua_Integer by = luaL_optinteger(L, 2, 1);
    struct store *s = host_store(L, "tikd.kv");
    struct tikd_err e = {0};
    struct incr_op o = {&k, by, 0, &e};
    if (store_write(s, incr_txn, &o, &e) != 0)
        return luaL_error(L, "tikd.kv.incr: %s", e.msg[0] ? e.msg : "store failed");
    lua_pushinteger(L, o.result);
    return 1;
}

/* ---- keys ----------------------------------------------------------------------------------- */

/* The keys found, each as a 2-byte length and its bytes, one after another. */
struct keys_op {
    const struct dbkey *prefix;
    size_t skip; /* bytes of rule '\0' before each key */
    unsigned char *buf;
    size_t len, cap, count;
    bool too_many, nomem;
};

static int keys_each(struct store_val key, struct store_val val, void *ctx)
{
    struct keys_op *o = ctx;
    (void)val;
    if (o->count == KV_MAX_KEYS) {
        o->too_many = true;
        return 1;
    }
    size_t kl = key.n - o->skip;
    if (o->len + 2 + kl > o->cap) {
        size_t cap = o->cap ? o->cap * 2 : 4096;
        while (cap < o->len + 2 + kl)
            cap *= 2;
        unsigned char *nb = realloc(o->buf, cap);
        if (!nb) {
            o->nomem = true;
            return 1;
        }
        o->buf = nb;
        o->cap = cap;
    }
    o->buf[o->len] = (unsigned char)(kl >> 8);
    o->buf[o->len + 1] = (unsigned char)kl;
    memcpy(o->buf + o->len + 2, (const char *)key.p + o->skip, kl);
    o->len += 2 + kl;
    o->count++;
    return 0;
}

static int keys_txn(struct store_txn *t, void *ctx)
{
    struct keys_op *o = ctx;
    o->len = o->count = 0;
    int rc = store_foreach(t, STORE_DB_KV, o->prefix->b, o->prefix->n, keys_each, o);
    return rc > 0 ? 0 : rc;
}

static int push_keys_p(lua_State *L)
{
    const struct keys_op *o = lua_touserdata(L, 1);
    lua_createtable(L, (int)o->count, 0);
    size_t at = 0;
    for (size_t i = 0; i < o->count; i++) {
        size_t kl = (size_t)o->buf[at] << 8 | o->buf[at + 1];
        lua_pushlstring(L, (const char *)o->buf + at + 2, kl);
        lua_rawseti(L, -2, (lua_Integer)i + 1);
        at += 2 + kl;
    }
    return 1;
}

/* tikd.kv.keys([prefix]) -> this rule file's keys, in byte order */
static int l_keys(lua_State *L)
{
    size_t pl;
    const char *prefix = luaL_optlstring(L, 1, "", &pl);
    if (pl > KV_MAX_KEY)
        luaL_argerror(L, 1, "a prefix of at most 256 bytes");
    struct dbkey p;
    make_key(L, &p, "tikd.kv.keys", prefix, pl);
    struct store *s = host_store(L, "tikd.kv");
    struct keys_op o = {.prefix = &p, .skip = p.n - pl}; /* the rule's part of each key */
    struct tikd_err e = {0};
    int rc = store_read(s, keys_txn, &o, &e);
    if (rc != 0 || o.too_many || o.nomem) {
        free(o.buf);
        if (o.too_many)
            return luaL_error(L, "tikd.kv.keys: more than %d keys match; ask for a narrower prefix",
                              KV_MAX_KEYS);
        return luaL_error(L, "tikd.kv.keys: %s",
                          o.nomem    ? "out of memory"
                          : e.msg[0] ? e.msg
                                     : "store failed");
    }
    lua_pushcfunction(L, push_keys_p);
    lua_pushlightuserdata(L, &o);
    int st = lua_pcall(L, 1, 1, 0);
    free(o.buf);
    return st == LUA_OK ? 1 : lua_error(L);
}

int luaopen_tikd_kv(lua_State *L)
{
    static const luaL_Reg fns[] = {
        {"get", l_get}, {"set", l_set}, {"incr", l_incr}, {"keys", l_keys}, {NULL, NULL}};
    luaL_newlib(L, fns);
    return 1;
}
