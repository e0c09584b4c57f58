/* config.c - the key table and its validators (see config.h).
 *
 * Every key is one row: name, type, where it lives in struct tikd_config,
 * bounds or choices, and a description. Validation happens in config_set(),
 * so a value from the file and a value from the environment meet the same
 * checks. Defaults point at TikTok's real hosts; tests and demos override the
 * base URLs to reach tests/fake on loopback. */
#include "config.h"
#include "cluster.h"
#include "log.h"
#include "semver.h"

#include <ctype.h>
#include <openssl/crypto.h>
#include <errno.h>
#include <limits.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifndef TIKD_SCRIPTS_DIR
#define TIKD_SCRIPTS_DIR "/usr/local/share/tikd/scripts"
#endif

enum ktype {
    K_PATH,
    K_STR,
    K_SECRET,
    K_URL,
    K_REDIRECT,
    K_ENUM,
    K_INT,
    K_SIZE,
    K_SECONDS,
    K_COUNT, /* a whole number kept as a double (limits) */
    K_PATHS,
    K_LISTEN,
    K_HOSTS,
    K_URLS, /* a list of http(s) URLs (plain http only to loopback) */
    K_BOOL,
    K_SCOPES,
    K_KEYS /* a list of "ed25519:BASE64" public keys (32 bytes) */
};

struct key {
    const char *name;
    enum ktype type;
    size_t off;
    double min, max;            /* K_INT, K_SIZE, K_SECONDS */
    const char *const *choices; /* K_ENUM, NULL-terminated */
    const char *doc;
};

static const char *const levels[] = {"debug", "info", "warn", "error", NULL};
static const char *const formats[] = {"logfmt", "json", NULL};

#define KB   1024.0
#define MB   (1024.0 * 1024.0)
#define GB   (1024.0 * 1024.0 * 1024.0)
#define O(f) offsetof(struct tikd_config, f)

