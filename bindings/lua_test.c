/* lua_test.c - the C half of tikd.test (scripts/tikd/test.lua): what a rule
 * test needs from the engine, on the test's own database and fake clock.
 *
 * Preloaded as "tikd.test.host" only in test mode (host_opts.test, `tikd
 * rules test`). Rule functions run as real rule calls (gen_call: their own
 * coroutine, budget and identity, so tikd.kv and chosen_by are the rule's),
 * nested inside the test's call. Test mode has no event loop, so a call can
 * never park: a waiting primitive raises in the rule, and every call has
 * ended when gen_call returns. Failures come back as false and a message;
 * the Lua half raises them at the test's line. */
#include "lua_args.h"
#include "lua_dryrun.h"
#include "lua_hooks.h"
#include "lua_host.h"
#include "lua_modules.h"

#include <errno.h>
#include <fcntl.h>
#include <lauxlib.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "../core/account.h"
#include "../core/clock.h"
#include "../core/codec.h"
#include "../core/intake.h"
#include "../core/audit.h"
#include "../core/job.h"
#include "../core/post.h"
#include "../core/tiktok.h"
#include "../core/store.h"

#define TEST_KEY  "tikd.test"
#define MAX_DEPTH 8  /* T.call inside a rule inside T.call ...: no runaway C recursion */
#define MAX_ARGS  16 /* a fresh call coroutine has room for these */

struct test_state {
    int depth;
    bool timers_ready;
    struct dryrun_timers timers;
};

static void *state_make(void)
{
    return calloc(1, sizeof(struct test_state));
}

static void state_free(void *p)
{
    struct test_state *ts = p;
    dryrun_timers_free(&ts->timers);
    free(ts);
}

static struct test_state *state_of(lua_State *L)
{
    struct test_state *ts = host_ext(L, TEST_KEY, state_make, state_free);
    if (!ts)
        luaL_error(L, "tikd.test: out of memory");
    return ts;
}

static struct store *store_of(lua_State *L)
{
    struct store *s = host_opts_of(L)->store;
    if (!s)
        luaL_error(L, "tikd.test needs a database (run it with `tikd rules test`)");
    return s;
}

/* The rules under test: every rule file but the test files loaded after them. */
static size_t rule_count(lua_State *L)
{
    struct gen *g = host_gen(L);
    size_t n = gen_rule_count(g), extra = host_opts_of(L)->nextra;
    return n > extra ? n - extra : 0;
}

/* ---- running a rule function to its end ------------------------------------------- */

struct sync {
    lua_State *to; /* where results go (NULL: dropped) */
    bool done, ok, orphan;
    int nres;
    char err[1024];
};

static void sync_done(void *ud, const struct call_result *r)
{
    struct sync *s = ud;
    if (s->orphan) { /* its caller gave up (cannot happen without a loop) */
        free(s);
        return;
    }
    s->done = true;
    s->ok = r->ok;
    if (!r->ok) {
        snprintf(s->err, sizeof s->err, "%s", r->error);
    } else if (s->to) {
        if (lua_checkstack(s->to, r->nresults + 2)) {
            lua_xmove(r->L, s->to, r->nresults);
            s->nres = r->nresults;
        } else {
            s->ok = false;
            snprintf(s->err, sizeof s->err, "%s: %s returned too many values", r->rule, r->fn);
        }
    }
}

/* Run fn of rule i to its end. 0 and s filled (s->ok, s->err), or -1 with
 * s->err when it could not start. s is the caller's, heap-allocated. */
static int run_sync(lua_State *L, size_t i, const char *fn, host_push_fn push, void *ud,
                    struct sync *s)
{
    struct test_state *ts = state_of(L);
    struct gen *g = host_gen(L);
    if (ts->depth >= MAX_DEPTH) {
        snprintf(s->err, sizeof s->err, "rule calls nested more than %d deep", MAX_DEPTH);
        return -1;
    }
    ts->depth++;
    int rc = gen_call(g, i, fn, push, ud, sync_done, s);
    ts->depth--;
    if (rc == TIKD_ENOTFOUND || rc == TIKD_EINVAL) {
        snprintf(s->err, sizeof s->err, "%s defines no function %s", gen_rule_name(g, i), fn);
        return -1;
    }
    if (rc != 0) {
        snprintf(s->err, sizeof s->err, "%s: %s: out of memory", gen_rule_name(g, i), fn);
        return -1;
    }
    if (!s->done) {
        s->orphan = true; /* sync_done frees it */
        return 1;
    }
    return 0;
}

