/* post.h - the one planner: every way a post is made (`tikd post`, a rule's
 * tikd.upload.post, media from a watched folder through a rule, later the
 * admin API) goes through post_plan(): the same checks, the same content
 * ledger (a video is known by its SHA-256, so the same content twice for an
 * account is refused unless asked for again), the same slot booking and the
 * same audit record. And every operator decision on a planned job (approve,
 * reject, cancel, retry; an account removed) goes through post_change(), so
 * each one gives back what the job held: its init slot, its schedule slot.
 *
 * A local video is read by the media probe and judged by TikTok's rules
 * (core/mediarules.c) here, so a file TikTok would refuse never enters the
 * queue. Checks that need TikTok (the creator's privacy options and longest
 * video) run again before the init, in the pipeline. */
#ifndef TIKD_POST_H
#define TIKD_POST_H

#include "err.h"
#include "job.h"
#include "ledger.h"
#include "media.h"
#include "ratelimit.h"
#include "slots.h"
#include "store.h"

#include <stdbool.h>
#include <stdint.h>

/* Check a post as planned: one message per problem in why (newline
 * separated). Returns the number of problems. It reads local media (stat,
 * image headers), nothing else. */
int post_validate(const struct job *j, char *why, size_t n);

struct post_req {
    struct job *j;   /* the post: account, kind, mode, media or images, caption, description,
                      * cover_index, privacy, options, chosen_by (who decided it) */
    double at;       /* when to post; 0: now, or the schedule's next free slot */
    bool approval;   /* hold it for an operator's `tikd job approve` ... */
    double deadline; /* ... until then (0: a day after the planned time) */
    const struct schedule *sched; /* book its next free slot after `after` (not with approval) */
    double after;
    const char *tenant;    /* the caller acts within this tenant (a rule's, a scoped admin
                            * token's): another tenant's account is no account; NULL: the
                            * operator, any account */
    const char *key_scope; /* key: the same key (within its scope, a rule file) plans once */
    const char *key;
    bool again;       /* post video content this account already has planned or posted */
    const char *hash; /* the video's SHA-256 when it was hashed already (on the
                       * loop, ledger_hash_start), or NULL: read it here */
    const struct ledger_fp *hashed_fp; /* ... and the fingerprint the file had then */
    codec_progress_fn progress;      /* a video read here for its hash: progress(ud, bytes) after */
    void *progress_ud;               /* each read (`tikd post` shows it on a terminal), or NULL */
    const struct media_info *probed; /* a local video as the probe read it (a caller on the
                                      * loop probes first, media_probe_start), or NULL:
                                      * probed here, waiting for the probe */
    /* out */
    struct media_verdict media; /* a local video's findings: refusals, or warnings to show */
    bool existing;              /* key named a job planned before: j->id is that one */
    double slot;                /* the slot booked, with sched */
    uint64_t same_as;           /* refused as the same content: the job that has it */
    bool invalid;               /* refused by the checks (post_validate): problem lists them */
    char problem[2048];         /* every problem, when refused */
};

/* Plan r->j: 0 with j->id (new, or r->existing), else the reason in e and
 * r->problem: TIKD_EINVAL (not a valid post, or media TikTok's rules
 * refuse: r->media says which), TIKD_ENOTFOUND (no such account),
 * TIKD_EEXIST (same content, r->same_as), or a store or media error (TIKD_EIO:
 * the probe could not run). Nothing is written unless it succeeds (but a local video's identity,
 * recorded in the media ledger as the intake does). */
int post_plan(struct store *s, struct post_req *r, struct tikd_err *e);

/* post_plan() for a caller on the loop that must not wait (the admin API):
 * a local video is hashed a slice at a time (unless the ledger knows it)
 * and probed in its own process first; then it is planned. done(ud, rc, r,
 * e) runs once from the loop (never before post_plan_start returns) with
 * post_plan's result; r stays the caller's, and must live until then.
 * post_plan_cancel() stops it (done does not run). */
struct ev_loop;
struct post_async;
typedef void (*post_planned_fn)(void *ud, int rc, struct post_req *r, const struct tikd_err *e);
int post_plan_start(struct ev_loop *loop, struct store *s, struct post_req *r, post_planned_fn done,
                    void *ud, struct post_async **out, struct tikd_err *e);
void post_plan_cancel(struct post_async *a);

/* What the rules decided about a job before its init (before_publish). */
struct post_decision {
    bool cancel;  /* cancel the job, with reason */
    double defer; /* > 0: try again in so many seconds, with reason */
    char reason[300];
    char *caption;       /* a new caption (owned by the decider), or NULL */
    char privacy[32];    /* a new privacy level (direct posts), or "" */
    char chosen_by[160]; /* who decided: "rule:FILE@genN" */
    char libs[200];      /* the shared libraries that rule file loaded (name@version,...) */
};

enum post_verdict {
    POST_GO,        /* nothing changed: on to the init */
    POST_CHANGED,   /* caption or privacy changed (and checked again): on to the init */
    POST_CANCELLED, /* j is cancelled, with the reason */
    POST_DEFERRED,  /* j is deferred until now + d->defer, with the reason */
    POST_INVALID,   /* the change made the post invalid: why says how (j is not valid) */
};

/* Apply the rules' decision to j as the pipeline does before an init (and
 * `tikd rules test` does to show it): state, reason and due time for a
 * cancel or defer; caption, privacy and who chose for a change, which is
 * then checked as a planned post is. The caller saves j. */
enum post_verdict post_decide(struct job *j, const struct post_decision *d, double now, char *why,
                              size_t n);

enum post_change { POST_CANCEL, POST_RETRY, POST_APPROVE, POST_REJECT };

/* What a change found out, for the caller to act on. */
struct post_changed {
    bool pulling;        /* cancelled while TikTok pulls it: it may be called back at TikTok */
    char publish_id[80]; /* ... this one */
    char account[65];
    char msg[400]; /* "job 7 cancelled", or why it cannot be changed */
};

/* Change job id as the operator (actor: "operator", later an admin user)
 * asked, in t: the job, its budgets and slots, and an audit record. 0, or
 * TIKD_ENOTFOUND / TIKD_EINVAL with out->msg. */
int post_change(struct store_txn *t, const struct rl_config *c, uint64_t id, enum post_change what,
                const char *actor, struct post_changed *out);

/* Cancel every job of account that is not final (the account is being
 * removed), in t, as post_change does; *n counts them. */
int post_cancel_account(struct store_txn *t, const struct rl_config *c, const char *account,
                        const char *actor, int *n);

#endif
