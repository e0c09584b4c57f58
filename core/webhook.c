/* webhook.c - TikTok's webhook deliveries (see webhook.h): signature
 * checks, event decoding, de-duplication and what each event does.
 *
 * STORE_DB_SEEN: 'k' key(32) -> seen at (be64 ms), and 't' seen at (be64
 * ms) key(32) -> "", the prune order. */
#include "webhook.h"
#include "clock.h"
#include "codec.h"
#include "account.h"
#include "audit.h"
#include "job.h"
#include "log.h"
#include "oauth.h"
#include "server.h"

#include <jansson.h>
#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int webhook_verify(const char *secret, const char *header, const char *body, size_t n, double now,
                   double tolerance, char *why, size_t wn)
{
    if (!secret || !*secret) {
        snprintf(why, wn, "no client secret configured: webhooks cannot be verified");
        return -1;
    }
    if (!header) {
        snprintf(why, wn, "no TikTok-Signature header");
        return -1;
    }
    char t[32] = "", s[130] = "";
    for (const char *p = header; *p;) {
        const char *end = strchr(p, ',');
        size_t l = end ? (size_t)(end - p) : strlen(p);
        while (l && *p == ' ')
            p++, l--;
        const char *eq = memchr(p, '=', l);
        if (eq) {
            size_t kl = (size_t)(eq - p), vl = l - kl - 1;
            if (kl == 1 && *p == 't' && vl < sizeof t)
                snprintf(t, sizeof t, "%.*s", (int)vl, eq + 1);
            else if (kl == 1 && *p == 's' && vl < sizeof s)
                snprintf(s, sizeof s, "%.*s", (int)vl, eq + 1);
        }
        p = end ? end + 1 : p + l;
    }
    char *tend;
    long long ts = strtoll(t, &tend, 10);
    if (!t[0] || *tend || strlen(s) != 64) {
        snprintf(why, wn, "malformed TikTok-Signature header (expected t=<unix>,s=<64 hex>)");
        return -1;
    }
    /* HMAC-SHA256 over t "." body, the exact bytes received */
    size_t tl = strlen(t);
    char *msg = malloc(tl + 1 + n);
    if (!msg) {
        snprintf(why, wn, "out of memory");
        return -1;
    }
    memcpy(msg, t, tl);
    msg[tl] = '.';
    memcpy(msg + tl + 1, body, n);
    char expect[CODEC_SHA256_HEX];
    codec_hmac_sha256_hex(secret, msg, tl + 1 + n, expect);
    free(msg);
    char lower[65];
    for (int i = 0; i < 64; i++)
        lower[i] = (char)(s[i] >= 'A' && s[i] <= 'F' ? s[i] + 32 : s[i]);
    lower[64] = '\0';
    if (CRYPTO_memcmp(expect, lower, 64) != 0) {
        snprintf(why, wn, "bad signature");
        return -1;
    }
    double skew = now - (double)ts;
    if (skew > tolerance || -skew > tolerance) {
        snprintf(why, wn, "stale signature: t is %.0f s away from now (tolerance %.0f s)", skew,
                 tolerance);
        return -1;
    }
    return 0;
}

static void str(json_t *o, const char *k, char *out, size_t n)
{
    json_t *v = json_object_get(o, k);
    if (json_is_string(v))
        snprintf(out, n, "%s", json_string_value(v));
    else if (json_is_integer(v))
        snprintf(out, n, "%lld", (long long)json_integer_value(v));
}