static int push_fail(lua_State *L, const char *msg)
{
    lua_pushboolean(L, 0);
    lua_pushstring(L, msg);
    return 2;
}

struct call_args {
    lua_State *from;
    int first, n;
};

static int push_args(lua_State *co, void *ud)
{
    struct call_args *a = ud;
    for (int i = 0; i < a->n; i++) {
        lua_pushvalue(a->from, a->first + i);
        lua_xmove(a->from, co, 1);
    }
    return a->n;
}

/* call(rule, fn, ...) -> true, results... | false, message */
static int l_call(lua_State *L)
{
    const char *rule = luaL_checkstring(L, 1), *fn = luaL_checkstring(L, 2);
    int nargs = lua_gettop(L) - 2;
    luaL_argcheck(L, nargs <= MAX_ARGS, MAX_ARGS + 2, "at most 16 arguments");
    long i = dryrun_rule_index(host_gen(L), rule, rule_count(L));
    if (i < 0)
        return luaL_error(L, "no rule file named %s", rule);
    state_of(L);
    struct sync *s = calloc(1, sizeof *s);
    if (!s)
        return luaL_error(L, "out of memory");
    s->to = L;
    struct call_args a = {L, 3, nargs};
    int top = lua_gettop(L);
    int rc = run_sync(L, (size_t)i, fn, push_args, &a, s);
    char err[1024];
    snprintf(err, sizeof err, "%s", rc != 0 || !s->ok ? s->err : "");
    if (rc == 1) /* still running: cannot happen in test mode */
        return push_fail(L, "the call did not finish");
    bool ok = rc == 0 && s->ok;
    int nres = s->nres;
    free(s);
    if (!ok) {
        lua_settop(L, top);
        return push_fail(L, err);
    }
    lua_pushboolean(L, 1);
    lua_insert(L, -(nres + 1));
    return nres + 1;
}

/* Call fn on every rule under test that defines it; 0 or -1 with the first
 * failure in err (the others still run). *n counts the calls. */
static int call_all(lua_State *L, const char *fn, host_push_fn push, void *ud, int *n, char *err,
                    size_t errn)
{
    struct gen *g = host_gen(L);
    int rc = 0;
    *n = 0;
    for (size_t i = 0; i < rule_count(L); i++) {
        if (!gen_rule_has(g, i, fn))
            continue;
        struct sync *s = calloc(1, sizeof *s);
        if (!s) {
            snprintf(err, errn, "out of memory");
            return -1;
        }
        int r = run_sync(L, i, fn, push, ud, s);
        (*n)++;
        if ((r != 0 || !s->ok) && rc == 0) {
            snprintf(err, errn, "%s", s->err);
            rc = -1;
        }
        if (r != 1)
            free(s);
    }
    return rc;
}

/* hook(fn, ...) -> number of rules called | false, message */
static int l_hook(lua_State *L)
{
    const char *fn = luaL_checkstring(L, 1);
    int nargs = lua_gettop(L) - 1;
    luaL_argcheck(L, nargs <= MAX_ARGS, MAX_ARGS + 1, "at most 16 arguments");
    struct call_args a = {L, 2, nargs};
    char err[1024];
    int n;
    state_of(L);
    if (call_all(L, fn, push_args, &a, &n, err, sizeof err) != 0)
        return push_fail(L, err);
    lua_pushinteger(L, n);
    return 1;
}

/* ---- media ---------------------------------------------------------------------------- */

