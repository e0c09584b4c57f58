/* account.c - account records as JSON in STORE_DB_ACCOUNTS (see account.h).
 *
 * The expiry index, in STORE_DB_INDEX beside the job index, kept by every
 * put and delete in their transaction, for the active accounts only:
 *   't' expiry(be64, ms) name   when its access token expires
 *   'r' expiry(be64, ms) name   when its refresh token expires */
#include "account.h"
#include "codec.h"

#include <jansson.h>
#include <openssl/rand.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const state_names[] = {"pending", "active", "needs_reauth", "revoked"};

bool account_in_tenant(const struct account *a, const char *tenant)
{
    return !tenant || strcmp(a->tenant, tenant) == 0;
}

const char *account_state_name(enum acct_state s)
{
    return state_names[s];
}

bool account_name_valid(const char *n)
{
    size_t l = strlen(n);
    if (l == 0 || l > ACCT_NAME_MAX || n[0] == '.' || n[0] == '-')
        return false;
    for (const char *p = n; *p; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
              *p == '.' || *p == '_' || *p == '-'))
            return false;
    return true;
}

void account_init(struct account *a, const char *name, double now)
{
    memset(a, 0, sizeof *a);
    unsigned char r[16];
    RAND_bytes(r, sizeof r);
    codec_hex(r, sizeof r, a->id);
    snprintf(a->name, sizeof a->name, "%s", name);
    a->state = ACCT_PENDING;
    a->created_at = a->updated_at = now;
}

static void copy_str(json_t *o, const char *k, char *out, size_t n)
{
    const char *s = json_string_value(json_object_get(o, k));
    snprintf(out, n, "%s", s ? s : "");
}

static double num(json_t *o, const char *k)
{
    return json_number_value(json_object_get(o, k));
}

static int parse(const void *p, size_t n, struct account *a)
{
    json_error_t err;
    json_t *o = json_loadb(p, n, 0, &err);
    if (!json_is_object(o)) {
        json_decref(o);
        return TIKD_ECORRUPT;
    }
    memset(a, 0, sizeof *a);
    copy_str(o, "id", a->id, sizeof a->id);
    copy_str(o, "name", a->name, sizeof a->name);
    copy_str(o, "open_id", a->open_id, sizeof a->open_id);
    copy_str(o, "scopes", a->scopes, sizeof a->scopes);
    copy_str(o, "reason", a->reason, sizeof a->reason);
    copy_str(o, "tenant", a->tenant, sizeof a->tenant);
    const char *st = json_string_value(json_object_get(o, "state"));
    a->state = ACCT_PENDING;
    for (int i = 0; st && i < 4; i++)
        if (strcmp(st, state_names[i]) == 0)
            a->state = (enum acct_state)i;
    a->access_expires_at = num(o, "access_expires_at");
    a->refresh_expires_at = num(o, "refresh_expires_at");
    a->access_lifetime = num(o, "access_lifetime");
    a->created_at = num(o, "created_at");
    a->updated_at = num(o, "updated_at");
    a->max_video_s = (int)json_integer_value(json_object_get(o, "max_video_s"));
    a->creator_at = num(o, "creator_at");
    json_decref(o);
    return strlen(a->id) == 32 && a->name[0] ? 0 : TIKD_ECORRUPT;
}

/* Records decoded lately, by the bytes they were decoded from. A record is
 * JSON, and the pipeline reads its account's at every request it sends:
 * parsing it (jansson, numbers through strtod) was most of a request's own
 * cost. A record whose bytes are those decoded before reads as the copy
 * kept: decoding is a function of the bytes, so no write can leave the copy
 * stale, and nothing needs telling. */
enum { CACHE_SLOTS = 64, CACHE_REC_MAX = 1024 };
static struct cached {
    size_t n; /* 0: empty */
    unsigned char rec[CACHE_REC_MAX];
    struct account a;
} cache[CACHE_SLOTS];
static pthread_mutex_t cache_lock = PTHREAD_MUTEX_INITIALIZER;

static struct cached *cache_slot(const void *p, size_t n)
{
    uint64_t h = 1469598103934665603ull; /* FNV-1a of the record */
    const unsigned char *b = p;
    for (size_t i = 0; i < n; i++)
        h = (h ^ b[i]) * 1099511628211ull;
    return &cache[h % CACHE_SLOTS];
}