static const struct key keys[] = {
    {"data_dir", K_PATH, O(data_dir), 0, 0, NULL, "directory of the LMDB database"},
    {"rules_dir", K_PATH, O(rules_dir), 0, 0, NULL, "directory of the rule files (*.lua)"},
    {"scripts_dir", K_PATH, O(scripts_dir), 0, 0, NULL, "the engine's Lua library"},
    {"lib_paths", K_PATHS, O(lib_paths), 0, 0, NULL,
     "list of folders rules may require() pure-Lua modules from"},
    {"media_roots", K_PATHS, O(media_roots), 0, 0, NULL,
     "list of folders rules may post media from with tikd.upload"},
    {"media.public_url", K_URL, O(media_public_url), 0, 0, NULL,
     "a verified domain or URL prefix reverse-proxied to tikd's /media/: local images of photo "
     "posts are served there for TikTok to pull, e.g. \"https://media.example.com/tikd/\""},
    {"intake.folders", K_PATHS, O(intake_folders), 0, 0, NULL,
     "watched media folders: each new file (by content) calls the rules' on_media(item)"},
    {"intake.settle", K_SECONDS, O(intake_settle), 0.05, 3600, NULL,
     "seconds a new file must stay unchanged before it is taken (a copy in progress is not)"},
    {"rules.watch", K_BOOL, O(rules_watch), 0, 0, NULL,
     "reload the rules when a file in rules_dir or lib_paths changes (as SIGHUP does)"},
    {"media.check_urls", K_BOOL, O(media_check_urls), 0, 0, NULL,
     "fetch the first 64 KiB of each photo URL and check format, size and dimensions before "
     "the init (TikTok never says which image is wrong)"},
    {"media.url_ttl", K_SECONDS, O(media_url_ttl), 60, 86400, NULL,
     "seconds a served image URL works at most (TikTok gives a pull an hour)"},
    {"media.probe", K_PATH, O(media_probe), 0, 0, NULL,
     "the media probe program (default: tikd-probe beside tikd, else under the install "
     "prefix's lib/tikd/)"},
    {"media.probe_timeout", K_SECONDS, O(media_probe_timeout), 1, 600, NULL,
     "seconds the media probe may take on one file before it is killed and the file refused"},
    {"media.probe_retry", K_SECONDS, O(media_probe_retry), 1, 86400, NULL,
     "seconds a post waits when the media probe could not run (missing, or past its time on a "
     "busy machine) before its pre-flight is tried again"},
    {"listen", K_LISTEN, O(listen), 0, 0, NULL,
     "list of addresses to serve on: \"host:port\" or \"unix:/path\""},
    {"admin.socket", K_PATH, O(admin_socket), 0, 0, NULL,
     "the admin API's unix socket, mode 0600, for the CLI (default: admin.sock in data_dir)"},
    {"admin.listen", K_LISTEN, O(admin_listen), 0, 0, NULL,
     "list of addresses the admin API and dashboard are served on, e.g. { \"127.0.0.1:8788\" } "
     "(default: none; never the public listen address; bearer tokens only)"},
    {"admin.origins", K_URLS, O(admin_origins), 0, 0, NULL,
     "origins a browser may change things from besides the listener's own, e.g. "
     "{ \"https://tikd-admin.example.com\" } when a TLS proxy serves the dashboard"},
    {"server.max_connections", K_INT, O(server_max_connections), 1, 100000, NULL,
     "connections the HTTP server keeps open at once, all clients together"},
    {"server.max_per_ip", K_INT, O(server_max_per_ip), 1, 100000, NULL,
     "connections one client address may keep open at once"},
    {"server.request_timeout", K_SECONDS, O(server_request_timeout), 0.1, 3600, NULL,
     "seconds a client has to send a whole request (headers and body) once it connects or "
     "its last answer went out; a slower one is cut"},
    {"server.idle_timeout", K_SECONDS, O(server_idle_timeout), 1, 3600, NULL,
     "seconds a connection may stay silent"},
    {"log.level", K_ENUM, O(log_level), 0, 0, levels, "least severe level logged"},
    {"log.format", K_ENUM, O(log_format), 0, 0, formats, "logfmt (key=value) or json lines"},
    {"store.map_initial", K_SIZE, O(map_initial), 1 * MB, 1024 * GB, NULL,
     "starting LMDB map size (bytes, or \"64MiB\")"},
    {"store.map_max", K_SIZE, O(map_max), 1 * MB, 64 * 1024 * GB, NULL,
     "ceiling the map may grow to"},
    {"store.commit_interval", K_SECONDS, O(commit_interval), 0, 1, NULL,
     "the daemon's durable commits are at least this far apart: a busy daemon's writes "
     "wait up to this long to share one (0: one per loop turn with writes)"},
    {"lua.instructions", K_INT, O(lua_instructions), 1000, 1e12, NULL,
     "Lua instructions one call into a rule may run"},
    {"lua.call_memory", K_SIZE, O(lua_call_memory), 64 * KB, 64 * GB, NULL,
     "bytes one call into a rule may grow its state by"},
    {"lua.state_memory", K_SIZE, O(lua_state_memory), 1 * MB, 1024 * GB, NULL,
     "bytes one rule generation's Lua state may hold"},
    {"lua.rule_memory", K_SIZE, O(lua_rule_memory), 64 * KB, 1024 * GB, NULL,
     "bytes one rule file may hold in its generation's state (what its calls and its load "
     "keep)"},
    {"lua.pattern_steps", K_INT, O(lua_pattern_steps), 1000, 1e12, NULL,
     "matching steps all the string.find/match/gmatch/gsub of one call may take together"},
    {"lua.call_time", K_SECONDS, O(lua_call_time), 0.001, 3600, NULL,
     "seconds one call into a rule may run on the loop, in Lua or in C (waits do not count)"},
    {"shutdown_grace", K_SECONDS, O(shutdown_grace), 0, 3600, NULL,
     "seconds running rule calls get to finish on SIGTERM"},
    {"tiktok.client_key", K_STR, O(client_key), 0, 0, NULL, "the app's client key"},
    {"tiktok.client_secret", K_SECRET, O(client_secret), 0, 0, NULL,
     "the app's client secret (prefer TIKD_CLIENT_SECRET)"},
    {"tiktok.auth_url", K_URL, O(auth_url), 0, 0, NULL, "TikTok's authorize page"},
    {"tiktok.api_url", K_URL, O(api_url), 0, 0, NULL, "base of TikTok's v2 REST API"},
    {"tiktok.redirect_uri", K_REDIRECT, O(redirect_uri), 0, 0, NULL,
     "OAuth redirect URI, exactly as registered with TikTok"},
    {"tiktok.webhook_url", K_URL, O(webhook_url), 0, 0, NULL,
     "the webhook callback URL registered in TikTok's developer portal (tikd serves "
     "/webhooks/tiktok; tikd doctor checks that the URL is HTTPS)"},
    {"tiktok.audited", K_BOOL, O(tiktok_audited), 0, 0, NULL,
     "TikTok has audited the app; until then it may post only SELF_ONLY to private accounts "
     "and reach 5 creators a day (tikd doctor says what that implies)"},
    {"compliance.interval", K_SECONDS, O(compliance_interval), 0, 30 * 86400, NULL,
     "seconds between the daemon's compliance checks (tikd doctor run as a child; 0: never)"},
    {"notify.webhooks", K_URLS, O(notify_webhooks), 0, 0, NULL,
     "URLs that get each alert as a signed JSON POST (account.reauth, failures, reload, breaker, "
     "daily_cap, compliance), retried with backoff from a queue in the database"},
    {"notify.secret", K_SECRET, O(notify_secret), 0, 0, NULL,
     "the key of the HMAC-SHA256 signature of each notification (prefer TIKD_NOTIFY_SECRET)"},
    {"notify.backoff", K_SECONDS, O(notify_backoff), 0.1, 3600, NULL,
     "seconds before the first retry of a notification the receiver did not take (doubling, "
     "at most an hour, 12 attempts)"},
    {"notify.quiet", K_SECONDS, O(notify_quiet), 0, 7 * 86400, NULL,
     "seconds the same alert (kind and subject) stays quiet after it was raised"},
    {"notify.failures", K_INT, O(notify_failures), 1, 1000, NULL,
     "failed jobs of one account within notify.failure_window that raise a failures alert"},
    {"notify.failure_window", K_SECONDS, O(notify_failure_window), 1, 30 * 86400, NULL,
     "the window of notify.failures"},
    {"vault.key_file", K_PATH, O(vault_key_file), 0, 0, NULL,
     "file holding the vault keys (mode 0600)"},
    {"tiktok.scopes", K_SCOPES, O(scopes), 0, 0, NULL,
     "scopes to ask for, comma-separated (spec §1.9)"},
    {"tiktok.pkce", K_BOOL, O(pkce), 0, 0, NULL,
     "send a PKCE challenge when connecting accounts (TikTok's hex S256, spec §1.3)"},
    {"oauth.state_ttl", K_SECONDS, O(oauth_state_ttl), 1, 86400, NULL,
     "seconds a started authorization stays valid (TikTok guidance: 30 minutes)"},
    {"oauth.refresh_ahead", K_SECONDS, O(oauth_refresh_ahead), 1, 86400, NULL,
     "refresh an access token this long before it expires (at most a quarter of its life)"},
    {"oauth.sweep_interval", K_SECONDS, O(oauth_sweep_interval), 0.1, 3600, NULL,
     "seconds between token upkeep sweeps"},
    {"webhook.tolerance", K_SECONDS, O(webhook_tolerance), 1, 86400, NULL,
     "seconds a webhook's signed timestamp may differ from now (spec §5.3: 300 is usual)"},
    {"jobs.max_active", K_INT, O(jobs_max_active), 1, 4096, NULL,
     "jobs worked at once (each waits on TikTok most of its time; TikTok's budgets still hold "
     "every token to its rate)"},
    {"jobs.post_id_wait", K_SECONDS, O(post_id_wait), 0, 30 * 86400, NULL,
     "seconds a published public post keeps asking TikTok for its post id, which comes after "
     "moderation (minutes, at times hours); 0: only the publicly_available webhook brings it"},
    {"jobs.unsure_wait", K_SECONDS, O(unsure_wait), 1, 30 * 86400, NULL,
     "seconds a pull whose init may have reached TikTok unanswered waits for TikTok to say what "
     "became of it (a webhook, the creator's public posts) before it fails for the operator to "
     "check; it is never sent again by itself"},
#define L(b, f) O(limits.l[b].f)
    {"limits.window", K_SECONDS, O(limits.window), 1, 86400, NULL,
     "the window of the per-token budgets below (TikTok: a minute)"},
    {"limits.burst", K_COUNT, O(limits.burst), 1, 100, NULL,
     "requests of one per-token budget that may go at once (1: evenly spaced)"},
    {"limits.video_init", K_COUNT, L(RL_VIDEO_INIT, count), 0, 1e6, NULL,
     "direct video post inits per token per window (0: no limit)"},
    {"limits.inbox_init", K_COUNT, L(RL_INBOX_INIT, count), 0, 1e6, NULL,
     "inbox (draft) video inits per token per window"},
    {"limits.content_init", K_COUNT, L(RL_CONTENT_INIT, count), 0, 1e6, NULL,
     "photo post inits per token per window"},
    {"limits.shared_init", K_BOOL, O(limits.shared_init), 0, 0, NULL,
     "the three init endpoints share the video_init budget"},
    {"limits.creator_info", K_COUNT, L(RL_CREATOR_INFO, count), 0, 1e6, NULL,
     "creator_info queries per token per window"},
    {"limits.status", K_COUNT, L(RL_STATUS, count), 0, 1e6, NULL,
     "status fetches per token per window"},
    {"limits.daily_posts", K_COUNT, L(RL_DAILY_POSTS, count), 0, 1e6, NULL,
     "direct posts per creator per daily window (TikTok: about 15, shared with other apps)"},
    {"limits.daily_margin", K_COUNT, L(RL_DAILY_POSTS, margin), 0, 1e6, NULL,
     "daily posts kept free below limits.daily_posts (for the creator's other apps)"},
    {"limits.daily_window", K_SECONDS, L(RL_DAILY_POSTS, per), 1, 31 * 86400, NULL,
     "the rolling window of limits.daily_posts"},
    {"limits.pending_shares", K_COUNT, L(RL_PENDING_SHARES, count), 0, 1e6, NULL,
     "inbox shares (drafts) per creator per window (TikTok: 5; 0: count none)"},
    {"limits.pending_window", K_SECONDS, L(RL_PENDING_SHARES, per), 1, 31 * 86400, NULL,
     "the rolling window of limits.pending_shares"},
    {"limits.active_users", K_COUNT, L(RL_ACTIVE_USERS, count), 0, 1e9, NULL,
     "creators that may post per window for this app (set at audit; unaudited: 5; 0: no cap)"},
    {"limits.active_window", K_SECONDS, L(RL_ACTIVE_USERS, per), 1, 31 * 86400, NULL,
     "the rolling window of limits.active_users"},
    {"limits.guard", K_SECONDS, O(limits.guard), 0, 60, NULL,
     "seconds added to every window: clock and network delays differ from TikTok's"},
    {"limits.cap_probe", K_SECONDS, O(limits.cap_probe), 1, 7 * 86400, NULL,
     "after TikTok says a creator's cap is full, ask again this much later"},
#undef L
    {"http.ca_file", K_PATH, O(http_ca_file), 0, 0, NULL,
     "CA bundle for TLS (default: the system's); TLS is always verified"},
    {"http.proxy", K_STR, O(http_proxy), 0, 0, NULL, "proxy URL, e.g. http://proxy:3128"},
    {"http.connect_timeout", K_SECONDS, O(http_connect_timeout), 0.1, 600, NULL,
     "seconds to establish a connection"},
    {"http.timeout", K_SECONDS, O(http_timeout), 0, 86400, NULL,
     "seconds one API request may take in all (uploads set their own)"},
    {"http.low_speed_time", K_SECONDS, O(http_low_speed_time), 1, 3600, NULL,
     "seconds below 1 KiB/s after which a transfer counts as stalled"},
    {"http.max_response", K_SIZE, O(http_max_response), 1 * KB, 1 * GB, NULL,
     "largest response body accepted"},
    {"http.max_attempts", K_INT, O(http_max_attempts), 1, 20, NULL,
     "attempts per request, the first included"},
    {"http.allow_hosts", K_HOSTS, O(http_allow_hosts), 0, 0, NULL,
     "hosts rules may reach with tikd.http: \"cms.example.com\", \"*.example.com\", "
     "\"127.0.0.1:8080\""},
    {"trust", K_KEYS, O(trust), 0, 0, NULL,
     "public keys whose signed rule libraries `tikd lib install` takes, e.g. "
     "{ \"ed25519:BASE64\" } (from `tikd lib keygen`); every tenant trusts them too"},
    {"cluster.redis", K_STR, O(cluster_redis), 0, 0, NULL,
     "the cluster's Redis, \"IP:port\", \"[IPv6]:port\" or \"unix:/path\" (no names: resolving "
     "blocks); unset: a single node, no Redis (docs/cluster.md)"},
    {"cluster.node", K_STR, O(cluster_node), 0, 0, NULL,
     "this node's name in the cluster, unique among its nodes: 1-64 of A-Z a-z 0-9 . _ -"},
    {"cluster.lease", K_SECONDS, O(cluster_lease), 1, 3600, NULL,
     "seconds an account's lease lasts at Redis; renewed every third of it, and how long a dead "
     "node's accounts wait for another node"},
    {"cluster.margin", K_SECONDS, O(cluster_margin), 0.001, 1200, NULL,
     "seconds before its lease's end a node stops acting for an account (clock drift and the "
     "time to the wire); less than a third of cluster.lease"},
    {"cluster.prefix", K_STR, O(cluster_prefix), 0, 0, NULL,
     "the Redis keys' prefix, in a hash tag: {PREFIX}:... (several clusters on one Redis)"},
    {"cluster.user", K_STR, O(cluster_user), 0, 0, NULL,
     "the Redis ACL user to AUTH as (with cluster.password)"},
    {"cluster.password", K_SECRET, O(cluster_password), 0, 0, NULL,
     "the Redis password (prefer TIKD_REDIS_PASSWORD)"},
    {"libs.NAME", K_STR, 0, 0, 0, NULL,
     "the version range of shared library NAME that require \"NAME\" loads, e.g. "
     "libs = { captions = \"^1.2\" } (an installed, signed bundle; never a file in a folder)"},
};
#define NKEYS (sizeof keys / sizeof keys[0])

