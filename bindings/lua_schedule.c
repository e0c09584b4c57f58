/* lua_schedule.c - the declarations of a rule file: accounts with their
 * defaults, schedules and timers.
 *
 *   tikd.account("acme", { tz = "Europe/Berlin", privacy = "PUBLIC_TO_EVERYONE",
 *                          caption = "#acme", daily_max = 8 })
 *   tikd.schedule("acme-daily", { account = "acme", slots = { "0 9 * * *", "0 18 * * *" },
 *                                 jitter = 600, spacing = 3600, daily_max = 2,
 *                                 blackout = { { cron = "0 22 * * *", hours = 9 },
 *                                              { from = "2026-12-24 00:00", to = "2026-12-27 00:00"
 * } } }) tikd.every(900, "fetch_cms")             -- call fetch_cms() every 15 minutes tikd.at("30
 * 7 * * 1-5", "morning", "Europe/Berlin") local slot, due = tikd.next_slot("acme-daily")   -- where
 * the next post would go
 *
 * Declarations are only allowed while the files load, and every problem
 * (a bad cron or one that never fires, an unknown zone or account, a
 * duplicate name) fails the load with file:line, so a generation with a bad
 * declaration never goes live.
 * The declarations are C data of the generation (lua_schedule.h); bookings
 * and timers live in C and LMDB, never in Lua objects. */
#include "lua_schedule.h"
#include "lua_args.h"
#include "lua_modules.h"

#include <lauxlib.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../core/account.h"
#include "../core/clock.h"
#include "../core/store.h"

#define MAX_DECLS 4096

static void *decls_make(void)
{
    return calloc(1, sizeof(struct decls));
}

static void decls_free(void *p)
{
    struct decls *d = p;
    for (size_t i = 0; i < d->naccounts; i++)
        free(d->accounts[i].caption);
    free(d->accounts);
    free(d->scheds);
    free(d->timers);
    free(d);
}

static struct decls *decls_rw(lua_State *L, const char *what)
{
    if (!host_loading(L))
        luaL_error(L, "%s declares: call it at the top of a rule file, not in a hook", what);
    struct decls *d = host_ext(L, DECLS_KEY, decls_make, decls_free);
    if (!d)
        luaL_error(L, "%s: out of memory", what);
    return d;
}

const struct decls *decls_of(lua_State *L)
{
    return host_ext(L, DECLS_KEY, NULL, NULL);
}

const struct decls *decls_of_gen(struct gen *g)
{
    static const struct decls none;
    const struct decls *d = gen_ext_get(g, DECLS_KEY);
    return d ? d : &none;
}

const struct schedule *decls_schedule(const struct decls *d, const char *name)
{
    for (size_t i = 0; d && i < d->nscheds; i++)
        if (strcmp(d->scheds[i].name, name) == 0)
            return &d->scheds[i];
    return NULL;
}

const struct acct_decl *decls_account(const struct decls *d, const char *name)
{
    for (size_t i = 0; d && i < d->naccounts; i++)
        if (strcmp(d->accounts[i].name, name) == 0)
            return &d->accounts[i];
    return NULL;
}

/* Grow an array of `size`-byte items by one (zeroed); raises when full. */
static void *push(lua_State *L, void **arr, size_t *n, size_t size)
{
    if (*n >= MAX_DECLS)
        luaL_error(L, "too many declarations (at most %d of a kind)", MAX_DECLS);
    char *g = realloc(*arr, (*n + 1) * size);
    if (!g)
        luaL_error(L, "out of memory");
    *arr = g;
    memset(g + *n * size, 0, size);
    return g + (*n)++ * size;
}

/* ---- reading declaration tables -------------------------------------------------------- */

static void check_name(lua_State *L, const char *name, size_t max, const char *what)
{
    size_t n = strlen(name);
    if (n == 0 || n >= max)
        luaL_error(L, "%s: the name must be 1 to %d bytes", what, (int)max - 1);
    for (size_t i = 0; i < n; i++)
        if (!(name[i] == '-' || name[i] == '_' || name[i] == '.' ||
              (name[i] >= '0' && name[i] <= '9') || (name[i] >= 'a' && name[i] <= 'z') ||
              (name[i] >= 'A' && name[i] <= 'Z')))
            luaL_error(L, "%s: '%s' is not a valid name (letters, digits, - _ .)", what, name);
}