static bool cache_get(const void *p, size_t n, struct account *a)
{
    if (n == 0 || n > CACHE_REC_MAX) /* (an empty slot has n 0: never a match) */
        return false;
    pthread_mutex_lock(&cache_lock);
    struct cached *c = cache_slot(p, n);
    bool hit = c->n == n && memcmp(c->rec, p, n) == 0;
    if (hit)
        *a = c->a;
    pthread_mutex_unlock(&cache_lock);
    return hit;
}

static void cache_put(const void *p, size_t n, const struct account *a)
{
    if (n == 0 || n > CACHE_REC_MAX)
        return;
    pthread_mutex_lock(&cache_lock);
    struct cached *c = cache_slot(p, n);
    memcpy(c->rec, p, n);
    c->n = n;
    c->a = *a;
    pthread_mutex_unlock(&cache_lock);
}

static int decode(const void *p, size_t n, struct account *a)
{
    if (cache_get(p, n, a))
        return 0;
    int rc = parse(p, n, a);
    if (rc == 0)
        cache_put(p, n, a);
    return rc;
}

int account_decode(const void *p, size_t n, struct account *a)
{
    return decode(p, n, a);
}

int account_get(struct store_txn *t, const char *name, struct account *out)
{
    struct store_val v;
    int rc = store_get(t, STORE_DB_ACCOUNTS, name, strlen(name), &v);
    return rc ? rc : decode(v.p, v.n, out);
}

/* ---- the expiry index ---------------------------------------------------------- */

static size_t expiry_key(unsigned char *k, char tag, double at, const char *name)
{
    size_t n = strlen(name);
    k[0] = (unsigned char)tag;
    store_be64_put(k + 1, at > 0 ? (uint64_t)(at * 1000) : 0);
    memcpy(k + 9, name, n);
    return 9 + n;
}

/* a (NULL: removed) replaces old (NULL: new) in the index. */
static int expiry_index(struct store_txn *t, const struct account *old, const struct account *a)
{
    unsigned char k[9 + ACCT_NAME_MAX];
    bool was = old && old->state == ACCT_ACTIVE, is = a && a->state == ACCT_ACTIVE;
    int rc = 0;
    if (was && (!is || old->access_expires_at != a->access_expires_at))
        rc = store_del(t, STORE_DB_INDEX, k, expiry_key(k, 't', old->access_expires_at, old->name));
    if (rc == 0 && was && (!is || old->refresh_expires_at != a->refresh_expires_at))
        rc =
            store_del(t, STORE_DB_INDEX, k, expiry_key(k, 'r', old->refresh_expires_at, old->name));
    if (rc == 0 && is && (!was || old->access_expires_at != a->access_expires_at))
        rc = store_put(t, STORE_DB_INDEX, k, expiry_key(k, 't', a->access_expires_at, a->name), "",
                       0);
    if (rc == 0 && is && (!was || old->refresh_expires_at != a->refresh_expires_at))
        rc = store_put(t, STORE_DB_INDEX, k, expiry_key(k, 'r', a->refresh_expires_at, a->name), "",
                       0);
    return rc;
}

struct expiring {
    uint64_t until;
    int (*fn)(const char *name, void *ctx);
    void *ctx;
};

static int expiring_one(struct store_val k, struct store_val v, void *ctx)
{
    (void)v;
    struct expiring *x = ctx;
    if (k.n < 10 || k.n > 9 + ACCT_NAME_MAX)
        return 0;
    if (store_be64_get((const unsigned char *)k.p + 1) > x->until)
        return 1; /* in expiry order: nothing after is due */
    char name[ACCT_NAME_MAX + 1];
    memcpy(name, (const char *)k.p + 9, k.n - 9);
    name[k.n - 9] = '\0';
    return x->fn(name, x->ctx);
}

int account_foreach_expiring(struct store_txn *t, bool refresh, double until,
                             int (*fn)(const char *name, void *ctx), void *ctx)
{
    struct expiring x = {until > 0 ? (uint64_t)(until * 1000) : 0, fn, ctx};
    char tag = refresh ? 'r' : 't';
    int rc = store_foreach(t, STORE_DB_INDEX, &tag, 1, expiring_one, &x);
    return rc == 1 ? 0 : rc;
}

static int index_one(const struct account *a, void *ctx)
{
    return expiry_index(ctx, NULL, a);
}

static int index_each(struct store_val k, struct store_val v, void *ctx)
{
    (void)k;
    struct account a; /* unreadable: left out (account list names it), never swept */
    return decode(v.p, v.n, &a) != 0 ? 0 : index_one(&a, ctx);
}