/* Write content into test_dir/media[/sub]/name; 0 or -1 with err. */
static int write_placeholder(const char *dir, const char *sub, const char *name,
                             const char *content, size_t n, char *path, size_t pn, char *err,
                             size_t errn)
{
    char folder[PATH_MAX];
    snprintf(folder, sizeof folder, "%.3000s/media", dir);
    for (int i = 0; i < (sub ? 2 : 1); i++) {
        if (i)
            snprintf(folder, sizeof folder, "%.3000s/media/%.255s", dir, sub);
        if (mkdir(folder, 0700) != 0 && errno != EEXIST) {
            snprintf(err, errn, "%.900s: %s", folder, strerror(errno));
            return -1;
        }
    }
    snprintf(path, pn, "%.4000s/%.255s", folder, name);
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(content, 1, n, f) != n || fclose(f) != 0) {
        if (f)
            fclose(f);
        snprintf(err, errn, "%.900s: cannot write", path);
        return -1;
    }
    return 0;
}

/* A tiny ISO-BMFF writer for the placeholder video below. */
struct mp4w {
    unsigned char *buf;
    size_t at, open[8], depth;
};

static void w32(struct mp4w *w, uint32_t v)
{
    unsigned char *p = w->buf + w->at;
    p[0] = (unsigned char)(v >> 24), p[1] = (unsigned char)(v >> 16);
    p[2] = (unsigned char)(v >> 8), p[3] = (unsigned char)v;
    w->at += 4;
}

static void wbytes(struct mp4w *w, const void *p, size_t n)
{
    memcpy(w->buf + w->at, p, n);
    w->at += n;
}

static void wzero(struct mp4w *w, size_t n)
{
    memset(w->buf + w->at, 0, n);
    w->at += n;
}

static void wopen(struct mp4w *w, const char *type)
{
    w->open[w->depth++] = w->at;
    w32(w, 0);
    wbytes(w, type, 4);
}

static void wclose(struct mp4w *w)
{
    size_t start = w->open[--w->depth], end = w->at;
    w->at = start;
    w32(w, (uint32_t)(end - start));
    w->at = end;
}

/* A placeholder video: a real MP4 container (the media probe reads it as a
 * 10 s 1080x1920 H.264 clip at 30 fps) whose media data is a line naming
 * it, so each name is its own content. Returns its length (buf holds at
 * least 1024 bytes more than the name). */
