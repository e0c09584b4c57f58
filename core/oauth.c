/* oauth.c - connecting accounts and token upkeep (see oauth.h).
 *
 * Every asynchronous step is an `op` in one list, so oauth_free() can cancel
 * them all. Each op re-reads what it needs from the store when its response
 * arrives: another process (the CLI, a second tikd) may have changed the
 * account meanwhile, and the store, not memory, is the truth. */
#include "oauth.h"
#include "audit.h"
#include "clock.h"
#include "log.h"
#include "codec.h"
#include "tiktok.h"

#include <ev.h>
#include <jansson.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define STATE_BYTES   32
#define VERIFIER_LEN  64
#define WAITERS_MAX   16
#define LEASE_TTL     30.0 /* a refresh lease outlives the token request timeout */
#define LEASE_POLL    0.2  /* how often a refresh waiting on another process looks */
#define TOKEN_TIMEOUT 20   /* seconds for one token request */

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
};

/* ---- small helpers ----------------------------------------------------- */

static void wipe_free(char *p)
{
    if (p) {
        OPENSSL_cleanse(p, strlen(p));
        free(p);
    }
}

struct audit_args {
    const char *actor, *event, *detail;
};

static int audit_txn(struct store_txn *t, void *ctx)
{
    struct audit_args *a = ctx;
    return audit_append(t, a->actor, a->event, a->detail);
}

static void audit_now(struct oauth *o, const char *event, const char *detail)
{
    struct audit_args a = {"oauth", event, detail};
    struct tikd_err e = {0};
    if (store_write(o->s, audit_txn, &a, &e) != 0)
        TLOG(TLOG_ERROR, "audit.failed", LSTR("audit_event", event), LSTR("error", e.msg));
}

/* ---- refresh leases -------------------------------------------------------
 * meta key "lease:refresh:<account id>" -> expiry (be64, ms) | owner (16) */

static size_t lease_key(const char *aid, char *out, size_t n)
{
    return (size_t)snprintf(out, n, "lease:refresh:%s", aid);
}

struct lease_ctx {
    struct oauth *o;
    const char *aid;
    bool got;
};

static int lease_take_txn(struct store_txn *t, void *ctx)
{
    struct lease_ctx *l = ctx;
    char key[80];
    size_t kl = lease_key(l->aid, key, sizeof key);
    struct store_val v;
    uint64_t now_ms = (uint64_t)(clock_now() * 1000);
    if (store_get(t, STORE_DB_META, key, kl, &v) == 0 && v.n == 24 &&
        store_be64_get(v.p) > now_ms && memcmp((const char *)v.p + 8, l->o->owner, 16) != 0) {
        l->got = false; /* another process is refreshing */
        return 0;
    }
    unsigned char val[24];
    store_be64_put(val, now_ms + (uint64_t)(LEASE_TTL * 1000));
    memcpy(val + 8, l->o->owner, 16);
    l->got = true;
    return store_put(t, STORE_DB_META, key, kl, val, sizeof val);
}

/* Drop our lease (inside the caller's write transaction). */
static int lease_drop(struct oauth *o, struct store_txn *t, const char *aid)
{
    char key[80];
    size_t kl = lease_key(aid, key, sizeof key);
    struct store_val v;
    if (store_get(t, STORE_DB_META, key, kl, &v) == 0 && v.n == 24 &&
        memcmp((const char *)v.p + 8, o->owner, 16) == 0)
        return store_del(t, STORE_DB_META, key, kl);
    return 0;
}

static int lease_drop_txn(struct store_txn *t, void *ctx)
{
    struct lease_ctx *l = ctx;
    return lease_drop(l->o, t, l->aid);
}

static void lease_release(struct oauth *o, const char *aid)
{
    struct lease_ctx l = {o, aid, false};
    store_write(o->s, lease_drop_txn, &l, NULL);
}

/* ---- lifecycle --------------------------------------------------------- */

int oauth_new(struct oauth **out, struct store *s, struct vault *v, struct http *h,
              const struct oauth_cfg *c, struct tikd_err *e)
{
    *out = NULL;
    struct oauth *o = calloc(1, sizeof *o);
    if (!o)
        return tikd_fail(e, TIKD_ENOMEM, "oauth: out of memory");
    o->c = *c;
    const char **f[6] = {&o->c.client_key, &o->c.client_secret, &o->c.auth_url,
                         &o->c.api_url,    &o->c.redirect_uri,  &o->c.scopes};
    for (int i = 0; i < 6; i++) {
        o->strs[i] = *f[i] ? strdup(*f[i]) : NULL;
        *f[i] = o->strs[i];
    }
    if (!o->c.scopes) {
        o->strs[5] = strdup("user.info.basic,video.publish,video.upload");
        o->c.scopes = o->strs[5];
    }
    if (o->c.state_ttl <= 0)
        o->c.state_ttl = 1800;
    if (o->c.refresh_ahead <= 0)
        o->c.refresh_ahead = 600;
    if (o->c.max_refreshes <= 0)
        o->c.max_refreshes = 8;
    o->s = s;
    o->v = v;
    o->h = h;
    RAND_bytes(o->owner, sizeof o->owner);
    *out = o;
    return 0;
}

