/* pipeline.h - the job state machine: it takes jobs from the due index and
 * moves each through pre-flight, init, chunked upload and status polling to
 * a final state, one LMDB transaction per step (see job.h).
 *
 * One ev_timer follows the earliest due entry; no polling loop. A step that
 * is interrupted (crash, kill -9) is run again from the last committed
 * state: an upload resumes after asking TikTok how many bytes it has. At most
 * max_active jobs are worked at once. Single-threaded, on the loop. */
#ifndef TIKD_PIPELINE_H
#define TIKD_PIPELINE_H

#include "err.h"
#include "http.h"
#include "job.h"
#include "oauth.h"
#include "post.h"
#include "ratelimit.h"
#include "store.h"
#include "tiktok.h"

struct ev_loop;
struct pipeline;

struct pipeline_cfg {
    const char *api_url;
    int max_active;               /* jobs worked at once (8) */
    double poll_first, poll_max;  /* status polling backoff (2 s doubling to 30 s) */
    double processing_timeout;    /* a job never sits in processing longer (1800 s) */
    double post_id_wait;          /* a public post asks for its post id this long (0: never) */
    double unsure_wait;           /* an unsure pull waits this long for TikTok to say (7200 s) */
    int max_inits;                /* inits per job, after TikTok reported a retryable failure (3) */
    struct rl_config limits;      /* TikTok's budgets: a job that would exceed one waits */
    const char *media_public_url; /* where local images are served for TikTok (may be NULL) */
    double media_url_ttl;         /* how long such a URL works at most (3600 s) */
    bool check_urls;              /* fetch the head of each photo URL and check it first */
    double probe_retry;           /* a media probe that could not run: tried again after (60 s) */
};

/* A job reached a final state (published, in_inbox, failed, cancelled). */
typedef void (*pipeline_outcome_fn)(void *ud, const struct job *j);

int pipeline_new(struct pipeline **out, struct ev_loop *loop, struct store *s, struct oauth *o,
                 struct http *h, const struct pipeline_cfg *c, struct tikd_err *e);
/* Stops working jobs; what they did so far is committed, the rest resumes at
 * the next start. Free the OAuth layer first (its callbacks stop). */
void pipeline_free(struct pipeline *p);
void pipeline_on_outcome(struct pipeline *p, pipeline_outcome_fn fn, void *ud);
/* Any save of a job the pipeline committed (its state, progress or reason
 * changed): for the admin API's event stream. */
void pipeline_on_change(struct pipeline *p, pipeline_outcome_fn fn, void *ud);
/* A video's bytes going out: done of total (all chunks), a few times a second. */
typedef void (*pipeline_progress_fn)(void *ud, const char *account, uint64_t job, uint64_t done,
                                     uint64_t total);
void pipeline_on_progress(struct pipeline *p, pipeline_progress_fn fn, void *ud);

/* The rules' answer (core/post.h), once: the pipeline applies it and goes
 * on. */
typedef void (*pipeline_decided_fn)(void *token, const struct post_decision *d);

/* Ask about job j before its init; c is the creator as creator_info
 * describes them now. Call done(token, decision) exactly once, now or later
 * from the loop. */
typedef void (*pipeline_before_fn)(void *ud, const struct job *j, const struct tt_creator *c,
                                   pipeline_decided_fn done, void *token);
void pipeline_on_before(struct pipeline *p, pipeline_before_fn fn, void *ud);

/* Shutting down: no run starts, and a run whose answer arrives from now on
 * (TikTok's, or the rules' before_publish, which ends early once the rules
 * stop) ends without a step: the job resumes from its committed state at the
 * next start. */
void pipeline_stop(struct pipeline *p);

/* Look at the due index again (new jobs, a restart, an operator's change). */
void pipeline_kick(struct pipeline *p);

/* A cluster (core/cluster): held(ud, account) is nonzero while this node
 * may act for the account. A job of an account it does not hold is not
 * worked: it waits, unchanged in the store, until pipeline_held(). NULL:
 * every account (a single node). */
void pipeline_set_owner(struct pipeline *p, uint64_t (*held)(void *ud, const char *account),
                        void *ud);
/* This node was granted an account's lease: the waiting jobs look again. */
void pipeline_held(struct pipeline *p);

/* Why the database refuses the pipeline's writes (a full disk or map), or
 * NULL while it takes them. */
const char *pipeline_trouble(const struct pipeline *p);

/* The database lost a group of writes at its commit (core/store
 * store_sync): the pipeline holds back as for a refused write. */
void pipeline_store_lost(struct pipeline *p, int rc, const char *why);

/* A group of writes became durable: the store takes writes again. */
void pipeline_store_synced(struct pipeline *p);

/* Jobs being worked now. */
size_t pipeline_active(const struct pipeline *p);

#endif
