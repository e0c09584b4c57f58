/* pipeline_int.h - what the pipeline's two files share; included by
 * core/pipeline.c and core/pipeline_steps.c only.
 *
 * pipeline.c is the frame: runs, the due timer, committing a step (the job,
 * its budgets and its audit record in one transaction) and the ways a step
 * ends. pipeline_steps.c is what each state does: the pre-flight
 * (creator_info, the rules' before_publish, the media), the inits, the
 * chunks, the status. A step ends its run (pl_run_end and the functions that
 * call it) or hands it to the next step; it never does both. */
#ifndef TIKD_PIPELINE_INT_H
#define TIKD_PIPELINE_INT_H

#include "budget.h"
#include "idset.h"
#include "photos.h"
#include "pipeline.h"

#include <ev.h>

struct run {
    struct pipeline *p;
    uint64_t id;
    bool resumed; /* first step after a restart: resync uploads */
    bool asked;   /* the rules' before_publish answered for this init */
    bool have_creator;
    struct tt_creator creator;  /* creator_info's answer for this pre-flight */
    struct http_xfer *x;        /* a chunk on its way */
    struct photos_check *check; /* photo URLs being checked */
    struct media_probe *probe;  /* the video being probed */
    /* the chunk on its way: for progress */
    char account[65];
    uint64_t chunk_first, size;
    struct run *next;
};

struct pipeline {
    struct pipeline_cfg c;
    char *api_url, *public_url;
    struct tt_api api;
    struct ev_loop *loop;
    struct store *s;
    struct http *h;
    ev_timer timer;
    struct run *runs;
    size_t nruns;
    struct idset running; /* the ids of runs' jobs */
    struct tt_creators *creators;
    pipeline_outcome_fn outcome;
    void *outcome_ud;
    pipeline_outcome_fn change; /* every committed save */
    void *change_ud;
    pipeline_progress_fn progress; /* upload bytes */
    void *progress_ud;
    pipeline_before_fn before;
    void *before_ud;
    bool started, stopping;
    /* the database refusing writes (a full disk or map): hold back */
    double hold_until, hold_for, warned_at;
    unsigned long refused, refused_unlogged;
    char trouble[300];
    /* a cluster: whether this node holds an account's lease, and the jobs
     * waiting for one it does not */
    uint64_t (*held)(void *ud, const char *account);
    void *held_ud;
    struct idset parked;
};

/* ---- the frame (pipeline.c) ------------------------------------------------------ */

/* Write j, with a budget operation (may be NULL) and an audit record (event
 * NULL: none) in the same transaction. A refused claim is TIKD_EFULL with
 * op->at and op->which; nothing was written. */
int pl_save_op(struct pipeline *p, struct job *j, struct budget_op *op, const char *event,
               const char *fmt, ...) __attribute__((format(printf, 5, 6)));
#define pl_save(p, j, ...) pl_save_op(p, j, NULL, __VA_ARGS__)

/* The write that precedes an init: the slot j holds is spent, and `also`
 * (may be NULL) writes what must exist before TikTok hears of it. */
int pl_save_init(struct pipeline *p, struct job *j, int (*also)(struct store_txn *, const void *),
                 const void *ud);

/* The job as committed now, for a callback to act on; false (and the run
 * ended) if it is gone or an operator cancelled it. */
bool pl_reload(struct run *r, struct job *j);

/* May the run start another request? False (and the run ended) once tikd
 * is stopping: an answer that arrives then is still recorded, but nothing
 * new is sent. */
bool pl_go_on(struct run *r);

/* The run is over (the job waits in the store for its next moment). */
void pl_run_end(struct run *r);
/* j reached a final state (saved): outcome hooks, then the run ends. */
void pl_finish(struct run *r, struct job *j);
/* j failed with why (and TikTok's log_id, may be NULL), on the record. */
void pl_fail(struct run *r, struct job *j, const char *log_id, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* j goes back to the timer: state st in `delay` seconds, because why (with
 * a budget operation in the same transaction, op may be NULL). */
void pl_later_op(struct run *r, struct job *j, enum job_state st, double delay, const char *why,
                 struct budget_op *op);
void pl_later(struct run *r, struct job *j, enum job_state st, double delay, const char *why);
/* j ends cancelled (j->reason says why), audited as event with detail. */
void pl_cancelled(struct run *r, struct job *j, const char *event, const char *detail);

/* A pull's init may have reached TikTok unanswered (what: how it was lost):
 * j is unsure, never sent again, waiting for TikTok to say (a webhook naming
 * its publish adopts it, core/webhook) until unsure_wait passes. The run ends. */
void pl_unsure(struct run *r, struct job *j, const char *what);
/* An upload's init may have reached TikTok unanswered (what: how it was
 * lost): TikTok may hold an upload session it will never get bytes for,
 * counted against the creator's daily cap. j counts it, on the record, and
 * may init again (an unused session posts nothing). False when the run
 * ended. */
bool pl_orphan(struct run *r, struct job *j, const char *what);

/* j waits for budget b until at, in state st. */
void pl_wait_budget(struct run *r, struct job *j, enum job_state st, double at, enum rl_budget b);
/* Hold the budgets of j's init for now: true when it may go now (the slot
 * is in j->slot_at, saved with state st); false when the run ended, the job
 * waiting for the slot reserved for it. */
bool pl_hold_init_slot(struct run *r, struct job *j, enum job_state st);
/* TikTok answered job id's init, or it never left: it was counted by now
 * (core/budget: the inits after it may count from here). counted: whether
 * it may count against the creator's caps at TikTok; when not (it never
 * left, TikTok refused it, or its server failed), the caps get its entries
 * back, so the local count stays TikTok's. */
void pl_init_answered(struct pipeline *p, uint64_t id, bool counted);
/* A failed TikTok call (asked: the budget it spent, or -1), by the policy's
 * action; a budget TikTok says is spent is held shut. */
void pl_on_error(struct run *r, struct job *j, const struct http_resp *resp, const char *what,
                 int asked);
/* Ask TikTok (call c, body owned here) for j's account, answered in done;
 * false (the job back after pl_unsent_delay) when it could not be sent. */
bool pl_ask(struct run *r, struct job *j, enum tt_call c, char *body, http_done_fn done);
/* How long a job waits when its request could not be sent (e from tt_send):
 * until the hold that stopped it ends, else 10 minutes. */
double pl_unsent_delay(const struct tikd_err *e);
/* Do what j's committed state asks for next. */
void pl_step(struct run *r);

/* ---- the steps (pipeline_steps.c) -------------------------------------------------- */

/* A job due to be posted: its init slot, creator_info, before_publish, the
 * media, the init. */
void pl_preflight(struct run *r, struct job *j);
/* Send the next chunk of an upload. */
void pl_put_chunk(struct run *r, struct job *j);
/* A published job stops asking for its public post id (last: what TikTok
 * said last); the run ends. */
void pl_post_id_missing(struct run *r, struct job *j, const char *last);
/* Ask TikTok how the publish is doing (and, after a restart, where the
 * upload stands). */
void pl_poll_status(struct run *r, struct job *j);

#endif
