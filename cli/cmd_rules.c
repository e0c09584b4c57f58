/* cmd_rules.c - `tikd rules check [DIR]`: build a generation exactly as the
 * daemon would (same sandbox, same budgets) and report every error with
 * file:line. Nothing is written anywhere. */
#include "cli.h"

#include <stdio.h>
#include <string.h>

static int rules_check(struct cli *c, int argc, char **argv)
{
    const char *dir = argc > 2 ? argv[2] : NULL;
    if (argc > 3)
        return cli_usage_error(&cmd_rules, "too many arguments");
    if (cli_config(c))
        return 1;
    struct host_opts o = cli_host_opts(&c->cfg, dir, NULL, NULL, NULL);
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
    printf("%zu rule files checked in %s: all ok\n", rep.nfiles, o.rules_dir);
    gen_report_free(&rep);
    gen_release(g);
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