static void op_free(struct op *op);

void oauth_free(struct oauth *o)
{
    if (!o)
        return;
    while (o->ops)
        op_free(o->ops);
    for (size_t i = 0; i < o->nq; i++)
        free(o->queue[i]);
    free(o->queue);
    for (int i = 0; i < 6; i++)
        wipe_free(o->strs[i]);
    free(o);
}

void oauth_on_state(struct oauth *o, oauth_state_fn fn, void *ud)
{
    o->on_state = fn;
    o->on_state_ud = ud;
}

size_t oauth_in_flight(const struct oauth *o)
{
    return o->nops;
}

static struct op *op_new(struct oauth *o, enum op_kind k, const char *name)
{
    struct op *op = calloc(1, sizeof *op);
    if (!op)
        return NULL;
    op->o = o;
    op->kind = k;
    snprintf(op->name, sizeof op->name, "%s", name);
    op->next = o->ops;
    if (o->ops)
        o->ops->prev = op;
    o->ops = op;
    o->nops++;
    return op;
}

static void op_free(struct op *op)
{
    struct oauth *o = op->o;
    if (op->x)
        http_cancel(op->x);
    if (o->c.loop)
        ev_timer_stop(o->c.loop, &op->wait);
    if (op->prev)
        op->prev->next = op->next;
    else
        o->ops = op->next;
    if (op->next)
        op->next->prev = op->prev;
    o->nops--;
    wipe_free(op->secret);
    free(op->url);
    free(op->method);
    free(op->body);
    if (op->hdrs) {
        for (size_t i = 0; i < op->req.nheaders; i++) {
            free((char *)op->hdrs[i].name);
            free((char *)op->hdrs[i].value);
        }
        free(op->hdrs);
    }
    free(op);
}

/* Finish an op: tell every waiter, then free it. */
static void op_done(struct op *op, int rc, const char *msg)
{
    op->x = NULL; /* the transfer has ended */
    struct waiter w[WAITERS_MAX];
    int nw = op->nw;
    memcpy(w, op->w, sizeof w);
    char name[sizeof op->name];
    snprintf(name, sizeof name, "%s", op->name);
    struct oauth *o = op->o;
    bool refresh = op->kind == OP_REFRESH;
    op_free(op);
    for (int i = 0; i < nw; i++)
        if (w[i].done)
            w[i].done(w[i].ud, rc, name, msg);
    if (refresh) {
        o->refreshing--;
        while (o->refreshing < o->c.max_refreshes && o->nq) {
            char *next = o->queue[--o->nq];
            oauth_refresh(o, next, NULL, NULL);
            free(next);
        }
    }
}

/* ---- the token response -------------------------------------------------- */

struct grant {
    const char *access, *refresh, *open_id, *scope;
    double expires_in, refresh_expires_in;
};

/* Check a token endpoint body (spec §1.5): every field present and typed. */
static json_t *parse_grant(const char *body, size_t n, struct grant *g, char *why, size_t wn)
{
    json_error_t err;
    json_t *o = json_loadb(body, n, 0, &err);
    memset(g, 0, sizeof *g);
    if (!json_is_object(o)) {
        snprintf(why, wn, "TikTok's token response is not a JSON object");
        json_decref(o);
        return NULL;
    }
    g->access = json_string_value(json_object_get(o, "access_token"));
    g->refresh = json_string_value(json_object_get(o, "refresh_token"));
    g->open_id = json_string_value(json_object_get(o, "open_id"));
    g->scope = json_string_value(json_object_get(o, "scope"));
    json_t *ei = json_object_get(o, "expires_in"), *rei = json_object_get(o, "refresh_expires_in");
    const char *missing = !g->access             ? "access_token"
                          : !g->refresh          ? "refresh_token"
                          : !g->open_id          ? "open_id"
                          : !json_is_number(ei)  ? "expires_in"
                          : !json_is_number(rei) ? "refresh_expires_in"
                                                 : NULL;
    if (missing) {
        snprintf(why, wn, "TikTok's token response lacks a valid '%s'", missing);
        json_decref(o);
        return NULL;
    }
    g->expires_in = json_number_value(ei);
    g->refresh_expires_in = json_number_value(rei);
    if (g->expires_in <= 0 || g->refresh_expires_in <= 0 || strlen(g->access) < 8 ||
        strlen(g->refresh) < 8) {
        snprintf(why, wn, "TikTok's token response has an unusable token or lifetime");
        json_decref(o);
        return NULL;
    }
    if (!g->scope)
        g->scope = "";
    return o;
}

struct store_grant {
    struct oauth *o;
    const char *name, *account_id;
    const struct grant *g;
    const char *event;
    char *old_access, *old_refresh; /* out: the tokens replaced (to unregister) */
    size_t old_access_n, old_refresh_n;
    char detail[600];
    struct tikd_err *e;
};

