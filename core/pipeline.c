/* pipeline.c - the job state machine's frame (see pipeline.h, and
 * pipeline_int.h for how the work divides with pipeline_steps.c).
 *
 * A `run` is a job being worked now; everything it knows that matters is in
 * LMDB, so every callback reads the job again before it acts and commits
 * the result in one transaction (with its budget change, core/budget).
 * Errors follow the one policy: RETRY was already retried by the HTTP layer,
 * so what reaches here is a job to try again later (deferred, with its
 * reason), to pause (REAUTH), or to fail with TikTok's message and log_id.
 * One ev_timer follows the due index. */
#include "pipeline_int.h"
#include "media.h"
#include "audit.h"
#include "clock.h"
#include "log.h"
#include "metrics.h"
#include "alert.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void arm(struct pipeline *p);

/* ---- saving -------------------------------------------------------------------- */

struct put_ctx {
    struct pipeline *p;
    struct job *j;
    struct budget_op *op;
    const char *event; /* audit event, or NULL */
    char detail[800];
    int (*also)(struct store_txn *t, const void *ud); /* more to write in the same transaction */
    const void *also_ud;
};

static int put_txn(struct store_txn *t, void *ctx)
{
    struct put_ctx *pc = ctx;
    struct job cur;
    int rc = job_get(t, pc->j->id, &cur);
    if (rc != 0)
        return rc;
    if (cur.state == JOB_CANCELLED && pc->j->state != JOB_CANCELLED)
        return TIKD_EEXIST; /* an operator cancelled it meanwhile: leave it */
    if (cur.imported_at > pc->j->imported_at)
        return TIKD_EEXIST; /* its record came from the cluster since: this copy is stale */
    if ((rc = budget_apply(t, &pc->p->c.limits, &cur, pc->j, pc->op)) != 0)
        return rc;
    if (pc->also && (rc = pc->also(t, pc->also_ud)) != 0)
        return rc;
    rc = job_put_over(t, &cur, pc->j); /* `also` writes other records, never the job's */
    if (rc == 0 && pc->event)
        rc = audit_append(t, "tikd", pc->event, pc->detail);
    return rc;
}

/* ---- when the database refuses writes ------------------------------------------ */

/* A full disk or map fails every commit: the pipeline holds back (0.5 s,
 * doubling to 30 s) instead of trying again at once, logs once per 10 s with
 * how many it held back since, and says so (pipeline_trouble, /healthz). */
#define HOLD_MIN   0.5
#define HOLD_MAX   30.0
#define WARN_EVERY 10.0

static void store_refused(struct pipeline *p, uint64_t job, int rc, const char *why)
{
    double now = ev_now(p->loop);
    p->hold_for = p->hold_for ? p->hold_for * 2 : HOLD_MIN;
    if (p->hold_for > HOLD_MAX)
        p->hold_for = HOLD_MAX;
    p->hold_until = now + p->hold_for;
    p->refused++;
    snprintf(p->trouble, sizeof p->trouble, "%s", why[0] ? why : tikd_strerror(rc));
    if (p->warned_at && now - p->warned_at < WARN_EVERY) {
        p->refused_unlogged++;
        return;
    }
    TLOG(TLOG_ERROR, "store.write_failed", LINT("job", job), LSTR("code", tikd_strerror(rc)),
         LSTR("error", p->trouble), LINT("held_back_since_last", p->refused_unlogged),
         LDBL("next_try_s", p->hold_for));
    p->warned_at = now;
    p->refused_unlogged = 0;
}

static void store_took(struct pipeline *p)
{
    if (!p->hold_for)
        return;
    TLOG(TLOG_INFO, "store.write_recovered", LINT("refused", p->refused));
    p->hold_for = p->hold_until = p->warned_at = 0;
    p->refused = p->refused_unlogged = 0;
    p->trouble[0] = '\0';
}

void pipeline_store_synced(struct pipeline *p)
{
    store_took(p);
}

void pipeline_store_lost(struct pipeline *p, int rc, const char *why)
{
    store_refused(p, 0, rc, why ? why : "");
}

