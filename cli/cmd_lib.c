/* cmd_lib.c - `tikd lib keygen|pack|install|list|verify`: shared rule
 * libraries as signed, versioned bundles (core/libs). Install writes the
 * database directly (a running daemon is told to reload, SIGHUP), so it
 * works the same whether a daemon runs or not. */
#include "cli.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../core/fileio.h"
#include "../core/libs.h"
#include "../core/store.h"

static int keygen(int argc, char **argv)
{
    if (argc != 2 || argv[1][0] == '-')
        return cli_usage_error(&cmd_lib, "expected: lib keygen KEYFILE");
    char pub[LIB_KEY_LEN + 1];
    struct tikd_err e = {0};
    if (lib_keygen(argv[1], pub, &e) != 0) {
        fprintf(stderr, "tikd lib: %s\n", e.msg);
        return 1;
    }
    printf("private key written to %s (mode 0600: keep it to yourself)\n"
           "public key, for the trust lists of whoever installs your libraries:\n%s\n",
           argv[1], pub);
    return 0;
}

static int pack(int argc, char **argv)
{
    const char *dir = NULL, *key = NULL, *out = NULL;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--key") == 0 && i + 1 < argc)
            key = argv[++i];
        else if (strcmp(argv[i], "-o") == 0 && i + 1 < argc)
            out = argv[++i];
        else if (argv[i][0] == '-')
            return cli_unknown(&cmd_lib, "option", argv[i]);
        else if (dir)
            return cli_usage_error(&cmd_lib, "unexpected argument '%s'", argv[i]);
        else
            dir = argv[i];
    }
    if (!dir || !key)
        return cli_usage_error(&cmd_lib, "expected: lib pack DIR --key KEYFILE [-o BUNDLE]");
    char *bytes;
    size_t len;
    struct lib_bundle b;
    struct tikd_err e = {0};
    if (lib_pack(dir, key, &bytes, &len, &b, &e) != 0) {
        fprintf(stderr, "tikd lib: %s\n", e.msg);
        return 1;
    }
    char name[200];
    if (!out)
        snprintf(name, sizeof name, "%s-%s.tikdlib", b.name, b.version), out = name;
    FILE *f = fopen(out, "wx");
    bool ok = f && fwrite(bytes, 1, len, f) == len;
    ok = f && fclose(f) == 0 && ok;
    free(bytes);
    if (!ok)
        fprintf(stderr, "tikd lib: cannot write %s (a bundle is never written over)\n", out);
    else
        printf("%s: %s@%s, %zu modules, digest %s, signed by %s\n", out, b.name, b.version,
               b.nfiles, b.digest, b.key);
    lib_bundle_free(&b);
    return ok ? 0 : 1;
}

/* Every key any tenant (or the top level) trusts. */
static struct strlist *all_trust(const struct tikd_config *cfg, struct strlist *l)
{
    size_t n = cfg->trust.n;
    for (size_t i = 0; i < cfg->ntenants; i++)
        n += cfg->tenants[i].trust.n;
    l->v = calloc(n + 1, sizeof *l->v);
    l->n = 0;
    for (size_t i = 0; l->v && i < cfg->trust.n; i++)
        l->v[l->n++] = cfg->trust.v[i];
    for (size_t k = 0; l->v && k < cfg->ntenants; k++)
        for (size_t i = 0; i < cfg->tenants[k].trust.n; i++)
            l->v[l->n++] = cfg->tenants[k].trust.v[i];
    return l->v ? l : NULL;
}

struct install_ctx {
    const char *bytes;
    size_t len;
    const struct lib_bundle *b;
    bool again;
    struct tikd_err *e;
};

static int install_txn(struct store_txn *t, void *ctx)
{
    struct install_ctx *x = ctx;
    return lib_install(t, x->bytes, x->len, x->b, "operator", &x->again, x->e);
}