static void check_tz(lua_State *L, const char *tz, const char *what)
{
    struct tikd_err e = {0};
    if (tz && cron_tz_check(tz, &e) != 0)
        luaL_error(L, "%s: %s", what, e.msg);
}

/* A cron expression a rule declares. One that can never fire (`0 0 30 2 *`)
 * is refused as a bad one is: else the rule loads and silently never runs. */
static int declared_cron(const char *expr, struct cron *c, struct tikd_err *e)
{
    int rc = cron_parse(expr, c, e);
    if (rc == 0 && !cron_can_fire(c))
        rc = tikd_fail(e, TIKD_EINVAL,
                       "cron: '%s' never fires: none of its months has such a day of the month",
                       c->expr);
    return rc;
}

static void check_privacy(lua_State *L, const char *p, const char *what)
{
    static const char *const ok[] = {"PUBLIC_TO_EVERYONE", "MUTUAL_FOLLOW_FRIENDS",
                                     "FOLLOWER_OF_CREATOR", "SELF_ONLY"};
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++)
        if (strcmp(p, ok[i]) == 0)
            return;
    luaL_error(L,
               "%s: unknown privacy level '%s' (PUBLIC_TO_EVERYONE, MUTUAL_FOLLOW_FRIENDS, "
               "FOLLOWER_OF_CREATOR or SELF_ONLY)",
               what, p);
}

/* ---- tikd.account ------------------------------------------------------------------------ */

/* tikd.account(name, { tz=, privacy=, caption=, daily_max= }) */
static int l_account(lua_State *L)
{
    const char *name = luaL_checkstring(L, 1);
    if (lua_isnoneornil(L, 2))
        lua_newtable(L);
    luaL_checktype(L, 2, LUA_TTABLE);
    struct decls *d = decls_rw(L, "tikd.account");
    char what[120];
    snprintf(what, sizeof what, "tikd.account '%.64s'", name);
    check_name(L, name, sizeof d->accounts->name, what);
    if (decls_account(d, name))
        luaL_error(L, "%s is declared twice", what);
    struct args a = args_table(L, 2, what);
    const char *tz = args_str(&a, "tz", NULL);
    /* privacy: one level, or levels in order of preference */
    const char *prefer[4] = {NULL};
    int nprefer = 0;
    if (args_get(&a, "privacy") == LUA_TTABLE) {
        lua_Integer n = (lua_Integer)lua_rawlen(L, -1);
        if (n < 1 || n > 4)
            luaL_error(L, "%s: privacy must be a level or a list of 1 to 4 levels", what);
        for (lua_Integer i = 1; i <= n; i++) {
            lua_rawgeti(L, -1, i);
            if (lua_type(L, -1) != LUA_TSTRING)
                luaL_error(L, "%s: privacy %d must be a string", what, (int)i);
            prefer[nprefer++] = lua_tostring(L, -1); /* alive: the table holds it */
            lua_pop(L, 1);
        }
        lua_pop(L, 1);
    } else {
        lua_pop(L, 1);
        const char *one = args_str(&a, "privacy", NULL);
        if (one)
            prefer[nprefer++] = one;
    }
    const char *privacy = nprefer ? prefer[0] : NULL;
    for (int i = 0; i < nprefer; i++)
        check_privacy(L, prefer[i], what);
    const char *caption = args_str(&a, "caption", NULL);
    int daily_max = (int)args_int(&a, "daily_max", 0, 0, 1000);
    check_tz(L, tz, what);
    if (tz && strlen(tz) >= sizeof d->accounts->tz)
        luaL_error(L, "%s: tz is too long", what);
    struct acct_decl *ac = push(L, (void **)&d->accounts, &d->naccounts, sizeof *ac);
    if (caption && !(ac->caption = strdup(caption)))
        luaL_error(L, "%s: out of memory", what);
    snprintf(ac->name, sizeof ac->name, "%s", name);
    snprintf(ac->tz, sizeof ac->tz, "%s", tz ? tz : "");
    snprintf(ac->privacy, sizeof ac->privacy, "%s", privacy ? privacy : "");
    for (int i = 0; i < nprefer; i++)
        snprintf(ac->prefer[i], sizeof ac->prefer[i], "%s", prefer[i]);
    ac->nprefer = nprefer;
    ac->daily_max = daily_max;
    snprintf(ac->rule, sizeof ac->rule, "%s", host_rule(L));
    return 0;
}

