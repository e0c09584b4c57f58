/* cluster.c - account leases with fencing tokens in Redis (see cluster.h).
 *
 * A round, every lease/3 seconds once connected:
 *   1. HEARTBEAT: this node's registration is renewed in {P}:nodes (a
 *      sorted set scored by Redis's clock), the expired ones are dropped,
 *      and the live ones come back.
 *   2. HOLD, in batches: for each known account, rendezvous hashing over
 *      the live node names says whether it is at home here. At home: hold
 *      (grant if free, renew if ours); elsewhere: release if ours. Each
 *      answer is the account's fence, or 0 when this node does not hold it.
 * A lease granted or renewed by a HOLD sent at t (CLOCK_BOOTTIME) may be
 * acted on until t + lease - margin; an expiry timer takes back the ones
 * whose renewal did not come in time.
 *
 * Keys (one hash slot, so a Redis Cluster serves them from one shard):
 *   {P}:nodes          sorted set: "name/instance" -> expiry (ms, Redis time)
 *   {P}:fences         hash: account -> last fence granted (never reset)
 *   {P}:lease:ACCOUNT  hash: node, fence, since (ms); PEXPIRE lease
 * and, with accounts that move (cluster_set_data, core/replica):
 *   {P}:accounts       set: every account some node has
 *   {P}:acct:ACCOUNT   hash: fence (of the last write), rec, v:FIELD, l:KEY
 *   {P}:open:ACCOUNT   hash: cluster key -> record, its open jobs
 *   {P}:done:ACCOUNT   hash: cluster key -> 'F' record (final) or 'L' record (the
 *                      last open one, of a job that ended unrecorded)
 *   {P}:keys:ACCOUNT   hash: a post's key (scope NUL key) -> cluster key
 *   {P}:inbox:ACCOUNT  hash: cluster key -> record, jobs another node planned
 *   {P}:inboxed        set: the accounts with an inbox */
#include "cluster.h"

#include <hiredis/adapters/libev.h>
#include <hiredis/async.h>
#include <hiredis/hiredis.h>
#include <arpa/inet.h>
#include <openssl/rand.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "log.h"
#include "replica.h"

#define HOLD_BATCH  512
#define BACKOFF_MIN 0.2
#define BACKOFF_MAX 5.0

/* KEYS[1] nodes; ARGV node id, lease ms. Returns {now, id, expiry, ...}. */
static const char heartbeat_lua[] =
    "if redis.replicate_commands then redis.replicate_commands() end\n"
    "local t = redis.call('TIME')\n"
    "local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)\n"
    "redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), ARGV[1])\n"
    "redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)\n"
    "local r = redis.call('ZRANGE', KEYS[1], 0, -1, 'WITHSCORES')\n"
    "table.insert(r, 1, tostring(now))\n"
    "return r\n";

/* KEYS[1] fences, KEYS[1+i] lease keys; ARGV node id, lease ms, then the n
 * accounts, then n modes ('h' hold, or the fence to give back: a release
 * sent before a reconnect that arrives after a new grant to this node must
 * not delete the new lease). Returns n fences (0: not held by this node). A
 * grant is the only place a fence grows. */
static const char hold_lua[] =
    "if redis.replicate_commands then redis.replicate_commands() end\n"
    "local t = redis.call('TIME')\n"
    "local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)\n"
    "local node, ttl, n = ARGV[1], tonumber(ARGV[2]), #KEYS - 1\n"
    "local out = {}\n"
    "for i = 1, n do\n"
    "  local key, acct, mode = KEYS[i + 1], ARGV[2 + i], ARGV[2 + n + i]\n"
    "  local owner = redis.call('HGET', key, 'node')\n"
    "  local fence = 0\n"
    "  if owner == node then\n"
    "    if mode ~= 'h' then\n"
    "      if redis.call('HGET', key, 'fence') == mode then redis.call('DEL', key) end\n"
    "    else\n"
    "      fence = tonumber(redis.call('HGET', key, 'fence'))\n"
    "      redis.call('PEXPIRE', key, ttl)\n"
    "    end\n"
    "  elseif not owner and mode == 'h' then\n"
    "    fence = redis.call('HINCRBY', KEYS[1], acct, 1)\n"
    "    redis.call('HSET', key, 'node', node, 'fence', fence, 'since', now)\n"
    "    redis.call('PEXPIRE', key, ttl)\n"
    "  end\n"
    "  out[i] = fence\n"
    "end\n"
    "return out\n";

/* KEYS lease, acct, open, done, accounts, keys, inbox, inboxed; ARGV node
 * id, fence, account, then how many acct, open, done and key pairs, then
 * the pairs. Offered jobs it has open leave the inbox.
 * Written only under the lease and fence the writer holds: 1, or 0 when
 * they are not its. A post's key, once known, is never taken back. */
static const char push_lua[] =
    "local l = redis.call('HMGET', KEYS[1], 'node', 'fence')\n"
    "if l[1] ~= ARGV[1] or l[2] ~= ARGV[2] then return 0 end\n"
    "local na, no, nd, nk = tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[6]),\n"
    "  tonumber(ARGV[7])\n"
    "local i = 8\n"
    "local acct, open, done, keep = {'fence', ARGV[2]}, {}, {}, {}\n"
    "for k = 1, na do acct[#acct + 1] = ARGV[i]; acct[#acct + 1] = ARGV[i + 1]; i = i + 2 end\n"
    "for k = 1, no do\n"
    "  keep[ARGV[i]] = true; open[#open + 1] = ARGV[i]; open[#open + 1] = ARGV[i + 1]; i = i + 2\n"
    "end\n"
    "for k = 1, nd do\n"
    "  keep[ARGV[i]] = true; done[#done + 1] = ARGV[i]; done[#done + 1] = ARGV[i + 1]; i = i + 2\n"
    "end\n"
    "for k = 1, nk do redis.call('HSETNX', KEYS[6], ARGV[i], ARGV[i + 1]); i = i + 2 end\n"
    "local old = redis.call('HGETALL', KEYS[3])\n"
    "for k = 1, #old, 2 do\n"
    "  if not keep[old[k]] then redis.call('HSETNX', KEYS[4], old[k], 'L' .. old[k + 1]) end\n"
    "end\n"
    "redis.call('DEL', KEYS[2], KEYS[3])\n"
    "for k = 1, #acct, 2 do redis.call('HSET', KEYS[2], acct[k], acct[k + 1]) end\n"
    "for k = 1, #open, 2 do redis.call('HSET', KEYS[3], open[k], open[k + 1]) end\n"
    "for k = 1, #done, 2 do redis.call('HSET', KEYS[4], done[k], done[k + 1]) end\n"
    "redis.call('SADD', KEYS[5], ARGV[3])\n"
    "if redis.call('EXISTS', KEYS[7]) == 1 then\n"
    "  for k in pairs(keep) do redis.call('HDEL', KEYS[7], k) end\n"
    "  if redis.call('EXISTS', KEYS[7]) == 0 then redis.call('SREM', KEYS[8], ARGV[3]) end\n"
    "end\n"
    "return 1\n";

/* KEYS lease, acct, open, done, keys; ARGV node id, fence, then cluster
 * keys of jobs open here. Returns 0 (not this holder's), or {acct, open,
 * done of those keys, keys}. */
static const char pull_lua[] =
    "local l = redis.call('HMGET', KEYS[1], 'node', 'fence')\n"
    "if l[1] ~= ARGV[1] or l[2] ~= ARGV[2] then return 0 end\n"
    "local d = {}\n"
    "for i = 3, #ARGV do d[#d + 1] = redis.call('HGET', KEYS[4], ARGV[i]) end\n"
    "return {redis.call('HGETALL', KEYS[2]), redis.call('HGETALL', KEYS[3]), d,\n"
    "        redis.call('HGETALL', KEYS[5])}\n";

/* KEYS inbox, open, done, inboxed; ARGV account, then pairs: jobs planned
 * on a node that does not hold the account, for its holder to take; one
 * Redis knows already (open or ended, or offered) is left. */
static const char offer_lua[] =
    "local n = 0\n"
    "for i = 2, #ARGV, 2 do\n"
    "  local k = ARGV[i]\n"
    "  if redis.call('HEXISTS', KEYS[2], k) == 0 and redis.call('HEXISTS', KEYS[3], k) == 0\n"
    "     and redis.call('HSETNX', KEYS[1], k, ARGV[i + 1]) == 1 then n = n + 1 end\n"
    "end\n"
    "if redis.call('EXISTS', KEYS[1]) == 1 then redis.call('SADD', KEYS[4], ARGV[1]) end\n"
    "return n\n";