int webhook_parse(const char *body, size_t n, struct webhook_event *ev, char *why, size_t wn)
{
    memset(ev, 0, sizeof *ev);
    json_error_t err;
    json_t *o = json_loadb(body, n, 0, &err);
    if (!json_is_object(o)) {
        snprintf(why, wn, "the body is not a JSON object");
        json_decref(o);
        return -1;
    }
    str(o, "event", ev->event, sizeof ev->event);
    str(o, "client_key", ev->client_key, sizeof ev->client_key);
    str(o, "user_openid", ev->user_openid, sizeof ev->user_openid);
    ev->create_time = json_integer_value(json_object_get(o, "create_time"));
    const char *content = json_string_value(json_object_get(o, "content"));
    json_t *c = content ? json_loads(content, 0, &err) : NULL;
    if (!ev->event[0] || (content && !json_is_object(c))) {
        snprintf(why, wn,
                 ev->event[0] ? "content is not a JSON object in a string" : "no event name");
        json_decref(c);
        json_decref(o);
        return -1;
    }
    char *k = NULL;
    if (asprintf(&k, "%s\n%s\n%lld", ev->event, content ? content : "", ev->create_time) > 0)
        codec_sha256(k, strlen(k), ev->key);
    free(k);
    if (c) {
        str(c, "publish_id", ev->publish_id, sizeof ev->publish_id);
        str(c, "publish_type", ev->publish_type, sizeof ev->publish_type);
        str(c, "post_id", ev->post_id, sizeof ev->post_id);
        json_t *pid = json_object_get(c, "post_id");
        if (json_is_integer(pid)) /* a string per the spec; a bare number is kept exact too */
            snprintf(ev->post_id, sizeof ev->post_id, "%lld", (long long)json_integer_value(pid));
        json_t *r = json_object_get(c, "reason");
        if (!r)
            r = json_object_get(c, "fail_reason"); /* accepted too (spec §5.2) */
        if (json_is_integer(r))
            ev->reason_code = json_integer_value(r);
        else if (json_is_string(r))
            snprintf(ev->reason, sizeof ev->reason, "%s", json_string_value(r));
    }
    json_decref(c);
    json_decref(o);
    return 0;
}

/* ---- seen events ------------------------------------------------------------------ */

#define PRUNE_BATCH 16

struct expired {
    unsigned char k[PRUNE_BATCH][1 + 8 + 32];
    int n;
    uint64_t before;
};

static int expired_one(struct store_val k, struct store_val v, void *ctx)
{
    (void)v;
    struct expired *x = ctx;
    if (k.n != sizeof x->k[0])
        return 0;
    if (store_be64_get((const unsigned char *)k.p + 1) >= x->before || x->n == PRUNE_BATCH)
        return 1; /* in time order: the rest are younger */
    memcpy(x->k[x->n++], k.p, k.n);
    return 0;
}

/* Up to PRUNE_BATCH keys older than WEBHOOK_SEEN_FOR, collected first: the
 * walk must not see its own deletions. */
static int prune(struct store_txn *t, double now)
{
    struct expired x = {.before = (uint64_t)((now - WEBHOOK_SEEN_FOR) * 1000)};
    int rc = store_foreach(t, STORE_DB_SEEN, "t", 1, expired_one, &x);
    for (int i = 0; rc >= 0 && i < x.n; i++) {
        unsigned char key[33] = {'k'};
        memcpy(key + 1, x.k[i] + 9, 32);
        rc = store_del(t, STORE_DB_SEEN, key, sizeof key);
        if (rc == 0)
            rc = store_del(t, STORE_DB_SEEN, x.k[i], sizeof x.k[i]);
    }
    return rc < 0 ? rc : 0;
}

int webhook_seen(struct store_txn *t, const struct webhook_event *ev, double now)
{
    unsigned char key[33] = {'k'};
    memcpy(key + 1, ev->key, 32);
    struct store_val v;
    if (store_get(t, STORE_DB_SEEN, key, sizeof key, &v) == 0)
        return 1;
    uint64_t ms = (uint64_t)(now * 1000);
    int rc = prune(t, now);
    if (rc != 0)
        return rc;
    unsigned char when[8], order[1 + 8 + 32] = {'t'};
    store_be64_put(when, ms);
    store_be64_put(order + 1, ms);
    memcpy(order + 9, ev->key, 32);
    rc = store_put(t, STORE_DB_SEEN, key, sizeof key, when, sizeof when);
    return rc ? rc : store_put(t, STORE_DB_SEEN, order, sizeof order, "", 0);
}

/* Keys a tikd before schema 2 kept in META ("wh:" hash -> be64 seconds). */
struct old_keys {
    unsigned char (*k)[32];
    uint64_t *at;
    size_t n, cap;
};

