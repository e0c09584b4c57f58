/* cmd_account.c - `tikd account ...` and `tikd vault ...`: connecting,
 * listing and removing accounts, and managing the vault's keys. No command
 * prints a token: only names, ids, scopes, states and expiry times. */
#include "engine.h"
#include "views.h"

#include <ev.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../core/audit.h"
#include "../core/clock.h"
#include "../core/post.h"
#include "../core/tiktok.h"
#include "../core/log.h"

struct result {
    int done, rc;
    char msg[800];
};

static void on_done(void *ud, int rc, const char *account, const char *msg)
{
    (void)account;
    struct result *r = ud;
    r->done = 1;
    r->rc = rc;
    snprintf(r->msg, sizeof r->msg, "%s", msg ? msg : "");
}

/* Finish an OAuth operation started with code rc: wait for it and print
 * its message; returns its outcome. */
static int wait_op(struct engine *en, int rc, const struct tikd_err *e, struct result *r)
{
    if (rc != 0) {
        fprintf(stderr, "tikd: %s\n", e->msg);
        return rc;
    }
    engine_wait(en, &r->done);
    fprintf(r->rc ? stderr : stdout, "%s%s\n", r->rc ? "tikd: " : "", r->msg);
    return r->rc;
}

static int begin(struct cli *c, int argc, char **argv, bool reauth)
{
    const char *name = NULL, *scopes = NULL, *tenant = NULL;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--scopes") == 0 && i + 1 < argc)
            scopes = argv[++i];
        else if (strcmp(argv[i], "--tenant") == 0 && i + 1 < argc && !reauth)
            tenant = argv[++i];
        else if (argv[i][0] == '-')
            return cli_unknown(&cmd_account, "option", argv[i]);
        else if (name)
            return cli_usage_error(&cmd_account, "unexpected argument '%s'", argv[i]);
        else
            name = argv[i];
    }
    if (!name)
        return cli_usage_error(&cmd_account, "expected an account name");
    if (tenant && cli_config(c))
        return 1;
    if (tenant && !config_tenant(&c->cfg, tenant))
        return cli_usage_error(&cmd_account, "no tenant named '%s' in the config", tenant);
    struct engine en;
    if (engine_open(c, &en, ENG_NET))
        return 1;
    char *url = NULL;
    struct tikd_err e = {0};
    int rc = oauth_begin_as(en.oauth, name, scopes, reauth, "operator", tenant, &url, &e);
    if (rc != 0) {
        fprintf(stderr, "tikd: %s\n", e.msg);
    } else {
        printf("To connect account %s, open this address in a browser signed in to its TikTok "
               "account\nand approve (valid for %.0f minutes, once):\n\n  %s\n\n"
               "TikTok then sends the browser to %s, where tikd run\ncompletes the connection. "
               "Without a reachable tikd, copy the address the browser\nends up on and run:\n\n"
               "  tikd account complete %s 'ADDRESS'\n",
               name, c->cfg.oauth_state_ttl / 60, url, c->cfg.redirect_uri, name);
    }
    free(url);
    engine_close(&en);
    return rc ? 1 : 0;
}

static int complete(struct cli *c, int argc, char **argv)
{
    if (argc != 3)
        return cli_usage_error(&cmd_account, "expected: account complete NAME URL");
    struct engine en;
    if (engine_open(c, &en, ENG_NET))
        return 1;
    struct result r = {0};
    struct tikd_err e = {0};
    int rc = wait_op(&en, oauth_complete(en.oauth, argv[2], argv[1], on_done, &r, &e), &e, &r);
    engine_close(&en);
    if (rc == 0)
        cli_wake_daemon(c); /* the jobs a lost grant paused are due now */
    return rc ? 1 : 0;
}

struct row_ctx {
    double now;
    bool tenants; /* the config has tenants: a column for them */
};