/* A tenant's keys, under tenants.NAME. (the prefix is how they are shown). */
#define TPFX "tenants.NAME."
#define T(f) offsetof(struct tenant_cfg, f)
static const struct key tkeys[] = {
    {TPFX "rules_dir", K_PATH, T(rules_dir), 0, 0, NULL,
     "the tenant's rule files: they act only on its accounts, media, hosts and kv (default: "
     "rules_dir/NAME)"},
    {TPFX "media_roots", K_PATHS, T(media_roots), 0, 0, NULL,
     "folders the tenant's rules may post local media from (none: only URLs)"},
    {TPFX "intake.folders", K_PATHS, T(intake), 0, 0, NULL,
     "the tenant's watched media folders: new media calls its rules' on_media"},
    {TPFX "http.allow_hosts", K_HOSTS, T(http_allow), 0, 0, NULL,
     "hosts the tenant's rules may reach with tikd.http"},
    {TPFX "trust", K_KEYS, T(trust), 0, 0, NULL,
     "public keys the tenant takes shared libraries signed by (besides the top-level trust)"},
    {TPFX "libs.LIB", K_STR, 0, 0, 0, NULL,
     "the version range of library LIB the tenant's require \"LIB\" loads"},
    {TPFX "lua.instructions", K_INT, T(lua_instructions), 1000, 1e12, NULL,
     "Lua instructions one call into the tenant's rules may run (default: lua.instructions)"},
    {TPFX "lua.call_memory", K_SIZE, T(lua_call_memory), 64 * KB, 64 * GB, NULL,
     "bytes one call may grow the tenant's state by (default: lua.call_memory)"},
    {TPFX "lua.state_memory", K_SIZE, T(lua_state_memory), 1 * MB, 1024 * GB, NULL,
     "bytes the tenant's Lua state may hold (default: lua.state_memory)"},
    {TPFX "lua.rule_memory", K_SIZE, T(lua_rule_memory), 64 * KB, 1024 * GB, NULL,
     "bytes one of the tenant's rule files may hold (default: lua.rule_memory)"},
    {TPFX "quota.posts_per_day", K_COUNT, T(posts_per_day), 0, 1e6, NULL,
     "post inits across the tenant's accounts per rolling 24 h, on top of TikTok's limits "
     "(0: none of its own)"},
};
#undef T
#define NTKEYS (sizeof tkeys / sizeof tkeys[0])