static size_t placeholder_mp4(const char *name, unsigned char *buf, size_t n)
{
    static const uint32_t matrix[9] = {0x10000, 0, 0, 0, 0x10000, 0, 0, 0, 0x40000000};
    const uint32_t scale = 90000, delta = 3000, samples = 300, dur = samples * delta;
    struct mp4w w = {buf, 0, {0}, 0};
    memset(buf, 0, n);
    wopen(&w, "ftyp");
    wbytes(&w, "isom\0\0\x02\0isomiso2mp41", 20);
    wclose(&w);
    wopen(&w, "moov");
    wopen(&w, "mvhd");
    uint32_t mvhd[] = {0, 0, 0, scale, dur, 0x10000, 0x01000000};
    for (size_t i = 0; i < sizeof mvhd / sizeof mvhd[0]; i++)
        w32(&w, mvhd[i]);
    wzero(&w, 8);
    for (int i = 0; i < 9; i++)
        w32(&w, matrix[i]);
    wzero(&w, 24);
    w32(&w, 2); /* next track id */
    wclose(&w);
    wopen(&w, "trak");
    wopen(&w, "tkhd");
    uint32_t tkhd[] = {3, 0, 0, 1, 0, dur};
    for (size_t i = 0; i < sizeof tkhd / sizeof tkhd[0]; i++)
        w32(&w, tkhd[i]);
    wzero(&w, 16);
    for (int i = 0; i < 9; i++)
        w32(&w, matrix[i]);
    w32(&w, 1080u << 16);
    w32(&w, 1920u << 16);
    wclose(&w);
    wopen(&w, "mdia");
    wopen(&w, "mdhd");
    uint32_t mdhd[] = {0, 0, 0, scale, dur, 0x55c40000};
    for (size_t i = 0; i < sizeof mdhd / sizeof mdhd[0]; i++)
        w32(&w, mdhd[i]);
    wclose(&w);
    wopen(&w, "hdlr");
    w32(&w, 0);
    w32(&w, 0);
    wbytes(&w, "vide", 4);
    wzero(&w, 12);
    wbytes(&w, "Video", 6);
    wclose(&w);
    wopen(&w, "minf");
    wopen(&w, "vmhd");
    w32(&w, 1);
    wzero(&w, 8);
    wclose(&w);
    wopen(&w, "stbl");
    wopen(&w, "stsd");
    w32(&w, 0);
    w32(&w, 1);
    wopen(&w, "avc1"); /* VisualSampleEntry */
    wzero(&w, 6);
    wbytes(&w, "\0\1", 2); /* data reference index */
    wzero(&w, 16);
    wbytes(&w, "\x04\x38\x07\x80", 4); /* 1080 x 1920 */
    w32(&w, 0x480000);
    w32(&w, 0x480000);
    w32(&w, 0);
    wbytes(&w, "\0\1", 2); /* frame count */
    wzero(&w, 32);
    wbytes(&w, "\0\x18\xff\xff", 4); /* depth 24, pre-defined -1 */
    wclose(&w);
    wclose(&w); /* stsd */
    wopen(&w, "stts");
    w32(&w, 0);
    w32(&w, 1);
    w32(&w, samples);
    w32(&w, delta);
    wclose(&w);
    wclose(&w); /* stbl */
    wclose(&w); /* minf */
    wclose(&w); /* mdia */
    wclose(&w); /* trak */
    wclose(&w); /* moov */
    wopen(&w, "mdat");
    int k = snprintf((char *)buf + w.at, n - w.at - 1, "tikd.test placeholder: %s\n", name);
    w.at += k > 0 ? (size_t)k : 0;
    wclose(&w);
    return w.at;
}

/* Read at most n - 1 bytes of path into buf (NUL-terminated); false if it
 * is not a readable regular file that fits. */
static bool read_small(const char *path, char *buf, size_t n)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    struct stat st;
    bool ok = fd >= 0 && fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && (size_t)st.st_size < n;
    size_t have = 0;
    ssize_t r = 1;
    while (ok && have < (size_t)st.st_size && (r = read(fd, buf + have, n - 1 - have)) > 0)
        have += (size_t)r;
    if (fd >= 0)
        close(fd);
    buf[ok && r >= 0 ? have : 0] = '\0';
    return ok && r >= 0;
}

/* The item the daemon's intake would hand over for the file at path (hash,
 * size, the sidecar NAME.json of its stem), with meta (JSON text, or NULL)
 * standing for the sidecar. 0, or -1 with err. */
static int make_item(struct intake_item *it, const char *path, const char *meta, size_t mlen,
                     char *err, size_t errn)
{
    char abs[PATH_MAX];
    if (!realpath(path, abs) || strlen(abs) >= sizeof it->path) {
        snprintf(err, errn, "%.900s: %s", path, strerror(errno ? errno : ENAMETOOLONG));
        return -1;
    }
    struct stat st;
    struct tikd_err e = {0};
    if (stat(abs, &st) != 0 || !S_ISREG(st.st_mode)) {
        snprintf(err, errn, "%.900s: not a readable regular file", abs);
        return -1;
    }
    if (codec_sha256_file(abs, it->hash, &e) != 0) {
        snprintf(err, errn, "%.900s", e.msg);
        return -1;
    }
    const char *name = strrchr(abs, '/') + 1, *dot = strrchr(name, '.');
    size_t folder_len = name - abs > 1 ? (size_t)(name - abs - 1) : 1; /* "/" at the root */
    memcpy(it->path, abs, strlen(abs) + 1); /* fits: checked above, and so do its parts */
    snprintf(it->name, sizeof it->name, "%.255s", name);
    memcpy(it->folder, abs, folder_len);
    it->folder[folder_len] = '\0';
    it->size = (uint64_t)st.st_size;
    it->mtime = (double)st.st_mtim.tv_sec + (double)st.st_mtim.tv_nsec / 1e9;
    it->first_seen = clock_now();
    if (meta) {
        if (mlen >= sizeof it->sidecar) {
            snprintf(err, errn, "meta is larger than a sidecar may be (%zu bytes as JSON)",
                     sizeof it->sidecar - 1);
            return -1;
        }
        memcpy(it->sidecar, meta, mlen + 1);
    } else { /* clip.mp4 -> clip.json, as the intake reads it */
        char side[PATH_MAX + 8];
        int stem = (int)(dot && dot != name ? dot - name : (long)strlen(name));
        snprintf(side, sizeof side, "%.*s%.*s.json", (int)(name - abs), abs, stem, name);
        if (!read_small(side, it->sidecar, sizeof it->sidecar))
            it->sidecar[0] = '\0';
    }
    return 0;
}

