/* daemon.c - `tikd run`: the long-running engine.
 *
 * Loads the config, opens the engine (vault first: a missing or wrong key
 * stops tikd before anything is written), serves the OAuth callback and
 * TikTok's webhooks, keeps tokens alive with a periodic sweep, builds rule
 * generation 1 and runs the libev loop. SIGHUP builds a new generation and
 * swaps it in only if every rule file loads; calls already running finish on
 * the generation they started in. SIGTERM/SIGINT stop: running calls get
 * shutdown_grace seconds, then are cancelled. */
#include "engine.h"
#include "../bindings/lua_modules.h"
#include "../bindings/lua_schedule.h"

#include <ev.h>
#include <jansson.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../core/audit.h"
#include "../core/pipeline.h"
#include "../core/clock.h"
#include "../core/log.h"
#include "../core/intake.h"
#include "../core/mediaurl.h"
#include "../core/watch.h"
#include "../core/tiktok.h"
#include "../core/server.h"
#include "../core/webhook.h"

#define MAX_GENS    64
#define MAX_SERVERS 8

struct daemon {
    struct cli *cli;
    struct engine en;
    struct ev_loop *loop;
    struct server *servers[MAX_SERVERS];
    size_t nservers;
    struct gen *gens[MAX_GENS]; /* gens[0] is current; the rest finish their calls */
    size_t ngens;
    unsigned next_gen;
    bool stopping;
    ev_signal sig_term, sig_int, sig_hup, sig_usr1;
    struct pipeline *pipeline;
    char pidfile[4200];
    ev_timer grace, sweep;
    struct rtimer *rtimers; /* the live generation's tikd.every / tikd.at timers */
    size_t nrtimers;
    double started_at;
    struct intake *intake; /* watched media folders (intake.folders) */
    struct watch *rwatch;  /* the rules and library folders (rules.watch) */
    ev_timer reload_soon;  /* changes come in bursts: one reload for a burst */
};

/* ---- audit and generations --------------------------------------------------- */

struct audit_ctx {
    const char *event, *detail;
};

static int audit_txn(struct store_txn *t, void *ctx)
{
    struct audit_ctx *a = ctx;
    return audit_append(t, "tikd", a->event, a->detail);
}

static void audit(struct daemon *d, const char *event, const char *detail)
{
    struct audit_ctx a = {event, detail};
    struct tikd_err e = {0};
    if (store_write(d->en.store, audit_txn, &a, &e) != 0)
        TLOG(TLOG_ERROR, "audit.failed", LSTR("audit_event", event), LSTR("error", e.msg));
}

static size_t live_calls(struct daemon *d)
{
    size_t n = 0;
    for (size_t i = 0; i < d->ngens; i++)
        n += gen_live_calls(d->gens[i]);
    return n;
}

/* Release retired generations whose last call has ended. */
static void reap(struct daemon *d)
{
    for (size_t i = 1; i < d->ngens;) {
        if (gen_live_calls(d->gens[i]) == 0) {
            TLOG(TLOG_DEBUG, "rules.gen_closed", LINT("gen", gen_id(d->gens[i])));
            gen_release(d->gens[i]);
            d->gens[i] = d->gens[--d->ngens];
        } else {
            i++;
        }
    }
}

static void maybe_finish_stop(struct daemon *d)
{
    if (d->stopping && live_calls(d) == 0)
        ev_break(d->loop, EVBREAK_ALL);
}

static void hook_done(void *ud, const struct call_result *r)
{
    (void)ud;
    if (r->ok)
        TLOG(TLOG_DEBUG, "rule.call_done", LSTR("rule", r->rule), LSTR("fn", r->fn));
    else
        TLOG(TLOG_WARN, "rule.call_failed", LSTR("rule", r->rule), LSTR("fn", r->fn),
             LBOOL("budget", r->budget), LSTR("error", r->error));
}

/* Call hook `fn` of every rule of the current generation that defines it. */
static void call_hooks(struct daemon *d, const char *fn, host_push_fn push, void *ud)
{
    if (!d->ngens || d->stopping)
        return;
    struct gen *g = d->gens[0];
    for (size_t i = 0; i < gen_rule_count(g); i++)
        if (gen_rule_has(g, i, fn))
            gen_call(g, i, fn, push, ud, hook_done, d);
}

static void jobs_changed(void *ud)
{
    struct daemon *d = ud;
    if (d->pipeline)
        pipeline_kick(d->pipeline);
}

/* ---- rule timers (tikd.every, tikd.at): C timers that call a rule's function ---- */

struct rtimer {
    ev_timer w;
    struct daemon *d;
    struct timer_decl t;
};

/* When timer t fires next (after firing now, or the first time), kept in
 * LMDB for an every-timer so restarts and reloads keep its rhythm. */
static double timer_next(struct daemon *d, const struct timer_decl *t, double now, bool fired)
{
    double next = fired ? decls_timer_after(t, now) : decls_timer_first(t, d->en.store, now);
    if (next > 0)
        decls_timer_store(d->en.store, t, next);
    return next;
}