static int print_row(const struct account *a, void *ctx)
{
    const struct row_ctx *rc = ctx;
    double now = rc->now;
    char ae[32], re[32];
    cli_fmt_time(a->access_expires_at, ae, sizeof ae);
    cli_fmt_time(a->refresh_expires_at, re, sizeof re);
    bool soon = a->refresh_expires_at > 0 && a->refresh_expires_at - now < 7 * 86400;
    printf("%-20s %-13s %-32s %-21s %-21s%s %s", a->name, account_state_name(a->state),
           a->open_id[0] ? a->open_id : "-", ae, re, soon ? " (!)" : "",
           a->scopes[0] ? a->scopes : "-");
    if (rc->tenants)
        printf(" %s", a->tenant[0] ? a->tenant : "-");
    printf("\n");
    return 0;
}

static int list_txn(struct store_txn *t, void *ctx)
{
    return account_foreach(t, print_row, ctx);
}

static int list_one(const struct account *a, void *ctx)
{
    return json_array_append_new(ctx, view_account(a));
}

static int list_view(struct store_txn *t, void *ud, json_t **out)
{
    (void)ud;
    *out = json_array();
    return account_foreach(t, list_one, *out);
}

static int show_view(struct store_txn *t, void *ud, json_t **out)
{
    return view_account_full(t, ud, out);
}

static int list(struct cli *c, int argc, bool json)
{
    if (argc != 1)
        return cli_usage_error(&cmd_account, "list takes no arguments");
    if (json)
        return cli_json_view(c, list_view, NULL, "database");
    struct store *s;
    if (cli_open_store(c, true, &s))
        return 1;
    struct row_ctx now = {clock_now(), c->cfg.ntenants > 0};
    printf("%-20s %-13s %-32s %-21s %-21s %s%s\n", "NAME", "STATE", "OPEN_ID", "ACCESS_EXPIRES",
           "REFRESH_EXPIRES", "SCOPES", now.tenants ? " TENANT" : "");
    int rc = store_read(s, list_txn, &now, NULL);
    store_close(s);
    return rc ? 1 : 0;
}

struct show_ctx {
    const char *name;
    struct account a;
};

static int show_txn(struct store_txn *t, void *ctx)
{
    struct show_ctx *sc = ctx;
    return account_get(t, sc->name, &sc->a);
}

static int show(struct cli *c, int argc, char **argv, bool json)
{
    if (argc != 2)
        return cli_usage_error(&cmd_account, "expected: account show NAME");
    char what[100];
    snprintf(what, sizeof what, "account named %.64s", argv[1]);
    if (json)
        return cli_json_view(c, show_view, argv[1], what);
    struct store *s;
    if (cli_open_store(c, true, &s))
        return 1;
    struct show_ctx sc = {.name = argv[1]};
    int rc = store_read(s, show_txn, &sc, NULL);
    store_close(s);
    if (rc != 0) {
        fprintf(stderr, "tikd: no account named %s\n", argv[1]);
        return 1;
    }
    const struct account *a = &sc.a;
    char ae[32], re[32], cr[32], up[32];
    cli_fmt_time(a->access_expires_at, ae, sizeof ae);
    cli_fmt_time(a->refresh_expires_at, re, sizeof re);
    cli_fmt_time(a->created_at, cr, sizeof cr);
    cli_fmt_time(a->updated_at, up, sizeof up);
    printf(
        "name:             %s\nstate:            %s\nreason:           %s\nopen_id:          %s\n"
        "scopes:           %s\naccess expires:   %s\nrefresh expires:  %s\n"
        "created:          %s\nupdated:          %s\n",
        a->name, account_state_name(a->state), a->reason[0] ? a->reason : "-",
        a->open_id[0] ? a->open_id : "-", a->scopes[0] ? a->scopes : "-", ae, re, cr, up);
    if (a->tenant[0])
        printf("tenant:           %s\n", a->tenant);
    if (a->refresh_expires_at > 0 && a->refresh_expires_at - clock_now() < 7 * 86400)
        printf("warning:          the refresh token ends within a week: reconnect with `tikd "
               "account reauth %s`\n",
               a->name);
    return 0;
}