/* media{ path= | name= [, folder=] [, content=] [, meta_json=] } -> rules called |
 * false, message (without content, a named placeholder holds one line naming it) */
static int l_media(lua_State *L)
{
    struct args a = args_table(L, 1, "tikd.test media");
    lua_settop(L, 1);
    state_of(L);
    const struct host_opts *o = host_opts_of(L);
    const char *path = args_str(&a, "path", NULL), *name = args_str(&a, "name", NULL);
    const char *sub = args_str(&a, "folder", NULL);
    size_t clen = 0, mlen = 0;
    const char *content = args_lstr(&a, "content", NULL, &clen);
    const char *meta = args_lstr(&a, "meta_json", NULL, &mlen);
    char made[PATH_MAX + 300], err[1024];
    if (!path) {
        if (!name || !*name || name[0] == '.' || strchr(name, '/') || strlen(name) > 255)
            return luaL_error(L, "name (a file name, no slashes) or path is required");
        if (sub && (!*sub || sub[0] == '.' || strchr(sub, '/') || strlen(sub) > 255))
            return luaL_error(L, "folder is a folder name (no slashes)");
        if (!o->test_dir)
            return luaL_error(L, "no scratch folder for media here: give path=");
        unsigned char dflt[2048]; /* a video the probe reads, unique per name */
        if (!content) {
            clen = placeholder_mp4(name, dflt, sizeof dflt);
            content = (const char *)dflt;
        }
        if (write_placeholder(o->test_dir, sub, name, content, clen, made, sizeof made, err,
                              sizeof err) != 0)
            return push_fail(L, err);
        path = made;
    }
    struct intake_item *it = lua_newuserdatauv(L, sizeof *it, 0); /* the GC frees it */
    memset(it, 0, sizeof *it);
    if (make_item(it, path, meta, mlen, err, sizeof err) != 0)
        return push_fail(L, err);
    int n;
    if (call_all(L, HOOK_ON_MEDIA, hooks_arg_media, it, &n, err, sizeof err) != 0)
        return push_fail(L, err);
    lua_pushinteger(L, n);
    return 1;
}

/* video(label) -> the bytes of a placeholder video (a real MP4 container
 * the media probe reads) whose media data names label: the same label, the
 * same content. */
static int l_video(lua_State *L)
{
    const char *label = luaL_checkstring(L, 1);
    luaL_argcheck(L, strlen(label) <= 255, 1, "at most 255 bytes");
    unsigned char buf[2048];
    size_t n = placeholder_mp4(label, buf, sizeof buf);
    lua_pushlstring(L, (const char *)buf, n);
    return 1;
}

/* ---- clock, timers, accounts ------------------------------------------------------- */

/* set_clock(t): the fake clock reads t from now on */
static int l_set_clock(lua_State *L)
{
    lua_Number t = luaL_checknumber(L, 1);
    luaL_argcheck(L, t > 0 && t < 253402300800.0, 1, "a time from 1970 to 9999");
    clock_set_virtual(t);
    return 0;
}

/* timers(until) -> firings | false, message: every declared timer fires up
 * to `until` in time order, the clock set to each firing, then to until */