static int install(struct cli *c, int argc, char **argv)
{
    const struct tenant_cfg *t;
    if (cli_take_tenant(c, &cmd_lib, &argc, argv, &t))
        return 1;
    if (argc != 2 || argv[1][0] == '-')
        return cli_usage_error(&cmd_lib, "expected: lib install BUNDLE [--tenant T]");
    if (cli_config(c))
        return 1;
    char *bytes;
    size_t len;
    struct tikd_err e = {0};
    if (fileio_read_all(argv[1], LIB_BUNDLE_MAX, &bytes, &len, &e) != 0) {
        fprintf(stderr, "tikd lib: %s\n", e.msg);
        return 1;
    }
    /* trusted by the tenant named, else by someone this daemon serves */
    struct strlist any = {0};
    const struct strlist *trust = t ? &t->trust : all_trust(&c->cfg, &any);
    struct lib_bundle b;
    int rc = trust ? lib_open(bytes, len, trust, &b, &e) : TIKD_ENOMEM;
    free(any.v);
    if (rc != 0) {
        fprintf(stderr, "tikd lib: %s: refused: %s\n", argv[1], e.msg[0] ? e.msg : "out of memory");
        free(bytes);
        return 1;
    }
    struct store *s;
    if (cli_open_store(c, false, &s)) {
        free(bytes);
        lib_bundle_free(&b);
        return 1;
    }
    struct install_ctx x = {bytes, len, &b, false, &e};
    rc = store_write(s, install_txn, &x, &e);
    store_close(s);
    free(bytes);
    if (rc != 0)
        fprintf(stderr, "tikd lib: %s\n", e.msg[0] ? e.msg : tikd_strerror(rc));
    else if (x.again)
        printf("%s@%s is installed already (digest %s)\n", b.name, b.version, b.digest);
    else
        printf("installed %s@%s (digest %s, signed by %s)%s\n", b.name, b.version, b.digest, b.key,
               cli_reload_daemon(c) ? "; the daemon reloads its rules" : "");
    lib_bundle_free(&b);
    return rc ? 1 : 0;
}

/* ---- list and verify ------------------------------------------------------------------------ */

struct list_ctx {
    const struct tikd_config *cfg;
    bool verify, json;
    json_t *arr;
    int n, bad;
};

/* Which tenants (or "-": the top level) pin this library and take it. */
static void users(const struct tikd_config *cfg, const struct lib_entry *l, const char *key,
                  char *out, size_t n)
{
    size_t off = 0;
    out[0] = '\0';
    size_t nt = cfg->ntenants ? cfg->ntenants : 1;
    for (size_t i = 0; i < nt; i++) {
        struct tenant_view v;
        config_tenant_view(cfg, cfg->ntenants ? &cfg->tenants[i] : NULL, &v);
        bool trusts = false, pins = false;
        for (size_t k = 0; k < v.trust->n; k++)
            trusts = trusts || strcmp(v.trust->v[k], key) == 0;
        size_t nl = strlen(l->name);
        for (size_t k = 0; k < v.libs->n; k++)
            if (strncmp(v.libs->v[k], l->name, nl) == 0 && v.libs->v[k][nl] == '=') {
                struct semver sv;
                pins =
                    semver_parse(l->version, &sv) && semver_satisfies(&sv, v.libs->v[k] + nl + 1);
            }
        if (trusts && pins && off < n)
            off += (size_t)snprintf(out + off, n - off, "%s%s", off ? "," : "",
                                    v.name ? v.name : "(all)");
    }
}

static int list_one(const struct lib_entry *l, void *ctx)
{
    struct list_ctx *x = ctx;
    x->n++;
    const char *state = "ok";
    char why[600] = "";
    if (x->verify) {
        struct lib_bundle b = {0};
        struct tikd_err e = {0};
        if (!l->bytes)
            state = "BAD", snprintf(why, sizeof why, "its bundle is missing");
        else if (lib_open(l->bytes, l->len, NULL, &b, &e) != 0)
            state = "BAD", snprintf(why, sizeof why, "%s", e.msg);
        else if (strcmp(b.digest, l->digest) != 0 || strcmp(b.version, l->version) != 0 ||
                 strcmp(b.key, l->key) != 0)
            state = "BAD", snprintf(why, sizeof why, "its content is not what was installed");
        lib_bundle_free(&b); /* (empty when lib_open refused it) */
        x->bad += state[0] == 'B';
    }
    char use[300];
    users(x->cfg, l, l->key, use, sizeof use);
    if (x->json)
        return json_array_append_new(x->arr, json_pack("{s:s, s:s, s:s, s:s, s:s, s:s?}", "name",
                                                       l->name, "version", l->version, "digest",
                                                       l->digest, "key", l->key, "used_by", use,
                                                       "problem", why[0] ? why : NULL));
    printf("%-20s %-12s %.16s  %-10s %s%s%s\n", l->name, l->version, l->digest,
           x->verify ? state : "", use[0] ? use : "-", why[0] ? "  " : "", why);
    return 0;
}

