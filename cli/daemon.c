/* daemon.c - `tikd run`: the wiring of the long-running engine.
 *
 * Opens the engine (vault first: a missing or wrong key stops tikd before
 * anything is written), routes the HTTP server to the parts that answer
 * (OAuth callback, webhooks, served media, health), starts the pipeline, the
 * live rules (bindings/lua_rules), the media intake and the token sweep, and
 * runs the libev loop. Signals: SIGHUP reloads the rules, SIGUSR1 (from
 * `tikd post`) looks at the queue again, SIGTERM/SIGINT stop: running rule
 * calls get shutdown_grace seconds, then are cancelled. Everything that
 * decides anything lives in the parts; this file only connects them. */
#include "engine.h"
#include "api.h"
#include "compliance.h"
#include "../bindings/lua_rules.h"

#include <ev.h>
#include <openssl/rand.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../core/audit.h"
#include "../core/clock.h"
#include "../core/cluster.h"
#include "../core/replica.h"
#include "../core/intake.h"
#include "../core/log.h"
#include "../core/mediaurl.h"
#include "../core/metrics.h"
#include "../core/alert.h"
#include "../core/notify.h"
#include "../core/pipeline.h"
#include "../core/server.h"
#include "../core/webhook.h"

#define MAX_SERVERS 8

struct daemon {
    struct cli *cli;
    struct engine en;
    struct ev_loop *loop;
    struct server *servers[MAX_SERVERS];
    size_t nservers;
    struct pipeline *pipeline;
    struct rules *rules;
    struct intake *intake;
    struct api *api;
    struct compliance *compliance;
    struct notify *notify;
    struct cluster *cluster; /* cluster.redis set: the leases this node acts under */
    char replica_node[96];   /* "NODE~DB": whose jobs' cluster keys are this database's */
    bool ran;                /* the loop ran: a stop hands the accounts over */
    struct webhook_cfg webhooks;
    bool stopping;
    ev_signal sig_term, sig_int, sig_hup, sig_usr1;
    ev_timer grace, sweep;
    ev_timer commit; /* the next durable commit, store.commit_interval after the last */
    double synced_at;
    ev_prepare prep;
    uint64_t commits_told, writes_told; /* the store's counts the metrics have */
    double boot;                        /* marks the requests this process sends (rl_settle) */
    bool unsettled; /* an earlier process's requests in flight are not settled yet */
};

static int audit_txn(struct store_txn *t, void *ctx)
{
    return audit_append(t, "tikd", "daemon.start", ctx);
}

static int audit_stop_txn(struct store_txn *t, void *ctx)
{
    return audit_append(t, "tikd", "daemon.stop", ctx);
}

/* Group commit: the writes of a loop turn become durable once, at its end
 * (on_prepare), or sooner where something must not wait (an answer of
 * core/server's, a hand-off of the intake's); whoever syncs, the requests
 * held at core/http's gate go only after, and so do the log lines held
 * back since the last sync (core/log's tlog_hold). */
static void synced(void *ud, int rc, const char *why)
{
    struct daemon *d = ud;
    d->synced_at = clock_mono();
    ev_timer_stop(d->loop, &d->commit);
    uint64_t commits, writes;
    store_commit_stats(d->en.store, &commits, &writes);
    bool wrote = commits != d->commits_told; /* not an empty group, let go */
    if (wrote) {
        metrics_inc("tikd_store_commits_total", NULL, (double)(commits - d->commits_told));
        metrics_inc("tikd_store_writes_total", NULL, (double)(writes - d->writes_told));
        d->commits_told = commits;
        d->writes_told = writes;
    }
    if (rc != 0) {
        TLOG(TLOG_ERROR, "store.commit_failed", LSTR("code", tikd_strerror(rc)),
             LSTR("error", why));
        if (d->pipeline)
            pipeline_store_lost(d->pipeline, rc, why);
    } else if (wrote && d->pipeline) { /* writes are durable again */
        pipeline_store_synced(d->pipeline);
    }
    tlog_flush(); /* what the lines tell of is durable (or its loss is told) */
    http_gate_open(d->en.http, rc, why); /* what the requests it lets go log waits */
}

static int sync_now(void *ud)
{
    struct daemon *d = ud;
    return store_sync(d->en.store, NULL);
}

static bool unsynced(void *ud)
{
    return store_pending(ud);
}

