/* main.c - the `tikd` command: global options, dispatch, help and version.
 * Each subcommand lives in its own file and is listed in `commands` below. */
#include "cli.h"

#include <errno.h>
#include <ftw.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "../bindings/lua_config.h"
#include "../core/http.h"
#include "../core/log.h"
#include "../core/media.h"
#include "../core/runlock.h"
#include "../core/store.h"

#ifndef TIKD_VERSION
#define TIKD_VERSION "0.1.0-dev"
#endif
#ifndef TIKD_SCRIPTS_DIR
#define TIKD_SCRIPTS_DIR "/usr/local/share/tikd/scripts"
#endif
#define DEFAULT_CONFIG "/etc/tikd/tikd.conf.lua"

static const struct cli_cmd cmd_help_entry, cmd_version_entry;

static const struct cli_cmd *const commands[] = {
    &cmd_run,    &cmd_status,     &cmd_post,          &cmd_queue,  &cmd_job,
    &cmd_limits, &cmd_account,    &cmd_vault,         &cmd_rules,  &cmd_plan,
    &cmd_media,  &cmd_audit,      &cmd_admin,         &cmd_doctor, &cmd_lib,
    &cmd_backup, &cmd_help_entry, &cmd_version_entry, NULL,
};

static void print_usage(FILE *f)
{
    fprintf(f, "usage: tikd [--config FILE] COMMAND [ARGS]\n\n"
               "tikd posts to many TikTok accounts, with rules in Lua.\n\ncommands:\n");
    for (const struct cli_cmd *const *c = commands; *c; c++)
        fprintf(f, "  %-26s %s\n", (*c)->usage, (*c)->summary);
    fprintf(f,
            "\noptions:\n"
            "  -c, --config FILE          config file (default: $TIKD_CONFIG, then %s)\n"
            "  -h, --help                 this text\n\n"
            "`tikd help COMMAND` explains one command; `tikd help config` lists the config "
            "keys.\n",
            DEFAULT_CONFIG);
}

static const struct cli_cmd *find_cmd(const char *name)
{
    for (const struct cli_cmd *const *c = commands; *c; c++)
        if (strcmp((*c)->name, name) == 0)
            return *c;
    return NULL;
}

int cli_usage_error(const struct cli_cmd *cmd, const char *fmt, ...)
{
    va_list ap;
    fprintf(stderr, "tikd %s: ", cmd->name);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "\nusage: tikd %s\n", cmd->usage);
    return EXIT_USAGE;
}

int cli_print_json(json_t *o)
{
    char *s = o ? json_dumps(o, JSON_INDENT(2) | JSON_REAL_PRECISION(17)) : NULL;
    json_decref(o);
    if (!s) {
        fprintf(stderr, "tikd: out of memory\n");
        return 1;
    }
    printf("%s\n", s);
    free(s);
    return 0;
}

bool cli_take_flag(int *argc, char **argv, const char *flag)
{
    for (int i = 1; i < *argc; i++) {
        if (strcmp(argv[i], flag) == 0) {
            memmove(argv + i, argv + i + 1, (size_t)(*argc - i) * sizeof *argv);
            (*argc)--;
            return true;
        }
    }
    return false;
}

int cli_take_tenant(struct cli *c, const struct cli_cmd *cmd, int *argc, char **argv,
                    const struct tenant_cfg **out)
{
    *out = NULL;
    for (int i = 1; i < *argc; i++) {
        if (strcmp(argv[i], "--tenant") != 0)
            continue;
        if (i + 1 >= *argc)
            return cli_usage_error(cmd, "--tenant takes a tenant's name");
        if (cli_config(c))
            return 1;
        if (!(*out = config_tenant(&c->cfg, argv[i + 1])))
            return cli_usage_error(cmd, "no tenant named '%s' in the config", argv[i + 1]);
        memmove(argv + i, argv + i + 2, (size_t)(*argc - i - 1) * sizeof *argv);
        *argc -= 2;
        return 0;
    }
    return 0;
}