const char *config_key_doc(size_t i, const char **doc)
{
    const struct key *k = i < NKEYS ? &keys[i] : i < NKEYS + NTKEYS ? &tkeys[i - NKEYS] : NULL;
    if (k && doc)
        *doc = k->doc;
    return k ? k->name : NULL;
}

bool config_tenant_name_valid(const char *name)
{
    size_t n = name ? strlen(name) : 0;
    return n >= 1 && n <= TENANT_NAME_MAX && name[0] != '-' &&
           strspn(name, "abcdefghijklmnopqrstuvwxyz0123456789_-") == n;
}

/* The row of key `name` (a tenant's key without its "tenants.X." prefix
 * when tenant). */
static const struct key *find_key(const char *name, bool tenant)
{
    const struct key *t = tenant ? tkeys : keys;
    size_t n = tenant ? NTKEYS : NKEYS, skip = tenant ? strlen(TPFX) : 0;
    for (size_t i = 0; i < n; i++)
        if (t[i].off && strcmp(t[i].name + skip, name) == 0)
            return &t[i];
    return NULL;
}

/* "tenants.acme.media_roots" -> "acme" in out and "media_roots"; NULL if
 * name is not a tenant's key. */
static const char *tenant_key(const char *name, char *out, size_t n)
{
    if (strncmp(name, "tenants.", 8) != 0)
        return NULL;
    const char *t = name + 8, *dot = strchr(t, '.');
    if (!dot || (size_t)(dot - t) >= n)
        return NULL;
    memcpy(out, t, (size_t)(dot - t));
    out[dot - t] = '\0';
    return dot + 1;
}

bool config_has_key(const char *name)
{
    char tn[64];
    const char *rest = tenant_key(name, tn, sizeof tn);
    return rest ? find_key(rest, true) != NULL : find_key(name, false) != NULL;
}

const struct tenant_cfg *config_tenant(const struct tikd_config *c, const char *name)
{
    for (size_t i = 0; name && i < c->ntenants; i++)
        if (strcmp(c->tenants[i].name, name) == 0)
            return &c->tenants[i];
    return NULL;
}

void config_tenant_view(const struct tikd_config *c, const struct tenant_cfg *t,
                        struct tenant_view *v)
{
    if (!t) {
        *v = (struct tenant_view){NULL,
                                  c->rules_dir,
                                  &c->media_roots,
                                  &c->intake_folders,
                                  &c->http_allow_hosts,
                                  &c->trust,
                                  &c->libs,
                                  c->lua_instructions,
                                  c->lua_call_memory,
                                  c->lua_state_memory,
                                  c->lua_rule_memory,
                                  0};
        return;
    }
    *v = (struct tenant_view){
        t->name,
        t->rules_dir,
        &t->media_roots,
        &t->intake,
        &t->http_allow,
        &t->trust,
        &t->libs,
        t->lua_instructions ? t->lua_instructions : c->lua_instructions,
        t->lua_call_memory ? t->lua_call_memory : c->lua_call_memory,
        t->lua_state_memory ? t->lua_state_memory : c->lua_state_memory,
        t->lua_rule_memory ? t->lua_rule_memory : c->lua_rule_memory,
        t->posts_per_day,
    };
}

static char *xstrdup(const char *s)
{
    return s ? strdup(s) : NULL;
}

void config_init(struct tikd_config *c)
{
    memset(c, 0, sizeof *c);
    c->data_dir = xstrdup("/var/lib/tikd");
    c->rules_dir = xstrdup("/etc/tikd/rules");
    c->scripts_dir = xstrdup(TIKD_SCRIPTS_DIR);
    c->log_level = TLOG_INFO;
    c->log_format = TLOG_LOGFMT;
    c->listen.v = calloc(2, sizeof(char *));
    if (c->listen.v) {
        c->listen.v[0] = xstrdup("127.0.0.1:8787");
        c->listen.n = 1;
    }
    c->map_initial = (size_t)(64 * MB);
    c->map_max = (size_t)(64 * GB);
    c->commit_interval = 0.005;
    c->lua_instructions = 10000000;
    c->lua_call_memory = (size_t)(32 * MB);
    c->lua_state_memory = (size_t)(256 * MB);
    c->lua_pattern_steps = 10000000;
    c->lua_rule_memory = (size_t)(64 * MB);
    c->lua_call_time = 1.0;
    c->shutdown_grace = 10;
    c->scopes = xstrdup("user.info.basic,video.publish,video.upload");
    c->pkce = true;
    c->oauth_state_ttl = 1800;
    c->oauth_refresh_ahead = 600;
    c->oauth_sweep_interval = 60;
    c->webhook_tolerance = 300;
    c->post_id_wait = 6 * 3600;
    c->unsure_wait = 2 * 3600; /* a pull times out after an hour at TikTok (spec §2.9) */
    c->media_url_ttl = 3600;
    c->compliance_interval = 86400;
    c->notify_quiet = 600;
    c->notify_backoff = 5;
    c->notify_failures = 3;
    c->notify_failure_window = 3600;
    c->media_check_urls = true;
    c->media_probe_timeout = 30;
    c->media_probe_retry = 60;
    c->intake_settle = 5;
    c->server_max_connections = 512;
    c->server_max_per_ip = 32;
    c->jobs_max_active = 64;
    c->server_request_timeout = 10;
    c->server_idle_timeout = 30;
    c->rules_watch = true;
    rl_config_default(&c->limits);
    /* the spec leaves open whether the init endpoints share one 6/min
     * budget: the safe reading (shared) unless the operator knows better */
    c->limits.shared_init = true;
    c->http_connect_timeout = 10;
    c->http_timeout = 120;
    c->http_low_speed_time = 30;
    c->http_max_response = (size_t)(8 * MB);
    c->http_max_attempts = 4;
    c->auth_url = xstrdup("https://www.tiktok.com/v2/auth/authorize/");
    c->api_url = xstrdup("https://open.tiktokapis.com");
    c->cluster_lease = 15;
    c->cluster_margin = 2;
}

static void strlist_free(struct strlist *l)
{
    for (size_t i = 0; i < l->n; i++)
        free(l->v[i]);
    free(l->v);
    l->v = NULL;
    l->n = 0;
}

