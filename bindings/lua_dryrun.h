/* lua_dryrun.h - a rule generation on a virtual clock, for `tikd plan` and
 * tikd.test: the timers it declared (tikd.every, tikd.at) fired in time order
 * without waiting for them (bindings/lua_dryrun.c).
 *
 * The caller moves the clock (clock_set_virtual) to each firing and calls
 * the function; this module only knows when each timer fires next, by the
 * same rules as `tikd run`. */
#ifndef TIKD_LUA_DRYRUN_H
#define TIKD_LUA_DRYRUN_H

#include "lua_schedule.h"

#include <stddef.h>

struct store;

struct dryrun_timer {
    struct timer_decl t; /* a copy of the declaration */
    long rule;           /* its rule's index in the generation, or -1 */
    double next;         /* its next firing; 0: never again */
};

struct dryrun_timers {
    struct dryrun_timer *v;
    size_t n;
};

/* The timers g declared, each with its first firing after `now` as `tikd
 * run` would arm it: a cron timer at its next firing; an every-timer at once,
 * or at the moment stored for it in st when that is sooner than a whole
 * interval (its rhythm survives restarts; st may be NULL). 0 or TIKD_ENOMEM;
 * free with dryrun_timers_free. */
int dryrun_timers_init(struct dryrun_timers *ts, struct gen *g, struct store *st, double now);
void dryrun_timers_free(struct dryrun_timers *ts);

/* The timer that fires first at or before `until` (declaration order breaks
 * ties), or NULL when none does. */
struct dryrun_timer *dryrun_timers_next(struct dryrun_timers *ts, double until);

/* Timer t fired at t->next: move it to its next firing. */
void dryrun_timers_advance(struct dryrun_timer *t);

/* The index of g's rule called `name` ("rules/a.lua"; "a.lua" and "a" also
 * match), or -1. Only the first `count` rules are searched. */
long dryrun_rule_index(struct gen *g, const char *name, size_t count);

#endif
