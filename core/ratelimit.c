/* ratelimit.c - GCRA rates and rolling-window caps, persisted in LMDB (see
 * ratelimit.h).
 *
 * Keys in STORE_DB_LIMITS:
 *   g:<budget>:<account>   GCRA state, one double (the TAT)
 *   w:<budget>:<account>   window: blocked_until, n, then n times ascending
 *   u:<account>            when the account last posted (active creators)
 *   m:<budget>             decisions: allowed, deferred, seconds waited
 *   s:<budget>:<account>   a rate's requests sent lately: pairs (moment, in flight),
 *                          the moment it left while in flight, then when it was answered
 *   r:<owner>\0<name>      a rule's own limiter (GCRA state)
 * Values are host-order doubles: the LMDB file is not portable anyway. */
#include "ratelimit.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define WINDOW_MAX 512 /* times kept per window: far above any TikTok cap */
#define SENT_MAX   64  /* requests kept per rate: above any TikTok rate's count */

/* ---- GCRA ----------------------------------------------------------------------------- */

static double emission(const struct rl_rate *r)
{
    return r->per / r->count;
}

static double tolerance(const struct rl_rate *r)
{
    return emission(r) * ((r->burst >= 1 ? r->burst : 1) - 1);
}

double rl_gcra_allow_at(const struct rl_rate *r, double tat, double now)
{
    double at = tat - tolerance(r);
    return at > now ? at : now;
}

double rl_gcra_take(const struct rl_rate *r, double tat, double now)
{
    return (tat > now ? tat : now) + emission(r);
}

double rl_gcra_block(const struct rl_rate *r, double tat, double until)
{
    double t = until + tolerance(r);
    return t > tat ? t : tat;
}

/* ---- the budgets ------------------------------------------------------------------------ */

static const char *const names[RL__COUNT] = {
    [RL_VIDEO_INIT] = "video_init",
    [RL_INBOX_INIT] = "inbox_init",
    [RL_CONTENT_INIT] = "content_init",
    [RL_CREATOR_INFO] = "creator_info",
    [RL_STATUS] = "status",
    [RL_DAILY_POSTS] = "daily_posts",
    [RL_PENDING_SHARES] = "pending_shares",
    [RL_ACTIVE_USERS] = "active_users",
    [RL_TENANT_POSTS] = "tenant_posts",
};

const char *rl_budget_name(enum rl_budget b)
{
    return (unsigned)b < RL__COUNT ? names[b] : "?";
}

int rl_budget_parse(const char *name)
{
    for (int i = 0; i < RL__COUNT; i++)
        if (strcmp(names[i], name) == 0)
            return i;
    return -1;
}

static bool is_window(enum rl_budget b)
{
    return b == RL_DAILY_POSTS || b == RL_PENDING_SHARES || b == RL_ACTIVE_USERS ||
           b == RL_TENANT_POSTS;
}

/* Whose window a cap is: the app's, a tenant's, or the account's. */
static const char *window_owner(const struct rl_config *c, enum rl_budget b, const char *account)
{
    return b == RL_ACTIVE_USERS   ? ""
           : b == RL_TENANT_POSTS ? (c->tenant ? c->tenant : "")
                                  : account;
}

void rl_config_default(struct rl_config *c)
{
    memset(c, 0, sizeof *c);
    const double min = 60, day = 86400;
    c->l[RL_VIDEO_INIT] = (struct rl_limit){6, min, 1, 0};
    c->l[RL_INBOX_INIT] = (struct rl_limit){6, min, 1, 0};
    c->l[RL_CONTENT_INIT] = (struct rl_limit){6, min, 1, 0};
    c->l[RL_CREATOR_INFO] = (struct rl_limit){20, min, 1, 0};
    c->l[RL_STATUS] = (struct rl_limit){30, min, 1, 0};
    c->l[RL_DAILY_POSTS] = (struct rl_limit){15, day, 1, 0};
    c->l[RL_PENDING_SHARES] = (struct rl_limit){5, day, 1, 0};
    c->l[RL_ACTIVE_USERS] = (struct rl_limit){0, day, 1, 0}; /* set at audit time */
    c->l[RL_TENANT_POSTS] = (struct rl_limit){0, day, 1, 0}; /* per job: core/budget */
    c->window = min;
    c->burst = 1;
    c->guard = 0.5;
    c->cap_probe = 3600;
    c->boot = 2; /* the daemon marks its requests with its start (cli/daemon) */
}

