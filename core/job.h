/* job.h - a job is one post to one account, and every state it goes
 * through is one LMDB transaction.
 *
 *   (awaiting_approval ->) scheduled -> preflight -> uploading -> processing
 *       -> published | in_inbox
 *   any non-final state -> deferred (why, and when to try again) | failed |
 *   cancelled
 *   a pull's init that may have reached TikTok unanswered -> unsure (never
 *   sent again; TikTok's webhooks or the creator's public posts say what became
 *   of it, or the operator does once unsure_wait passed)
 *
 * publish_id, upload_url and the chunk plan are written in the transaction
 * that enters `uploading`, before the first byte is sent; a job with a
 * publish_id is never initialised again unless TikTok reported that publish
 * failed. Every job that is not final has exactly one entry in the due index
 * (when the pipeline must look at it next), which is what the pipeline's one
 * timer follows; so has a published one still asking TikTok for its public
 * post id (watch_until). Every job records who chose its privacy and settings.
 * Jobs are planned through core/post (the checks, the content ledger,
 * slots); this is their record layer, with an index by account, by video
 * content and by publish_id kept in the same transactions. */
#ifndef TIKD_JOB_H
#define TIKD_JOB_H

#include "err.h"
#include "media.h"
#include "store.h"
#include "upload.h"

#include <stdbool.h>
#include <stdint.h>

enum job_state {
    JOB_SCHEDULED, /* 0: a zeroed job is a scheduled one */
    JOB_PREFLIGHT,
    JOB_UPLOADING,
    JOB_PROCESSING,
    JOB_DEFERRED,
    JOB_PUBLISHED,
    JOB_IN_INBOX,
    JOB_FAILED,
    JOB_CANCELLED,
    JOB_AWAITING_APPROVAL, /* waits for `tikd job approve`, until its deadline */
    JOB_UNSURE,            /* a pull TikTok may have taken: waits for TikTok to say, until
                            * watch_until */
};

enum job_mode { JOB_DIRECT, JOB_DRAFT };
enum job_kind { JOB_VIDEO, JOB_PHOTO };

#define JOB_IMAGES_MAX 35 /* spec §2.6 */

struct job_options {
    bool disable_comment, disable_duet, disable_stitch;
    bool brand_content, brand_organic, is_aigc;
    int cover_ms;        /* -1: TikTok's default (first frame) */
    bool auto_add_music; /* photos */
};

struct job {
    uint64_t id;
    char account[65];
    enum job_mode mode;
    enum job_kind kind;
    char media[1024];                  /* absolute path of the video, or its https URL */
    char media_hash[65];               /* SHA-256 of a local video's content, or "" */
    char images[JOB_IMAGES_MAX * 320]; /* photos: https URLs or local paths, one per line */
    int cover_index;                   /* photos: 0-based */
    char description[16400];           /* photos: up to 4000 UTF-16 units */
    char mime[24];                     /* its upload Content-Type, from the pre-flight probe */
    struct media_info probe;           /* a local video as the media probe read it when planned
                                        * (probe.probed), with the file's identity: the
                                        * pre-flight judges it again without reading it, unless
                                        * the file changed */
    char caption[9000];                /* a video's title; a photo post's title */
    char privacy[32];                  /* empty for drafts: the creator picks in the app */
    struct job_options opt;
    char chosen_by[160]; /* "operator", "rule:FILE@genN": who chose privacy and settings */
    char tenant[33];     /* its account's tenant when planned: whose rules hear of it */
    char libs[200];      /* the shared libraries (name@version, comma-separated) the rule
                          * file that chose had loaded, or "" */
    enum job_state state;
    char reason[600]; /* why it waits, or why it failed */
    double due_at, created_at, updated_at, processing_deadline;
    double planned_at;   /* when the post was planned for (due_at while it awaits approval is
                          * the approval deadline) */
    int attempts;        /* inits so far */
    double init_sent_at; /* a URL-pull init left: TikTok may have started it */
    double slot_at;      /* the budgets of its next init were spent for this moment */
    double spent_at;     /* the slot of the init in flight: its cap entries, given back if
                          * TikTok refuses it */
    double booked_slot;  /* the schedule slot booked for it (core/slots), or 0 */
    char publish_id[80];
    char upload_url[320];
    double upload_url_at;
    struct chunk_plan plan;
    uint32_t chunks_done;
    char post_ids[400]; /* TikTok's post ids, exact, comma-separated */
    double watch_until; /* published: TikTok is asked for the public post id until then;
                         * unsure: TikTok may say what became of the init until then */
    int orphans;        /* upload inits whose answer was lost: sessions TikTok may hold,
                         * never used, each counted against the creator's daily cap */
    char fail_reason[64];
    char log_id[80];
    char origin[80];     /* a cluster: "NODE:ID", the node that planned it and its id there,
                          * when that was another node; "" for a job planned here */
    double imported_at;  /* a cluster: when its record last came from Redis (core/replica);
                          * a run holding an older copy leaves the job alone */
    char key_scope[256]; /* planned under a key (tikd.upload.post{ key }): its scope, the rule */
    char key[130];       /* file, and the key; "" without one */
};

