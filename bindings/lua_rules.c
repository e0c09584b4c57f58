/* lua_rules.c - the live rules of `tikd run` (see lua_rules.h).
 *
 * One `struct trules` per tenant (one in all without tenants): its own
 * generations, timers, watched folders and reloads, so a tenant's broken
 * rule file keeps that tenant's rules running and stops no other's reload.
 * gens[0] is a tenant's live generation; the others are retired and finish
 * their calls (each holds a reference until rules_reap sees its last call
 * end). A timer is C's (an ev_timer per declaration of the live generation),
 * so a reload replaces them all and nothing depends on Lua keeping an
 * object. The engine's events go to the tenant they belong to: an account's
 * to its tenant, a job's to the tenant it was planned in, a watched folder's
 * media to the tenant that watches it. */
#include "lua_rules.h"
#include "lua_hooks.h"
#include "lua_schedule.h"

#include <ev.h>
#include <jansson.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../core/account.h"
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
    struct trules *r;
    struct timer_decl t;
};

/* One tenant's rules. */
struct trules {
    struct rules *all;
    struct host_opts host; /* how its generations are built (the caller's strings) */
    const char *tenant;    /* host.tenant: NULL without tenants */
    struct gen *gens[MAX_GENS];
    size_t ngens;
    struct rtimer *timers;
    size_t ntimers;
    struct watch *watch;
    ev_timer reload_soon; /* changes come in bursts: one reload for a burst */
};

struct rules {
    struct rules_cfg c;
    struct trules *t;
    size_t nt;
    unsigned next_gen; /* generation ids are unique across tenants */
    bool stopping;
};

static struct gen *live(const struct trules *r)
{
    return r->ngens && !r->all->stopping ? r->gens[0] : NULL;
}

static int tenant_txn(struct store_txn *t, void *ctx)
{
    struct account *a = ctx;
    return account_get(t, a->name, a);
}

/* The rules the events of account `name` go to: its tenant's (NULL: none
 * hears of them: no such account, no tenant, or a tenant not configured). */
static struct trules *of_account(const struct rules *r, const char *name)
{
    if (!r || !r->nt)
        return NULL;
    if (!r->t[0].tenant)
        return &r->t[0]; /* no tenants: the one set of rules hears everything */
    struct account a = {0};
    snprintf(a.name, sizeof a.name, "%s", name);
    if (!account_name_valid(name) || store_read(r->c.store, tenant_txn, &a, NULL) != 0)
        return NULL;
    for (size_t i = 0; i < r->nt; i++)
        if (strcmp(r->t[i].tenant, a.tenant) == 0)
            return &r->t[i];
    return NULL;
}

/* The rules of tenant `name`, or NULL. Without tenants the one set of rules
 * hears everything (a job or an account may name a tenant of a config that
 * had them). */
static struct trules *of_tenant(const struct rules *r, const char *name)
{
    if (r && r->nt && !r->t[0].tenant)
        return &r->t[0];
    for (size_t i = 0; r && name && i < r->nt; i++)
        if (strcmp(r->t[i].tenant, name) == 0)
            return &r->t[i];
    return NULL;
}

const char *rules_account_tz(const struct rules *r, const char *name)
{
    struct trules *tr = of_account(r, name);
    struct gen *g = tr ? live(tr) : NULL;
    const struct acct_decl *a = g ? decls_account(decls_of_gen(g), name) : NULL;
    return a && a->tz[0] ? a->tz : NULL;
}