enum rl_budget rl_init_budget(bool draft, bool photo)
{
    return photo ? RL_CONTENT_INIT : draft ? RL_INBOX_INIT : RL_VIDEO_INIT;
}

static bool per_token(enum rl_budget b)
{
    return b <= RL_STATUS;
}

static bool limited(const struct rl_config *c, enum rl_budget b)
{
    if (b == RL_TENANT_POSTS && !c->tenant)
        return false;
    return c->l[b].count > 0 && (per_token(b) ? c->window : c->l[b].per) > 0;
}

struct rl_limit rl_limit_of(const struct rl_config *c, enum rl_budget b)
{
    bool init = b == RL_VIDEO_INIT || b == RL_INBOX_INIT || b == RL_CONTENT_INIT;
    struct rl_limit l = c->l[init && c->shared_init ? RL_VIDEO_INIT : b];
    if (per_token(b)) {
        l.per = c->window;
        l.burst = c->burst;
    }
    return l;
}

/* The limit b is kept under, and the name of its state (shared inits). */
static struct rl_limit limit_of(const struct rl_config *c, enum rl_budget b, const char **key)
{
    bool init = b == RL_VIDEO_INIT || b == RL_INBOX_INIT || b == RL_CONTENT_INIT;
    *key = init && c->shared_init ? "init" : names[b];
    return rl_limit_of(c, b);
}

static struct rl_rate rate_of(const struct rl_config *c, const struct rl_limit *l)
{
    return (struct rl_rate){l->count, l->per + c->guard, l->burst};
}

static size_t mkkey(char *k, size_t n, char kind, const char *budget, const char *account)
{
    int len = snprintf(k, n, "%c:%s:%s", kind, budget, account ? account : "");
    return len < 0 || (size_t)len >= n ? 0 : (size_t)len;
}

static int get_doubles(struct store_txn *t, const char *k, size_t kl, double *out, size_t max,
                       size_t *n)
{
    struct store_val v;
    int rc = store_get(t, STORE_DB_LIMITS, k, kl, &v);
    *n = 0;
    if (rc == TIKD_ENOTFOUND)
        return 0;
    if (rc != 0)
        return rc;
    if (v.n % sizeof(double) != 0)
        return TIKD_ECORRUPT;
    *n = v.n / sizeof(double) < max ? v.n / sizeof(double) : max;
    memcpy(out, v.p, *n * sizeof(double));
    return 0;
}

static int put_doubles(struct store_txn *t, const char *k, size_t kl, const double *v, size_t n)
{
    return store_put(t, STORE_DB_LIMITS, k, kl, v, n * sizeof(double));
}

/* The GCRA state of budget key bk for account: its LMDB key in k/kl and the
 * TAT (0 when never used). */
static int gcra_load(struct store_txn *t, const char *bk, const char *account, char *k, size_t kn,
                     size_t *kl, double *tat)
{
    *kl = mkkey(k, kn, 'g', bk, account);
    size_t n;
    int rc = *kl ? get_doubles(t, k, *kl, tat, 1, &n) : TIKD_EINVAL;
    if (rc == 0 && !n)
        *tat = 0;
    return rc;
}

/* A window: w[0] blocked_until, w[1] n, then n times ascending. */
struct window {
    double blocked_until;
    size_t n;
    double t[WINDOW_MAX];
};

static int window_load(struct store_txn *t, const char *k, size_t kl, double now, double span,
                       struct window *w)
{
    double raw[WINDOW_MAX + 2];
    size_t n;
    int rc = get_doubles(t, k, kl, raw, WINDOW_MAX + 2, &n);
    w->blocked_until = n > 0 ? raw[0] : 0;
    w->n = 0;
    for (size_t i = 2; rc == 0 && i < n && i < 2 + (size_t)raw[1]; i++)
        if (raw[i] > now - span) /* still inside the window */
            w->t[w->n++] = raw[i];
    return rc;
}