/* KEYS lease, inbox; ARGV node id, fence: the offered jobs, to the holder
 * (they leave the inbox when its write-through has them open). */
static const char take_lua[] = "local l = redis.call('HMGET', KEYS[1], 'node', 'fence')\n"
                               "if l[1] ~= ARGV[1] or l[2] ~= ARGV[2] then return 0 end\n"
                               "return redis.call('HGETALL', KEYS[2])\n";

/* KEYS active; ARGV account, cap, window ms. The app's active creators, by
 * the time of their last post (Redis's clock): the account may post if it
 * is one, or if there is room (it is one from now on). Returns {1, 0}, or
 * {0, ms until the first of them leaves the window}. */
static const char claim_lua[] =
    "if redis.replicate_commands then redis.replicate_commands() end\n"
    "local t = redis.call('TIME')\n"
    "local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)\n"
    "local cap, win = tonumber(ARGV[2]), tonumber(ARGV[3])\n"
    "redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - win)\n"
    "if redis.call('ZSCORE', KEYS[1], ARGV[1]) or redis.call('ZCARD', KEYS[1]) < cap then\n"
    "  redis.call('ZADD', KEYS[1], now, ARGV[1])\n"
    "  redis.call('PEXPIRE', KEYS[1], win)\n"
    "  return {1, 0}\n"
    "end\n"
    "local first = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')\n"
    "return {0, tonumber(first[2]) + win - now}\n";

/* KEYS acct, accounts; ARGV account, then acct pairs: the first state of
 * an account no node wrote yet. */
static const char seed_lua[] =
    "redis.call('SADD', KEYS[2], ARGV[1])\n"
    "if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end\n"
    "redis.call('HSET', KEYS[1], 'fence', '0')\n"
    "for i = 2, #ARGV, 2 do redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1]) end\n"
    "return 1\n";

struct lease {
    char *account;
    uint64_t fence;     /* the last fence held (kept after the lease ends, for views) */
    double valid_until; /* clock_boot() until which this node may act */
    bool held;
    bool home; /* at home here, by the last round's live nodes */
    /* with accounts that move (c->data): */
    uint64_t ready;     /* the fence its state was read back under: acting waits for it */
    uint64_t pushed;    /* digest of the state Redis holds from here under that fence */
    uint64_t *open_ids; /* the jobs open in it (those final since go with the next write) */
    size_t nopen_ids;
    double claimed_at; /* clock_boot() of a claim Redis granted, not yet used */
    double full_until; /* clock_boot() until which the app's cap has no room for it */
    bool busy;         /* a read-back, a write-through or a claim in flight */
    bool local;        /* in this node's database */
    bool seeded;       /* ... and its first state offered to Redis */
    uint64_t offered;  /* digest of the jobs planned here last offered to its holder */
    struct lease *next;
};

struct node {
    char *id;
    double expires; /* seconds after the round's Redis time */
};

struct cluster {
    struct ev_loop *loop;
    char *redis, *user, *password, *name, *self, *prefix;
    double lease, margin;
    cluster_change_fn fn;
    void *ud;
    redisAsyncContext *ac;
    bool connected, closing;
    double backoff;
    ev_timer round_timer, retry_timer, expiry_timer, connect_timer;
    unsigned pending; /* replies of the running round still to come */
    double round_at;  /* clock_boot() when it started */
    struct lease **buckets;
    size_t nbuckets, nleases;
    struct node *nodes;
    size_t nnodes;
    struct cluster_data data;
    bool has_data;
    double app_cap, app_window; /* the app's active creators (0: no cap) */
};

struct call {
    struct cluster *c;
    double sent;
    size_t n;
    struct lease **leases; /* HOLD: the batch, in ARGV order */
    struct lease *l;       /* PULL, PUSH, SEED: the account's */
    uint64_t fence, digest;
    uint64_t *ids; /* PUSH: the open jobs it wrote */
    size_t nids;
    struct replica_snap ask; /* PULL: this node's state, whose open jobs it asks of */
};

static void connect_now(struct cluster *c);
static void arm_expiry(struct cluster *c);
static void pull(struct cluster *c, struct lease *l);
static void seed(struct cluster *c, struct lease *l);
static void want_all(struct cluster *c);
static uint64_t write_through(struct cluster *c, struct lease *l, uint64_t fence);
static void offer(struct cluster *c, struct lease *l);
static void take_offered(struct cluster *c);

/* connect again after the backoff, which doubles up to BACKOFF_MAX (and
 * goes back to BACKOFF_MIN once a round is answered) */
static void retry_later(struct cluster *c)
{
    ev_timer_set(&c->retry_timer, c->backoff, 0);
    ev_timer_start(c->loop, &c->retry_timer);
    c->backoff = c->backoff * 2 < BACKOFF_MAX ? c->backoff * 2 : BACKOFF_MAX;
}

/* ---- the accounts --------------------------------------------------------- */

static uint64_t hash64(const char *a, const char *b)
{
    uint64_t h = 14695981039346656037ull;
    for (const char *p = a; *p; p++)
        h = (h ^ (unsigned char)*p) * 1099511628211ull;
    h = (h ^ 0xffu) * 1099511628211ull; /* a byte no name holds, between the two */
    for (const char *p = b; p && *p; p++)
        h = (h ^ (unsigned char)*p) * 1099511628211ull;
    h ^= h >> 30; /* splitmix64's finalizer: FNV's low bits alone mix poorly */
    h *= 0xbf58476d1ce4e5b9ull;
    h ^= h >> 27;
    h *= 0x94d049bb133111ebull;
    return h ^ (h >> 31);
}

const char *cluster_home(const char *const *names, size_t n, const char *account)
{
    const char *best = NULL;
    uint64_t top = 0;
    for (size_t i = 0; i < n; i++) {
        uint64_t s = hash64(names[i], account);
        if (!best || s > top || (s == top && strcmp(names[i], best) < 0)) {
            best = names[i];
            top = s;
        }
    }
    return best;
}

static struct lease *find(const struct cluster *c, const char *account)
{
    if (!c->nbuckets)
        return NULL;
    for (struct lease *l = c->buckets[hash64(account, NULL) & (c->nbuckets - 1)]; l; l = l->next)
        if (strcmp(l->account, account) == 0)
            return l;
    return NULL;
}

static int grow(struct cluster *c)
{
    size_t nb = c->nbuckets ? c->nbuckets * 2 : 64;
    struct lease **b = calloc(nb, sizeof *b);
    if (!b)
        return TIKD_ENOMEM;
    for (size_t i = 0; i < c->nbuckets; i++) {
        for (struct lease *l = c->buckets[i], *next; l; l = next) {
            next = l->next;
            size_t k = hash64(l->account, NULL) & (nb - 1);
            l->next = b[k];
            b[k] = l;
        }
    }
    free(c->buckets);
    c->buckets = b;
    c->nbuckets = nb;
    return 0;
}

int cluster_want(struct cluster *c, const char *account)
{
    if (find(c, account))
        return 0;
    if (c->nleases >= c->nbuckets && grow(c) != 0)
        return TIKD_ENOMEM;
    struct lease *l = calloc(1, sizeof *l);
    if (!l || !(l->account = strdup(account))) {
        free(l);
        return TIKD_ENOMEM;
    }
    size_t k = hash64(account, NULL) & (c->nbuckets - 1);
    l->next = c->buckets[k];
    c->buckets[k] = l;
    c->nleases++;
    return 0;
}

uint64_t cluster_fence(struct cluster *c, const char *account)
{
    struct lease *l = find(c, account);
    if (!l || !l->held)
        return 0;
    if (clock_boot() >= l->valid_until)
        return 0; /* the expiry timer has not run yet: the clock decides */
    if (c->has_data && l->ready != l->fence)
        return 0; /* granted, but its state is not here yet */
    return l->fence;
}

/* ---- leases changing -------------------------------------------------------- */

static void lose(struct cluster *c, struct lease *l, const char *why)
{
    if (!l->held)
        return;
    l->held = false;
    l->valid_until = 0;
    TLOG(TLOG_INFO, "cluster.lease_lost", LSTR("account", l->account), LINT("fence", l->fence),
         LSTR("reason", why));
    c->fn(c->ud, l->account, l->fence, false);
}

static void on_expiry(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)loop;
    (void)revents;
    struct cluster *c = w->data;
    double now = clock_boot();
    for (size_t i = 0; i < c->nbuckets; i++)
        for (struct lease *l = c->buckets[i]; l; l = l->next)
            if (l->held && now >= l->valid_until)
                lose(c, l, "not renewed in time");
    arm_expiry(c);
}