/* One transaction: the account's new state and both tokens, and the audit
 * record. A rotated refresh token is never stored apart from its access
 * token. */
static int store_grant_txn(struct store_txn *t, void *ctx)
{
    struct store_grant *sg = ctx;
    struct oauth *o = sg->o;
    struct account a;
    int rc = account_get(t, sg->name, &a);
    if (rc != 0 || strcmp(a.id, sg->account_id) != 0)
        return tikd_fail(sg->e, TIKD_ENOTFOUND,
                         "account %s was removed while TikTok answered; nothing stored", sg->name);
    vault_wipe_free(sg->old_access, sg->old_access_n);
    vault_wipe_free(sg->old_refresh, sg->old_refresh_n);
    sg->old_access = sg->old_refresh = NULL;
    if (vault_get(o->v, t, a.id, "access_token", &sg->old_access, &sg->old_access_n, NULL) != 0)
        sg->old_access = NULL;
    if (vault_get(o->v, t, a.id, "refresh_token", &sg->old_refresh, &sg->old_refresh_n, NULL) != 0)
        sg->old_refresh = NULL;
    const struct grant *g = sg->g;
    double now = clock_now();
    if (a.open_id[0] && strcmp(a.open_id, g->open_id) != 0)
        return tikd_fail(sg->e, TIKD_EINVAL,
                         "TikTok returned a different user for account %s (open_id changed): "
                         "the person who approved is not the account's owner; nothing stored",
                         sg->name);
    snprintf(a.open_id, sizeof a.open_id, "%s", g->open_id);
    if (g->scope[0])
        snprintf(a.scopes, sizeof a.scopes, "%s", g->scope);
    a.state = ACCT_ACTIVE;
    a.reason[0] = '\0';
    a.access_expires_at = now + g->expires_in;
    a.refresh_expires_at = now + g->refresh_expires_in;
    a.access_lifetime = g->expires_in;
    a.updated_at = now;
    rc = account_put(t, &a);
    if (rc == 0)
        rc = vault_put(o->v, t, a.id, "access_token", g->access, strlen(g->access), sg->e);
    if (rc == 0)
        rc = vault_put(o->v, t, a.id, "refresh_token", g->refresh, strlen(g->refresh), sg->e);
    bool rotated = !sg->old_refresh || strcmp(sg->old_refresh, g->refresh) != 0;
    bool refresh = strcmp(sg->event, "oauth.refreshed") == 0;
    snprintf(sg->detail, sizeof sg->detail,
             "account=%s open_id=%s scopes=%s access_expires_in=%.0f refresh_expires_in=%.0f%s%s",
             a.name, a.open_id, a.scopes, g->expires_in, g->refresh_expires_in,
             refresh ? " refresh_rotated=" : "", refresh ? (rotated ? "yes" : "no") : "");
    if (rc == 0)
        rc = lease_drop(o, t, a.id);
    if (rc == 0)
        rc = audit_append(t, "oauth", sg->event, sg->detail);
    return rc;
}

/* Store a grant; 0 or an error in e. Registers the new tokens as log
 * secrets and forgets the replaced ones. */
static int save_grant(struct oauth *o, const char *name, const char *account_id,
                      const struct grant *g, const char *event, struct tikd_err *e)
{
    tlog_secret_add(g->access, strlen(g->access));
    tlog_secret_add(g->refresh, strlen(g->refresh));
    struct store_grant sg = {o, name, account_id, g, event, NULL, NULL, 0, 0, "", e};
    int rc = store_write(o->s, store_grant_txn, &sg, e);
    if (rc == 0) {
        if (sg.old_access && strcmp(sg.old_access, g->access) != 0)
            tlog_secret_remove(sg.old_access, sg.old_access_n);
        if (sg.old_refresh && strcmp(sg.old_refresh, g->refresh) != 0)
            tlog_secret_remove(sg.old_refresh, sg.old_refresh_n);
        TLOG(TLOG_INFO, "oauth.tokens_stored", LSTR("account", name), LSTR("why", event),
             LDBL("access_expires_in", g->expires_in),
             LDBL("refresh_expires_in", g->refresh_expires_in));
    }
    vault_wipe_free(sg.old_access, sg.old_access_n);
    vault_wipe_free(sg.old_refresh, sg.old_refresh_n);
    return rc;
}

static int post_token_form(struct op *op, struct codec_form *f, http_done_fn cb, const char *path)
{
    struct oauth *o = op->o;
    char url[1024];
    snprintf(url, sizeof url, "%s%s", o->c.api_url, path);
    static const struct http_header hdrs[] = {{"Content-Type", "application/x-www-form-urlencoded"},
                                              {"Cache-Control", "no-cache"}};
    struct http_req req = {.method = "POST",
                           .timeout = TOKEN_TIMEOUT,
                           .url = url,
                           .headers = hdrs,
                           .nheaders = 2,
                           .body = f->p,
                           .body_len = f->n,
                           .tiktok = true,
                           /* a token request that may have reached TikTok is not sent
                            * twice: a second code exchange or refresh would fail */
                           .retry = HTTP_RETRY_NOT_SENT};
    struct tikd_err e = {0};
    return http_request(o->h, &req, cb, op, &op->x, &e);
}