/* ---- tikd.schedule ------------------------------------------------------------------------ */

struct acct_look {
    lua_State *L;
    const char *name;
    bool found;
};

static int acct_look_txn(struct store_txn *t, void *ctx)
{
    struct acct_look *a = ctx;
    struct account acct;
    a->found = account_get(t, a->name, &acct) == 0 && host_sees(a->L, &acct);
    return 0;
}

/* A local time "YYYY-MM-DD HH:MM" in tz, or a number of epoch seconds. */
static double when_of(const struct args *a, const char *k, const char *tz, const char *what)
{
    lua_State *L = a->L;
    args_get(a, k);
    double at = 0;
    if (lua_type(L, -1) == LUA_TNUMBER) {
        at = lua_tonumber(L, -1);
    } else if (lua_type(L, -1) == LUA_TSTRING) {
        struct cron_local l = {0};
        int n = sscanf(lua_tostring(L, -1), "%4d-%2d-%2d %2d:%2d", &l.year, &l.month, &l.day,
                       &l.hour, &l.minute);
        struct tikd_err e = {0};
        if ((n != 3 && n != 5) || cron_mktime(tz, &l, &at, &e) != 0)
            luaL_error(L,
                       "%s: blackout %s must be \"YYYY-MM-DD HH:MM\" (local time) or epoch "
                       "seconds",
                       what, k);
    } else {
        luaL_error(L, "%s: a blackout needs %s", what, k);
    }
    lua_pop(L, 1);
    return at;
}

static void read_blackouts(lua_State *L, struct schedule *s, const char *what)
{
    struct args a = args_table(L, 2, what);
    int type = args_get(&a, "blackout");
    if (type == LUA_TNIL) {
        lua_pop(L, 1);
        return;
    }
    if (type != LUA_TTABLE)
        luaL_error(L, "%s: blackout must be a list of { cron=, hours= } or { from=, to= }", what);
    int bt = lua_gettop(L);
    lua_Integer n = (lua_Integer)lua_rawlen(L, bt);
    if (n > SCHED_BLACKOUTS)
        luaL_error(L, "%s: at most %d blackout windows", what, SCHED_BLACKOUTS);
    for (lua_Integer i = 1; i <= n; i++) {
        lua_rawgeti(L, bt, i);
        if (!lua_istable(L, -1))
            luaL_error(L, "%s: blackout %d must be a table", what, (int)i);
        struct args w = args_table(L, -1, what);
        struct blackout *b = &s->blackout[s->nblackout++];
        const char *expr = args_str(&w, "cron", NULL);
        if (expr) {
            struct tikd_err e = {0};
            if (declared_cron(expr, &b->start, &e) != 0)
                luaL_error(L, "%s: blackout %d: %s", what, (int)i, e.msg);
            b->recurring = true;
            b->length = args_num(&w, "hours", 0, 0, 24 * 366) * 3600 +
                        args_num(&w, "minutes", 0, 0, 60 * 24 * 366) * 60;
            if (b->length <= 0)
                luaL_error(L, "%s: blackout %d needs hours= or minutes=", what, (int)i);
        } else {
            b->from = when_of(&w, "from", s->tz, what);
            b->to = when_of(&w, "to", s->tz, what);
            if (b->to <= b->from)
                luaL_error(L, "%s: blackout %d ends before it starts", what, (int)i);
        }
        lua_pop(L, 1);
    }
    lua_pop(L, 1);
}

/* tikd.schedule(name, { account=, slots={...} | slot=, tz=, jitter=, spacing=,
 *                        daily_max=, blackout={...} }) */