static void arm_expiry(struct cluster *c)
{
    double first = 0;
    for (size_t i = 0; i < c->nbuckets; i++)
        for (struct lease *l = c->buckets[i]; l; l = l->next)
            if (l->held && (!first || l->valid_until < first))
                first = l->valid_until;
    ev_timer_stop(c->loop, &c->expiry_timer);
    if (first) {
        double in = first - clock_boot();
        ev_timer_set(&c->expiry_timer, in > 0 ? in : 0, 0);
        ev_timer_start(c->loop, &c->expiry_timer);
    }
}

/* ---- Redis ------------------------------------------------------------------ */

static bool reply_error(struct cluster *c, const redisReply *r, const char *what)
{
    if (!r) { /* the connection went away: the disconnect callback says why */
        return true;
    }
    if (r->type == REDIS_REPLY_ERROR) {
        TLOG(TLOG_ERROR, "cluster.error", LSTR("call", what), LSTR("redis", r->str));
        return true;
    }
    return false;
}

static void round_end(struct cluster *c)
{
    if (c->pending == 0)
        arm_expiry(c);
}

static void on_hold(redisAsyncContext *ac, void *reply, void *privdata)
{
    (void)ac;
    struct call *k = privdata;
    struct cluster *c = k->c;
    redisReply *r = reply;
    if (!c->closing) {
        if (c->pending)
            c->pending--;
        if (!reply_error(c, r, "hold") && (r->type != REDIS_REPLY_ARRAY || r->elements != k->n)) {
            TLOG(TLOG_ERROR, "cluster.error", LSTR("call", "hold"),
                 LSTR("redis", "an answer of the wrong shape"));
        } else if (r && r->type == REDIS_REPLY_ARRAY) {
            double until = k->sent + c->lease - c->margin;
            for (size_t i = 0; i < k->n; i++) {
                struct lease *l = k->leases[i];
                const redisReply *e = r->element[i];
                uint64_t fence =
                    e->type == REDIS_REPLY_INTEGER && e->integer > 0 ? (uint64_t)e->integer : 0;
                if (!fence) {
                    lose(c, l, l->home ? "held by another node" : "at home on another node");
                    continue;
                }
                if (until <= clock_boot()) { /* came too late to act on (a pause) */
                    lose(c, l, "not renewed in time");
                    l->fence = fence;
                    continue;
                }
                bool news = !l->held || fence != l->fence;
                if (l->held && fence != l->fence) /* never the case while ours: say so */
                    lose(c, l, "granted again under a new fence");
                l->fence = fence;
                l->valid_until = until;
                l->held = true;
                if (news) {
                    TLOG(TLOG_INFO, "cluster.lease_held", LSTR("account", l->account),
                         LINT("fence", fence));
                    if (c->has_data && l->ready != fence) /* told once its state is here */
                        pull(c, l);
                    else
                        c->fn(c->ud, l->account, fence, true);
                }
            }
        }
        round_end(c);
    }
    free(k->leases);
    free(k);
}

static int send_hold(struct cluster *c, struct lease **batch, size_t n, const bool *release)
{
    size_t argc = 3 + 2 * n + 2 + 1 + n; /* EVAL script numkeys | keys | node ttl | accts modes */
    const char **argv = calloc(argc, sizeof *argv);
    size_t *lens = calloc(argc, sizeof *lens);
    char **keys = calloc(n + 1, sizeof *keys);
    struct call *k = calloc(1, sizeof *k);
    char(*given)[24] = calloc(n, sizeof *given); /* the fences given back */
    char nkeys[24], ttl[32];
    int rc = TIKD_ENOMEM;
    if (!argv || !lens || !keys || !k || !given)
        goto out;
    size_t a = 0;
    argv[a++] = "EVAL";
    argv[a++] = hold_lua;
    snprintf(nkeys, sizeof nkeys, "%zu", n + 1);
    argv[a++] = nkeys;
    if (asprintf(&keys[0], "{%s}:fences", c->prefix) < 0) {
        keys[0] = NULL;
        goto out;
    }
    argv[a++] = keys[0];
    for (size_t i = 0; i < n; i++) {
        if (asprintf(&keys[i + 1], "{%s}:lease:%s", c->prefix, batch[i]->account) < 0) {
            keys[i + 1] = NULL;
            goto out;
        }
        argv[a++] = keys[i + 1];
    }
    argv[a++] = c->self;
    snprintf(ttl, sizeof ttl, "%lld", (long long)(c->lease * 1000));
    argv[a++] = ttl;
    for (size_t i = 0; i < n; i++)
        argv[a++] = batch[i]->account;
    for (size_t i = 0; i < n; i++) {
        snprintf(given[i], sizeof given[i], "%llu", (unsigned long long)batch[i]->fence);
        argv[a++] = release[i] ? given[i] : "h";
    }
    for (size_t i = 0; i < a; i++)
        lens[i] = strlen(argv[i]);
    k->c = c;
    k->n = n;
    k->sent = clock_boot(); /* before it leaves: the lease is counted from no later */
    k->leases = malloc(n * sizeof *k->leases);
    if (!k->leases)
        goto out;
    memcpy(k->leases, batch, n * sizeof *batch);
    if (redisAsyncCommandArgv(c->ac, on_hold, k, (int)a, argv, lens) != REDIS_OK) {
        free(k->leases);
        rc = TIKD_EIO;
        goto out;
    }
    k = NULL;
    c->pending++;
    rc = 0;
out:
    for (size_t i = 0; keys && i <= n; i++)
        free(keys[i]);
    free(keys);
    free(argv);
    free(lens);
    free(given);
    free(k);
    return rc;
}

static void on_heartbeat(redisAsyncContext *ac, void *reply, void *privdata)
{
    (void)ac;
    struct call *k = privdata;
    struct cluster *c = k->c;
    redisReply *r = reply;
    free(k);
    if (c->closing)
        return;
    if (c->pending)
        c->pending--;
    if (reply_error(c, r, "heartbeat") || r->type != REDIS_REPLY_ARRAY || r->elements % 2 != 1) {
        round_end(c);
        return;
    }
    c->backoff = BACKOFF_MIN; /* a server that answers (not one that accepts, then closes) */
    /* the live nodes, and their distinct names (ours among them) */
    long long now = atoll(r->element[0]->str ? r->element[0]->str : "0");
    size_t nn = (r->elements - 1) / 2;
    struct node *nodes = calloc(nn ? nn : 1, sizeof *nodes);
    char **names = calloc(nn + 1, sizeof *names);
    size_t nnames = 0;
    if (!nodes || !names || !(names[nnames++] = strdup(c->name)))
        goto out;
    for (size_t i = 0; i < nn; i++) {
        const redisReply *id = r->element[1 + 2 * i], *exp = r->element[2 + 2 * i];
        if (!id->str || !exp->str || !(nodes[i].id = strdup(id->str)))
            goto out;
        nodes[i].expires = ((double)atoll(exp->str) - (double)now) / 1000;
        size_t len = strcspn(id->str, "/");
        bool seen = false;
        for (size_t j = 0; j < nnames && !seen; j++)
            seen = strlen(names[j]) == len && strncmp(names[j], id->str, len) == 0;
        if (!seen && !(names[nnames++] = strndup(id->str, len)))
            goto out;
    }
    struct lease **batch = malloc(HOLD_BATCH * sizeof *batch);
    bool *release = malloc(HOLD_BATCH * sizeof *release);
    size_t nb = 0;
    for (size_t i = 0; batch && release && i < c->nbuckets; i++) {
        for (struct lease *l = c->buckets[i]; l; l = l->next) {
            l->home =
                strcmp(cluster_home((const char *const *)names, nnames, l->account), c->name) == 0;
            if (!l->home && !l->held)
                continue;
            if (!l->home) /* stop acting before the release can let another node start */
                lose(c, l, "at home on another node");
            batch[nb] = l;
            release[nb++] = !l->home;
            if (nb == HOLD_BATCH) {
                if (send_hold(c, batch, nb, release) != 0)
                    TLOG(TLOG_ERROR, "cluster.error", LSTR("call", "hold"),
                         LSTR("redis", "could not send"));
                nb = 0;
            }
        }
    }
    if (nb && send_hold(c, batch, nb, release) != 0)
        TLOG(TLOG_ERROR, "cluster.error", LSTR("call", "hold"), LSTR("redis", "could not send"));
    free(batch);
    free(release);
    if (c->has_data) {
        for (size_t i = 0; i < c->nbuckets; i++) {
            for (struct lease *l = c->buckets[i]; l; l = l->next) {
                uint64_t fence = cluster_fence(c, l->account);
                if (l->local && !l->seeded && !l->held && !l->busy)
                    seed(c, l);
                else if (l->held && l->ready != l->fence && !l->busy)
                    pull(c, l);                 /* its state was not to be had last time */
                else if (fence && !l->busy)     /* what changed with no request since: jobs */
                    write_through(c, l, fence); /* planned, answers of the last ones */
                else if (l->local && !l->held && !l->busy)
                    offer(c, l); /* jobs planned here for an account held elsewhere */
            }
        }
        want_all(c);
        take_offered(c);
    }
    for (size_t i = 0; i < c->nnodes; i++)
        free(c->nodes[i].id);
    free(c->nodes);
    c->nodes = nodes;
    c->nnodes = nn;
    nodes = NULL;
out:
    for (size_t i = 0; names && i < nnames; i++)
        free(names[i]);
    free(names);
    for (size_t i = 0; nodes && i < nn; i++)
        free(nodes[i].id);
    free(nodes);
    round_end(c);
}