const char *pipeline_trouble(const struct pipeline *p)
{
    return p->hold_for ? p->trouble : NULL;
}

static int commit(struct pipeline *p, struct put_ctx *pc)
{
    struct tikd_err e = {0};
    int rc = store_write(p->s, put_txn, pc, &e);
    if (rc == 0) {
        if (!store_pending(p->s)) /* durable now; in a group: pipeline_store_synced */
            store_took(p);
        if (p->change)
            p->change(p->change_ud, pc->j);
    } else if (rc != TIKD_EEXIST && rc != TIKD_EFULL) {
        store_refused(p, pc->j->id, rc, e.msg);
    }
    return rc;
}

/* Write j, with a budget operation (may be NULL) and an audit record (event
 * NULL: none) in the same transaction. A refused claim is TIKD_EFULL with
 * op->at and op->which; nothing was written. */
int pl_save_op(struct pipeline *p, struct job *j, struct budget_op *op, const char *event,
               const char *fmt, ...)
{
    struct put_ctx pc = {p, j, op, event, "", NULL, NULL};
    if (fmt) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(pc.detail, sizeof pc.detail, fmt, ap);
        va_end(ap);
    }
    return commit(p, &pc);
}

/* The write that precedes an init: the slot j holds is spent, and `also`
 * (may be NULL) writes what must exist before TikTok hears of it. */
int pl_save_init(struct pipeline *p, struct job *j, int (*also)(struct store_txn *, const void *),
                 const void *ud)
{
    struct budget_op consume = {.kind = BUDGET_CONSUME};
    j->spent_at = j->slot_at;
    j->slot_at = 0;
    struct put_ctx pc = {p, j, &consume, NULL, "", also, ud};
    return commit(p, &pc);
}

/* ---- runs --------------------------------------------------------------------- */

/* The job as committed now, for a callback to act on; false (and the run
 * ended) if it is gone or an operator cancelled it meanwhile. */
bool pl_reload(struct run *r, struct job *j)
{
    if (job_read(r->p->s, r->id, j) == 0 && j->state != JOB_CANCELLED)
        return true;
    pl_run_end(r);
    return false;
}

bool pl_go_on(struct run *r)
{
    if (!r->p->stopping)
        return true;
    pl_run_end(r); /* what the run learnt is committed; the rest waits for the next start */
    return false;
}

void pl_run_end(struct run *r)
{
    struct pipeline *p = r->p;
    struct run **pp = &p->runs;
    while (*pp && *pp != r)
        pp = &(*pp)->next;
    if (*pp) {
        *pp = r->next;
        p->nruns--;
        idset_del(&p->running, r->id);
    }
    free(r);
    arm(p);
}

void pl_finish(struct run *r, struct job *j)
{
    struct pipeline *p = r->p;
    TLOG(j->state == JOB_FAILED ? TLOG_WARN : TLOG_INFO, "job.final", LINT("job", j->id),
         LSTR("account", j->account), LSTR("state", job_state_name(j->state)),
         LSTR("publish_id", j->publish_id), LSTR("post_ids", j->post_ids),
         LSTR("reason", j->reason));
    if (j->state == JOB_FAILED)
        alert_failure(j->account, "job %llu: %.400s", (unsigned long long)j->id, j->reason);
    char lb[160];
    metrics_inc("tikd_posts_total",
                metrics_labels(lb, sizeof lb, "outcome", job_state_name(j->state), "reason",
                               j->fail_reason, NULL),
                1);
    if (p->outcome)
        p->outcome(p->outcome_ud, j);
    pl_run_end(r);
}

void pl_fail(struct run *r, struct job *j, const char *log_id, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(j->reason, sizeof j->reason, fmt, ap);
    va_end(ap);
    j->state = JOB_FAILED;
    if (log_id)
        snprintf(j->log_id, sizeof j->log_id, "%s", log_id);
    if (pl_save(r->p, j, "job.failed", "job=%llu account=%s log_id=%s reason=\"%.500s\"",
                (unsigned long long)j->id, j->account, j->log_id, j->reason) == 0)
        pl_finish(r, j);
    else
        pl_run_end(r);
}

