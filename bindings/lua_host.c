/* lua_host.c - generations, budgets and the coroutine runner (see
 * lua_host.h).
 *
 * Budgets, all per call: instructions (a count hook), matcher steps (the
 * pattern matcher charges the call), time on the loop (lua_deadline.c: a
 * signal arms the hook even while C runs), and memory: the allocator charges
 * every byte a call grows the state by to that call, and every byte a rule
 * file's code holds to that file (each block carries its owner), under the
 * generation's total. When a budget runs out the hook re-arms itself to fire
 * on every instruction and ends the call: it yields the call's coroutine
 * from the hook where it can, so no message handler or <close> handler of
 * the rule ever runs with hooks off (an error raised inside a hook leaves
 * Lua's hooks off until the next protected call returns), and raises only
 * where a yield cannot cross C. Whatever the rule catches or returns, the
 * call is reported failed, naming the budget. Every Lua API call that may
 * allocate runs under lua_pcall, so an exhausted state raises an error
 * instead of a panic. */
#include "lua_host.h"
#include "lua_deadline.h"
#include "lua_modules.h"
#include "lua_safelib.h"
#include "lua_sandbox.h"

#include <dirent.h>
#include <errno.h>
#include <lauxlib.h>
#include <limits.h>
#include <lualib.h>
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../core/account.h"
#include "../core/libs.h"
#include "../core/log.h"
#include "../core/metrics.h"

#define HOOK_STEP 1000

/* Threads kept for reuse per rule file (see struct rule). */
#define IDLE_THREADS 2

/* Rule output (print, tikd.log) a call may write, and a rule file per
 * minute; the rest is counted and reported in one line. */
#define OUT_PER_CALL   200
#define OUT_PER_MINUTE 1200

struct rule {
    char *name; /* "rules/hello.lua" */
    char *path;
    int env_ref;
    int64_t out_window; /* start of the output minute (monotonic ns) */
    unsigned out_lines, out_suppressed;
    char libs[200]; /* the shared libraries it loaded: "name@version,..." */
    /* Threads of its calls that returned, for its next calls: a new thread
     * per call costs more than the call. Never shared between files, so
     * each thread's memory stays charged to the file it ran, and a thread
     * a file's code captured (coroutine.running) runs only that file's code
     * again; rule code can never resume one (REG_HOSTTHREADS). */
    struct {
        lua_State *co;
        int ref;
    } idle[IDLE_THREADS];
    unsigned nidle;
};

/* What ended a call besides its own code. */
enum budget {
    BUDGET_NONE,
    BUDGET_INSTR,
    BUDGET_TIME,
    BUDGET_STEPS,
    BUDGET_MEM_CALL,
    BUDGET_MEM_RULE,
    BUDGET_MEM_STATE,
};

struct gen {
    unsigned id;
    int refs;
    lua_State *L;
    struct host_opts o;
    struct sandbox_opts sb;
    char *scripts_dir, *rules_dir, **lib, **allow, **roots, **extra, *test_dir, *tenant;
    struct lib_set *libs; /* the pins, resolved when it was built */
    struct rule *rules;
    size_t nrules;
    size_t mem_used;
    size_t *owned; /* bytes held by rule i at [i + 1] ([0]: the engine, not kept) */
    size_t nowners;
    const void *refused;  /* the last allocation refused (Lua retries it once, */
    size_t refused_size;  /* after an emergency collection) */
    struct call *current; /* the call running now, if any */
    struct call *calls;   /* every live call */
    size_t live;
    struct {
        const char *key;
        void *p;
        void (*free)(void *);
    } ext[8]; /* C state of modules, per generation (gen_ext) */
};

struct call {
    struct gen *g;
    lua_State *co; /* NULL for the pseudo-call that loads a file */
    int co_ref;
    const char *rule;
    size_t owner; /* index into g->owned: the rule file + 1 */
    char fn[64];
    long long instr;
    long long mem_net;    /* bytes grown while this call ran */
    lua_Integer steps;    /* matcher steps left */
    int64_t time_left_ns; /* time on the loop left (INT64_MAX: no bound) */
    enum budget fired;    /* the budget that ended it */
    enum budget refused;  /* the memory budget that last refused an allocation */
    bool closing;         /* its <close> handlers are running */
    char where[160];      /* "rules/a.lua:3", where the budget ended it */
    unsigned out_lines, out_suppressed;
    bool waiting;
    bool cancelled; /* by gen_cancel_all */
    uint64_t ticket;
    void (*cancel)(void *);
    void *cancel_ud;
    host_done_fn done;
    void *done_ud;
    struct call *next, *prev;
};

static struct gen *gen_of(lua_State *L)
{
    return *(struct gen **)lua_getextraspace(L);
}

/* ---- budgets ----------------------------------------------------------- */

static void count_hook(lua_State *L, lua_Debug *ar);

/* "instruction budget exceeded (10000000 instructions per call: lua.instructions)" */
static void budget_text(const struct call *c, enum budget b, char *out, size_t n)
{
    const struct host_opts *o = &c->g->o;
    switch (b) {
    case BUDGET_TIME:
        snprintf(out, n, "time budget exceeded (%g s per call: lua.call_time)", o->call_time);
        break;
    case BUDGET_STEPS:
        snprintf(out, n,
                 "pattern too complex: more than %lld matching steps in one call "
                 "(lua.pattern_steps)",
                 o->pattern_steps);
        break;
    case BUDGET_MEM_CALL:
        snprintf(out, n, "memory budget exceeded (%zu bytes per call: lua.call_memory)",
                 o->call_memory);
        break;
    case BUDGET_MEM_RULE:
        snprintf(out, n, "memory budget exceeded (%zu bytes per rule file: lua.rule_memory)",
                 o->rule_memory);
        break;
    case BUDGET_MEM_STATE:
        snprintf(out, n, "memory budget exceeded (%zu bytes for all rule files: lua.state_memory)",
                 o->state_memory);
        break;
    default:
        snprintf(out, n,
                 "instruction budget exceeded (%lld instructions per call: lua.instructions)",
                 o->instructions);
    }
}