const struct tenant_cfg *cli_tenant_of_dir(const struct tikd_config *cfg, const char *dir)
{
    char want[PATH_MAX], have[PATH_MAX];
    if (!realpath(dir, want))
        return NULL;
    for (size_t i = 0; i < cfg->ntenants; i++)
        if (realpath(cfg->tenants[i].rules_dir, have) && strcmp(want, have) == 0)
            return &cfg->tenants[i];
    return NULL;
}

struct json_view {
    int (*view)(struct store_txn *t, void *ud, json_t **out);
    void *ud;
    json_t *out;
};

static int json_view_txn(struct store_txn *t, void *ctx)
{
    struct json_view *v = ctx;
    return v->view(t, v->ud, &v->out);
}

int cli_json_view(struct cli *c, int (*view)(struct store_txn *t, void *ud, json_t **out), void *ud,
                  const char *what)
{
    struct store *s;
    if (cli_open_store(c, true, &s))
        return 1;
    struct json_view v = {view, ud, NULL};
    struct tikd_err e = {0};
    int rc = store_read(s, json_view_txn, &v, &e);
    store_close(s);
    if (rc == TIKD_ENOTFOUND) {
        fprintf(stderr, "tikd: no %s\n", what);
        return 1;
    }
    if (rc != 0) {
        fprintf(stderr, "tikd: %s\n", e.msg[0] ? e.msg : "cannot read the database");
        json_decref(v.out);
        return 1;
    }
    return cli_print_json(v.out);
}

/* Edits (insert, delete, substitute, swap two neighbours) from a to b. */
static size_t distance(const char *a, const char *b)
{
    size_t n = strlen(a), m = strlen(b);
    if (n > 63 || m > 63)
        return 99;
    size_t d[64][64];
    for (size_t i = 0; i <= n; i++)
        d[i][0] = i;
    for (size_t j = 0; j <= m; j++)
        d[0][j] = j;
    for (size_t i = 1; i <= n; i++) {
        for (size_t j = 1; j <= m; j++) {
            size_t best = d[i - 1][j - 1] + (a[i - 1] != b[j - 1]);
            if (d[i - 1][j] + 1 < best)
                best = d[i - 1][j] + 1;
            if (d[i][j - 1] + 1 < best)
                best = d[i][j - 1] + 1;
            if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] &&
                d[i - 2][j - 2] + 1 < best)
                best = d[i - 2][j - 2] + 1;
            d[i][j] = best;
        }
    }
    return d[n][m];
}

/* The candidate nearest to word, if it is near enough to be what was meant
 * (a typo, not another word), into out. */
static bool nearest(const char *word, const char *const *cands, size_t n, char *out, size_t on)
{
    size_t best = 99, len = strlen(word);
    for (size_t i = 0; i < n; i++) {
        size_t dd = distance(word, cands[i]);
        if (dd < best) {
            best = dd;
            snprintf(out, on, "%s", cands[i]);
        }
    }
    return best > 0 && best <= (len > 5 ? 2 : 1);
}

/* The words of text that look like options ("--state") or, for
 * subcommands, the plain words of a usage line ("show|approve ID"). */
static size_t words_of(const char *text, bool options, char words[][40], size_t max)
{
    size_t n = 0;
    for (const char *p = text; p && *p && n < max;) {
        size_t skip = strcspn(p, options ? "-" : "abcdefghijklmnopqrstuvwxyz");
        p += skip;
        if (!*p)
            break;
        if (options && strncmp(p, "--", 2) != 0) {
            p++;
            continue;
        }
        size_t len = options ? 2 + strspn(p + 2, "abcdefghijklmnopqrstuvwxyz-")
                             : strspn(p, "abcdefghijklmnopqrstuvwxyz-");
        bool whole = options || p == text || strchr(" |[", p[-1]);
        if (len > 2 && len < 40 && whole) {
            snprintf(words[n], 40, "%.*s", (int)len, p);
            bool dup = false;
            for (size_t i = 0; i < n; i++)
                dup |= strcmp(words[i], words[n]) == 0;
            n += !dup;
        }
        p += len ? len : 1;
    }
    return n;
}