static void secret_free(char *s)
{
    if (s) {
        OPENSSL_cleanse(s, strlen(s));
        free(s);
    }
}

/* Free the fields of the rows in t[0..n) in the struct at base. */
static void free_fields(void *base, const struct key *t, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (!t[i].off)
            continue; /* a row that only documents */
        void *field = (char *)base + t[i].off;
        switch (t[i].type) {
        case K_PATHS:
        case K_LISTEN:
        case K_HOSTS:
        case K_URLS:
        case K_KEYS:
            strlist_free(field);
            break;
        case K_SECRET:
            secret_free(*(char **)field);
            *(char **)field = NULL;
            break;
        case K_PATH:
        case K_STR:
        case K_URL:
        case K_REDIRECT:
        case K_SCOPES:
            free(*(char **)field);
            *(char **)field = NULL;
            break;
        default:
            break;
        }
    }
}

static void tenant_free(struct tenant_cfg *t)
{
    free_fields(t, tkeys, NTKEYS);
    strlist_free(&t->libs);
    free(t->name);
    t->name = NULL;
}

void config_free(struct tikd_config *c)
{
    free_fields(c, keys, NKEYS);
    strlist_free(&c->libs);
    for (size_t i = 0; i < c->ntenants; i++)
        tenant_free(&c->tenants[i]);
    free(c->tenants);
    c->tenants = NULL;
    c->ntenants = 0;
    free(c->quotas);
    c->quotas = NULL;
    c->limits.quotas = NULL;
    c->limits.nquotas = 0;
    free(c->base_dir);
    c->base_dir = NULL;
}

/* ---- validators ------------------------------------------------------ */

static const char *vtype_name(enum config_vtype t)
{
    switch (t) {
    case CV_STR:
        return "a string";
    case CV_INT:
        return "an integer";
    case CV_NUM:
        return "a number";
    case CV_BOOL:
        return "a boolean";
    case CV_LIST:
        return "a list";
    }
    return "?";
}

/* Render v for an error message, without ever showing a secret. */
static void show(const struct key *k, const struct config_value *v, char *out, size_t n)
{
    if (k->type == K_SECRET)
        snprintf(out, n, "(secret, not shown)");
    else if (v->type == CV_STR)
        snprintf(out, n, "\"%.200s\"", v->s);
    else if (v->type == CV_INT)
        snprintf(out, n, "%lld", v->i);
    else if (v->type == CV_NUM)
        snprintf(out, n, "%g", v->d);
    else if (v->type == CV_BOOL)
        snprintf(out, n, "%s", v->b ? "true" : "false");
    else
        snprintf(out, n, "a list of %zu", v->nlist);
}

static int bad(struct tikd_err *e, const struct key *k, const struct config_value *v,
               const char *allowed)
{
    char shown[256];
    show(k, v, shown, sizeof shown);
    return tikd_fail(e, TIKD_EINVAL, "config: key '%s': value %s is not allowed: %s", k->name,
                     shown, allowed);
}

bool config_host_is_loopback(const char *host, size_t len)
{
    if ((len == 9 && strncmp(host, "localhost", 9) == 0) ||
        (len == 5 && strncmp(host, "[::1]", 5) == 0))
        return true;
    if (len >= 4 && strncmp(host, "127.", 4) == 0) {
        for (size_t i = 4; i < len; i++)
            if (!isdigit((unsigned char)host[i]) && host[i] != '.')
                return false;
        return true;
    }
    return false;
}

/* Checks an absolute http(s) URL; `redirect` adds TikTok's redirect URI
 * rules (no query, no fragment, under 512 characters). */
static const char *url_problem(const char *u, bool redirect)
{
    const char *rest;
    bool https = strncmp(u, "https://", 8) == 0;
    if (https)
        rest = u + 8;
    else if (strncmp(u, "http://", 7) == 0)
        rest = u + 7;
    else
        return "expected an absolute https:// URL";
    size_t hostlen = strcspn(rest, "/?#");
    const char *host = rest;
    if (hostlen == 0)
        return "the URL has no host";
    for (size_t i = 0; i < strlen(u); i++)
        if ((unsigned char)u[i] <= ' ' || u[i] == 0x7f)
            return "URLs may not contain spaces or control characters";
    /* strip the port for the loopback test */
    size_t hl = hostlen;
    if (host[0] == '[') {
        const char *rb = memchr(host, ']', hostlen);
        hl = rb ? (size_t)(rb - host) + 1 : hostlen;
    } else {
        const char *colon = memchr(host, ':', hostlen);
        if (colon)
            hl = (size_t)(colon - host);
    }
    if (!https && !config_host_is_loopback(host, hl))
        return "plain http:// is allowed only for loopback hosts (tests); use https://";
    if (redirect) {
        if (strchr(u, '?'))
            return "a redirect URI may not have a query string (TikTok requires a static URI)";
        if (strchr(u, '#'))
            return "a redirect URI may not have a fragment";
        if (strlen(u) >= 512)
            return "a redirect URI must be under 512 characters";
    } else if (strchr(u, '#') || strchr(u, '?')) {
        return "a base URL may not have a query string or fragment";
    }
    return NULL;
}

/* "64MiB", "1GiB", "500MB", "4096" (bytes); NULL on junk. */
static bool parse_size(const char *s, double *out)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (end == s || errno || v < 0)
        return false;
    while (*end == ' ')
        end++;
    static const struct {
        const char *unit;
        double mul;
    } units[] = {{"", 1},          {"B", 1},    {"KiB", KB}, {"MiB", MB}, {"GiB", GB},
                 {"TiB", GB * KB}, {"KB", 1e3}, {"MB", 1e6}, {"GB", 1e9}, {"TB", 1e12},
                 {"K", KB},        {"M", MB},   {"G", GB}};
    for (size_t i = 0; i < sizeof units / sizeof units[0]; i++) {
        if (strcmp(end, units[i].unit) == 0) {
            *out = v * units[i].mul;
            return true;
        }
    }
    return false;
}

static const char *listen_problem(const char *a)
{
    if (strncmp(a, "unix:", 5) == 0)
        return a[5] == '/' && strlen(a) < 100 ? NULL
                                              : "a unix socket needs an absolute path under 100 "
                                                "characters: \"unix:/run/tikd.sock\"";
    const char *colon = strrchr(a, ':');
    if (!colon || colon == a)
        return "expected \"host:port\" or \"unix:/path\"";
    char *end;
    long port = strtol(colon + 1, &end, 10);
    if (*end || colon[1] == '\0' || port < 0 || port > 65535)
        return "the port must be a number from 0 to 65535";
    return NULL;
}

static const char *host_pattern_problem(const char *h)
{
    const char *p = strncmp(h, "*.", 2) == 0 ? h + 2 : h;
    if (!*p)
        return "expected a host name, \"*.domain\" or \"host:port\"";
    for (; *p; p++)
        if (!isalnum((unsigned char)*p) && !strchr(".-:[]", *p))
            return "expected a host name, \"*.domain\" or \"host:port\" (no scheme, no path)";
    return NULL;
}