struct cancel_ctx {
    const char *account;
    const struct rl_config *limits;
    int cancelled;
};

/* The removed account's jobs that are not final are cancelled, with the
 * reason, and give back what they held (init and schedule slots), in one
 * transaction. */
static int cancel_jobs_txn(struct store_txn *t, void *ctx)
{
    struct cancel_ctx *cc = ctx;
    return post_cancel_account(t, cc->limits, cc->account, "operator", &cc->cancelled);
}

static int remove_cmd(struct cli *c, int argc, char **argv)
{
    if (argc != 2)
        return cli_usage_error(&cmd_account, "expected: account remove NAME");
    struct engine en;
    if (engine_open(c, &en, ENG_NET))
        return 1;
    struct result r = {0};
    struct tikd_err e = {0};
    int rc = wait_op(&en, oauth_remove(en.oauth, argv[1], on_done, &r, &e), &e, &r);
    if (rc == 0) {
        struct cancel_ctx cc = {.account = argv[1], .limits = &c->cfg.limits};
        if (rc == 0 && store_write(en.store, cancel_jobs_txn, &cc, &e) == 0 && cc.cancelled)
            printf("%d pending job%s of %s cancelled\n", cc.cancelled, cc.cancelled == 1 ? "" : "s",
                   argv[1]);
    }
    engine_close(&en);
    return rc ? 1 : 0;
}

/* ---- account set-tenant NAME TENANT|- -------------------------------------------- */

struct tenant_ctx {
    const char *name, *tenant;
    int open; /* jobs of the account that are not final */
    struct tikd_err *e;
};

static int count_open(const struct job *j, void *ctx)
{
    ((struct tenant_ctx *)ctx)->open += !job_state_final(j->state);
    return 0;
}

/* The move and its record in one transaction; refused while jobs its old
 * tenant's rules planned are still to go (they would be asked about by the
 * new tenant's rules). */
static int tenant_txn(struct store_txn *t, void *ctx)
{
    struct tenant_ctx *tc = ctx;
    struct account a;
    int rc = account_get(t, tc->name, &a);
    if (rc == TIKD_ENOTFOUND)
        return tikd_fail(tc->e, rc, "no account named %s", tc->name);
    if (rc == 0)
        rc = job_foreach_account_open(t, tc->name, count_open, tc);
    if (rc != 0)
        return rc;
    if (strcmp(a.tenant, tc->tenant) == 0)
        return 0;
    if (tc->open)
        return tikd_fail(tc->e, TIKD_EINVAL,
                         "account %s has %d job%s still to go: cancel them or let them finish "
                         "before it moves (the rules of its tenant planned them)",
                         tc->name, tc->open, tc->open == 1 ? "" : "s");
    char detail[200];
    snprintf(detail, sizeof detail, "account=%s from=%s to=%s", a.name,
             a.tenant[0] ? a.tenant : "-", tc->tenant[0] ? tc->tenant : "-");
    snprintf(a.tenant, sizeof a.tenant, "%s", tc->tenant);
    a.updated_at = clock_now();
    rc = account_put(t, &a);
    return rc ? rc : audit_append(t, "operator", "account.tenant", detail);
}

