/* oauth.c - the oauth instance and what its three parts share (see
 * oauth_int.h): the op life cycle, token endpoint requests, account reads.
 *
 * Every asynchronous step is an `op` in one list, so oauth_free() can cancel
 * them all. Each op re-reads what it needs from the store when its response
 * arrives: another process (the CLI, a second tikd) may have changed the
 * account meanwhile, and the store, not memory, is the truth. */
#include "oauth_int.h"
#include "audit.h"
#include "log.h"
#include "codec.h"

#include <openssl/crypto.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define TOKEN_TIMEOUT 20 /* seconds for one token request */

/* ---- small helpers ----------------------------------------------------- */

void oauth_wipe_free(char *p)
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

void oauth_audit_now(struct oauth *o, const char *event, const char *detail)
{
    struct audit_args a = {"oauth", event, detail};
    struct tikd_err e = {0};
    if (store_write(o->s, audit_txn, &a, &e) != 0)
        TLOG(TLOG_ERROR, "audit.failed", LSTR("audit_event", event), LSTR("error", e.msg));
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
    o->self = proc_self();
    if (RAND_bytes(o->owner, sizeof o->owner) != 1) { /* two owners alike share a lease */
        oauth_free(o);
        return tikd_fail(e, TIKD_EIO, "oauth: no random bytes for this process's identity");
    }
    *out = o;
    return 0;
}

void oauth_free(struct oauth *o)
{
    if (!o)
        return;
    while (o->ops)
        oauth_op_free(o->ops);
    oauth_refusals_flush(o);
    if (o->c.loop) {
        ev_timer_stop(o->c.loop, &o->anon_timer);
        ev_timer_stop(o->c.loop, &o->resweep);
    }
    oauth_pages_free(o); /* after the ops: no exchange can answer a page now */
    for (size_t i = 0; i < o->nq; i++)
        free(o->queue[i]);
    free(o->queue);
    free(o->holds);
    for (int i = 0; i < 6; i++)
        oauth_wipe_free(o->strs[i]);
    free(o);
}

void oauth_on_state(struct oauth *o, oauth_state_fn fn, void *ud)
{
    o->on_state = fn;
    o->on_state_ud = ud;
}

void oauth_set_owner(struct oauth *o, uint64_t (*held)(void *ud, const char *name), void *ud)
{
    o->held = held;
    o->held_ud = ud;
}

bool oauth_holds(const struct oauth *o, const char *name)
{
    return !o->held || o->held(o->held_ud, name) != 0;
}

size_t oauth_in_flight(const struct oauth *o)
{
    return o->nops;
}

struct op *oauth_op_new(struct oauth *o, enum op_kind k, const char *name)
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

void oauth_op_free(struct op *op)
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
    oauth_wipe_free(op->secret);
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

void oauth_op_done(struct op *op, int rc, const char *msg)
{
    op->x = NULL; /* the transfer has ended */
    struct waiter w[WAITERS_MAX];
    int nw = op->nw;
    memcpy(w, op->w, sizeof w);
    char name[sizeof op->name];
    snprintf(name, sizeof name, "%s", op->name);
    struct oauth *o = op->o;
    bool refresh = op->kind == OP_REFRESH;
    oauth_op_free(op);
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

int oauth_post_token_form(struct op *op, struct codec_form *f, http_done_fn cb, const char *path)
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
                           .retry = HTTP_RETRY_NOT_SENT,
                           .metric = strstr(path, "revoke") ? "oauth_revoke" : "oauth_token",
                           /* a refresh rotates the account's token: only its holder's */
                           .owner = op->kind == OP_REFRESH ? op->name : NULL};
    struct tikd_err e = {0};
    return http_request(o->h, &req, cb, op, &op->x, &e);
}

/* ---- reading an account ------------------------------------------------- */

int oauth_read_acct_txn(struct store_txn *t, void *ctx)
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

void oauth_read_acct_free(struct read_acct *r)
{
    vault_wipe_free(r->refresh, r->refresh_n);
    vault_wipe_free(r->access, r->access_n);
    r->refresh = r->access = NULL;
}