int cli_unknown(const struct cli_cmd *cmd, const char *what, const char *arg)
{
    char words[64][40], best[40];
    size_t n = words_of(strcmp(what, "option") == 0 ? cmd->help : cmd->usage,
                        strcmp(what, "option") == 0, words, 64);
    if (strcmp(what, "option") == 0)
        n += words_of(cmd->usage, true, words + n, 64 - n);
    const char *cands[64];
    for (size_t i = 0; i < n; i++)
        cands[i] = words[i];
    if (nearest(arg, cands, n, best, sizeof best))
        return cli_usage_error(cmd, "unknown %s '%s' (did you mean '%s'?)", what, arg, best);
    return cli_usage_error(cmd, "unknown %s '%s'", what, arg);
}

int cli_config(struct cli *c)
{
    if (c->cfg_loaded)
        return 0;
    struct tikd_err e = {0};
    if (config_load(&c->cfg, c->config_path, &e) != 0) {
        fprintf(stderr, "tikd: %s\n", e.msg);
        config_free(&c->cfg);
        return 1;
    }
    /* a command's own output says what happened; on a terminal the engine's
     * info lines would only be noise between it (the daemon keeps them) */
    int level = c->cfg.log_level;
    if (c->terse && level < TLOG_WARN)
        level = TLOG_WARN;
    tlog_setup(level, c->cfg.log_format, 2);
    media_set_probe_program(c->cfg.media_probe, c->cfg.media_probe_timeout);
    c->cfg_loaded = true;
    /* Not installed yet (running from the build tree): the engine library
     * is then in the repository's scripts/, a level or two above the binary
     * (build/tikd, build/asan/tikd). */
    if (strcmp(c->cfg.scripts_dir, TIKD_SCRIPTS_DIR) == 0 && access(TIKD_SCRIPTS_DIR, R_OK) != 0) {
        char exe[4096];
        ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 64);
        char *slash = n > 0 ? (exe[n] = '\0', strrchr(exe, '/')) : NULL;
        for (int up = 1; slash && up <= 3; up++) {
            char *end = slash;
            for (int k = 0; k < up; k++)
                end += sprintf(end, "/..");
            strcpy(end, "/scripts/tikd.lua");
            char *real = realpath(exe, NULL);
            if (real) {
                *strrchr(real, '/') = '\0';
                free(c->cfg.scripts_dir);
                c->cfg.scripts_dir = real;
                break;
            }
        }
    }
    return 0;
}

struct host_opts cli_host_opts(const struct tikd_config *cfg, const struct tenant_cfg *t,
                               const char *rules_dir, struct ev_loop *loop, struct http *http,
                               struct store *store)
{
    struct tenant_view v;
    config_tenant_view(cfg, t, &v);
    return (struct host_opts){
        .scripts_dir = cfg->scripts_dir,
        .rules_dir = rules_dir ? rules_dir : v.rules_dir,
        .lib_paths = (const char *const *)cfg->lib_paths.v,
        .nlib = cfg->lib_paths.n,
        .instructions = v.lua_instructions,
        .call_memory = v.lua_call_memory,
        .state_memory = v.lua_state_memory,
        .rule_memory = v.lua_rule_memory,
        .pattern_steps = cfg->lua_pattern_steps,
        .call_time = cfg->lua_call_time,
        .loop = loop,
        .http = http,
        .store = store,
        .http_allow = (const char *const *)v.http_allow->v,
        .nallow = v.http_allow->n,
        .media_roots = (const char *const *)v.media_roots->v,
        .nroots = v.media_roots->n,
        .intake = (const char *const *)v.intake->v,
        .nintake = v.intake->n,
        .limits = &cfg->limits,
        .tenant = v.name,
        .pins = (const char *const *)v.libs->v,
        .npins = v.libs->n,
        .trust = (const char *const *)v.trust->v,
        .ntrust = v.trust->n,
    };
}