int rules_foreach_schedule(const struct rules *r, int (*fn)(const struct schedule *s, void *ud),
                           void *ud)
{
    for (size_t k = 0; r && k < r->nt; k++) {
        struct gen *g = live(&r->t[k]);
        const struct decls *d = g ? decls_of_gen(g) : NULL;
        for (size_t i = 0; d && i < d->nscheds; i++) {
            if (r->t[k].tenant && of_account(r, d->scheds[i].account) != &r->t[k])
                continue; /* a tenant's schedule for an account that is not its own books nothing */
            int rc = fn(&d->scheds[i], ud);
            if (rc != 0)
                return rc;
        }
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

static void audit(struct trules *r, const char *event, const char *detail)
{
    struct audit_ctx a = {event, detail};
    struct tikd_err e = {0};
    if (store_write(r->all->c.store, audit_txn, &a, &e) != 0)
        TLOG(TLOG_ERROR, "audit.failed", LSTR("audit_event", event), LSTR("error", e.msg));
}

struct status_ctx {
    const struct trules *r;
    json_t *mine; /* live_gen, rules, last_reload */
};

/* One document for the daemon: its pid and start, and the rules (without
 * tenants at the top; with them, each tenant's under "tenants", and at the
 * top the newest live generation). A document of an earlier run starts
 * afresh. */
static int status_txn(struct store_txn *t, void *ctx)
{
    static const char key[] = "daemon.status";
    struct status_ctx *sc = ctx;
    const struct rules *all = sc->r->all;
    struct store_val v;
    json_t *doc = store_get(t, STORE_DB_META, key, sizeof key - 1, &v) == 0
                      ? json_loadb(v.p, v.n, 0, NULL)
                      : NULL;
    if (!json_is_object(doc) || json_integer_value(json_object_get(doc, "pid")) != getpid() ||
        json_number_value(json_object_get(doc, "started_at")) != all->c.started_at) {
        json_decref(doc);
        doc = json_object();
    }
    json_object_set_new(doc, "pid", json_integer(getpid()));
    json_object_set_new(doc, "started_at", json_real(all->c.started_at));
    if (!sc->r->tenant) {
        json_object_update(doc, sc->mine);
    } else {
        json_t *tenants = json_object_get(doc, "tenants");
        if (!json_is_object(tenants))
            json_object_set_new(doc, "tenants", tenants = json_object());
        json_object_set(tenants, sc->r->tenant, sc->mine);
        unsigned newest = 0;
        json_t *files = json_array();
        for (size_t i = 0; i < all->nt; i++) {
            struct gen *g = live(&all->t[i]);
            if (g && gen_id(g) > newest)
                newest = gen_id(g);
            for (size_t k = 0; g && k < gen_rule_count(g); k++)
                json_array_append_new(files, json_string(gen_rule_name(g, k)));
        }
        json_object_set_new(doc, "live_gen", json_integer(newest));
        json_object_set_new(doc, "rules", files);
        json_object_set(doc, "last_reload", json_object_get(sc->mine, "last_reload"));
    }
    char *s = json_dumps(doc, JSON_COMPACT | JSON_REAL_PRECISION(17));
    json_decref(doc);
    if (!s)
        return TIKD_ENOMEM;
    int rc = store_put(t, STORE_DB_META, key, sizeof key - 1, s, strlen(s));
    free(s);
    return rc;
}

/* The daemon's pid, the live generation and the last reload (with every
 * error), in META: `tikd status` reads it without asking the daemon. */
static void write_status(struct trules *r, unsigned tried, bool ok, const struct gen_report *rep)
{
    json_t *errors = json_array();
    for (size_t i = 0; rep && i < rep->nerrors; i++)
        json_array_append_new(errors, json_string(rep->errors[i]));
    json_t *files = json_array();
    struct gen *g = r->ngens ? r->gens[0] : NULL;
    for (size_t i = 0; g && i < gen_rule_count(g); i++)
        json_array_append_new(files, json_string(gen_rule_name(g, i)));
    json_t *o = json_pack("{s:i, s:o, s:{s:i, s:f, s:b, s:o}}", "live_gen", g ? (int)gen_id(g) : 0,
                          "rules", files, "last_reload", "gen", (int)tried, "at", clock_now(), "ok",
                          ok, "errors", errors);
    struct status_ctx sc = {r, o};
    if (o)
        store_write(r->all->c.store, status_txn, &sc, NULL);
    json_decref(o);
}

/* ---- timers (tikd.every, tikd.at): C timers that call a rule's function ---------- */

/* When timer t fires next (after firing now, or the first time), kept in
 * LMDB for an every-timer so restarts and reloads keep its rhythm. */
static double timer_next(struct trules *r, const struct timer_decl *t, double now, bool fired)
{
    struct store *s = r->all->c.store;
    double next = fired ? decls_timer_after(t, now) : decls_timer_first(t, s, now);
    if (next > 0)
        decls_timer_store(s, t, next);
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

static void timers_stop(struct trules *r)
{
    for (size_t i = 0; i < r->ntimers; i++)
        ev_timer_stop(r->all->c.loop, &r->timers[i].w);
    free(r->timers);
    r->timers = NULL;
    r->ntimers = 0;
}

/* The live generation's timers replace the last one's. */
static void timers_arm(struct trules *r)
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
        ev_timer_start(r->all->c.loop, &rt->w);
        r->ntimers++;
        TLOG(TLOG_INFO, "rule.timer", LSTR("rule", rt->t.rule), LSTR("fn", rt->t.fn),
             LDBL("in_s", next - now));
    }
}

/* ---- generations ------------------------------------------------------------------ */

static void reap(struct trules *r)
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

void rules_reap(struct rules *r)
{
    for (size_t i = 0; i < r->nt; i++)
        reap(&r->t[i]);
}

static int reload_failed(struct trules *r, unsigned id, int rc, const struct gen_report *rep,
                         const char *why)
{
    char detail[2048], tn[64] = "";
    if (r->tenant)
        snprintf(tn, sizeof tn, "tenant=%s ", r->tenant);
    size_t off = (size_t)snprintf(detail, sizeof detail, "%sgen=%u result=failed errors=%zu", tn,
                                  id, rep->nerrors);
    for (size_t i = 0; i < rep->nerrors; i++) {
        TLOG(TLOG_ERROR, "rules.load_error", LINT("gen", id), LSTR("error", rep->errors[i]),
             LSTR("tenant", r->tenant ? r->tenant : "-"));
        if (off < sizeof detail)
            off += (size_t)snprintf(detail + off, sizeof detail - off, " error=\"%s\"",
                                    rep->errors[i]);
    }
    /* on the record first: the log line tells that the status says so */
    audit(r, "rules.reload", detail);
    write_status(r, id, false, rep);
    metrics_inc("tikd_rule_reloads_total", "result=\"failed\"", 1);
    TLOG(TLOG_ERROR, "rules.reload_failed", LINT("gen", id), LSTR("reason", why),
         LINT("kept_gen", r->ngens ? gen_id(r->gens[0]) : 0),
         LSTR("tenant", r->tenant ? r->tenant : "-"));
    char gen[96]; /* the subject: a tenant's alert goes to its own rules (rules_on_alert) */
    snprintf(gen, sizeof gen, "%sgen=%u", tn, id);
    alert_raise("reload", gen, "%s", rep && rep->nerrors ? rep->errors[0] : why);
    return rc;
}

static int reload(struct trules *r)
{
    if (r->all->stopping)
        return TIKD_EINVAL;
    struct gen *g;
    struct gen_report rep = {0};
    struct tikd_err e = {0};
    unsigned id = ++r->all->next_gen;
    int rc = gen_build(&r->host, id, &g, &rep, &e);
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
    char detail[1300];
    snprintf(detail, sizeof detail, "%s%s%sgen=%u result=ok files=%zu rules=%s",
             r->tenant ? "tenant=" : "", r->tenant ? r->tenant : "", r->tenant ? " " : "", id,
             gen_rule_count(g), names);
    audit(r, "rules.reload", detail);
    write_status(r, id, true, NULL);
    metrics_inc("tikd_rule_reloads_total", "result=\"ok\"", 1);
    TLOG(TLOG_INFO, "rules.loaded", LINT("gen", id), LINT("files", gen_rule_count(g)),
         LSTR("rules", names), LINT("lua_bytes", gen_memory(g)),
         LSTR("tenant", r->tenant ? r->tenant : "-"));
    hooks_call(g, gen_rule_count(g), HOOK_ON_LOAD, NULL, NULL, NULL, NULL);
    timers_arm(r);
    reap(r);
    return 0;
}

int rules_reload(struct rules *r)
{
    int rc = 0;
    for (size_t i = 0; i < r->nt; i++) {
        int one = reload(&r->t[i]);
        rc = rc ? rc : one;
    }
    return rc;
}

unsigned rules_live_tenants(const struct rules *r)
{
    unsigned n = 0;
    for (size_t i = 0; i < r->nt; i++)
        n += live(&r->t[i]) != NULL;
    return n;
}

/* ---- rule files that change --------------------------------------------------------- */

static void reload_now(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)loop;
    (void)revents;
    reload(w->data);
}