static int l_schedule(lua_State *L)
{
    const char *name = luaL_checkstring(L, 1);
    luaL_checktype(L, 2, LUA_TTABLE);
    struct decls *d = decls_rw(L, "tikd.schedule");
    char what[120];
    snprintf(what, sizeof what, "tikd.schedule '%.64s'", name);
    check_name(L, name, sizeof d->scheds->name, what);
    if (decls_schedule(d, name))
        luaL_error(L, "%s is declared twice", what);
    struct args a = args_table(L, 2, what);
    const char *account = args_str(&a, "account", NULL);
    if (!account)
        luaL_error(L, "%s: account is required", what);
    const struct acct_decl *ad = decls_account(d, account);
    struct store *st = host_opts_of(L)->store;
    if (!ad && st && !host_opts_of(L)->test) { /* not declared: it must be connected (a
                                                * rule test makes it with T.account) */
        struct acct_look al = {L, account, false};
        store_read(st, acct_look_txn, &al, NULL);
        if (!al.found)
            luaL_error(L,
                       "%s: unknown account '%s' (connect it with `tikd account add`, or "
                       "declare it with tikd.account)",
                       what, account);
    }
    struct schedule s = {0};
    snprintf(s.name, sizeof s.name, "%s", name);
    if (strlen(account) >= sizeof s.account)
        luaL_error(L, "%s: account name too long", what);
    snprintf(s.account, sizeof s.account, "%s", account);
    const char *tz = args_str(&a, "tz", NULL);
    if (!tz && ad && ad->tz[0])
        tz = ad->tz;
    check_tz(L, tz, what);
    if (tz && strlen(tz) >= sizeof s.tz)
        luaL_error(L, "%s: tz is too long", what);
    snprintf(s.tz, sizeof s.tz, "%s", tz ? tz : "");
    /* slots: one expression or a list */
    if (args_get(&a, "slots") == LUA_TNIL) {
        lua_pop(L, 1);
        args_get(&a, "slot");
    }
    if (lua_type(L, -1) == LUA_TSTRING) {
        lua_newtable(L);
        lua_insert(L, -2);
        lua_rawseti(L, -2, 1);
    }
    if (!lua_istable(L, -1))
        luaL_error(L, "%s: slots must be a cron expression or a list of them", what);
    int lt = lua_gettop(L);
    lua_Integer n = (lua_Integer)lua_rawlen(L, lt);
    if (n < 1 || n > SCHED_SLOTS)
        luaL_error(L, "%s: 1 to %d slots", what, SCHED_SLOTS);
    for (lua_Integer i = 1; i <= n; i++) {
        lua_rawgeti(L, lt, i);
        const char *expr = lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1) : NULL;
        struct tikd_err e = {0};
        if (!expr || declared_cron(expr, &s.slots[s.nslots], &e) != 0)
            luaL_error(L, "%s: slot %d: %s", what, (int)i, expr ? e.msg : "not a string");
        s.nslots++;
        lua_pop(L, 1);
    }
    lua_pop(L, 1);
    s.jitter = args_num(&a, "jitter", 0, 0, 86400);
    s.spacing = args_num(&a, "spacing", 0, 0, 7 * 86400);
    s.daily_max = (int)args_int(&a, "daily_max", 0, 0, 1000);
    if (ad && ad->daily_max && (!s.daily_max || ad->daily_max < s.daily_max))
        s.daily_max = ad->daily_max;
    read_blackouts(L, &s, what);
    struct schedule *slot = push(L, (void **)&d->scheds, &d->nscheds, sizeof s);
    *slot = s;
    return 0;
}

/* ---- timers ---------------------------------------------------------------------------------- */

static struct timer_decl *timer_new(lua_State *L, const char *fn, const char *what)
{
    struct decls *d = decls_rw(L, what);
    if (strlen(fn) >= sizeof d->timers->fn)
        luaL_error(L, "%s: function name too long", what);
    const char *rule = host_rule(L);
    for (size_t i = 0; i < d->ntimers; i++)
        if (strcmp(d->timers[i].rule, rule) == 0 && strcmp(d->timers[i].fn, fn) == 0)
            luaL_error(L, "%s: %s already has a timer in this file", what, fn);
    struct timer_decl *t = push(L, (void **)&d->timers, &d->ntimers, sizeof *t);
    snprintf(t->rule, sizeof t->rule, "%s", rule);
    snprintf(t->fn, sizeof t->fn, "%s", fn);
    return t;
}

/* tikd.every(seconds, "fn"): call the rule's global fn every `seconds`. */
static int l_every(lua_State *L)
{
    lua_Number secs = luaL_checknumber(L, 1);
    const char *fn = luaL_checkstring(L, 2);
    luaL_argcheck(L, secs >= 1 && secs <= 366.0 * 86400 && !isnan(secs), 1,
                  "seconds must be from 1 to 31622400");
    timer_new(L, fn, "tikd.every")->every = secs;
    return 0;
}