/* Hand the job back to the timer: try again in `delay`, in `state` (with a
 * budget operation in the same transaction). */
void pl_later_op(struct run *r, struct job *j, enum job_state st, double delay, const char *why,
                 struct budget_op *op)
{
    j->state = st;
    j->due_at = clock_now() + delay;
    snprintf(j->reason, sizeof j->reason, "%s", why ? why : "");
    if (st == JOB_DEFERRED)
        TLOG(TLOG_INFO, "job.deferred", LINT("job", j->id), LSTR("account", j->account),
             LDBL("retry_in_s", delay), LSTR("reason", why));
    pl_save_op(r->p, j, op, st == JOB_DEFERRED ? "job.deferred" : NULL,
               "job=%llu account=%s retry_in_s=%.0f reason=\"%.400s\"", (unsigned long long)j->id,
               j->account, delay, why ? why : "");
    pl_run_end(r);
}

void pl_later(struct run *r, struct job *j, enum job_state st, double delay, const char *why)
{
    pl_later_op(r, j, st, delay, why, NULL);
}

/* End the job as cancelled (j->reason says why), with its audit record. */
void pl_cancelled(struct run *r, struct job *j, const char *event, const char *detail)
{
    j->state = JOB_CANCELLED;
    if (pl_save(r->p, j, event, "%s", detail) == 0)
        pl_finish(r, j);
    else
        pl_run_end(r);
}

/* ---- inits whose answer was lost ------------------------------------------------- */

void pl_unsure(struct run *r, struct job *j, const char *what)
{
    double now = clock_now();
    j->state = JOB_UNSURE;
    if (j->watch_until <= 0)
        j->watch_until = now + r->p->c.unsure_wait;
    j->due_at = j->watch_until; /* a webhook that names its publish brings it back sooner */
    char until[32];
    clock_fmt_utc(j->watch_until, until, sizeof until);
    snprintf(j->reason, sizeof j->reason,
             "%.300s, so TikTok may have it: not sent again (that could post it twice); waiting "
             "until %s for TikTok to say what became of it",
             what, until);
    TLOG(TLOG_WARN, "job.unsure", LINT("job", j->id), LSTR("account", j->account),
         LSTR("why", what), LDBL("wait_s", j->watch_until - now));
    pl_save(r->p, j, "job.unsure", "job=%llu account=%s why=\"%.300s\"", (unsigned long long)j->id,
            j->account, what);
    pl_run_end(r);
}

bool pl_orphan(struct run *r, struct job *j, const char *what)
{
    j->orphans++;
    j->init_sent_at = 0;
    j->spent_at = 0; /* counted for good: TikTok may have counted it */
    TLOG(TLOG_WARN, "job.orphan_session", LINT("job", j->id), LSTR("account", j->account),
         LSTR("why", what), LINT("orphans", j->orphans));
    if (pl_save(r->p, j, "job.orphan_session", "job=%llu account=%s orphans=%d why=\"%.300s\"",
                (unsigned long long)j->id, j->account, j->orphans, what) == 0)
        return true;
    pl_run_end(r);
    return false;
}

/* ---- TikTok's budgets ------------------------------------------------------------ */

/* Wait for budget b until `at`: the job goes back to the timer with why. */
/* A creator's daily cap is full: the operator hears of it once (quiet). */
static void cap_alert(const struct job *j, enum rl_budget b, double at)
{
    if (b != RL_DAILY_POSTS)
        return;
    char until[32];
    clock_fmt_utc(at, until, sizeof until);
    alert_raise("daily_cap", j->account, "the daily post cap is full until %s; job %llu waits",
                until, (unsigned long long)j->id);
}

