/* oauth_tokens.c - keeping tokens alive: the token response and its
 * storing, refresh, the sweep, account states (oauth_mark) and removal.
 *
 * One refresh per account at a time: in this process an OP_REFRESH op that
 * later callers join, across processes a lease in the meta DB. A grant is
 * stored in one transaction (both tokens, the account, the audit record,
 * the lease dropped), so a rotated refresh token is never kept apart from
 * its access token. */
#include "oauth_int.h"
#include "metrics.h"
#include "audit.h"
#include "clock.h"
#include "job.h"
#include "log.h"
#include "codec.h"
#include "tiktok.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define LEASE_TTL  30.0 /* a refresh lease outlives the token request timeout */
#define LEASE_POLL 0.2  /* how often a refresh waiting on another process looks */

/* ---- refresh leases -------------------------------------------------------
 * meta key "lease:refresh:<account id>" -> expiry (be64, ms) | owner (16) |
 * pid (be64) | start time (be64). Taken, in the store, before the refresh
 * leaves: it is the record that a refresh is in flight. A lease whose process
 * is gone (killed while it waited for TikTok) is not waited out: the refresh
 * it sent may have reached TikTok, so taking it over marks the account
 * unsure (below). Leases of 24 bytes (no process) are older tikd's. */

#define LEASE_LEN     40
#define LEASE_LEN_OLD 24

static size_t lease_key(const char *aid, char *out, size_t n)
{
    return (size_t)snprintf(out, n, "lease:refresh:%s", aid);
}

/* The process a lease names; {0, 0} for an older tikd's lease, which names none. */
static struct proc_id lease_holder(const struct store_val *v)
{
    const unsigned char *p = v->p;
    return v->n == LEASE_LEN ? (struct proc_id){(int)store_be64_get(p + 24), store_be64_get(p + 32)}
                             : (struct proc_id){0, 0};
}

struct lease_ctx {
    struct oauth *o;
    const char *aid;
    bool got;
    bool orphaned;      /* taken over from a process that died holding it */
    struct proc_id was; /* that process */
};

static int lease_take_txn(struct store_txn *t, void *ctx)
{
    struct lease_ctx *l = ctx;
    char key[80];
    size_t kl = lease_key(l->aid, key, sizeof key);
    struct store_val v;
    uint64_t now_ms = (uint64_t)(clock_now() * 1000);
    l->orphaned = false;
    if (store_get(t, STORE_DB_META, key, kl, &v) == 0 &&
        (v.n == LEASE_LEN || v.n == LEASE_LEN_OLD) &&
        memcmp((const char *)v.p + 8, l->o->owner, 16) != 0) {
        bool expired = store_be64_get(v.p) <= now_ms;
        l->was = lease_holder(&v);
        bool dead = v.n == LEASE_LEN ? !proc_alive(l->was) : expired;
        if (!expired && !dead) {
            l->got = false; /* another process is refreshing */
            return 0;
        }
        l->orphaned = dead;
    }
    unsigned char val[LEASE_LEN];
    store_be64_put(val, now_ms + (uint64_t)(LEASE_TTL * 1000));
    memcpy(val + 8, l->o->owner, 16);
    store_be64_put(val + 24, (uint64_t)l->o->self.pid);
    store_be64_put(val + 32, l->o->self.start);
    l->got = true;
    return store_put(t, STORE_DB_META, key, kl, val, sizeof val);
}

