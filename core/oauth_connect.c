/* oauth_connect.c - connecting an account (spec §1): oauth_begin() stores
 * a single-use state and returns the authorize URL; oauth_complete() spends
 * the state, exchanges the code and stores the grant; oauth_serve_callback()
 * is the page TikTok's redirect lands on, answered when the exchange ends.
 *
 * A state is kept only as its SHA-256 (the key in STORE_DB_OAUTH), with the
 * PKCE verifier sealed in the vault under "oauth:<hash>". A completion for
 * its own account deletes it, whatever happens next: it is never used twice. */
#include "oauth_int.h"
#include "audit.h"
#include "clock.h"
#include "log.h"
#include "codec.h"
#include "server.h"
#include "tiktok.h"

#include <openssl/crypto.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define STATE_BYTES  32
#define VERIFIER_LEN 64

/* ---- begin ------------------------------------------------------------------ */

struct begin_ctx {
    struct oauth *o;
    const char *name, *scopes;
    bool reauth;
    const char *actor, *tenant;
    unsigned char hash[32];
    const char *verifier;
    struct tikd_err *e;
};

static int begin_txn(struct store_txn *t, void *ctx)
{
    struct begin_ctx *b = ctx;
    struct oauth *o = b->o;
    struct account a;
    int rc = account_get(t, b->name, &a);
    double now = clock_now();
    if (rc == 0 && !account_in_tenant(&a, b->tenant))
        rc = b->reauth ? TIKD_ENOTFOUND : rc; /* another tenant's: no oracle for a reauth */
    if (rc == 0 && !b->reauth && !account_in_tenant(&a, b->tenant))
        return tikd_fail(b->e, TIKD_EEXIST, "account %s already exists", b->name);
    if (rc == TIKD_ENOTFOUND) {
        if (b->reauth)
            return tikd_fail(b->e, TIKD_ENOTFOUND,
                             "no account named %s (use `tikd account add %s`)", b->name, b->name);
        account_init(&a, b->name, now);
        snprintf(a.tenant, sizeof a.tenant, "%s", b->tenant ? b->tenant : "");
        rc = account_put(t, &a);
    } else if (rc == 0 && !b->reauth && a.state != ACCT_PENDING) {
        return tikd_fail(b->e, TIKD_EEXIST,
                         "account %s already exists (%s); use `tikd account reauth %s` to connect "
                         "it again",
                         b->name, account_state_name(a.state), b->name);
    }
    if (rc != 0)
        return rc;
    char owner[80], hx[65];
    codec_hex(b->hash, 32, hx);
    snprintf(owner, sizeof owner, "oauth:%s", hx);
    if (b->verifier) {
        rc = vault_put(o->v, t, owner, "pkce_verifier", b->verifier, strlen(b->verifier), b->e);
        if (rc != 0)
            return rc;
    }
    json_t *rec = json_pack("{s:s, s:s, s:s, s:f, s:b}", "account", a.name, "account_id", a.id,
                            "scopes", b->scopes, "created_at", now, "pkce", b->verifier != NULL);
    char *js = rec ? json_dumps(rec, JSON_COMPACT | JSON_REAL_PRECISION(17)) : NULL;
    json_decref(rec);
    if (!js)
        return TIKD_ENOMEM;
    rc = store_put(t, STORE_DB_OAUTH, b->hash, 32, js, strlen(js));
    free(js);
    char detail[300];
    snprintf(detail, sizeof detail, "account=%s scopes=%s pkce=%s reauth=%s tenant=%s", a.name,
             b->scopes, b->verifier ? "yes" : "no", b->reauth ? "yes" : "no",
             a.tenant[0] ? a.tenant : "-");
    return rc ? rc : audit_append(t, b->actor, "oauth.begin", detail);
}

int oauth_begin(struct oauth *o, const char *name, const char *scopes, bool reauth, char **url,
                struct tikd_err *e)
{
    return oauth_begin_as(o, name, scopes, reauth, "operator", NULL, url, e);
}