int account_index_build(struct store_txn *t)
{
    return store_foreach(t, STORE_DB_ACCOUNTS, NULL, 0, index_each, t);
}

/* ---- records ---------------------------------------------------------------------- */

static int write_record(struct store_txn *t, const struct account *a)
{
    json_t *o = json_pack("{s:s, s:s, s:s, s:s, s:s, s:f, s:f, s:f, s:f, s:f, s:s}", "id", a->id,
                          "name", a->name, "open_id", a->open_id, "scopes", a->scopes, "state",
                          state_names[a->state], "access_expires_at", a->access_expires_at,
                          "refresh_expires_at", a->refresh_expires_at, "access_lifetime",
                          a->access_lifetime, "created_at", a->created_at, "updated_at",
                          a->updated_at, "reason", a->reason);
    if (!o)
        return TIKD_ENOMEM;
    if (a->creator_at > 0) {
        json_object_set_new(o, "max_video_s", json_integer(a->max_video_s));
        json_object_set_new(o, "creator_at", json_real(a->creator_at));
    }
    if (a->tenant[0])
        json_object_set_new(o, "tenant", json_string(a->tenant));
    char *s = json_dumps(o, JSON_COMPACT | JSON_REAL_PRECISION(17));
    json_decref(o);
    if (!s)
        return TIKD_ENOMEM;
    int rc = store_put(t, STORE_DB_ACCOUNTS, a->name, strlen(a->name), s, strlen(s));
    free(s);
    return rc;
}

int account_put(struct store_txn *t, const struct account *a)
{
    struct account old;
    int rc = account_get(t, a->name, &old);
    if (rc != 0 && rc != TIKD_ENOTFOUND && rc != TIKD_ECORRUPT)
        return rc;
    bool had = rc == 0;
    rc = write_record(t, a);
    return rc ? rc : expiry_index(t, had ? &old : NULL, a);
}

struct note {
    const char *name;
    int max;
    double now;
    bool same;
};

static int note_read(struct store_txn *t, void *ctx)
{
    struct note *n = ctx;
    struct account a;
    int rc = account_get(t, n->name, &a);
    n->same = rc == 0 && a.creator_at > 0 && a.max_video_s == n->max;
    return rc == TIKD_ENOTFOUND ? 0 : rc;
}

static int note_write(struct store_txn *t, void *ctx)
{
    struct note *n = ctx;
    struct account a;
    int rc = account_get(t, n->name, &a);
    if (rc != 0)
        return rc == TIKD_ENOTFOUND ? 0 : rc; /* removed meanwhile */
    a.max_video_s = n->max;
    a.creator_at = n->now;
    return account_put(t, &a);
}

int account_note_creator(struct store *s, const char *name, int max_video_s, double now,
                         struct tikd_err *e)
{
    struct note n = {name, max_video_s, now, false};
    int rc = store_read(s, note_read, &n, e); /* most answers change nothing: no write */
    return rc != 0 || n.same ? rc : store_write(s, note_write, &n, e);
}

int account_del(struct store_txn *t, const char *name)
{
    struct account old;
    int rc = account_get(t, name, &old);
    if (rc == 0 && (rc = expiry_index(t, &old, NULL)) != 0)
        return rc;
    return store_del(t, STORE_DB_ACCOUNTS, name, strlen(name));
}

struct each {
    int (*fn)(const struct account *, void *);
    void *ctx;
};

static int each_cb(struct store_val k, struct store_val v, void *ctx)
{
    (void)k;
    struct each *e = ctx;
    struct account a;
    int rc = decode(v.p, v.n, &a);
    return rc ? rc : e->fn(&a, e->ctx);
}

int account_foreach(struct store_txn *t, int (*fn)(const struct account *, void *), void *ctx)
{
    struct each e = {fn, ctx};
    return store_foreach(t, STORE_DB_ACCOUNTS, NULL, 0, each_cb, &e);
}

bool account_has_scopes(const char *have, const char *need)
{
    const char *p = need;
    while (*p) {
        size_t l = strcspn(p, ",");
        bool found = false;
        for (const char *h = have; *h;) {
            size_t hl = strcspn(h, ",");
            if (hl == l && strncmp(h, p, l) == 0)
                found = true;
            h += hl + (h[hl] == ',');
        }
        if (l && !found)
            return false;
        p += l + (p[l] == ',');
    }
    return true;
}