static void start_round(struct cluster *c)
{
    if (c->connected && c->pending && clock_boot() - c->round_at >= c->lease / 3) {
        /* no answer for a whole period: a connection that hangs (a partition
         * drops nothing, it only stops) is closed and opened again; the
         * callbacks waiting run with no reply, on_disconnect retries */
        TLOG(TLOG_WARN, "cluster.timeout", LSTR("redis", c->redis),
             LDBL("waited_s", clock_boot() - c->round_at));
        redisAsyncContext *ac = c->ac;
        redisAsyncFree(ac);
        if (c->ac == ac) { /* hiredis told no one: as on_disconnect would */
            c->ac = NULL;
            c->connected = false;
            c->pending = 0;
            retry_later(c);
        }
        return;
    }
    if (!c->connected || c->pending)
        return; /* a round at a time; the next tick comes */
    c->round_at = clock_boot();
    char key[160], ttl[32];
    snprintf(key, sizeof key, "{%s}:nodes", c->prefix);
    snprintf(ttl, sizeof ttl, "%lld", (long long)(c->lease * 1000));
    const char *argv[] = {"EVAL", heartbeat_lua, "1", key, c->self, ttl};
    size_t lens[6];
    for (size_t i = 0; i < 6; i++)
        lens[i] = strlen(argv[i]);
    struct call *k = calloc(1, sizeof *k);
    if (!k)
        return;
    k->c = c;
    if (redisAsyncCommandArgv(c->ac, on_heartbeat, k, 6, argv, lens) != REDIS_OK) {
        free(k);
        return;
    }
    c->pending++;
}

static void on_round(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)loop;
    (void)revents;
    start_round(w->data);
}

static void on_auth(redisAsyncContext *ac, void *reply, void *privdata)
{
    (void)ac;
    struct cluster *c = privdata;
    if (!c->closing && reply_error(c, reply, "auth") && reply)
        TLOG(TLOG_ERROR, "cluster.auth_failed", LSTR("redis", c->redis));
}

static void on_connect(const redisAsyncContext *ac, int status)
{
    struct cluster *c = ac->data;
    ev_timer_stop(c->loop, &c->connect_timer);
    if (status != REDIS_OK) { /* hiredis frees the context after this */
        TLOG(TLOG_WARN, "cluster.connect_failed", LSTR("redis", c->redis),
             LSTR("error", ac->errstr));
        c->ac = NULL;
        if (!c->closing) {
            retry_later(c);
        }
        return;
    }
    c->connected = true;
    ev_timer_stop(c->loop, &c->connect_timer);
    TLOG(TLOG_INFO, "cluster.connected", LSTR("redis", c->redis), LSTR("node", c->self));
    start_round(c);
}

static void on_disconnect(const redisAsyncContext *ac, int status)
{
    struct cluster *c = ac->data;
    (void)status;
    c->ac = NULL;
    c->connected = false;
    c->pending = 0; /* their callbacks ran with no reply */
    if (c->closing)
        return;
    TLOG(TLOG_WARN, "cluster.disconnected", LSTR("redis", c->redis), LSTR("error", ac->errstr));
    retry_later(c);
}

/* a connect that neither succeeds nor fails (SYNs dropped by a partition)
 * is given up after a renewal period, and tried again */
static void on_connect_timeout(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)loop;
    (void)revents;
    struct cluster *c = w->data;
    if (!c->ac || c->connected)
        return;
    TLOG(TLOG_WARN, "cluster.connect_failed", LSTR("redis", c->redis),
         LSTR("error", "no connection within a renewal period"));
    redisAsyncFree(c->ac); /* not connected: hiredis calls back no one */
    c->ac = NULL;
    retry_later(c);
}

static void on_retry(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)loop;
    (void)revents;
    connect_now(w->data);
}

/* "IP:port" or "[IPv6]:port" into host and port; 0, or -1 when it is not
 * one. Only addresses: hiredis would resolve a name with a blocking
 * getaddrinfo on the loop. */
static int parse_addr(const char *s, char *host, size_t n, int *port)
{
    const char *colon = strrchr(s, ':');
    if (!colon || colon == s || colon[1] == '\0' ||
        strspn(colon + 1, "0123456789") != strlen(colon + 1))
        return -1;
    const char *h = s;
    size_t hl = (size_t)(colon - s);
    if (h[0] == '[' && hl >= 2 && h[hl - 1] == ']') {
        h++;
        hl -= 2;
    }
    if (hl == 0 || hl >= n)
        return -1;
    memcpy(host, h, hl);
    host[hl] = '\0';
    unsigned char bin[16];
    if (inet_pton(AF_INET, host, bin) != 1 && inet_pton(AF_INET6, host, bin) != 1)
        return -1;
    *port = atoi(colon + 1);
    return *port > 0 && *port <= 65535 ? 0 : -1;
}

static void connect_now(struct cluster *c)
{
    redisAsyncContext *ac;
    if (strncmp(c->redis, "unix:", 5) == 0) {
        ac = redisAsyncConnectUnix(c->redis + 5);
    } else {
        char host[64];
        int port = 0;
        parse_addr(c->redis, host, sizeof host, &port); /* checked in cluster_new */
        ac = redisAsyncConnect(host, port);
    }
    if (!ac || ac->err) {
        TLOG(TLOG_WARN, "cluster.connect_failed", LSTR("redis", c->redis),
             LSTR("error", ac ? ac->errstr : "out of memory"));
        if (ac)
            redisAsyncFree(ac);
        retry_later(c);
        return;
    }
    ac->data = c;
    c->ac = ac;
    ev_timer_set(&c->connect_timer, c->lease / 3, 0);
    ev_timer_start(c->loop, &c->connect_timer);
    redisLibevAttach(c->loop, ac);
    redisAsyncSetConnectCallback(ac, on_connect);
    redisAsyncSetDisconnectCallback(ac, on_disconnect);
    if (c->password) { /* queued ahead of every other command */
        const char *argv[3] = {"AUTH", c->user ? c->user : c->password, c->password};
        int argc = c->user ? 3 : 2;
        size_t lens[3] = {strlen(argv[0]), strlen(argv[1]), strlen(argv[2])};
        redisAsyncCommandArgv(ac, on_auth, c, argc, argv, lens);
    }
}

/* ---- accounts that move: their state, written through and read back --------- */

/* A command's arguments, binary-safe; what it formats it owns. */
struct args {
    const char **v;
    size_t *l;
    size_t n, cap;
    char *own[16];
    size_t nown;
    bool failed;
};

static void arg(struct args *a, const void *p, size_t n)
{
    if (a->failed)
        return;
    if (a->n == a->cap) {
        size_t cap = a->cap ? a->cap * 2 : 32;
        const char **v = realloc(a->v, cap * sizeof *v);
        size_t *l = v ? realloc(a->l, cap * sizeof *l) : NULL;
        if (v)
            a->v = v;
        if (!l) {
            a->failed = true;
            return;
        }
        a->l = l;
        a->cap = cap;
    }
    a->v[a->n] = p;
    a->l[a->n++] = n;
}

static void arg_s(struct args *a, const char *s)
{
    arg(a, s, strlen(s));
}

static void arg_f(struct args *a, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void arg_f(struct args *a, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *s = NULL;
    if (a->nown == sizeof a->own / sizeof a->own[0] || vasprintf(&s, fmt, ap) < 0) {
        a->failed = true;
        s = NULL;
    }
    va_end(ap);
    if (s) {
        a->own[a->nown++] = s;
        arg_s(a, s);
    }
}

static void args_pairs(struct args *a, const struct replica_item *it, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        arg(a, it[i].key, it[i].klen);
        arg(a, it[i].val, it[i].vlen);
    }
}