int oauth_begin_as(struct oauth *o, const char *name, const char *scopes, bool reauth,
                   const char *actor, const char *tenant, char **url, struct tikd_err *e)
{
    *url = NULL;
    if (!account_name_valid(name))
        return tikd_fail(e, TIKD_EINVAL,
                         "invalid account name '%s': use 1-64 letters, digits, '.', '_' or '-'",
                         name);
    if (!o->c.client_key || !o->c.redirect_uri)
        return tikd_fail(e, TIKD_EINVAL,
                         "tiktok.client_key and tiktok.redirect_uri must be configured to connect "
                         "accounts");
    if (!scopes)
        scopes = o->c.scopes;
    for (const char *p = scopes; *p; p++)
        if (!((*p >= 'a' && *p <= 'z') || *p == '.' || *p == ',' || *p == '_'))
            return tikd_fail(e, TIKD_EINVAL,
                             "invalid scopes '%s': expected e.g. "
                             "user.info.basic,video.publish",
                             scopes);
    unsigned char raw[STATE_BYTES];
    char state[64], verifier[VERIFIER_LEN + 1], challenge[65];
    if (RAND_bytes(raw, sizeof raw) != 1)
        return tikd_fail(e, TIKD_EIO, "oauth: no randomness");
    codec_b64url(raw, sizeof raw, state);
    struct begin_ctx b = {o, name, scopes, reauth, actor, tenant, {0}, NULL, e};
    codec_sha256(state, strlen(state), b.hash);
    if (o->c.pkce) {
        /* 64 characters of [A-Za-z0-9-_] (spec §1.3: 43-128 unreserved) */
        unsigned char vr[48];
        RAND_bytes(vr, sizeof vr);
        codec_b64url(vr, sizeof vr, verifier);
        OPENSSL_cleanse(vr, sizeof vr);
        unsigned char d[32];
        codec_sha256(verifier, strlen(verifier), d);
        codec_hex(d, 32, challenge); /* TikTok's quirk: lowercase hex, not base64url */
        b.verifier = verifier;
    }
    int rc = store_write(o->s, begin_txn, &b, e);
    OPENSSL_cleanse(verifier, sizeof verifier);
    if (rc != 0) {
        OPENSSL_cleanse(state, sizeof state);
        return rc;
    }
    struct codec_form f = {0};
    int bad = codec_form_add(&f, "client_key", o->c.client_key) ||
              codec_form_add(&f, "scope", scopes) || codec_form_add(&f, "response_type", "code") ||
              codec_form_add(&f, "redirect_uri", o->c.redirect_uri) ||
              codec_form_add(&f, "state", state);
    if (!bad && o->c.pkce)
        bad = codec_form_add(&f, "code_challenge", challenge) ||
              codec_form_add(&f, "code_challenge_method", "S256");
    OPENSSL_cleanse(state, sizeof state);
    if (bad) {
        codec_form_free(&f);
        return tikd_fail(e, TIKD_ENOMEM, "oauth: out of memory");
    }
    size_t n = strlen(o->c.auth_url) + f.n + 2;
    *url = malloc(n);
    if (*url)
        snprintf(*url, n, "%s%s%s", o->c.auth_url, strchr(o->c.auth_url, '?') ? "&" : "?", f.p);
    codec_form_free(&f);
    return *url ? 0 : tikd_fail(e, TIKD_ENOMEM, "oauth: out of memory");
}

/* ---- complete ------------------------------------------------------------------ */

struct consume_ctx {
    struct oauth *o;
    const char *state, *expect_name, *tiktok_error, *tiktok_desc;
    char name[ACCT_NAME_MAX + 1], account_id[33];
    char *verifier;
    size_t verifier_n;
    const char *reject; /* short reason code for the audit record */
    struct tikd_err *e;
};

/* ---- refusals nobody started ------------------------------------------------------ */

/* A callback with no state, an unknown one or a malformed one names no
 * authorization tikd started: anyone can send it, a thousand a second. The
 * first of a minute is an audit record of its own; the rest of that minute
 * are counted and written as one record when it ends (or tikd stops), so
 * the audit log stays readable and cannot be flooded. */
#define ANON_WINDOW 60.0

static const char *const anon_reasons[] = {"missing_state", "unknown_state", "corrupt_state"};

