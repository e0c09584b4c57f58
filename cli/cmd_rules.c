/* cmd_rules.c - `tikd rules check [DIR]`: build a generation exactly as the
 * daemon would (same sandbox, same budgets) and report every error with
 * file:line. Nothing is written anywhere. */
#include "cli.h"

#include "../bindings/lua_schedule.h"
#include "../core/clock.h"
#include "../core/store.h"

#include <stdio.h>
#include <string.h>

struct next_ctx {
    const struct schedule *s;
    double slot, due;
    struct tikd_err e;
};

static int next_txn(struct store_txn *t, void *ctx)
{
    struct next_ctx *n = ctx;
    return slots_next_free(t, n->s, clock_now(), &n->slot, &n->due, &n->e);
}

/* What the rules declared, and where each schedule's next post would go. */
static void print_decls(const struct decls *d, struct store *st)
{
    for (size_t i = 0; i < d->naccounts; i++) {
        const struct acct_decl *a = &d->accounts[i];
        printf("account %s (%s): tz %s, privacy %s, daily max %d\n", a->name, a->rule,
               a->tz[0] ? a->tz : "UTC", a->privacy[0] ? a->privacy : "(per post)",
               a->daily_max);
    }
    for (size_t i = 0; i < d->nscheds; i++) {
        const struct schedule *s = &d->scheds[i];
        char next[40] = "(no database to look at)";
        struct next_ctx n = {s, 0, 0, {0}};
        if (st && store_read(st, next_txn, &n, NULL) == 0)
            cli_fmt_time(n.slot, next, sizeof next);
        else if (st)
            snprintf(next, sizeof next, "none free");
        printf("schedule %s: account %s, %d slots in %s, %d blackouts, next free slot %s\n",
               s->name, s->account, s->nslots, s->tz[0] ? s->tz : "UTC", s->nblackout, next);
    }
    for (size_t i = 0; i < d->ntimers; i++) {
        const struct timer_decl *t = &d->timers[i];
        if (t->every > 0)
            printf("timer %s:%s every %g s\n", t->rule, t->fn, t->every);
        else
            printf("timer %s:%s at \"%s\"%s%s\n", t->rule, t->fn, t->cron.expr,
                   t->tz[0] ? " in " : "", t->tz);
    }
}

static int rules_check(struct cli *c, int argc, char **argv)
{
    const char *dir = argc > 2 ? argv[2] : NULL;
    if (argc > 3)
        return cli_usage_error(&cmd_rules, "too many arguments");
    if (cli_config(c))
        return 1;
    /* the database, if there is one, read-only: accounts a schedule names
     * must exist; nothing is written */
    struct store *st = NULL;
    struct store_opts so = {c->cfg.data_dir, c->cfg.map_initial, c->cfg.map_max, true};
    if (store_open(&st, &so, NULL) != 0)
        st = NULL;
    struct host_opts o = cli_host_opts(&c->cfg, dir, NULL, NULL, st);
    struct gen *g = NULL;
    struct gen_report rep = {0};
    struct tikd_err e = {0};
    int rc = gen_build(&o, 0, &g, &rep, &e);
    for (size_t i = 0; i < rep.nerrors; i++)
        fprintf(stderr, "%s\n", rep.errors[i]);
    if (rc != 0) {
        if (rep.nerrors == 0)
            fprintf(stderr, "%s\n", e.msg);
        printf("%zu rule files checked in %s: %zu failed\n", rep.nfiles, o.rules_dir, rep.nerrors);
        gen_report_free(&rep);
        if (st)
            store_close(st);
        return 1;
    }
    for (size_t i = 0; i < gen_rule_count(g); i++)
        printf("%s: ok\n", gen_rule_name(g, i));
    print_decls(decls_of_gen(g), st);
    printf("%zu rule files checked in %s: all ok\n", rep.nfiles, o.rules_dir);
    gen_report_free(&rep);
    gen_release(g);
    if (st)
        store_close(st);
    return 0;
}

static int run_rules(struct cli *c, int argc, char **argv)
{
    if (argc < 2)
        return cli_usage_error(&cmd_rules, "expected a subcommand: check");
    if (strcmp(argv[1], "check") == 0)
        return rules_check(c, argc, argv);
    return cli_usage_error(&cmd_rules, "unknown subcommand '%s'", argv[1]);
}

const struct cli_cmd cmd_rules = {
    "rules", run_rules, "rules check [DIR]",
    "load every rule file in the sandbox and report errors",
    "Builds a rule generation from DIR (default: the config's rules_dir) in the same\n"
    "sandbox and with the same budgets as `tikd run`, and prints each error as\n"
    "file:line: message. Exit status 0 only when every rule file loads.\n"};