static int window_save(struct store_txn *t, const char *k, size_t kl, const struct window *w)
{
    double raw[WINDOW_MAX + 2];
    raw[0] = w->blocked_until;
    raw[1] = (double)w->n;
    memcpy(raw + 2, w->t, w->n * sizeof(double));
    return put_doubles(t, k, kl, raw, w->n + 2);
}

/* Creators active in the window, and whether account is one of them; the
 * earliest moment one of them leaves it. */
struct active_ctx {
    const char *account;
    double since, first_out, span;
    size_t count;
    bool self;
};

static int active_each(struct store_val key, struct store_val val, void *ctx)
{
    struct active_ctx *a = ctx;
    double at;
    if (val.n != sizeof at)
        return 0;
    memcpy(&at, val.p, sizeof at);
    if (at <= a->since)
        return 0;
    a->count++;
    if (key.n == 2 + strlen(a->account) &&
        memcmp((const char *)key.p + 2, a->account, key.n - 2) == 0)
        a->self = true;
    if (!a->first_out || at + a->span < a->first_out)
        a->first_out = at + a->span;
    return 0;
}

static int sent_when_one(struct store_txn *t, const struct rl_config *c, const char *account,
                         enum rl_budget b, double now, double *at);

/* When one more may go on budget b for account. */
static int when_one(struct store_txn *t, const struct rl_config *c, const char *account,
                    enum rl_budget b, double now, double *at)
{
    *at = now;
    if (!limited(c, b))
        return 0;
    const char *bk;
    struct rl_limit lim = limit_of(c, b, &bk), *l = &lim;
    char k[160];
    size_t kl;
    if (!is_window(b)) {
        double tat;
        int rc = gcra_load(t, bk, account, k, sizeof k, &kl, &tat);
        struct rl_rate r = rate_of(c, l);
        double sent = now;
        if (rc == 0)
            rc = sent_when_one(t, c, account, b, now, &sent);
        if (rc == 0)
            *at = fmax(rl_gcra_allow_at(&r, tat, now), sent);
        return rc;
    }
    double span = l->per + c->guard;
    double cap = floor(l->count - l->margin);
    kl = mkkey(k, sizeof k, 'w', bk, window_owner(c, b, account));
    struct window w;
    int rc = kl ? window_load(t, k, kl, now, span, &w) : TIKD_EINVAL;
    if (rc != 0)
        return rc;
    if (w.blocked_until > *at)
        *at = w.blocked_until;
    if (b == RL_ACTIVE_USERS) {
        struct active_ctx a = {.account = account, .since = now - span, .span = span};
        rc = store_foreach(t, STORE_DB_LIMITS, "u:", 2, active_each, &a);
        if (rc == 0 && !a.self && (double)a.count >= cap && a.first_out > *at)
            *at = a.first_out;
        return rc;
    }
    if (cap < 1) /* a margin as large as the cap: nothing may go */
        *at = 1e18;
    else if ((double)w.n >= cap && w.t[w.n - (size_t)cap] + span > *at)
        *at = w.t[w.n - (size_t)cap] + span; /* the oldest n - cap + 1 must leave first */
    return 0;
}

int rl_when(struct store_txn *t, const struct rl_config *c, const char *account,
            const enum rl_budget *bs, int n, double now, double *at, enum rl_budget *which)
{
    *at = now;
    for (int i = 0; i < n; i++) {
        double one;
        int rc = when_one(t, c, account, bs[i], now, &one);
        if (rc != 0)
            return rc;
        if (one > *at) {
            *at = one;
            if (which)
                *which = bs[i];
        }
    }
    return 0;
}

static int metric_add(struct store_txn *t, enum rl_budget b, double allowed, double deferred,
                      double waited)
{
    char k[64];
    size_t kl = mkkey(k, sizeof k, 'm', names[b], NULL);
    double m[3] = {0, 0, 0};
    size_t n;
    int rc = get_doubles(t, k, kl, m, 3, &n);
    if (rc != 0)
        return rc;
    m[0] += allowed;
    m[1] += deferred;
    m[2] += waited;
    return put_doubles(t, k, kl, m, 3);
}

