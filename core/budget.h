/* budget.h - a job's use of TikTok's budgets (core/ratelimit), written in the
 * same transaction as the job change it goes with: a request is counted
 * exactly when the job records that it leaves, a reserved init slot that
 * goes unused gives its cap entries back, and what TikTok says is spent is
 * held shut.
 *
 * The pipeline, `tikd job cancel` and account removal all release slots
 * through here, so no path forgets to. */
#ifndef TIKD_BUDGET_H
#define TIKD_BUDGET_H

#include "http.h"
#include "job.h"
#include "ratelimit.h"
#include "store.h"

#include <stdbool.h>

/* What a job's write does to the budgets. */
struct budget_op {
    enum {
        BUDGET_NONE,
        BUDGET_CLAIM,   /* spend bs now, or refuse (TIKD_EFULL, nothing written) */
        BUDGET_RESERVE, /* the job's next init slot: now, or the job waits for it */
        BUDGET_MOVE,    /* its slot came, but inits sent before it hold it back: it keeps
                         * its rate cells and waits for when they allow */
        BUDGET_CONSUME, /* the init leaves on the slot it holds: in flight until answered */
        BUDGET_BLOCK,   /* TikTok said bs[0] is spent until `until`; the job waits */
        BUDGET_WAIT,    /* the job waits for bs[0] (counted in the metrics) */
    } kind;
    enum rl_budget bs[4];
    int n;
    double until;         /* BUDGET_BLOCK */
    double at;            /* out: CLAIM refused or RESERVE later: when bs allow it */
    enum rl_budget which; /* out: ... and the budget that holds it back */
};

/* The budgets an init of j spends: its endpoint's, and the creator's (or
 * the app's) caps. Returns how many were written to bs (at most 4). */
int budget_of_init(const struct job *j, enum rl_budget *bs);

/* Settle j's write against cur (the job as stored) and apply op (may be
 * NULL): a held slot that will not be used (the job moves, parks, ends, or
 * holds another slot) is released first. With BUDGET_RESERVE a slot that is
 * not now defers j (state, due_at, reason). 0, TIKD_EFULL for a refused
 * claim, or a store error. */
int budget_apply(struct store_txn *t, const struct rl_config *c, const struct job *cur,
                 struct job *j, struct budget_op *op);

/* Give the caps the entries of the init slot j holds (it will not be used:
 * an operator cancelled it, its account is gone); j->slot_at is cleared. */
int budget_release_slot(struct store_txn *t, const struct rl_config *c, struct job *j);

/* Give the caps (daily posts, pending shares) the entries of the init that
 * left for j->spent_at: TikTok did not count it. The per-minute rates keep
 * theirs (a refused request still counts there). j->spent_at is cleared. */
int budget_give_back(struct store_txn *t, const struct rl_config *c, struct job *j);

/* True when j's slot may be used now: not before its moment and not later
 * than one cell of its tightest rate after it (rl_slot_late). */
bool budget_slot_fresh(const struct rl_config *c, const struct job *j, double now);

/* When the inits j's account sent lately let j's go (TikTok counts a
 * request when it arrives, which may be well after tikd recorded it
 * leaving): *at (<= now: now), in a read of t. */
int budget_sent_when(struct store_txn *t, const struct rl_config *c, const struct job *j,
                     double now, double *at);

/* TikTok answered j's init, or it never left: it was counted by now, and
 * the inits after it may count from here (rl_answered). */
int budget_answered(struct store_txn *t, const struct rl_config *c, const struct job *j,
                    double now);

/* Why a job waits for budget b until `at`, for `tikd queue`. */
void budget_reason(const struct rl_config *c, enum rl_budget b, double at, char *why, size_t n);

/* Which budget TikTok's answer says is spent (asked: the budget the request
 * spent, or -1), and until when; -1 when it says none is. A 429 holds the
 * asked budget until Retry-After (a window and its guard without one); the
 * caps' spam_risk codes hold theirs for cap_probe. */
int budget_learned(const struct rl_config *c, const struct http_resp *resp, int asked, double now,
                   double *until);

#endif
