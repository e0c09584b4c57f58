/* daemon.c - `tikd run`: the long-running engine.
 *
 * Loads the config, opens the store, builds rule generation 1 and runs the
 * libev loop. SIGHUP builds a new generation and swaps it in only if every
 * rule file loads (a bad reload keeps the running rules); calls already
 * running finish on the generation they started in, which stays alive until
 * its last call ends. SIGTERM/SIGINT stop: running calls get shutdown_grace
 * seconds, then are cancelled. */
#include "cli.h"

#include <ev.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../core/audit.h"
#include "../core/http.h"
#include "../core/log.h"
#include "../core/store.h"

#define MAX_GENS 64

struct daemon {
    struct cli *cli;
    struct ev_loop *loop;
    struct store *store;
    struct http *http;
    struct gen *gens[MAX_GENS]; /* gens[0] is current; the rest finish their calls */
    size_t ngens;
    unsigned next_gen;
    bool stopping;
    ev_signal sig_term, sig_int, sig_hup;
    ev_timer grace;
};

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
    if (store_write(d->store, audit_txn, &a, &e) != 0)
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
    struct daemon *d = ud;
    if (r->ok)
        TLOG(TLOG_DEBUG, "rule.call_done", LSTR("rule", r->rule), LSTR("fn", r->fn));
    else
        TLOG(TLOG_WARN, "rule.call_failed", LSTR("rule", r->rule), LSTR("fn", r->fn),
             LBOOL("budget", r->budget), LSTR("error", r->error));
    (void)d;
}

static void after_calls(struct daemon *d)
{
    reap(d);
    maybe_finish_stop(d);
}

/* Call on_load of every rule that defines it, on generation g. */
static void start_on_load(struct daemon *d, struct gen *g)
{
    for (size_t i = 0; i < gen_rule_count(g); i++)
        if (gen_rule_has(g, i, "on_load"))
            gen_call(g, i, "on_load", NULL, NULL, hook_done, d);
}

/* Build generation next_gen; swap it in if it loads. */
static int load_rules(struct daemon *d)
{
    struct host_opts o = cli_host_opts(&d->cli->cfg, NULL, d->loop, d->http);
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
        gen_report_free(&rep);
        return rc;
    }
    gen_report_free(&rep);
    char names[1024] = "";
    size_t off = 0;
    for (size_t i = 0; i < gen_rule_count(g) && off < sizeof names; i++)
        off += (size_t)snprintf(names + off, sizeof names - off, "%s%s", i ? "," : "",
                                gen_rule_name(g, i));
    if (d->ngens == MAX_GENS) {
        TLOG(TLOG_ERROR, "rules.reload_failed", LINT("gen", id),
             LSTR("reason", "too many old generations still running calls"));
        gen_release(g);
        return TIKD_EFULL;
    }
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
    start_on_load(d, g);
    after_calls(d);
    return 0;
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

/* A check run on every loop iteration would be wasteful; calls finishing is
 * rare, so the daemon reaps after each loop wakeup through a prepare watcher
 * that costs one branch when there is nothing to do. */
static void on_prepare(struct ev_loop *loop, ev_prepare *w, int revents)
{
    (void)loop;
    (void)revents;
    after_calls(w->data);
}

static int run(struct cli *c, int argc, char **argv)
{
    (void)argv;
    if (argc > 1)
        return cli_usage_error(&cmd_run, "takes no arguments");
    if (cli_config(c))
        return 1;
    struct daemon d = {.cli = c};
    d.loop = ev_default_loop(EVFLAG_AUTO);
    if (!d.loop) {
        fprintf(stderr, "tikd: cannot start the event loop\n");
        return 1;
    }
    if (cli_open_store(c, false, &d.store))
        return 1;
    struct http_opts ho;
    cli_http_opts(&c->cfg, d.loop, &ho);
    struct tikd_err he = {0};
    if (http_new(&d.http, &ho, &he) != 0) {
        fprintf(stderr, "tikd: %s\n", he.msg);
        store_close(d.store);
        return 1;
    }
    TLOG(TLOG_INFO, "daemon.start", LSTR("data_dir", c->cfg.data_dir),
         LSTR("rules_dir", c->cfg.rules_dir), LINT("pid", getpid()));
    audit(&d, "daemon.start", NULL);
    if (load_rules(&d) != 0) {
        TLOG(TLOG_ERROR, "daemon.exit", LSTR("reason", "the rules failed to load"));
        audit(&d, "daemon.stop", "reason=rules_failed");
        http_free(d.http);
        store_close(d.store);
        return 1;
    }
    ev_signal_init(&d.sig_term, on_stop, SIGTERM);
    ev_signal_init(&d.sig_int, on_stop, SIGINT);
    ev_signal_init(&d.sig_hup, on_hup, SIGHUP);
    d.sig_term.data = d.sig_int.data = d.sig_hup.data = &d;
    ev_signal_start(d.loop, &d.sig_term);
    ev_signal_start(d.loop, &d.sig_int);
    ev_signal_start(d.loop, &d.sig_hup);
    ev_prepare prep;
    ev_prepare_init(&prep, on_prepare);
    prep.data = &d;
    ev_prepare_start(d.loop, &prep);
    ev_unref(d.loop); /* the prepare watcher alone must not keep the loop alive */
    TLOG(TLOG_INFO, "daemon.ready", LINT("gen", gen_id(d.gens[0])));

    ev_run(d.loop, 0);

    ev_ref(d.loop);
    ev_prepare_stop(d.loop, &prep);
    ev_timer_stop(d.loop, &d.grace);
    for (size_t i = 0; i < d.ngens; i++) {
        gen_cancel_all(d.gens[i], "tikd is shutting down");
        gen_release(d.gens[i]);
    }
    http_free(d.http);
    audit(&d, "daemon.stop", "reason=signal");
    store_close(d.store);
    TLOG(TLOG_INFO, "daemon.stopped", LSTR("reason", "signal"));
    return 0;
}

const struct cli_cmd cmd_run = {
    "run", run, "run", "run the engine until SIGTERM or SIGINT (SIGHUP reloads the rules)",
    "Loads the config, opens the database, loads the rules and runs the event loop.\n"
    "Signals: SIGHUP reloads the rules (a reload that fails keeps the running ones),\n"
    "SIGTERM and SIGINT stop after running calls finish or shutdown_grace passes.\n"};
