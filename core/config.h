/* config.h - tikd's settings: one table of keys, each with its type, its
 * default and what it allows.
 *
 * The file format lives elsewhere (bindings/lua_config.c reads a sandboxed
 * Lua table file and calls config_set() per key); this module owns the
 * values and rejects every bad one with the key, the value and what is
 * allowed. Secrets (client secret) may come from the environment instead of
 * the file, and are registered with the log's redaction registry. */
#ifndef TIKD_CONFIG_H
#define TIKD_CONFIG_H

#include "cluster.h"
#include "err.h"
#include "ratelimit.h"

#include <stdbool.h>
#include <stddef.h>

struct strlist {
    char **v;
    size_t n;
};

/* A tenant: one client of an agency. Its rule files act only on its own
 * accounts, media, hosts and kv (bindings/lua_tenants.c routes the engine's
 * events to it). Zero budgets and NULL paths take the top-level values. */
struct tenant_cfg {
    char *name;                 /* [a-z0-9_-], 1-32, the key in `tenants` */
    char *rules_dir;            /* its rule files (default: rules_dir/NAME) */
    struct strlist media_roots; /* local files its rules may post */
    struct strlist intake;      /* its watched media folders */
    struct strlist http_allow;  /* hosts its rules may reach */
    struct strlist trust;       /* "ed25519:KEY" it takes shared libraries signed by */
    struct strlist libs;        /* pins, "name=range" */
    long long lua_instructions; /* per call (0: lua.instructions) */
    size_t lua_call_memory, lua_state_memory, lua_rule_memory;
    double posts_per_day; /* inits across its accounts per rolling day (0: none) */
};

#define TENANT_NAME_MAX 32
#define TENANTS_MAX     1024

struct tikd_config {
    char *base_dir; /* relative paths are taken from here (the config file's dir) */
    char *data_dir, *rules_dir, *scripts_dir;
    struct strlist lib_paths;
    struct strlist media_roots;    /* folders rules may post media from (tikd.upload) */
    char *media_public_url;        /* where TikTok pulls local images from (a verified prefix) */
    double media_url_ttl;          /* how long such a URL works at most */
    bool media_check_urls;         /* fetch the head of each photo URL and check it first */
    char *media_probe;             /* the media probe program, or NULL: found (core/probe.c) */
    double media_probe_timeout;    /* seconds it may take on one file */
    double media_probe_retry;      /* a post waits this long when it could not run */
    struct strlist intake_folders; /* watched media folders: new media calls on_media */
    double intake_settle;          /* seconds a file must stay unchanged to be taken */
    bool rules_watch;              /* reload the rules when their files change */
    int log_level;                 /* enum tlog_level */
    int log_format;                /* enum tlog_format */
    struct strlist listen;
    char *admin_socket;           /* the admin API's unix socket (NULL: data_dir/admin.sock) */
    struct strlist admin_listen;  /* the admin API's TCP addresses (none by default) */
    struct strlist admin_origins; /* browser origins that may change things (a TLS proxy's) */
    long long server_max_connections, server_max_per_ip; /* the HTTP server's */
    double server_request_timeout, server_idle_timeout;
    size_t map_initial, map_max;
    double commit_interval;      /* seconds between the daemon's durable commits, at least */
    long long lua_instructions;  /* per call into a rule */
    size_t lua_call_memory;      /* bytes a call may grow its state by */
    size_t lua_state_memory;     /* bytes one generation's state may hold */
    size_t lua_rule_memory;      /* bytes one rule file may hold */
    long long lua_pattern_steps; /* matcher steps per call into a rule */
    double lua_call_time;        /* seconds a call may run on the loop */
    double shutdown_grace;       /* seconds running calls get on SIGTERM */
    char *client_key, *client_secret;
    char *auth_url, *api_url, *redirect_uri;
    char *webhook_url;          /* the webhook URL registered with TikTok (tikd doctor checks it) */
    bool tiktok_audited;        /* TikTok has audited the app (what tikd doctor expects of it) */
    double compliance_interval; /* seconds between the daemon's compliance checks (0: none) */
    struct strlist notify_webhooks; /* where alerts are POSTed, signed */
    char *notify_secret;            /* their HMAC-SHA256 key */
    double notify_quiet;            /* the same alert stays quiet this long */
    double notify_backoff;          /* the first retry of a delivery after this long */
    long long notify_failures;      /* failed jobs of an account ... */
    double notify_failure_window;   /* ... within this long: an alert */
    char *vault_key_file;
    char *scopes; /* scopes to ask for when connecting an account */
    bool pkce;    /* send PKCE (TikTok's hex S256) in authorizations */
    double oauth_state_ttl, oauth_refresh_ahead, oauth_sweep_interval;
    double webhook_tolerance;  /* seconds a webhook signature's t may be off */
    long long jobs_max_active; /* jobs the pipeline works at once */
    double post_id_wait;     /* a public post asks TikTok for its post id this long (0: webhook) */
    double unsure_wait;      /* an unsure pull waits this long for TikTok to say */
    struct rl_config limits; /* TikTok's budgets */
    /* the HTTP client */
    char *http_ca_file, *http_proxy;
    double http_connect_timeout, http_timeout, http_low_speed_time;
    size_t http_max_response;
    long long http_max_attempts;
    struct strlist http_allow_hosts; /* hosts rules may reach with tikd.http */
    struct strlist trust;            /* the implicit tenant's library keys (`trust`) */
    struct strlist libs;             /* ... and its pins (`libs = { name = "^1.2" }`) */
    struct tenant_cfg *tenants;      /* `tenants = { name = { ... } }`, in name order */
    size_t ntenants;
    struct rl_quota *quotas; /* the tenants' quotas, which limits.quotas points to */
    /* a cluster (docs/cluster.md): Redis, this node's name and its leases;
     * no cluster.redis: a single node, no Redis */
    char *cluster_redis, *cluster_node, *cluster_prefix, *cluster_user, *cluster_password;
    double cluster_lease, cluster_margin;
};