static void timer_fire(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)revents;
    struct rtimer *rt = (struct rtimer *)w;
    struct daemon *d = rt->d;
    if (d->ngens && !d->stopping) {
        struct gen *g = d->gens[0];
        bool found = false;
        for (size_t i = 0; i < gen_rule_count(g); i++)
            if (strcmp(gen_rule_name(g, i), rt->t.rule) == 0 && gen_rule_has(g, i, rt->t.fn)) {
                found = true;
                gen_call(g, i, rt->t.fn, NULL, NULL, hook_done, d);
            }
        if (!found)
            TLOG(TLOG_WARN, "rule.timer_missing", LSTR("rule", rt->t.rule), LSTR("fn", rt->t.fn));
    }
    double now = clock_now(), next = timer_next(d, &rt->t, now, true);
    if (next > 0) {
        ev_timer_set(w, next > now ? next - now : 0., 0.);
        ev_timer_start(loop, w);
    }
}

static void timers_stop(struct daemon *d)
{
    for (size_t i = 0; i < d->nrtimers; i++)
        ev_timer_stop(d->loop, &d->rtimers[i].w);
    free(d->rtimers);
    d->rtimers = NULL;
    d->nrtimers = 0;
}

/* The live generation's timers replace the last one's. */
static void timers_arm(struct daemon *d)
{
    timers_stop(d);
    const struct decls *dc = decls_of_gen(d->gens[0]);
    if (!dc->ntimers || !(d->rtimers = calloc(dc->ntimers, sizeof *d->rtimers)))
        return;
    double now = clock_now();
    for (size_t i = 0; i < dc->ntimers; i++) {
        struct rtimer *rt = &d->rtimers[d->nrtimers];
        rt->d = d;
        rt->t = dc->timers[i];
        double next = timer_next(d, &rt->t, now, false);
        if (next <= 0)
            continue;
        ev_timer_init(&rt->w, timer_fire, next > now ? next - now : 0., 0.);
        ev_timer_start(d->loop, &rt->w);
        d->nrtimers++;
        TLOG(TLOG_INFO, "rule.timer", LSTR("rule", rt->t.rule), LSTR("fn", rt->t.fn),
             LDBL("in_s", next - now));
    }
}

/* ---- what `tikd status` shows ------------------------------------------------- */

struct status_ctx {
    char *json;
};

static int status_txn(struct store_txn *t, void *ctx)
{
    struct status_ctx *c = ctx;
    static const char key[] = "daemon.status";
    return store_put(t, STORE_DB_META, key, sizeof key - 1, c->json, strlen(c->json));
}

/* The daemon's pid, the live generation and the last reload (with every
 * error), in META: `tikd status` reads it without asking the daemon. */
static void write_status(struct daemon *d, unsigned tried, bool ok, const struct gen_report *rep)
{
    json_t *errors = json_array();
    for (size_t i = 0; rep && i < rep->nerrors; i++)
        json_array_append_new(errors, json_string(rep->errors[i]));
    json_t *files = json_array();
    struct gen *live = d->ngens ? d->gens[0] : NULL;
    for (size_t i = 0; live && i < gen_rule_count(live); i++)
        json_array_append_new(files, json_string(gen_rule_name(live, i)));
    json_t *o = json_pack("{s:i, s:f, s:i, s:o, s:{s:i, s:f, s:b, s:o}}", "pid", (int)getpid(),
                          "started_at", d->started_at, "live_gen", live ? (int)gen_id(live) : 0,
                          "rules", files, "last_reload", "gen", (int)tried, "at", clock_now(), "ok",
                          ok, "errors", errors);
    struct status_ctx c = {o ? json_dumps(o, JSON_COMPACT) : NULL};
    json_decref(o);
    if (c.json)
        store_write(d->en.store, status_txn, &c, NULL);
    free(c.json);
}

static int load_rules(struct daemon *d)
{
    struct host_opts o = cli_host_opts(&d->cli->cfg, NULL, d->loop, d->en.http, d->en.store);
    o.jobs_changed = jobs_changed;
    o.jobs_ud = d;
    struct gen *g;
    struct gen_report rep = {0};
    struct tikd_err e = {0};
    unsigned id = ++d->next_gen;
    int rc = gen_build(&o, id, &g, &rep, &e);
    if (rc != 0) {
        char detail[2048];
        size_t off = (size_t)snprintf(detail, sizeof detail, "gen=%u result=failed errors=%zu", id,
                                      rep.nerrors);
        for (size_t i = 0; i < rep.nerrors; i++) {
            TLOG(TLOG_ERROR, "rules.load_error", LINT("gen", id), LSTR("error", rep.errors[i]));
            if (off < sizeof detail)
                off += (size_t)snprintf(detail + off, sizeof detail - off, " error=\"%s\"",
                                        rep.errors[i]);
        }
        TLOG(TLOG_ERROR, "rules.reload_failed", LINT("gen", id), LSTR("reason", e.msg),
             LINT("kept_gen", d->ngens ? gen_id(d->gens[0]) : 0));
        audit(d, "rules.reload", detail);
        write_status(d, id, false, &rep);
        gen_report_free(&rep);
        return rc;
    }
    gen_report_free(&rep);
    if (d->ngens == MAX_GENS) {
        TLOG(TLOG_ERROR, "rules.reload_failed", LINT("gen", id),
             LSTR("reason", "too many old generations still running calls"));
        gen_release(g);
        return TIKD_EFULL;
    }
    char names[1024] = "";
    size_t off = 0;
    for (size_t i = 0; i < gen_rule_count(g) && off < sizeof names; i++)
        off += (size_t)snprintf(names + off, sizeof names - off, "%s%s", i ? "," : "",
                                gen_rule_name(g, i));
    if (d->ngens)
        d->gens[d->ngens] = d->gens[0];
    d->ngens++;
    d->gens[0] = g;
    TLOG(TLOG_INFO, "rules.loaded", LINT("gen", id), LINT("files", gen_rule_count(g)),
         LSTR("rules", names), LINT("lua_bytes", gen_memory(g)));
    char detail[1200];
    snprintf(detail, sizeof detail, "gen=%u result=ok files=%zu rules=%s", id, gen_rule_count(g),
             names);
    audit(d, "rules.reload", detail);
    write_status(d, id, true, NULL);
    call_hooks(d, "on_load", NULL, NULL);
    timers_arm(d);
    reap(d);
    return 0;
}