void pl_wait_budget(struct run *r, struct job *j, enum job_state st, double at, enum rl_budget b)
{
    char why[300];
    cap_alert(j, b, at);
    budget_reason(&r->p->c.limits, b, at, why, sizeof why);
    TLOG(TLOG_DEBUG, "job.limited", LINT("job", j->id), LSTR("account", j->account),
         LSTR("budget", rl_budget_name(b)), LDBL("wait_s", at - clock_now()));
    struct budget_op op = {.kind = BUDGET_WAIT, .bs = {b}, .n = 1};
    double delay = at - clock_now();
    pl_later_op(r, j, st, delay > 0 ? delay : 0, why, &op);
}

/* Hold the budgets of j's init for now: true when it may go now (the slot
 * is in j->slot_at, saved with state st); false when the run ended, the job
 * waiting for the slot reserved for it. */
struct sent_ctx {
    const struct rl_config *c;
    struct job *j;
    double at;
};

static int sent_txn(struct store_txn *t, void *ctx)
{
    struct sent_ctx *sc = ctx;
    return budget_sent_when(t, sc->c, sc->j, clock_now(), &sc->at);
}

bool pl_hold_init_slot(struct run *r, struct job *j, enum job_state st)
{
    struct budget_op op = {.kind = BUDGET_RESERVE};
    op.n = budget_of_init(j, op.bs);
    if (budget_slot_fresh(&r->p->c.limits, j, clock_now())) {
        /* its moment came; it goes once the inits sent before it allow (one
         * that left late can bring them closer at TikTok than planned) */
        struct sent_ctx sc = {&r->p->c.limits, j, 1e18};
        if (store_read(r->p->s, sent_txn, &sc, NULL) == 0 && sc.at <= clock_now())
            return true;
        op.kind = BUDGET_MOVE;
    }
    j->state = st;
    if (pl_save_op(r->p, j, &op, NULL, NULL) != 0) {
        pl_run_end(r);
        return false;
    }
    if (j->state != JOB_DEFERRED)
        return true;
    cap_alert(j, op.which, op.at);
    TLOG(TLOG_DEBUG, "job.slot", LINT("job", j->id), LSTR("account", j->account),
         LSTR("budget", rl_budget_name(op.which)), LDBL("wait_s", op.at - clock_now()));
    pl_run_end(r);
    return false;
}

struct answered_ctx {
    const struct rl_config *c;
    struct job *j;
    bool counted;
};

static int answered_txn(struct store_txn *t, void *ctx)
{
    struct answered_ctx *ac = ctx;
    struct job *j = ac->j;
    int rc = job_get(t, j->id, j);
    if (rc == 0)
        rc = budget_answered(t, ac->c, j, clock_now());
    if (rc != 0 || j->spent_at <= 0)
        return rc;
    if (!ac->counted) /* TikTok did not take it: its cap entries go back */
        rc = budget_give_back(t, ac->c, j);
    j->spent_at = 0; /* answered: counted for good, or given back */
    return rc ? rc : job_put(t, j);
}

void pl_init_answered(struct pipeline *p, uint64_t id, bool counted)
{
    struct job *j = malloc(sizeof *j);
    if (!j)
        return;
    j->id = id;
    struct answered_ctx sc = {&p->c.limits, j, counted};
    struct tikd_err e = {0};
    int rc = store_write(p->s, answered_txn, &sc, &e);
    if (rc != 0)
        store_refused(p, id, rc, e.msg);
    free(j);
}

