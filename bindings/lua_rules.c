/* lua_rules.c - the live rules of `tikd run` (see lua_rules.h).
 *
 * gens[0] is the live generation; the others are retired and finish their
 * calls (each holds a reference until rules_reap sees its last call end). A
 * timer is C's (an ev_timer per declaration of the live generation), so a
 * reload replaces them all and nothing depends on Lua keeping an object. */
#include "lua_rules.h"
#include "lua_hooks.h"
#include "lua_schedule.h"

#include <ev.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../core/audit.h"
#include "../core/clock.h"
#include "../core/intake.h"
#include "../core/log.h"
#include "../core/metrics.h"
#include "../core/alert.h"
#include "../core/watch.h"

#define MAX_GENS 64

struct rtimer {
    ev_timer w;
    struct rules *r;
    struct timer_decl t;
};

struct rules {
    struct rules_cfg c;
    struct gen *gens[MAX_GENS];
    size_t ngens;
    unsigned next_gen;
    bool stopping;
    struct rtimer *timers;
    size_t ntimers;
    struct watch *watch;
    ev_timer reload_soon; /* changes come in bursts: one reload for a burst */
};

static struct gen *live(const struct rules *r)
{
    return r->ngens && !r->stopping ? r->gens[0] : NULL;
}

const char *rules_account_tz(const struct rules *r, const char *name)
{
    struct gen *g = r ? live(r) : NULL;
    const struct acct_decl *a = g ? decls_account(decls_of_gen(g), name) : NULL;
    return a && a->tz[0] ? a->tz : NULL;
}

int rules_foreach_schedule(const struct rules *r, int (*fn)(const struct schedule *s, void *ud),
                           void *ud)
{
    struct gen *g = r ? live(r) : NULL;
    const struct decls *d = g ? decls_of_gen(g) : NULL;
    for (size_t i = 0; d && i < d->nscheds; i++) {
        int rc = fn(&d->scheds[i], ud);
        if (rc != 0)
            return rc;
    }
    return 0;
}

/* ---- the record of reloads ------------------------------------------------------ */

struct audit_ctx {
    const char *event, *detail;
};

static int audit_txn(struct store_txn *t, void *ctx)
{
    struct audit_ctx *a = ctx;
    return audit_append(t, "tikd", a->event, a->detail);
}

static void audit(struct rules *r, const char *event, const char *detail)
{
    struct audit_ctx a = {event, detail};
    struct tikd_err e = {0};
    if (store_write(r->c.store, audit_txn, &a, &e) != 0)
        TLOG(TLOG_ERROR, "audit.failed", LSTR("audit_event", event), LSTR("error", e.msg));
}

static int status_txn(struct store_txn *t, void *ctx)
{
    static const char key[] = "daemon.status";
    return store_put(t, STORE_DB_META, key, sizeof key - 1, ctx, strlen(ctx));
}

/* The daemon's pid, the live generation and the last reload (with every
 * error), in META: `tikd status` reads it without asking the daemon. */
static void write_status(struct rules *r, unsigned tried, bool ok, const struct gen_report *rep)
{
    json_t *errors = json_array();
    for (size_t i = 0; rep && i < rep->nerrors; i++)
        json_array_append_new(errors, json_string(rep->errors[i]));
    json_t *files = json_array();
    struct gen *g = r->ngens ? r->gens[0] : NULL;
    for (size_t i = 0; g && i < gen_rule_count(g); i++)
        json_array_append_new(files, json_string(gen_rule_name(g, i)));
    json_t *o =
        json_pack("{s:i, s:f, s:i, s:o, s:{s:i, s:f, s:b, s:o}}", "pid", (int)getpid(),
                  "started_at", r->c.started_at, "live_gen", g ? (int)gen_id(g) : 0, "rules", files,
                  "last_reload", "gen", (int)tried, "at", clock_now(), "ok", ok, "errors", errors);
    char *s = o ? json_dumps(o, JSON_COMPACT) : NULL;
    json_decref(o);
    if (s)
        store_write(r->c.store, status_txn, s, NULL);
    free(s);
}

