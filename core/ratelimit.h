/* ratelimit.h - TikTok's budgets, kept so tikd never trips one and never
 * leaves one unused (spec §3).
 *
 * Two mechanisms, one per kind of budget:
 *  - rates ("6 inits per minute per token") use GCRA, the generic cell rate
 *    algorithm: one number of state (the theoretical arrival time, TAT), one
 *    comparison per decision, and an exact answer to "when may I next?";
 *  - caps ("about 15 posts per creator per 24 h", "5 pending inbox shares")
 *    are counts over a rolling window, so they keep the times of the posts
 *    still inside it (at most the cap's worth).
 * GCRA spaces the moments tikd plans; what TikTok counts is arrivals, so a
 * rate also keeps its requests in flight and their answers (rl_sent,
 * rl_answered), and no request leaves while `count` of them may still be in
 * TikTok's window, whenever the ones before it really left.
 * Every budget lives in LMDB (STORE_DB_LIMITS) and changes inside the
 * caller's write transaction, the one that records the request leaving: a
 * restart never resets a budget, and a crash can at worst waste one cell,
 * never spend one twice. When TikTok says a budget is gone anyway (429,
 * spam_risk_*: another app posted for the same creator), rl_block() holds it
 * shut until a given moment. */
#ifndef TIKD_RATELIMIT_H
#define TIKD_RATELIMIT_H

#include "err.h"
#include "store.h"

#include <stdbool.h>
#include <stdint.h>

/* ---- GCRA, the pure part --------------------------------------------------------- */

/* count cells per `per` seconds, of which `burst` (>= 1) may go at once. */
struct rl_rate {
    double count, per, burst;
};

/* The earliest moment a cell may go, given the state tat (0: never used). A
 * moment <= now means now. */
double rl_gcra_allow_at(const struct rl_rate *r, double tat, double now);

/* The state after a cell goes at `now` (the caller checked allow_at <= now). */
double rl_gcra_take(const struct rl_rate *r, double tat, double now);

/* The state that keeps every cell back until `until`. */
double rl_gcra_block(const struct rl_rate *r, double tat, double until);

/* ---- TikTok's budgets -------------------------------------------------------------- */

enum rl_budget {
    RL_VIDEO_INIT,     /* per token: /video/init/, 6 a minute (§3.1) */
    RL_INBOX_INIT,     /* per token: /inbox/video/init/, 6 a minute */
    RL_CONTENT_INIT,   /* per token: /content/init/ (photos), 6 a minute */
    RL_CREATOR_INFO,   /* per token: 20 a minute */
    RL_STATUS,         /* per token: 30 a minute */
    RL_DAILY_POSTS,    /* per creator: direct posts in 24 h, about 15 (§3.2) */
    RL_PENDING_SHARES, /* per creator: inbox shares in 24 h, 5 */
    RL_ACTIVE_USERS,   /* per app: creators that posted in 24 h (audit-set; 5 unaudited) */
    RL_TENANT_POSTS,   /* per tenant: its own quota of inits a rolling day (tikd's, not
                        * TikTok's: tenants.NAME.quota.posts_per_day) */
    RL__COUNT
};

/* One budget: count per `per` seconds; for caps, `per` is the window and
 * margin is kept free below the count. count <= 0: no limit. */
struct rl_limit {
    double count, per, burst, margin;
};

/* A tenant's own quota. */
struct rl_quota {
    const char *tenant;
    double per_day;
};

struct rl_config {
    struct rl_limit l[RL__COUNT];  /* per-token budgets take per and burst from below */
    const struct rl_quota *quotas; /* each tenant's, or none (RL_TENANT_POSTS is then unlimited) */
    size_t nquotas;
    const char *tenant;   /* the tenant RL_TENANT_POSTS counts for (set by core/budget per job,
                           * with l[RL_TENANT_POSTS] its quota) */
    double window, burst; /* of the per-token budgets (TikTok: a minute) */
    bool shared_init;     /* the three init endpoints share one budget (spec §3.1 [UNKNOWN]) */
    double guard;         /* seconds added to each window: clocks and network delay differ */
    double cap_probe;     /* after TikTok says a cap is full: ask again this much later */
    double boot;          /* this process's mark on the requests it sends (> 1; rl_settle) */
};

/* TikTok's figures (spec §3). */
void rl_config_default(struct rl_config *c);

/* "video_init", "daily_posts", ...; rl_budget_parse is its inverse (-1). */
const char *rl_budget_name(enum rl_budget b);
int rl_budget_parse(const char *name);

/* The limit budget b is kept under (shared inits, the per-token window). */
struct rl_limit rl_limit_of(const struct rl_config *c, enum rl_budget b);

/* The init budget of a post: video (direct or draft) or photo. */
enum rl_budget rl_init_budget(bool draft, bool photo);

/* Per-token budgets are kept per account: a refresh rotates the token, and
 * TikTok may count per user; keyed by account, tikd stays within either. */

/* When every budget in bs[0..n) allows one more for account: *at (<= now:
 * now) and, if it is later, which budget holds it back. */
int rl_when(struct store_txn *t, const struct rl_config *c, const char *account,
            const enum rl_budget *bs, int n, double now, double *at, enum rl_budget *which);

/* Spend one of each (after rl_when() said now), and count the decision. */
int rl_spend(struct store_txn *t, const struct rl_config *c, const char *account,
             const enum rl_budget *bs, int n, double now);

/* Spend one of each at the moment they allow it (*at, maybe now): the slot
 * is the caller's, so jobs waiting for one budget queue up at its rate
 * instead of all waking when it frees. A later rl_when sees it spent. */