/* ---- begin ------------------------------------------------------------------ */

struct begin_ctx {
    struct oauth *o;
    const char *name, *scopes;
    bool reauth;
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
    if (rc == TIKD_ENOTFOUND) {
        if (b->reauth)
            return tikd_fail(b->e, TIKD_ENOTFOUND,
                             "no account named %s (use `tikd account add %s`)", b->name, b->name);
        account_init(&a, b->name, now);
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
    snprintf(detail, sizeof detail, "account=%s scopes=%s pkce=%s reauth=%s", a.name, b->scopes,
             b->verifier ? "yes" : "no", b->reauth ? "yes" : "no");
    return rc ? rc : audit_append(t, "operator", "oauth.begin", detail);
}

int oauth_begin(struct oauth *o, const char *name, const char *scopes, bool reauth, char **url,
                struct tikd_err *e)
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
    struct begin_ctx b = {o, name, scopes, reauth, {0}, NULL, e};
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
    } else if (!(doc = parse_grant(r->body, r->body_len, &g, msg, sizeof msg))) {
        rc = TIKD_EINVAL;
    } else {
        struct tikd_err e = {0};
        rc = save_grant(o, op->name, op->account_id, &g, "oauth.connected", &e);
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
        audit_now(o, "oauth.rejected", detail);
        TLOG(TLOG_WARN, "oauth.exchange_failed", LSTR("account", op->name), LSTR("error", msg));
    }
    op_done(op, rc, msg);
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
        audit_now(o, "oauth.rejected", "reason=missing_state");
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
            audit_now(o, "oauth.rejected", detail);
        }
        vault_wipe_free(c.verifier, c.verifier_n);
        TLOG(TLOG_WARN, "oauth.rejected", LSTR("account", c.name), LSTR("reason", e->msg));
        return rc;
    }
    struct op *op = op_new(o, OP_EXCHANGE, c.name);
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
        bad = post_token_form(op, &f, exchange_done, TT_PATH_TOKEN) != 0;
    }
    codec_form_free(&f);
    if (bad) {
        if (op)
            op_free(op);
        return tikd_fail(e, TIKD_ENOMEM, "oauth: cannot start the code exchange");
    }
    return 0;
}

/* ---- refresh -------------------------------------------------------------------- */

struct read_acct {
    const char *name;
    struct account a;
    struct oauth *o;
    char *refresh, *access; /* sealed tokens, opened on request */
    size_t refresh_n, access_n;
    bool want_refresh, want_access;
    struct tikd_err *e;
};

static int read_acct_txn(struct store_txn *t, void *ctx)
{
    struct read_acct *r = ctx;
    int rc = account_get(t, r->name, &r->a);
    if (rc != 0)
        return rc;
    if (r->want_refresh)
        rc = vault_get(r->o->v, t, r->a.id, "refresh_token", &r->refresh, &r->refresh_n, r->e);
    if (rc == 0 && r->want_access)
        rc = vault_get(r->o->v, t, r->a.id, "access_token", &r->access, &r->access_n, r->e);
    return rc;
}

static void read_acct_free(struct read_acct *r)
{
    vault_wipe_free(r->refresh, r->refresh_n);
    vault_wipe_free(r->access, r->access_n);
    r->refresh = r->access = NULL;
}

static void notify_state(struct oauth *o, const char *name)
{
    if (!o->on_state)
        return;
    struct read_acct r = {.name = name, .o = o};
    if (store_read(o->s, read_acct_txn, &r, NULL) == 0)
        o->on_state(o->on_state_ud, &r.a);
}

struct mark_ctx {
    const char *key; /* open_id or name */
    enum acct_state st;
    const char *reason;
    char name[ACCT_NAME_MAX + 1];
    struct tikd_err *e;
};

static int find_open_id(const struct account *a, void *ctx)
{
    struct mark_ctx *m = ctx;
    if (a->open_id[0] && strcmp(a->open_id, m->key) == 0) {
        snprintf(m->name, sizeof m->name, "%s", a->name);
        return 1;
    }
    return 0;
}

static int mark_txn(struct store_txn *t, void *ctx)
{
    struct mark_ctx *m = ctx;
    struct account a;
    int rc = account_get(t, m->key, &a);
    if (rc == TIKD_ENOTFOUND) {
        m->name[0] = '\0';
        rc = account_foreach(t, find_open_id, m);
        if (rc < 0)
            return rc;
        if (!m->name[0])
            return tikd_fail(m->e, TIKD_ENOTFOUND, "no account with name or open_id %s", m->key);
        rc = account_get(t, m->name, &a);
    }
    if (rc != 0)
        return rc;
    snprintf(m->name, sizeof m->name, "%s", a.name);
    a.state = m->st;
    snprintf(a.reason, sizeof a.reason, "%s", m->reason);
    a.updated_at = clock_now();
    rc = account_put(t, &a);
    char detail[400];
    snprintf(detail, sizeof detail, "account=%s state=%s reason=\"%s\"", a.name,
             account_state_name(m->st), m->reason);
    return rc ? rc : audit_append(t, "oauth", "account.state", detail);
}