/* ---- timers (tikd.every, tikd.at): C timers that call a rule's function ---------- */

/* When timer t fires next (after firing now, or the first time), kept in
 * LMDB for an every-timer so restarts and reloads keep its rhythm. */
static double timer_next(struct rules *r, const struct timer_decl *t, double now, bool fired)
{
    double next = fired ? decls_timer_after(t, now) : decls_timer_first(t, r->c.store, now);
    if (next > 0)
        decls_timer_store(r->c.store, t, next);
    return next;
}

static void timer_fire(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)revents;
    struct rtimer *rt = (struct rtimer *)w;
    struct gen *g = live(rt->r);
    bool found = false;
    for (size_t i = 0; g && i < gen_rule_count(g); i++)
        if (strcmp(gen_rule_name(g, i), rt->t.rule) == 0 && gen_rule_has(g, i, rt->t.fn)) {
            found = true;
            gen_call(g, i, rt->t.fn, NULL, NULL, hooks_logged, NULL);
        }
    if (g && !found)
        TLOG(TLOG_WARN, "rule.timer_missing", LSTR("rule", rt->t.rule), LSTR("fn", rt->t.fn));
    double now = clock_now(), next = timer_next(rt->r, &rt->t, now, true);
    if (next > 0) {
        ev_timer_set(w, next > now ? next - now : 0., 0.);
        ev_timer_start(loop, w);
    }
}

static void timers_stop(struct rules *r)
{
    for (size_t i = 0; i < r->ntimers; i++)
        ev_timer_stop(r->c.loop, &r->timers[i].w);
    free(r->timers);
    r->timers = NULL;
    r->ntimers = 0;
}

/* The live generation's timers replace the last one's. */
static void timers_arm(struct rules *r)
{
    timers_stop(r);
    const struct decls *dc = decls_of_gen(r->gens[0]);
    if (!dc->ntimers || !(r->timers = calloc(dc->ntimers, sizeof *r->timers)))
        return;
    double now = clock_now();
    for (size_t i = 0; i < dc->ntimers; i++) {
        struct rtimer *rt = &r->timers[r->ntimers];
        rt->r = r;
        rt->t = dc->timers[i];
        double next = timer_next(r, &rt->t, now, false);
        if (next <= 0)
            continue;
        ev_timer_init(&rt->w, timer_fire, next > now ? next - now : 0., 0.);
        ev_timer_start(r->c.loop, &rt->w);
        r->ntimers++;
        TLOG(TLOG_INFO, "rule.timer", LSTR("rule", rt->t.rule), LSTR("fn", rt->t.fn),
             LDBL("in_s", next - now));
    }
}

/* ---- generations ------------------------------------------------------------------ */

void rules_reap(struct rules *r)
{
    for (size_t i = 1; i < r->ngens;) {
        if (gen_live_calls(r->gens[i]) == 0) {
            unsigned id = gen_id(r->gens[i]);
            size_t bytes = gen_memory(r->gens[i]);
            gen_release(r->gens[i]);
            TLOG(TLOG_INFO, "rules.gen_closed", LINT("gen", id), LINT("lua_bytes", bytes));
            r->gens[i] = r->gens[--r->ngens];
        } else {
            i++;
        }
    }
}

static int reload_failed(struct rules *r, unsigned id, int rc, const struct gen_report *rep,
                         const char *why)
{
    char detail[2048];
    size_t off = (size_t)snprintf(detail, sizeof detail, "gen=%u result=failed errors=%zu", id,
                                  rep->nerrors);
    for (size_t i = 0; i < rep->nerrors; i++) {
        TLOG(TLOG_ERROR, "rules.load_error", LINT("gen", id), LSTR("error", rep->errors[i]));
        if (off < sizeof detail)
            off += (size_t)snprintf(detail + off, sizeof detail - off, " error=\"%s\"",
                                    rep->errors[i]);
    }
    /* on the record first: the log line tells that the status says so */
    audit(r, "rules.reload", detail);
    write_status(r, id, false, rep);
    metrics_inc("tikd_rule_reloads_total", "result=\"failed\"", 1);
    TLOG(TLOG_ERROR, "rules.reload_failed", LINT("gen", id), LSTR("reason", why),
         LINT("kept_gen", r->ngens ? gen_id(r->gens[0]) : 0));
    char gen[32];
    snprintf(gen, sizeof gen, "gen=%u", id);
    alert_raise("reload", gen, "%s", rep && rep->nerrors ? rep->errors[0] : why);
    return rc;
}

