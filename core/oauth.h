/* oauth.h - TikTok Login Kit v2: connecting accounts and keeping their
 * tokens alive (spec §1).
 *
 * Connecting: oauth_begin() stores a single-use state (32 random bytes,
 * base64url, kept as its SHA-256 with the account and the PKCE verifier
 * sealed in the vault) and returns the authorize URL; oauth_complete() takes
 * the redirect TikTok sent back (from tikd's callback page or pasted by an
 * operator), checks the state, exchanges the code and stores the tokens.
 *
 * Upkeep: lifetimes come from every response (expires_in,
 * refresh_expires_in), never from constants. oauth_sweep() refreshes tokens
 * that expire soon, a few accounts at a time; one refresh per account runs
 * at once, in this process (callers join it) and across processes (a lease
 * in the store: with strict rotation, two concurrent refreshes would kill
 * each other's token); a rotated refresh token is stored in the same
 * transaction as the new access token. oauth_request() makes an API call for
 * an account: the token is added inside C, and a 401 access_token_invalid is
 * answered by a newer stored token, else one refresh, then one retry.
 *
 * Tokens never leave C: they are read from the vault for one request,
 * registered with the log's redaction, and wiped after use. */
#ifndef TIKD_OAUTH_H
#define TIKD_OAUTH_H

#include "account.h"
#include "err.h"
#include "http.h"
#include "store.h"
#include "vault.h"

#include <stdbool.h>

struct ev_loop;
struct srv_req;

struct oauth_cfg {
    struct ev_loop *loop; /* for waiting on another process's refresh */
    const char *client_key, *client_secret;
    const char *auth_url, *api_url, *redirect_uri;
    const char *scopes;   /* default scopes to ask for */
    bool pkce;            /* send a PKCE challenge (TikTok's hex S256, spec §1.3) */
    double state_ttl;     /* seconds an authorization may take (1800) */
    double refresh_ahead; /* refresh when the access token has less than this left */
    int max_refreshes;    /* refreshes in flight at once during a sweep */
};

struct oauth;

/* done(ud, rc, account, message): rc 0 on success; message says what
 * happened (for an operator), never holds a secret. */
typedef void (*oauth_done_fn)(void *ud, int rc, const char *account, const char *msg);

/* Account state changes (needs_reauth, revoked, and active again after a
 * connect) are reported here, for the rules' on_account hook, for logs, and
 * for the jobs a lost grant paused. */
typedef void (*oauth_state_fn)(void *ud, const struct account *a);

int oauth_new(struct oauth **out, struct store *s, struct vault *v, struct http *h,
              const struct oauth_cfg *c, struct tikd_err *e);
/* Cancels refreshes and requests in flight (their callbacks do not run). */
void oauth_free(struct oauth *o);
void oauth_on_state(struct oauth *o, oauth_state_fn fn, void *ud);

/* A cluster (core/cluster): held(ud, name) is nonzero while this node may
 * act for the account. Requests and refreshes for one it does not hold are
 * refused (TIKD_ENOTHELD) and the sweep passes it by; the HTTP client's
 * admit check (http_set_admit) guards each attempt. NULL: every account. */
void oauth_set_owner(struct oauth *o, uint64_t (*held)(void *ud, const char *name), void *ud);

/* Start connecting account `name` (created as pending if new; an existing
 * account needs reauth = true). scopes NULL: the configured ones. *url is
 * the authorize URL to open, malloc'd. */
int oauth_begin(struct oauth *o, const char *name, const char *scopes, bool reauth, char **url,
                struct tikd_err *e);
/* The same, on the record as actor ("token:NAME" for the admin API), for
 * tenant (NULL: the operator's, any account): a new account belongs to it,
 * and an account of another tenant is one that does not exist. */
int oauth_begin_as(struct oauth *o, const char *name, const char *scopes, bool reauth,
                   const char *actor, const char *tenant, char **url, struct tikd_err *e);

/* Finish from a redirect (a full URL or its query string). expect_name is
 * the account the operator means (NULL from the callback page: the state
 * says). A missing, unknown, used, expired or other-account state, or an
 * error from TikTok, fails at once with nothing changed (but an audit
 * record); otherwise the code is exchanged and done runs later. */
int oauth_complete(struct oauth *o, const char *redirect, const char *expect_name,
                   oauth_done_fn done, void *ud, struct tikd_err *e);

/* The callback page (GET on the redirect URI's path, from core/server):
 * completes the authorization from the request's query and answers r with
 * an HTML page when the exchange ends (200 connected, 400 not, saying why).
 * o keeps the waiting pages; free o before the server: a page still waiting
 * at oauth_free() is not answered, and server_free() answers it 503. */
void oauth_serve_callback(struct oauth *o, struct srv_req *r);

/* Refresh account `name` now, or join the refresh in flight. done runs
 * when it ends; if nothing could be started (unknown or inactive account,
 * or TIKD_EFULL: TikTok's Retry-After, or the backoff after a failed
 * refresh, has not passed) the error is returned and done never runs. */
int oauth_refresh(struct oauth *o, const char *name, oauth_done_fn done, void *ud);

/* Refresh every active account whose access token expires within its
 * window, at most max_refreshes at a time. Returns how many were due. */
size_t oauth_sweep(struct oauth *o);

/* Revoke the account's grant at TikTok (best effort), then delete its
 * tokens and its record. */
int oauth_remove(struct oauth *o, const char *name, oauth_done_fn done, void *ud,
                 struct tikd_err *e);

/* Mark the account with this open_id (or name) revoked or needs_reauth,
 * e.g. from an authorization.removed webhook. TIKD_ENOTFOUND if unknown. */
int oauth_mark(struct oauth *o, const char *open_id_or_name, enum acct_state st, const char *reason,
               struct tikd_err *e);

/* An API request on behalf of account `name`: Authorization is added here
 * from the vault. The response goes to done as from http_request(). */
int oauth_request(struct oauth *o, const char *name, const struct http_req *req, http_done_fn done,
                  void *ud, struct tikd_err *e);

/* Operations in flight (refreshes, exchanges, requests). */
size_t oauth_in_flight(const struct oauth *o);

#endif