/* Spend one cell of b at `at` (>= now: a reservation). */
static int spend_one(struct store_txn *t, const struct rl_config *c, const char *account,
                     enum rl_budget b, double now, double at)
{
    const char *bk;
    struct rl_limit lim = limit_of(c, b, &bk), *l = &lim;
    char k[160];
    size_t kl;
    int rc;
    if (!is_window(b)) {
        double tat;
        if ((rc = gcra_load(t, bk, account, k, sizeof k, &kl, &tat)) != 0)
            return rc;
        struct rl_rate r = rate_of(c, l);
        tat = rl_gcra_take(&r, tat, at);
        return put_doubles(t, k, kl, &tat, 1);
    }
    if (b == RL_ACTIVE_USERS) {
        kl = (size_t)snprintf(k, sizeof k, "u:%s", account);
        double last;
        size_t n;
        rc = kl < sizeof k ? get_doubles(t, k, kl, &last, 1, &n) : TIKD_EINVAL;
        if (rc == 0 && n && last > at)
            at = last; /* a later reservation stands */
        return rc ? rc : put_doubles(t, k, kl, &at, 1);
    }
    struct window w;
    kl = mkkey(k, sizeof k, 'w', bk, window_owner(c, b, account));
    rc = kl ? window_load(t, k, kl, now, l->per + c->guard, &w) : TIKD_EINVAL;
    if (rc != 0)
        return rc;
    if (w.n == WINDOW_MAX) /* only with a cap above WINDOW_MAX: keep the newest */
        memmove(w.t, w.t + 1, --w.n * sizeof(double));
    size_t i = w.n++; /* kept ascending: a reservation may precede a later one */
    for (; i > 0 && w.t[i - 1] > at; i--)
        w.t[i] = w.t[i - 1];
    w.t[i] = at;
    return window_save(t, k, kl, &w);
}

static int spend_at(struct store_txn *t, const struct rl_config *c, const char *account,
                    const enum rl_budget *bs, int n, double now, double at)
{
    for (int i = 0; i < n; i++) {
        int rc = limited(c, bs[i]) ? spend_one(t, c, account, bs[i], now, at) : 0;
        if (rc == 0)
            rc = metric_add(t, bs[i], 1, 0, 0);
        if (rc != 0)
            return rc;
    }
    return 0;
}

int rl_spend(struct store_txn *t, const struct rl_config *c, const char *account,
             const enum rl_budget *bs, int n, double now)
{
    return spend_at(t, c, account, bs, n, now, now);
}

int rl_reserve(struct store_txn *t, const struct rl_config *c, const char *account,
               const enum rl_budget *bs, int n, double now, double *at, enum rl_budget *which)
{
    int rc = rl_when(t, c, account, bs, n, now, at, which);
    if (rc == 0 && *at >= 1e17)
        return 0; /* never (a margin as large as the cap): nothing to hold */
    return rc ? rc : spend_at(t, c, account, bs, n, now, *at);
}

int rl_release(struct store_txn *t, const struct rl_config *c, const char *account,
               const enum rl_budget *bs, int n, double at, double now)
{
    for (int i = 0; i < n; i++) {
        enum rl_budget b = bs[i];
        if (!limited(c, b) || !is_window(b) || b == RL_ACTIVE_USERS)
            continue; /* a rate's cell is back within a minute anyway */
        const char *bk;
        struct rl_limit lim = limit_of(c, b, &bk), *l = &lim;
        char k[160];
        size_t kl = mkkey(k, sizeof k, 'w', bk, window_owner(c, b, account));
        struct window w;
        int rc = kl ? window_load(t, k, kl, now, l->per + c->guard, &w) : TIKD_EINVAL;
        if (rc != 0)
            return rc;
        for (size_t j = 0; j < w.n; j++) {
            if (w.t[j] == at) {
                memmove(w.t + j, w.t + j + 1, (w.n - j - 1) * sizeof(double));
                w.n--;
                rc = window_save(t, k, kl, &w);
                break;
            }
        }
        if (rc != 0)
            return rc;
    }
    return 0;
}

/* ---- requests in flight ------------------------------------------------------------------ */