/* A file under a watched folder changed: reload once the burst is over.
 * Rule tests, hidden files and editors' temporaries do not count. */
static void on_change(void *ud, const char *path, enum watch_event ev)
{
    struct trules *r = ud;
    const char *name = strrchr(path, '/');
    name = name ? name + 1 : path;
    size_t n = strlen(name);
    bool lua = n > 4 && strcmp(name + n - 4, ".lua") == 0;
    bool test = n > 9 && strcmp(name + n - 9, "_test.lua") == 0;
    if (r->all->stopping || (ev != WATCH_RESCAN && (name[0] == '.' || !lua || test)))
        return;
    TLOG(TLOG_INFO, "rules.reload_requested", LSTR("by", "change"), LSTR("path", path),
         LSTR("tenant", r->tenant ? r->tenant : "-"));
    struct ev_loop *loop = r->all->c.loop;
    ev_timer_stop(loop, &r->reload_soon);
    ev_timer_set(&r->reload_soon, 0.1, 0.);
    ev_timer_start(loop, &r->reload_soon);
}

/* ---- life cycle -------------------------------------------------------------------- */

/* Watch a tenant's rule folder and library folders. */
static int watch_tenant(struct trules *tr, struct tikd_err *e)
{
    int rc = watch_new(&tr->watch, tr->all->c.loop, 0.2, on_change, tr, e);
    if (rc == 0)
        rc = watch_add(tr->watch, tr->host.rules_dir, true, e);
    for (size_t i = 0; rc == 0 && i < tr->host.nlib; i++)
        rc = watch_add(tr->watch, tr->host.lib_paths[i], true, e);
    return rc;
}

