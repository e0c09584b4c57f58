/* lua_dryrun.c - when a generation's timers fire on a virtual clock (see
 * lua_dryrun.h). The rules mirror cli/daemon.c's timer_next: a cron timer
 * takes its next firing in its zone; an every-timer fires at once the first
 * time and then every interval, unless `tikd run` stored a sooner moment for
 * it (key "timer:" rule NUL fn in STORE_DB_META). */
#include "lua_dryrun.h"
#include "lua_modules.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../core/store.h"

struct stored_ctx {
    const struct timer_decl *t;
    double next;
};

static int stored_txn(struct store_txn *t, void *ctx)
{
    struct stored_ctx *c = ctx;
    char k[256];
    int l = snprintf(k, sizeof k, "timer:%s%c%s", c->t->rule, '\0', c->t->fn);
    struct store_val v;
    if (l > 0 && (size_t)l < sizeof k && store_get(t, STORE_DB_META, k, (size_t)l, &v) == 0 &&
        v.n == sizeof(double))
        memcpy(&c->next, v.p, sizeof(double));
    return 0;
}

static double first_firing(const struct timer_decl *t, struct store *st, double now)
{
    double next = 0;
    if (t->every <= 0)
        return cron_next(&t->cron, t->tz, now, &next, NULL) == 0 ? next : 0;
    struct stored_ctx c = {t, 0};
    if (st)
        store_read(st, stored_txn, &c, NULL);
    if (c.next > 0 && c.next <= now + t->every)
        return c.next > now ? c.next : now;
    return now;
}

long dryrun_rule_index(struct gen *g, const char *name, size_t count)
{
    size_t nl = strlen(name);
    for (size_t i = 0; i < count && i < gen_rule_count(g); i++) {
        const char *full = gen_rule_name(g, i), *slash = strrchr(full, '/');
        const char *file = slash ? slash + 1 : full;
        if (strcmp(full, name) == 0 || strcmp(file, name) == 0 ||
            (strncmp(file, name, nl) == 0 && strcmp(file + nl, ".lua") == 0))
            return (long)i;
    }
    return -1;
}

int dryrun_timers_init(struct dryrun_timers *ts, struct gen *g, struct store *st, double now)
{
    const struct decls *d = decls_of_gen(g);
    ts->n = 0;
    ts->v = calloc(d->ntimers ? d->ntimers : 1, sizeof *ts->v);
    if (!ts->v)
        return TIKD_ENOMEM;
    for (size_t i = 0; i < d->ntimers; i++) {
        struct dryrun_timer *t = &ts->v[ts->n++];
        t->t = d->timers[i];
        t->rule = dryrun_rule_index(g, t->t.rule, gen_rule_count(g));
        t->next = first_firing(&t->t, st, now);
    }
    return 0;
}

void dryrun_timers_free(struct dryrun_timers *ts)
{
    free(ts->v);
    ts->v = NULL;
    ts->n = 0;
}

struct dryrun_timer *dryrun_timers_next(struct dryrun_timers *ts, double until)
{
    struct dryrun_timer *best = NULL;
    for (size_t i = 0; i < ts->n; i++) {
        struct dryrun_timer *t = &ts->v[i];
        if (t->next > 0 && t->next <= until && (!best || t->next < best->next))
            best = t;
    }
    return best;
}

void dryrun_timers_advance(struct dryrun_timer *t)
{
    double at = t->next, next = 0;
    if (t->t.every > 0)
        t->next = at + t->t.every;
    else
        t->next = cron_next(&t->t.cron, t->t.tz, at, &next, NULL) == 0 ? next : 0;
}

static int push_media_p(lua_State *L)
{
    lua_push_media_item(L, lua_touserdata(L, 1));
    return 1;
}

int dryrun_push_media(lua_State *L, void *ud)
{
    lua_pushcfunction(L, push_media_p);
    lua_pushlightuserdata(L, ud);
    if (lua_pcall(L, 1, 1, 0) != LUA_OK) {
        lua_pop(L, 1);
        lua_pushnil(L);
    }
    return 1;
}