int rules_reload(struct rules *r)
{
    if (r->stopping)
        return TIKD_EINVAL;
    struct gen *g;
    struct gen_report rep = {0};
    struct tikd_err e = {0};
    unsigned id = ++r->next_gen;
    int rc = gen_build(&r->c.host, id, &g, &rep, &e);
    if (rc == 0 && r->ngens == MAX_GENS) {
        gen_release(g);
        rc = tikd_fail(&e, TIKD_EFULL, "too many old generations still running calls");
    }
    if (rc != 0) {
        rc = reload_failed(r, id, rc, &rep, e.msg);
        gen_report_free(&rep);
        return rc;
    }
    gen_report_free(&rep);
    char names[1024] = "";
    size_t off = 0;
    for (size_t i = 0; i < gen_rule_count(g) && off < sizeof names; i++)
        off += (size_t)snprintf(names + off, sizeof names - off, "%s%s", i ? "," : "",
                                gen_rule_name(g, i));
    if (r->ngens)
        r->gens[r->ngens] = r->gens[0];
    r->ngens++;
    r->gens[0] = g;
    char detail[1200];
    snprintf(detail, sizeof detail, "gen=%u result=ok files=%zu rules=%s", id, gen_rule_count(g),
             names);
    audit(r, "rules.reload", detail);
    write_status(r, id, true, NULL);
    metrics_inc("tikd_rule_reloads_total", "result=\"ok\"", 1);
    TLOG(TLOG_INFO, "rules.loaded", LINT("gen", id), LINT("files", gen_rule_count(g)),
         LSTR("rules", names), LINT("lua_bytes", gen_memory(g)));
    hooks_call(g, gen_rule_count(g), HOOK_ON_LOAD, NULL, NULL, NULL, NULL);
    timers_arm(r);
    rules_reap(r);
    return 0;
}

/* ---- rule files that change --------------------------------------------------------- */

static void reload_now(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)loop;
    (void)revents;
    rules_reload(w->data);
}

/* A file under a watched folder changed: reload once the burst is over.
 * Rule tests, hidden files and editors' temporaries do not count. */
static void on_change(void *ud, const char *path, enum watch_event ev)
{
    struct rules *r = ud;
    const char *name = strrchr(path, '/');
    name = name ? name + 1 : path;
    size_t n = strlen(name);
    bool lua = n > 4 && strcmp(name + n - 4, ".lua") == 0;
    bool test = n > 9 && strcmp(name + n - 9, "_test.lua") == 0;
    if (r->stopping || (ev != WATCH_RESCAN && (name[0] == '.' || !lua || test)))
        return;
    TLOG(TLOG_INFO, "rules.reload_requested", LSTR("by", "change"), LSTR("path", path));
    ev_timer_stop(r->c.loop, &r->reload_soon);
    ev_timer_set(&r->reload_soon, 0.1, 0.);
    ev_timer_start(r->c.loop, &r->reload_soon);
}

/* ---- life cycle -------------------------------------------------------------------- */

int rules_new(struct rules **out, const struct rules_cfg *c, struct tikd_err *e)
{
    struct rules *r = calloc(1, sizeof *r);
    if (!r)
        return tikd_fail(e, TIKD_ENOMEM, "rules: out of memory");
    r->c = *c;
    ev_init(&r->reload_soon, reload_now);
    r->reload_soon.data = r;
    int rc = 0;
    if (c->nwatch && (rc = watch_new(&r->watch, c->loop, 0.2, on_change, r, e)) == 0)
        for (size_t i = 0; rc == 0 && i < c->nwatch; i++)
            rc = watch_add(r->watch, c->watch[i], true, e);
    if (rc != 0) {
        rules_free(r);
        return rc;
    }
    *out = r;
    return 0;
}