static void args_free(struct args *a)
{
    for (size_t i = 0; i < a->nown; i++)
        free(a->own[i]);
    free(a->v);
    free(a->l);
}

/* Send it; the call k is the callback's (freed by it) once sent. */
static int send_args(struct cluster *c, struct args *a, redisCallbackFn *fn, struct call *k)
{
    int rc = !a->failed && c->connected &&
                     redisAsyncCommandArgv(c->ac, fn, k, (int)a->n, a->v, a->l) == REDIS_OK
                 ? 0
                 : TIKD_EIO;
    args_free(a);
    return rc;
}

static void call_free(struct call *k)
{
    free(k->ids);
    replica_snap_free(&k->ask);
    free(k);
}

/* A call for lease l's account (NULL: the cluster's own). */
static struct call *call_new(struct cluster *c, struct lease *l)
{
    struct call *k = calloc(1, sizeof *k);
    if (k) {
        k->c = c;
        k->l = l;
    }
    return k;
}

/* EVAL script over nkeys keys, the keys and arguments to follow. */
static void eval_of(struct args *a, const char *script, int nkeys)
{
    arg_s(a, "EVAL");
    arg_s(a, script);
    arg_f(a, "%d", nkeys);
}

/* The members of {P}:NAME, to fn. */
static void members(struct cluster *c, const char *name, redisCallbackFn *fn)
{
    struct args a = {0};
    struct call *k = call_new(c, NULL);
    if (!k)
        return;
    arg_s(&a, "SMEMBERS");
    arg_f(&a, "{%s}:%s", c->prefix, name);
    if (send_args(c, &a, fn, k) != 0)
        call_free(k);
}

static void want_reply(redisAsyncContext *ac, void *reply, void *privdata)
{
    (void)ac;
    struct call *k = privdata;
    struct cluster *c = k->c;
    redisReply *r = reply;
    call_free(k);
    if (c->closing || reply_error(c, r, "accounts") || r->type != REDIS_REPLY_ARRAY)
        return;
    for (size_t i = 0; i < r->elements; i++)
        if (r->element[i]->type == REDIS_REPLY_STRING)
            cluster_want(c, r->element[i]->str);
}

/* every account some node has, so this node may be its home */
static void want_all(struct cluster *c)
{
    members(c, "accounts", want_reply);
}

static void on_seed(redisAsyncContext *ac, void *reply, void *privdata)
{
    (void)ac;
    struct call *k = privdata;
    struct cluster *c = k->c;
    redisReply *r = reply;
    if (!c->closing) {
        k->l->busy = false;
        if (!reply_error(c, r, "seed"))
            k->l->seeded = true;
    }
    call_free(k);
    if (!c->closing)
        c->data.pushed(c->data.ud); /* requests told to wait meanwhile */
}

static void seed(struct cluster *c, struct lease *l)
{
    struct replica_snap s;
    int rc = c->data.export(c->data.ud, l->account, NULL, 0, &s);
    if (rc == TIKD_ENOTFOUND) { /* removed here meanwhile */
        l->local = false;
        return;
    }
    if (rc != 0)
        return;
    struct args a = {0};
    struct call *k = call_new(c, l);
    if (k) {
        eval_of(&a, seed_lua, 2);
        arg_f(&a, "{%s}:acct:%s", c->prefix, l->account);
        arg_f(&a, "{%s}:accounts", c->prefix);
        arg_s(&a, l->account);
        args_pairs(&a, s.acct, s.nacct); /* its jobs wait here until it does */
        if (send_args(c, &a, on_seed, k) == 0)
            l->busy = true;
        else
            call_free(k);
    }
    replica_snap_free(&s);
}

/* A hash as Redis gives it, into items; the acct hash's own "fence" field
 * is Redis's (skip_fence). */
static int snap_pairs(const redisReply *r, struct replica_item **items, size_t *n, bool skip_fence)
{
    if (r->type != REDIS_REPLY_ARRAY || r->elements % 2)
        return TIKD_ECORRUPT;
    for (size_t i = 0; i < r->elements; i += 2) {
        const redisReply *k = r->element[i], *v = r->element[i + 1];
        if (k->type != REDIS_REPLY_STRING || v->type != REDIS_REPLY_STRING)
            return TIKD_ECORRUPT;
        if (skip_fence && k->len == 5 && memcmp(k->str, "fence", 5) == 0)
            continue;
        int rc = replica_add(items, n, k->str, k->len, v->str, v->len);
        if (rc != 0)
            return rc;
    }
    return 0;
}

static void on_pull(redisAsyncContext *ac, void *reply, void *privdata)
{
    (void)ac;
    struct call *k = privdata;
    struct cluster *c = k->c;
    struct lease *l = k->l;
    redisReply *r = reply;
    if (c->closing) {
        call_free(k);
        return;
    }
    l->busy = false;
    if (reply_error(c, r, "pull") || l->fence != k->fence || !l->held) {
        call_free(k); /* asked again next round, if still granted */
        return;
    }
    if (r->type == REDIS_REPLY_INTEGER) { /* not ours at Redis after all */
        lose(c, l, "held by another node");
        call_free(k);
        return;
    }
    struct replica_snap s = {0};
    int rc = 0;
    if (r->type != REDIS_REPLY_ARRAY || r->elements != 4 ||
        r->element[2]->type != REDIS_REPLY_ARRAY || r->element[2]->elements != k->ask.nopen)
        rc = TIKD_ECORRUPT;
    if (rc == 0)
        rc = snap_pairs(r->element[0], &s.acct, &s.nacct, true);
    if (rc == 0)
        rc = snap_pairs(r->element[1], &s.open, &s.nopen, false);
    if (rc == 0)
        rc = snap_pairs(r->element[3], &s.keys, &s.nkeys, false);
    for (size_t i = 0; rc == 0 && i < k->ask.nopen; i++) {
        const redisReply *d = r->element[2]->element[i];
        if (d->type == REDIS_REPLY_STRING)
            rc = replica_add(&s.done, &s.ndone, k->ask.open[i].key, k->ask.open[i].klen, d->str,
                             d->len);
    }
    if (rc != 0) {
        TLOG(TLOG_ERROR, "cluster.error", LSTR("call", "pull"), LSTR("account", l->account),
             LSTR("redis", "an answer of the wrong shape"));
    } else if ((rc = c->data.import(c->data.ud, l->account, &s)) == 0) {
        struct replica_snap now;
        l->pushed = 0; /* written under this fence: not yet */
        l->nopen_ids = 0;
        if (c->data.export(c->data.ud, l->account, NULL, 0, &now) == 0) {
            free(l->open_ids);
            l->open_ids = now.ids; /* the jobs open now: those that end go with a write */
            l->nopen_ids = now.nopen;
            now.ids = NULL;
            replica_snap_free(&now);
        }
        l->ready = l->fence;
        l->local = true; /* in this node's database now */
        TLOG(TLOG_DEBUG, "cluster.state_read", LSTR("account", l->account), LINT("fence", l->fence),
             LINT("jobs", (long long)s.nopen));
        c->fn(c->ud, l->account, l->fence, true);
    }
    replica_snap_free(&s);
    call_free(k);
}

/* Granted: read its state back (with what Redis knows of the jobs open
 * here) before acting. */
static void pull(struct cluster *c, struct lease *l)
{
    if (l->busy)
        return;
    struct call *k = call_new(c, l);
    if (!k)
        return;
    k->fence = l->fence;
    int rc = c->data.export(c->data.ud, l->account, NULL, 0, &k->ask);
    if (rc != 0 && rc != TIKD_ENOTFOUND) {
        call_free(k);
        return;
    }
    struct args a = {0};
    eval_of(&a, pull_lua, 5);
    arg_f(&a, "{%s}:lease:%s", c->prefix, l->account);
    arg_f(&a, "{%s}:acct:%s", c->prefix, l->account);
    arg_f(&a, "{%s}:open:%s", c->prefix, l->account);
    arg_f(&a, "{%s}:done:%s", c->prefix, l->account);
    arg_f(&a, "{%s}:keys:%s", c->prefix, l->account);
    arg_s(&a, c->self);
    arg_f(&a, "%llu", (unsigned long long)l->fence);
    for (size_t i = 0; i < k->ask.nopen; i++)
        arg(&a, k->ask.open[i].key, k->ask.open[i].klen);
    if (send_args(c, &a, on_pull, k) == 0)
        l->busy = true;
    else
        call_free(k);
}

