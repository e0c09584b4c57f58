/* cmd_rules.c - `tikd rules check [DIR]`: build a generation exactly as the
 * daemon would (same sandbox, same budgets) and report every error with
 * file:line. Nothing is written anywhere.
 *
 * `tikd rules test [DIR|FILE]`: run the rule tests (*_test.lua next to the
 * rules). Each test_* function runs in a generation of its own, built from
 * the rules plus the test file in test mode (tikd.test), on a fresh
 * temporary database and the fake clock at 2026-01-01 00:00 UTC; nothing
 * outside the temporary folder is touched, and nothing is sent. */
#include "cli.h"

#include "../bindings/lua_schedule.h"
#include "../core/clock.h"
#include "../core/store.h"

#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define TEST_EPOCH 1767225600.0 /* 2026-01-01T00:00:00Z, where each test's clock starts */

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
               a->tz[0] ? a->tz : "UTC", a->privacy[0] ? a->privacy : "(per post)", a->daily_max);
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

/* Check the rules of tenant t (NULL: none) in dir (NULL: its rules_dir). */
static int check_one(struct cli *c, const struct tenant_cfg *t, const char *dir, struct store *st)
{
    if (t)
        printf("tenant %s:\n", t->name);
    struct host_opts o = cli_host_opts(&c->cfg, t, dir, NULL, NULL, st);
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
        return 1;
    }
    for (size_t i = 0; i < gen_rule_count(g); i++)
        printf("%s: ok\n", gen_rule_name(g, i));
    print_decls(decls_of_gen(g), st);
    printf("%zu rule files checked in %s: all ok\n", rep.nfiles, o.rules_dir);
    gen_report_free(&rep);
    gen_release(g);
    return 0;
}

static int rules_check(struct cli *c, int argc, char **argv)
{
    const struct tenant_cfg *t;
    if (cli_take_tenant(c, &cmd_rules, &argc, argv, &t))
        return 1;
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
    int rc = 0;
    if (t || dir || !c->cfg.ntenants) {
        rc = check_one(c, t ? t : dir ? cli_tenant_of_dir(&c->cfg, dir) : NULL, dir, st);
    } else { /* every tenant, each with its own rights */
        for (size_t i = 0; i < c->cfg.ntenants; i++)
            rc |= check_one(c, &c->cfg.tenants[i], NULL, st);
    }
    if (st)
        store_close(st);
    return rc;
}

/* ---- rules test ------------------------------------------------------------------------ */