int oauth_mark(struct oauth *o, const char *key, enum acct_state st, const char *reason,
               struct tikd_err *e)
{
    struct mark_ctx m = {key, st, reason, "", e};
    int rc = store_write(o->s, mark_txn, &m, e);
    if (rc == 0) {
        TLOG(TLOG_WARN, "account.state", LSTR("account", m.name),
             LSTR("state", account_state_name(st)), LSTR("reason", reason));
        notify_state(o, m.name);
    }
    return rc;
}

static void refresh_done(void *ud, const struct http_resp *r)
{
    struct op *op = ud;
    struct oauth *o = op->o;
    op->x = NULL;
    char msg[700];
    int rc = 0;
    struct grant g;
    json_t *doc = NULL;
    if (r->out.action == POL_OK && (doc = parse_grant(r->body, r->body_len, &g, msg, sizeof msg))) {
        struct tikd_err e = {0};
        rc = save_grant(o, op->name, op->account_id, &g, "oauth.refreshed", &e);
        snprintf(msg, sizeof msg, "%s", rc ? e.msg : "refreshed");
    } else if (r->out.action == POL_REAUTH) {
        /* invalid_grant: unless someone else rotated the token meanwhile (a
         * concurrent refresh in another process), the grant is gone */
        struct read_acct ra = {.name = op->name, .o = o, .want_refresh = true};
        bool rotated = store_read(o->s, read_acct_txn, &ra, NULL) == 0 && ra.refresh &&
                       op->secret && strcmp(ra.refresh, op->secret) != 0;
        read_acct_free(&ra);
        if (rotated) {
            snprintf(msg, sizeof msg, "another refresh rotated the token first; using its result");
        } else {
            char reason[400];
            snprintf(reason, sizeof reason, "refresh refused by TikTok: %s (log_id %s)",
                     r->out.code, r->out.log_id);
            oauth_mark(o, op->name, ACCT_NEEDS_REAUTH, reason, NULL);
            snprintf(msg, sizeof msg, "account %s needs to be connected again: %s", op->name,
                     reason);
            rc = TIKD_EINVAL;
        }
    } else {
        if (r->out.action != POL_OK)
            snprintf(msg, sizeof msg, "refresh failed: %s (code %s, log_id %s); will try again",
                     r->out.message, r->out.code, r->out.log_id);
        rc = TIKD_EIO;
        char detail[800];
        snprintf(detail, sizeof detail, "account=%s code=%s log_id=%s", op->name, r->out.code,
                 r->out.log_id);
        audit_now(o, "oauth.refresh_failed", detail);
    }
    json_decref(doc);
    if (rc) {
        lease_release(o, op->account_id);
        TLOG(TLOG_WARN, "oauth.refresh_failed", LSTR("account", op->name), LSTR("error", msg));
    }
    op_done(op, rc, msg);
}

/* One step of a refresh: finished elsewhere meanwhile? Then done. Another
 * process holds the lease? Look again shortly. Else send it. */
static void refresh_step(struct op *op);

static void on_refresh_wait(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)loop;
    (void)revents;
    refresh_step(w->data);
}

/* One transaction: has the token been renewed since we looked? may we take
 * the lease? and then the refresh token to send, read under the lease, so
 * it cannot be one another process has just rotated away. */
struct step_ctx {
    struct op *op;
    struct lease_ctx l;
    struct read_acct ra;
    bool renewed;
};

static int step_txn(struct store_txn *t, void *ctx)
{
    struct step_ctx *sc = ctx;
    struct op *op = sc->op;
    read_acct_free(&sc->ra);
    sc->renewed = false;
    sc->l.got = false;
    int rc = account_get(t, op->name, &sc->ra.a);
    if (rc != 0)
        return rc;
    if (sc->ra.a.access_expires_at > op->seen_expiry + 0.0005) {
        sc->renewed = true;
        return 0;
    }
    if (sc->ra.a.state != ACCT_ACTIVE || strcmp(sc->ra.a.id, op->account_id) != 0)
        return 0;
    rc = lease_take_txn(t, &sc->l);
    if (rc == 0 && sc->l.got)
        rc = vault_get(op->o->v, t, sc->ra.a.id, "refresh_token", &sc->ra.refresh,
                       &sc->ra.refresh_n, sc->ra.e);
    return rc;
}