static int old_key(struct store_val k, struct store_val v, void *ctx)
{
    struct old_keys *o = ctx;
    if (k.n != 3 + 32 || v.n != 8)
        return 0;
    if (o->n == o->cap) {
        size_t nc = o->cap ? o->cap * 2 : 256;
        unsigned char(*g)[32] = realloc(o->k, nc * sizeof *g);
        if (g)
            o->k = g;
        uint64_t *ga = g ? realloc(o->at, nc * sizeof *ga) : NULL;
        if (!g || !ga)
            return TIKD_ENOMEM;
        o->at = ga;
        o->cap = nc;
    }
    memcpy(o->k[o->n], (const unsigned char *)k.p + 3, 32);
    o->at[o->n++] = store_be64_get(v.p);
    return 0;
}

int webhook_seen_migrate(struct store_txn *t)
{
    struct old_keys o = {0};
    int rc = store_foreach(t, STORE_DB_META, "wh:", 3, old_key, &o);
    for (size_t i = 0; rc >= 0 && i < o.n; i++) {
        unsigned char meta[35] = {'w', 'h', ':'}, key[33] = {'k'}, when[8];
        unsigned char order[1 + 8 + 32] = {'t'};
        memcpy(meta + 3, o.k[i], 32);
        memcpy(key + 1, o.k[i], 32);
        store_be64_put(when, o.at[i] * 1000);
        memcpy(order + 1, when, 8);
        memcpy(order + 9, o.k[i], 32);
        rc = store_put(t, STORE_DB_SEEN, key, sizeof key, when, sizeof when);
        if (rc == 0)
            rc = store_put(t, STORE_DB_SEEN, order, sizeof order, "", 0);
        if (rc == 0)
            rc = store_del(t, STORE_DB_META, meta, sizeof meta);
    }
    free(o.k);
    free(o.at);
    return rc < 0 ? rc : 0;
}

/* ---- serving -------------------------------------------------------------------- */

struct event_ctx {
    const struct webhook_event *ev;
    bool dup;
    uint64_t woke;    /* the job made due now, or 0 */
    uint64_t adopted; /* an unsure job this event named the publish of, or 0 */
    int candidates;   /* unsure jobs the event could be about */
    bool not_yet;     /* one of them still waits for its init's answer: ask again later */
};

/* ---- a publish tikd never heard of: an unsure job's ------------------------------ */

struct open_id_ctx {
    const char *open_id;
    char name[ACCT_NAME_MAX + 1];
};

static int open_id_one(const struct account *a, void *ctx)
{
    struct open_id_ctx *o = ctx;
    if (strcmp(a->open_id, o->open_id) != 0)
        return 0;
    snprintf(o->name, sizeof o->name, "%s", a->name);
    return 1;
}

struct unsure_ctx {
    const struct webhook_event *ev;
    uint64_t id;
    int n;
    bool in_flight; /* a candidate whose init's answer may still come */
};

/* Could ev be about j: a pull whose init may have reached TikTok with no
 * publish_id recorded, of the kind and mode the event names, sent before
 * the event was made? */
static int unsure_one(const struct job *j, void *ctx)
{
    struct unsure_ctx *u = ctx;
    const struct webhook_event *ev = u->ev;
    if (!job_pull_unsettled(j))
        return 0;
    const char *type = ev->publish_type;
    if ((strcmp(type, "DIRECT_PUBLISH") == 0 && j->mode != JOB_DIRECT) ||
        (strcmp(type, "INBOX_SHARE") == 0 && j->mode != JOB_DRAFT))
        return 0;
    /* TikTok's publish ids say the media: p_ a photo post, v_ a video (spec §2.0) */
    if ((ev->publish_id[0] == 'p' && j->kind != JOB_PHOTO) ||
        (ev->publish_id[0] == 'v' && j->kind == JOB_PHOTO))
        return 0;
    if (ev->create_time > 0 && (double)ev->create_time + 300 < j->init_sent_at)
        return 0; /* made before this init left (clock skew allowed) */
    u->id = j->id;
    u->n++;
    u->in_flight |= j->state != JOB_UNSURE;
    return 0;
}

/* The events that say TikTok has a publish (a pull it took) */
static bool names_a_publish(const char *event)
{
    return strcmp(event, "post.publish.complete") == 0 ||
           strcmp(event, "post.publish.failed") == 0 ||
           strcmp(event, "post.publish.inbox_delivered") == 0 ||
           strcmp(event, "post.publish.publicly_available") == 0;
}