int rules_new(struct rules **out, const struct rules_cfg *c, struct tikd_err *e)
{
    struct rules *r = calloc(1, sizeof *r);
    if (!r || !c->nhosts || !(r->t = calloc(c->nhosts, sizeof *r->t))) {
        free(r);
        return tikd_fail(e, TIKD_ENOMEM, "rules: out of memory");
    }
    r->c = *c;
    r->nt = c->nhosts;
    int rc = 0;
    for (size_t i = 0; i < r->nt; i++) {
        struct trules *tr = &r->t[i];
        tr->all = r;
        tr->host = c->hosts[i];
        tr->tenant = tr->host.tenant;
        ev_init(&tr->reload_soon, reload_now);
        tr->reload_soon.data = tr;
        if (rc == 0 && c->watch)
            rc = watch_tenant(tr, e);
    }
    r->c.hosts = NULL; /* the caller's; each tenant keeps its copy */
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
    for (size_t i = 0; i < r->nt; i++) {
        timers_stop(&r->t[i]);
        ev_timer_stop(r->c.loop, &r->t[i].reload_soon);
    }
}

void rules_cancel_all(struct rules *r, const char *why)
{
    for (size_t k = 0; k < r->nt; k++)
        for (size_t i = 0; i < r->t[k].ngens; i++)
            gen_cancel_all(r->t[k].gens[i], why);
}

size_t rules_live_calls(const struct rules *r)
{
    size_t n = 0;
    for (size_t k = 0; k < r->nt; k++)
        for (size_t i = 0; i < r->t[k].ngens; i++)
            n += gen_live_calls(r->t[k].gens[i]);
    return n;
}