/* From now on every instruction of the call's code fires the hook. */
static void budget_fire(struct call *c, lua_State *L, enum budget b)
{
    if (!c->fired)
        c->fired = b;
    lua_sethook(L, count_hook, LUA_MASKCOUNT, 1);
    if (c->co && c->co != L)
        lua_sethook(c->co, count_hook, LUA_MASKCOUNT, 1);
}

/* Raise the budget error at the rule's line (level 1 of a C function, or
 * ar of a hook). */
static int budget_raise(lua_State *L, struct call *c, lua_Debug *ar)
{
    char text[200];
    budget_text(c, c->fired, text, sizeof text);
    if (ar) {
        lua_getinfo(L, "Sl", ar); /* a hook has no level of its own */
        return luaL_error(L, "%s:%d: %s", ar->short_src, ar->currentline, text);
    }
    return luaL_error(L, "%s", text);
}

static void count_hook(lua_State *L, lua_Debug *ar)
{
    struct gen *g = gen_of(L);
    struct call *c = g->current;
    if (!c)
        return;
    c->instr += HOOK_STEP;
    if (!c->fired) {
        if (deadline_expired())
            c->fired = BUDGET_TIME;
        else if (c->instr > g->o.instructions)
            c->fired = BUDGET_INSTR;
        else
            return;
    }
    budget_fire(c, L, c->fired);
    /* A yield from a hook leaves Lua's hooks on, and nothing of the rule
     * runs after it: the call is over. */
    if (L == c->co && !c->closing && lua_isyieldable(L)) {
        if (!c->where[0] && lua_getinfo(L, "Sl", ar))
            snprintf(c->where, sizeof c->where, "%s:%d", ar->short_src, ar->currentline);
        lua_yield(L, 0);
        return;
    }
    budget_raise(L, c, ar);
}

/* ---- the allocator ----------------------------------------------------- */

/* Each block starts with its owner, so a block freed later, by whichever
 * call's collection, is taken off the right rule file. 16 bytes keep
 * malloc's alignment. */
#define HDR 16

static enum budget mem_refusal(struct gen *g, struct call *c, size_t owner, size_t grow)
{
    if (g->mem_used + grow > g->o.state_memory)
        return BUDGET_MEM_STATE;
    if (owner && owner < g->nowners && g->owned[owner] + grow > g->o.rule_memory)
        return BUDGET_MEM_RULE;
    if (c && c->mem_net + (long long)grow > (long long)g->o.call_memory)
        return BUDGET_MEM_CALL;
    return BUDGET_NONE;
}

static void mem_account(struct gen *g, struct call *c, size_t owner, long long delta)
{
    g->mem_used = (size_t)((long long)g->mem_used + delta);
    if (owner && owner < g->nowners)
        g->owned[owner] = (size_t)((long long)g->owned[owner] + delta);
    if (c)
        c->mem_net += delta;
}

static void *gen_alloc(void *ud, void *ptr, size_t osize, size_t nsize)
{
    struct gen *g = ud;
    struct call *c = g->current;
    char *block = ptr ? (char *)ptr - HDR : NULL;
    size_t old = ptr ? osize : 0;
    size_t owner = block ? *(size_t *)block : c ? c->owner : 0;
    if (nsize == 0) {
        free(block);
        mem_account(g, c, owner, -(long long)old);
        return NULL;
    }
    if (nsize > old) {
        enum budget b = mem_refusal(g, c, owner, nsize - old);
        if (b) {
            /* Lua collects and asks once more; refuse that too and the
             * budget has run out */
            if (c && g->refused == ptr && g->refused_size == nsize) {
                if (!c->fired)
                    budget_fire(c, c->co ? c->co : g->L, b);
                g->refused = NULL;
                g->refused_size = 0;
            } else {
                g->refused = ptr;
                g->refused_size = nsize;
            }
            if (c)
                c->refused = b;
            return NULL;
        }
    }
    if (nsize > SIZE_MAX - HDR)
        return NULL;
    char *p = realloc(block, nsize + HDR);
    if (!p)
        return NULL;
    g->refused = NULL;
    g->refused_size = 0; /* no refusal pending */
    *(size_t *)p = owner;
    mem_account(g, c, owner, (long long)nsize - (long long)old);
    return p + HDR;
}

static int panic(lua_State *L)
{
    TLOG(TLOG_ERROR, "lua.panic", LSTR("error", lua_tostring(L, -1)));
    tlog_flush(); /* the process ends here: no commit will let held lines go */
    return 0;     /* Lua aborts */
}

/* ---- meters for C work and output (lua_host.h) --------------------------- */

void host_charge(lua_State *L, lua_Integer units)
{
    struct gen *g = gen_of(L);
    struct call *c = g->current;
    if (!c)
        return;
    if (units > 0)
        c->instr += units;
    if (!c->fired && c->instr > g->o.instructions)
        budget_fire(c, L, BUDGET_INSTR);
    if (c->fired)
        budget_raise(L, c, NULL);
}

bool host_spent(lua_State *L)
{
    struct call *c = gen_of(L)->current;
    return c && c->fired;
}