static void refresh_step(struct op *op)
{
    struct oauth *o = op->o;
    struct tikd_err e = {0};
    struct step_ctx sc = {.op = op, .l = {o, op->account_id, false}, .ra = {.o = o, .e = &e}};
    int rc = store_write(o->s, step_txn, &sc, &e);
    if (rc == 0 && sc.renewed) {
        read_acct_free(&sc.ra);
        op_done(op, 0, "refreshed by another process");
        return;
    }
    if (rc != 0 || sc.ra.a.state != ACCT_ACTIVE) {
        read_acct_free(&sc.ra);
        if (sc.l.got)
            lease_release(o, op->account_id);
        op_done(op, TIKD_EINVAL, rc ? e.msg : "the account is no longer active");
        return;
    }
    if (!sc.l.got) { /* another process is refreshing: look again shortly */
        read_acct_free(&sc.ra);
        TLOG(TLOG_DEBUG, "oauth.refresh_waits", LSTR("account", op->name));
        if (o->c.loop) {
            ev_timer_set(&op->wait, LEASE_POLL, 0.);
            ev_timer_start(o->c.loop, &op->wait);
        } else {
            op_done(op, TIKD_EIO, "another process is refreshing this account");
        }
        return;
    }
    struct codec_form f = {0};
    int bad = !sc.ra.refresh || codec_form_add(&f, "client_key", o->c.client_key) ||
              codec_form_add(&f, "client_secret", o->c.client_secret ? o->c.client_secret : "") ||
              codec_form_add(&f, "grant_type", "refresh_token") ||
              codec_form_add(&f, "refresh_token", sc.ra.refresh);
    if (!bad) {
        wipe_free(op->secret);
        op->secret = strdup(sc.ra.refresh);
        bad = !op->secret || post_token_form(op, &f, refresh_done, TT_PATH_TOKEN) != 0;
    }
    codec_form_free(&f);
    read_acct_free(&sc.ra);
    if (bad) {
        lease_release(o, op->account_id);
        op_done(op, TIKD_ENOMEM, "cannot start the refresh");
        return;
    }
    TLOG(TLOG_DEBUG, "oauth.refresh", LSTR("account", op->name));
}

int oauth_refresh(struct oauth *o, const char *name, oauth_done_fn done, void *ud)
{
    for (struct op *op = o->ops; op; op = op->next) {
        if (op->kind == OP_REFRESH && strcmp(op->name, name) == 0) { /* single flight */
            if (op->nw < WAITERS_MAX) {
                op->w[op->nw++] = (struct waiter){done, ud};
                return 0;
            }
            return TIKD_EFULL;
        }
    }
    struct read_acct ra = {.name = name, .o = o};
    int rc = store_read(o->s, read_acct_txn, &ra, NULL);
    if (rc == 0 && ra.a.state != ACCT_ACTIVE)
        rc = TIKD_EINVAL;
    if (rc != 0) /* nothing started: the caller hears it from the return code */
        return rc;
    struct op *op = op_new(o, OP_REFRESH, name);
    if (!op)
        return TIKD_ENOMEM;
    snprintf(op->account_id, sizeof op->account_id, "%s", ra.a.id);
    op->seen_expiry = ra.a.access_expires_at;
    op->w[op->nw++] = (struct waiter){done, ud};
    ev_init(&op->wait, on_refresh_wait);
    op->wait.data = op;
    o->refreshing++;
    refresh_step(op);
    return 0;
}

/* ---- the sweep ---------------------------------------------------------------- */

struct sweep_ctx {
    struct oauth *o;
    double now;
    size_t due;
};

static int sweep_one(const struct account *a, void *ctx)
{
    struct sweep_ctx *s = ctx;
    struct oauth *o = s->o;
    if (a->state != ACCT_ACTIVE)
        return 0;
    /* a window of refresh_ahead, but never more than a quarter of the
     * token's life (so 30-second test tokens are not refreshed constantly) */
    double window = o->c.refresh_ahead;
    if (a->access_lifetime > 0 && window > a->access_lifetime / 4)
        window = a->access_lifetime / 4;
    if (a->refresh_expires_at > 0 && a->refresh_expires_at - s->now < 7 * 86400 &&
        a->refresh_expires_at > s->now)
        TLOG(TLOG_WARN, "oauth.refresh_token_expiring", LSTR("account", a->name),
             LDBL("days_left", (a->refresh_expires_at - s->now) / 86400));
    if (a->refresh_expires_at > 0 && a->refresh_expires_at <= s->now) {
        oauth_mark(o, a->name, ACCT_NEEDS_REAUTH,
                   "the refresh token expired: connect the account again", NULL);
        return 0;
    }
    if (a->access_expires_at - s->now > window)
        return 0;
    s->due++;
    for (struct op *op = o->ops; op; op = op->next)
        if (op->kind == OP_REFRESH && strcmp(op->name, a->name) == 0)
            return 0; /* already refreshing */
    for (size_t i = 0; i < o->nq; i++)
        if (strcmp(o->queue[i], a->name) == 0)
            return 0;
    if (o->refreshing < o->c.max_refreshes)
        return oauth_refresh(o, a->name, NULL, NULL), 0;
    if (o->nq == o->qcap) {
        size_t nc = o->qcap ? o->qcap * 2 : 64;
        char **g = realloc(o->queue, nc * sizeof *g);
        if (!g)
            return 0;
        o->queue = g;
        o->qcap = nc;
    }
    o->queue[o->nq] = strdup(a->name);
    if (o->queue[o->nq])
        o->nq++;
    return 0;
}