static void on_push(redisAsyncContext *ac, void *reply, void *privdata)
{
    (void)ac;
    struct call *k = privdata;
    struct cluster *c = k->c;
    struct lease *l = k->l;
    redisReply *r = reply;
    if (c->closing) {
        call_free(k);
        return;
    }
    l->busy = false;
    bool failed = reply_error(c, r, "push");
    if (!failed && l->fence == k->fence) {
        if (r->type == REDIS_REPLY_INTEGER && r->integer == 1) {
            l->pushed = k->digest;
            free(l->open_ids);
            l->open_ids = k->ids;
            l->nopen_ids = k->nids;
            k->ids = NULL;
        } else {
            lose(c, l, "Redis refused its state under this fence");
        }
    }
    call_free(k);
    if (!failed) /* after an error, the waiting requests ask again in their own time */
        c->data.pushed(c->data.ud);
}

static void on_claim(redisAsyncContext *ac, void *reply, void *privdata)
{
    (void)ac;
    struct call *k = privdata;
    struct cluster *c = k->c;
    struct lease *l = k->l;
    redisReply *r = reply;
    if (c->closing) {
        call_free(k);
        return;
    }
    l->busy = false;
    if (!reply_error(c, r, "claim")) {
        if (r->type == REDIS_REPLY_ARRAY && r->elements == 2 &&
            r->element[0]->type == REDIS_REPLY_INTEGER &&
            r->element[1]->type == REDIS_REPLY_INTEGER) {
            if (r->element[0]->integer == 1)
                l->claimed_at = clock_boot();
            else /* no room until the first active creator's window ends */
                l->full_until = clock_boot() + (double)r->element[1]->integer / 1000;
        } else {
            TLOG(TLOG_ERROR, "cluster.error", LSTR("call", "claim"),
                 LSTR("redis", "an answer of the wrong shape"));
        }
    }
    call_free(k);
    c->data.pushed(c->data.ud);
}

/* An init for l's account: counted among the app's active creators in
 * Redis first. 0 (go), CLUSTER_WAIT (asked), or the fence's 0 with
 * *full_for. */
static uint64_t claim(struct cluster *c, struct lease *l, double *full_for)
{
    double now = clock_boot();
    if (l->claimed_at > 0 && now - l->claimed_at < 2) {
        l->claimed_at = 0; /* one claim, one init */
        return 0;
    }
    if (l->full_until > now) {
        *full_for = l->full_until - now;
        return 1;
    }
    struct call *k = call_new(c, l);
    if (!k)
        return CLUSTER_WAIT;
    struct args a = {0};
    eval_of(&a, claim_lua, 1);
    arg_f(&a, "{%s}:active", c->prefix);
    arg_s(&a, l->account);
    arg_f(&a, "%.0f", c->app_cap);
    arg_f(&a, "%.0f", c->app_window * 1000);
    if (send_args(c, &a, on_claim, k) == 0)
        l->busy = true;
    else
        call_free(k);
    return CLUSTER_WAIT;
}

/* Redis holds l's state as it is here (0), or it is being written
 * (CLUSTER_WAIT), or it cannot be read here (1). */
/* The PUSH of snapshot s of l's account under fence, into a. */
static void push_args(struct cluster *c, const struct lease *l, uint64_t fence,
                      const struct replica_snap *s, struct args *a)
{
    eval_of(a, push_lua, 8);
    arg_f(a, "{%s}:lease:%s", c->prefix, l->account);
    arg_f(a, "{%s}:acct:%s", c->prefix, l->account);
    arg_f(a, "{%s}:open:%s", c->prefix, l->account);
    arg_f(a, "{%s}:done:%s", c->prefix, l->account);
    arg_f(a, "{%s}:accounts", c->prefix);
    arg_f(a, "{%s}:keys:%s", c->prefix, l->account);
    arg_f(a, "{%s}:inbox:%s", c->prefix, l->account);
    arg_f(a, "{%s}:inboxed", c->prefix);
    arg_s(a, c->self);
    arg_f(a, "%llu", (unsigned long long)fence);
    arg_s(a, l->account);
    arg_f(a, "%zu", s->nacct);
    arg_f(a, "%zu", s->nopen);
    arg_f(a, "%zu", s->ndone);
    arg_f(a, "%zu", s->nkeys);
    args_pairs(a, s->acct, s->nacct);
    args_pairs(a, s->open, s->nopen);
    args_pairs(a, s->done, s->ndone);
    args_pairs(a, s->keys, s->nkeys);
}

/* Redis holds l's state as it is here (0), or it is being written
 * (CLUSTER_WAIT), or it cannot be read here (1). */
static uint64_t write_through(struct cluster *c, struct lease *l, uint64_t fence)
{
    if (l->busy)
        return CLUSTER_WAIT;
    struct replica_snap s;
    int rc = c->data.export(c->data.ud, l->account, l->open_ids, l->nopen_ids, &s);
    if (rc != 0) {
        TLOG(TLOG_ERROR, "cluster.error", LSTR("call", "push"), LSTR("account", l->account),
             LSTR("error", tikd_strerror(rc)));
        return 1;
    }
    if (s.digest == l->pushed) { /* Redis has it as it is */
        replica_snap_free(&s);
        return 0;
    }
    struct call *k = call_new(c, l);
    if (k) {
        k->fence = fence;
        k->digest = s.digest;
        k->ids = s.ids;
        k->nids = s.nopen;
        s.ids = NULL;
        struct args a = {0};
        push_args(c, l, fence, &s, &a);
        if (send_args(c, &a, on_push, k) == 0) {
            l->busy = true;
        } else { /* asked again: the request waits a while */
            if (c->connected)
                TLOG(TLOG_ERROR, "cluster.error", LSTR("call", "push"), LSTR("account", l->account),
                     LSTR("redis", "could not send"));
            call_free(k);
        }
    }
    replica_snap_free(&s);
    return CLUSTER_WAIT;
}

uint64_t cluster_admit(struct cluster *c, const char *account, bool want_claim, double *full_for)
{
    *full_for = 0;
    uint64_t fence = cluster_fence(c, account);
    if (!fence || !c->has_data)
        return fence;
    struct lease *l = find(c, account);
    uint64_t w = write_through(c, l, fence);
    if (w)
        return w == CLUSTER_WAIT ? w : 0;
    if (!want_claim || c->app_cap <= 0)
        return fence;
    uint64_t got = claim(c, l, full_for);
    return got == CLUSTER_WAIT ? got : got ? 0 : fence;
}

void cluster_set_app_cap(struct cluster *c, double cap, double window)
{
    c->app_cap = cap;
    c->app_window = window;
}

void cluster_set_data(struct cluster *c, const struct cluster_data *d)
{
    c->data = *d;
    c->has_data = true;
}

int cluster_local(struct cluster *c, const char *account)
{
    int rc = cluster_want(c, account);
    struct lease *l = rc ? NULL : find(c, account);
    if (l)
        l->local = true;
    return rc;
}

/* ---- jobs planned on a node that does not hold their account ------------------ */

static uint64_t items_digest(const struct replica_item *it, size_t n)
{
    uint64_t h = 14695981039346656037ull;
    for (size_t i = 0; i < n; i++) {
        for (size_t b = 0; b < it[i].klen; b++)
            h = (h ^ (unsigned char)it[i].key[b]) * 1099511628211ull;
        for (size_t b = 0; b < it[i].vlen; b++)
            h = (h ^ it[i].val[b]) * 1099511628211ull;
    }
    return h ? h : 1;
}

static void on_offer(redisAsyncContext *ac, void *reply, void *privdata)
{
    (void)ac;
    struct call *k = privdata;
    struct cluster *c = k->c;
    if (!c->closing) {
        k->l->busy = false;
        if (!reply_error(c, reply, "offer"))
            k->l->offered = k->digest;
    }
    call_free(k);
    if (!c->closing)
        c->data.pushed(c->data.ud);
}

/* Offer the jobs planned here for l's account (held elsewhere, or by no
 * node yet) to its holder, once per change. */
static void offer(struct cluster *c, struct lease *l)
{
    struct replica_snap s;
    if (!c->data.offer || c->data.offer(c->data.ud, l->account, &s) != 0)
        return;
    uint64_t digest = s.nopen ? items_digest(s.open, s.nopen) : 0;
    if (digest && digest != l->offered) {
        struct call *k = call_new(c, l);
        if (k) {
            k->digest = digest;
            struct args a = {0};
            eval_of(&a, offer_lua, 4);
            arg_f(&a, "{%s}:inbox:%s", c->prefix, l->account);
            arg_f(&a, "{%s}:open:%s", c->prefix, l->account);
            arg_f(&a, "{%s}:done:%s", c->prefix, l->account);
            arg_f(&a, "{%s}:inboxed", c->prefix);
            arg_s(&a, l->account);
            args_pairs(&a, s.open, s.nopen);
            if (send_args(c, &a, on_offer, k) == 0)
                l->busy = true;
            else
                call_free(k);
        }
    }
    replica_snap_free(&s);
}