void oauth_refusals_flush(struct oauth *o)
{
    unsigned long n = o->anon_n[0] + o->anon_n[1] + o->anon_n[2];
    if (n) {
        char detail[300];
        snprintf(detail, sizeof detail,
                 "reason=unauthenticated_callbacks count=%lu missing_state=%lu "
                 "unknown_state=%lu corrupt_state=%lu window_s=%.0f",
                 n, o->anon_n[0], o->anon_n[1], o->anon_n[2], ANON_WINDOW);
        oauth_audit_now(o, "oauth.rejected", detail);
        TLOG(TLOG_WARN, "oauth.rejected_many", LINT("count", n), LDBL("window_s", ANON_WINDOW));
    }
    memset(o->anon_n, 0, sizeof o->anon_n);
}

static void on_anon_window(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)loop;
    (void)revents;
    struct oauth *o = w->data;
    oauth_refusals_flush(o);
    o->anon_since = 0;
}

void oauth_refusal(struct oauth *o, const char *reason, const char *detail)
{
    int kind = -1;
    for (int i = 0; i < 3; i++)
        if (reason && strcmp(reason, anon_reasons[i]) == 0)
            kind = i;
    double now = clock_now();
    if (kind < 0 || !o->anon_since || now - o->anon_since >= ANON_WINDOW) {
        if (kind >= 0) { /* the first of a window: on its own, and the window starts */
            oauth_refusals_flush(o);
            o->anon_since = now;
            if (o->c.loop) {
                ev_timer_stop(o->c.loop, &o->anon_timer);
                ev_timer_init(&o->anon_timer, on_anon_window, ANON_WINDOW, 0.);
                o->anon_timer.data = o;
                ev_timer_start(o->c.loop, &o->anon_timer);
            }
        }
        oauth_audit_now(o, "oauth.rejected", detail);
        return;
    }
    o->anon_n[kind]++;
}

static int consume_txn(struct store_txn *t, void *ctx)
{
    struct consume_ctx *c = ctx;
    struct oauth *o = c->o;
    unsigned char h[32];
    codec_sha256(c->state, strlen(c->state), h);
    struct store_val v;
    int rc = store_get(t, STORE_DB_OAUTH, h, 32, &v);
    if (rc == TIKD_ENOTFOUND) {
        c->reject = "unknown_state";
        return tikd_fail(c->e, TIKD_ENOTFOUND,
                         "this authorization is unknown or was already used (state not found): "
                         "start again with `tikd account add` or `reauth`");
    }
    if (rc != 0)
        return rc;
    json_error_t jerr;
    json_t *rec = json_loadb(v.p, v.n, 0, &jerr);
    const char *name = json_string_value(json_object_get(rec, "account"));
    const char *aid = json_string_value(json_object_get(rec, "account_id"));
    double created = json_number_value(json_object_get(rec, "created_at"));
    bool pkce = json_is_true(json_object_get(rec, "pkce"));
    if (!name || !aid) {
        json_decref(rec);
        c->reject = "corrupt_state";
        return tikd_fail(c->e, TIKD_ECORRUPT, "the stored authorization is malformed");
    }
    snprintf(c->name, sizeof c->name, "%s", name);
    snprintf(c->account_id, sizeof c->account_id, "%s", aid);
    json_decref(rec);
    if (c->expect_name && strcmp(c->expect_name, c->name) != 0) {
        c->reject = "other_account";
        return tikd_fail(c->e, TIKD_EINVAL,
                         "this authorization was started for account %s, not %s; nothing changed",
                         c->name, c->expect_name);
    }
    char owner[80], hx[65];
    codec_hex(h, 32, hx);
    snprintf(owner, sizeof owner, "oauth:%s", hx);
    /* single use: whatever happens next, this state is spent */
    rc = store_del(t, STORE_DB_OAUTH, h, 32);
    if (rc == 0 && pkce)
        rc = vault_get(o->v, t, owner, "pkce_verifier", &c->verifier, &c->verifier_n, c->e);
    if (rc == 0)
        rc = vault_del_owner(t, owner);
    if (rc != 0)
        return rc;
    char detail[400];
    if (clock_now() - created > o->c.state_ttl) {
        c->reject = "expired_state";
        snprintf(detail, sizeof detail, "account=%s reason=expired_state", c->name);
        audit_append(t, "oauth", "oauth.rejected", detail);
        tikd_fail(c->e, TIKD_EINVAL,
                  "this authorization expired (it must finish within %.0f minutes): start "
                  "again with `tikd account reauth %s`",
                  o->c.state_ttl / 60, c->name);
        return 1; /* commit the cleanup, report the error */
    }
    if (c->tiktok_error) {
        c->reject = "tiktok_error";
        snprintf(detail, sizeof detail, "account=%s reason=tiktok_error error=%.60s", c->name,
                 c->tiktok_error);
        audit_append(t, "oauth", "oauth.rejected", detail);
        tikd_fail(c->e, TIKD_EINVAL, "TikTok did not authorize account %s: %s%s%.200s", c->name,
                  c->tiktok_error, c->tiktok_desc ? ": " : "",
                  c->tiktok_desc ? c->tiktok_desc : "");
        return 1;
    }
    return 0;
}