/* Accounts are collected first: refreshing writes to the store, which must
 * not happen inside the read transaction of the walk. */
struct names {
    struct account *v;
    size_t n, cap;
};

static int collect_acct(const struct account *a, void *ctx)
{
    struct names *n = ctx;
    if (n->n == n->cap) {
        size_t nc = n->cap ? n->cap * 2 : 64;
        struct account *g = realloc(n->v, nc * sizeof *g);
        if (!g)
            return TIKD_ENOMEM;
        n->v = g;
        n->cap = nc;
    }
    n->v[n->n++] = *a;
    return 0;
}

static int collect_txn(struct store_txn *t, void *ctx)
{
    return account_foreach(t, collect_acct, ctx);
}

size_t oauth_sweep(struct oauth *o)
{
    struct names all = {0};
    struct sweep_ctx s = {o, clock_now(), 0};
    if (store_read(o->s, collect_txn, &all, NULL) == 0)
        for (size_t i = 0; i < all.n; i++)
            sweep_one(&all.v[i], &s);
    free(all.v);
    return s.due;
}

/* ---- remove (revoke) ------------------------------------------------------------ */

struct remove_ctx {
    const char *name, *account_id;
    bool revoked;
    struct tikd_err *e;
};

static int remove_txn(struct store_txn *t, void *ctx)
{
    struct remove_ctx *r = ctx;
    struct account a;
    int rc = account_get(t, r->name, &a);
    if (rc != 0)
        return rc == TIKD_ENOTFOUND ? 0 : rc; /* already gone */
    rc = vault_del_owner(t, a.id);
    if (rc == 0)
        rc = account_del(t, r->name);
    char detail[300];
    snprintf(detail, sizeof detail, "account=%s open_id=%s revoked_at_tiktok=%s", a.name, a.open_id,
             r->revoked ? "yes" : "no");
    return rc ? rc : audit_append(t, "operator", "account.removed", detail);
}

static void revoke_done(void *ud, const struct http_resp *r)
{
    struct op *op = ud;
    struct oauth *o = op->o;
    op->x = NULL;
    struct remove_ctx rc = {op->name, op->account_id, r->out.action == POL_OK, NULL};
    struct tikd_err e = {0};
    rc.e = &e;
    if (op->secret)
        tlog_secret_remove(op->secret, strlen(op->secret));
    int st = store_write(o->s, remove_txn, &rc, &e);
    char msg[600];
    if (st != 0)
        snprintf(msg, sizeof msg, "removing account %s failed: %.400s", op->name, e.msg);
    else if (rc.revoked)
        snprintf(msg, sizeof msg, "account %s revoked at TikTok and removed", op->name);
    else
        snprintf(msg, sizeof msg,
                 "account %s removed; TikTok did not confirm the revocation (%s): the user can "
                 "also disconnect the app in TikTok's settings",
                 op->name, r->out.message);
    op_done(op, st, msg);
}

int oauth_remove(struct oauth *o, const char *name, oauth_done_fn done, void *ud,
                 struct tikd_err *e)
{
    struct read_acct ra = {.name = name, .o = o, .want_access = true, .e = e};
    int rc = store_read(o->s, read_acct_txn, &ra, e);
    if (rc == TIKD_ENOTFOUND && !ra.a.id[0])
        return tikd_fail(e, TIKD_ENOTFOUND, "no account named %s", name);
    struct op *op = op_new(o, OP_REVOKE, name);
    if (!op) {
        read_acct_free(&ra);
        return tikd_fail(e, TIKD_ENOMEM, "oauth: out of memory");
    }
    snprintf(op->account_id, sizeof op->account_id, "%s", ra.a.id);
    op->w[op->nw++] = (struct waiter){done, ud};
    if (!ra.access) { /* never connected: nothing to revoke */
        read_acct_free(&ra);
        struct http_resp none = {.out = {.action = POL_FAIL, .message = "no token to revoke"}};
        revoke_done(op, &none);
        return 0;
    }
    op->secret = strdup(ra.access);
    struct codec_form f = {0};
    int bad = !op->secret || codec_form_add(&f, "client_key", o->c.client_key) ||
              codec_form_add(&f, "client_secret", o->c.client_secret ? o->c.client_secret : "") ||
              codec_form_add(&f, "token", ra.access);
    read_acct_free(&ra);
    if (!bad)
        bad = post_token_form(op, &f, revoke_done, TT_PATH_REVOKE) != 0;
    codec_form_free(&f);
    if (bad) {
        op_free(op);
        return tikd_fail(e, TIKD_ENOMEM, "oauth: cannot start the revocation");
    }
    return 0;
}

