/* oauth_request.c - API requests on behalf of an account: oauth_request()
 * adds the access token inside C (TikTok's API calls: core/tiktok tt_send).
 *
 * The op keeps its own copy of the caller's request, to send it again: a
 * 401 access_token_invalid is answered by a newer stored token (a refresh
 * elsewhere), else by one refresh, then one retry. A token about to expire
 * is refreshed first. done runs once, unless oauth_request() fails or
 * oauth_free() comes first. */
#include "oauth_int.h"
#include "clock.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int send_with_token(struct op *op, const char *token);

static void request_refreshed(void *ud, int rc, const char *account, const char *msg)
{
    (void)account;
    struct op *op = ud;
    struct oauth *o = op->o;
    struct read_acct ra = {.name = op->name, .o = o, .want_access = true};
    if (rc == 0 && store_read(o->s, oauth_read_acct_txn, &ra, NULL) == 0 && ra.access &&
        send_with_token(op, ra.access) == 0) {
        oauth_read_acct_free(&ra);
        return;
    }
    oauth_read_acct_free(&ra);
    struct http_resp r = {.attempts = op->tries};
    /* an account still active only failed to refresh for now (a 5xx, no
     * answer): the request waits out the refresh's backoff, it does not
     * wait for a reconnect */
    struct read_acct now = {.name = op->name, .o = o};
    bool active =
        store_read(o->s, oauth_read_acct_txn, &now, NULL) == 0 && now.a.state == ACCT_ACTIVE;
    double held = active ? oauth_refresh_held(o, now.a.id) : 0;
    oauth_read_acct_free(&now);
    r.out.action = active ? POL_DEFER : POL_REAUTH;
    r.out.unsent = true;
    if (active)
        r.out.retry_after = held > clock_now() ? held - clock_now() + 0.05 : 30;
    snprintf(r.out.code, sizeof r.out.code, "access_token_invalid");
    snprintf(r.out.message, sizeof r.out.message, "the access token of %s could not be renewed: %s",
             op->name, msg ? msg : "");
    http_done_fn done = op->req_done;
    void *dud = op->req_ud;
    oauth_op_free(op);
    done(dud, &r);
}

static void request_done(void *ud, const struct http_resp *r)
{
    struct op *op = ud;
    struct oauth *o = op->o;
    op->x = NULL;
    if (r->out.action == POL_REAUTH && strcmp(r->out.code, "access_token_invalid") == 0 &&
        op->tries < 2) {
        /* a newer token saved meanwhile (a refresh elsewhere)? use it;
         * otherwise refresh once, then retry once */
        struct read_acct ra = {.name = op->name, .o = o, .want_access = true};
        bool newer = store_read(o->s, oauth_read_acct_txn, &ra, NULL) == 0 && ra.access &&
                     op->secret && strcmp(ra.access, op->secret) != 0;
        if (newer && send_with_token(op, ra.access) == 0) {
            oauth_read_acct_free(&ra);
            return;
        }
        oauth_read_acct_free(&ra);
        op->tries = 2; /* one refresh at most */
        if (oauth_refresh(o, op->name, request_refreshed, op) == 0)
            return;
    }
    http_done_fn done = op->req_done;
    void *dud = op->req_ud;
    /* the body stays valid during the callback; free the op afterwards */
    op->kind = OP_REQUEST;
    done(dud, r);
    oauth_op_free(op);
}

static int send_with_token(struct op *op, const char *token)
{
    oauth_wipe_free(op->secret);
    op->secret = strdup(token);
    if (!op->secret)
        return TIKD_ENOMEM;
    op->tries++;
    struct http_req req = op->req;
    req.bearer = token;
    req.owner = op->name;
    struct tikd_err e = {0};
    return http_request(op->o->h, &req, request_done, op, &op->x, &e);
}