/* ---- media intake and rule files that change ------------------------------------ */

/* A new media item (new content, settled): the rules decide what to do. */
static void on_media_item(void *ud, const struct intake_item *it)
{
    struct daemon *d = ud;
    TLOG(TLOG_INFO, "intake.item", LSTR("path", it->path), LSTR("hash", it->hash),
         LINT("bytes", (long long)it->size), LBOOL("sidecar", it->sidecar[0] != '\0'));
    call_hooks(d, "on_media", lua_push_media_arg, (void *)it); /* protected: may run out */
}

static void reload_now(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)loop;
    (void)revents;
    struct daemon *d = w->data;
    if (!d->stopping)
        load_rules(d);
}

/* A file under the rules dir or a library folder changed: reload once the
 * burst is over. Rule tests, hidden files and editors' temporaries do not
 * count. */
static void on_rules_change(void *ud, const char *path, enum watch_event ev)
{
    struct daemon *d = ud;
    const char *name = strrchr(path, '/');
    name = name ? name + 1 : path;
    size_t n = strlen(name);
    bool lua = n > 4 && strcmp(name + n - 4, ".lua") == 0;
    bool test = n > 9 && strcmp(name + n - 9, "_test.lua") == 0;
    if (ev != WATCH_RESCAN && (name[0] == '.' || !lua || test))
        return;
    TLOG(TLOG_INFO, "rules.reload_requested", LSTR("by", "change"), LSTR("path", path));
    ev_timer_stop(d->loop, &d->reload_soon);
    ev_timer_set(&d->reload_soon, 0.1, 0.);
    ev_timer_start(d->loop, &d->reload_soon);
}

static int start_watching(struct daemon *d)
{
    const struct tikd_config *c = &d->cli->cfg;
    struct tikd_err e = {0};
    ev_init(&d->reload_soon, reload_now);
    d->reload_soon.data = d;
    if (c->rules_watch) {
        if (watch_new(&d->rwatch, d->loop, 0.2, on_rules_change, d, &e) != 0 ||
            watch_add(d->rwatch, c->rules_dir, true, &e) != 0)
            goto fail;
        for (size_t i = 0; i < c->lib_paths.n; i++)
            if (watch_add(d->rwatch, c->lib_paths.v[i], true, &e) != 0)
                goto fail;
    }
    if (c->intake_folders.n) {
        if (intake_new(&d->intake, d->loop, d->en.store, c->intake_settle, on_media_item, d, &e) !=
            0)
            goto fail;
        for (size_t i = 0; i < c->intake_folders.n; i++)
            if (intake_add_folder(d->intake, c->intake_folders.v[i], NULL, &e) != 0)
                goto fail;
    }
    return 0;
fail:
    fprintf(stderr, "tikd: %s\n", e.msg);
    return 1;
}

static void stop_watching(struct daemon *d)
{
    ev_timer_stop(d->loop, &d->reload_soon);
    watch_free(d->rwatch);
    d->rwatch = NULL;
    intake_free(d->intake);
    d->intake = NULL;
}

/* ---- accounts: state changes reach the rules ------------------------------------ */

static int push_account(lua_State *L, void *ud)
{
    const struct account *a = ud;
    lua_createtable(L, 0, 5);
    lua_pushstring(L, a->name);
    lua_setfield(L, -2, "name");
    lua_pushstring(L, account_state_name(a->state));
    lua_setfield(L, -2, "state");
    lua_pushstring(L, a->reason);
    lua_setfield(L, -2, "reason");
    lua_pushstring(L, a->open_id);
    lua_setfield(L, -2, "open_id");
    lua_pushstring(L, a->scopes);
    lua_setfield(L, -2, "scopes");
    return 1;
}

static void on_account_state(void *ud, const struct account *a)
{
    call_hooks(ud, "on_account", push_account, (void *)a);
}

/* ---- jobs: outcomes reach the rules ---------------------------------------------------- */

