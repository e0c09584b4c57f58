/* cli.h - what the `tikd` subcommands share: the parsed global options, the
 * loaded config, and the conventions (exit 0 success, 1 failure, 2 usage;
 * results on stdout, diagnostics on stderr, never a secret on either). */
#ifndef TIKD_CLI_H
#define TIKD_CLI_H

#include "../bindings/lua_host.h"
#include "../core/config.h"

#include <jansson.h>

#define EXIT_USAGE 2

struct cli {
    const char *config_path; /* --config, $TIKD_CONFIG, or the default if it exists */
    struct tikd_config cfg;
    bool cfg_loaded;
    bool terse; /* a command on a terminal (not `run`): the log says only warnings and errors */
};

struct cli_cmd {
    const char *name;
    int (*run)(struct cli *c, int argc, char **argv); /* argv[0] is the command name */
    const char *usage;
    const char *summary;
    const char *help; /* full text for `tikd help CMD` */
};

/* Load the config once (errors printed to stderr); returns 0 or 1. */
int cli_config(struct cli *c);

/* Host options from the config for tenant t's rules (NULL: the implicit
 * tenant of a config without tenants); rules_dir may be overridden; http may
 * be NULL where rules cannot make requests. */
struct store;
struct host_opts cli_host_opts(const struct tikd_config *cfg, const struct tenant_cfg *t,
                               const char *rules_dir, struct ev_loop *loop, struct http *http,
                               struct store *store);

/* --tenant NAME taken out of argv, after loading the config: 0 with *out the
 * tenant (NULL when none was named), or 1 (an unknown one: said on stderr). */
int cli_take_tenant(struct cli *c, const struct cli_cmd *cmd, int *argc, char **argv,
                    const struct tenant_cfg **out);

/* The tenant whose rules_dir is dir, or NULL. */
const struct tenant_cfg *cli_tenant_of_dir(const struct tikd_config *cfg, const char *dir);

/* HTTP client options from the config. */
struct http_opts;
void cli_http_opts(const struct tikd_config *cfg, struct ev_loop *loop, struct http_opts *o);

/* `tikd media check`'s line for one file ("PATH: ok: video mp4 ...",
 * "PATH: refused: ...: why") into line; returns its media_level. */
int cli_media_line(const char *path, int max_duration, char *line, size_t n);

/* Print "tikd CMD: msg" and the usage line to stderr; returns EXIT_USAGE. */
int cli_usage_error(const struct cli_cmd *cmd, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* An unknown option, subcommand (what: "option", "subcommand") of cmd:
 * the usage error, with the nearest one it knows when arg looks like a
 * typo of it ("unknown option '--stat' (did you mean '--state'?)"). */
int cli_unknown(const struct cli_cmd *cmd, const char *what, const char *arg);

/* Print o (taken) as indented JSON on stdout. */
int cli_print_json(json_t *o);

/* Remove flag from argv (argc adjusted) if it is there: whether it was. */
bool cli_take_flag(int *argc, char **argv, const char *flag);

/* Open the store read-only, run view(t, ud, &out) in one read transaction
 * and print out as JSON: 0, 1 when it failed (said on stderr; `what` names
 * the thing not found on TIKD_ENOTFOUND). For the --json of read commands:
 * the same views as the admin API (cli/views.h). */
struct store_txn;
int cli_json_view(struct cli *c, int (*view)(struct store_txn *t, void *ud, json_t **out), void *ud,
                  const char *what);

/* "2026-11-30T19:58:03Z" for t (seconds since the epoch), "-" for 0. */
void cli_fmt_time(double t, char *out, size_t n);

/* Open the store for commands (readonly for inspection). Prints errors. */
int cli_open_store(struct cli *c, bool readonly, struct store **out);

/* Tell a running daemon to reload its rules (SIGHUP): 1 if one was told. */
int cli_reload_daemon(struct cli *c);
/* Ask a running `tikd run` on this data directory to look at its jobs again
 * (SIGUSR1, only to the process holding the directory's lock): 1 when it
 * was told, 2 when one is starting (it will look anyway), 0 when none runs. */
int cli_wake_daemon(struct cli *c);

/* Make a private temporary directory "$TMPDIR/tikd-WHAT-XXXXXX" into out;
 * 0, or 1 with the error printed. cli_rmtree removes it with its contents. */
int cli_tmpdir(const char *what, char *out, size_t n);
void cli_rmtree(const char *dir);

extern const struct cli_cmd cmd_run, cmd_rules, cmd_backup, cmd_audit, cmd_account, cmd_vault,
    cmd_post, cmd_queue, cmd_job, cmd_limits, cmd_status, cmd_plan, cmd_media, cmd_admin,
    cmd_doctor, cmd_lib;

#endif
