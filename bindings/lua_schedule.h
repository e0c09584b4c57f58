/* lua_schedule.h - what a rule generation declares when its files load:
 * accounts with their defaults, schedules, and timers (bindings/
 * lua_schedule.c). The declarations are C data owned by the generation
 * (host_ext), so a generation that fails to load changes nothing, and the
 * daemon reads them from the generation it puts live. */
#ifndef TIKD_LUA_SCHEDULE_H
#define TIKD_LUA_SCHEDULE_H

#include "../core/slots.h"
#include "lua_host.h"

#include <stdbool.h>
#include <stddef.h>

struct acct_decl {
    char name[65];
    char tz[64];
    char privacy[32];   /* default privacy level (the first preferred), or "" */
    char prefer[4][32]; /* privacy levels in order of preference: the first that
                         * creator_info offers is taken at the init */
    int nprefer;
    char *caption;  /* default caption, or NULL */
    int daily_max;  /* 0: none below TikTok's */
    char rule[128]; /* the file that declared it */
};

struct timer_decl {
    char rule[128]; /* whose function runs */
    char fn[64];
    double every; /* seconds, or 0 for a cron timer */
    struct cron cron;
    char tz[64];
};

struct decls {
    struct acct_decl *accounts;
    size_t naccounts;
    struct schedule *scheds;
    size_t nscheds;
    struct timer_decl *timers;
    size_t ntimers;
};

#define DECLS_KEY "tikd.decls"

/* A timer's rhythm, the same for `tikd run` and dry runs. A cron timer
 * takes its firings in its zone. An every-timer fires at once the first time
 * and then every interval; `tikd run` keeps its next moment in STORE_DB_META
 * (key "timer:" rule NUL fn), so restarts and reloads keep the rhythm. */

/* The first firing at or after now (st, which may be NULL, holds the stored
 * moment); 0 when there is none. */
double decls_timer_first(const struct timer_decl *t, struct store *st, double now);

/* The firing after one at `at`; 0 when there is none. */
double decls_timer_after(const struct timer_decl *t, double at);

/* Keep an every-timer's next moment (a cron timer needs none). */
int decls_timer_store(struct store *st, const struct timer_decl *t, double next);

/* What generation g declared (never NULL: an empty set when nothing). */
const struct decls *decls_of_gen(struct gen *g);

/* The declarations of L's generation, or NULL. */
const struct decls *decls_of(lua_State *L);
const struct schedule *decls_schedule(const struct decls *d, const char *name);
const struct acct_decl *decls_account(const struct decls *d, const char *name);

#endif