void cli_http_opts(const struct tikd_config *cfg, struct ev_loop *loop, struct http_opts *o)
{
    http_opts_default(o);
    o->loop = loop;
    o->ca_file = cfg->http_ca_file;
    o->proxy = cfg->http_proxy;
    o->connect_timeout = cfg->http_connect_timeout;
    o->timeout = cfg->http_timeout;
    o->low_speed_time = (long)cfg->http_low_speed_time;
    o->max_response = cfg->http_max_response;
    o->max_attempts = (int)cfg->http_max_attempts;
}

void cli_fmt_time(double t, char *out, size_t n)
{
    if (t <= 0) {
        snprintf(out, n, "-");
        return;
    }
    time_t s = (time_t)t;
    struct tm tm;
    gmtime_r(&s, &tm);
    strftime(out, n, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

/* Only a process proven to hold the data directory's lock is signalled:
 * a pid left behind by a dead daemon may name any process by now. */
int cli_wake_daemon(struct cli *c)
{
    int pid;
    struct tikd_err e = {0};
    int held = runlock_holder(c->cfg.data_dir, &pid, &e);
    if (held < 0)
        fprintf(stderr, "tikd: %s\n", e.msg);
    if (held == 1 && pid == 0)
        return 2;
    return held == 1 && kill(pid, SIGUSR1) == 0 ? 1 : 0;
}

int cli_reload_daemon(struct cli *c)
{
    int pid;
    struct tikd_err e = {0};
    return runlock_holder(c->cfg.data_dir, &pid, &e) == 1 && pid > 0 && kill(pid, SIGHUP) == 0;
}

int cli_open_store(struct cli *c, bool readonly, struct store **out)
{
    if (cli_config(c))
        return 1;
    struct store_opts so = {c->cfg.data_dir, c->cfg.map_initial, c->cfg.map_max, readonly};
    struct tikd_err e = {0};
    if (store_open(out, &so, &e) != 0) {
        fprintf(stderr, "tikd: %s\n", e.msg);
        return 1;
    }
    return 0;
}

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    remove(path);
    return 0;
}

void cli_rmtree(const char *dir)
{
    if (dir && *dir)
        nftw(dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

int cli_tmpdir(const char *what, char *out, size_t n)
{
    const char *tmp = getenv("TMPDIR");
    int l = snprintf(out, n, "%s/tikd-%s-XXXXXX", tmp && *tmp ? tmp : "/tmp", what);
    if (l <= 0 || (size_t)l >= n || !mkdtemp(out)) {
        fprintf(stderr, "tikd: cannot make a temporary directory: %s\n", strerror(errno));
        return 1;
    }
    return 0;
}

/* ---- help and version -------------------------------------------------- */

static int run_help(struct cli *c, int argc, char **argv)
{
    (void)c;
    if (argc < 2) {
        print_usage(stdout);
        return 0;
    }
    if (argc > 2)
        return cli_usage_error(&cmd_help_entry, "expected one command name");
    if (strcmp(argv[1], "config") == 0) {
        printf("config keys (a Lua file of assignments; sections as tables, e.g.\n"
               "  log = { level = \"debug\" }):\n\n");
        const char *doc;
        for (size_t i = 0; config_key_doc(i, &doc); i++)
            printf("  %-22s %s\n", config_key_doc(i, NULL), doc);
        printf("\nenvironment: TIKD_CONFIG, TIKD_CLIENT_SECRET, TIKD_CLIENT_KEY, "
               "TIKD_VAULT_KEY_FILE, TIKD_VAULT_KEY, TIKD_DATA_DIR, TIKD_LOG_LEVEL\n");
        return 0;
    }
    const struct cli_cmd *cmd = find_cmd(argv[1]);
    if (!cmd) {
        fprintf(stderr, "tikd help: unknown command '%s'\n", argv[1]);
        return EXIT_USAGE;
    }
    printf("usage: tikd %s\n\n%s\n\n%s", cmd->usage, cmd->summary, cmd->help);
    return 0;
}

static int run_version(struct cli *c, int argc, char **argv)
{
    (void)c;
    (void)argv;
    if (argc > 1)
        return cli_usage_error(&cmd_version_entry, "takes no arguments");
    printf("tikd %s\n", TIKD_VERSION);
    return 0;
}

static const struct cli_cmd cmd_help_entry = {"help", run_help, "help [COMMAND|config]",
                                              "explain a command, or list the config keys",
                                              "With no argument, lists the commands.\n"};
static const struct cli_cmd cmd_version_entry = {"version", run_version, "version",
                                                 "print the version", ""};

/* Tokens pass through this process's memory for one request each, and the
 * vault key for its life: no core file may hold them, and no process of the
 * same user may read them through ptrace or /proc/PID/mem. (LeakSanitizer
 * must ptrace the process to scan it: sanitizer builds stay dumpable.) */
static void no_core_dumps(void)
{
    struct rlimit none = {0, 0};
    if (setrlimit(RLIMIT_CORE, &none) != 0)
        perror("tikd: setrlimit(RLIMIT_CORE)");
#if !defined(__SANITIZE_ADDRESS__)
    if (prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) != 0)
        perror("tikd: prctl(PR_SET_DUMPABLE)");
#endif
}

int main(int argc, char **argv)
{
    struct cli c = {0};
    int i = 1;
    no_core_dumps();
    umask(077); /* what tikd creates (database, backups, key file, socket) is its user's alone */
    signal(SIGPIPE, SIG_IGN);
    for (; i < argc && argv[i][0] == '-'; i++) {
        if (strcmp(argv[i], "-c") == 0 || strcmp(argv[i], "--config") == 0) {
            if (++i == argc) {
                fprintf(stderr, "tikd: %s needs a file name\n", argv[i - 1]);
                print_usage(stderr);
                return EXIT_USAGE;
            }
            c.config_path = argv[i];
        } else if (strncmp(argv[i], "--config=", 9) == 0) {
            c.config_path = argv[i] + 9;
        } else if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) {
            print_usage(stdout);
            return 0;
        } else if (strcmp(argv[i], "--version") == 0) {
            printf("tikd %s\n", TIKD_VERSION);
            return 0;
        } else {
            fprintf(stderr, "tikd: unknown option '%s'\n", argv[i]);
            print_usage(stderr);
            return EXIT_USAGE;
        }
    }
    if (i == argc) {
        print_usage(stderr);
        return EXIT_USAGE;
    }
    if (!c.config_path)
        c.config_path = getenv("TIKD_CONFIG");
    if (!c.config_path && access(DEFAULT_CONFIG, R_OK) == 0)
        c.config_path = DEFAULT_CONFIG;
    const struct cli_cmd *cmd = find_cmd(argv[i]);
    if (!cmd) {
        const char *names[32];
        size_t n = 0;
        for (const struct cli_cmd *const *k = commands; *k && n < 32; k++)
            names[n++] = (*k)->name;
        char best[40];
        if (nearest(argv[i], names, n, best, sizeof best))
            fprintf(stderr, "tikd: unknown command '%s' (did you mean '%s'?)\n", argv[i], best);
        else
            fprintf(stderr, "tikd: unknown command '%s'\n", argv[i]);
        print_usage(stderr);
        return EXIT_USAGE;
    }
    c.terse = cmd != &cmd_run && isatty(2);
    for (int j = i + 1; j < argc; j++) {
        if (strcmp(argv[j], "-h") == 0 || strcmp(argv[j], "--help") == 0) {
            char *hargv[] = {"help", argv[i], NULL};
            return run_help(&c, 2, hargv);
        }
    }
    int rc = cmd->run(&c, argc - i, argv + i);
    if (c.cfg_loaded)
        config_free(&c.cfg);
    tlog_secret_clear();
    return rc;
}