static int push_job(lua_State *L, void *ud)
{
    lua_push_job(L, ud);
    return 1;
}

static void on_job_outcome(void *ud, const struct job *j)
{
    bool ok = j->state == JOB_PUBLISHED || j->state == JOB_IN_INBOX;
    call_hooks(ud, ok ? "on_published" : "on_failed", push_job, (void *)j);
}

/* ---- before_publish: the rules' last word before an init ---------------------- */

struct before_call {
    struct daemon *d;
    struct gen *g; /* the generation asked (held: a reload may retire it meanwhile) */
    size_t next;   /* the next rule file to ask */
    pipeline_decided_fn done;
    void *token;
    struct job j; /* as the rules see it, with what earlier rules changed */
    char offered[160];
    struct pipeline_decision dec;
};

static int push_before(lua_State *L, void *ud)
{
    struct before_call *bc = ud;
    lua_push_job(L, &bc->j);
    lua_createtable(L, 0, 1); /* the creator, as creator_info says now */
    lua_createtable(L, 4, 0);
    int n = 0;
    for (const char *q = bc->offered; *q;) {
        size_t l = strcspn(q, ",");
        lua_pushlstring(L, q, l);
        lua_rawseti(L, -2, ++n);
        q += l + (q[l] == ',');
    }
    lua_setfield(L, -2, "privacy_options");
    return 2;
}

static void before_next(struct before_call *bc);

static void before_end(struct before_call *bc)
{
    bc->done(bc->token, &bc->dec);
    gen_release(bc->g);
    free(bc->dec.caption);
    free(bc);
}

/* One rule answered: nil (no opinion), or { caption=, privacy=, defer=s,
 * cancel=true, reason= }. A rule that fails is logged and has no say. */
static void before_done(void *ud, const struct call_result *r)
{
    struct before_call *bc = ud;
    if (!r->ok) {
        TLOG(TLOG_WARN, "rule.call_failed", LSTR("rule", r->rule), LSTR("fn", r->fn),
             LBOOL("budget", r->budget), LSTR("error", r->error));
    } else if (r->nresults >= 1 && lua_istable(r->L, -r->nresults)) {
        lua_State *L = r->L;
        int t = lua_absindex(L, -r->nresults);
        char who[160];
        snprintf(who, sizeof who, "rule:%s@gen%u", r->rule, gen_id(bc->g));
        lua_getfield(L, t, "reason");
        const char *reason = lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1) : "";
        snprintf(bc->dec.reason, sizeof bc->dec.reason, "%s", reason);
        lua_pop(L, 1);
        lua_getfield(L, t, "cancel");
        bool cancel = lua_toboolean(L, -1);
        lua_pop(L, 1);
        lua_getfield(L, t, "defer");
        double defer = lua_type(L, -1) == LUA_TNUMBER ? lua_tonumber(L, -1) : 0;
        lua_pop(L, 1);
        lua_getfield(L, t, "caption");
        if (lua_type(L, -1) == LUA_TSTRING) {
            free(bc->dec.caption);
            bc->dec.caption = strdup(lua_tostring(L, -1));
            snprintf(bc->j.caption, sizeof bc->j.caption, "%s", lua_tostring(L, -1));
            snprintf(bc->dec.chosen_by, sizeof bc->dec.chosen_by, "%s", who);
        }
        lua_pop(L, 1);
        lua_getfield(L, t, "privacy");
        if (lua_type(L, -1) == LUA_TSTRING) {
            snprintf(bc->dec.privacy, sizeof bc->dec.privacy, "%s", lua_tostring(L, -1));
            snprintf(bc->j.privacy, sizeof bc->j.privacy, "%s", lua_tostring(L, -1));
            snprintf(bc->dec.chosen_by, sizeof bc->dec.chosen_by, "%s", who);
        }
        lua_pop(L, 1);
        if (cancel || defer > 0) { /* the last word: no more rules are asked */
            bc->dec.cancel = cancel;
            bc->dec.defer = cancel ? 0
                                   : (defer < 1               ? 1
                                      : defer > 366 * 86400.0 ? 366 * 86400.0
                                                              : defer);
            snprintf(bc->dec.chosen_by, sizeof bc->dec.chosen_by, "%s", who);
            before_end(bc);
            return;
        }
    }
    before_next(bc);
}

static void before_next(struct before_call *bc)
{
    while (bc->next < gen_rule_count(bc->g) && !bc->d->stopping) {
        size_t i = bc->next++;
        if (gen_rule_has(bc->g, i, "before_publish")) {
            if (gen_call(bc->g, i, "before_publish", push_before, bc, before_done, bc) == 0)
                return; /* before_done goes on (it may have already) */
        }
    }
    before_end(bc);
}

static bool offered_has(const char *offered, const char *level)
{
    size_t n = strlen(level);
    for (const char *q = offered; *q;) {
        size_t l = strcspn(q, ",");
        if (l == n && strncmp(q, level, n) == 0)
            return true;
        q += l + (q[l] == ',');
    }
    return false;
}

/* A post a rule planned with its account's declared privacy, which the
 * creator does not offer now: the first of the account's preferred levels
 * that is offered, recorded as the declaring rule's choice. */
