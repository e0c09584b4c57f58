/* lua_hooks.h - the one interface between the engine and the rules' hooks:
 * their names, the tables they receive, and how the answers of several rule
 * files combine. `tikd run` (bindings/lua_rules.c), `tikd plan` and `tikd
 * rules test` (tikd.test) all call through here, so a rule test sees what
 * the daemon does, before_publish and its privacy fallback included.
 *
 * Every argument is pushed under protection (a state out of memory gives a
 * hook nil, never a panic outside a protected call), and every answer is
 * read as raw data (rawget and type checks, under protection): a rule's
 * table can run no metamethod in C's sight. */
#ifndef TIKD_LUA_HOOKS_H
#define TIKD_LUA_HOOKS_H

#include "lua_host.h"

#include "../core/pipeline.h"

#define HOOK_ON_LOAD      "on_load"        /* (): the generation went live */
#define HOOK_ON_MEDIA     "on_media"       /* (item): new content in a watched folder */
#define HOOK_ON_ACCOUNT   "on_account"     /* (account): needs_reauth, revoked */
#define HOOK_ON_PUBLISHED "on_published"   /* (job): published, or in the inbox */
#define HOOK_ON_FAILED    "on_failed"      /* (job): failed or cancelled */
#define HOOK_ON_ALERT     "on_alert"       /* (alert): something an operator must see */
#define HOOK_BEFORE       "before_publish" /* (job, creator) -> decision: the last word */

struct account;
struct intake_item;
struct job;
struct tt_creator;

/* The tables rules see; never a token. A job: id, account, state, final,
 * mode, kind, caption, privacy, reason, publish_id, post_ids (a string:
 * exact), chosen_by. A media item: path, name, folder, hash, size, meta (the
 * decoded sidecar, or nil). An account: name, state, reason, open_id,
 * scopes. A creator: privacy_options (a list), max_duration, username,
 * nickname, comment_disabled, duet_disabled, stitch_disabled. May raise
 * (memory). */
void hooks_push_job(lua_State *L, const struct job *j);
void hooks_push_media(lua_State *L, const struct intake_item *it);
void hooks_push_account(lua_State *L, const struct account *a);
void hooks_push_creator(lua_State *L, const struct tt_creator *c);

/* The same as host_push_fn for gen_call (ud: the object), under lua_pcall:
 * a failure pushes nil instead. */
int hooks_arg_job(lua_State *L, void *job);
int hooks_arg_media(lua_State *L, void *item);
int hooks_arg_account(lua_State *L, void *account);
/* on_alert's argument: { kind =, subject =, detail = } */
struct hook_alert {
    const char *kind, *subject, *detail;
};
int hooks_arg_alert(lua_State *L, void *alert);

/* Call hook fn in each of the first `count` rule files of g that define it
 * (count: gen_rule_count(g), or fewer to leave test files out), each in a
 * call of its own, with the arguments push gives. done (NULL: failures are
 * logged as rule.call_failed) is told of each call's end. Returns how many
 * calls started. */
size_t hooks_call(struct gen *g, size_t count, const char *fn, host_push_fn push, void *ud,
                  host_done_fn done, void *done_ud);

/* A host_done_fn that logs a call's end (rule.call_failed when it failed). */
void hooks_logged(void *ud, const struct call_result *r);

/* The hook for a job's outcome: on_published (published, in the inbox) or
 * on_failed. */
const char *hooks_outcome(const struct job *j);

/* True when before_publish has something to do for account in g: a rule
 * defines it, or the account declares a privacy preference list. */
bool hooks_before_wanted(struct gen *g, const char *account);

/* before_publish for job j, c the creator now: each of the first `count`
 * rule files that defines it is asked in turn, each seeing what the earlier
 * ones changed; a cancel or defer is the last word. An account whose declared
 * privacy is not offered takes its first preferred level that is, as the
 * declaring rule's choice. done(token, decision) runs once, when the last
 * rule answered (at once when nothing is asked; in test mode, before this
 * returns). A rule that fails has no say. *stop (may be NULL) true: ask no
 * further rule. 0, or TIKD_ENOMEM (done never runs). */
int hooks_before_publish(struct gen *g, size_t count, const struct job *j,
                         const struct tt_creator *c, const bool *stop, pipeline_decided_fn done,
                         void *token);

#endif