void rules_stop(struct rules *r)
{
    r->stopping = true;
    timers_stop(r);
    ev_timer_stop(r->c.loop, &r->reload_soon);
}

void rules_cancel_all(struct rules *r, const char *why)
{
    for (size_t i = 0; i < r->ngens; i++)
        gen_cancel_all(r->gens[i], why);
}

size_t rules_live_calls(const struct rules *r)
{
    size_t n = 0;
    for (size_t i = 0; i < r->ngens; i++)
        n += gen_live_calls(r->gens[i]);
    return n;
}

unsigned rules_live_gen(const struct rules *r)
{
    return r->ngens ? gen_id(r->gens[0]) : 0;
}

void rules_free(struct rules *r)
{
    if (!r)
        return;
    rules_stop(r);
    watch_free(r->watch);
    rules_cancel_all(r, "tikd is shutting down");
    for (size_t i = 0; i < r->ngens; i++)
        gen_release(r->gens[i]);
    free(r);
}

/* ---- the engine's events ------------------------------------------------------------ */

/* One item's on_media calls: the hand-off ends with the last of them. */
struct media_offer {
    struct intake_handoff *h;
    size_t started, ended;
    bool counted; /* started is final (calls may end before hooks_call returns) */
    bool complete;
};

static void offer_end(struct media_offer *o)
{
    intake_handoff_end(o->h, o->complete);
    free(o);
}

static void offer_done(void *ud, const struct call_result *r)
{
    struct media_offer *o = ud;
    hooks_logged(NULL, r);
    if (r->cancelled)
        o->complete = false; /* shut down before it planned: offered at the next start */
    o->ended++;
    if (o->counted && o->ended == o->started)
        offer_end(o);
}

void rules_on_media(void *ud, const struct intake_item *it, struct intake_handoff *h)
{
    struct gen *g = live(ud);
    TLOG(TLOG_INFO, "intake.item", LSTR("path", it->path), LSTR("hash", it->hash),
         LINT("bytes", (long long)it->size), LBOOL("sidecar", it->sidecar[0] != '\0'));
    struct media_offer *o = g ? calloc(1, sizeof *o) : NULL;
    if (!o) {
        intake_handoff_end(h, false);
        return;
    }
    *o = (struct media_offer){.h = h, .complete = true};
    o->started =
        hooks_call(g, gen_rule_count(g), HOOK_ON_MEDIA, hooks_arg_media, (void *)it, offer_done, o);
    o->counted = true;
    if (o->ended == o->started)
        offer_end(o);
}

void rules_on_account(void *ud, const struct account *a)
{
    struct gen *g = live(ud);
    if (g)
        hooks_call(g, gen_rule_count(g), HOOK_ON_ACCOUNT, hooks_arg_account, (void *)a, NULL, NULL);
}

void rules_on_alert(struct rules *r, const char *kind, const char *subject, const char *detail)
{
    struct gen *g = live(r);
    struct hook_alert a = {kind, subject, detail};
    if (g)
        hooks_call(g, gen_rule_count(g), HOOK_ON_ALERT, hooks_arg_alert, &a, NULL, NULL);
}

void rules_on_outcome(void *ud, const struct job *j)
{
    struct gen *g = live(ud);
    if (g)
        hooks_call(g, gen_rule_count(g), hooks_outcome(j), hooks_arg_job, (void *)j, NULL, NULL);
}

void rules_before_publish(void *ud, const struct job *j, const struct tt_creator *c,
                          pipeline_decided_fn done, void *token)
{
    struct rules *r = ud;
    struct gen *g = live(r);
    /* nothing to ask (no rule defines before_publish, no preferred privacy
     * list for the account): no copy of the job, no call */
    if (!g || !hooks_before_wanted(g, j->account) ||
        hooks_before_publish(g, gen_rule_count(g), j, c, &r->stopping, done, token) != 0) {
        struct post_decision none = {0};
        done(token, &none);
    }
}