/* True if name is a valid tenant name ([a-z0-9_-], 1-32, not starting with
 * '-'). */
bool config_tenant_name_valid(const char *name);

/* Declare tenant name (its keys may all be defaults); 0 if it exists. */
int config_tenant_add(struct tikd_config *c, const char *name, struct tikd_err *e);

/* The tenant called name, or NULL. */
const struct tenant_cfg *config_tenant(const struct tikd_config *c, const char *name);

/* What one tenant's rules run with: its own settings, the top-level ones
 * where it has none (t NULL: the implicit tenant of a config without
 * `tenants`, which is the top level). */
struct tenant_view {
    const char *name; /* NULL: the implicit tenant */
    const char *rules_dir;
    const struct strlist *media_roots, *intake, *http_allow, *trust, *libs;
    long long lua_instructions;
    size_t lua_call_memory, lua_state_memory, lua_rule_memory;
    double posts_per_day;
};
void config_tenant_view(const struct tikd_config *c, const struct tenant_cfg *t,
                        struct tenant_view *out);

/* A value as the file (or the environment) gave it. */
enum config_vtype { CV_STR, CV_INT, CV_NUM, CV_BOOL, CV_LIST };
struct config_value {
    enum config_vtype type;
    const char *s;
    long long i;
    double d;
    bool b;
    const char *const *list;
    size_t nlist;
};

/* Fill c with the defaults. */
void config_init(struct tikd_config *c);

/* Free every string c owns; c may be reused after config_init(). */
void config_free(struct tikd_config *c);

/* Set a dotted key ("log.level", "tiktok.api_url") from v. Unknown keys and
 * bad values fail with TIKD_EINVAL and a message naming key, value and what
 * is allowed; c is unchanged then. */
int config_set(struct tikd_config *c, const char *key, const struct config_value *v,
               struct tikd_err *e);

/* Apply environment overrides (TIKD_CLIENT_SECRET, TIKD_CLIENT_KEY,
 * TIKD_VAULT_KEY_FILE, TIKD_DATA_DIR, TIKD_LOG_LEVEL) read through getenv_fn
 * (getenv in production, a table in tests). */
int config_apply_env(struct tikd_config *c, const char *(*getenv_fn)(const char *name),
                     struct tikd_err *e);

/* Cross-key checks, relative paths made absolute from base_dir, and the
 * client secret registered as a log secret. Call once, after all sets. */
int config_finish(struct tikd_config *c, struct tikd_err *e);

/* The cluster.* settings as core/cluster takes them (cluster_redis set). */
struct cluster_opts config_cluster_opts(const struct tikd_config *c);

/* Iterate over the documented keys (for `tikd help config`): returns the
 * name and a one-line description of key i, or NULL past the end. */
const char *config_key_doc(size_t i, const char **doc);

/* True if name is a config key. */
bool config_has_key(const char *name);

/* True if host (from a URL) is a loopback name or address. */
bool config_host_is_loopback(const char *host, size_t len);

#endif