const char *job_state_name(enum job_state s);
bool job_state_final(enum job_state s);
/* TikTok pulls j's media from URLs (a photo post, a video by URL): its init
 * starts work at TikTok that a second init would repeat. */
bool job_is_pull(const struct job *j);
/* j is a pull whose init may have reached TikTok with no publish_id known
 * yet: in flight, or unsure. */
bool job_pull_unsettled(const struct job *j);
/* Add post id (decimal digits, kept as text: ids pass 2^53) to j->post_ids
 * unless it is there; 1 when it was added, 0 when not (there, or not an id). */
int job_add_post_id(struct job *j, const char *id);
/* Parse a state name; -1 if unknown. */
int job_state_parse(const char *name);

/* Store a new job (assigning j->id), its due and index entries and an
 * audit record (core/post checks it first).
 * j->state is JOB_SCHEDULED, or JOB_AWAITING_APPROVAL with due_at the
 * deadline and planned_at the moment to post once approved. */
int job_create(struct store_txn *t, struct job *j);

/* A job whose record came from another node of a cluster (core/replica):
 * written over the local job local_id (0: a new one, given the next id and
 * its index, due and count entries, and an audit record of the move). The
 * record keeps its state, times and progress; imported_at is set now. */
int job_import(struct store_txn *t, struct job *j, uint64_t local_id);

/* The local job planned on another node as origin ("NODE:ID"): 0 with its
 * id, or TIKD_ENOTFOUND. */
int job_find_origin(struct store_txn *t, const char *origin, uint64_t *id);

/* Read job id; TIKD_ENOTFOUND if there is none. */
int job_get(struct store_txn *t, uint64_t id, struct job *j);

/* Read job id in a read transaction of its own. */
int job_read(struct store *s, uint64_t id, struct job *j);

/* Write j (a change of state or progress), moving its due entry; final
 * states have none. Sets updated_at. */
int job_put(struct store_txn *t, struct job *j);
/* The same, when the caller read the stored record already (old, in this
 * transaction): a job record is not decoded twice per save. */
int job_put_over(struct store_txn *t, const struct job *old, struct job *j);

/* Every job in id order until fn returns non-zero. */
int job_foreach(struct store_txn *t, int (*fn)(const struct job *j, void *ctx), void *ctx);

/* The same, but a record that cannot be decoded is handed to bad (its id,
 * 0 when its key is not an id either) and the walk goes on; job_foreach
 * stops at it with TIKD_ECORRUPT. */
int job_foreach_all(struct store_txn *t, int (*fn)(const struct job *j, void *ctx),
                    void (*bad)(uint64_t id, void *ctx), void *ctx);

/* Every job of account, in id order, until fn returns non-zero (the job
 * index: no scan of other accounts' jobs). */
int job_foreach_account(struct store_txn *t, const char *account,
                        int (*fn)(const struct job *j, void *ctx), void *ctx);

/* The same for the jobs of account that are not final yet (the open index:
 * no walk of its finished ones). */
int job_foreach_account_open(struct store_txn *t, const char *account,
                             int (*fn)(const struct job *j, void *ctx), void *ctx);

/* The job of account with this video content (SHA-256 hex) that is not
 * failed or cancelled: 0 with its id (and state, which may be NULL), or
 * TIKD_ENOTFOUND. */
int job_find_content(struct store_txn *t, const char *account, const char *hash, uint64_t *id,
                     enum job_state *state);

/* The job whose current publish is publish_id: 0 with its id, or
 * TIKD_ENOTFOUND. */
int job_find_publish(struct store_txn *t, const char *publish_id, uint64_t *id);

/* Every job of account waiting to try again (deferred, or paused in
 * pre-flight, upload or processing) is due now: the account was connected
 * again, and the jobs its lost grant paused need not wait out their pause.
 * Planned times, approval deadlines and unsure jobs keep theirs. */
int job_wake_account(struct store_txn *t, const char *account);

/* 1 if some job ever held publish_id (its current one or a failed one
 * before it), 0 if none, or a store error. */
int job_publish_seen(struct store_txn *t, const char *publish_id);

/* Index every stored job (the schema step that brought the index). */
int job_index_build(struct store_txn *t);

/* How many jobs there are in each state, and the upload sessions lost
 * inits left at TikTok (orphans, and the jobs with any): kept by every
 * job_create() and job_put() in their transaction, so reading them costs
 * one lookup however many jobs the store holds. */
struct job_counts {
    uint64_t jobs;
    uint64_t by_state[16]; /* by enum job_state */
    uint64_t orphans, orphan_jobs;
};
int job_counts_get(struct store_txn *t, struct job_counts *c);

/* Index the open jobs of every account (the schema step that brought it). */
int job_open_index_build(struct store_txn *t);

/* Count every stored job (the schema step that brought the counts). */
int job_counts_build(struct store_txn *t);

/* The next due entry: 0 and (id, due), or TIKD_ENOTFOUND. */
int job_next_due(struct store_txn *t, uint64_t *id, double *due);

/* Every due entry up to `until`, in due order, until fn returns non-zero. */
int job_foreach_due(struct store_txn *t, double until,
                    int (*fn)(uint64_t id, double due, void *ctx), void *ctx);

#endif
