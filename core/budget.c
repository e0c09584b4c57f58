/* budget.c - a job's use of TikTok's budgets (see budget.h).
 *
 * Everything here runs inside the caller's write transaction: the budget
 * change and the job change commit together or not at all, so a crash can
 * never count a request that did not leave, or lose one that did. */
#include "budget.h"
#include "clock.h"

#include <stdio.h>
#include <string.h>

int budget_of_init(const struct job *j, enum rl_budget *bs)
{
    int n = 0;
    bs[n++] = rl_init_budget(j->mode == JOB_DRAFT, j->kind == JOB_PHOTO);
    bs[n++] = j->mode == JOB_DRAFT ? RL_PENDING_SHARES : RL_DAILY_POSTS;
    bs[n++] = RL_ACTIVE_USERS;
    bs[n++] = RL_TENANT_POSTS; /* unlimited unless the job's tenant has a quota */
    return n;
}

/* c as it counts for j: its tenant's quota is RL_TENANT_POSTS (tmp holds
 * the copy when it has one). */
static const struct rl_config *for_job(const struct rl_config *c, const struct job *j,
                                       struct rl_config *tmp)
{
    for (size_t i = 0; j->tenant[0] && i < c->nquotas; i++)
        if (c->quotas[i].per_day > 0 && strcmp(c->quotas[i].tenant, j->tenant) == 0) {
            *tmp = *c;
            tmp->tenant = c->quotas[i].tenant;
            tmp->l[RL_TENANT_POSTS] = (struct rl_limit){c->quotas[i].per_day, 86400, 1, 0};
            return tmp;
        }
    return c;
}

void budget_reason(const struct rl_config *c, enum rl_budget b, double at, char *why, size_t n)
{
    struct rl_limit l = rl_limit_of(c, b);
    char when[32];
    clock_fmt_utc(at, when, sizeof when);
    if (b == RL_TENANT_POSTS)
        snprintf(why, n, "waiting for tenant %s's own quota (%g posts per %g s) until %s",
                 c->tenant ? c->tenant : "?", l.count, l.per, when);
    else
        snprintf(why, n, "waiting for TikTok's %s budget (%g per %g s %s) until %s",
                 rl_budget_name(b), l.count - l.margin, l.per,
                 b == RL_ACTIVE_USERS ? "for the app" : "for this account", when);
}

/* Give the caps the entries of j's init made for *at (then cleared). */
static int release_at(struct store_txn *t, const struct rl_config *c, const struct job *j,
                      double *at)
{
    if (*at <= 0)
        return 0;
    enum rl_budget bs[4];
    int n = budget_of_init(j, bs);
    int rc = rl_release(t, c, j->account, bs, n, *at, clock_now());
    if (rc == 0)
        *at = 0;
    return rc;
}

int budget_release_slot(struct store_txn *t, const struct rl_config *c, struct job *j)
{
    struct rl_config tc;
    return release_at(t, for_job(c, j, &tc), j, &j->slot_at);
}

int budget_give_back(struct store_txn *t, const struct rl_config *c, struct job *j)
{
    struct rl_config tc;
    return release_at(t, for_job(c, j, &tc), j, &j->spent_at);
}

bool budget_slot_fresh(const struct rl_config *c, const struct job *j, double now)
{
    struct rl_config tc;
    c = for_job(c, j, &tc);
    enum rl_budget bs[4];
    int n = budget_of_init(j, bs);
    double late = rl_slot_late(c, bs, n);
    return j->slot_at > 0 && now >= j->slot_at - 0.005 && now - j->slot_at <= late;
}

int budget_sent_when(struct store_txn *t, const struct rl_config *c, const struct job *j,
                     double now, double *at)
{
    struct rl_config tc;
    c = for_job(c, j, &tc);
    enum rl_budget bs[4], which;
    int n = budget_of_init(j, bs);
    return rl_sent_when(t, c, j->account, bs, n, now, at, &which);
}