/* Stopping: the last writes made durable, and every write after commits
 * at once again (the HTTP client goes before the store). */
static void ungroup(struct daemon *d)
{
    sync_now(d);
    store_on_sync(d->en.store, NULL, NULL);
    http_set_gate(d->en.http, NULL, NULL);
    store_group(d->en.store, false);
    tlog_hold(false);
}

static void kick(void *ud)
{
    struct daemon *d = ud;
    if (d->pipeline)
        pipeline_kick(d->pipeline);
}

/* An account changed state: the rules hear of it; connected again, the
 * jobs it paused are due now (core/job job_wake_account). */
static void on_account(void *ud, const struct account *a)
{
    struct daemon *d = ud;
    api_account_changed(d->api, a);
    if (a->state == ACCT_NEEDS_REAUTH)
        alert_raise("account.reauth", a->name, "%s: reconnect it (tikd account reauth %s)",
                    a->reason[0] ? a->reason : "TikTok stopped its grant", a->name);
    if (a->state == ACCT_ACTIVE && d->cluster)
        cluster_local(d->cluster, a->name); /* a new account: asked for at the next round */
    if (a->state == ACCT_ACTIVE)
        kick(d);
    if (d->rules)
        rules_on_account(d->rules, a);
}

/* ---- a cluster: this node acts only for the accounts whose lease it holds ------------ */

/* The fence this node may act under for account now, or 0. With the
 * cluster gone (shutting down) nothing is held. */
static uint64_t held(void *ud, const char *account)
{
    struct daemon *d = ud;
    return d->cluster ? cluster_fence(d->cluster, account) : 0;
}

static void on_lease(void *ud, const char *account, uint64_t fence, bool is_held)
{
    struct daemon *d = ud;
    TLOG(TLOG_INFO, is_held ? "cluster.held" : "cluster.lost", LSTR("account", account),
         LINT("fence", (long long)fence));
    if (is_held && d->pipeline)
        pipeline_held(d->pipeline); /* its jobs may go on here */
    if (!is_held)                   /* a chunk upload on the wire stops with the lease */
        http_cut_owner(d->en.http, account);
}

/* The state of an account out of this node's database and into it, as its
 * lease moves (core/replica). */
struct export_ctx {
    const char *node, *account;
    const uint64_t *prev;
    size_t nprev;
    struct replica_snap *s;
};

static int export_txn(struct store_txn *t, void *ctx)
{
    struct export_ctx *x = ctx;
    return replica_export(t, x->node, x->account, x->prev, x->nprev, x->s);
}

static int cl_export(void *ud, const char *account, const uint64_t *prev, size_t nprev,
                     struct replica_snap *s)
{
    struct daemon *d = ud;
    struct export_ctx x = {d->replica_node, account, prev, nprev, s};
    memset(s, 0, sizeof *s);
    return store_read(d->en.store, export_txn, &x, NULL);
}

struct import_ctx {
    struct daemon *d;
    const char *account;
    const struct replica_snap *s;
    struct tikd_err *e;
};

static int import_txn(struct store_txn *t, void *ctx)
{
    struct import_ctx *x = ctx;
    return replica_import(t, x->d->en.vault, x->d->replica_node, x->account, x->s, x->e);
}

static int cl_import(void *ud, const char *account, const struct replica_snap *s)
{
    struct daemon *d = ud;
    struct tikd_err e = {0};
    struct import_ctx x = {d, account, s, &e};
    int rc = store_write_durable(d->en.store, import_txn, &x, &e);
    if (rc == TIKD_ENOTFOUND)
        TLOG(TLOG_DEBUG, "cluster.no_state", LSTR("account", account));
    else if (rc != 0) { /* asked again each round; no node acts for it meanwhile */
        TLOG(TLOG_ERROR, "cluster.import_failed", LSTR("account", account),
             LSTR("error", e.msg[0] ? e.msg : tikd_strerror(rc)));
        alert_raise("cluster.import", account,
                    "this node holds %s's lease but cannot read its state from Redis: %s", account,
                    e.msg[0] ? e.msg : tikd_strerror(rc));
    }
    return rc;
}

static int offer_txn(struct store_txn *t, void *ctx)
{
    struct export_ctx *x = ctx;
    return replica_export_planned(t, x->node, x->account, x->s);
}