static int list_txn(struct store_txn *t, void *ctx)
{
    return lib_foreach(t, list_one, ctx);
}

static int list(struct cli *c, int argc, char **argv, bool verify)
{
    bool json = cli_take_flag(&argc, argv, "--json");
    if (argc != 1)
        return cli_usage_error(&cmd_lib, "lib %s takes only --json", verify ? "verify" : "list");
    struct store *s;
    if (cli_open_store(c, true, &s))
        return 1;
    struct list_ctx x = {&c->cfg, verify, json, json ? json_array() : NULL, 0, 0};
    if (!json)
        printf("%-20s %-12s %-16s  %-10s %s\n", "NAME", "VERSION", "DIGEST", verify ? "CHECK" : "",
               "TAKEN BY");
    int rc = store_read(s, list_txn, &x, NULL);
    /* each tenant's pins as they resolve now */
    size_t nt = c->cfg.ntenants ? c->cfg.ntenants : 1;
    for (size_t i = 0; rc == 0 && verify && i < nt; i++) {
        struct tenant_view v;
        config_tenant_view(&c->cfg, c->cfg.ntenants ? &c->cfg.tenants[i] : NULL, &v);
        if (!v.libs->n)
            continue;
        struct lib_set *set;
        struct tikd_err e = {0};
        int r = lib_resolve(s, v.libs, v.trust, &set, &e);
        if (!json) {
            printf("%s %s: ", v.name ? "tenant" : "pins", v.name ? v.name : "(top level)");
            for (size_t k = 0; r == 0 && k < set->n; k++)
                printf("%s%s@%s", k ? ", " : "", set->v[k].name, set->v[k].version);
            printf("%s%s\n", r ? "FAILED: " : "", r ? e.msg : "");
        }
        x.bad += r != 0;
        lib_set_free(set);
    }
    store_close(s);
    if (json) {
        rc = rc ? rc : cli_print_json(x.arr);
        if (rc != 0)
            json_decref(x.arr);
    } else if (!x.n) {
        printf("(no library installed: tikd lib install BUNDLE)\n");
    }
    return rc || x.bad ? 1 : 0;
}

static int run_lib(struct cli *c, int argc, char **argv)
{
    if (argc < 2)
        return cli_usage_error(&cmd_lib, "expected: lib keygen|pack|install|list|verify");
    const char *sub = argv[1];
    if (strcmp(sub, "keygen") == 0)
        return keygen(argc - 1, argv + 1);
    if (strcmp(sub, "pack") == 0)
        return pack(argc - 1, argv + 1);
    if (strcmp(sub, "install") == 0)
        return install(c, argc - 1, argv + 1);
    if (strcmp(sub, "list") == 0 || strcmp(sub, "verify") == 0)
        return cli_config(c) ? 1 : list(c, argc - 1, argv + 1, sub[0] == 'v');
    return cli_unknown(&cmd_lib, "subcommand", sub);
}

const struct cli_cmd cmd_lib = {
    "lib", run_lib, "lib keygen|pack|install|list|verify",
    "shared rule libraries: signed, versioned bundles a tenant pins",
    "  lib keygen KEYFILE              a new Ed25519 signing key (KEYFILE, mode 0600); prints\n"
    "                                  the public key others put in their trust lists\n"
    "  lib pack DIR --key KEYFILE [-o BUNDLE]\n"
    "                                  sign the library in DIR (manifest.json and *.lua) into\n"
    "                                  one bundle file, NAME-VERSION.tikdlib by default\n"
    "  lib install BUNDLE [--tenant T] verify it against T's trusted keys (or any the config\n"
    "                                  trusts) and install it; a version never changes once\n"
    "                                  installed. A running daemon reloads its rules\n"
    "  lib list [--json]               installed bundles and the tenants whose pins take them\n"
    "  lib verify [--json]             check every installed bundle again (hashes, signature)\n"
    "                                  and resolve each tenant's pins; exit 1 on any problem\n"
    "Pins: libs = { captions = \"^1.2\" } (per tenant: tenants.NAME.libs). See docs/tenants.md.\n"};