static int l_timers(lua_State *L)
{
    lua_Number until = luaL_checknumber(L, 1);
    struct test_state *ts = state_of(L);
    struct gen *g = host_gen(L);
    if (!ts->timers_ready) {
        if (dryrun_timers_init(&ts->timers, g, store_of(L), clock_now()) != 0)
            return luaL_error(L, "out of memory");
        ts->timers_ready = true;
    }
    int fired = 0;
    struct dryrun_timer *t;
    while ((t = dryrun_timers_next(&ts->timers, until))) {
        clock_set_virtual(t->next);
        long rule = t->rule;
        char fn[sizeof t->t.fn], err[1400];
        snprintf(fn, sizeof fn, "%s", t->t.fn);
        dryrun_timers_advance(t);
        fired++;
        struct sync *s = rule >= 0 ? calloc(1, sizeof *s) : NULL;
        int rc = s ? run_sync(L, (size_t)rule, fn, NULL, NULL, s) : -1;
        if (rc != 0 || !s->ok) {
            char when[32];
            time_t at = (time_t)clock_now();
            struct tm tm;
            strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", gmtime_r(&at, &tm));
            snprintf(err, sizeof err, "timer %s:%s at %s: %s", t->t.rule, fn, when,
                     s ? s->err : "out of memory");
            if (rc != 1)
                free(s);
            return push_fail(L, err);
        }
        free(s);
    }
    if (until > clock_now())
        clock_set_virtual(until);
    lua_pushinteger(L, fired);
    return 1;
}

static int account_txn(struct store_txn *t, void *ctx)
{
    struct account *a = ctx, old;
    if (account_get(t, a->name, &old) == 0)
        return 0;
    return account_put(t, a);
}

/* account(name [, tenant]): a connected-looking account (no tokens) of the
 * rules' tenant, or of another (to test that the rules cannot see it) */
static int l_account(lua_State *L)
{
    const char *name = luaL_checkstring(L, 1);
    if (!account_name_valid(name))
        return luaL_error(L, "'%s' is not a valid account name", name);
    struct account a;
    account_init(&a, name, clock_now());
    a.state = ACCT_ACTIVE;
    snprintf(a.open_id, sizeof a.open_id, "test-%s", name);
    snprintf(a.scopes, sizeof a.scopes, "user.info.basic,video.publish,video.upload");
    a.access_expires_at = clock_now() + 86400;
    a.refresh_expires_at = clock_now() + 365 * 86400.0;
    const char *tenant = lua_isstring(L, 2) ? lua_tostring(L, 2) : host_tenant(L);
    snprintf(a.tenant, sizeof a.tenant, "%s", tenant ? tenant : ""); /* the rules' own */
    struct tikd_err e = {0};
    if (store_write(store_of(L), account_txn, &a, &e) != 0)
        return luaL_error(L, "%s", e.msg);
    return 0;
}

/* ---- jobs ------------------------------------------------------------------------------ */

struct ids_ctx {
    const char *account;
    uint64_t *ids; /* NULL: count only */
    size_t n, cap;
};

static int ids_one(const struct job *j, void *ctx)
{
    struct ids_ctx *c = ctx;
    if (c->account && strcmp(c->account, j->account) != 0)
        return 0;
    if (c->ids && c->n == c->cap)
        return 1;
    if (c->ids)
        c->ids[c->n] = j->id;
    c->n++;
    return 0;
}

static int ids_txn(struct store_txn *t, void *ctx)
{
    return job_foreach(t, ids_one, ctx);
}

static void set_str(lua_State *L, const char *k, const char *v)
{
    lua_pushstring(L, v);
    lua_setfield(L, -2, k);
}

static void set_num(lua_State *L, const char *k, double v)
{
    lua_Integer i;
    if (lua_numbertointeger(v, &i) && (double)i == v)
        lua_pushinteger(L, i);
    else
        lua_pushnumber(L, v);
    lua_setfield(L, -2, k);
}