/* The requests a rate sent lately, in the order they left. */
struct sent {
    size_t n;
    double at[SENT_MAX];     /* when it left (in flight), or when it was answered */
    double flying[SENT_MAX]; /* in flight: the sender's boot mark (older stores: 1); answered: 0 */
};

/* The rates whose requests are kept: a count above SENT_MAX is not one of
 * TikTok's, and GCRA alone keeps it. */
static bool sent_kept(const struct rl_config *c, enum rl_budget b, struct rl_limit *l,
                      const char **bk)
{
    if (!limited(c, b) || is_window(b))
        return false;
    *l = limit_of(c, b, bk);
    return l->count <= SENT_MAX;
}

/* How long TikTok may still count a request after its answer came: the
 * window, and half the guard for clocks that differ (the answer bounds
 * every delay on the way). */
static double sent_span(const struct rl_config *c, const struct rl_limit *l)
{
    return l->per + c->guard / 2;
}

static int sent_load(struct store_txn *t, const char *k, size_t kl, struct sent *s)
{
    double raw[2 * SENT_MAX];
    size_t n;
    int rc = get_doubles(t, k, kl, raw, 2 * SENT_MAX, &n);
    s->n = 0;
    for (size_t i = 0; rc == 0 && i + 1 < n; i += 2) {
        s->at[s->n] = raw[i];
        s->flying[s->n++] = raw[i + 1];
    }
    return rc;
}

static int sent_save(struct store_txn *t, const char *k, size_t kl, const struct sent *s)
{
    double raw[2 * SENT_MAX];
    for (size_t i = 0; i < s->n; i++) {
        raw[2 * i] = s->at[i];
        raw[2 * i + 1] = s->flying[i];
    }
    return put_doubles(t, k, kl, raw, 2 * s->n);
}

/* Forget the answered requests TikTok counts no more at now. */
static void sent_prune(struct sent *s, double now, double span)
{
    size_t m = 0;
    for (size_t i = 0; i < s->n; i++) {
        if (s->flying[i] || s->at[i] > now - span) {
            s->at[m] = s->at[i];
            s->flying[m++] = s->flying[i];
        }
    }
    s->n = m;
}

static int sent_when_one(struct store_txn *t, const struct rl_config *c, const char *account,
                         enum rl_budget b, double now, double *at)
{
    *at = now;
    const char *bk;
    struct rl_limit l;
    if (!sent_kept(c, b, &l, &bk))
        return 0;
    char k[160];
    size_t kl = mkkey(k, sizeof k, 's', bk, account);
    struct sent s;
    int rc = kl ? sent_load(t, k, kl, &s) : TIKD_EINVAL;
    if (rc != 0)
        return rc;
    double span = sent_span(c, &l);
    sent_prune(&s, now, span);
    size_t cap = l.count >= 1 ? (size_t)l.count : 1, flying = 0, m = 0;
    double answered[SENT_MAX];
    for (size_t i = 0; i < s.n; i++) {
        if (s.flying[i]) {
            flying++;
            continue;
        }
        size_t j = m++; /* kept ascending: answers come in any order */
        for (; j > 0 && answered[j - 1] > s.at[i]; j--)
            answered[j] = answered[j - 1];
        answered[j] = s.at[i];
    }
    if (flying + m < cap)
        return 0;
    /* one more fits once the oldest answered ones leave TikTok's window;
     * while `count` are in flight, look again a cell later */
    size_t leave = flying + m - cap + 1;
    *at = leave <= m ? answered[leave - 1] + span : now + l.per / cap;
    return 0;
}

int rl_sent_when(struct store_txn *t, const struct rl_config *c, const char *account,
                 const enum rl_budget *bs, int n, double now, double *at, enum rl_budget *which)
{
    *at = now;
    for (int i = 0; i < n; i++) {
        double one;
        int rc = sent_when_one(t, c, account, bs[i], now, &one);
        if (rc != 0)
            return rc;
        if (one > *at) {
            *at = one;
            if (which)
                *which = bs[i];
        }
    }
    return 0;
}