void pl_on_error(struct run *r, struct job *j, const struct http_resp *resp, const char *what,
                 int asked)
{
    char why[700];
    snprintf(why, sizeof why, "%s: %s (code %s%s%s)", what, resp->out.message, resp->out.code,
             resp->out.log_id[0] ? ", log_id " : "", resp->out.log_id);
    if (strcmp(resp->out.code, "privacy_level_option_mismatch") == 0 ||
        strncmp(resp->out.code, "spam_risk", 9) == 0)
        tt_creators_forget(r->p->creators, j->account); /* stale: ask again next time */
    double until;
    int b = resp->out.action == POL_DEFER
                ? budget_learned(&r->p->c.limits, resp, asked, clock_now(), &until)
                : -1;
    enum job_state again = j->state == JOB_PREFLIGHT ? JOB_DEFERRED : j->state;
    if (b >= 0) {
        struct budget_op op = {.kind = BUDGET_BLOCK, .bs = {(enum rl_budget)b}, .n = 1};
        op.until = until;
        TLOG(TLOG_WARN, "limits.learned", LINT("job", j->id), LSTR("account", j->account),
             LSTR("budget", rl_budget_name((enum rl_budget)b)), LSTR("code", resp->out.code),
             LDBL("hold_s", until - clock_now()));
        pl_later_op(r, j, again, until - clock_now(), why, &op);
        return;
    }
    switch (resp->out.action) {
    case POL_DEFER:
        pl_later(r, j, JOB_DEFERRED, resp->out.retry_after > 0 ? resp->out.retry_after : 60, why);
        break;
    case POL_RETRY: /* the HTTP layer's attempts are spent: come back later */
        pl_later(r, j, again, 60, why);
        break;
    case POL_REAUTH:
        pl_later(r, j, JOB_DEFERRED, 600, why); /* paused until the account is connected again */
        break;
    default:
        pl_fail(r, j, resp->out.log_id, "%s", why);
    }
}

/* Ask TikTok (call c, body owned here) for the job's account; on a failure
 * to start, the job comes back when the hold that stopped it ends (its token's
 * refresh must wait), else in 10 minutes (e.g. its account needs reauth:
 * paused until it is connected again, which wakes it). */
bool pl_ask(struct run *r, struct job *j, enum tt_call c, char *body, http_done_fn done)
{
    struct tikd_err e = {0};
    int rc = tt_send(&r->p->api, j->account, c, body, done, r, &e);
    free(body);
    if (rc == 0)
        return true;
    pl_later(r, j, j->state == JOB_PREFLIGHT ? JOB_DEFERRED : j->state, pl_unsent_delay(&e), e.msg);
    return false;
}

double pl_unsent_delay(const struct tikd_err *e)
{
    double now = clock_now();
    if (e->retry_at > now && e->retry_at - now < 600)
        return e->retry_at - now + 0.05;
    return 600;
}

/* ---- a cluster: the jobs of accounts held elsewhere wait -------------------------- */

void pipeline_set_owner(struct pipeline *p, uint64_t (*held)(void *ud, const char *account),
                        void *ud)
{
    p->held = held;
    p->held_ud = ud;
}

void pipeline_held(struct pipeline *p)
{
    /* every waiting job reads its account's lease again at its step: a
     * grant is rare (a node joining or leaving), a step's read is cheap */
    idset_clear(&p->parked);
    arm(p);
}

/* ---- the step and the timer ------------------------------------------------------- */