static void account_default_privacy(struct before_call *bc)
{
    const struct job *j = &bc->j;
    const struct acct_decl *a = decls_account(decls_of_gen(bc->g), j->account);
    if (!a || a->nprefer < 2 || j->mode != JOB_DIRECT || strncmp(j->chosen_by, "rule:", 5) ||
        strcmp(j->privacy, a->privacy) || offered_has(bc->offered, j->privacy))
        return;
    for (int i = 1; i < a->nprefer; i++) {
        if (!offered_has(bc->offered, a->prefer[i]))
            continue;
        snprintf(bc->dec.privacy, sizeof bc->dec.privacy, "%s", a->prefer[i]);
        snprintf(bc->j.privacy, sizeof bc->j.privacy, "%s", a->prefer[i]);
        snprintf(bc->dec.chosen_by, sizeof bc->dec.chosen_by, "rule:%s@gen%u", a->rule,
                 gen_id(bc->g));
        TLOG(TLOG_INFO, "job.privacy_fallback", LINT("job", j->id), LSTR("account", j->account),
             LSTR("wanted", a->privacy), LSTR("took", a->prefer[i]), LSTR("offered", bc->offered),
             LSTR("note", strcmp(bc->offered, "SELF_ONLY") == 0
                              ? "an app TikTok has not audited may only post SELF_ONLY to "
                                "private accounts"
                              : ""));
        return;
    }
}

static void on_before(void *ud, const struct job *j, const char *offered, pipeline_decided_fn done,
                      void *token)
{
    struct daemon *d = ud;
    /* nothing to ask (no rule defines before_publish, no preferred privacy
     * list for the account): no copy of the job, no call */
    bool ask = false;
    if (d->ngens) {
        struct gen *g = d->gens[0];
        const struct acct_decl *a = decls_account(decls_of_gen(g), j->account);
        ask = a && a->nprefer > 1;
        for (size_t i = 0; !ask && i < gen_rule_count(g); i++)
            ask = gen_rule_has(g, i, "before_publish");
    }
    struct before_call *bc = ask ? calloc(1, sizeof *bc) : NULL;
    if (!bc) {
        struct pipeline_decision none = {0};
        done(token, &none);
        return;
    }
    bc->d = d;
    bc->g = d->gens[0];
    gen_retain(bc->g);
    bc->done = done;
    bc->token = token;
    bc->j = *j;
    snprintf(bc->offered, sizeof bc->offered, "%s", offered);
    account_default_privacy(bc);
    before_next(bc);
}

static void on_usr1(struct ev_loop *loop, ev_signal *w, int revents)
{
    (void)loop;
    (void)revents;
    struct daemon *d = w->data;
    TLOG(TLOG_DEBUG, "jobs.kick", LSTR("by", "SIGUSR1"));
    pipeline_kick(d->pipeline);
}

/* ---- the OAuth callback page ------------------------------------------------------- */

static void on_callback(void *ud, struct srv_req *r)
{
    oauth_serve_callback(((struct daemon *)ud)->en.oauth, r);
}

/* ---- webhooks ------------------------------------------------------------------------ */

struct seen_ctx {
    unsigned char key[3 + 32];
    bool dup;
};

/* At-least-once delivery (spec §5.1): remember each event by a hash of
 * event, content and create_time. */
static int seen_txn(struct store_txn *t, void *ctx)
{
    struct seen_ctx *s = ctx;
    struct store_val v;
    if (store_get(t, STORE_DB_META, s->key, sizeof s->key, &v) == 0) {
        s->dup = true;
        return 0;
    }
    unsigned char when[8];
    store_be64_put(when, (uint64_t)clock_now());
    return store_put(t, STORE_DB_META, s->key, sizeof s->key, when, sizeof when);
}

struct find_publish {
    const char *publish_id;
    uint64_t id;
};

static int find_publish_cb(const struct job *j, void *ctx)
{
    struct find_publish *f = ctx;
    if (!job_state_final(j->state) && strcmp(j->publish_id, f->publish_id) == 0) {
        f->id = j->id;
        return 1;
    }
    return 0;
}

/* A post.publish.* event: the job with that publish_id is looked at now
 * (its status fetch confirms what the event says, so a forged or stale
 * event can only cause one extra status request). */
static int wake_publish_txn(struct store_txn *t, void *ctx)
{
    struct find_publish *f = ctx;
    int rc = job_foreach(t, find_publish_cb, f);
    if (rc < 0 || !f->id)
        return rc < 0 ? rc : 0;
    struct job *j = malloc(sizeof *j);
    if (!j)
        return TIKD_ENOMEM;
    rc = job_get(t, f->id, j);
    if (rc == 0 && j->state == JOB_PROCESSING) {
        j->due_at = clock_now();
        rc = job_put(t, j);
    }
    free(j);
    return rc;
}