static int cl_offer(void *ud, const char *account, struct replica_snap *s)
{
    struct daemon *d = ud;
    struct export_ctx x = {d->replica_node, account, NULL, 0, s};
    memset(s, 0, sizeof *s);
    return store_read(d->en.store, offer_txn, &x, NULL);
}

static int take_txn(struct store_txn *t, void *ctx)
{
    struct import_ctx *x = ctx;
    return replica_import_jobs(t, x->d->replica_node, x->account, x->s->open, x->s->nopen, x->e);
}

/* Jobs another node planned for an account held here: this node's now. */
static int cl_take(void *ud, const char *account, const struct replica_snap *s)
{
    struct daemon *d = ud;
    struct tikd_err e = {0};
    struct import_ctx x = {d, account, s, &e};
    int rc = store_write_durable(d->en.store, take_txn, &x, &e);
    if (rc != 0)
        TLOG(TLOG_ERROR, "cluster.import_failed", LSTR("account", account),
             LSTR("error", e.msg[0] ? e.msg : tikd_strerror(rc)));
    else
        kick(d);
    return rc;
}

static void cl_pushed(void *ud)
{
    http_admit_retry(((struct daemon *)ud)->en.http);
}

static uint64_t admit(void *ud, struct http_admit *q)
{
    struct daemon *d = ud;
    return d->cluster ? cluster_admit(d->cluster, q->owner, q->claim, &q->full_for) : 0;
}

/* A rule plans a post for account here only while this node holds it
 * (every node runs the same rules). */
static bool plans_for(void *ud, const char *account)
{
    return held(ud, account) != 0;
}

static int want_account(const struct account *a, void *ctx)
{
    return cluster_local(ctx, a->name) != 0;
}

static int want_txn(struct store_txn *t, void *ctx)
{
    return account_foreach(t, want_account, ctx);
}

/* cluster.redis set: join the cluster and ask for every account's lease.
 * The HTTP client, the OAuth layer and the pipeline then act for an
 * account only while its lease is held (docs/cluster.md). */
/* This database's own name in cluster keys: a node's name can outlive its
 * database (rebuilt, restored), and each database numbers its jobs from 1. */
static int db_id_txn(struct store_txn *t, void *ctx)
{
    static const char key[] = "cluster.db_id";
    char *out = ctx;
    struct store_val v;
    if (store_get(t, STORE_DB_META, key, sizeof key - 1, &v) == 0 && v.n == 8) {
        memcpy(out, v.p, 8);
        out[8] = '\0';
        return 0;
    }
    unsigned char r[4];
    if (RAND_bytes(r, sizeof r) != 1)
        return TIKD_ENOMEM;
    snprintf(out, 9, "%02x%02x%02x%02x", r[0], r[1], r[2], r[3]);
    return store_put(t, STORE_DB_META, key, sizeof key - 1, out, 8);
}

static int start_cluster(struct daemon *d)
{
    const struct tikd_config *c = &d->cli->cfg;
    if (!c->cluster_redis)
        return 0;
    char db[9];
    struct tikd_err de = {0};
    if (store_write_durable(d->en.store, db_id_txn, db, &de) != 0) {
        fprintf(stderr, "tikd: cluster: %s\n", de.msg[0] ? de.msg : "cannot name this database");
        return 1;
    }
    snprintf(d->replica_node, sizeof d->replica_node, "%s~%s", c->cluster_node, db);
    struct cluster_opts o = config_cluster_opts(c);
    struct tikd_err e = {0};
    if (!(d->cluster = cluster_new(d->loop, &o, on_lease, d, &e))) {
        fprintf(stderr, "tikd: %s\n", e.msg);
        return 1;
    }
    cluster_set_data(d->cluster, &(struct cluster_data){.export = cl_export,
                                                        .import = cl_import,
                                                        .pushed = cl_pushed,
                                                        .offer = cl_offer,
                                                        .take = cl_take,
                                                        .ud = d});
    http_set_admit(d->en.http, admit, d);
    cluster_set_app_cap(d->cluster, c->limits.l[RL_ACTIVE_USERS].count,
                        c->limits.l[RL_ACTIVE_USERS].per + c->limits.guard);
    oauth_set_owner(d->en.oauth, held, d);
    pipeline_set_owner(d->pipeline, held, d);
    if (store_read(d->en.store, want_txn, d->cluster, &e) != 0) {
        fprintf(stderr, "tikd: cluster: %s\n", e.msg[0] ? e.msg : "out of memory");
        return 1;
    }
    TLOG(TLOG_INFO, "cluster.joining", LSTR("node", cluster_self(d->cluster)),
         LSTR("redis", c->cluster_redis), LDBL("lease_s", c->cluster_lease),
         LDBL("margin_s", c->cluster_margin));
    return 0;
}

