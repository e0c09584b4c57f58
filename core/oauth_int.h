/* oauth_int.h - what the oauth files share; included by core/oauth*.c only.
 *
 * oauth.c owns the instance and the life cycle of an `op`, one asynchronous
 * step (a code exchange, a refresh, a revocation, a request) in the list
 * oauth_free() cancels. oauth_connect.c, oauth_tokens.c and oauth_request.c
 * each own one concern of oauth.h. oauth_op_done() frees the op before its
 * waiters run, so a waiter may start another op (or join a refresh). */
#ifndef TIKD_OAUTH_INT_H
#define TIKD_OAUTH_INT_H

#include "oauth.h"
#include "runlock.h"

#include <ev.h>
#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#define WAITERS_MAX 16

struct codec_form;
struct oauth_page; /* a callback page waiting for its code exchange (oauth_connect.c) */

enum op_kind { OP_EXCHANGE, OP_REFRESH, OP_REVOKE, OP_REQUEST };

struct waiter {
    oauth_done_fn done;
    void *ud;
};

struct op {
    struct oauth *o;
    enum op_kind kind;
    char name[ACCT_NAME_MAX + 1];
    char account_id[33];
    char *secret; /* the refresh or access token this op sent (wiped) */
    struct waiter w[WAITERS_MAX];
    int nw;
    struct http_xfer *x;
    /* OP_REQUEST: the caller's request, to send again after a refresh */
    struct http_req req;
    char *url, *method, *body;
    struct http_header *hdrs;
    http_done_fn req_done;
    void *req_ud;
    int tries;
    /* OP_REFRESH: waiting for another process's refresh */
    ev_timer wait;
    double seen_expiry;
    struct op *prev, *next;
};

/* A refresh TikTok refused for now: none is sent for the account before
 * `until` (its Retry-After, or a backoff doubling per failure). */
struct refresh_hold {
    char account_id[40];
    double until, backoff;
};

struct oauth {
    struct oauth_cfg c;
    char *strs[6];
    struct store *s;
    struct vault *v;
    struct http *h;
    struct op *ops;
    size_t nops;
    char **queue; /* sweep: names waiting for a refresh slot */
    size_t nq, qcap;
    int refreshing;
    oauth_state_fn on_state;
    void *on_state_ud;
    unsigned char owner[16]; /* this instance, in refresh leases */
    struct proc_id self;     /* this process, in refresh leases: a dead owner is seen */
    ev_timer resweep;        /* a sweep soon: a lost refresh answer is tried again */
    double resweep_at;
    struct refresh_hold *holds; /* accounts whose refresh must wait (Retry-After, backoff) */
    size_t nholds, capholds;
    struct oauth_page *pages; /* callback pages waiting for an answer */
    /* refused callbacks that name no authorization tikd started: counted,
     * audited once a minute (oauth_connect.c) */
    unsigned long anon_n[3];
    double anon_since;
    ev_timer anon_timer;
    uint64_t (*held)(void *ud, const char *name); /* a cluster's leases, or NULL */
    void *held_ud;
};

/* May this node act for account name now (a cluster's lease; always without one)? */
bool oauth_holds(const struct oauth *o, const char *name);

/* Audit a refused callback; the ones that name no authorization tikd
 * started are aggregated (oauth_connect.c). oauth_refusals_flush writes
 * what was counted. */
void oauth_refusal(struct oauth *o, const char *reason, const char *detail);
void oauth_refusals_flush(struct oauth *o);

/* When the account's next refresh may go (0: now); oauth_tokens.c. */
double oauth_refresh_held(struct oauth *o, const char *account_id);

/* ---- oauth.c: shared helpers and the op life cycle ---------------------- */

/* Wipe a NUL-terminated secret, then free it (NULL is fine). */
void oauth_wipe_free(char *p);

/* Append an audit record in a transaction of its own; a failure is logged. */
void oauth_audit_now(struct oauth *o, const char *event, const char *detail);

/* A new op of kind k for account name, linked into o's list; NULL out of
 * memory. */
struct op *oauth_op_new(struct oauth *o, enum op_kind k, const char *name);
/* Unlink and free an op, cancelling its transfer and timer; its waiters are
 * not told. */
void oauth_op_free(struct op *op);
/* Finish an op: free it, then tell every waiter (rc, msg). A finished
 * refresh lets the sweep's queue start the next one. */
void oauth_op_done(struct op *op, int rc, const char *msg);

/* POST the form f to api_url + path (a token endpoint) for op, answered in
 * cb(op, ...); the transfer is op->x. Not retried once it may have been
 * sent. 0 or an error (cb never runs). */
int oauth_post_token_form(struct op *op, struct codec_form *f, http_done_fn cb, const char *path);

/* An account record and, when asked, its tokens opened from the vault. */
struct read_acct {
    const char *name;
    struct account a;
    struct oauth *o;
    char *refresh, *access; /* sealed tokens, opened on request */
    size_t refresh_n, access_n;
    bool want_refresh, want_access;
    struct tikd_err *e;
};

/* store_read() callback filling a struct read_acct. */
int oauth_read_acct_txn(struct store_txn *t, void *ctx);
/* Wipe and free the tokens read (the record stays). */
void oauth_read_acct_free(struct read_acct *r);

/* ---- oauth_tokens.c: the token response ---------------------------------- */

struct grant {
    const char *access, *refresh, *open_id, *scope;
    double expires_in, refresh_expires_in;
};

/* Check a token endpoint body (spec §1.5): every field present and typed.
 * g points into the JSON document returned, which the caller json_decref()s;
 * NULL with why filled. */
json_t *oauth_parse_grant(const char *body, size_t n, struct grant *g, char *why, size_t wn);

/* Store a grant for the account (name, account_id) in one transaction,
 * audited as event; 0 or an error in e. Registers the new tokens as log
 * secrets and forgets the replaced ones. */
int oauth_save_grant(struct oauth *o, const char *name, const char *account_id,
                     const struct grant *g, const char *event, struct tikd_err *e);

/* ---- oauth_connect.c: the callback page ---------------------------------- */

/* Forget the pages still waiting (oauth_free): they are not answered here;
 * the server answers them (503) when it is freed. */
void oauth_pages_free(struct oauth *o);

#endif