static void on_take(redisAsyncContext *ac, void *reply, void *privdata)
{
    (void)ac;
    struct call *k = privdata;
    struct cluster *c = k->c;
    struct lease *l = k->l;
    redisReply *r = reply;
    if (c->closing) {
        call_free(k);
        return;
    }
    l->busy = false;
    if (reply_error(c, r, "take") || r->type != REDIS_REPLY_ARRAY || l->fence != k->fence) {
        call_free(k);
        return;
    }
    struct replica_snap s = {0};
    if (snap_pairs(r, &s.open, &s.nopen, false) == 0 && s.nopen &&
        c->data.take(c->data.ud, l->account, &s) == 0) {
        TLOG(TLOG_INFO, "cluster.jobs_taken", LSTR("account", l->account),
             LINT("jobs", (long long)s.nopen));
        uint64_t fence = cluster_fence(c, l->account);
        if (fence) /* open here now: out of the inbox */
            write_through(c, l, fence);
    }
    replica_snap_free(&s);
    call_free(k);
}

static void take(struct cluster *c, struct lease *l)
{
    struct call *k = call_new(c, l);
    if (!k)
        return;
    k->fence = l->fence;
    struct args a = {0};
    eval_of(&a, take_lua, 2);
    arg_f(&a, "{%s}:lease:%s", c->prefix, l->account);
    arg_f(&a, "{%s}:inbox:%s", c->prefix, l->account);
    arg_s(&a, c->self);
    arg_f(&a, "%llu", (unsigned long long)l->fence);
    if (send_args(c, &a, on_take, k) == 0)
        l->busy = true;
    else
        call_free(k);
}

static void inboxed_reply(redisAsyncContext *ac, void *reply, void *privdata)
{
    (void)ac;
    struct call *k = privdata;
    struct cluster *c = k->c;
    redisReply *r = reply;
    call_free(k);
    if (c->closing || reply_error(c, r, "inboxed") || r->type != REDIS_REPLY_ARRAY)
        return;
    for (size_t i = 0; i < r->elements; i++) {
        if (r->element[i]->type != REDIS_REPLY_STRING)
            continue;
        struct lease *l = find(c, r->element[i]->str);
        if (l && l->held && l->ready == l->fence && !l->busy && cluster_fence(c, l->account))
            take(c, l);
    }
}

/* the accounts with jobs offered: those held here are taken */
static void take_offered(struct cluster *c)
{
    members(c, "inboxed", inboxed_reply);
}

/* ---- life ------------------------------------------------------------------- */

static bool name_ok(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > 64)
        return false;
    return strspn(s, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._-") == n;
}

int cluster_opts_check(const struct cluster_opts *o, struct tikd_err *e)
{
    const char *prefix = o->prefix ? o->prefix : "tikd";
    if (!o->node || !name_ok(o->node))
        return tikd_fail(e, TIKD_EINVAL,
                         "cluster: node name '%s' is not allowed: 1-64 of A-Z a-z 0-9 . _ -",
                         o->node ? o->node : "");
    if (!name_ok(prefix))
        return tikd_fail(e, TIKD_EINVAL,
                         "cluster: key prefix '%s' is not allowed: 1-64 of A-Z a-z 0-9 . _ -",
                         prefix);
    bool unix_path = o->redis && strncmp(o->redis, "unix:", 5) == 0 && o->redis[5] == '/';
    char host[64];
    int port;
    if (!o->redis || (!unix_path && parse_addr(o->redis, host, sizeof host, &port) != 0))
        return tikd_fail(e, TIKD_EINVAL,
                         "cluster: redis address '%s' is not allowed: \"IP:port\", \"[IPv6]:port\" "
                         "or \"unix:/path\" (a name would be resolved by a blocking call)",
                         o->redis ? o->redis : "");
    if (!(o->lease >= 1 && o->lease <= 3600))
        return tikd_fail(e, TIKD_EINVAL, "cluster: a lease of %g s is not allowed: 1 to 3600 s",
                         o->lease);
    if (!(o->margin > 0 && o->margin < o->lease / 3))
        return tikd_fail(e, TIKD_EINVAL,
                         "cluster: a margin of %g s is not allowed: more than 0 and less than a "
                         "third of the lease (%g s), which is how often leases are renewed",
                         o->margin, o->lease);
    return 0;
}

struct cluster *cluster_new(struct ev_loop *loop, const struct cluster_opts *o,
                            cluster_change_fn fn, void *ud, struct tikd_err *e)
{
    if (cluster_opts_check(o, e) != 0)
        return NULL;
    const char *prefix = o->prefix ? o->prefix : "tikd";
    struct cluster *c = calloc(1, sizeof *c);
    unsigned char nonce[4];
    if (!c || RAND_bytes(nonce, sizeof nonce) != 1) {
        free(c);
        tikd_fail(e, TIKD_ENOMEM, "cluster: out of memory");
        return NULL;
    }
    c->loop = loop;
    c->fn = fn;
    c->ud = ud;
    c->lease = o->lease;
    c->margin = o->margin;
    c->backoff = BACKOFF_MIN;
    c->redis = strdup(o->redis);
    c->name = strdup(o->node);
    c->prefix = strdup(prefix);
    c->user = o->user ? strdup(o->user) : NULL;
    c->password = o->password ? strdup(o->password) : NULL;
    /* an instance of the name: a restarted node is a new holder, and waits
     * out its earlier life's leases rather than acting under them */
    if (asprintf(&c->self, "%s/%02x%02x%02x%02x", o->node, nonce[0], nonce[1], nonce[2], nonce[3]) <
        0)
        c->self = NULL;
    if (!c->redis || !c->name || !c->prefix || !c->self || (o->user && !c->user) ||
        (o->password && !c->password)) {
        cluster_free(c);
        tikd_fail(e, TIKD_ENOMEM, "cluster: out of memory");
        return NULL;
    }
    ev_timer_init(&c->round_timer, on_round, c->lease / 3, c->lease / 3);
    c->round_timer.data = c;
    ev_timer_start(loop, &c->round_timer);
    ev_init(&c->retry_timer, on_retry);
    c->retry_timer.data = c;
    ev_init(&c->expiry_timer, on_expiry);
    c->expiry_timer.data = c;
    ev_init(&c->connect_timer, on_connect_timeout);
    c->connect_timer.data = c;
    connect_now(c);
    return c;
}

void cluster_free(struct cluster *c)
{
    if (!c)
        return;
    c->closing = true;
    if (c->ac)
        redisAsyncFree(c->ac); /* runs the callbacks still waiting, with no reply */
    ev_timer_stop(c->loop, &c->round_timer);
    ev_timer_stop(c->loop, &c->retry_timer);
    ev_timer_stop(c->loop, &c->expiry_timer);
    ev_timer_stop(c->loop, &c->connect_timer);
    for (size_t i = 0; i < c->nbuckets; i++) {
        for (struct lease *l = c->buckets[i], *next; l; l = next) {
            next = l->next;
            free(l->account);
            free(l->open_ids);
            free(l);
        }
    }
    free(c->buckets);
    for (size_t i = 0; i < c->nnodes; i++)
        free(c->nodes[i].id);
    free(c->nodes);
    if (c->password) {
        memset(c->password, 0, strlen(c->password));
        free(c->password);
    }
    free(c->redis);
    free(c->user);
    free(c->name);
    free(c->self);
    free(c->prefix);
    free(c);
}

/* ---- the whole cluster, read by a command ------------------------------------ */

/* KEYS nodes, accounts; ARGV the lease key prefix. Returns {now, nodes
 * (id, expiry)..., then per account: name, node, fence, since}. */
static const char status_lua[] =
    "local t = redis.call('TIME')\n"
    "local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)\n"
    "local nodes = redis.call('ZRANGEBYSCORE', KEYS[1], now, '+inf', 'WITHSCORES')\n"
    "local out = {tostring(now), nodes}\n"
    "local accts = redis.call('SMEMBERS', KEYS[2])\n"
    "table.sort(accts)\n"
    "local l = {}\n"
    "for _, a in ipairs(accts) do\n"
    "  local h = redis.call('HMGET', ARGV[1] .. a, 'node', 'fence', 'since')\n"
    "  l[#l + 1] = a; l[#l + 1] = h[1] or ''; l[#l + 1] = h[2] or '0'; l[#l + 1] = h[3] or '0'\n"
    "end\n"
    "out[3] = l\n"
    "return out\n";