/* A post.publish.* event for a publish no job ever held: when exactly one
 * unsure job of the account can be its own, the job takes the publish and
 * asks its status (which decides, as for any publish). Several: none is
 * guessed at (the pipeline sends one pull of a kind per account until it is
 * settled, so there are not). While a candidate still waits for its init's
 * answer, TikTok is asked to deliver it again later (x->not_yet): the answer
 * may name the publish, or leave the candidate unsure. */
static int adopt(struct store_txn *t, struct event_ctx *x, struct job *j)
{
    const struct webhook_event *ev = x->ev;
    if (strstr(ev->publish_id, "_file~") || !names_a_publish(ev->event) || !ev->user_openid[0])
        return 0; /* an upload session (never a pull's), or nothing to go by */
    int rc = job_publish_seen(t, ev->publish_id);
    if (rc != 0)
        return rc < 0 ? rc : 0; /* a publish a job held before (TikTok failed it): not new */
    struct open_id_ctx o = {ev->user_openid, ""};
    rc = account_foreach(t, open_id_one, &o);
    if (rc < 0 || !o.name[0])
        return rc < 0 ? rc : 0;
    struct unsure_ctx u = {ev, 0, 0, false};
    if ((rc = job_foreach_account_open(t, o.name, unsure_one, &u)) < 0)
        return rc;
    x->candidates = u.n;
    if (u.in_flight) {
        x->not_yet = true;
        return TIKD_EEXIST; /* nothing is written: the delivery is refused, for now */
    }
    if (u.n != 1 || (rc = job_get(t, u.id, j)) != 0)
        return rc;
    snprintf(j->publish_id, sizeof j->publish_id, "%s", ev->publish_id);
    j->state = JOB_PROCESSING;
    j->processing_deadline = 0; /* the pipeline's timeout starts at its first look */
    j->watch_until = 0;
    j->attempts++;
    j->due_at = clock_now();
    snprintf(j->reason, sizeof j->reason,
             "TikTok's %s webhook named publish %.80s, the one its init's lost answer held",
             ev->event, ev->publish_id);
    char detail[400];
    snprintf(detail, sizeof detail, "job=%llu account=%s publish_id=%s via=webhook event=%s",
             (unsigned long long)j->id, j->account, j->publish_id, ev->event);
    if ((rc = job_put(t, j)) == 0 && (rc = audit_append(t, "tiktok", "job.adopted", detail)) == 0)
        x->adopted = x->woke = j->id;
    return rc;
}

/* ---- a publish tikd knows ------------------------------------------------------ */

/* What the event tells of its job: a public post id, a post no longer public,
 * or a change its status fetch confirms (a processing job is due now). */
static int known(struct store_txn *t, struct event_ctx *x, struct job *j)
{
    const struct webhook_event *ev = x->ev;
    bool public = strcmp(ev->event, "post.publish.publicly_available") == 0;
    bool hidden = strcmp(ev->event, "post.publish.no_longer_publicaly_available") == 0;
    char detail[400];
    snprintf(detail, sizeof detail, "job=%llu account=%s publish_id=%s post_id=%s via=webhook",
             (unsigned long long)j->id, j->account, j->publish_id, ev->post_id);
    int rc = 0;
    bool changed = false;
    if (public && job_add_post_id(j, ev->post_id)) {
        changed = true;
        rc = audit_append(t, "tiktok", "job.post_id", detail);
    }
    if (rc == 0 && hidden)
        rc = audit_append(t, "tiktok", "job.post_hidden", detail);
    if (rc == 0 && public && j->post_ids[0] && j->watch_until > 0 && job_state_final(j->state)) {
        j->watch_until = 0; /* it came: no more asking */
        j->reason[0] = '\0';
        changed = true;
    }
    if (rc == 0 && j->state == JOB_PROCESSING) {
        j->due_at = clock_now();
        x->woke = j->id;
        changed = true;
    }
    return rc || !changed ? rc : job_put(t, j);
}

/* One transaction: the event is seen, and a publish event's job learns it. */
static int event_txn(struct store_txn *t, void *ctx)
{
    struct event_ctx *x = ctx;
    x->woke = x->adopted = 0;
    x->candidates = 0;
    x->not_yet = false;
    int rc = webhook_seen(t, x->ev, clock_now());
    x->dup = rc == 1;
    if (rc != 0 || strncmp(x->ev->event, "post.publish.", 13) != 0 || !x->ev->publish_id[0])
        return rc == 1 ? 0 : rc;
    struct job *j = malloc(sizeof *j);
    if (!j)
        return TIKD_ENOMEM;
    uint64_t id;
    rc = job_find_publish(t, x->ev->publish_id, &id);
    if (rc == 0 && (rc = job_get(t, id, j)) == 0)
        rc = known(t, x, j);
    else if (rc == TIKD_ENOTFOUND)
        rc = adopt(t, x, j); /* not ours, or an unsure job's */
    free(j);
    return rc;
}