static void push_test_job(lua_State *L, const struct job *j)
{
    bool approval = j->state == JOB_AWAITING_APPROVAL;
    lua_createtable(L, 0, 14);
    lua_pushinteger(L, (lua_Integer)j->id);
    lua_setfield(L, -2, "id");
    set_str(L, "account", j->account);
    set_num(L, "due", approval ? j->planned_at : j->due_at);
    set_num(L, "planned_at", j->planned_at);
    set_str(L, "kind", j->kind == JOB_PHOTO ? "photo" : "video");
    set_str(L, "mode", approval ? "approval" : j->mode == JOB_DRAFT ? "draft" : "direct");
    if (j->media[0])
        set_str(L, "media", j->media);
    if (j->images[0]) {
        lua_newtable(L);
        lua_Integer k = 0;
        for (const char *p = j->images; *p;) {
            size_t l = strcspn(p, "\n");
            lua_pushlstring(L, p, l);
            lua_rawseti(L, -2, ++k);
            p += l + (p[l] == '\n');
        }
        lua_setfield(L, -2, "images");
    }
    set_str(L, "caption", j->caption);
    set_str(L, "privacy", j->privacy);
    set_str(L, "chosen_by", j->chosen_by);
    set_str(L, "state", job_state_name(j->state));
    set_str(L, "reason", j->reason);
}

/* jobs([account]) -> { job, ... } in id order */
static int l_jobs(lua_State *L)
{
    struct ids_ctx c = {luaL_optstring(L, 1, NULL), NULL, 0, 0};
    struct store *s = store_of(L);
    store_read(s, ids_txn, &c, NULL);
    size_t n = c.n;
    /* userdata, so a Lua error (out of memory) leaks nothing */
    c.ids = lua_newuserdatauv(L, (n ? n : 1) * sizeof *c.ids, 0);
    c.n = 0;
    c.cap = n;
    store_read(s, ids_txn, &c, NULL);
    struct job *j = lua_newuserdatauv(L, sizeof *j, 0);
    lua_createtable(L, (int)c.n, 0);
    lua_Integer k = 0;
    for (size_t i = 0; i < c.n; i++) {
        if (job_read(s, c.ids[i], j) != 0)
            continue;
        push_test_job(L, j);
        lua_rawseti(L, -2, ++k);
    }
    return 1;
}

/* ---- before_publish ---------------------------------------------------------------- */

/* The creator as a test describes them (arg 2, a table or nil): every level
 * of a public account offered, 300 s, nothing disabled, by default. */
static void test_creator(lua_State *L, const char *account, struct tt_creator *c)
{
    memset(c, 0, sizeof *c);
    static const char public[] = "PUBLIC_TO_EVERYONE,MUTUAL_FOLLOW_FRIENDS,SELF_ONLY";
    memcpy(c->options, public, sizeof public);
    c->max_duration = 300;
    snprintf(c->username, sizeof c->username, "%s", account);
    snprintf(c->nickname, sizeof c->nickname, "%s", account);
    if (lua_isnoneornil(L, 2))
        return;
    struct args a = args_table(L, 2, "tikd.test before_publish");
    if (args_push(&a, "privacy_options", LUA_TTABLE) == LUA_TTABLE) {
        size_t o = 0;
        c->options[0] = '\0';
        for (lua_Integer i = 1; i <= (lua_Integer)lua_rawlen(L, -1); i++) {
            const char *lv = lua_rawgeti(L, -1, i) == LUA_TSTRING ? lua_tostring(L, -1) : NULL;
            if (!lv || !tt_privacy_known(lv))
                luaL_error(L, "privacy_options: %s is not a privacy level",
                           lv ? lv : "a non-string");
            if (o + strlen(lv) + 2 < sizeof c->options)
                o += (size_t)snprintf(c->options + o, sizeof c->options - o, "%s%s", o ? "," : "",
                                      lv);
            lua_pop(L, 1);
        }
    }
    lua_pop(L, 1);
    c->max_duration = (int)args_int(&a, "max_duration", 300, 1, 86400);
    snprintf(c->username, sizeof c->username, "%s", args_str(&a, "username", account));
    snprintf(c->nickname, sizeof c->nickname, "%s", args_str(&a, "nickname", account));
    c->comment_disabled = args_bool(&a, "comment_disabled", false);
    c->duet_disabled = args_bool(&a, "duet_disabled", false);
    c->stitch_disabled = args_bool(&a, "stitch_disabled", false);
}