/* Apply fn to the kept requests of each rate in bs, and save them. */
static int sent_update(struct store_txn *t, const struct rl_config *c, const char *account,
                       const enum rl_budget *bs, int n, double now,
                       void (*fn)(struct sent *s, double now, double boot))
{
    for (int i = 0; i < n; i++) {
        const char *bk;
        struct rl_limit l;
        if (!sent_kept(c, bs[i], &l, &bk))
            continue;
        char k[160];
        size_t kl = mkkey(k, sizeof k, 's', bk, account);
        struct sent s;
        int rc = kl ? sent_load(t, k, kl, &s) : TIKD_EINVAL;
        if (rc != 0)
            return rc;
        sent_prune(&s, now, sent_span(c, &l));
        fn(&s, now, c->boot);
        if ((rc = sent_save(t, k, kl, &s)) != 0)
            return rc;
    }
    return 0;
}

/* A process's mark on what it sends: never 0 (answered), never the 1 of
 * stores written before marks. */
static double boot_mark(double boot)
{
    return boot > 1 ? boot : 2;
}

static void sent_leaves(struct sent *s, double now, double boot)
{
    if (s->n == SENT_MAX) { /* only with more than `count` in flight: keep the newest */
        s->n--;
        memmove(s->at, s->at + 1, s->n * sizeof s->at[0]);
        memmove(s->flying, s->flying + 1, s->n * sizeof s->flying[0]);
    }
    s->at[s->n] = now;
    s->flying[s->n++] = boot_mark(boot);
}

/* The answer is to one of this process's requests: its oldest is settled
 * (one an earlier process left waits for rl_settle), or else the oldest. */
static void sent_answer_oldest(struct sent *s, double now, double boot)
{
    boot = boot_mark(boot);
    size_t pick = s->n;
    for (size_t i = 0; i < s->n; i++) {
        if (s->flying[i] == boot || (s->flying[i] && pick == s->n)) {
            pick = i;
            if (s->flying[i] == boot)
                break;
        }
    }
    if (pick < s->n) {
        s->at[pick] = now;
        s->flying[pick] = 0;
    }
}

int rl_sent(struct store_txn *t, const struct rl_config *c, const char *account,
            const enum rl_budget *bs, int n, double now)
{
    return sent_update(t, c, account, bs, n, now, sent_leaves);
}

int rl_answered(struct store_txn *t, const struct rl_config *c, const char *account,
                const enum rl_budget *bs, int n, double now)
{
    return sent_update(t, c, account, bs, n, now, sent_answer_oldest);
}

struct settle_ctx {
    struct {
        char k[160];
        size_t n;
    } * keys;
    size_t n, cap;
};

static int settle_each(struct store_val key, struct store_val val, void *ctx)
{
    (void)val;
    struct settle_ctx *sc = ctx;
    if (key.n >= sizeof sc->keys[0].k)
        return 0;
    if (sc->n == sc->cap) {
        size_t cap = sc->cap ? 2 * sc->cap : 16;
        void *g = realloc(sc->keys, cap * sizeof sc->keys[0]);
        if (!g)
            return TIKD_ENOMEM;
        sc->keys = g;
        sc->cap = cap;
    }
    memcpy(sc->keys[sc->n].k, key.p, key.n);
    sc->keys[sc->n++].n = key.n;
    return 0;
}

int rl_settle(struct store_txn *t, double now, double boot)
{
    struct settle_ctx sc = {0};
    boot = boot_mark(boot);
    int rc = store_foreach(t, STORE_DB_LIMITS, "s:", 2, settle_each, &sc);
    for (size_t i = 0; rc == 0 && i < sc.n; i++) { /* written after the walk, not during it */
        struct sent s;
        rc = sent_load(t, sc.keys[i].k, sc.keys[i].n, &s);
        bool changed = false;
        for (size_t j = 0; rc == 0 && j < s.n; j++) {
            if (s.flying[j] && s.flying[j] != boot) {
                s.at[j] = now;
                s.flying[j] = 0;
                changed = true;
            }
        }
        if (rc == 0 && changed)
            rc = sent_save(t, sc.keys[i].k, sc.keys[i].n, &s);
    }
    free(sc.keys);
    return rc;
}