static void revoked(const struct webhook_cfg *c, const struct webhook_event *ev)
{
    static const char *const reasons[] = {"unknown",         "user disconnected the app",
                                          "account deleted", "age changed",
                                          "account banned",  "developer revoked"};
    char reason[200];
    snprintf(reason, sizeof reason, "authorization.removed webhook: %s (reason %lld)",
             ev->reason_code >= 0 && ev->reason_code <= 5 ? reasons[ev->reason_code] : "unknown",
             ev->reason_code);
    struct tikd_err e = {0};
    if (oauth_mark(c->oauth, ev->user_openid, ACCT_REVOKED, reason, &e) != 0)
        TLOG(TLOG_WARN, "webhook.unknown_account", LSTR("open_id", ev->user_openid));
}

void webhook_serve(const struct webhook_cfg *c, struct srv_req *r)
{
    size_t n;
    const char *body = srv_body(r, &n);
    char why[200];
    double now = clock_now();
    if (webhook_verify(c->client_secret, srv_header(r, "TikTok-Signature"), body, n, now,
                       c->tolerance, why, sizeof why) != 0) {
        TLOG(TLOG_WARN, "webhook.rejected", LSTR("reason", why));
        srv_respond(r, 401, "text/plain", "signature check failed\n");
        return;
    }
    struct webhook_event ev;
    if (webhook_parse(body, n, &ev, why, sizeof why) != 0) {
        TLOG(TLOG_WARN, "webhook.rejected", LSTR("reason", why));
        srv_respond(r, 400, "text/plain", "malformed event\n");
        return;
    }
    if (c->client_key && strcmp(ev.client_key, c->client_key) != 0) {
        TLOG(TLOG_WARN, "webhook.rejected", LSTR("reason", "for another client_key"));
        srv_respond(r, 400, "text/plain", "wrong client_key\n");
        return;
    }
    if (ev.create_time > 0 && (double)ev.create_time < now - WEBHOOK_SEEN_FOR) {
        TLOG(TLOG_WARN, "webhook.stale", LSTR("webhook_event", ev.event),
             LINT("create_time", ev.create_time));
        srv_respond(r, 200, "text/plain", "ok\n"); /* TikTok stops retrying long before */
        return;
    }
    struct event_ctx x = {&ev, false, 0, 0, 0, false};
    struct tikd_err e = {0};
    if (store_write(c->store, event_txn, &x, &e) != 0) {
        if (x.not_yet)
            TLOG(TLOG_INFO, "webhook.not_yet", LSTR("webhook_event", ev.event),
                 LSTR("publish_id", ev.publish_id), LINT("candidates", x.candidates));
        srv_respond(r, 503, "text/plain", "try again\n"); /* TikTok retries */
        return;
    }
    TLOG(TLOG_INFO, "webhook.received", LSTR("webhook_event", ev.event),
         LSTR("open_id", ev.user_openid), LSTR("publish_id", ev.publish_id),
         LBOOL("duplicate", x.dup));
    if (x.adopted)
        TLOG(TLOG_WARN, "job.adopted", LINT("job", x.adopted), LSTR("publish_id", ev.publish_id),
             LSTR("webhook_event", ev.event));
    else if (x.candidates > 1)
        TLOG(TLOG_WARN, "webhook.unsure_ambiguous", LSTR("publish_id", ev.publish_id),
             LSTR("open_id", ev.user_openid), LINT("candidates", x.candidates));
    if (x.woke) {
        TLOG(TLOG_INFO, "webhook.job", LINT("job", x.woke), LSTR("publish_id", ev.publish_id));
        if (c->kick)
            c->kick(c->kick_ud);
    }
    if (!x.dup && strcmp(ev.event, "authorization.removed") == 0)
        revoked(c, &ev);
    srv_respond(r, 200, "text/plain", "ok\n");
}