/* ---- authorized requests ---------------------------------------------------------- */

static int send_with_token(struct op *op, const char *token);

static void request_refreshed(void *ud, int rc, const char *account, const char *msg)
{
    (void)account;
    struct op *op = ud;
    struct oauth *o = op->o;
    struct read_acct ra = {.name = op->name, .o = o, .want_access = true};
    if (rc == 0 && store_read(o->s, read_acct_txn, &ra, NULL) == 0 && ra.access &&
        send_with_token(op, ra.access) == 0) {
        read_acct_free(&ra);
        return;
    }
    read_acct_free(&ra);
    struct http_resp r = {.attempts = op->tries};
    r.out.action = POL_REAUTH;
    snprintf(r.out.code, sizeof r.out.code, "access_token_invalid");
    snprintf(r.out.message, sizeof r.out.message, "the access token of %s could not be renewed: %s",
             op->name, msg ? msg : "");
    http_done_fn done = op->req_done;
    void *dud = op->req_ud;
    op_free(op);
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
        bool newer = store_read(o->s, read_acct_txn, &ra, NULL) == 0 && ra.access && op->secret &&
                     strcmp(ra.access, op->secret) != 0;
        if (newer && send_with_token(op, ra.access) == 0) {
            read_acct_free(&ra);
            return;
        }
        read_acct_free(&ra);
        op->tries = 2; /* one refresh at most */
        if (oauth_refresh(o, op->name, request_refreshed, op) == 0)
            return;
    }
    http_done_fn done = op->req_done;
    void *dud = op->req_ud;
    /* the body stays valid during the callback; free the op afterwards */
    op->kind = OP_REQUEST;
    done(dud, r);
    op_free(op);
}

static int send_with_token(struct op *op, const char *token)
{
    wipe_free(op->secret);
    op->secret = strdup(token);
    if (!op->secret)
        return TIKD_ENOMEM;
    op->tries++;
    struct http_req req = op->req;
    req.bearer = token;
    struct tikd_err e = {0};
    return http_request(op->o->h, &req, request_done, op, &op->x, &e);
}

int oauth_post_json(struct oauth *o, const char *name, const char *url, const char *body,
                    enum http_retry retry, http_done_fn done, void *ud, struct tikd_err *e)
{
    if (!body)
        return tikd_fail(e, TIKD_ENOMEM, "out of memory");
    static const struct http_header h[] = {{"Content-Type", "application/json; charset=UTF-8"}};
    struct http_req req = {.method = "POST",
                           .url = url,
                           .headers = h,
                           .nheaders = 1,
                           .body = body,
                           .body_len = strlen(body),
                           .retry = retry};
    return oauth_request(o, name, &req, done, ud, e);
}

int oauth_request(struct oauth *o, const char *name, const struct http_req *req, http_done_fn done,
                  void *ud, struct tikd_err *e)
{
    if (req->body_file)
        return tikd_fail(e, TIKD_EINVAL,
                         "oauth_request: file bodies go to upload URLs, which "
                         "carry their own token");
    struct read_acct ra = {.name = name, .o = o, .want_access = true, .e = e};
    int rc = store_read(o->s, read_acct_txn, &ra, e);
    if (rc == TIKD_ENOTFOUND && !ra.a.id[0])
        return tikd_fail(e, rc, "no account named %s", name);
    if (rc == 0 && ra.a.state != ACCT_ACTIVE) {
        read_acct_free(&ra);
        return tikd_fail(e, TIKD_EINVAL,
                         "account %s is %s%s%s: connect it again with `tikd "
                         "account reauth %s`",
                         name, account_state_name(ra.a.state), ra.a.reason[0] ? ": " : "",
                         ra.a.reason, name);
    }
    if (rc != 0 || !ra.access) {
        read_acct_free(&ra);
        return rc ? rc : tikd_fail(e, TIKD_ENOTFOUND, "account %s has no token", name);
    }
    struct op *op = op_new(o, OP_REQUEST, name);
    if (!op) {
        read_acct_free(&ra);
        return tikd_fail(e, TIKD_ENOMEM, "oauth: out of memory");
    }
    /* every use of a token is on the record (which account, for what) */
    char detail[400];
    const char *path = strstr(req->url, "://");
    path = path ? strchr(path + 3, '/') : NULL;
    snprintf(detail, sizeof detail, "account=%s request=\"%s %.200s\"", name,
             req->method ? req->method : "GET", path ? path : req->url);
    audit_now(o, "token.access", detail);
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
    if (rc == 0 && refresh_first) {
        op->tries = 2; /* the refresh counts as the one allowed */
        rc = oauth_refresh(o, name, request_refreshed, op);
    } else if (rc == 0) {
        rc = send_with_token(op, ra.access);
    }
    read_acct_free(&ra);
    if (rc != 0) {
        op_free(op);
        return tikd_fail(e, rc, "oauth: cannot start the request");
    }
    return 0;
}