static int set_tenant(struct cli *c, int argc, char **argv)
{
    if (argc != 3)
        return cli_usage_error(&cmd_account,
                               "expected: account set-tenant NAME TENANT (or - for none)");
    if (cli_config(c))
        return 1;
    const char *tenant = strcmp(argv[2], "-") == 0 ? "" : argv[2];
    if (*tenant && !config_tenant(&c->cfg, tenant))
        return cli_usage_error(&cmd_account, "no tenant named '%s' in the config", tenant);
    struct store *s;
    if (cli_open_store(c, false, &s))
        return 1;
    struct tikd_err e = {0};
    struct tenant_ctx tc = {argv[1], tenant, 0, &e};
    int rc = store_write(s, tenant_txn, &tc, &e);
    store_close(s);
    if (rc != 0) {
        fprintf(stderr, "tikd: %s\n", e.msg[0] ? e.msg : tikd_strerror(rc));
        return 1;
    }
    printf("account %s: tenant %s\n", argv[1], *tenant ? tenant : "none (the operator's only)");
    return 0;
}

/* account check NAME: one authorized call (user info) proves the token
 * works end to end; the token itself never leaves C. */
static int check(struct cli *c, int argc, char **argv)
{
    if (argc != 2)
        return cli_usage_error(&cmd_account, "expected: account check NAME");
    struct engine en;
    if (engine_open(c, &en, ENG_NET))
        return 1;
    char url[1024];
    snprintf(url, sizeof url, "%s%s?fields=open_id,display_name", c->cfg.api_url,
             TT_PATH_USER_INFO);
    struct http_req req = {.method = "GET", .url = url, .retry = HTTP_RETRY_ALL};
    struct engine_answer a = {0};
    struct tikd_err e = {0};
    int rc = oauth_request(en.oauth, argv[1], &req, engine_answered, &a, &e);
    if (rc != 0) {
        fprintf(stderr, "tikd: %s\n", e.msg);
    } else {
        engine_wait(&en, &a.done);
        struct tt_user u;
        char why[200];
        snprintf(why, sizeof why, "TikTok answered HTTP %ld", a.status);
        rc = a.ok && a.status == 200 && tt_decode_user(a.body, a.body_len, &u, why, sizeof why) == 0
                 ? 0
                 : 1;
        if (rc == 0)
            printf("%s: ok: %s (open_id %s)\n", argv[1], u.display_name, u.open_id);
        else
            fprintf(stderr, "tikd: %s: %s\n", argv[1], a.ok ? why : a.msg);
        engine_answer_free(&a);
    }
    engine_close(&en);
    return rc ? 1 : 0;
}

static int run_account(struct cli *c, int argc, char **argv)
{
    bool json = cli_take_flag(&argc, argv, "--json");
    if (argc < 2)
        return cli_usage_error(&cmd_account, "expected a subcommand");
    const char *sub = argv[1];
    if (json && strcmp(sub, "list") != 0 && strcmp(sub, "show") != 0)
        return cli_unknown(&cmd_account, "option", "--json");
    if (strcmp(sub, "add") == 0)
        return begin(c, argc - 1, argv + 1, false);
    if (strcmp(sub, "reauth") == 0)
        return begin(c, argc - 1, argv + 1, true);
    if (strcmp(sub, "complete") == 0)
        return complete(c, argc - 1, argv + 1);
    if (strcmp(sub, "list") == 0)
        return list(c, argc - 1, json);
    if (strcmp(sub, "show") == 0)
        return show(c, argc - 1, argv + 1, json);
    if (strcmp(sub, "remove") == 0)
        return remove_cmd(c, argc - 1, argv + 1);
    if (strcmp(sub, "check") == 0)
        return check(c, argc - 1, argv + 1);
    if (strcmp(sub, "set-tenant") == 0)
        return set_tenant(c, argc - 1, argv + 1);
    return cli_unknown(&cmd_account, "subcommand", sub);
}