/* Where every alert goes (core/alert): the rules' on_alert and the
 * notification webhooks. */
static void on_alert(void *ud, const char *kind, const char *subject, const char *detail)
{
    struct daemon *d = ud;
    if (d->rules)
        rules_on_alert(d->rules, kind, subject, detail);
    notify_enqueue(d->notify, kind, subject, detail);
}

static void on_compliance_failed(void *ud, const char *check, const char *detail)
{
    (void)ud;
    alert_raise("compliance", check, "%s", detail);
}

static void on_job_change(void *ud, const struct job *j)
{
    api_job_changed(((struct daemon *)ud)->api, j);
}

static void on_progress(void *ud, const char *account, uint64_t job, uint64_t done, uint64_t total)
{
    api_upload_progress(((struct daemon *)ud)->api, account, job, done, total);
}

/* ---- HTTP: each route goes to the part that answers it --------------------------- */

static void on_callback(void *ud, struct srv_req *r)
{
    oauth_serve_callback(((struct daemon *)ud)->en.oauth, r);
}

static void on_webhook(void *ud, struct srv_req *r)
{
    webhook_serve(&((struct daemon *)ud)->webhooks, r);
}

static void on_media(void *ud, struct srv_req *r)
{
    mediaurl_serve(((struct daemon *)ud)->en.store, r);
}

/* Not healthy while the database refuses writes (a full disk or map):
 * nothing can change until there is room, and a monitor must know. */
static void on_health(void *ud, struct srv_req *r)
{
    struct daemon *d = ud;
    const char *trouble = d->pipeline ? pipeline_trouble(d->pipeline) : NULL;
    if (!trouble) {
        srv_respond(r, 200, "text/plain", "ok\n");
        return;
    }
    char msg[400];
    snprintf(msg, sizeof msg, "the database refuses writes: %s\n", trouble);
    srv_respond(r, 503, "text/plain", msg);
}

/* The callback path is the path of the configured redirect URI, byte for
 * byte (a trailing '/' included; its query and fragment are not a path). */
static void callback_path(const char *uri, char *out, size_t n)
{
    const char *p = uri ? strstr(uri, "://") : NULL;
    p = p ? strchr(p + 3, '/') : NULL;
    if (!p) {
        snprintf(out, n, "/oauth/callback");
        return;
    }
    snprintf(out, n, "%.*s", (int)strcspn(p, "?#"), p);
}

static int start_servers(struct daemon *d)
{
    const struct tikd_config *c = &d->cli->cfg;
    d->webhooks = (struct webhook_cfg){.client_secret = c->client_secret,
                                       .client_key = c->client_key,
                                       .tolerance = c->webhook_tolerance,
                                       .store = d->en.store,
                                       .oauth = d->en.oauth,
                                       .kick = kick,
                                       .kick_ud = d};
    char cb[512];
    callback_path(c->redirect_uri, cb, sizeof cb);
    for (size_t i = 0; i < c->listen.n && i < MAX_SERVERS; i++) {
        struct tikd_err e = {0};
        struct server *s;
        struct srv_limits lim = {(unsigned)c->server_max_connections,
                                 (unsigned)c->server_max_per_ip,
                                 c->server_request_timeout,
                                 c->server_idle_timeout,
                                 0,
                                 0};
        if (server_new(&s, d->loop, c->listen.v[i], &lim, &e) != 0) {
            fprintf(stderr, "tikd: %s\n", e.msg);
            return 1;
        }
        server_set_gate(s, sync_now, d);
        server_route(s, "GET", cb, on_callback, d);
        server_route(s, "POST", "/webhooks/tiktok", on_webhook, d);
        server_route(s, "GET", "/healthz", on_health, d);
        server_route(s, "GET", "/media/*", on_media, d);
        server_route(s, "HEAD", "/media/*", on_media, d);
        d->servers[d->nservers++] = s;
    }
    return 0;
}