/* Drop our lease (inside the caller's write transaction). */
static int lease_drop(struct oauth *o, struct store_txn *t, const char *aid)
{
    char key[80];
    size_t kl = lease_key(aid, key, sizeof key);
    struct store_val v;
    if (store_get(t, STORE_DB_META, key, kl, &v) == 0 &&
        (v.n == LEASE_LEN || v.n == LEASE_LEN_OLD) &&
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
    struct lease_ctx l = {o, aid, false, false, {0, 0}};
    store_write(o->s, lease_drop_txn, &l, NULL);
}

/* ---- refreshes whose answer was lost ---------------------------------------
 * meta key "refresh_unsure:<account id>" -> when (be64, ms) | what happened.
 * A refresh that may have reached TikTok without its answer being stored:
 * no answer, a 5xx, a garbled body, or a process that died holding the
 * lease. TikTok may have rotated the refresh token then, and under strict
 * rotation the one tikd holds is dead. The old token is tried once more at
 * once (a lenient TikTok still honours it for a while, and a refresh that
 * never arrived left it valid); if TikTok then says invalid_grant, the
 * account needs connecting again and its reason says why. Any grant stored
 * for the account clears it. */

static size_t unsure_key(const char *aid, char *out, size_t n)
{
    return (size_t)snprintf(out, n, "refresh_unsure:%s", aid);
}

static int unsure_put(struct store_txn *t, const char *aid, const char *what)
{
    char key[80], val[8 + 300];
    size_t kl = unsure_key(aid, key, sizeof key);
    store_be64_put((unsigned char *)val, (uint64_t)(clock_now() * 1000));
    size_t n = (size_t)snprintf(val + 8, sizeof val - 8, "%s", what);
    if (n >= sizeof val - 8)
        n = sizeof val - 9;
    return store_put(t, STORE_DB_META, key, kl, val, 8 + n);
}

/* What happened, or 0 when the account's last refresh is not in doubt. */
static double unsure_get(struct store_txn *t, const char *aid, char *what, size_t wn)
{
    char key[80];
    size_t kl = unsure_key(aid, key, sizeof key);
    struct store_val v;
    if (store_get(t, STORE_DB_META, key, kl, &v) != 0 || v.n < 8)
        return 0;
    snprintf(what, wn, "%.*s", (int)(v.n - 8), (const char *)v.p + 8);
    return (double)store_be64_get(v.p) / 1000;
}

static int unsure_del(struct store_txn *t, const char *aid)
{
    char key[80];
    size_t kl = unsure_key(aid, key, sizeof key);
    return store_del(t, STORE_DB_META, key, kl);
}

/* ---- the token response -------------------------------------------------- */

json_t *oauth_parse_grant(const char *body, size_t n, struct grant *g, char *why, size_t wn)
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

struct store_grant {
    struct oauth *o;
    const char *name, *account_id;
    const struct grant *g;
    const char *event;
    char *old_access, *old_refresh; /* out: the tokens replaced (to unregister) */
    size_t old_access_n, old_refresh_n;
    char detail[600];
    struct tikd_err *e;
    bool reconnected; /* it was not active before */
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
    if (!a.open_id[0]) { /* one TikTok user, one account: two would post twice */
        struct mark_ctx other = {.key = g->open_id};
        rc = account_foreach(t, find_open_id, &other);
        if (rc < 0)
            return rc;
        if (other.name[0])
            return tikd_fail(sg->e, TIKD_EEXIST,
                             "the TikTok user who approved is already connected as account %s: "
                             "one TikTok user can be one account only; nothing stored (remove "
                             "%s first to connect it under another name)",
                             other.name, other.name);
    }
    bool reconnected = sg->reconnected = a.state != ACCT_ACTIVE;
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
        rc = unsure_del(t, a.id);
    if (rc == 0 && reconnected) /* what its lost grant paused goes now */
        rc = job_wake_account(t, a.name);
    if (rc == 0)
        rc = audit_append(t, "oauth", sg->event, sg->detail);
    return rc;
}

static void notify_state(struct oauth *o, const char *name);

int oauth_save_grant(struct oauth *o, const char *name, const char *account_id,
                     const struct grant *g, const char *event, struct tikd_err *e)
{
    tlog_secret_add(g->access, strlen(g->access));
    tlog_secret_add(g->refresh, strlen(g->refresh));
    struct store_grant sg = {o, name, account_id, g, event, NULL, NULL, 0, 0, "", e, false};
    /* durable before anyone goes on: TikTok may have rotated the refresh
     * token, and a grant lost with a group would lose the account */
    int rc = store_write_durable(o->s, store_grant_txn, &sg, e);
    if (rc == 0) {
        if (sg.old_access && strcmp(sg.old_access, g->access) != 0)
            tlog_secret_remove(sg.old_access, sg.old_access_n);
        if (sg.old_refresh && strcmp(sg.old_refresh, g->refresh) != 0)
            tlog_secret_remove(sg.old_refresh, sg.old_refresh_n);
        TLOG(TLOG_INFO, "oauth.tokens_stored", LSTR("account", name), LSTR("why", event),
             LDBL("access_expires_in", g->expires_in),
             LDBL("refresh_expires_in", g->refresh_expires_in));
        if (sg.reconnected) /* active now: the jobs it paused are due (job_wake_account) */
            notify_state(o, name);
    }
    vault_wipe_free(sg.old_access, sg.old_access_n);
    vault_wipe_free(sg.old_refresh, sg.old_refresh_n);
    return rc;
}

/* ---- account states -------------------------------------------------------------- */

static void notify_state(struct oauth *o, const char *name)
{
    if (!o->on_state)
        return;
    struct read_acct r = {.name = name, .o = o};
    if (store_read(o->s, oauth_read_acct_txn, &r, NULL) == 0)
        o->on_state(o->on_state_ud, &r.a);
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

/* ---- refresh holds: TikTok's Retry-After, and a backoff when it says nothing ---------- */

#define HOLD_FIRST 5.0   /* seconds after a first failed refresh */
#define HOLD_MAX   600.0 /* the backoff's ceiling */

static struct refresh_hold *hold_find(struct oauth *o, const char *account_id)
{
    for (size_t i = 0; i < o->nholds; i++)
        if (strcmp(o->holds[i].account_id, account_id) == 0)
            return &o->holds[i];
    return NULL;
}

double oauth_refresh_held(struct oauth *o, const char *account_id)
{
    struct refresh_hold *h = hold_find(o, account_id);
    return h && h->until > clock_now() ? h->until : 0;
}

/* A refresh failed for now: wait retry_after (when TikTok gave one, and it is
 * longer) or the next backoff step. */
static void hold_set(struct oauth *o, const char *account_id, double retry_after)
{
    struct refresh_hold *h = hold_find(o, account_id);
    if (!h) {
        if (o->nholds == o->capholds) {
            size_t nc = o->capholds ? o->capholds * 2 : 16;
            struct refresh_hold *g = realloc(o->holds, nc * sizeof *g);
            if (!g)
                return;
            o->holds = g;
            o->capholds = nc;
        }
        h = &o->holds[o->nholds++];
        *h = (struct refresh_hold){.backoff = 0};
        snprintf(h->account_id, sizeof h->account_id, "%s", account_id);
    }
    h->backoff = h->backoff ? h->backoff * 2 : HOLD_FIRST;
    if (h->backoff > HOLD_MAX)
        h->backoff = HOLD_MAX;
    double wait = retry_after > h->backoff ? retry_after : h->backoff;
    h->until = clock_now() + wait;
}

static void hold_clear(struct oauth *o, const char *account_id)
{
    struct refresh_hold *h = hold_find(o, account_id);
    if (h)
        *h = o->holds[--o->nholds];
}

static void on_resweep(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)loop;
    (void)revents;
    oauth_sweep(w->data);
}

/* Sweep again in `after` seconds (or sooner, if one is already set). */
static void resweep_in(struct oauth *o, double after)
{
    if (!o->c.loop)
        return;
    if (!o->resweep.data) {
        ev_init(&o->resweep, on_resweep);
        o->resweep.data = o;
    }
    double at = ev_now(o->c.loop) + after;
    if (ev_is_active(&o->resweep) && o->resweep_at <= at)
        return;
    ev_timer_stop(o->c.loop, &o->resweep);
    ev_timer_set(&o->resweep, after, 0.);
    ev_timer_start(o->c.loop, &o->resweep);
    o->resweep_at = at;
}

/* A refresh that did not store a grant: the lease goes, and when the refresh
 * may have reached TikTok, the account is marked unsure in the same
 * transaction. */
struct failed_ctx {
    struct oauth *o;
    const char *aid;
    const char *unsure; /* what happened, or NULL */
    char was[300];      /* out: the unsure mark found (invalid_grant) */
    double was_at;
};

static int refresh_failed_txn(struct store_txn *t, void *ctx)
{
    struct failed_ctx *f = ctx;
    f->was_at = unsure_get(t, f->aid, f->was, sizeof f->was);
    int rc = lease_drop(f->o, t, f->aid);
    if (rc == 0 && f->unsure)
        rc = unsure_put(t, f->aid, f->unsure);
    return rc;
}

static void refresh_done(void *ud, const struct http_resp *r)
{
    struct op *op = ud;
    struct oauth *o = op->o;
    op->x = NULL;
    char msg[900];
    int rc = 0;
    struct grant g;
    json_t *doc = NULL;
    struct failed_ctx f = {o, op->account_id, NULL, "", 0};
    if (r->out.action == POL_OK &&
        (doc = oauth_parse_grant(r->body, r->body_len, &g, msg, sizeof msg))) {
        struct tikd_err e = {0};
        rc = oauth_save_grant(o, op->name, op->account_id, &g, "oauth.refreshed", &e);
        snprintf(msg, sizeof msg, "%s", rc ? e.msg : "refreshed");
        if (rc == 0) {
            hold_clear(o, op->account_id);
        } else { /* TikTok rotated, but the answer could not be stored */
            char lost[300];
            snprintf(lost, sizeof lost, "the answer could not be stored: %.200s", e.msg);
            f.unsure = lost;
            store_write(o->s, refresh_failed_txn, &f, NULL);
        }
    } else if (r->out.action == POL_REAUTH) {
        /* invalid_grant: unless someone else rotated the token meanwhile (a
         * concurrent refresh in another process), the grant is gone */
        struct read_acct ra = {.name = op->name, .o = o, .want_refresh = true};
        bool rotated = store_read(o->s, oauth_read_acct_txn, &ra, NULL) == 0 && ra.refresh &&
                       op->secret && strcmp(ra.refresh, op->secret) != 0;
        oauth_read_acct_free(&ra);
        store_write(o->s, refresh_failed_txn, &f, NULL);
        if (rotated) {
            snprintf(msg, sizeof msg, "another refresh rotated the token first; using its result");
        } else {
            char reason[700];
            if (f.was_at > 0) { /* the token TikTok rotated to was lost with an answer */
                snprintf(reason, sizeof reason,
                         "TikTok refused the refresh token (%s, log_id %s) after an earlier "
                         "refresh lost its answer (%s, %.0f s before): TikTok rotated the "
                         "token then and the new one never arrived",
                         r->out.code, r->out.log_id, f.was, clock_now() - f.was_at);
                char detail[1000];
                snprintf(detail, sizeof detail, "account=%s code=%s log_id=%s lost=\"%s\"",
                         op->name, r->out.code, r->out.log_id, f.was);
                oauth_audit_now(o, "oauth.rotation_lost", detail);
                TLOG(TLOG_ERROR, "oauth.rotation_lost", LSTR("account", op->name),
                     LSTR("lost", f.was), LSTR("code", r->out.code));
            } else {
                snprintf(reason, sizeof reason, "refresh refused by TikTok: %s (log_id %s)",
                         r->out.code, r->out.log_id);
            }
            oauth_mark(o, op->name, ACCT_NEEDS_REAUTH, reason, NULL);
            snprintf(msg, sizeof msg, "account %s needs to be connected again: %s", op->name,
                     reason);
            rc = TIKD_EINVAL;
        }
    } else {
        char lost[300];
        if (policy_may_have_acted(r->status, &r->out)) {
            if (r->status == 0)
                snprintf(lost, sizeof lost, "no answer: %s", r->out.code);
            else
                snprintf(lost, sizeof lost, "HTTP %ld, %s", r->status,
                         r->out.action == POL_OK ? "a token answer tikd cannot read" : r->out.code);
            f.unsure = lost;
        }
        store_write(o->s, refresh_failed_txn, &f, NULL);
        hold_set(o, op->account_id, r->out.retry_after);
        double wait = oauth_refresh_held(o, op->account_id) - clock_now();
        if (f.unsure) /* tried again when the hold ends, with the same (old) token */
            resweep_in(o, (wait > 0 ? wait : 0) + 0.05); /* ev_now lags clock_now */
        if (r->out.action != POL_OK)
            snprintf(msg, sizeof msg,
                     "refresh failed: %s (code %s, log_id %s); will try again in %.0f s%s",
                     r->out.message, r->out.code, r->out.log_id, wait > 0 ? wait : 0,
                     f.unsure ? " (TikTok may have rotated the token meanwhile)" : "");
        rc = TIKD_EIO;
        char detail[800];
        snprintf(detail, sizeof detail, "account=%s code=%s log_id=%s%s", op->name, r->out.code,
                 r->out.log_id, f.unsure ? " answer_lost=yes" : "");
        oauth_audit_now(o, "oauth.refresh_failed", detail);
    }
    json_decref(doc);
    if (rc)
        TLOG(TLOG_WARN, "oauth.refresh_failed", LSTR("account", op->name), LSTR("error", msg));
    char lb[64];
    metrics_inc("tikd_token_refreshes_total",
                metrics_labels(lb, sizeof lb, "outcome",
                               rc == 0 ? "ok" : policy_action_name(r->out.action), NULL),
                1);
    oauth_op_done(op, rc, msg);
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
    oauth_read_acct_free(&sc->ra);
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
    if (rc == 0 && sc->l.orphaned) { /* its refresh may have reached TikTok */
        char what[300];
        if (unsure_get(t, op->account_id, what, sizeof what) == 0) {
            snprintf(what, sizeof what, "tikd (pid %d) stopped while its refresh was in flight",
                     sc->l.was.pid);
            rc = unsure_put(t, op->account_id, what);
        }
    }
    if (rc == 0 && sc->l.got)
        rc = vault_get(op->o->v, t, sc->ra.a.id, "refresh_token", &sc->ra.refresh,
                       &sc->ra.refresh_n, sc->ra.e);
    return rc;
}

static void refresh_step(struct op *op)
{
    struct oauth *o = op->o;
    struct tikd_err e = {0};
    struct step_ctx sc = {
        .op = op, .l = {o, op->account_id, false, false, {0, 0}}, .ra = {.o = o, .e = &e}};
    int rc = store_write(o->s, step_txn, &sc, &e);
    if (rc == 0 && sc.l.orphaned)
        TLOG(TLOG_WARN, "oauth.refresh_orphaned", LSTR("account", op->name),
             LINT("pid", sc.l.was.pid),
             LSTR("msg", "a refresh was in flight when its process stopped; the old refresh "
                         "token is tried once"));
    if (rc == 0 && sc.renewed) {
        oauth_read_acct_free(&sc.ra);
        oauth_op_done(op, 0, "refreshed by another process");
        return;
    }
    if (rc != 0 || sc.ra.a.state != ACCT_ACTIVE) {
        oauth_read_acct_free(&sc.ra);
        if (sc.l.got)
            lease_release(o, op->account_id);
        oauth_op_done(op, TIKD_EINVAL, rc ? e.msg : "the account is no longer active");
        return;
    }
    if (!sc.l.got) { /* another process is refreshing: look again shortly */
        oauth_read_acct_free(&sc.ra);
        TLOG(TLOG_DEBUG, "oauth.refresh_waits", LSTR("account", op->name));
        if (o->c.loop) {
            ev_timer_set(&op->wait, LEASE_POLL, 0.);
            ev_timer_start(o->c.loop, &op->wait);
        } else {
            oauth_op_done(op, TIKD_EIO, "another process is refreshing this account");
        }
        return;
    }
    struct codec_form f = {0};
    int bad = !sc.ra.refresh || codec_form_add(&f, "client_key", o->c.client_key) ||
              codec_form_add(&f, "client_secret", o->c.client_secret ? o->c.client_secret : "") ||
              codec_form_add(&f, "grant_type", "refresh_token") ||
              codec_form_add(&f, "refresh_token", sc.ra.refresh);
    if (!bad) {
        oauth_wipe_free(op->secret);
        op->secret = strdup(sc.ra.refresh);
        bad = !op->secret || oauth_post_token_form(op, &f, refresh_done, TT_PATH_TOKEN) != 0;
    }
    codec_form_free(&f);
    oauth_read_acct_free(&sc.ra);
    if (bad) {
        lease_release(o, op->account_id);
        oauth_op_done(op, TIKD_ENOMEM, "cannot start the refresh");
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
    int rc = store_read(o->s, oauth_read_acct_txn, &ra, NULL);
    if (rc == 0 && ra.a.state != ACCT_ACTIVE)
        rc = TIKD_EINVAL;
    if (rc == 0 && oauth_refresh_held(o, ra.a.id))
        rc = TIKD_EFULL; /* TikTok asked to wait (Retry-After), or it failed just now */
    if (rc != 0)         /* nothing started: the caller hears it from the return code */
        return rc;
    struct op *op = oauth_op_new(o, OP_REFRESH, name);
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

static int sweep_one(const struct account *a, bool unsure, void *ctx)
{
    struct sweep_ctx *s = ctx;
    struct oauth *o = s->o;
    if (a->state != ACCT_ACTIVE || !oauth_holds(o, a->name))
        return 0; /* (another node of the cluster refreshes it) */
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
    /* a refresh whose answer was lost is tried again at once: a lenient
     * TikTok honours the old token only for a while */
    if (a->access_expires_at - s->now > window && !unsure)
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

/* The accounts the sweep must look at, collected first (refreshing writes to
 * the store, which must not happen inside the walk's read transaction): the
 * active ones whose access token is within refresh_ahead of its end or whose
 * refresh token has a week left (the expiry index, soonest first), and those
 * whose last refresh is in doubt (a lost answer, a dead lease's process),
 * which are few. Nothing else is read, however many accounts there are. */
struct names {
    struct account *v;
    bool *unsure; /* its last refresh lost its answer, or its lease's process is gone */
    size_t n, cap;
    struct store_txn *t;
    char (*doubt)[33]; /* the ids of accounts whose refresh is in doubt */
    size_t ndoubt, capdoubt;
    double cap_window; /* refresh_ahead: no account's window is longer */
};

static int add_name(const char *name, void *ctx)
{
    struct names *n = ctx;
    for (size_t i = 0; i < n->n; i++)
        if (strcmp(n->v[i].name, name) == 0)
            return 0;
    if (n->n == n->cap) {
        size_t nc = n->cap ? n->cap * 2 : 64;
        struct account *g = realloc(n->v, nc * sizeof *g);
        if (!g)
            return TIKD_ENOMEM;
        n->v = g;
        bool *u = realloc(n->unsure, nc * sizeof *u);
        if (!u)
            return TIKD_ENOMEM;
        n->unsure = u;
        n->cap = nc;
    }
    int rc = account_get(n->t, name, &n->v[n->n]);
    if (rc == 0)
        n->unsure[n->n++] = false;
    return rc == TIKD_ENOTFOUND || rc == TIKD_ECORRUPT ? 0 : rc;
}

static int doubt_one(struct store_val k, struct store_val v, void *ctx)
{
    (void)v;
    struct names *n = ctx;
    const char *colon = memrchr(k.p, ':', k.n);
    size_t l = colon ? k.n - (size_t)(colon + 1 - (const char *)k.p) : 0;
    if (!l || l > 32)
        return 0;
    if (n->ndoubt == n->capdoubt) {
        size_t nc = n->capdoubt ? n->capdoubt * 2 : 16;
        char(*g)[33] = realloc(n->doubt, nc * sizeof *g);
        if (!g)
            return TIKD_ENOMEM;
        n->doubt = g;
        n->capdoubt = nc;
    }
    memcpy(n->doubt[n->ndoubt], colon + 1, l);
    n->doubt[n->ndoubt++][l] = '\0';
    return 0;
}

/* a lease whose holder is alive is a refresh under way (its holder sees
 * it through); only a dead holder's leaves a doubt */
static int dead_lease_one(struct store_val k, struct store_val v, void *ctx)
{
    bool dead = v.n == LEASE_LEN_OLD || (v.n == LEASE_LEN && !proc_alive(lease_holder(&v)));
    return dead ? doubt_one(k, v, ctx) : 0;
}

static int doubted_acct(const struct account *a, void *ctx)
{
    struct names *n = ctx;
    for (size_t i = 0; i < n->ndoubt; i++)
        if (strcmp(n->doubt[i], a->id) == 0)
            return add_name(a->name, n);
    return 0;
}

static int collect_txn(struct store_txn *t, void *ctx)
{
    struct names *n = ctx;
    n->t = t;
    double now = clock_now();
    int rc = account_foreach_expiring(t, false, now + n->cap_window, add_name, n);
    if (rc == 0)
        rc = account_foreach_expiring(t, true, now + 7 * 86400, add_name, n);
    if (rc == 0)
        rc = store_foreach(t, STORE_DB_META, "refresh_unsure:", 15, doubt_one, n);
    if (rc == 0)
        rc = store_foreach(t, STORE_DB_META, "lease:refresh:", 14, dead_lease_one, n);
    if (rc == 0 && n->ndoubt) /* ids, not names: rare enough to look at every account */
        rc = account_foreach(t, doubted_acct, n);
    for (size_t i = 0; rc == 0 && i < n->n; i++) {
        char key[80], what[8];
        struct store_val v;
        size_t kl = lease_key(n->v[i].id, key, sizeof key);
        bool dead_lease = store_get(t, STORE_DB_META, key, kl, &v) == 0 && v.n == LEASE_LEN &&
                          !proc_alive(lease_holder(&v));
        n->unsure[i] = dead_lease || unsure_get(t, n->v[i].id, what, sizeof what) > 0;
    }
    return rc;
}

size_t oauth_sweep(struct oauth *o)
{
    struct names all = {.cap_window = o->c.refresh_ahead};
    struct sweep_ctx s = {o, clock_now(), 0};
    if (store_read(o->s, collect_txn, &all, NULL) == 0)
        for (size_t i = 0; i < all.n; i++)
            sweep_one(&all.v[i], all.unsure[i], &s);
    free(all.v);
    free(all.unsure);
    free(all.doubt);
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
    if (rc == 0)
        rc = unsure_del(t, a.id); /* its refresh lease expires by itself */
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
    oauth_op_done(op, st, msg);
}

int oauth_remove(struct oauth *o, const char *name, oauth_done_fn done, void *ud,
                 struct tikd_err *e)
{
    struct read_acct ra = {.name = name, .o = o, .want_access = true, .e = e};
    int rc = store_read(o->s, oauth_read_acct_txn, &ra, e);
    if (rc == TIKD_ENOTFOUND && !ra.a.id[0])
        return tikd_fail(e, TIKD_ENOTFOUND, "no account named %s", name);
    struct op *op = oauth_op_new(o, OP_REVOKE, name);
    if (!op) {
        oauth_read_acct_free(&ra);
        return tikd_fail(e, TIKD_ENOMEM, "oauth: out of memory");
    }
    snprintf(op->account_id, sizeof op->account_id, "%s", ra.a.id);
    op->w[op->nw++] = (struct waiter){done, ud};
    if (!ra.access) { /* never connected: nothing to revoke */
        oauth_read_acct_free(&ra);
        struct http_resp none = {.out = {.action = POL_FAIL, .message = "no token to revoke"}};
        revoke_done(op, &none);
        return 0;
    }
    op->secret = strdup(ra.access);
    struct codec_form f = {0};
    int bad = !op->secret || codec_form_add(&f, "client_key", o->c.client_key) ||
              codec_form_add(&f, "client_secret", o->c.client_secret ? o->c.client_secret : "") ||
              codec_form_add(&f, "token", ra.access);
    oauth_read_acct_free(&ra);
    if (!bad)
        bad = oauth_post_token_form(op, &f, revoke_done, TT_PATH_REVOKE) != 0;
    codec_form_free(&f);
    if (bad) {
        oauth_op_free(op);
        return tikd_fail(e, TIKD_ENOMEM, "oauth: cannot start the revocation");
    }
    return 0;
}