static void on_webhook(void *ud, struct srv_req *r)
{
    struct daemon *d = ud;
    size_t n;
    const char *body = srv_body(r, &n);
    char why[200];
    if (webhook_verify(d->cli->cfg.client_secret, srv_header(r, "TikTok-Signature"), body, n,
                       clock_now(), d->cli->cfg.webhook_tolerance, why, sizeof why) != 0) {
        TLOG(TLOG_WARN, "webhook.rejected", LSTR("reason", why));
        srv_respond(r, 401, "text/plain", "signature check failed\n");
        return;
    }
    struct webhook_event ev;
    if (webhook_parse(body, n, &ev, why, sizeof why) != 0) {
        TLOG(TLOG_WARN, "webhook.rejected", LSTR("reason", why));
        srv_respond(r, 400, "text/plain", "malformed event\n");
        return;
    }
    if (d->cli->cfg.client_key && strcmp(ev.client_key, d->cli->cfg.client_key) != 0) {
        TLOG(TLOG_WARN, "webhook.rejected", LSTR("reason", "for another client_key"));
        srv_respond(r, 400, "text/plain", "wrong client_key\n");
        return;
    }
    json_t *o = json_loadb(body, n, 0, NULL);
    const char *content = json_string_value(json_object_get(o, "content"));
    struct seen_ctx sc = {.key = {'w', 'h', ':'}};
    char *k = NULL;
    if (asprintf(&k, "%s\n%s\n%lld", ev.event, content ? content : "", ev.create_time) > 0)
        EVP_Digest(k, strlen(k), sc.key + 3, NULL, EVP_sha256(), NULL);
    free(k);
    json_decref(o);
    struct tikd_err e = {0};
    if (store_write(d->en.store, seen_txn, &sc, &e) != 0) {
        srv_respond(r, 503, "text/plain", "try again\n"); /* TikTok retries */
        return;
    }
    TLOG(TLOG_INFO, "webhook.received", LSTR("webhook_event", ev.event),
         LSTR("open_id", ev.user_openid), LSTR("publish_id", ev.publish_id),
         LBOOL("duplicate", sc.dup));
    if (!sc.dup && strncmp(ev.event, "post.publish.", 13) == 0 && ev.publish_id[0]) {
        struct find_publish f = {ev.publish_id, 0};
        if (store_write(d->en.store, wake_publish_txn, &f, &e) == 0 && f.id) {
            TLOG(TLOG_INFO, "webhook.job", LINT("job", f.id), LSTR("publish_id", ev.publish_id));
            pipeline_kick(d->pipeline);
        }
    }
    if (!sc.dup && strcmp(ev.event, "authorization.removed") == 0) {
        static const char *const reasons[] = {"unknown",         "user disconnected the app",
                                              "account deleted", "age changed",
                                              "account banned",  "developer revoked"};
        char reason[200];
        snprintf(reason, sizeof reason, "authorization.removed webhook: %s (reason %lld)",
                 ev.reason_code >= 0 && ev.reason_code <= 5 ? reasons[ev.reason_code] : "unknown",
                 ev.reason_code);
        if (oauth_mark(d->en.oauth, ev.user_openid, ACCT_REVOKED, reason, &e) != 0)
            TLOG(TLOG_WARN, "webhook.unknown_account", LSTR("open_id", ev.user_openid));
    }
    srv_respond(r, 200, "text/plain", "ok\n");
}

static void on_health(void *ud, struct srv_req *r)
{
    (void)ud;
    srv_respond(r, 200, "text/plain", "ok\n");
}

/* ---- local images for TikTok to pull (core/mediaurl.h) ---- */

struct pull {
    struct daemon *d;
    char token[MEDIAURL_TOKEN_LEN + 1];
    uint64_t job;
    int index;
};

struct media_look {
    const char *token;
    struct media_url u;
};

static int media_get_txn(struct store_txn *t, void *ctx)
{
    struct media_look *m = ctx;
    return mediaurl_get(t, m->token, clock_now(), &m->u);
}

static int media_del_txn(struct store_txn *t, void *ctx)
{
    return mediaurl_del(t, ((struct pull *)ctx)->token);
}

/* The whole image went out: TikTok has it, and the URL stops working. */
static void media_pulled(void *ud, bool complete)
{
    struct pull *pl = ud;
    if (complete && store_write(pl->d->en.store, media_del_txn, pl, NULL) == 0)
        TLOG(TLOG_INFO, "media.pulled", LINT("job", pl->job), LINT("image", pl->index + 1));
    free(pl);
}

/* GET|HEAD /media/<token>.<ext>: a local image of a photo job, while its
 * URL is live. Everything else is the same 404: nothing to probe. */