static unsigned api_live_gen(void *ud)
{
    struct daemon *d = ud;
    return d->rules ? rules_live_gen(d->rules) : 0;
}

static const char *api_account_tz(void *ud, const char *account)
{
    struct daemon *d = ud;
    return rules_account_tz(d->rules, account);
}

static int api_schedules(void *ud, int (*fn)(const struct schedule *s, void *ctx), void *ctx)
{
    struct daemon *d = ud;
    return rules_foreach_schedule(d->rules, fn, ctx);
}

static const char *api_trouble(void *ud)
{
    struct daemon *d = ud;
    return d->pipeline ? pipeline_trouble(d->pipeline) : NULL;
}

/* Alerts: told to the rules and, when notify.webhooks lists any, queued for
 * them (core/notify). */
static int start_alerts(struct daemon *d)
{
    const struct tikd_config *c = &d->cli->cfg;
    struct tikd_err e = {0};
    if (notify_new(&d->notify, d->loop, d->en.store, d->en.http, &c->notify_webhooks,
                   c->notify_secret, c->notify_backoff, &e) != 0) {
        fprintf(stderr, "tikd: %s\n", e.msg);
        return 1;
    }
    alert_set_sink(on_alert, d, c->notify_quiet, (int)c->notify_failures, c->notify_failure_window);
    return 0;
}

/* The admin API on its own listeners (cli/api.c). */
static int start_api(struct daemon *d)
{
    struct api_deps deps = {.cli = d->cli,
                            .store = d->en.store,
                            .oauth = d->en.oauth,
                            .cfg = &d->cli->cfg,
                            .live_gen = api_live_gen,
                            .account_tz = api_account_tz,
                            .schedules = api_schedules,
                            .trouble = api_trouble,
                            .kick = kick,
                            .gate = sync_now,
                            .ud = d};
    struct tikd_err e = {0};
    if (api_new(&d->api, d->loop, &deps, &e) != 0) {
        fprintf(stderr, "tikd: admin API: %s\n", e.msg);
        return 1;
    }
    return 0;
}

/* ---- the parts -------------------------------------------------------------------- */

/* The inits an earlier tikd left in flight were counted by TikTok before
 * this one started (see rl_settle). Until that commits they count as still
 * in flight, the safe reading: a start on a full disk goes on, holding back
 * like any write would, and the sweep tries again. */
static int settle_txn(struct store_txn *t, void *ctx)
{
    struct daemon *d = ctx;
    return rl_settle(t, clock_now(), d->boot);
}

static void settle(struct daemon *d)
{
    struct tikd_err e = {0};
    int rc = store_write_durable(d->en.store, settle_txn, d, &e);
    if (rc != 0 && !d->unsettled)
        TLOG(TLOG_WARN, "limits.settle_deferred", LSTR("code", tikd_strerror(rc)),
             LSTR("error", e.msg));
    else if (rc == 0 && d->unsettled)
        TLOG(TLOG_INFO, "limits.settled", LSTR("after", "a deferred settle"));
    d->unsettled = rc != 0;
}

static int start_pipeline(struct daemon *d)
{
    const struct tikd_config *c = &d->cli->cfg;
    struct pipeline_cfg pc = {.api_url = c->api_url,
                              .max_active = (int)c->jobs_max_active,
                              .limits = c->limits,
                              .media_public_url = c->media_public_url,
                              .media_url_ttl = c->media_url_ttl,
                              .check_urls = c->media_check_urls,
                              .post_id_wait = c->post_id_wait,
                              .unsure_wait = c->unsure_wait,
                              .probe_retry = c->media_probe_retry};
    d->boot = clock_now();
    pc.limits.boot = d->boot;
    settle(d);
    struct tikd_err e = {0};
    if (pipeline_new(&d->pipeline, d->loop, d->en.store, d->en.oauth, d->en.http, &pc, &e) != 0) {
        fprintf(stderr, "tikd: %s\n", e.msg);
        return 1;
    }
    return 0;
}

/* The rules: one set without tenants, else one per tenant, each with its
 * own rights (bindings/lua_rules routes every event to its tenant's). */