void pl_step(struct run *r)
{
    if (!pl_go_on(r))
        return;
    struct job j;
    if (job_read(r->p->s, r->id, &j) != 0) {
        pl_run_end(r);
        return;
    }
    if (r->p->held && !r->p->held(r->p->held_ud, j.account)) {
        /* another node acts for the account: the job waits, unchanged, for
         * its lease (pipeline_held); without room to remember that, it
         * looks again after a renewal round */
        TLOG(TLOG_DEBUG, "job.not_held", LINT("job", j.id), LSTR("account", j.account));
        if (idset_add(&r->p->parked, j.id))
            pl_run_end(r);
        else
            pl_later(r, &j, j.state, 5, "this node does not hold the account's lease");
        return;
    }
    switch (j.state) {
    case JOB_AWAITING_APPROVAL: { /* due means its deadline passed */
        char detail[200];
        snprintf(j.reason, sizeof j.reason, "not approved before its deadline");
        snprintf(detail, sizeof detail, "job=%llu account=%s reason=approval_deadline",
                 (unsigned long long)j.id, j.account);
        pl_cancelled(r, &j, "job.expired", detail);
        return;
    }
    case JOB_SCHEDULED:
    case JOB_DEFERRED:
    case JOB_PREFLIGHT:
        if (!j.publish_id[0] && j.init_sent_at > 0) {
            /* tikd stopped between sending an init and storing its answer */
            if (job_is_pull(
                    &j)) { /* TikTok may be pulling already: another init could post twice */
                pl_unsure(r, &j, "tikd stopped while TikTok was being asked to pull this post");
                return;
            }
            if (!pl_orphan(r, &j, "tikd stopped while the upload's init was on its way"))
                return;
        }
        if (j.publish_id[0]) { /* never init twice: go back to asking TikTok */
            /* an upload deferred part way (a chunk refused unsent, or cut) goes on from
             * where TikTok says it stands; anything else waits for TikTok's word */
            bool upload = !job_is_pull(&j) && j.upload_url[0] && j.chunks_done < j.plan.count;
            j.state = upload ? JOB_UPLOADING : JOB_PROCESSING;
            r->resumed = r->resumed || upload;
            pl_save(r->p, &j, NULL, NULL);
            pl_poll_status(r, &j);
            return;
        }
        pl_preflight(r, &j);
        return;
    case JOB_UPLOADING:
        if (r->resumed) {
            pl_poll_status(r, &j);
            return;
        }
        pl_put_chunk(r, &j);
        return;
    case JOB_PROCESSING:
        pl_poll_status(r, &j);
        return;
    case JOB_UNSURE: /* TikTok said nothing of it in time: the operator decides */
        if (clock_now() < j.watch_until) {
            j.due_at = j.watch_until;
            pl_save(r->p, &j, NULL, NULL);
            pl_run_end(r);
            return;
        }
        j.watch_until = 0;
        pl_fail(r, &j, NULL,
                "TikTok may have taken this %s's init, whose answer was lost, but said nothing of "
                "it within %.0f minutes: check the account, then `tikd job retry %llu` if it did "
                "not arrive (tikd never sends it again by itself: that could post it twice)",
                j.kind == JOB_PHOTO ? "photo post" : "pull", r->p->c.unsure_wait / 60,
                (unsigned long long)j.id);
        return;
    case JOB_PUBLISHED:
        if (j.watch_until > 0 && clock_now() >= j.watch_until) {
            pl_post_id_missing(r, &j, "its time was up before the next poll");
            return;
        }
        if (j.watch_until > 0) { /* asking for its public post id */
            pl_poll_status(r, &j);
            return;
        }
        pl_run_end(r);
        return;
    default:
        pl_run_end(r);
    }
}

struct due_list {
    struct pipeline *p;
    uint64_t ids[64];
    int n;
    double now;  /* the walk's moment: one clock read for every entry */
    double next; /* the earliest due entry of a job not being worked (0: none) */
};

static int collect_due(uint64_t id, double due, void *ctx)
{
    struct due_list *d = ctx;
    if (idset_has(&d->p->running, id) || idset_has(&d->p->parked, id))
        return 0;
    if (due > d->now) { /* the first one in the future: the timer's next moment */
        d->next = due;
        return 1;
    }
    if (d->n < 64 && d->p->nruns + (size_t)d->n < (size_t)d->p->c.max_active) {
        d->ids[d->n++] = id;
        return 0;
    }
    /* due now, no free slot: a run's end re-arms. The walk stops here, so
     * its cost is the slots and the jobs being worked, never the backlog */
    d->next = due;
    return 1;
}

static int due_txn(struct store_txn *t, void *ctx)
{
    return job_foreach_due(t, 1e18, collect_due, ctx);
}

static void on_timer(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)loop;
    (void)revents;
    struct pipeline *p = w->data;
    struct due_list d = {.p = p, .now = clock_now()};
    if (p->nruns < (size_t)p->c.max_active)
        store_read(p->s, due_txn, &d, NULL);
    for (int i = 0; i < d.n; i++) {
        if (idset_has(&p->running, d.ids[i]))
            continue; /* one run a job, even were it due twice in the index */
        struct run *r = calloc(1, sizeof *r);
        if (!r || !idset_add(&p->running, d.ids[i])) {
            free(r);
            break;
        }
        r->p = p;
        r->id = d.ids[i];
        /* the first pass after a start resyncs uploads; in a cluster every
         * run does: the account may have been held elsewhere meanwhile */
        r->resumed = !p->started || p->held;
        r->next = p->runs;
        p->runs = r;
        p->nruns++;
        pl_step(r);
    }
    p->started = true;
    arm(p);
}