int oauth_request(struct oauth *o, const char *name, const struct http_req *req, http_done_fn done,
                  void *ud, struct tikd_err *e)
{
    if (req->body_file)
        return tikd_fail(e, TIKD_EINVAL,
                         "oauth_request: file bodies go to upload URLs, which "
                         "carry their own token");
    if (!oauth_holds(o, name)) {
        tikd_fail(e, TIKD_ENOTHELD, "account %s: this node does not hold its lease now", name);
        if (e)
            e->retry_at = clock_now() + 5; /* about a renewal round: then it may */
        return TIKD_ENOTHELD;
    }
    struct read_acct ra = {.name = name, .o = o, .want_access = true, .e = e};
    int rc = store_read(o->s, oauth_read_acct_txn, &ra, e);
    if (rc == TIKD_ENOTFOUND && !ra.a.id[0])
        return tikd_fail(e, rc, "no account named %s", name);
    if (rc == 0 && ra.a.state != ACCT_ACTIVE) {
        oauth_read_acct_free(&ra);
        return tikd_fail(e, TIKD_EINVAL,
                         "account %s is %s%s%s: connect it again with `tikd "
                         "account reauth %s`",
                         name, account_state_name(ra.a.state), ra.a.reason[0] ? ": " : "",
                         ra.a.reason, name);
    }
    if (rc != 0 || !ra.access) {
        oauth_read_acct_free(&ra);
        return rc ? rc : tikd_fail(e, TIKD_ENOTFOUND, "account %s has no token", name);
    }
    struct op *op = oauth_op_new(o, OP_REQUEST, name);
    if (!op) {
        oauth_read_acct_free(&ra);
        return tikd_fail(e, TIKD_ENOMEM, "oauth: out of memory");
    }
    /* every use of a token is on the record (which account, for what) */
    char detail[400];
    const char *path = strstr(req->url, "://");
    path = path ? strchr(path + 3, '/') : NULL;
    snprintf(detail, sizeof detail, "account=%s request=\"%s %.200s\"", name,
             req->method ? req->method : "GET", path ? path : req->url);
    oauth_audit_now(o, "token.access", detail);
    op->req = *req;
    op->req_done = done;
    op->req_ud = ud;
    op->url = strdup(req->url);
    op->method = strdup(req->method ? req->method : "GET");
    op->req.url = op->url;
    op->req.method = op->method;
    if (req->body_len) {
        op->body = malloc(req->body_len);
        if (op->body)
            memcpy(op->body, req->body, req->body_len);
        op->req.body = op->body;
    }
    op->hdrs = calloc(req->nheaders + 1, sizeof *op->hdrs);
    for (size_t i = 0; op->hdrs && i < req->nheaders; i++) {
        op->hdrs[i].name = strdup(req->headers[i].name);
        op->hdrs[i].value = strdup(req->headers[i].value);
    }
    op->req.headers = op->hdrs;
    op->req.tiktok = true;
    /* about to expire: refresh first (same window as the sweep, so short-
     * lived test tokens are not refreshed on every request) */
    double window =
        ra.a.access_lifetime > 0 && ra.a.access_lifetime / 4 < 60 ? ra.a.access_lifetime / 4 : 60;
    bool refresh_first = ra.a.access_expires_at - clock_now() < window;
    rc = !op->url || !op->method || !op->hdrs || (req->body_len && !op->body) ? TIKD_ENOMEM : 0;
    double held = rc == 0 && refresh_first ? oauth_refresh_held(o, ra.a.id) : 0;
    if (held && ra.a.access_expires_at > clock_now() + 1) {
        refresh_first = false; /* the refresh must wait, but the token still works */
        held = 0;
    }
    if (held) {
        rc = tikd_fail(e, TIKD_EFULL,
                       "oauth: account %s: its token expired and the next refresh must wait "
                       "%.0f s (TikTok's Retry-After, or the backoff after a failed refresh)",
                       name, held - clock_now());
        if (e)
            e->retry_at = held;
    } else if (rc == 0 && refresh_first) {
        op->tries = 2; /* the refresh counts as the one allowed */
        rc = oauth_refresh(o, name, request_refreshed, op);
    } else if (rc == 0) {
        rc = send_with_token(op, ra.access);
    }
    oauth_read_acct_free(&ra);
    if (rc != 0) {
        oauth_op_free(op);
        return held ? rc : tikd_fail(e, rc, "oauth: cannot start the request");
    }
    return 0;
}