void cluster_status_free(struct cluster_status *s)
{
    free(s->nodes);
    free(s->leases);
    memset(s, 0, sizeof *s);
}

static const char *str_of(const redisReply *r)
{
    return r->type == REDIS_REPLY_STRING || r->type == REDIS_REPLY_STATUS ? r->str : "";
}

/* A blocking connection (a command's, or a stopping node's), authenticated:
 * NULL with the reason in e. */
static redisContext *connect_sync(const char *redis, const char *user, const char *password,
                                  double timeout, struct tikd_err *e)
{
    struct timeval tv = {(time_t)timeout, (suseconds_t)((timeout - (double)(time_t)timeout) * 1e6)};
    redisContext *rc;
    if (strncmp(redis, "unix:", 5) == 0) {
        rc = redisConnectUnixWithTimeout(redis + 5, tv);
    } else {
        char host[64];
        int port = 0;
        parse_addr(redis, host, sizeof host, &port);
        rc = redisConnectWithTimeout(host, port, tv);
    }
    if (!rc || rc->err) {
        tikd_fail(e, TIKD_EIO, "cluster: cannot reach Redis at %s: %s", redis,
                  rc ? rc->errstr : "out of memory");
        redisFree(rc);
        return NULL;
    }
    redisSetTimeout(rc, tv);
    if (password) {
        redisReply *r = user ? redisCommand(rc, "AUTH %s %s", user, password)
                             : redisCommand(rc, "AUTH %s", password);
        bool bad = !r || r->type == REDIS_REPLY_ERROR;
        freeReplyObject(r);
        if (bad) {
            tikd_fail(e, TIKD_EIO, "cluster: Redis at %s refused the password", redis);
            redisFree(rc);
            return NULL;
        }
    }
    return rc;
}

int cluster_status_read(const struct cluster_opts *o, double timeout, struct cluster_status *out,
                        struct tikd_err *e)
{
    memset(out, 0, sizeof *out);
    if (cluster_opts_check(o, e) != 0)
        return e->code;
    const char *prefix = o->prefix ? o->prefix : "tikd";
    redisContext *rc = connect_sync(o->redis, o->user, o->password, timeout, e);
    if (!rc)
        return TIKD_EIO;
    redisReply *r = NULL;
    int code = 0;
    char nodes[160], accounts[160], lease[160];
    snprintf(nodes, sizeof nodes, "{%s}:nodes", prefix);
    snprintf(accounts, sizeof accounts, "{%s}:accounts", prefix);
    snprintf(lease, sizeof lease, "{%s}:lease:", prefix);
    if (code == 0)
        r = redisCommand(rc, "EVAL %s 2 %s %s %s", status_lua, nodes, accounts, lease);
    if (code == 0 &&
        (!r || r->type != REDIS_REPLY_ARRAY || r->elements != 3 ||
         r->element[1]->type != REDIS_REPLY_ARRAY || r->element[2]->type != REDIS_REPLY_ARRAY ||
         r->element[1]->elements % 2 || r->element[2]->elements % 4))
        code = tikd_fail(e, TIKD_EIO, "cluster: Redis at %s: %s", o->redis,
                         r && r->type == REDIS_REPLY_ERROR ? r->str
                         : rc->err                         ? rc->errstr
                                                           : "an answer of the wrong shape");
    if (code == 0) {
        double now = atof(str_of(r->element[0]));
        const redisReply *n = r->element[1], *l = r->element[2];
        out->nnodes = n->elements / 2;
        out->nleases = l->elements / 4;
        out->nodes = calloc(out->nnodes + 1, sizeof *out->nodes);
        out->leases = calloc(out->nleases + 1, sizeof *out->leases);
        if (!out->nodes || !out->leases)
            code = tikd_fail(e, TIKD_ENOMEM, "cluster: out of memory");
        for (size_t i = 0; code == 0 && i < out->nnodes; i++) {
            snprintf(out->nodes[i].id, sizeof out->nodes[i].id, "%s", str_of(n->element[2 * i]));
            out->nodes[i].expires = (atof(str_of(n->element[2 * i + 1])) - now) / 1000;
        }
        for (size_t i = 0; code == 0 && i < out->nleases; i++) {
            struct cluster_status_lease *x = &out->leases[i];
            snprintf(x->account, sizeof x->account, "%s", str_of(l->element[4 * i]));
            snprintf(x->node, sizeof x->node, "%s", str_of(l->element[4 * i + 1]));
            x->fence = strtoull(str_of(l->element[4 * i + 2]), NULL, 10);
            double since = atof(str_of(l->element[4 * i + 3]));
            x->age = x->node[0] && since > 0 ? (now - since) / 1000 : 0;
            for (size_t k = 0; x->node[0] && k < out->nnodes; k++)
                if (strcmp(out->nodes[k].id, x->node) == 0)
                    out->nodes[k].holds++;
        }
    }
    freeReplyObject(r);
    redisFree(rc);
    if (code != 0)
        cluster_status_free(out);
    return code;
}

/* ---- a clean stop: hand every account over ------------------------------------ */

size_t cluster_stop(struct cluster *c, double timeout)
{
    if (!c->has_data)
        return 0;
    struct tikd_err e = {0};
    redisContext *rc = connect_sync(c->redis, c->user, c->password, timeout, &e);
    if (!rc) {
        TLOG(TLOG_WARN, "cluster.handover_failed", LSTR("error", e.msg));
        return 0;
    }
    /* first out of the live nodes: its accounts' homes move at the others' next round */
    char nodes[160];
    snprintf(nodes, sizeof nodes, "{%s}:nodes", c->prefix);
    freeReplyObject(redisCommand(rc, "ZREM %s %s", nodes, c->self));
    size_t sent = 0, given = 0;
    for (size_t i = 0; i < c->nbuckets; i++) {
        for (struct lease *l = c->buckets[i]; l; l = l->next) {
            uint64_t fence = cluster_fence(c, l->account);
            struct replica_snap s;
            if (!fence ||
                c->data.export(c->data.ud, l->account, l->open_ids, l->nopen_ids, &s) != 0)
                continue;
            /* its last state, then the lease given back: both under its fence */
            struct args a = {0}, h = {0};
            push_args(c, l, fence, &s, &a);
            eval_of(&h, hold_lua, 2);
            arg_f(&h, "{%s}:fences", c->prefix);
            arg_f(&h, "{%s}:lease:%s", c->prefix, l->account);
            arg_s(&h, c->self);
            arg_f(&h, "%lld", (long long)(c->lease * 1000));
            arg_s(&h, l->account);
            arg_f(&h, "%llu", (unsigned long long)fence);
            if (!a.failed && !h.failed &&
                redisAppendCommandArgv(rc, (int)a.n, a.v, a.l) == REDIS_OK &&
                redisAppendCommandArgv(rc, (int)h.n, h.v, h.l) == REDIS_OK)
                sent += 2;
            args_free(&a);
            args_free(&h);
            replica_snap_free(&s);
            l->held = false; /* acts no more */
        }
    }
    for (size_t i = 0; i < sent; i++) {
        redisReply *r = NULL;
        if (redisGetReply(rc, (void **)&r) != REDIS_OK) {
            TLOG(TLOG_WARN, "cluster.handover_failed", LSTR("error", rc->errstr));
            break;
        }
        given += i % 2 == 1 && r && r->type == REDIS_REPLY_ARRAY;
        freeReplyObject(r);
    }
    redisFree(rc);
    TLOG(TLOG_INFO, "cluster.handed_over", LINT("accounts", (long long)given));
    return given;
}

/* ---- views ------------------------------------------------------------------ */

size_t cluster_nodes(const struct cluster *c, struct cluster_node_view *out, size_t n)
{
    for (size_t i = 0; i < c->nnodes && i < n; i++)
        out[i] = (struct cluster_node_view){.id = c->nodes[i].id, .expires = c->nodes[i].expires};
    return c->nnodes;
}

size_t cluster_leases(struct cluster *c, struct cluster_lease_view *out, size_t n)
{
    size_t k = 0;
    double now = clock_boot();
    for (size_t i = 0; i < c->nbuckets; i++) {
        for (struct lease *l = c->buckets[i]; l; l = l->next, k++) {
            if (k >= n)
                continue;
            bool held = l->held && now < l->valid_until;
            out[k] = (struct cluster_lease_view){.account = l->account,
                                                 .fence = l->fence,
                                                 .held = held,
                                                 .valid_for = held ? l->valid_until - now : 0};
        }
    }
    return k;
}

const char *cluster_self(const struct cluster *c)
{
    return c->self;
}

bool cluster_connected(const struct cluster *c)
{
    return c->connected;
}