unsigned rules_live_gen(const struct rules *r)
{
    unsigned newest = 0;
    for (size_t k = 0; k < r->nt; k++)
        if (r->t[k].ngens && gen_id(r->t[k].gens[0]) > newest)
            newest = gen_id(r->t[k].gens[0]);
    return newest;
}

void rules_free(struct rules *r)
{
    if (!r)
        return;
    rules_stop(r);
    for (size_t k = 0; k < r->nt; k++)
        watch_free(r->t[k].watch);
    rules_cancel_all(r, "tikd is shutting down");
    for (size_t k = 0; k < r->nt; k++)
        for (size_t i = 0; i < r->t[k].ngens; i++)
            gen_release(r->t[k].gens[i]);
    free(r->t);
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

/* The tenant that watches folder (NULL: none does). */
static struct trules *of_folder(const struct rules *r, const char *folder)
{
    for (size_t k = 0; k < r->nt; k++) {
        if (!r->t[k].tenant)
            return &r->t[k];
        char real[PATH_MAX]; /* intake names a folder by its real path */
        for (size_t i = 0; i < r->t[k].host.nintake; i++)
            if (realpath(r->t[k].host.intake[i], real) && strcmp(real, folder) == 0)
                return &r->t[k];
    }
    return NULL;
}

void rules_on_media(void *ud, const struct intake_item *it, struct intake_handoff *h)
{
    struct trules *tr = of_folder(ud, it->folder);
    struct gen *g = tr ? live(tr) : NULL;
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
    struct rules *r = ud;
    struct trules *tr = of_tenant(r, a->tenant);
    struct gen *g = tr ? live(tr) : NULL;
    if (g)
        hooks_call(g, gen_rule_count(g), HOOK_ON_ACCOUNT, hooks_arg_account, (void *)a, NULL, NULL);
}

void rules_on_alert(struct rules *r, const char *kind, const char *subject, const char *detail)
{
    /* a tenant's reload, an account's trouble: to that tenant's rules; what
     * concerns the whole daemon only to the rules of a daemon without tenants */
    struct trules *tr = NULL;
    char tn[64];
    if (sscanf(subject, "tenant=%63[a-z0-9_-]", tn) == 1)
        tr = of_tenant(r, tn);
    else if (!(tr = of_account(r, subject)) && r->nt && !r->t[0].tenant)
        tr = &r->t[0];
    struct gen *g = tr ? live(tr) : NULL;
    struct hook_alert a = {kind, subject, detail};
    if (g)
        hooks_call(g, gen_rule_count(g), HOOK_ON_ALERT, hooks_arg_alert, &a, NULL, NULL);
}

void rules_on_outcome(void *ud, const struct job *j)
{
    struct trules *tr = of_tenant(ud, j->tenant);
    struct gen *g = tr ? live(tr) : NULL;
    if (g)
        hooks_call(g, gen_rule_count(g), hooks_outcome(j), hooks_arg_job, (void *)j, NULL, NULL);
}

void rules_before_publish(void *ud, const struct job *j, const struct tt_creator *c,
                          pipeline_decided_fn done, void *token)
{
    struct rules *r = ud;
    struct trules *tr = of_tenant(r, j->tenant);
    struct gen *g = tr ? live(tr) : NULL;
    if (!g && j->tenant[0]) {
        /* the tenant's rules are not live (they failed to load at start) or
         * the tenant is gone from the config: its posts wait for them */
        struct post_decision wait = {.defer = 60};
        snprintf(wait.reason, sizeof wait.reason, "the rules of tenant %s are not live%s",
                 j->tenant, tr ? " (they failed to load: tikd status)" : " (not in the config)");
        snprintf(wait.chosen_by, sizeof wait.chosen_by, "tikd");
        done(token, &wait);
        return;
    }
    /* nothing to ask (no rule defines before_publish, no preferred privacy
     * list for the account): no copy of the job, no call */
    if (!g || !hooks_before_wanted(g, j->account) ||
        hooks_before_publish(g, gen_rule_count(g), j, c, &r->stopping, done, token) != 0) {
        struct post_decision none = {0};
        done(token, &none);
    }
}