const struct cli_cmd cmd_account = {
    "account", run_account,
    "account add|reauth|complete|list|show|check|remove|set-tenant [--json]",
    "connect TikTok accounts and look after them",
    "  account add NAME [--scopes S] [--tenant T]\n"
    "                                  start connecting a new account (of tenant T): prints the\n"
    "                                  URL to open\n"
    "  account reauth NAME             connect an existing account again\n"
    "  account complete NAME URL       finish with the address TikTok redirected to\n"
    "                                  (when tikd's callback page is not reachable)\n"
    "  account list [--json]           every account: state, open_id, token expiries, scopes\n"
    "  account show NAME               one account in detail\n"
    "  account remove NAME             revoke at TikTok, then delete its tokens and record\n"
    "  account check NAME              one authorized call (user info) to prove the token works\n"
    "  account set-tenant NAME T|-     move an account to tenant T (or to none); refused while\n"
    "                                  it has jobs still to go (docs/tenants.md)\n"
    "Tokens are never printed. See docs/accounts.md.\n"};

/* ---- vault ------------------------------------------------------------------ */

struct rotate_ctx {
    struct vault *v;
    const char *id;
    size_t count;
    struct tikd_err *e;
};

static int rotate_txn(struct store_txn *t, void *ctx)
{
    struct rotate_ctx *r = ctx;
    int rc = vault_reseal_all(r->v, t, &r->count, r->e);
    char detail[200];
    snprintf(detail, sizeof detail, "key=%s records=%zu", r->id, r->count);
    return rc ? rc : audit_append(t, "operator", "vault.rotate_key", detail);
}

static int run_vault(struct cli *c, int argc, char **argv)
{
    if (argc < 2)
        return cli_usage_error(&cmd_vault, "expected init or rotate-key");
    if (cli_config(c))
        return 1;
    struct tikd_err e = {0};
    char id[64];
    if (strcmp(argv[1], "init") == 0) {
        const char *path = argc > 2 ? argv[2] : c->cfg.vault_key_file;
        if (argc > 3 || !path)
            return cli_usage_error(&cmd_vault, "expected: vault init [FILE] (or set "
                                               "vault.key_file)");
        if (vault_keyfile_create(path, id, sizeof id, &e) != 0) {
            fprintf(stderr, "tikd: %s\n", e.msg);
            return 1;
        }
        printf("created %s (mode 0600) with key %s\nkeep a copy somewhere safe: without it the "
               "stored tokens cannot be read\n",
               path, id);
        return 0;
    }
    if (strcmp(argv[1], "rotate-key") == 0) {
        if (argc != 2)
            return cli_usage_error(&cmd_vault, "rotate-key takes no arguments");
        if (!c->cfg.vault_key_file) {
            fprintf(stderr, "tikd: vault rotate-key needs vault.key_file (keys from "
                            "TIKD_VAULT_KEY cannot be appended to)\n");
            return 1;
        }
        struct engine en;
        if (engine_open(c, &en, ENG_VAULT)) /* proves the current keys open everything */
            return 1;
        vault_free(en.vault);
        en.vault = NULL;
        int rc = vault_keyfile_add(c->cfg.vault_key_file, id, sizeof id, &e);
        if (rc == 0)
            rc = vault_load(&en.vault, c->cfg.vault_key_file, NULL, &e);
        struct rotate_ctx r = {en.vault, id, 0, &e};
        if (rc == 0)
            rc = store_write(en.store, rotate_txn, &r, &e);
        if (rc != 0)
            fprintf(stderr, "tikd: %s\n", e.msg);
        else
            printf("new key %s appended to %s; %zu records re-sealed under it.\nThe old keys "
                   "stay in the file: remove them once every tikd uses the new file.\n",
                   id, c->cfg.vault_key_file, r.count);
        engine_close(&en);
        return rc ? 1 : 0;
    }
    return cli_unknown(&cmd_vault, "subcommand", argv[1]);
}

const struct cli_cmd cmd_vault = {
    "vault", run_vault, "vault init [FILE] | rotate-key", "manage the keys that seal tokens",
    "  vault init [FILE]   create a key file (default: vault.key_file) with mode 0600\n"
    "  vault rotate-key    append a new key to the key file and re-seal every record under\n"
    "                      it, in one transaction; old keys stay until you remove them\n"};