static lua_Integer *host_steps(lua_State *L)
{
    struct call *c = gen_of(L)->current;
    return c ? &c->steps : NULL;
}

static void host_steps_out(lua_State *L)
{
    struct call *c = gen_of(L)->current;
    budget_fire(c, L, BUDGET_STEPS);
    budget_raise(L, c, NULL);
}

bool host_output(lua_State *L)
{
    struct gen *g = gen_of(L);
    struct call *c = g->current;
    if (!c || !c->owner)
        return true;
    struct rule *r = &g->rules[c->owner - 1];
    int64_t now = deadline_now();
    if (r->out_window == 0 || now - r->out_window >= 60 * 1000000000LL) {
        r->out_window = now;
        r->out_lines = 0;
    }
    if (c->out_lines >= OUT_PER_CALL || r->out_lines >= OUT_PER_MINUTE) {
        c->out_suppressed++;
        return false;
    }
    c->out_lines++;
    r->out_lines++;
    return true;
}

/* One line for the output a call was not allowed to write. */
static void output_flush(struct call *c)
{
    if (!c->out_suppressed)
        return;
    TLOG(TLOG_WARN, "rule.output_suppressed", LSTR("rule", c->rule), LSTR("fn", c->fn),
         LINT("lines", c->out_suppressed),
         LSTR("limit", c->out_lines >= OUT_PER_CALL ? "200 lines per call"
                                                    : "1200 lines per rule file per minute"));
    c->out_suppressed = 0;
}

static const struct sandbox_meters host_meters = {
    .steps = {host_steps, host_steps_out},
    .charge = host_charge,
    .spent = host_spent,
    .output = host_output,
};

/* ---- reports ----------------------------------------------------------- */

void gen_report_free(struct gen_report *r)
{
    if (!r)
        return;
    for (size_t i = 0; i < r->nerrors; i++)
        free(r->errors[i]);
    free(r->errors);
    r->errors = NULL;
    r->nerrors = 0;
}

static void report_add(struct gen_report *r, const char *msg)
{
    if (!r)
        return;
    char **n = realloc(r->errors, (r->nerrors + 1) * sizeof *n);
    if (!n)
        return;
    r->errors = n;
    r->errors[r->nerrors] = strdup(msg);
    if (r->errors[r->nerrors])
        r->nerrors++;
}

/* True if msg starts with a chunk position ("rules/a.lua:3:", "lib/x.lua:",
 * "[string \"...\"]:1:"): it already names a file. */
static bool names_file(const char *msg)
{
    if (msg[0] == '[')
        return strncmp(msg, "[string ", 8) == 0;
    const char *colon = strchr(msg, ':');
    return colon && colon - msg >= 5 && memcmp(colon - 4, ".lua", 4) == 0 &&
           !memchr(msg, ' ', (size_t)(colon - msg));
}

/* The message of a failed call or load: with the budget named when one
 * fired (the rule may have swallowed the budget error and raised another,
 * or returned normally), and always naming a file (Lua's own "C stack
 * overflow" or "attempt to load a binary chunk" name none). */
static void failure_message(struct call *c, lua_State *L, int st, char *out, size_t n)
{
    const char *msg = st != LUA_OK ? lua_tostring(L, -1) : NULL;
    char text[200];
    if (c->fired) {
        budget_text(c, c->fired, text, sizeof text);
        if (msg && strstr(msg, text) && names_file(msg))
            snprintf(out, n, "%s", msg); /* the budget error itself, at the rule's line */
        else if (c->where[0] && names_file(c->where))
            snprintf(out, n, "%s: %s", c->where, text);
        else if (c->where[0])
            snprintf(out, n, "%s: %s: %s", c->rule, c->where, text);
        else
            snprintf(out, n, "%s: %s", c->rule, text);
        return;
    }
    if (msg && st == LUA_ERRMEM && c->refused) {
        budget_text(c, c->refused, text, sizeof text);
        snprintf(out, n, "%s: %s", c->rule, text);
    } else if (msg && names_file(msg)) {
        snprintf(out, n, "%s", msg);
    } else if (msg) {
        snprintf(out, n, "%s: %s", c->rule, msg);
    } else if (st != LUA_OK) {
        snprintf(out, n, "%s: error object is a %s value", c->rule, luaL_typename(L, -1));
    } else {
        snprintf(out, n, "%s: failed", c->rule);
    }
}

/* ---- building a generation --------------------------------------------- */

