/* lua_rules.h - the rules that are live in `tikd run`: the current
 * generation and the retired ones still finishing their calls, hot reload
 * (SIGHUP, or a save under the watched folders: build, check, swap; a reload
 * that fails keeps the running rules and says why), the live generation's
 * declared timers on the loop, and the engine's events turned into hook calls
 * (through lua_hooks.h, as `tikd plan` and `tikd rules test` do).
 *
 * Each reload is on the record: a log line per error (file:line), an audit
 * record, and the status `tikd status` reads (META "daemon.status").
 * Single-threaded, on the loop. */
#ifndef TIKD_LUA_RULES_H
#define TIKD_LUA_RULES_H

#include "lua_host.h"

#include "../core/pipeline.h"

struct account;
struct intake_item;
struct rules;

struct rules_cfg {
    const struct host_opts *hosts; /* how each tenant's generations are built (copied; the
                                    * strings they point to must outlive the rules): one
                                    * with tenant NULL without tenants, else one per tenant */
    size_t nhosts;
    struct ev_loop *loop;
    struct store *store;
    double started_at; /* for the status */
    bool watch;        /* a change of a *.lua under a tenant's rules_dir or lib_paths reloads
                        * that tenant's rules */
};

/* No generation yet: rules_reload() builds the first. */
int rules_new(struct rules **out, const struct rules_cfg *c, struct tikd_err *e);

/* Build each tenant's next generation from its rule files; swap it in if
 * every file loads (then on_load runs and its timers are armed), else keep
 * that tenant's live one (the others reload all the same). 0, or the first
 * build's error (logged, audited, in the status). */
int rules_reload(struct rules *r);

/* Tenants with a live generation (1 or 0 without tenants). */
unsigned rules_live_tenants(const struct rules *r);

/* Shutting down: no hook is called from now on and timers stop; calls
 * running finish (or rules_cancel_all). */
void rules_stop(struct rules *r);
void rules_cancel_all(struct rules *r, const char *why);
/* Calls running in every generation. */
size_t rules_live_calls(const struct rules *r);
/* Close retired generations whose last call ended (cheap; call it often). */
void rules_reap(struct rules *r);
/* The time zone the live rules declare for account name (tikd.account's
 * tz), or NULL. */
const char *rules_account_tz(const struct rules *r, const char *name);

/* Each schedule the live rules declare, until fn returns non-zero. */
struct schedule;
int rules_foreach_schedule(const struct rules *r, int (*fn)(const struct schedule *s, void *ud),
                           void *ud);

/* The newest live generation's id (0: none). */
unsigned rules_live_gen(const struct rules *r);
void rules_free(struct rules *r);

/* The engine's events (shaped as the callbacks of core/intake, core/oauth
 * and core/pipeline; ud is the struct rules). */
struct intake_handoff;
/* The hand-off ends when every on_media call has ended (complete unless
 * one was cancelled); with no live generation it ends incomplete. */
void rules_on_media(void *ud, const struct intake_item *it, struct intake_handoff *h);
void rules_on_account(void *ud, const struct account *a);
/* An alert for the rules' on_alert({ kind =, subject =, detail = }): kind is
 * "compliance" (subject: the check), ... */
void rules_on_alert(struct rules *r, const char *kind, const char *subject, const char *detail);
void rules_on_outcome(void *ud, const struct job *j);
void rules_before_publish(void *ud, const struct job *j, const struct tt_creator *c,
                          pipeline_decided_fn done, void *token);

#endif
