/* cmd_store.c - commands that work on the database directly: `tikd backup`
 * (a compacted hot copy, safe while the daemon runs) and `tikd audit verify`
 * (walk the hash chain). */
#include "cli.h"
#include "views.h"

#include <stdio.h>
#include <string.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <time.h>

#include "../core/audit.h"
#include "../core/store.h"

static int run_backup(struct cli *c, int argc, char **argv)
{
    if (argc != 2)
        return cli_usage_error(&cmd_backup, "expected one destination directory");
    struct store *s;
    if (cli_open_store(c, true, &s))
        return 1;
    struct tikd_err e = {0};
    int rc = store_backup(s, argv[1], &e);
    store_close(s);
    if (rc != 0) {
        fprintf(stderr, "tikd: %s\n", e.msg);
        return 1;
    }
    char path[4200];
    struct stat st;
    snprintf(path, sizeof path, "%s/data.mdb", argv[1]);
    printf("backup written to %s (%lld bytes)\n", path,
           stat(path, &st) == 0 ? (long long)st.st_size : -1LL);
    return 0;
}

static int print_rec(const struct audit_rec *r, void *ctx)
{
    if (ctx)
        return json_array_append_new(ctx, view_audit(r));
    char ts[32];
    cli_fmt_time(r->time, ts, sizeof ts);
    printf("%6llu %s %-10s %-20s %s\n", (unsigned long long)r->seq, ts, r->actor, r->event,
           r->detail);
    return 0;
}

struct list_ctx {
    uint64_t from;
    json_t *json; /* --json: the records as GET /api/v1/audit shows them */
};

static int list_txn(struct store_txn *t, void *ctx)
{
    struct list_ctx *l = ctx;
    return audit_foreach(t, l->from, print_rec, l->json);
}

static int audit_list(struct cli *c, int argc, char **argv)
{
    bool json = cli_take_flag(&argc, argv, "--json");
    long long last = 50;
    if (argc == 4 && strcmp(argv[2], "--last") == 0) {
        char *end;
        last = strtoll(argv[3], &end, 10);
        if (*end || last <= 0)
            return cli_usage_error(&cmd_audit, "--last needs a positive number");
    } else if (argc != 2) {
        return argv[2][0] == '-' ? cli_unknown(&cmd_audit, "option", argv[2])
                                 : cli_usage_error(&cmd_audit, "expected: audit list [--last N]");
    }
    struct store *s;
    if (cli_open_store(c, true, &s))
        return 1;
    uint64_t n = 0;
    struct tikd_err e = {0};
    int rc = audit_verify(s, &n, &e); /* also counts; a broken chain is said first */
    if (rc != 0)
        fprintf(stderr, "tikd: warning: %s\n", e.msg);
    struct list_ctx l = {n > (uint64_t)last ? n - (uint64_t)last + 1 : 1,
                         json ? json_array() : NULL};
    rc = store_read(s, list_txn, &l, &e);
    store_close(s);
    if (json && rc == 0)
        return cli_print_json(l.json);
    json_decref(l.json);
    return rc ? 1 : 0;
}

static int run_audit(struct cli *c, int argc, char **argv)
{
    if (argc >= 2 && strcmp(argv[1], "list") == 0)
        return audit_list(c, argc, argv);
    if (argc != 2 || strcmp(argv[1], "verify") != 0)
        return cli_usage_error(&cmd_audit, "expected: audit verify | audit list [--last N]");
    struct store *s;
    if (cli_open_store(c, true, &s))
        return 1;
    struct tikd_err e = {0};
    uint64_t n = 0;
    int rc = audit_verify(s, &n, &e);
    store_close(s);
    if (rc != 0) {
        fprintf(stderr, "tikd: %s\n", e.msg);
        return 1;
    }
    printf("audit chain intact: %llu records\n", (unsigned long long)n);
    return 0;
}

const struct cli_cmd cmd_backup = {
    "backup", run_backup, "backup DEST", "write a compacted hot copy of the database to DEST",
    "DEST is a directory (created if missing) that must not hold a database yet.\n"
    "Safe while `tikd run` is running: the copy is one consistent read transaction.\n"
    "To restore, stop tikd and put DEST/data.mdb in place of the data dir's data.mdb.\n"};

const struct cli_cmd cmd_audit = {
    "audit", run_audit, "audit verify|list [--last N] [--json]", "check or show the audit log",
    "Every audit record holds the hash of the one before it. `audit verify` walks\n"
    "the chain and names the first record that was edited or removed; exit 1 then.\n"
    "`audit list` prints the last N records (50 by default): time, actor, event, detail.\n"};