struct decided {
    bool done;
    struct post_decision d;
};

static void test_decided(void *token, const struct post_decision *d)
{
    struct decided *x = token;
    x->done = true;
    x->d = *d;
    x->d.caption = d->caption ? strdup(d->caption) : NULL; /* the fold frees its own */
}

struct record_ctx {
    struct job *j;
    const char *event, *by;
};

static int record_txn(struct store_txn *t, void *ctx)
{
    struct record_ctx *r = ctx;
    int rc = job_put(t, r->j);
    char detail[300];
    snprintf(detail, sizeof detail, "job=%llu account=%s by=%s", (unsigned long long)r->j->id,
             r->j->account, r->by);
    return rc ? rc : audit_append(t, "tikd", r->event, detail);
}

/* before_publish(id [, creator]) -> { verdict, caption, privacy, chosen_by, reason, job } |
 * false, message: the rules' last word on job id, asked as the pipeline asks it (every rule
 * in turn, the account's privacy fallback), and recorded on the job as the pipeline would */
static int l_before_publish(lua_State *L)
{
    lua_Integer id = luaL_checkinteger(L, 1);
    struct test_state *ts = state_of(L);
    struct store *s = store_of(L);
    struct job *j = lua_newuserdatauv(L, sizeof *j, 0);
    if (id <= 0 || job_read(s, (uint64_t)id, j) != 0)
        return push_fail(L, "no such job");
    if (j->state != JOB_SCHEDULED && j->state != JOB_DEFERRED && j->state != JOB_PREFLIGHT)
        return push_fail(L, j->state == JOB_AWAITING_APPROVAL
                                ? "the job awaits approval: the rules are asked once it is approved"
                                : "the job is past its init");
    struct tt_creator c;
    test_creator(L, j->account, &c);
    if (ts->depth >= MAX_DEPTH)
        return push_fail(L, "rule calls nested too deep");
    struct decided x = {0};
    ts->depth++;
    int rc = hooks_before_publish(host_gen(L), rule_count(L), j, &c, NULL, test_decided, &x);
    ts->depth--;
    if (rc != 0 || !x.done) {
        free(x.d.caption);
        return push_fail(L, rc ? "out of memory" : "before_publish did not finish");
    }
    char why[2400];
    static const char *const verdicts[] = {"publish", "changed", "cancelled", "deferred",
                                           "invalid"};
    static const char *const events[] = {NULL, "job.changed", "job.cancelled", "job.deferred",
                                         "job.failed"};
    enum post_verdict v = post_decide(j, &x.d, clock_now(), why, sizeof why);
    free(x.d.caption);
    if (v == POST_INVALID) {
        j->state = JOB_FAILED;
        snprintf(j->reason, sizeof j->reason, "%.590s", why);
    }
    struct record_ctx rec = {j, events[v], x.d.chosen_by};
    struct tikd_err e = {0};
    if (events[v] && store_write(s, record_txn, &rec, &e) != 0)
        return push_fail(L, e.msg);
    lua_createtable(L, 0, 6);
    set_str(L, "verdict", verdicts[v]);
    set_str(L, "caption", j->caption);
    set_str(L, "privacy", j->privacy);
    set_str(L, "chosen_by", j->chosen_by);
    set_str(L, "reason", j->reason);
    push_test_job(L, j);
    lua_setfield(L, -2, "job");
    return 1;
}

int luaopen_tikd_test(lua_State *L)
{
    static const luaL_Reg fns[] = {{"call", l_call},     {"hook", l_hook},
                                   {"media", l_media},   {"set_clock", l_set_clock},
                                   {"timers", l_timers}, {"account", l_account},
                                   {"jobs", l_jobs},     {"before_publish", l_before_publish},
                                   {"video", l_video},   {NULL, NULL}};
    luaL_newlib(L, fns);
    return 1;
}