double rl_slot_late(const struct rl_config *c, const enum rl_budget *bs, int n)
{
    double late = 1e18;
    for (int i = 0; i < n; i++) {
        const char *bk;
        struct rl_limit l;
        if (sent_kept(c, bs[i], &l, &bk))
            late = fmin(late, l.per / l.count);
        else if (limited(c, bs[i]) && !is_window(bs[i]))
            late = fmin(late, c->guard / 2);
    }
    return late < 1e17 ? fmax(late, 0.002) : fmax(c->guard / 2, 0.002);
}

int rl_move(struct store_txn *t, const struct rl_config *c, const char *account,
            const enum rl_budget *bs, int n, double now, double *at, enum rl_budget *which)
{
    *at = now;
    for (int i = 0; i < n; i++) {
        double one;
        /* the rates' cells are the slot's already: only what was sent since counts */
        int rc = is_window(bs[i]) ? when_one(t, c, account, bs[i], now, &one)
                                  : sent_when_one(t, c, account, bs[i], now, &one);
        if (rc != 0)
            return rc;
        if (one > *at) {
            *at = one;
            if (which)
                *which = bs[i];
        }
    }
    if (*at >= 1e17)
        return 0; /* never (a margin as large as the cap): nothing to hold */
    for (int i = 0; i < n; i++) {
        int rc =
            limited(c, bs[i]) && is_window(bs[i]) ? spend_one(t, c, account, bs[i], now, *at) : 0;
        if (rc != 0)
            return rc;
    }
    return 0;
}

int rl_note_deferred(struct store_txn *t, enum rl_budget b, double wait)
{
    return (unsigned)b < RL__COUNT ? metric_add(t, b, 0, 1, wait > 0 ? wait : 0) : TIKD_EINVAL;
}

int rl_block(struct store_txn *t, const struct rl_config *c, const char *account, enum rl_budget b,
             double until)
{
    const char *bk;
    struct rl_limit lim = limit_of(c, b, &bk), *l = &lim;
    char k[160];
    size_t kl;
    if (!is_window(b)) {
        double tat;
        int rc = gcra_load(t, bk, account, k, sizeof k, &kl, &tat);
        if (rc != 0)
            return rc;
        struct rl_rate r = rate_of(c, l->count > 0 ? l : &(struct rl_limit){1, 1, 1, 0});
        tat = rl_gcra_block(&r, tat, until);
        return put_doubles(t, k, kl, &tat, 1);
    }
    struct window w;
    kl = mkkey(k, sizeof k, 'w', bk, window_owner(c, b, account));
    int rc = kl ? window_load(t, k, kl, until, l->per + c->guard, &w) : TIKD_EINVAL;
    if (rc != 0)
        return rc;
    if (until > w.blocked_until)
        w.blocked_until = until;
    return window_save(t, k, kl, &w);
}

int rl_view(struct store_txn *t, const struct rl_config *c, const char *account, enum rl_budget b,
            double now, struct rl_view *v)
{
    memset(v, 0, sizeof *v);
    const char *bk;
    struct rl_limit lim = limit_of(c, b, &bk), *l = &lim;
    v->limited = limited(c, b);
    v->cap = is_window(b) ? floor(l->count - l->margin) : l->count;
    int rc = when_one(t, c, account, b, now, &v->next_at);
    if (rc != 0 || !v->limited)
        return rc;
    char k[160];
    size_t kl;
    if (!is_window(b)) {
        double tat;
        rc = gcra_load(t, bk, account, k, sizeof k, &kl, &tat);
        struct rl_rate r = rate_of(c, l);
        if (rc == 0 && tat > now) /* cells still owed, reservations included */
            v->used = fmin(ceil((tat - now) / emission(&r) - 1e-9), l->count);
        return rc;
    }
    struct window w;
    kl = mkkey(k, sizeof k, 'w', bk, window_owner(c, b, account));
    rc = window_load(t, k, kl, now, l->per + c->guard, &w);
    v->blocked_until = w.blocked_until > now ? w.blocked_until : 0;
    if (rc == 0 && b == RL_ACTIVE_USERS) {
        struct active_ctx a = {.account = account, .since = now - l->per - c->guard};
        rc = store_foreach(t, STORE_DB_LIMITS, "u:", 2, active_each, &a);
        v->used = (double)a.count;
    } else {
        for (size_t i = 0; i < w.n; i++)
            *(w.t[i] > now ? &v->reserved : &v->used) += 1;
    }
    return rc;
}