/* tikd.at(cron, "fn" [, tz]): call fn at each firing of cron. */
static int l_at(lua_State *L)
{
    const char *expr = luaL_checkstring(L, 1);
    const char *fn = luaL_checkstring(L, 2);
    const char *tz = luaL_optstring(L, 3, "");
    struct cron c;
    struct tikd_err e = {0};
    if (declared_cron(expr, &c, &e) != 0)
        return luaL_error(L, "tikd.at: %s", e.msg);
    check_tz(L, tz, "tikd.at");
    if (strlen(tz) >= sizeof((struct timer_decl *)0)->tz)
        return luaL_error(L, "tikd.at: tz is too long");
    struct timer_decl *t = timer_new(L, fn, "tikd.at");
    t->cron = c;
    snprintf(t->tz, sizeof t->tz, "%s", tz);
    return 0;
}

/* ---- a timer's rhythm ----------------------------------------------------------------------- */

struct tkey_ctx {
    const struct timer_decl *t;
    double next; /* in: to store; out: the stored one (0: none) */
};

static size_t timer_key(const struct timer_decl *t, char *k, size_t n)
{
    int l = snprintf(k, n, "timer:%s%c%s", t->rule, '\0', t->fn);
    return l > 0 && (size_t)l < n ? (size_t)l : 0;
}

static int timer_get_txn(struct store_txn *t, void *ctx)
{
    struct tkey_ctx *c = ctx;
    char k[256];
    size_t kl = timer_key(c->t, k, sizeof k);
    struct store_val v;
    if (kl && store_get(t, STORE_DB_META, k, kl, &v) == 0 && v.n == sizeof(double))
        memcpy(&c->next, v.p, sizeof(double));
    return 0;
}

static int timer_put_txn(struct store_txn *t, void *ctx)
{
    struct tkey_ctx *c = ctx;
    char k[256];
    size_t kl = timer_key(c->t, k, sizeof k);
    return kl ? store_put(t, STORE_DB_META, k, kl, &c->next, sizeof(double)) : TIKD_EINVAL;
}

double decls_timer_after(const struct timer_decl *t, double at)
{
    double next = 0;
    if (t->every > 0)
        return at + t->every;
    return cron_next(&t->cron, t->tz, at, &next, NULL) == 0 ? next : 0;
}

double decls_timer_first(const struct timer_decl *t, struct store *st, double now)
{
    if (t->every <= 0)
        return decls_timer_after(t, now);
    struct tkey_ctx c = {t, 0};
    if (st)
        store_read(st, timer_get_txn, &c, NULL);
    /* a stored moment further out than one interval: the interval shrank */
    if (c.next > 0 && c.next <= now + t->every)
        return c.next > now ? c.next : now;
    return now; /* first time: at once */
}

int decls_timer_store(struct store *st, const struct timer_decl *t, double next)
{
    struct tkey_ctx c = {t, next};
    return t->every > 0 ? store_write(st, timer_put_txn, &c, NULL) : 0;
}

/* ---- asking ------------------------------------------------------------------------------------
 */

struct next_ctx {
    const struct schedule *s;
    double after, slot, due;
    struct tikd_err e;
};

static int next_txn(struct store_txn *t, void *ctx)
{
    struct next_ctx *n = ctx;
    return slots_next_free(t, n->s, n->after, &n->slot, &n->due, &n->e);
}

/* tikd.next_slot(name [, after]) -> slot, due | nil, why */
static int l_next_slot(lua_State *L)
{
    const char *name = luaL_checkstring(L, 1);
    const struct schedule *s = decls_schedule(decls_of(L), name);
    if (!s)
        return luaL_error(L, "tikd.next_slot: no schedule named '%s'", name);
    struct store *st = host_opts_of(L)->store;
    if (!st)
        return luaL_error(L, "tikd.next_slot is not available here (no database)");
    struct next_ctx n = {s, luaL_optnumber(L, 2, clock_now()), 0, 0, {0}};
    if (store_read(st, next_txn, &n, NULL) != 0) {
        lua_pushnil(L);
        lua_pushstring(L, n.e.msg[0] ? n.e.msg : "store failed");
        return 2;
    }
    lua_pushnumber(L, n.slot);
    lua_pushnumber(L, n.due);
    return 2;
}

int luaopen_tikd_schedule(lua_State *L)
{
    static const luaL_Reg fns[] = {{"account", l_account},     {"schedule", l_schedule},
                                   {"every", l_every},         {"at", l_at},
                                   {"next_slot", l_next_slot}, {NULL, NULL}};
    luaL_newlib(L, fns);
    return 1;
}