static int start_rules(struct daemon *d)
{
    const struct tikd_config *c = &d->cli->cfg;
    size_t n = c->ntenants ? c->ntenants : 1;
    struct host_opts *hosts = calloc(n, sizeof *hosts);
    if (!hosts)
        return 1;
    for (size_t i = 0; i < n; i++) {
        hosts[i] = cli_host_opts(c, c->ntenants ? &c->tenants[i] : NULL, NULL, d->loop, d->en.http,
                                 d->en.store);
        hosts[i].jobs_changed = kick;
        hosts[i].jobs_ud = d;
        if (c->cluster_redis)
            hosts[i].plans_for = plans_for;
    }
    struct rules_cfg rc = {
        .hosts = hosts,
        .nhosts = n,
        .loop = d->loop,
        .store = d->en.store,
        .started_at = clock_now(),
        .watch = c->rules_watch,
    };
    struct tikd_err e = {0};
    int rcode = rules_new(&d->rules, &rc, &e);
    free(hosts);
    if (rcode != 0) {
        fprintf(stderr, "tikd: %s\n", e.msg);
        return 1;
    }
    oauth_on_state(d->en.oauth, on_account, d);
    pipeline_on_outcome(d->pipeline, rules_on_outcome, d->rules);
    pipeline_on_change(d->pipeline, on_job_change, d);
    pipeline_on_progress(d->pipeline, on_progress, d);
    pipeline_on_before(d->pipeline, rules_before_publish, d->rules);
    /* without tenants the daemon needs its rules; with them, a tenant whose
     * rules fail to load waits for a reload that works (its posts wait too),
     * and the others run */
    if (rules_reload(d->rules) != 0 && (!c->ntenants || !rules_live_tenants(d->rules))) {
        TLOG(TLOG_ERROR, "daemon.exit", LSTR("reason", "the rules failed to load"));
        return 1;
    }
    return 0;
}

/* Media already waiting is offered once the rules are live. */
static int start_intake(struct daemon *d)
{
    const struct tikd_config *c = &d->cli->cfg;
    size_t n = c->intake_folders.n; /* every tenant's folders: each item goes to its own */
    for (size_t i = 0; i < c->ntenants; i++)
        n += c->tenants[i].intake.n;
    if (!n)
        return 0;
    struct tikd_err e = {0};
    int rc = intake_new(&d->intake, d->loop, d->en.store, c->intake_settle, rules_on_media,
                        d->rules, &e);
    for (size_t i = 0; rc == 0 && i < c->intake_folders.n; i++)
        rc = intake_add_folder(d->intake, c->intake_folders.v[i], NULL, &e);
    for (size_t k = 0; k < c->ntenants; k++)
        for (size_t i = 0; rc == 0 && i < c->tenants[k].intake.n; i++)
            rc = intake_add_folder(d->intake, c->tenants[k].intake.v[i], NULL, &e);
    if (rc != 0) {
        fprintf(stderr, "tikd: %s\n", e.msg);
        return 1;
    }
    intake_scan(d->intake);
    return 0;
}

/* ---- timers and signals ------------------------------------------------------------ */

static void maybe_finish_stop(struct daemon *d)
{
    if (d->stopping && (!d->rules || rules_live_calls(d->rules) == 0))
        ev_break(d->loop, EVBREAK_ALL);
}

static void on_sweep(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)loop;
    (void)revents;
    struct daemon *d = w->data;
    if (d->unsettled)
        settle(d);
    size_t due = oauth_sweep(d->en.oauth);
    if (due)
        TLOG(TLOG_DEBUG, "oauth.sweep", LINT("due", due));
    int dead = store_reader_check(d->en.store); /* a child run killed mid-read */
    if (dead)
        TLOG(TLOG_INFO, "store.readers_cleared", LINT("dead", dead));
}

static void on_grace(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)loop;
    (void)revents;
    struct daemon *d = w->data;
    TLOG(TLOG_WARN, "daemon.grace_expired", LINT("cancelled", rules_live_calls(d->rules)));
    rules_cancel_all(d->rules, "tikd is shutting down");
    ev_break(d->loop, EVBREAK_ALL);
}

static void on_stop(struct ev_loop *loop, ev_signal *w, int revents)
{
    (void)revents;
    struct daemon *d = w->data;
    if (d->stopping)
        return;
    d->stopping = true;
    /* no job starts a step from now on (the rules would not be asked its
     * before_publish): each resumes from its committed state at the next start */
    pipeline_stop(d->pipeline);
    rules_stop(d->rules);
    TLOG(TLOG_INFO, "daemon.stopping", LSTR("signal", w->signum == SIGINT ? "INT" : "TERM"),
         LINT("running_calls", rules_live_calls(d->rules)),
         LDBL("grace_s", d->cli->cfg.shutdown_grace));
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
    rules_reload(d->rules);
}

