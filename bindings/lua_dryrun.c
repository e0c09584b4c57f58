/* lua_dryrun.c - when a generation's timers fire on a virtual clock (see
 * lua_dryrun.h), with the same rhythm as under `tikd run` (decls_timer_*
 * in lua_schedule.c). */
#include "lua_dryrun.h"
#include "lua_modules.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../core/store.h"

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
        t->next = decls_timer_first(&t->t, st, now);
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
    t->next = decls_timer_after(&t->t, t->next);
}
