/* cmd_admin.c - `tikd admin token ...`: the admin API's bearer tokens.
 * Written to the database directly, so they work the same whether a daemon
 * runs (it looks tokens up at each request) or not. A token is printed
 * once, when created, and never again: the database keeps its hash. */
#include "engine.h"
#include "views.h"

#include <jansson.h>
#include <openssl/crypto.h>
#include <stdio.h>
#include <string.h>

#include "../core/admin.h"
#include "../core/clock.h"

struct tok_ctx {
    const char *name, *tenant;
    enum admin_role role;
    char token[ADMIN_TOKEN_LEN + 1];
    struct tikd_err *e;
};

static int create_txn(struct store_txn *t, void *ctx)
{
    struct tok_ctx *x = ctx;
    return admin_token_create(t, x->name, x->role, x->tenant, "operator", x->token, x->e);
}

static int revoke_txn(struct store_txn *t, void *ctx)
{
    struct tok_ctx *x = ctx;
    return admin_token_revoke(t, x->name, "operator", x->e);
}

struct list_ctx {
    bool json;
    json_t *arr;
    int n;
};

static int list_one(const struct admin_token *k, void *ctx)
{
    struct list_ctx *l = ctx;
    l->n++;
    if (l->json)
        return json_array_append_new(l->arr, view_token(k));
    char created[32], used[32];
    cli_fmt_time(k->created_at, created, sizeof created);
    cli_fmt_time(k->last_used, used, sizeof used);
    printf("%-24s %-9s %-21s %-21s %s\n", k->name, admin_role_name(k->role), created,
           k->last_used > 0 ? used : "never", k->tenant[0] ? k->tenant : "-");
    return 0;
}

static int list_txn(struct store_txn *t, void *ctx)
{
    return admin_token_foreach(t, list_one, ctx);
}

static int token_list(struct cli *c, bool json)
{
    struct store *s;
    if (cli_open_store(c, true, &s))
        return 1;
    struct list_ctx l = {.json = json, .arr = json ? json_array() : NULL};
    if (!json)
        printf("%-24s %-9s %-21s %-21s %s\n", "NAME", "ROLE", "CREATED", "LAST USED", "TENANT");
    int rc = store_read(s, list_txn, &l, NULL);
    store_close(s);
    if (rc != 0) {
        json_decref(l.arr);
        fprintf(stderr, "tikd admin: cannot read the database\n");
        return 1;
    }
    if (json) {
        char *out = json_dumps(l.arr, JSON_INDENT(2));
        printf("%s\n", out ? out : "[]");
        free(out);
        json_decref(l.arr);
    }
    return 0;
}

static int run_admin(struct cli *c, int argc, char **argv)
{
    if (argc < 3 || strcmp(argv[1], "token") != 0)
        return cli_usage_error(&cmd_admin, "expected: admin token create|list|revoke ...");
    const char *verb = argv[2];
    if (strcmp(verb, "list") == 0) {
        bool json = argc == 4 && strcmp(argv[3], "--json") == 0;
        if (argc > 4 || (argc == 4 && !json))
            return cli_usage_error(&cmd_admin, "admin token list takes only --json");
        if (cli_config(c))
            return 1;
        return token_list(c, json);
    }
    struct tikd_err e = {0};
    struct tok_ctx x = {.e = &e};
    int (*txn)(struct store_txn *, void *);
    if (strcmp(verb, "create") == 0) {
        for (int i = 3; i < argc; i++) {
            if (strcmp(argv[i], "--role") == 0 && i + 1 < argc) {
                if ((x.role = admin_role_parse(argv[++i])) == ROLE_NONE)
                    return cli_usage_error(
                        &cmd_admin, "'%s' is not a role: viewer, operator or admin", argv[i]);
            } else if (strcmp(argv[i], "--tenant") == 0 && i + 1 < argc) {
                x.tenant = argv[++i];
                if (cli_config(c))
                    return 1;
                if (!config_tenant(&c->cfg, x.tenant))
                    return cli_usage_error(&cmd_admin, "no tenant named '%s' in the config",
                                           x.tenant);
            } else if (argv[i][0] == '-') {
                return cli_unknown(&cmd_admin, "option", argv[i]);
            } else if (x.name) {
                return cli_usage_error(&cmd_admin, "unexpected argument '%s'", argv[i]);
            } else {
                x.name = argv[i];
            }
        }
        if (!x.name || x.role == ROLE_NONE)
            return cli_usage_error(
                &cmd_admin, "expected: admin token create NAME --role viewer|operator|admin");
        txn = create_txn;
    } else if (strcmp(verb, "revoke") == 0) {
        if (argc != 4 || argv[3][0] == '-')
            return cli_usage_error(&cmd_admin, "expected: admin token revoke NAME");
        x.name = argv[3];
        txn = revoke_txn;
    } else {
        return cli_unknown(&cmd_admin, "subcommand", verb);
    }
    struct engine en;
    if (engine_open(c, &en, ENG_STORE))
        return 1;
    int rc = store_write(en.store, txn, &x, &e);
    engine_close(&en);
    if (rc != 0) {
        fprintf(stderr, "tikd admin: %s\n", e.msg[0] ? e.msg : tikd_strerror(rc));
        return 1;
    }
    if (txn == create_txn) {
        printf("created token %s (%s); it is shown this once, keep it:\n%s\n", x.name,
               admin_role_name(x.role), x.token);
        OPENSSL_cleanse(x.token, sizeof x.token);
    } else {
        printf("revoked token %s\n", x.name);
    }
    return 0;
}

const struct cli_cmd cmd_admin = {
    "admin", run_admin,
    "admin token create NAME --role ROLE [--tenant T] | list [--json] | revoke NAME",
    "bearer tokens of the admin API and dashboard",
    "  admin token create NAME --role viewer|operator|admin\n"
    "                  a new token, printed this once (tikd keeps only its SHA-256)\n"
    "                  viewer: reads; operator: also approves, rejects, cancels, retries;\n"
    "                  admin: also manages tokens\n"
    "  admin token list [--json]   names, roles, when created and last used\n"
    "  admin token revoke NAME     the token stops working at once\n"
    "The admin API listens on admin.sock in the data directory (this user only) and on\n"
    "admin.listen; see docs/api.md.\n"};