static void arm(struct pipeline *p)
{
    ev_timer_stop(p->loop, &p->timer);
    if (p->stopping || p->nruns >= (size_t)p->c.max_active)
        return; /* a run ending calls arm() again */
    struct due_list d = {.p = p, .now = clock_now()};
    store_read(p->s, due_txn, &d, NULL);
    if (d.n == 0 && !d.next)
        return;
    double delay = d.n ? 0 : d.next - clock_now();
    if (p->hold_until - ev_now(p->loop) > delay) /* the database refused: wait for room */
        delay = p->hold_until - ev_now(p->loop);
    ev_timer_set(&p->timer, delay > 0 ? delay : 0., 0.);
    ev_timer_start(p->loop, &p->timer);
}

void pipeline_stop(struct pipeline *p)
{
    p->stopping = true;
    ev_timer_stop(p->loop, &p->timer);
}

void pipeline_kick(struct pipeline *p)
{
    arm(p);
}

size_t pipeline_active(const struct pipeline *p)
{
    return p->nruns;
}

void pipeline_on_before(struct pipeline *p, pipeline_before_fn fn, void *ud)
{
    p->before = fn;
    p->before_ud = ud;
}

void pipeline_on_progress(struct pipeline *p, pipeline_progress_fn fn, void *ud)
{
    p->progress = fn;
    p->progress_ud = ud;
}

void pipeline_on_change(struct pipeline *p, pipeline_outcome_fn fn, void *ud)
{
    p->change = fn;
    p->change_ud = ud;
}

void pipeline_on_outcome(struct pipeline *p, pipeline_outcome_fn fn, void *ud)
{
    p->outcome = fn;
    p->outcome_ud = ud;
}

int pipeline_new(struct pipeline **out, struct ev_loop *loop, struct store *s, struct oauth *o,
                 struct http *h, const struct pipeline_cfg *c, struct tikd_err *e)
{
    struct pipeline *p = calloc(1, sizeof *p);
    if (!p || !(p->creators = tt_creators_new())) {
        free(p);
        return tikd_fail(e, TIKD_ENOMEM, "pipeline: out of memory");
    }
    p->c = *c;
    p->api_url = strdup(c->api_url);
    p->c.api_url = p->api_url;
    p->public_url = c->media_public_url ? strdup(c->media_public_url) : NULL;
    p->c.media_public_url = p->public_url;
    if (p->c.media_url_ttl <= 0)
        p->c.media_url_ttl = 3600;
    if (p->c.probe_retry <= 0)
        p->c.probe_retry = 60;
    if (p->c.max_active <= 0)
        p->c.max_active = 8;
    if (p->c.poll_first <= 0)
        p->c.poll_first = 2;
    if (p->c.poll_max <= 0)
        p->c.poll_max = 30;
    if (p->c.processing_timeout <= 0)
        p->c.processing_timeout = 1800;
    if (p->c.unsure_wait <= 0)
        p->c.unsure_wait = 7200;
    if (p->c.post_id_wait < 0)
        p->c.post_id_wait = 0;
    if (p->c.max_inits <= 0)
        p->c.max_inits = 3;
    p->api = (struct tt_api){o, p->api_url};
    p->loop = loop;
    p->s = s;
    p->h = h;
    ev_init(&p->timer, on_timer);
    p->timer.data = p;
    *out = p;
    return 0;
}

void pipeline_free(struct pipeline *p)
{
    if (!p)
        return;
    ev_timer_stop(p->loop, &p->timer);
    while (p->runs) {
        struct run *r = p->runs;
        p->runs = r->next;
        if (r->x)
            http_cancel(r->x);
        photos_check_cancel(r->check);
        media_probe_cancel(r->probe);
        free(r);
    }
    tt_creators_free(p->creators);
    idset_free(&p->parked);
    idset_free(&p->running);
    free(p->api_url);
    free(p->public_url);
    free(p);
}