static void on_usr1(struct ev_loop *loop, ev_signal *w, int revents)
{
    (void)loop;
    (void)revents;
    TLOG(TLOG_DEBUG, "jobs.kick", LSTR("by", "SIGUSR1"));
    struct daemon *d = w->data;
    if (d->cluster) /* an account connected by a command: this node has it now */
        store_read(d->en.store, want_txn, d->cluster, NULL);
    kick(d);
}

/* Calls end rarely; checking after each loop wakeup costs one branch. */
static void on_prepare(struct ev_loop *loop, ev_prepare *w, int revents)
{
    (void)loop;
    (void)revents;
    struct daemon *d = w->data;
    if (d->rules)
        rules_reap(d->rules);
    if (store_pending(d->en.store)) {
        /* a busy daemon's turns share a commit: the next is due one
         * commit_interval after the last (what waits for it waits that
         * long at most; the monotonic clock, which no clock step moves) */
        double gap = d->cli->cfg.commit_interval;
        double wait = d->synced_at + gap - clock_mono();
        if (wait <= 0 || d->stopping) {
            /* a failed sync's hook may write again (held requests ending
             * unsent): those go too, a few rounds at most, then after a gap */
            for (int i = 0; i < 4 && store_pending(d->en.store); i++)
                sync_now(d);
            wait = gap;
        }
        if (store_pending(d->en.store) && !ev_is_active(&d->commit)) {
            ev_timer_set(&d->commit, wait < gap ? wait : gap, 0.);
            ev_timer_start(d->loop, &d->commit);
        }
    }
    if (!store_pending(d->en.store))
        tlog_flush(); /* the turn's lines that told of no write */
    maybe_finish_stop(d);
}

static void on_commit(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)loop;
    (void)revents;
    sync_now(w->data);
}

static void signals(struct daemon *d, bool start)
{
    ev_signal *sigs[] = {&d->sig_usr1, &d->sig_term, &d->sig_int, &d->sig_hup};
    for (size_t i = 0; i < sizeof sigs / sizeof sigs[0]; i++)
        if (start)
            ev_signal_start(d->loop, sigs[i]);
        else
            ev_signal_stop(d->loop, sigs[i]);
}

/* In the order that keeps every callback's target alive: no request is
 * answered once the servers go (those waiting get a 503); rule calls are
 * cancelled; the OAuth layer goes before the pipeline its answers feed. */
static void shutdown_all(struct daemon *d)
{
    alert_set_sink(NULL, NULL, d->cli->cfg.notify_quiet, (int)d->cli->cfg.notify_failures,
                   d->cli->cfg.notify_failure_window);
    ev_prepare_stop(d->loop, &d->prep);
    ev_timer_stop(d->loop, &d->grace);
    ev_timer_stop(d->loop, &d->sweep);
    ev_timer_stop(d->loop, &d->commit);
    signals(d, false);
    intake_free(d->intake);
    d->intake = NULL;
    if (d->pipeline)
        pipeline_stop(d->pipeline);
    for (size_t i = 0; i < d->nservers; i++)
        server_free(d->servers[i]);
    d->nservers = 0;
    api_free(d->api);
    d->api = NULL;
    compliance_free(d->compliance);
    d->compliance = NULL;
    notify_free(d->notify);
    d->notify = NULL;
    rules_free(d->rules);
    d->rules = NULL;
    oauth_free(d->en.oauth);
    d->en.oauth = NULL;
    pipeline_free(d->pipeline);
    d->pipeline = NULL;
    if (d->cluster && d->ran) { /* nothing acts now: the accounts go to the others at once */
        sync_now(d);            /* what it hands over is durable here too */
        cluster_stop(d->cluster, 2.0);
    }
    cluster_free(d->cluster); /* last: from here on, no account is held (held()) */
    d->cluster = NULL;
}