int rl_metrics(struct store_txn *t, enum rl_budget b, struct rl_metrics *m)
{
    char k[64];
    size_t kl = mkkey(k, sizeof k, 'm', rl_budget_name(b), NULL);
    double v[3] = {0, 0, 0};
    size_t n;
    int rc = get_doubles(t, k, kl, v, 3, &n);
    m->allowed = (uint64_t)v[0];
    m->deferred = (uint64_t)v[1];
    m->waited = v[2];
    return rc;
}

int rl_named(struct store_txn *t, const char *owner, const char *name, const struct rl_rate *r,
             double now, bool take, bool *ok, double *at)
{
    char k[600];
    int len = snprintf(k, sizeof k, "r:%s%c%s", owner, '\0', name);
    if (len < 0 || (size_t)len >= sizeof k)
        return TIKD_EINVAL;
    double tat;
    size_t n;
    int rc = get_doubles(t, k, (size_t)len, &tat, 1, &n);
    if (rc != 0)
        return rc;
    *at = rl_gcra_allow_at(r, n ? tat : 0, now);
    *ok = *at <= now;
    if (*ok && take) {
        tat = rl_gcra_take(r, n ? tat : 0, now);
        rc = put_doubles(t, k, (size_t)len, &tat, 1);
    }
    return rc;
}

/* ---- one account's budgets ------------------------------------------------------------ */

/* The budget keys an account's own records use: each per-token and
 * per-creator budget, and the shared "init" of rl_config.shared_init. */
static const char *account_budget(size_t i)
{
    if (i < RL__COUNT)
        return i == RL_ACTIVE_USERS || i == RL_TENANT_POSTS ? NULL : names[i];
    return i == RL__COUNT ? "init" : NULL;
}

static const char ACCOUNT_KINDS[] = "gws"; /* GCRA state, windows, requests sent */

int rl_account_each(struct store_txn *t, const char *account, rl_record_fn fn, void *ctx)
{
    for (const char *kind = ACCOUNT_KINDS; *kind; kind++) {
        for (size_t i = 0; i <= RL__COUNT; i++) {
            const char *b = account_budget(i);
            char k[200];
            size_t kl = b ? mkkey(k, sizeof k, *kind, b, account) : 0;
            struct store_val v;
            int rc = kl ? store_get(t, STORE_DB_LIMITS, k, kl, &v) : TIKD_ENOTFOUND;
            if (rc == TIKD_ENOTFOUND)
                continue;
            if (rc == 0)
                rc = fn(ctx, k, kl, v.p, v.n);
            if (rc != 0)
                return rc;
        }
    }
    return 0;
}

int rl_account_drop(struct store_txn *t, const char *account)
{
    for (const char *kind = ACCOUNT_KINDS; *kind; kind++) {
        for (size_t i = 0; i <= RL__COUNT; i++) {
            const char *b = account_budget(i);
            char k[200];
            size_t kl = b ? mkkey(k, sizeof k, *kind, b, account) : 0;
            int rc = kl ? store_del(t, STORE_DB_LIMITS, k, kl) : 0;
            if (rc != 0)
                return rc;
        }
    }
    return 0;
}

int rl_account_put(struct store_txn *t, const char *account, const char *key, size_t kl,
                   const void *v, size_t n)
{
    if (n % sizeof(double) != 0 || n > (2 + WINDOW_MAX) * sizeof(double))
        return TIKD_EINVAL;
    for (const char *kind = ACCOUNT_KINDS; *kind; kind++) {
        for (size_t i = 0; i <= RL__COUNT; i++) {
            const char *b = account_budget(i);
            char k[200];
            size_t l = b ? mkkey(k, sizeof k, *kind, b, account) : 0;
            if (l && l == kl && memcmp(k, key, kl) == 0)
                return store_put(t, STORE_DB_LIMITS, key, kl, v, n);
        }
    }
    return TIKD_EINVAL;
}