static int cmp_path(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* "rules/a_test.lua" for /x/y/rules/a_test.lua, as messages name files. */
static void sandbox_name(const char *path, char *out, size_t n)
{
    const char *slash = strrchr(path, '/'), *start = path;
    if (slash) {
        start = slash;
        while (start > path && start[-1] != '/')
            start--;
    }
    snprintf(out, n, "%s", start);
}

struct test_fn {
    char name[64];
    int line;
};

struct test_list {
    struct test_fn *v;
    size_t n;
    bool oom;
};

static void collect_test(void *ud, const char *name, int line)
{
    struct test_list *l = ud;
    struct test_fn *nv =
        strlen(name) < sizeof nv->name ? realloc(l->v, (l->n + 1) * sizeof *nv) : NULL;
    if (!nv) {
        l->oom = true;
        return;
    }
    l->v = nv;
    snprintf(nv[l->n].name, sizeof nv[l->n].name, "%s", name);
    nv[l->n++].line = line;
}

static int cmp_tests(const void *a, const void *b)
{
    const struct test_fn *x = a, *y = b;
    return x->line != y->line ? (x->line < y->line ? -1 : 1) : strcmp(x->name, y->name);
}

/* One test's world: a temporary folder with a fresh database and a media
 * folder (a media root while the test runs), and the generation. */
struct world {
    char tmp[PATH_MAX];
    struct store *st;
    struct gen *g;
};

static void world_end(struct world *w)
{
    if (w->g) {
        gen_cancel_all(w->g, "the test is over");
        gen_release(w->g);
    }
    store_close(w->st);
    cli_rmtree(w->tmp);
    memset(w, 0, sizeof *w);
}

/* Build the world for the tests of `file` (rules from dir). Load errors are
 * printed; returns 0 or 1. */
static int world_new(struct cli *c, const struct tenant_cfg *t, const char *dir, const char *file,
                     struct world *w)
{
    memset(w, 0, sizeof *w);
    if (cli_tmpdir("test", w->tmp, sizeof w->tmp))
        return 1;
    char db[PATH_MAX + 8], media[PATH_MAX + 8];
    snprintf(db, sizeof db, "%s/db", w->tmp);
    snprintf(media, sizeof media, "%s/media", w->tmp);
    struct store_opts so = {db, c->cfg.map_initial, c->cfg.map_max, false};
    struct tikd_err e = {0};
    if (mkdir(media, 0700) != 0 || store_open(&w->st, &so, &e) != 0) {
        fprintf(stderr, "tikd rules test: %s\n", e.msg[0] ? e.msg : strerror(errno));
        world_end(w);
        return 1;
    }
    clock_set_virtual(TEST_EPOCH);
    struct host_opts o = cli_host_opts(&c->cfg, t, dir, NULL, NULL, w->st);
    size_t nroots = o.nroots;
    const char **roots = calloc(nroots + 1, sizeof *roots);
    if (!roots) {
        world_end(w);
        return 1;
    }
    for (size_t i = 0; i < nroots; i++)
        roots[i] = o.media_roots[i];
    roots[nroots] = media;
    o.media_roots = roots;
    o.nroots = nroots + 1;
    o.extra_files = &file;
    o.nextra = 1;
    o.test = true;
    o.test_dir = w->tmp;
    struct gen_report rep = {0};
    int rc = gen_build(&o, 0, &w->g, &rep, &e);
    free(roots);
    if (rc != 0) {
        for (size_t i = 0; i < rep.nerrors; i++)
            printf("  FAIL (load) %s\n", rep.errors[i]);
        if (!rep.nerrors)
            printf("  FAIL (load) %s\n", e.msg);
        gen_report_free(&rep);
        w->g = NULL;
        world_end(w);
        return 1;
    }
    gen_report_free(&rep);
    return 0;
}

struct outcome {
    bool done, ok;
    char err[1024];
};

static void test_done(void *ud, const struct call_result *r)
{
    struct outcome *out = ud;
    out->done = true;
    out->ok = r->ok;
    if (!r->ok)
        snprintf(out->err, sizeof out->err, "%s", r->error);
}

/* Run the tests of one file; adds to *passed and *failed. */
static void test_file(struct cli *c, const struct tenant_cfg *t, const char *dir, const char *file,
                      int *passed, int *failed)
{
    struct world w;
    char shown[300];
    sandbox_name(file, shown, sizeof shown);
    printf("%s\n", shown);
    if (world_new(c, t, dir, file, &w) != 0) {
        (*failed)++;
        return;
    }
    size_t idx = gen_rule_count(w.g) - 1; /* the test file is loaded last */
    struct test_list tl = {0};
    gen_rule_functions(w.g, idx, "test_", collect_test, &tl);
    world_end(&w);
    if (tl.oom) {
        printf("  FAIL out of memory\n");
        (*failed)++;
    } else if (!tl.n) {
        printf("  (no test_* functions)\n");
    }
    if (tl.n)
        qsort(tl.v, tl.n, sizeof *tl.v, cmp_tests);
    for (size_t i = 0; !tl.oom && i < tl.n; i++) {
        if (world_new(c, t, dir, file, &w) != 0) {
            (*failed)++;
            continue;
        }
        struct outcome out = {0};
        int rc = gen_call(w.g, idx, tl.v[i].name, NULL, NULL, test_done, &out);
        if (rc == 0 && !out.done) /* a test cannot wait without a loop; be sure */
            gen_cancel_all(w.g, "a test cannot wait");
        if (rc != 0)
            snprintf(out.err, sizeof out.err, "%s: cannot call %s", shown, tl.v[i].name);
        if (rc == 0 && out.ok) {
            printf("  ok   %s\n", tl.v[i].name);
            (*passed)++;
        } else {
            printf("  FAIL %s: %s\n", tl.v[i].name, out.err);
            (*failed)++;
        }
        fflush(stdout);
        world_end(&w);
    }
    free(tl.v);
}

static bool is_test_file(const char *n)
{
    size_t l = strlen(n);
    return n[0] != '.' && l > 9 && strcmp(n + l - 9, "_test.lua") == 0;
}

/* The tests in arg (a folder, or one test file) as tenant t's rules. */
static int test_dir(struct cli *c, const struct tenant_cfg *t, const char *arg, int *passed,
                    int *failed, size_t *nfiles);

static int rules_test(struct cli *c, int argc, char **argv)
{
    const struct tenant_cfg *t;
    if (cli_take_tenant(c, &cmd_rules, &argc, argv, &t))
        return 1;
    if (argc > 3)
        return cli_usage_error(&cmd_rules, "too many arguments");
    if (cli_config(c))
        return 1;
    int passed = 0, failed = 0, rc = 0;
    size_t n = 0;
    if (t || argc > 2 || !c->cfg.ntenants) {
        const char *arg = argc > 2 ? argv[2] : t ? t->rules_dir : c->cfg.rules_dir;
        if (!t && argc > 2) {
            char dir[PATH_MAX];
            snprintf(dir, sizeof dir, "%s", arg);
            struct stat st;
            if (stat(dir, &st) == 0 && S_ISREG(st.st_mode) && strrchr(dir, '/'))
                *strrchr(dir, '/') = '\0';
            t = cli_tenant_of_dir(&c->cfg, dir);
        }
        rc = test_dir(c, t, arg, &passed, &failed, &n);
    } else {
        for (size_t i = 0; i < c->cfg.ntenants && rc == 0; i++) {
            printf("tenant %s:\n", c->cfg.tenants[i].name);
            rc = test_dir(c, &c->cfg.tenants[i], c->cfg.tenants[i].rules_dir, &passed, &failed, &n);
        }
    }
    clock_set_source(NULL);
    if (rc != 0)
        return rc;
    if (n)
        printf("%d test%s in %zu file%s: %d passed, %d failed\n", passed + failed,
               passed + failed == 1 ? "" : "s", n, n == 1 ? "" : "s", passed, failed);
    return failed ? 1 : 0;
}

static int test_dir(struct cli *c, const struct tenant_cfg *t, const char *arg, int *passed,
                    int *failed, size_t *nfiles)
{
    char dir[PATH_MAX], only[PATH_MAX] = "";
    struct stat st;
    if (!realpath(arg, dir) || stat(dir, &st) != 0) {
        fprintf(stderr, "tikd rules test: %s: %s\n", arg, strerror(errno));
        return 1;
    }
    if (S_ISREG(st.st_mode)) { /* one test file: its folder holds the rules */
        char *slash = strrchr(dir, '/');
        snprintf(only, sizeof only, "%s", slash + 1);
        *slash = '\0';
        if (!is_test_file(only))
            return cli_usage_error(&cmd_rules, "%s is not a *_test.lua file", arg);
    }
    DIR *d = opendir(dir);
    if (!d) {
        fprintf(stderr, "tikd rules test: %s: %s\n", dir, strerror(errno));
        return 1;
    }
    char **files = NULL;
    size_t n = 0;
    struct dirent *de;
    while ((de = readdir(d))) {
        if (!is_test_file(de->d_name) || (only[0] && strcmp(only, de->d_name) != 0))
            continue;
        char **nf = realloc(files, (n + 1) * sizeof *nf);
        if (!nf)
            break;
        files = nf;
        if ((files[n] = malloc(strlen(dir) + strlen(de->d_name) + 2)))
            sprintf(files[n++], "%s/%s", dir, de->d_name);
    }
    closedir(d);
    if (n)
        qsort(files, n, sizeof *files, cmp_path);
    for (size_t i = 0; i < n; i++) {
        test_file(c, t, dir, files[i], passed, failed);
        free(files[i]);
    }
    free(files);
    if (!n)
        printf("no *_test.lua files in %s\n", dir);
    *nfiles += n;
    return 0;
}

static int run_rules(struct cli *c, int argc, char **argv)
{
    if (argc < 2)
        return cli_usage_error(&cmd_rules, "expected a subcommand: check or test");
    if (strcmp(argv[1], "check") == 0)
        return rules_check(c, argc, argv);
    if (strcmp(argv[1], "test") == 0)
        return rules_test(c, argc, argv);
    return cli_unknown(&cmd_rules, "subcommand", argv[1]);
}

const struct cli_cmd cmd_rules = {
    "rules", run_rules, "rules check [DIR] [--tenant T] | test [DIR] [--tenant T]",
    "load every rule file and report errors; run the rule tests",
    "rules check [DIR]: builds a rule generation from DIR (default: the config's\n"
    "rules_dir) in the same sandbox and with the same budgets as `tikd run`, and prints\n"
    "each error as file:line: message. Exit status 0 only when every rule file loads.\n"
    "rules test [DIR|FILE]: runs the rule tests, the *_test.lua files in DIR (or one\n"
    "test file). Each global function test_* of a test file runs, in the order of the\n"
    "file, with the rules loaded beside it, require \"tikd.test\" available, a fresh\n"
    "temporary database and a fake clock at 2026-01-01 00:00 UTC. Prints ok or\n"
    "FAIL name: file:line: message per test; exit status 1 when any test fails.\n"
    "With tenants, each tenant's rules are checked and tested in its own folder with its\n"
    "own rights (or only tenant T's with --tenant T).\n"
    "See docs/rules.md, \"Trying rules before they go live\".\n"};