/* store_write aborts on a non-zero return; consume needs "commit, then
 * fail" for a spent state, so it runs the function and commits itself. */
static int consume_commit(struct store_txn *t, void *ctx)
{
    struct consume_ctx *c = ctx;
    int rc = consume_txn(t, ctx);
    if (rc == 1) {
        c->reject = c->reject ? c->reject : "rejected";
        return 0; /* commit; the caller sees c->reject */
    }
    return rc;
}

static void exchange_done(void *ud, const struct http_resp *r)
{
    struct op *op = ud;
    struct oauth *o = op->o;
    op->x = NULL;
    char msg[700];
    int rc;
    struct grant g;
    json_t *doc = NULL;
    if (r->out.action != POL_OK) {
        snprintf(msg, sizeof msg, "the code exchange for account %s failed: %s (code %s%s%s)",
                 op->name, r->out.message, r->out.code, r->out.log_id[0] ? ", log_id " : "",
                 r->out.log_id);
        rc = TIKD_EINVAL;
    } else if (!(doc = oauth_parse_grant(r->body, r->body_len, &g, msg, sizeof msg))) {
        rc = TIKD_EINVAL;
    } else {
        struct tikd_err e = {0};
        rc = oauth_save_grant(o, op->name, op->account_id, &g, "oauth.connected", &e);
        if (rc == 0)
            snprintf(msg, sizeof msg,
                     "account %s connected: open_id %s, scopes %s; access token for %.0f s, "
                     "refresh token for %.0f days",
                     op->name, g.open_id, g.scope, g.expires_in, g.refresh_expires_in / 86400);
        else
            snprintf(msg, sizeof msg, "%s", e.msg);
    }
    json_decref(doc);
    if (rc != 0) {
        char detail[800];
        snprintf(detail, sizeof detail, "account=%s reason=exchange_failed code=%s log_id=%s",
                 op->name, r->out.code, r->out.log_id);
        oauth_audit_now(o, "oauth.rejected", detail);
        TLOG(TLOG_WARN, "oauth.exchange_failed", LSTR("account", op->name), LSTR("error", msg));
    }
    oauth_op_done(op, rc, msg);
}