int rl_reserve(struct store_txn *t, const struct rl_config *c, const char *account,
               const enum rl_budget *bs, int n, double now, double *at, enum rl_budget *which);

/* Give back a reserved slot that was not used (the job failed or waits for
 * something else): the caps' entries at `at` leave their windows. */
int rl_release(struct store_txn *t, const struct rl_config *c, const char *account,
               const enum rl_budget *bs, int n, double at, double now);

/* ---- requests in flight: what TikTok has counted ------------------------------------------
 *
 * TikTok counts a request when it arrives: after it left tikd, before its
 * answer came back. Reservations space the moments tikd plans, but a request
 * can leave later than its moment (the loop or the machine stalled between
 * the commit and the send, an attempt that never reached TikTok was tried
 * again) while the next ones leave on time, closer together than planned.
 * So every rate also keeps the requests it sent lately, in flight or
 * answered: one more may leave only when fewer than `count` of them can fall
 * inside TikTok's window with it, an answered one counting until its answer
 * plus the window and half the guard (the other half absorbs reservations
 * used a little late, see the pipeline's slot_fresh), one in flight until it
 * is answered. Caps are unaffected: a day's window does not feel a stall. */

/* The requests spending bs leave now (the caller's transaction records them
 * leaving): each rate's is in flight until rl_answered(). */
int rl_sent(struct store_txn *t, const struct rl_config *c, const char *account,
            const enum rl_budget *bs, int n, double now);

/* TikTok answered a request spending bs (or it never left): it was counted
 * by now at the latest. The oldest of each rate's requests in flight is
 * settled; none in flight is not an error. */
int rl_answered(struct store_txn *t, const struct rl_config *c, const char *account,
                const enum rl_budget *bs, int n, double now);

/* The requests an earlier process left in flight (marked with a boot other
 * than this one's) were counted by now: that process is gone, nothing it
 * sent can arrive later. This process's own stay in flight, so a settle
 * that did not commit may be tried again at any time. */
int rl_settle(struct store_txn *t, double now, double boot);

/* When the requests already sent let one more spending bs go: *at (<= now:
 * now), and which rate holds it back. A job holding a reserved slot asks
 * this before it uses the slot. rl_when() includes it. */
int rl_sent_when(struct store_txn *t, const struct rl_config *c, const char *account,
                 const enum rl_budget *bs, int n, double now, double *at, enum rl_budget *which);

/* A reserved slot whose moment came but which the requests sent before it
 * hold back moves to when they and the caps allow (*at, maybe now), keeping
 * the rate cells it holds (no new one is spent). The caller released the
 * caps' entries at the old moment (rl_release); they are taken at *at. */
int rl_move(struct store_txn *t, const struct rl_config *c, const char *account,
            const enum rl_budget *bs, int n, double now, double *at, enum rl_budget *which);

/* How late a job may still use the slot it reserved for bs: one cell of
 * its tightest rate, so it still goes before the job holding the next slot
 * (the rates' sent requests keep TikTok's window however late it goes).
 * Half the guard for a rate whose requests are not kept. */
double rl_slot_late(const struct rl_config *c, const enum rl_budget *bs, int n);

/* Count a deferral on b (a job waits `wait` seconds for it). */
int rl_note_deferred(struct store_txn *t, enum rl_budget b, double wait);

/* TikTok said b is spent for account (or, for RL_ACTIVE_USERS, the app):
 * nothing more goes before `until`. */
int rl_block(struct store_txn *t, const struct rl_config *c, const char *account, enum rl_budget b,
             double until);

/* What `tikd limits` shows of one budget for one account. */
struct rl_view {
    bool limited;    /* a count is configured */
    double used;     /* caps: in the window now; rates: cells of the window spent */
    double reserved; /* caps: slots held for jobs waiting for them */
    double cap;      /* count less margin */
    double next_at;  /* when one more may go (<= now: now) */
    double blocked_until;
};
int rl_view(struct store_txn *t, const struct rl_config *c, const char *account, enum rl_budget b,
            double now, struct rl_view *v);

struct rl_metrics {
    uint64_t allowed, deferred;
    double waited; /* seconds jobs were told to wait, summed */
};
int rl_metrics(struct store_txn *t, enum rl_budget b, struct rl_metrics *m);

/* ---- limiters that rules declare (tikd.ratelimit) -------------------------------------- */

/* Take one cell of the named limiter of owner (a rule file), if it allows
 * one now: *ok, and *at the earliest moment one may go (now when ok). With
 * take false it only asks. */
int rl_named(struct store_txn *t, const char *owner, const char *name, const struct rl_rate *r,
             double now, bool take, bool *ok, double *at);

/* ---- one account's budgets, for a cluster (core/replica) ---------------------------- */

/* Every budget record kept for account alone (its token's rates, its
 * creator's caps; not the app's or a tenant's), in a fixed order: fn gets
 * its key and value, and a non-zero return stops the walk. */
typedef int (*rl_record_fn)(void *ctx, const char *key, size_t kl, const void *v, size_t n);
int rl_account_each(struct store_txn *t, const char *account, rl_record_fn fn, void *ctx);

/* Delete every budget record of account (as rl_account_each names them). */
int rl_account_drop(struct store_txn *t, const char *account);

/* Store one record rl_account_each gave (for the same account): TIKD_EINVAL
 * when key is not one of account's or the value is not a budget's. */
int rl_account_put(struct store_txn *t, const char *account, const char *key, size_t kl,
                   const void *v, size_t n);

#endif
