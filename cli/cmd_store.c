/* cmd_store.c - commands that work on the database directly: `tikd backup`
 * (a compacted hot copy, safe while the daemon runs) and `tikd audit verify`
 * (walk the hash chain). */
#include "cli.h"

#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

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

static int run_audit(struct cli *c, int argc, char **argv)
{
    if (argc != 2 || strcmp(argv[1], "verify") != 0)
        return cli_usage_error(&cmd_audit, "expected: audit verify");
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
    "audit", run_audit, "audit verify", "check the audit log's hash chain",
    "Every audit record holds the hash of the one before it. `audit verify` walks\n"
    "the chain and names the first record that was edited or removed; exit 1 then.\n"};