static int cmp_names(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static bool is_rule_file(const char *n)
{
    size_t l = strlen(n);
    if (n[0] == '.' || l < 5 || strcmp(n + l - 4, ".lua") != 0)
        return false;
    return !(l >= 9 && strcmp(n + l - 9, "_test.lua") == 0);
}

/* The sorted *.lua files of dir (rule tests excluded). */
static int list_rules(const char *dir, char ***out, size_t *n, struct tikd_err *e)
{
    DIR *d = opendir(dir);
    if (!d)
        return tikd_fail(e, TIKD_EIO, "rules dir %s: %s", dir, strerror(errno));
    char **v = NULL;
    size_t cnt = 0;
    struct dirent *de;
    while ((de = readdir(d))) {
        if (!is_rule_file(de->d_name))
            continue;
        char **nv = realloc(v, (cnt + 1) * sizeof *nv);
        if (!nv || !(nv[cnt] = strdup(de->d_name))) {
            free(nv ? nv : v);
            closedir(d);
            return tikd_fail(e, TIKD_ENOMEM, "out of memory");
        }
        v = nv;
        cnt++;
    }
    closedir(d);
    if (cnt)
        qsort(v, cnt, sizeof *v, cmp_names);
    *out = v;
    *n = cnt;
    return 0;
}

/* Protected: sandbox, modules. */
static int setup_state(lua_State *L)
{
    struct gen *g = gen_of(L);
    sandbox_open(L, &g->sb);
    for (const struct host_module *m = host_modules; m->name; m++)
        sandbox_preload(L, m->name, m->open);
    if (g->o.test) /* the C half of require "tikd.test" (scripts/tikd/test.lua) */
        sandbox_preload(L, "tikd.test.host", luaopen_tikd_test);
    return 0;
}

/* A call (or a file's load) of rule i with its budgets full. */
static void call_init(struct call *c, struct gen *g, size_t rule, const char *fn)
{
    memset(c, 0, sizeof *c);
    c->g = g;
    c->rule = g->rules[rule].name;
    c->owner = rule + 1;
    c->co_ref = LUA_NOREF;
    c->steps = (lua_Integer)g->o.pattern_steps;
    c->time_left_ns =
        g->o.call_time > 0 ? (int64_t)(g->o.call_time * 1e9) : (int64_t)366 * 86400 * 1000000000LL;
    size_t n = strnlen(fn, sizeof c->fn - 1);
    memcpy(c->fn, fn, n);
    c->fn[n] = '\0';
}

/* Protected: make rule i's environment, load and run its file. */
static int load_rule(lua_State *L)
{
    struct gen *g = gen_of(L);
    struct rule *r = lua_touserdata(L, 1);
    sandbox_new_env(L, r->name);
    int env = lua_gettop(L);
    lua_getfield(L, env, "require");
    lua_pushliteral(L, "tikd");
    lua_call(L, 1, 1);
    lua_setfield(L, env, "tikd");
    lua_pushvalue(L, env);
    char chunk[300];
    snprintf(chunk, sizeof chunk, "@%s", r->name);
    if (sandbox_load_file(L, r->path, chunk) != LUA_OK)
        return lua_error(L);
    lua_call(L, 0, 0);
    r->env_ref = luaL_ref(L, LUA_REGISTRYINDEX); /* pops env */
    (void)g;
    return 0;
}

/* Load one rule file (name and path are taken over); false if it failed. */
static bool load_one(struct gen *g, char *name, char *path, struct gen_report *rep)
{
    if (!name || !path) {
        free(name);
        free(path);
        report_add(rep, "out of memory");
        return false;
    }
    struct rule *r = &g->rules[g->nrules++];
    r->name = name;
    r->path = path;
    r->env_ref = LUA_NOREF;
    struct call load;
    call_init(&load, g, (size_t)(r - g->rules), "(load)");
    g->current = &load;
    lua_sethook(g->L, count_hook, LUA_MASKCOUNT, HOOK_STEP);
    lua_pushcfunction(g->L, load_rule);
    lua_pushlightuserdata(g->L, r);
    struct deadline_slice slice;
    deadline_enter(&slice, g->L, load.time_left_ns, count_hook);
    int st = lua_pcall(g->L, 1, 0, 0);
    deadline_leave(&slice);
    lua_sethook(g->L, NULL, 0, 0);
    g->current = NULL;
    bool ok = st == LUA_OK && !load.fired;
    if (!ok) {
        char msg[1024];
        failure_message(&load, g->L, st, msg, sizeof msg);
        report_add(rep, msg);
    }
    lua_settop(g->L, 0);
    if (load.fired)
        lua_gc(g->L, LUA_GCCOLLECT);
    output_flush(&load);
    return ok;
}

static char *join_path(const char *dir, const char *file)
{
    size_t n = strlen(dir) + strlen(file) + 2;
    char *p = malloc(n);
    if (p)
        snprintf(p, n, "%s/%s", dir, file);
    return p;
}

/* The rule files of the rules dir in name order, then the extra files. */
static int build_rules(struct gen *g, struct gen_report *rep, struct tikd_err *e)
{
    char **files = NULL;
    size_t n = 0;
    int rc = list_rules(g->rules_dir, &files, &n, e);
    if (rc != 0) {
        report_add(rep, e->msg);
        return rc;
    }
    size_t total = n + g->o.nextra;
    g->rules = calloc(total ? total : 1, sizeof *g->rules);
    g->owned = calloc(total + 1, sizeof *g->owned);
    g->nowners = g->owned ? total + 1 : 0;
    if (!g->rules || !g->owned) {
        for (size_t i = 0; i < n; i++)
            free(files[i]);
        free(files);
        return tikd_fail(e, TIKD_ENOMEM, "out of memory");
    }
    const char *base = strrchr(g->rules_dir, '/');
    base = base && base[1] ? base + 1 : g->rules_dir;
    size_t bad = 0;
    for (size_t i = 0; i < n; i++) {
        bad += !load_one(g, join_path(base, files[i]), join_path(g->rules_dir, files[i]), rep);
        free(files[i]);
    }
    free(files);
    for (size_t i = 0; i < g->o.nextra; i++) {
        char chunk[300];
        sandbox_chunk_name(g->extra[i], chunk, sizeof chunk); /* "@dir/file" */
        bad += !load_one(g, strdup(chunk + 1), strdup(g->extra[i]), rep);
    }
    if (rep)
        rep->nfiles = total;
    if (bad)
        return tikd_fail(e, TIKD_ESCRIPT, "%zu of %zu rule files failed to load", bad, total);
    return 0;
}

static char *dup_or_null(const char *s)
{
    return s ? strdup(s) : NULL;
}

static void gen_free(struct gen *g)
{
    if (g->L)
        lua_close(g->L);
    malloc_trim(0); /* give the state's pages back: a dropped generation costs nothing */
    for (size_t i = 0; i < sizeof g->ext / sizeof g->ext[0]; i++)
        if (g->ext[i].p && g->ext[i].free)
            g->ext[i].free(g->ext[i].p);
    for (size_t i = 0; i < g->nrules; i++) {
        free(g->rules[i].name);
        free(g->rules[i].path);
    }
    free(g->rules);
    free(g->owned);
    free(g->scripts_dir);
    free(g->rules_dir);
    for (size_t i = 0; g->lib && i < g->o.nlib; i++)
        free(g->lib[i]);
    free(g->lib);
    for (size_t i = 0; g->allow && i < g->o.nallow; i++)
        free(g->allow[i]);
    free(g->allow);
    for (size_t i = 0; g->roots && i < g->o.nroots; i++)
        free(g->roots[i]);
    free(g->roots);
    for (size_t i = 0; g->extra && i < g->o.nextra; i++)
        free(g->extra[i]);
    free(g->extra);
    free(g->test_dir);
    free(g->tenant);
    lib_set_free(g->libs);
    free(g);
}

int gen_build(const struct host_opts *o, unsigned id, struct gen **out, struct gen_report *rep,
              struct tikd_err *e)
{
    *out = NULL;
    struct gen *g = calloc(1, sizeof *g);
    if (!g)
        return tikd_fail(e, TIKD_ENOMEM, "out of memory");
    g->id = id;
    g->refs = 1;
    g->o = *o;
    g->scripts_dir = dup_or_null(o->scripts_dir);
    g->rules_dir = dup_or_null(o->rules_dir);
    g->lib = calloc(o->nlib + 1, sizeof *g->lib);
    for (size_t i = 0; g->lib && i < o->nlib; i++)
        g->lib[i] = dup_or_null(o->lib_paths[i]);
    g->allow = calloc(o->nallow + 1, sizeof *g->allow);
    for (size_t i = 0; g->allow && i < o->nallow; i++)
        g->allow[i] = dup_or_null(o->http_allow[i]);
    g->o.http_allow = (const char *const *)g->allow;
    g->roots = calloc(o->nroots + 1, sizeof *g->roots);
    for (size_t i = 0; g->roots && i < o->nroots; i++)
        g->roots[i] = dup_or_null(o->media_roots[i]);
    g->o.media_roots = (const char *const *)g->roots;
    g->extra = calloc(o->nextra + 1, sizeof *g->extra);
    bool copied = g->extra && (!o->test_dir || (g->test_dir = strdup(o->test_dir)));
    for (size_t i = 0; copied && i < o->nextra; i++)
        copied = (g->extra[i] = dup_or_null(o->extra_files[i])) != NULL;
    g->o.extra_files = (const char *const *)g->extra;
    g->o.test_dir = g->test_dir;
    copied = copied && (!o->tenant || (g->tenant = strdup(o->tenant)));
    g->o.tenant = g->tenant;
    if (!g->o.rule_memory || g->o.rule_memory > g->o.state_memory)
        g->o.rule_memory = g->o.state_memory;
    g->sb = (struct sandbox_opts){g->scripts_dir,
                                  g->rules_dir,
                                  (const char *const *)g->lib,
                                  o->nlib,
                                  (lua_Integer)o->pattern_steps,
                                  &host_meters,
                                  NULL,
                                  NULL};
    g->o.lib_paths = (const char *const *)g->lib;
    g->o.pins = g->o.trust = NULL; /* (the caller's: used here only) */
    g->o.npins = g->o.ntrust = 0;
    if (o->npins) {
        struct strlist pins = {(char **)o->pins, o->npins}, trust = {(char **)o->trust, o->ntrust};
        struct tikd_err le = {0};
        if (lib_resolve(o->store, &pins, &trust, &g->libs, &le) != 0) {
            report_add(rep, le.msg);
            tikd_fail(e, TIKD_ESCRIPT, "%s", le.msg);
            gen_free(g);
            return TIKD_ESCRIPT;
        }
        g->sb.libs = g->libs;
        g->sb.lib_loaded = host_note_lib;
    }
    if (!g->rules_dir || !g->lib || !g->allow || !g->roots) {
        gen_free(g);
        return tikd_fail(e, TIKD_EINVAL, "no rules dir configured");
    }
    if (!copied) {
        gen_free(g);
        return tikd_fail(e, TIKD_ENOMEM, "out of memory");
    }
    char lib[4200];
    snprintf(lib, sizeof lib, "%s/tikd.lua", g->scripts_dir ? g->scripts_dir : "");
    if (access(lib, R_OK) != 0) {
        report_add(rep, "the engine's Lua library is missing: no readable tikd.lua in scripts_dir");
        tikd_fail(e, TIKD_EIO, "the engine's Lua library is missing: %s: %s (set scripts_dir)", lib,
                  strerror(errno));
        gen_free(g);
        return TIKD_EIO;
    }
    g->L = lua_newstate(gen_alloc, g);
    if (!g->L) {
        gen_free(g);
        return tikd_fail(e, TIKD_ENOMEM, "cannot create a Lua state");
    }
    *(struct gen **)lua_getextraspace(g->L) = g;
    lua_atpanic(g->L, panic);
    lua_pushcfunction(g->L, setup_state);
    if (lua_pcall(g->L, 0, 0, 0) != LUA_OK) {
        tikd_fail(e, TIKD_ESCRIPT, "setting up the rule state: %s", lua_tostring(g->L, -1));
        gen_free(g);
        return TIKD_ESCRIPT;
    }
    int rc = build_rules(g, rep, e);
    if (rc != 0) {
        gen_free(g);
        return rc;
    }
    lua_gc(g->L, LUA_GCGEN, 0, 0);
    *out = g;
    return 0;
}

void gen_retain(struct gen *g)
{
    g->refs++;
}

void gen_release(struct gen *g)
{
    if (g && --g->refs == 0)
        gen_free(g);
}

unsigned gen_id(const struct gen *g)
{
    return g->id;
}

size_t gen_rule_count(const struct gen *g)
{
    return g->nrules;
}

const char *gen_rule_name(const struct gen *g, size_t i)
{
    return i < g->nrules ? g->rules[i].name : NULL;
}

size_t gen_live_calls(const struct gen *g)
{
    return g->live;
}

size_t gen_memory(const struct gen *g)
{
    return g->mem_used;
}

/* Pushes env[fn] of rule i (raw, so a metatable on _ENV runs nothing). */
static int push_rule_fn(lua_State *L, struct gen *g, size_t i, const char *fn)
{
    lua_rawgeti(L, LUA_REGISTRYINDEX, g->rules[i].env_ref);
    lua_pushstring(L, fn);
    lua_rawget(L, -2);
    lua_remove(L, -2);
    return lua_type(L, -1);
}

static int has_fn(lua_State *L)
{
    struct gen *g = gen_of(L);
    size_t i = (size_t)lua_tointeger(L, 1);
    lua_pushboolean(L, push_rule_fn(L, g, i, lua_tostring(L, 2)) == LUA_TFUNCTION);
    return 1;
}

bool gen_rule_has(struct gen *g, size_t i, const char *fn)
{
    if (i >= g->nrules || g->rules[i].env_ref == LUA_NOREF)
        return false;
    lua_pushcfunction(g->L, has_fn);
    lua_pushinteger(g->L, (lua_Integer)i);
    lua_pushstring(g->L, fn);
    bool r = lua_pcall(g->L, 2, 1, 0) == LUA_OK && lua_toboolean(g->L, -1);
    lua_settop(g->L, 0);
    return r;
}

void gen_rule_functions(struct gen *g, size_t i, const char *prefix,
                        void (*each)(void *ud, const char *name, int line), void *ud)
{
    if (i >= g->nrules || g->rules[i].env_ref == LUA_NOREF)
        return;
    /* nothing here allocates (raw reads, lua_next, getinfo "S"), so no
     * pcall is needed; the stack has room for the four slots used */
    lua_State *L = g->L;
    int top = lua_gettop(L);
    size_t pl = strlen(prefix);
    lua_rawgeti(L, LUA_REGISTRYINDEX, g->rules[i].env_ref);
    lua_pushnil(L);
    while (lua_next(L, -2)) {
        if (lua_type(L, -2) == LUA_TSTRING && lua_type(L, -1) == LUA_TFUNCTION &&
            strncmp(lua_tostring(L, -2), prefix, pl) == 0) {
            lua_Debug ar;
            lua_pushvalue(L, -1);
            lua_getinfo(L, ">S", &ar);
            each(ud, lua_tostring(L, -2), ar.linedefined);
        }
        lua_pop(L, 1);
    }
    lua_settop(L, top);
}

/* ---- calls ------------------------------------------------------------- */

static bool fired_memory(const struct call *c)
{
    return c->fired == BUDGET_MEM_CALL || c->fired == BUDGET_MEM_RULE ||
           c->fired == BUDGET_MEM_STATE;
}

/* Run c's code on L from the loop: the running call and its time slice. */
static int call_run(struct call *c, lua_State *L, int nargs, int *nres)
{
    struct gen *g = c->g;
    struct call *saved = g->current;
    g->current = c;
    struct deadline_slice slice;
    deadline_enter(&slice, L, c->time_left_ns, count_hook);
    int st;
    if (nres) {
        st = lua_resume(L, NULL, nargs, nres);
    } else {
        c->closing = true;
        st = lua_resetthread(L); /* runs pending <close> handlers */
        c->closing = false;
    }
    c->time_left_ns -= deadline_leave(&slice);
    g->current = saved;
    return st;
}

static void call_finish(struct call *c, int st, bool yielded_bare)
{
    struct gen *g = c->g;
    char msg[1024] = "";
    bool ok = st == LUA_OK && !c->fired && !yielded_bare;
    struct call_result r = {.ok = ok,
                            .budget = c->fired != BUDGET_NONE,
                            .cancelled = c->cancelled,
                            .rule = c->rule,
                            .fn = c->fn,
                            .L = c->co};
    if (!ok) {
        if (yielded_bare)
            snprintf(msg, sizeof msg,
                     "%s: %s yielded to tikd without waiting on a tikd primitive "
                     "(use coroutine.wrap for your own coroutines)",
                     c->rule, c->fn);
        else
            failure_message(c, c->co, st, msg, sizeof msg);
        r.error = msg;
    } else {
        r.nresults = lua_gettop(c->co);
    }
    if (c->prev)
        c->prev->next = c->next;
    else
        g->calls = c->next;
    if (c->next)
        c->next->prev = c->prev;
    g->live--;
    static struct metric *ended[4];
    int how = r.ok ? 0 : r.cancelled ? 1 : r.budget ? 2 : 3;
    if (!ended[how]) {
        static const char *const labels[] = {"result=\"ok\"", "result=\"cancelled\"",
                                             "result=\"budget\"", "result=\"error\""};
        ended[how] = metrics_get("tikd_rule_calls_total", labels[how]);
    }
    metrics_add(ended[how], 1);
    if (c->done)
        c->done(c->done_ud, &r);

    /* A call that failed on its own gets its <close> handlers run, within
     * what is left of its budgets. One that ran out of a budget gets none:
     * its thread may have hooks off (an error raised in the hook), and it
     * has nothing left to spend anyway. The collector takes the thread. */
    if (!ok && !c->fired)
        call_run(c, c->co, 0, NULL);
    struct rule *rf = &g->rules[c->owner - 1];
    if (ok && lua_status(c->co) == LUA_OK && rf->nidle < IDLE_THREADS) {
        lua_settop(c->co, 0); /* returned: its stack is empty at base level */
        rf->idle[rf->nidle].co = c->co;
        rf->idle[rf->nidle++].ref = c->co_ref;
    } else {
        luaL_unref(g->L, LUA_REGISTRYINDEX, c->co_ref);
    }
    if (fired_memory(c))
        lua_gc(g->L, LUA_GCCOLLECT);
    output_flush(c);
    free(c);
    gen_release(g);
}

static void call_resume(struct call *c, int nargs)
{
    int nres = 0;
    int st = call_run(c, c->co, nargs, &nres);
    if (st == LUA_YIELD) {
        if (c->waiting && !c->fired) {
            lua_pop(c->co, nres);
            return;
        }
        if (c->waiting && c->cancel) {
            c->cancel(c->cancel_ud);
            c->waiting = false;
        }
        call_finish(c, LUA_OK, !c->fired);
        return;
    }
    call_finish(c, st, false);
}

struct setup_args {
    struct gen *g;
    struct call *c;
    size_t rule;
};

/* Protected: take an idle thread of the rule file's or make one, anchor
 * it, put the function on it. */
static int call_setup(lua_State *L)
{
    struct setup_args *a = lua_touserdata(L, 1);
    struct call *c = a->c;
    if (push_rule_fn(L, a->g, a->rule, c->fn) != LUA_TFUNCTION) {
        lua_pushboolean(L, 0);
        return 1;
    }
    struct rule *r = &a->g->rules[a->rule];
    if (r->nidle) {
        r->nidle--;
        c->co = r->idle[r->nidle].co;
        c->co_ref = r->idle[r->nidle].ref;
        lua_xmove(L, c->co, 1);
        lua_sethook(c->co, count_hook, LUA_MASKCOUNT, HOOK_STEP);
        lua_pushboolean(L, 1);
        return 1;
    }
    c->co = lua_newthread(L);
    lua_getfield(L, LUA_REGISTRYINDEX, REG_HOSTTHREADS);
    lua_pushvalue(L, -2);
    lua_pushboolean(L, 1);
    lua_rawset(L, -3);
    lua_pop(L, 1);
    lua_insert(L, -2); /* thread below function */
    lua_xmove(L, c->co, 1);
    c->co_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    lua_sethook(c->co, count_hook, LUA_MASKCOUNT, HOOK_STEP);
    lua_pushboolean(L, 1);
    return 1;
}

int gen_call(struct gen *g, size_t rule, const char *fn, host_push_fn push, void *push_ud,
             host_done_fn done, void *done_ud)
{
    if (rule >= g->nrules || g->rules[rule].env_ref == LUA_NOREF)
        return TIKD_EINVAL;
    struct call *c = malloc(sizeof *c);
    if (!c)
        return TIKD_ENOMEM;
    call_init(c, g, rule, fn);
    c->done = done;
    c->done_ud = done_ud;
    struct setup_args a = {g, c, rule};
    int top = lua_gettop(g->L);
    lua_pushcfunction(g->L, call_setup);
    lua_pushlightuserdata(g->L, &a);
    int st = lua_pcall(g->L, 1, 1, 0);
    bool found = st == LUA_OK && lua_toboolean(g->L, -1);
    lua_settop(g->L, top);
    if (!found) {
        if (c->co_ref != LUA_NOREF)
            luaL_unref(g->L, LUA_REGISTRYINDEX, c->co_ref);
        free(c);
        return st == LUA_OK ? TIKD_ENOTFOUND : TIKD_ENOMEM;
    }
    c->next = g->calls;
    if (g->calls)
        g->calls->prev = c;
    g->calls = c;
    g->live++;
    gen_retain(g);
    int nargs = push ? push(c->co, push_ud) : 0;
    call_resume(c, nargs);
    return 0;
}

void gen_cancel_all(struct gen *g, const char *reason)
{
    gen_retain(g);
    while (g->calls) {
        struct call *c = g->calls;
        if (c->waiting && c->cancel)
            c->cancel(c->cancel_ud);
        c->waiting = false;
        c->cancelled = true;
        lua_settop(c->co, 0);
        lua_pushfstring(c->co, "%s: %s cancelled: %s", c->rule, c->fn, reason);
        call_finish(c, LUA_ERRRUN, false);
    }
    gen_release(g);
}

/* ---- async primitives ---------------------------------------------------- */

struct call *host_check_wait(lua_State *L, const char *what)
{
    struct gen *g = gen_of(L);
    struct call *c = g->current;
    if (!g->o.loop && g->o.test)
        luaL_error(L,
                   "%s cannot wait in `tikd rules test`: the clock is fake, so rule calls run "
                   "to completion without waiting",
                   what);
    if (!g->o.loop)
        luaL_error(L, "%s is not available here (no event loop: rules are only being checked)",
                   what);
    if (!c || !c->co)
        luaL_error(L, "%s cannot be called while a rule file loads; call it from a hook", what);
    if (c->co != L)
        luaL_error(L,
                   "%s must be called from the rule call's own coroutine, not from inside "
                   "coroutine.wrap or coroutine.resume",
                   what);
    if (!lua_isyieldable(L))
        luaL_error(L,
                   "%s cannot wait here: a wait cannot cross a metamethod, a string.gsub or "
                   "table.sort callback, require or a finalizer",
                   what);
    return c;
}

struct call *host_can_wait(lua_State *L)
{
    struct gen *g = gen_of(L);
    struct call *c = g->current;
    return g->o.loop && c && c->co == L && lua_isyieldable(L) ? c : NULL;
}

struct ev_loop *host_loop(lua_State *L, const char *what)
{
    struct gen *g = gen_of(L);
    if (!g->o.loop)
        luaL_error(L, "%s is not available here (no event loop)", what);
    return g->o.loop;
}

uint64_t host_wait(struct call *c, void (*cancel)(void *), void *ud)
{
    c->waiting = true;
    c->cancel = cancel;
    c->cancel_ud = ud;
    return ++c->ticket;
}

void host_wake(struct call *c, uint64_t ticket, host_push_fn push, void *ud)
{
    if (!c->waiting || ticket != c->ticket)
        return;
    c->waiting = false;
    c->cancel = NULL;
    c->cancel_ud = NULL;
    int nargs = push ? push(c->co, ud) : 0;
    call_resume(c, nargs);
}

const char *host_rule(lua_State *L)
{
    struct gen *g = gen_of(L);
    return g->current ? g->current->rule : "(engine)";
}

const char *host_tenant(lua_State *L)
{
    return gen_of(L)->o.tenant;
}

bool host_sees(lua_State *L, const struct account *a)
{
    return account_in_tenant(a, gen_of(L)->o.tenant);
}

void host_who(lua_State *L, char *out, size_t n)
{
    snprintf(out, n, "rule:%s@gen%u", host_rule(L), gen_of(L)->id);
}

const char *gen_rule_libs(const struct gen *g, size_t i)
{
    return i < g->nrules ? g->rules[i].libs : "";
}

const char *host_rule_libs(lua_State *L)
{
    struct gen *g = gen_of(L);
    return g->current && g->current->owner ? gen_rule_libs(g, g->current->owner - 1) : "";
}

void host_note_lib(lua_State *L, const char *lib)
{
    struct gen *g = gen_of(L);
    if (!g->current || !g->current->owner || g->current->owner > g->nrules)
        return;
    char *have = g->rules[g->current->owner - 1].libs;
    size_t n = strlen(have), l = strlen(lib);
    for (const char *p = have; (p = strstr(p, lib)); p += l)
        if ((p == have || p[-1] == ',') && (p[l] == ',' || !p[l]))
            return;
    if (n + l + 2 <= sizeof g->rules[0].libs)
        snprintf(have + n, sizeof g->rules[0].libs - n, "%s%s", n ? "," : "", lib);
}

void *gen_ext_get(struct gen *g, const char *key)
{
    for (size_t i = 0; i < sizeof g->ext / sizeof g->ext[0]; i++)
        if (g->ext[i].key && strcmp(g->ext[i].key, key) == 0)
            return g->ext[i].p;
    return NULL;
}

void *host_ext(lua_State *L, const char *key, void *(*make)(void), void (*free_fn)(void *))
{
    struct gen *g = gen_of(L);
    void *p = gen_ext_get(g, key);
    if (p || !make)
        return p;
    for (size_t i = 0; i < sizeof g->ext / sizeof g->ext[0]; i++) {
        if (!g->ext[i].key) {
            if (!(p = make()))
                return NULL;
            g->ext[i].key = key;
            g->ext[i].p = p;
            g->ext[i].free = free_fn;
            return p;
        }
    }
    return NULL;
}

bool host_loading(lua_State *L)
{
    struct gen *g = gen_of(L);
    return g->current && !g->current->co;
}

const char *host_media_file(const struct host_opts *o, const char *path, char *out, size_t n)
{
    char real[PATH_MAX], root[PATH_MAX];
    if (realpath(path, real) && strlen(real) < n)
        for (size_t i = 0; i < o->nroots; i++) {
            if (!realpath(o->media_roots[i], root))
                continue;
            size_t l = strlen(root);
            if (strncmp(real, root, l) == 0 && real[l] == '/') {
                memcpy(out, real, strlen(real) + 1);
                return NULL;
            }
        }
    return "is not a readable file under media_roots";
}

struct store *host_store(lua_State *L, const char *what)
{
    struct store *s = gen_of(L)->o.store;
    if (!s)
        luaL_error(L, "%s is not available here (no database: rules are only being checked)", what);
    return s;
}

void host_class(lua_State *L, const char *name, const luaL_Reg *methods, lua_CFunction tostring)
{
    if (luaL_newmetatable(L, name)) {
        lua_newtable(L);
        luaL_setfuncs(L, methods, 0);
        lua_setfield(L, -2, "__index");
        lua_pushcfunction(L, tostring);
        lua_setfield(L, -2, "__tostring");
        lua_pushliteral(L, "locked");
        lua_setfield(L, -2, "__metatable");
    }
    lua_pop(L, 1);
}

const struct host_opts *host_opts_of(lua_State *L)
{
    return &gen_of(L)->o;
}

unsigned host_gen_id(lua_State *L)
{
    return gen_of(L)->id;
}

struct gen *host_gen(lua_State *L)
{
    return gen_of(L);
}