/* "ed25519:" and the base64 of a 32-byte public key. */
static const char *trust_key_problem(const char *s)
{
    size_t n = strlen(s);
    if (strncmp(s, "ed25519:", 8) != 0 || n != 8 + 44 || s[n - 1] != '=' ||
        strspn(s + 8, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/") != 43)
        return "expected \"ed25519:\" and a 44-character base64 public key (tikd lib keygen "
               "prints one)";
    return NULL;
}

static int set_strlist(struct strlist *dst, const struct key *k, const struct config_value *v,
                       struct tikd_err *e)
{
    for (size_t i = 0; i < v->nlist; i++) {
        const char *item = v->list[i];
        const char *why = NULL;
        if (!item || !*item)
            why = "list items must be non-empty strings";
        else if (k->type == K_LISTEN)
            why = listen_problem(item);
        else if (k->type == K_HOSTS)
            why = host_pattern_problem(item);
        else if (k->type == K_URLS)
            why = url_problem(item, false);
        else if (k->type == K_KEYS)
            why = trust_key_problem(item);
        if (why) {
            char shown[256];
            snprintf(shown, sizeof shown, "\"%.200s\" (item %zu)", item ? item : "", i + 1);
            return tikd_fail(e, TIKD_EINVAL, "config: key '%s': value %s is not allowed: %s",
                             k->name, shown, why);
        }
    }
    char **nv = calloc(v->nlist + 1, sizeof *nv);
    if (!nv)
        return tikd_fail(e, TIKD_ENOMEM, "config: out of memory");
    for (size_t i = 0; i < v->nlist; i++) {
        nv[i] = strdup(v->list[i]);
        if (!nv[i]) {
            for (size_t j = 0; j < i; j++)
                free(nv[j]);
            free(nv);
            return tikd_fail(e, TIKD_ENOMEM, "config: out of memory");
        }
    }
    strlist_free(dst);
    dst->v = nv;
    dst->n = v->nlist;
    return 0;
}

static int set_number(void *field, const struct key *k, const struct config_value *v,
                      struct tikd_err *e)
{
    double d;
    char allowed[200];
    if (v->type == CV_INT)
        d = (double)v->i;
    else if (v->type == CV_NUM)
        d = v->d;
    else if (v->type == CV_STR && k->type == K_SIZE && parse_size(v->s, &d))
        ;
    else if (v->type == CV_STR && k->type != K_SIZE) {
        char *end;
        errno = 0;
        d = strtod(v->s, &end);
        if (end == v->s || *end || errno)
            return bad(e, k, v, "expected a number");
    } else {
        return bad(e, k, v,
                   k->type == K_SIZE ? "expected a size in bytes: a number or \"64MiB\", \"2GiB\""
                                     : "expected a number");
    }
    if (d != d || d < k->min || d > k->max) {
        if (k->type == K_SIZE)
            snprintf(allowed, sizeof allowed, "expected a size from %.0f to %.0f bytes", k->min,
                     k->max);
        else
            snprintf(allowed, sizeof allowed, "expected a number from %g to %g", k->min, k->max);
        return bad(e, k, v, allowed);
    }
    switch (k->type) {
    case K_INT:
        if (d != (double)(long long)d)
            return bad(e, k, v, "expected a whole number");
        *(long long *)field = (long long)d;
        break;
    case K_SIZE:
        *(size_t *)field = (size_t)d;
        break;
    case K_COUNT:
        if (d != (double)(long long)d)
            return bad(e, k, v, "expected a whole number");
        *(double *)field = d;
        break;
    default:
        *(double *)field = d;
        break;
    }
    return 0;
}

/* Set the field of row k in the struct at base. */
static int set_key(void *base, const struct key *k, const struct config_value *v,
                   struct tikd_err *e)
{
    void *field = (char *)base + k->off;
    char allowed[256];

    switch (k->type) {
    case K_INT:
    case K_SIZE:
    case K_SECONDS:
    case K_COUNT:
        return set_number(field, k, v, e);
    case K_PATHS:
    case K_LISTEN:
    case K_HOSTS:
    case K_URLS:
    case K_KEYS:
        if (v->type != CV_LIST)
            return bad(e, k, v, "expected a list of strings, e.g. { \"a\", \"b\" }");
        return set_strlist(field, k, v, e);
    case K_BOOL:
        if (v->type == CV_BOOL) {
            *(bool *)field = v->b;
            return 0;
        }
        if (v->type == CV_STR && (strcmp(v->s, "true") == 0 || strcmp(v->s, "false") == 0)) {
            *(bool *)field = v->s[0] == 't';
            return 0;
        }
        return bad(e, k, v, "expected true or false");
    case K_ENUM: {
        size_t off = 0;
        allowed[0] = '\0';
        for (int i = 0; k->choices[i]; i++)
            off += (size_t)snprintf(allowed + off, sizeof allowed - off, "%s%s",
                                    i ? ", " : "expected one of ", k->choices[i]);
        if (v->type != CV_STR)
            return bad(e, k, v, allowed);
        for (int i = 0; k->choices[i]; i++) {
            if (strcmp(v->s, k->choices[i]) == 0) {
                *(int *)field = i;
                return 0;
            }
        }
        return bad(e, k, v, allowed);
    }
    default:
        break;
    }

    /* string-valued keys */
    if (v->type != CV_STR)
        return tikd_fail(e, TIKD_EINVAL, "config: key '%s': expected a string, got %s", k->name,
                         vtype_name(v->type));
    const char *why = NULL;
    if (v->s[0] == '\0')
        why = "it may not be empty";
    else if (strlen(v->s) > 4000)
        why = "it is longer than 4000 characters";
    else if (k->type == K_URL || k->type == K_REDIRECT)
        why = url_problem(v->s, k->type == K_REDIRECT);
    else if (k->type == K_SCOPES && strspn(v->s, "abcdefghijklmnopqrstuvwxyz._,") != strlen(v->s))
        why = "expected comma-separated scopes, e.g. \"user.info.basic,video.publish\"";
    if (why)
        return bad(e, k, v, why);
    char *copy = strdup(v->s);
    if (!copy)
        return tikd_fail(e, TIKD_ENOMEM, "config: out of memory");
    char **slot = field;
    if (k->type == K_SECRET)
        secret_free(*slot);
    else
        free(*slot);
    *slot = copy;
    return 0;
}

/* A pin "name=range" into list l (replacing one for the same name). */
static int set_pin(struct strlist *l, const char *key, const char *lib,
                   const struct config_value *v, struct tikd_err *e)
{
    const char *why = v->type != CV_STR ? "expected a version range string, e.g. \"^1.2\""
                                        : semver_range_problem(v->s);
    size_t ln = strlen(lib);
    if (!why && (ln == 0 || ln > 64 || strspn(lib, "abcdefghijklmnopqrstuvwxyz0123456789_-") != ln))
        why = "a library name is 1-64 of a-z, 0-9, _ and -";
    if (why)
        return tikd_fail(e, TIKD_EINVAL, "config: key '%s': %s", key, why);
    char *pin = malloc(ln + strlen(v->s) + 2);
    char **nv = pin ? realloc(l->v, (l->n + 2) * sizeof *nv) : NULL;
    if (!nv) {
        free(pin);
        return tikd_fail(e, TIKD_ENOMEM, "config: out of memory");
    }
    l->v = nv;
    sprintf(pin, "%s=%s", lib, v->s);
    for (size_t i = 0; i < l->n; i++)
        if (strncmp(l->v[i], pin, ln + 1) == 0) {
            free(l->v[i]);
            l->v[i] = pin;
            return 0;
        }
    l->v[l->n++] = pin;
    l->v[l->n] = NULL;
    return 0;
}

static void tenant_free(struct tenant_cfg *t);

/* tenants.NAME.KEY: the tenant is made when its first key is set well. */
static int set_tenant(struct tikd_config *c, const char *name, const char *tn, const char *rest,
                      const struct config_value *v, struct tikd_err *e)
{
    if (!config_tenant_name_valid(tn))
        return tikd_fail(e, TIKD_EINVAL,
                         "config: key '%s': a tenant name is 1-%d of a-z, 0-9, _ and - (not "
                         "starting with -)",
                         name, TENANT_NAME_MAX);
    struct tenant_cfg *t = (struct tenant_cfg *)config_tenant(c, tn), fresh = {0};
    if (!t && c->ntenants >= TENANTS_MAX)
        return tikd_fail(e, TIKD_EFULL, "config: at most %d tenants", TENANTS_MAX);
    struct tenant_cfg *dst = t ? t : &fresh;
    int rc = 0;
    if (!rest) {
        if (t)
            return 0;
    } else if (strncmp(rest, "libs.", 5) == 0) {
        rc = set_pin(&dst->libs, name, rest + 5, v, e);
    } else {
        const struct key *k = find_key(rest, true);
        if (!k)
            return tikd_fail(e, TIKD_EINVAL,
                             "config: unknown key '%s' (a tenant's keys are tenants.NAME.%s ... "
                             "see `tikd help config`)",
                             name, "rules_dir");
        struct key shown = *k;
        shown.name = name;
        rc = set_key(dst, &shown, v, e);
    }
    if (rc != 0 || t) {
        if (rc != 0 && !t)
            tenant_free(&fresh);
        return rc;
    }
    struct tenant_cfg *nt = realloc(c->tenants, (c->ntenants + 1) * sizeof *nt);
    if (!nt || !(fresh.name = strdup(tn))) {
        if (nt)
            c->tenants = nt;
        tenant_free(&fresh);
        return tikd_fail(e, TIKD_ENOMEM, "config: out of memory");
    }
    c->tenants = nt;
    size_t at = 0; /* kept in name order */
    while (at < c->ntenants && strcmp(c->tenants[at].name, tn) < 0)
        at++;
    memmove(&c->tenants[at + 1], &c->tenants[at], (c->ntenants - at) * sizeof *nt);
    c->tenants[at] = fresh;
    c->ntenants++;
    return 0;
}

int config_tenant_add(struct tikd_config *c, const char *name, struct tikd_err *e)
{
    char key[128];
    snprintf(key, sizeof key, "tenants.%.64s", name);
    return set_tenant(c, key, name, NULL, NULL, e);
}

int config_set(struct tikd_config *c, const char *name, const struct config_value *v,
               struct tikd_err *e)
{
    char tn[64];
    const char *rest = tenant_key(name, tn, sizeof tn);
    if (rest)
        return set_tenant(c, name, tn, rest, v, e);
    if (strncmp(name, "libs.", 5) == 0)
        return set_pin(&c->libs, name, name + 5, v, e);
    const struct key *k = find_key(name, false);
    if (!k)
        return tikd_fail(e, TIKD_EINVAL,
                         "config: unknown key '%s' (see `tikd help config` for the keys)", name);
    return set_key(c, k, v, e);
}

int config_apply_env(struct tikd_config *c, const char *(*getenv_fn)(const char *),
                     struct tikd_err *e)
{
    static const struct {
        const char *env, *key;
    } map[] = {
        {"TIKD_CLIENT_SECRET", "tiktok.client_secret"},
        {"TIKD_CLIENT_KEY", "tiktok.client_key"},
        {"TIKD_NOTIFY_SECRET", "notify.secret"},
        {"TIKD_VAULT_KEY_FILE", "vault.key_file"},
        {"TIKD_DATA_DIR", "data_dir"},
        {"TIKD_LOG_LEVEL", "log.level"},
        {"TIKD_REDIS_PASSWORD", "cluster.password"},
    };
    for (size_t i = 0; i < sizeof map / sizeof map[0]; i++) {
        const char *val = getenv_fn(map[i].env);
        if (!val)
            continue;
        struct config_value v = {.type = CV_STR, .s = val};
        int rc = config_set(c, map[i].key, &v, e);
        if (rc != 0 && e) {
            char msg[sizeof e->msg];
            snprintf(msg, sizeof msg, "%.400s (from environment variable %s)", e->msg, map[i].env);
            return tikd_fail(e, rc, "%s", msg);
        }
        if (rc != 0)
            return rc;
    }
    return 0;
}

static int absolutize(char **p, const char *base, struct tikd_err *e)
{
    if (!*p || (*p)[0] == '/' || !base)
        return 0;
    size_t n = strlen(base) + strlen(*p) + 2;
    char *abs = malloc(n);
    if (!abs)
        return tikd_fail(e, TIKD_ENOMEM, "config: out of memory");
    snprintf(abs, n, "%s/%s", base, *p);
    free(*p);
    *p = abs;
    return 0;
}

/* Relative paths of the rows in t[0..n) of the struct at base made absolute. */
static int absolutize_fields(void *base, const struct key *t, size_t n, const char *dir,
                             struct tikd_err *e)
{
    int rc = 0;
    for (size_t i = 0; i < n && rc == 0; i++) {
        void *field = (char *)base + t[i].off;
        if (!t[i].off) {
            continue;
        } else if (t[i].type == K_PATH) {
            rc = absolutize(field, dir, e);
        } else if (t[i].type == K_PATHS) {
            struct strlist *l = field;
            for (size_t j = 0; j < l->n && rc == 0; j++)
                rc = absolutize(&l->v[j], dir, e);
        }
    }
    return rc;
}

/* a is b or lies under it (paths as given, absolute). */
static bool path_within(const char *a, const char *b)
{
    size_t n = strlen(b);
    while (n > 1 && b[n - 1] == '/')
        n--;
    return strncmp(a, b, n) == 0 && (a[n] == '\0' || a[n] == '/');
}

/* Append a copy of item to l unless l holds it (or, with within, a folder
 * it lies in). */
static int strlist_add_new(struct strlist *l, const char *item, bool within, struct tikd_err *e)
{
    for (size_t j = 0; j < l->n; j++)
        if (within ? path_within(item, l->v[j]) : strcmp(item, l->v[j]) == 0)
            return 0;
    char **nv = realloc(l->v, (l->n + 2) * sizeof *nv);
    if (nv)
        l->v = nv;
    if (!nv || !(nv[l->n] = strdup(item)))
        return tikd_fail(e, TIKD_ENOMEM, "config: out of memory");
    nv[++l->n] = NULL;
    return 0;
}

/* Tenants: each rule folder and intake folder belongs to one tenant only;
 * every tenant trusts the top-level keys too. */
static int finish_tenants(struct tikd_config *c, struct tikd_err *e)
{
    if (c->ntenants && c->intake_folders.n)
        return tikd_fail(e, TIKD_EINVAL,
                         "config: key 'intake.folders': with tenants, a watched folder belongs "
                         "to a tenant: move it to tenants.NAME.intake.folders");
    for (size_t i = 0; i < c->ntenants; i++) {
        struct tenant_cfg *t = &c->tenants[i];
        int rc = absolutize_fields(t, tkeys, NTKEYS, c->base_dir, e);
        if (rc == 0 && !t->rules_dir) {
            size_t n = strlen(c->rules_dir) + strlen(t->name) + 2;
            if (!(t->rules_dir = malloc(n)))
                return tikd_fail(e, TIKD_ENOMEM, "config: out of memory");
            snprintf(t->rules_dir, n, "%s/%s", c->rules_dir, t->name);
        }
        /* its watched folders' media is its own to post; the top level's keys
         * are every tenant's */
        for (size_t k = 0; rc == 0 && k < t->intake.n; k++)
            rc = strlist_add_new(&t->media_roots, t->intake.v[k], true, e);
        for (size_t k = 0; rc == 0 && k < c->trust.n; k++)
            rc = strlist_add_new(&t->trust, c->trust.v[k], false, e);
        if (rc != 0)
            return rc;
    }
    for (size_t i = 0; i < c->ntenants; i++)
        for (size_t j = 0; j < c->ntenants; j++) {
            const struct tenant_cfg *a = &c->tenants[i], *b = &c->tenants[j];
            if (i != j && path_within(a->rules_dir, b->rules_dir))
                return tikd_fail(e, TIKD_EINVAL,
                                 "config: tenants %s and %s: rule folder %s lies in %s: each "
                                 "rule file belongs to one tenant",
                                 a->name, b->name, a->rules_dir, b->rules_dir);
            const char *an = strrchr(a->rules_dir, '/'), *bn = strrchr(b->rules_dir, '/');
            if (i < j && an && bn && strcmp(an, bn) == 0)
                return tikd_fail(e, TIKD_EINVAL,
                                 "config: tenants %s and %s: rule folders %s and %s have one name: "
                                 "records name a rule file by its folder's name and its own",
                                 a->name, b->name, a->rules_dir, b->rules_dir);
            for (size_t x = 0; x < a->intake.n; x++)
                for (size_t y = 0; y < b->intake.n; y++)
                    if ((i != j || x != y) && path_within(a->intake.v[x], b->intake.v[y]))
                        return tikd_fail(e, TIKD_EINVAL,
                                         "config: tenants %s and %s: intake folder %s lies in "
                                         "%s: each watched folder belongs to one tenant",
                                         a->name, b->name, a->intake.v[x], b->intake.v[y]);
        }
    if (c->ntenants && !(c->quotas = calloc(c->ntenants, sizeof *c->quotas)))
        return tikd_fail(e, TIKD_ENOMEM, "config: out of memory");
    for (size_t i = 0; i < c->ntenants; i++)
        c->quotas[i] = (struct rl_quota){c->tenants[i].name, c->tenants[i].posts_per_day};
    c->limits.quotas = c->quotas;
    c->limits.nquotas = c->ntenants;
    return 0;
}

struct cluster_opts config_cluster_opts(const struct tikd_config *c)
{
    return (struct cluster_opts){.redis = c->cluster_redis,
                                 .node = c->cluster_node,
                                 .prefix = c->cluster_prefix,
                                 .user = c->cluster_user,
                                 .password = c->cluster_password,
                                 .lease = c->cluster_lease,
                                 .margin = c->cluster_margin};
}

/* The cluster's keys make sense together (cluster_opts_check), or are unset. */
static int finish_cluster(struct tikd_config *c, struct tikd_err *e)
{
    if (!c->cluster_redis) {
        const char *stray = c->cluster_node       ? "cluster.node"
                            : c->cluster_user     ? "cluster.user"
                            : c->cluster_password ? "cluster.password"
                            : c->cluster_prefix   ? "cluster.prefix"
                                                  : NULL;
        if (stray)
            return tikd_fail(e, TIKD_EINVAL,
                             "config: key '%s' is set but cluster.redis is not: a node joins a "
                             "cluster only with the cluster's Redis",
                             stray);
        return 0;
    }
    struct cluster_opts o = config_cluster_opts(c);
    struct tikd_err ce = {0};
    if (cluster_opts_check(&o, &ce) != 0)
        return tikd_fail(e, TIKD_EINVAL, "config: %s", ce.msg);
    if (c->cluster_password &&
        tlog_secret_add(c->cluster_password, strlen(c->cluster_password)) != 0)
        return tikd_fail(e, TIKD_EINVAL,
                         "config: key 'cluster.password': value (secret, not shown) is not "
                         "allowed: it must be at least %d characters",
                         TLOG_SECRET_MIN);
    return 0;
}

int config_finish(struct tikd_config *c, struct tikd_err *e)
{
    if (c->map_max < c->map_initial)
        return tikd_fail(e, TIKD_EINVAL,
                         "config: key 'store.map_max': value %zu is not allowed: it must be at "
                         "least store.map_initial (%zu)",
                         c->map_max, c->map_initial);
    int rc = absolutize_fields(c, keys, NKEYS, c->base_dir, e);
    if (rc == 0)
        rc = finish_tenants(c, e);
    if (rc == 0)
        rc = finish_cluster(c, e);
    if (rc == 0 && c->client_secret && tlog_secret_add(c->client_secret, strlen(c->client_secret)))
        return tikd_fail(e, TIKD_EINVAL,
                         "config: key 'tiktok.client_secret': value (secret, not shown) is not "
                         "allowed: it must be at least %d characters",
                         TLOG_SECRET_MIN);
    return rc;
}