int oauth_complete(struct oauth *o, const char *redirect, const char *expect_name,
                   oauth_done_fn done, void *ud, struct tikd_err *e)
{
    const char *q = strchr(redirect, '?');
    q = q ? q + 1 : redirect;
    char state[256], code[1024], err[128], desc[300];
    bool has_err = codec_query_param(q, "error", err, sizeof err);
    bool has_desc = codec_query_param(q, "error_description", desc, sizeof desc);
    if (!codec_query_param(q, "state", state, sizeof state) || !state[0]) {
        oauth_refusal(o, "missing_state", "reason=missing_state");
        return tikd_fail(e, TIKD_EINVAL, "the redirect has no state parameter; nothing changed");
    }
    struct consume_ctx c = {
        o,    state, expect_name, has_err ? err : NULL, has_desc ? desc : NULL, "", "", NULL, 0,
        NULL, e};
    int rc = store_write(o->s, consume_commit, &c, e);
    OPENSSL_cleanse(state, sizeof state);
    if (rc == 0 && c.reject)
        rc = TIKD_EINVAL; /* spent, audited, refused: e says why */
    if (rc == 0 && (!codec_query_param(q, "code", code, sizeof code) || !code[0])) {
        rc = tikd_fail(e, TIKD_EINVAL, "the redirect for account %s has no code", c.name);
        c.reject = "missing_code";
    }
    if (rc != 0) {
        if (c.reject && strcmp(c.reject, "expired_state") != 0 &&
            strcmp(c.reject, "tiktok_error") != 0) {
            char detail[300];
            snprintf(detail, sizeof detail, "account=%s reason=%s", c.name[0] ? c.name : "?",
                     c.reject);
            oauth_refusal(o, c.reject, detail);
        }
        vault_wipe_free(c.verifier, c.verifier_n);
        TLOG(TLOG_WARN, "oauth.rejected", LSTR("account", c.name), LSTR("reason", e->msg));
        return rc;
    }
    struct op *op = oauth_op_new(o, OP_EXCHANGE, c.name);
    struct codec_form f = {0};
    int bad = !op || codec_form_add(&f, "client_key", o->c.client_key) ||
              codec_form_add(&f, "client_secret", o->c.client_secret ? o->c.client_secret : "") ||
              codec_form_add(&f, "code", code) ||
              codec_form_add(&f, "grant_type", "authorization_code") ||
              codec_form_add(&f, "redirect_uri", o->c.redirect_uri) ||
              (c.verifier && codec_form_add(&f, "code_verifier", c.verifier));
    OPENSSL_cleanse(code, sizeof code);
    vault_wipe_free(c.verifier, c.verifier_n);
    if (!bad) {
        snprintf(op->account_id, sizeof op->account_id, "%s", c.account_id);
        op->w[op->nw++] = (struct waiter){done, ud};
        bad = oauth_post_token_form(op, &f, exchange_done, TT_PATH_TOKEN) != 0;
    }
    codec_form_free(&f);
    if (bad) {
        if (op)
            oauth_op_free(op);
        return tikd_fail(e, TIKD_ENOMEM, "oauth: cannot start the code exchange");
    }
    return 0;
}

/* ---- the callback page ---------------------------------------------------------- */

struct oauth_page { /* a callback page waiting for its code exchange */
    struct oauth *o;
    struct srv_req *r;
    struct oauth_page *next;
};

static void html_page(struct srv_req *r, int status, const char *title, const char *msg)
{
    char body[4096];
    size_t o = (size_t)snprintf(body, sizeof body,
                                "<!doctype html><html><head><meta charset=\"utf-8\"><title>tikd: "
                                "%s</title></head><body><h1>%s</h1><p>",
                                title, title);
    for (const char *p = msg; *p && o + 8 < sizeof body - 40; p++) {
        switch (*p) {
        case '<':
            o += (size_t)sprintf(body + o, "&lt;");
            break;
        case '>':
            o += (size_t)sprintf(body + o, "&gt;");
            break;
        case '&':
            o += (size_t)sprintf(body + o, "&amp;");
            break;
        case '"':
            o += (size_t)sprintf(body + o, "&quot;");
            break;
        default:
            body[o++] = *p;
        }
    }
    snprintf(body + o, sizeof body - o, "</p></body></html>\n");
    srv_respond(r, status, "text/html; charset=utf-8", body);
}

static void callback_done(void *ud, int rc, const char *account, const char *msg)
{
    (void)account;
    struct oauth_page *pg = ud, **pp = &pg->o->pages;
    while (*pp && *pp != pg)
        pp = &(*pp)->next;
    if (*pp)
        *pp = pg->next;
    html_page(pg->r, rc ? 400 : 200, rc ? "Account not connected" : "Account connected", msg);
    free(pg);
}

/* oauth_complete() never calls done before it returns (the exchange is a
 * transfer), so the page is listed only once it is known to wait. */
void oauth_serve_callback(struct oauth *o, struct srv_req *r)
{
    struct oauth_page *pg = calloc(1, sizeof *pg);
    if (!pg) {
        html_page(r, 500, "Error", "out of memory");
        return;
    }
    pg->o = o;
    pg->r = r;
    struct tikd_err e = {0};
    if (oauth_complete(o, srv_query(r), NULL, callback_done, pg, &e) != 0) {
        html_page(r, 400, "Account not connected", e.msg);
        free(pg);
        return;
    }
    pg->next = o->pages;
    o->pages = pg;
}

void oauth_pages_free(struct oauth *o)
{
    while (o->pages) {
        struct oauth_page *pg = o->pages;
        o->pages = pg->next;
        free(pg);
    }
}