static void on_media(void *ud, struct srv_req *r)
{
    struct daemon *d = ud;
    const char *name = srv_path(r) + strlen("/media/");
    char token[MEDIAURL_TOKEN_LEN + 1];
    size_t tl = strcspn(name, ".");
    struct media_look m = {token, {0}};
    int fd = -1;
    struct stat st;
    if (tl == MEDIAURL_TOKEN_LEN) {
        memcpy(token, name, tl);
        token[tl] = '\0';
        if (store_read(d->en.store, media_get_txn, &m, NULL) == 0)
            fd = open(m.u.path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    }
    if (fd >= 0 && (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) ||
                    (uint64_t)st.st_size > TT_PHOTO_MAX_BYTES)) {
        close(fd);
        fd = -1;
    }
    if (fd < 0) {
        srv_respond(r, 404, "text/plain", "not found\n");
        return;
    }
    struct pull *pl = NULL;
    if (strcmp(srv_method(r), "GET") == 0 && (pl = calloc(1, sizeof *pl))) {
        pl->d = d;
        memcpy(pl->token, token, sizeof pl->token);
        pl->job = m.u.job;
        pl->index = m.u.index;
    }
    TLOG(TLOG_INFO, "media.serve", LINT("job", m.u.job), LINT("image", m.u.index + 1),
         LSTR("method", srv_method(r)), LINT("bytes", (long long)st.st_size));
    if (srv_respond_fd(r, 200, m.u.mime, fd, (uint64_t)st.st_size, pl ? media_pulled : NULL, pl) !=
        0)
        free(pl);
}

/* The callback path is the path of the configured redirect URI. */
static void callback_path(const char *uri, char *out, size_t n)
{
    const char *p = uri ? strstr(uri, "://") : NULL;
    p = p ? strchr(p + 3, '/') : NULL;
    snprintf(out, n, "%s", p ? p : "/oauth/callback");
}

static int start_servers(struct daemon *d)
{
    const struct tikd_config *c = &d->cli->cfg;
    char cb[512];
    callback_path(c->redirect_uri, cb, sizeof cb);
    for (size_t i = 0; i < c->listen.n && i < MAX_SERVERS; i++) {
        struct tikd_err e = {0};
        struct server *s;
        if (server_new(&s, d->loop, c->listen.v[i], &e) != 0) {
            fprintf(stderr, "tikd: %s\n", e.msg);
            return 1;
        }
        server_route(s, "GET", cb, on_callback, d);
        server_route(s, "POST", "/webhooks/tiktok", on_webhook, d);
        server_route(s, "GET", "/healthz", on_health, d);
        server_route(s, "GET", "/media/", on_media, d);
        server_route(s, "HEAD", "/media/", on_media, d);
        d->servers[d->nservers++] = s;
    }
    return 0;
}

/* ---- timers and signals ---------------------------------------------------------------- */

static void on_sweep(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)loop;
    (void)revents;
    struct daemon *d = w->data;
    size_t due = oauth_sweep(d->en.oauth);
    if (due)
        TLOG(TLOG_DEBUG, "oauth.sweep", LINT("due", due));
}

static void on_grace(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)loop;
    (void)revents;
    struct daemon *d = w->data;
    TLOG(TLOG_WARN, "daemon.grace_expired", LINT("cancelled", live_calls(d)));
    for (size_t i = 0; i < d->ngens; i++)
        gen_cancel_all(d->gens[i], "tikd is shutting down");
    ev_break(d->loop, EVBREAK_ALL);
}

static void on_stop(struct ev_loop *loop, ev_signal *w, int revents)
{
    (void)revents;
    struct daemon *d = w->data;
    if (d->stopping)
        return;
    d->stopping = true;
    TLOG(TLOG_INFO, "daemon.stopping", LSTR("signal", w->signum == SIGINT ? "INT" : "TERM"),
         LINT("running_calls", live_calls(d)), LDBL("grace_s", d->cli->cfg.shutdown_grace));
    ev_timer_init(&d->grace, on_grace, d->cli->cfg.shutdown_grace, 0.);
    d->grace.data = d;
    ev_timer_start(loop, &d->grace);
    maybe_finish_stop(d);
}

static void on_hup(struct ev_loop *loop, ev_signal *w, int revents)
{
    (void)loop;
    (void)revents;
    struct daemon *d = w->data;
    if (d->stopping)
        return;
    TLOG(TLOG_INFO, "rules.reload_requested", LSTR("by", "SIGHUP"));
    load_rules(d);
}

/* Calls end rarely; checking after each loop wakeup costs one branch. */
static void on_prepare(struct ev_loop *loop, ev_prepare *w, int revents)
{
    (void)loop;
    (void)revents;
    struct daemon *d = w->data;
    reap(d);
    maybe_finish_stop(d);
}

static void shutdown_all(struct daemon *d)
{
    timers_stop(d);
    stop_watching(d);
    for (size_t i = 0; i < d->ngens; i++) {
        gen_cancel_all(d->gens[i], "tikd is shutting down");
        gen_release(d->gens[i]);
    }
    d->ngens = 0;
    /* OAuth first (its callbacks stop), then the jobs and the pages still
     * waiting on it (a 503 from server_free) */
    oauth_free(d->en.oauth);
    d->en.oauth = NULL;
    pipeline_free(d->pipeline);
    d->pipeline = NULL;
    if (d->pidfile[0])
        unlink(d->pidfile);
    for (size_t i = 0; i < d->nservers; i++)
        server_free(d->servers[i]);
    d->nservers = 0;
}

static void stop_signals(struct daemon *d)
{
    ev_signal_stop(d->loop, &d->sig_term);
    ev_signal_stop(d->loop, &d->sig_int);
    ev_signal_stop(d->loop, &d->sig_hup);
    ev_signal_stop(d->loop, &d->sig_usr1);
}