static int run(struct cli *c, int argc, char **argv)
{
    (void)argv;
    if (argc > 1)
        return cli_usage_error(&cmd_run, "takes no arguments");
    struct daemon d = {.cli = c};
    /* One daemon per data directory (engine_open takes the lock once the
     * key has loaded, before the database opens): a second would post the
     * same jobs. The pid in the lock file is how `tikd post` finds the
     * daemon to wake; it may wake it as soon as the pid is there, so SIGUSR1
     * and SIGHUP are ignored until the loop takes them (the loop looks at
     * the queue and loads the rules when it starts anyway). */
    signal(SIGUSR1, SIG_IGN);
    signal(SIGHUP, SIG_IGN);
    if (engine_open(c, &d.en, ENG_ALL | ENG_DAEMON))
        return 1;
    d.loop = d.en.loop;
    store_group(d.en.store, true);
    store_on_sync(d.en.store, synced, &d);
    http_set_gate(d.en.http, unsynced, d.en.store);
    tlog_hold(true); /* a line goes once what it tells of is durable */
    /* the loop takes SIGUSR1 (from `tikd post`) and SIGHUP (an operator's)
     * once it runs; none of them kills a starting daemon */
    ev_signal_init(&d.sig_term, on_stop, SIGTERM);
    ev_signal_init(&d.sig_int, on_stop, SIGINT);
    ev_signal_init(&d.sig_hup, on_hup, SIGHUP);
    ev_signal_init(&d.sig_usr1, on_usr1, SIGUSR1);
    d.sig_term.data = d.sig_int.data = d.sig_hup.data = d.sig_usr1.data = &d;
    signals(&d, true);
    ev_init(&d.grace, on_grace);
    ev_init(&d.commit, on_commit);
    d.commit.data = &d;
    ev_timer_init(&d.sweep, on_sweep, 0., c->cfg.oauth_sweep_interval);
    d.sweep.data = &d;
    ev_prepare_init(&d.prep, on_prepare);
    ev_set_priority(&d.prep, EV_MINPRI); /* after any other prepare: the turn's last write */
    d.prep.data = &d;
    TLOG(TLOG_INFO, "daemon.start", LSTR("data_dir", c->cfg.data_dir),
         LSTR("rules_dir", c->cfg.rules_dir), LINT("pid", getpid()),
         LSTR("vault_key", vault_key_id(d.en.vault)));
    store_write(d.en.store, audit_txn, NULL, NULL);
    int rc = start_servers(&d) || start_alerts(&d) || start_pipeline(&d) || start_cluster(&d) ||
             start_rules(&d) || start_api(&d) || start_intake(&d);
    if (rc != 0) {
        store_write(d.en.store, audit_stop_txn, "reason=startup_failed", NULL);
        shutdown_all(&d);
        ungroup(&d);
        engine_close(&d.en);
        return 1;
    }
    ev_timer_start(d.loop, &d.sweep);
    ev_prepare_start(d.loop, &d.prep);
    d.compliance = compliance_start(d.loop, c, on_compliance_failed, &d);
    ev_unref(d.loop);          /* the prepare watcher alone must not keep the loop alive */
    pipeline_kick(d.pipeline); /* resume every job from its last committed state */
    sync_now(&d);              /* what start-up wrote is durable before it says ready */
    TLOG(TLOG_INFO, "daemon.ready", LINT("gen", rules_live_gen(d.rules)),
         LINT("port", d.nservers ? server_port(d.servers[0]) : 0),
         LINT("admin_port", api_port(d.api)));

    ev_run(d.loop, 0);

    ev_ref(d.loop);
    d.ran = true; /* a stop after work: its accounts are handed over */
    shutdown_all(&d);
    store_write(d.en.store, audit_stop_txn, "reason=signal", NULL);
    ungroup(&d);
    engine_close(&d.en);
    TLOG(TLOG_INFO, "daemon.stopped", LSTR("reason", "signal"));
    return 0;
}

const struct cli_cmd cmd_run = {
    "run", run, "run", "run the engine until SIGTERM or SIGINT (SIGHUP reloads the rules)",
    "Loads the config, opens the database and the vault, serves the OAuth callback\n"
    "(the path of tiktok.redirect_uri), POST /webhooks/tiktok and the media TikTok\n"
    "pulls on `listen`, keeps tokens alive, loads the rules and runs the event loop.\n"
    "Signals: SIGHUP reloads the rules (a reload that fails keeps the running ones),\n"
    "SIGTERM and SIGINT stop after running calls finish or shutdown_grace passes.\n"};