int budget_answered(struct store_txn *t, const struct rl_config *c, const struct job *j, double now)
{
    struct rl_config tc;
    c = for_job(c, j, &tc);
    enum rl_budget bs[4];
    int n = budget_of_init(j, bs);
    return rl_answered(t, c, j->account, bs, n, now);
}

static int apply_op(struct store_txn *t, const struct rl_config *c, struct job *j,
                    struct budget_op *op)
{
    double now = clock_now();
    int rc = 0;
    switch (op->kind) {
    case BUDGET_CLAIM:
        rc = rl_when(t, c, j->account, op->bs, op->n, now, &op->at, &op->which);
        if (rc == 0 && op->at > now)
            return TIKD_EFULL; /* nothing is written */
        return rc ? rc : rl_spend(t, c, j->account, op->bs, op->n, now);
    case BUDGET_RESERVE: /* the job's next slot: now, or it waits for it */
    case BUDGET_MOVE:    /* its slot, kept, once the inits sent before it allow */
        rc = op->kind == BUDGET_MOVE
                 ? rl_move(t, c, j->account, op->bs, op->n, now, &op->at, &op->which)
                 : rl_reserve(t, c, j->account, op->bs, op->n, now, &op->at, &op->which);
        if (rc == 0 && op->at > now) {
            j->state = JOB_DEFERRED;
            j->due_at = op->at;
            budget_reason(c, op->which, op->at, j->reason, sizeof j->reason);
            rc = rl_note_deferred(t, op->which, op->at - now);
        }
        j->slot_at = op->at < 1e17 ? op->at : 0;
        return rc;
    case BUDGET_BLOCK:
        rc = rl_block(t, c, j->account, op->bs[0], op->until);
        return rc ? rc : rl_note_deferred(t, op->bs[0], j->due_at - now);
    case BUDGET_WAIT:
        return rl_note_deferred(t, op->bs[0], j->due_at - now);
    case BUDGET_CONSUME: /* the init leaves: in flight until budget_answered() */
        op->n = budget_of_init(j, op->bs);
        return rl_sent(t, c, j->account, op->bs, op->n, now);
    case BUDGET_NONE:
        break;
    }
    return 0;
}

int budget_apply(struct store_txn *t, const struct rl_config *c, const struct job *cur,
                 struct job *j, struct budget_op *op)
{
    struct rl_config tc;
    c = for_job(c, j, &tc);
    int kind = op ? (int)op->kind : BUDGET_NONE;
    bool moved = kind == BUDGET_RESERVE || kind == BUDGET_MOVE;
    bool parked = j->state == JOB_DEFERRED || job_state_final(j->state);
    if (cur->slot_at > 0 && kind != BUDGET_CONSUME &&
        (moved || parked || j->slot_at != cur->slot_at)) {
        /* the slot it held goes unused: give the caps their entries back */
        struct job held = *cur;
        int rc = budget_release_slot(t, c, &held);
        if (rc != 0)
            return rc;
        if (j->slot_at == cur->slot_at)
            j->slot_at = 0;
    }
    return op ? apply_op(t, c, j, op) : 0;
}

int budget_learned(const struct rl_config *c, const struct http_resp *resp, int asked, double now,
                   double *until)
{
    const char *code = resp->out.code;
    if (strcmp(code, "rate_limit_exceeded") == 0 || resp->status == 429) {
        if (asked < 0)
            return -1;
        char ra[64];
        bool told = http_header_get(resp->headers, "Retry-After", ra, sizeof ra);
        /* no Retry-After: the rest of the window, as if it were full */
        *until = now +
                 (told && resp->out.retry_after > 0 ? resp->out.retry_after : c->window + c->guard);
        return asked;
    }
    *until = now + c->cap_probe;
    if (strcmp(code, "spam_risk_too_many_posts") == 0)
        return RL_DAILY_POSTS; /* other apps posted for this creator too */
    if (strcmp(code, "spam_risk_too_many_pending_share") == 0)
        return RL_PENDING_SHARES;
    if (strcmp(code, "reached_active_user_cap") == 0)
        return RL_ACTIVE_USERS;
    return -1;
}