static int run(struct cli *c, int argc, char **argv)
{
    (void)argv;
    if (argc > 1)
        return cli_usage_error(&cmd_run, "takes no arguments");
    struct daemon d = {.cli = c, .started_at = clock_now()};
    if (engine_open(c, &d.en, ENG_ALL))
        return 1;
    d.loop = d.en.loop;
    /* signals first: `tikd post` may send SIGUSR1 as soon as the pid file
     * exists, an operator SIGHUP at any time; the loop handles them once it
     * runs, none of them kills a starting daemon */
    ev_signal_init(&d.sig_term, on_stop, SIGTERM);
    ev_signal_init(&d.sig_int, on_stop, SIGINT);
    ev_signal_init(&d.sig_hup, on_hup, SIGHUP);
    ev_signal_init(&d.sig_usr1, on_usr1, SIGUSR1);
    d.sig_term.data = d.sig_int.data = d.sig_hup.data = d.sig_usr1.data = &d;
    ev_signal_start(d.loop, &d.sig_usr1);
    ev_signal_start(d.loop, &d.sig_term);
    ev_signal_start(d.loop, &d.sig_int);
    ev_signal_start(d.loop, &d.sig_hup);
    oauth_on_state(d.en.oauth, on_account_state, &d);
    TLOG(TLOG_INFO, "daemon.start", LSTR("data_dir", c->cfg.data_dir),
         LSTR("rules_dir", c->cfg.rules_dir), LINT("pid", getpid()),
         LSTR("vault_key", vault_key_id(d.en.vault)));
    audit(&d, "daemon.start", NULL);
    int rc = start_servers(&d);
    struct pipeline_cfg pc = {.api_url = c->cfg.api_url};
    pc.limits = c->cfg.limits;
    pc.media_public_url = c->cfg.media_public_url;
    pc.media_url_ttl = c->cfg.media_url_ttl;
    pc.check_urls = c->cfg.media_check_urls;
    struct tikd_err pe = {0};
    if (rc == 0 &&
        pipeline_new(&d.pipeline, d.loop, d.en.store, d.en.oauth, d.en.http, &pc, &pe) != 0) {
        fprintf(stderr, "tikd: %s\n", pe.msg);
        rc = 1;
    }
    if (rc == 0) {
        pipeline_on_outcome(d.pipeline, on_job_outcome, &d);
        pipeline_on_before(d.pipeline, on_before, &d);
        /* `tikd post` finds the daemon here to wake it (SIGUSR1) */
        snprintf(d.pidfile, sizeof d.pidfile, "%s/tikd.pid", c->cfg.data_dir);
        FILE *pf = fopen(d.pidfile, "w");
        if (pf) {
            fprintf(pf, "%d\n", (int)getpid());
            fclose(pf);
        }
    }
    if (rc == 0 && load_rules(&d) != 0) {
        TLOG(TLOG_ERROR, "daemon.exit", LSTR("reason", "the rules failed to load"));
        rc = 1;
    }
    /* media already waiting is offered once the rules are live */
    if (rc == 0 && (rc = start_watching(&d)) == 0 && d.intake)
        intake_scan(d.intake);
    if (rc != 0) {
        audit(&d, "daemon.stop", "reason=startup_failed");
        shutdown_all(&d);
        stop_signals(&d);
        engine_close(&d.en);
        return 1;
    }
    ev_timer_init(&d.sweep, on_sweep, 0., c->cfg.oauth_sweep_interval);
    d.sweep.data = &d;
    ev_timer_start(d.loop, &d.sweep);
    ev_prepare prep;
    ev_prepare_init(&prep, on_prepare);
    prep.data = &d;
    ev_prepare_start(d.loop, &prep);
    ev_unref(d.loop);          /* the prepare watcher alone must not keep the loop alive */
    pipeline_kick(d.pipeline); /* resume every job from its last committed state */
    TLOG(TLOG_INFO, "daemon.ready", LINT("gen", gen_id(d.gens[0])),
         LINT("port", d.nservers ? server_port(d.servers[0]) : 0));

    ev_run(d.loop, 0);

    ev_ref(d.loop);
    ev_prepare_stop(d.loop, &prep);
    ev_timer_stop(d.loop, &d.grace);
    ev_timer_stop(d.loop, &d.sweep);
    stop_signals(&d);
    shutdown_all(&d);
    audit(&d, "daemon.stop", "reason=signal");
    engine_close(&d.en);
    TLOG(TLOG_INFO, "daemon.stopped", LSTR("reason", "signal"));
    return 0;
}

const struct cli_cmd cmd_run = {
    "run", run, "run", "run the engine until SIGTERM or SIGINT (SIGHUP reloads the rules)",
    "Loads the config, opens the database and the vault, serves the OAuth callback\n"
    "(the path of tiktok.redirect_uri) and POST /webhooks/tiktok on `listen`, keeps\n"
    "tokens alive, loads the rules and runs the event loop.\n"
    "Signals: SIGHUP reloads the rules (a reload that fails keeps the running ones),\n"
    "SIGTERM and SIGINT stop after running calls finish or shutdown_grace passes.\n"};
