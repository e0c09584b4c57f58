/* notify.c - the notification queue and its sender (see notify.h).
 *
 * STORE_DB_NOTIFY: id (be64) -> {url_sha256 (the URL is found again in
 * notify.webhooks by it: its path may be a secret), kind, subject, detail,
 * at, attempts, next_at}; META "notify.seq": the last id given (ids never repeat, so a
 * receiver may deduplicate by them). The sender walks the queue (at most
 * NOTIFY_MAX records) when woken: at start, after an enqueue, after an
 * answer, and at the earliest next_at. */
#include "notify.h"
#include "clock.h"
#include "codec.h"
#include "http.h"
#include "log.h"
#include "metrics.h"

#include <ev.h>
#include <jansson.h>
#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define IN_FLIGHT    4
#define MAX_ATTEMPTS 12
#define BACKOFF_MAX  3600.0
#define SEND_TIMEOUT 30.0

static const char SEQ_KEY[] = "notify.seq";

struct sending {
    struct notify *n;
    uint64_t id;
    struct http_xfer *x;
};

struct notify {
    struct ev_loop *loop;
    struct store *s;
    struct http *h;
    struct strlist urls;
    char *secret;
    double backoff;    /* the first retry's delay */
    double hold_until; /* the queue could not be written: nothing sent before then */
    ev_timer wake;
    struct sending *flight[IN_FLIGHT];
};

static void key_of(unsigned char k[8], uint64_t id)
{
    store_be64_put(k, id);
}

/* ---- enqueue ------------------------------------------------------------------------ */

struct enq {
    struct notify *n;
    const char *kind, *subject, *detail;
    int dropped;
};

static int count_one(struct store_val k, struct store_val v, void *ctx)
{
    (void)k;
    (void)v;
    (*(size_t *)ctx)++;
    return 0;
}

static int oldest(struct store_val k, struct store_val v, void *ctx)
{
    (void)v;
    if (k.n == 8)
        memcpy(ctx, k.p, 8);
    return 1;
}

static int enq_txn(struct store_txn *t, void *ctx)
{
    struct enq *q = ctx;
    struct store_val v;
    uint64_t seq = 0;
    if (store_get(t, STORE_DB_META, SEQ_KEY, sizeof SEQ_KEY - 1, &v) == 0 && v.n == 8)
        seq = store_be64_get(v.p);
    size_t have = 0;
    int rc = store_foreach(t, STORE_DB_NOTIFY, NULL, 0, count_one, &have);
    q->dropped = 0;
    for (; rc >= 0 && have + q->n->urls.n > NOTIFY_MAX && have > 0; have--) {
        unsigned char k[8];
        rc = store_foreach(t, STORE_DB_NOTIFY, NULL, 0, oldest, k);
        if (rc >= 0)
            rc = store_del(t, STORE_DB_NOTIFY, k, 8);
        q->dropped++;
    }
    if (rc < 0)
        return rc;
    double now = clock_now();
    for (size_t i = 0; i < q->n->urls.n; i++) {
        char uh[CODEC_SHA256_HEX]; /* the URL's hash: its path may be a secret (chat webhooks) */
        codec_sha256_hex(q->n->urls.v[i], strlen(q->n->urls.v[i]), uh);
        json_t *o = json_pack("{s:s, s:s, s:s, s:s, s:f, s:i, s:f}", "url_sha256", uh, "kind",
                              q->kind, "subject", q->subject, "detail", q->detail, "at", now,
                              "attempts", 0, "next_at", now);
        char *s = o ? json_dumps(o, JSON_COMPACT | JSON_REAL_PRECISION(17)) : NULL;
        json_decref(o);
        if (!s)
            return TIKD_ENOMEM;
        unsigned char k[8];
        key_of(k, ++seq);
        rc = store_put(t, STORE_DB_NOTIFY, k, 8, s, strlen(s));
        free(s);
        if (rc != 0)
            return rc;
    }
    unsigned char sv[8];
    store_be64_put(sv, seq);
    return store_put(t, STORE_DB_META, SEQ_KEY, sizeof SEQ_KEY - 1, sv, 8);
}

static void arm(struct notify *n, double in)
{
    ev_timer_stop(n->loop, &n->wake);
    ev_timer_set(&n->wake, in > 0 ? in : 0, 0.);
    ev_timer_start(n->loop, &n->wake);
}

int notify_enqueue(struct notify *n, const char *kind, const char *subject, const char *detail)
{
    if (!n || !n->urls.n)
        return 0;
    struct enq q = {n, kind, subject ? subject : "", detail ? detail : "", 0};
    struct tikd_err e = {0};
    int rc = store_write(n->s, enq_txn, &q, &e);
    if (rc != 0) {
        TLOG(TLOG_ERROR, "notify.not_queued", LSTR("kind", kind), LSTR("reason", e.msg));
        return rc;
    }
    if (q.dropped) {
        TLOG(TLOG_WARN, "notify.dropped", LINT("deliveries", q.dropped), LINT("max", NOTIFY_MAX));
        metrics_inc("tikd_notifications_total", "outcome=\"dropped\"", q.dropped);
    }
    arm(n, 0);
    return 0;
}

/* ---- sending ------------------------------------------------------------------------- */

struct rec {
    uint64_t id;
    json_t *o;
};

struct due_ctx {
    struct notify *n;
    double now, next; /* the earliest next_at not due yet */
    struct rec due[IN_FLIGHT];
    int ndue;
    size_t pending;
};

static bool flying(const struct notify *n, uint64_t id)
{
    for (int i = 0; i < IN_FLIGHT; i++)
        if (n->flight[i] && n->flight[i]->id == id)
            return true;
    return false;
}

static int free_slots(const struct notify *n)
{
    int k = 0;
    for (int i = 0; i < IN_FLIGHT; i++)
        k += !n->flight[i];
    return k;
}

static int due_one(struct store_val k, struct store_val v, void *ctx)
{
    struct due_ctx *d = ctx;
    if (k.n != 8)
        return 0;
    d->pending++;
    uint64_t id = store_be64_get(k.p);
    if (flying(d->n, id))
        return 0;
    json_t *o = json_loadb(v.p, v.n, 0, NULL);
    double at = json_number_value(json_object_get(o, "next_at"));
    if (at > d->now || d->ndue >= free_slots(d->n)) {
        if (at > d->now && at < d->next) /* (due but no free slot: an answer pumps again) */
            d->next = at;
        json_decref(o);
        return 0;
    }
    d->due[d->ndue++] = (struct rec){id, o};
    return 0;
}

static int due_txn(struct store_txn *t, void *ctx)
{
    return store_foreach(t, STORE_DB_NOTIFY, NULL, 0, due_one, ctx);
}

struct answered {
    double backoff;
    uint64_t id;
    bool ok;
    long status;
    char why[200];
    int attempts; /* out */
    bool gave_up;
};

static int answered_txn(struct store_txn *t, void *ctx)
{
    struct answered *a = ctx;
    unsigned char k[8];
    key_of(k, a->id);
    struct store_val v;
    if (store_get(t, STORE_DB_NOTIFY, k, 8, &v) != 0)
        return 0;
    if (a->ok)
        return store_del(t, STORE_DB_NOTIFY, k, 8);
    json_t *o = json_loadb(v.p, v.n, 0, NULL);
    a->attempts = (int)json_integer_value(json_object_get(o, "attempts")) + 1;
    if (a->attempts >= MAX_ATTEMPTS) {
        json_decref(o);
        a->gave_up = true;
        return store_del(t, STORE_DB_NOTIFY, k, 8);
    }
    double delay = a->backoff;
    for (int i = 1; i < a->attempts && delay < BACKOFF_MAX; i++)
        delay *= 2;
    json_object_set_new(o, "attempts", json_integer(a->attempts));
    json_object_set_new(o, "next_at",
                        json_real(clock_now() + (delay < BACKOFF_MAX ? delay : BACKOFF_MAX)));
    char *s = json_dumps(o, JSON_COMPACT | JSON_REAL_PRECISION(17));
    json_decref(o);
    int rc = s ? store_put(t, STORE_DB_NOTIFY, k, 8, s, strlen(s)) : TIKD_ENOMEM;
    free(s);
    return rc;
}

static void pump(struct notify *n);
static void drop(struct notify *n, uint64_t id);

static void sent(void *ud, const struct http_resp *r)
{
    struct sending *sd = ud;
    struct notify *n = sd->n;
    for (int i = 0; i < IN_FLIGHT; i++)
        if (n->flight[i] == sd)
            n->flight[i] = NULL;
    struct answered a = {.backoff = n->backoff,
                         .id = sd->id,
                         .ok = r->status >= 200 && r->status < 300,
                         .status = r->status};
    snprintf(a.why, sizeof a.why, "%.199s", r->status ? "" : r->out.message);
    free(sd);
    struct tikd_err e = {0};
    if (store_write(n->s, answered_txn, &a, &e) != 0) {
        /* the queue cannot be written (a full disk, say): not sent again at once */
        TLOG(TLOG_ERROR, "notify.store", LINT("id", (long long)a.id), LSTR("reason", e.msg));
        n->hold_until = clock_now() + n->backoff;
    }
    const char *outcome = a.ok ? "delivered" : a.gave_up ? "gave_up" : "retried";
    char lb[48];
    metrics_inc("tikd_notifications_total", metrics_labels(lb, sizeof lb, "outcome", outcome, NULL),
                1);
    TLOG(a.ok        ? TLOG_INFO
         : a.gave_up ? TLOG_ERROR
                     : TLOG_WARN,
         a.ok        ? "notify.delivered"
         : a.gave_up ? "notify.gave_up"
                     : "notify.retry",
         LINT("id", (long long)a.id), LINT("status", r->status), LINT("attempts", a.attempts),
         LSTR("reason", a.why));
    pump(n);
}

/* Send one: the body made now, signed with this moment. */
static void send_one(struct notify *n, uint64_t id, json_t *rec)
{
    double now = clock_now();
    char at[32];
    time_t when = (time_t)json_number_value(json_object_get(rec, "at"));
    struct tm tm;
    if (!gmtime_r(&when, &tm) || !strftime(at, sizeof at, "%Y-%m-%dT%H:%M:%SZ", &tm))
        snprintf(at, sizeof at, "1970-01-01T00:00:00Z");
    json_t *body =
        json_pack("{s:I, s:O, s:O, s:O, s:s}", "id", (json_int_t)id, "kind",
                  json_object_get(rec, "kind"), "subject", json_object_get(rec, "subject"),
                  "detail", json_object_get(rec, "detail"), "at", at);
    char *text = body ? json_dumps(body, JSON_COMPACT) : NULL;
    json_decref(body);
    const char *uh = json_string_value(json_object_get(rec, "url_sha256"));
    const char *url = NULL;
    for (size_t i = 0; uh && i < n->urls.n && !url; i++) {
        char h[CODEC_SHA256_HEX];
        codec_sha256_hex(n->urls.v[i], strlen(n->urls.v[i]), h);
        if (strcmp(h, uh) == 0)
            url = n->urls.v[i];
    }
    struct sending *sd = calloc(1, sizeof *sd);
    if (!text || !url || !sd) {
        free(text);
        free(sd);
        if (!url) { /* its URL left notify.webhooks: nobody to tell */
            TLOG(TLOG_WARN, "notify.dropped", LINT("id", (long long)id),
                 LSTR("reason", "its URL is no longer in notify.webhooks"));
            drop(n, id);
        }
        return;
    }
    char idh[24], sig[128], signed_msg[64];
    snprintf(idh, sizeof idh, "%llu", (unsigned long long)id);
    long long ts = (long long)now;
    if (n->secret) {
        size_t tl = (size_t)snprintf(signed_msg, sizeof signed_msg, "%lld.", ts);
        size_t bl = strlen(text);
        char *msg = malloc(tl + bl);
        char hex[CODEC_SHA256_HEX];
        if (msg) {
            memcpy(msg, signed_msg, tl);
            memcpy(msg + tl, text, bl);
            codec_hmac_sha256_hex(n->secret, msg, tl + bl, hex);
            free(msg);
            snprintf(sig, sizeof sig, "t=%lld,v1=%s", ts, hex);
        } else {
            snprintf(sig, sizeof sig, "t=%lld", ts);
        }
    } else {
        snprintf(sig, sizeof sig, "t=%lld", ts);
    }
    struct http_header hd[] = {{"Content-Type", "application/json"},
                               {"X-Tikd-Delivery", idh},
                               {"X-Tikd-Event", json_string_value(json_object_get(rec, "kind"))},
                               {"X-Tikd-Signature", sig}};
    struct http_req req = {.method = "POST",
                           .url = url,
                           .headers = hd,
                           .nheaders = 4,
                           .body = text,
                           .body_len = strlen(text),
                           .timeout = SEND_TIMEOUT,
                           .retry = HTTP_RETRY_ALL,
                           .max_attempts = 1, /* the queue's own backoff retries */
                           .metric = "notify",
                           .path_secret = true};
    sd->n = n;
    sd->id = id;
    int slot = -1;
    for (int i = 0; i < IN_FLIGHT && slot < 0; i++)
        if (!n->flight[i])
            slot = i;
    struct tikd_err e = {0};
    if (slot < 0) {
        free(sd);
    } else if (http_request(n->h, &req, sent, sd, &sd->x, &e) != 0) {
        TLOG(TLOG_WARN, "notify.not_sent", LINT("id", (long long)id), LSTR("reason", e.msg));
        free(sd);
        struct answered a = {.backoff = n->backoff, .id = id};
        store_write(n->s, answered_txn, &a, NULL); /* an attempt: backed off, counted */
    } else {
        n->flight[slot] = sd;
    }
    free(text);
}

static int drop_txn(struct store_txn *t, void *ctx)
{
    unsigned char k[8];
    key_of(k, *(uint64_t *)ctx);
    return store_del(t, STORE_DB_NOTIFY, k, 8);
}

static void drop(struct notify *n, uint64_t id)
{
    store_write(n->s, drop_txn, &id, NULL);
    metrics_inc("tikd_notifications_total", "outcome=\"dropped\"", 1);
}

static void pump(struct notify *n)
{
    if (clock_now() < n->hold_until) {
        arm(n, n->hold_until - clock_now());
        return;
    }
    struct due_ctx d = {.n = n, .now = clock_now(), .next = 1e300};
    if (store_read(n->s, due_txn, &d, NULL) != 0) {
        arm(n, 5);
        return;
    }
    metrics_set("tikd_notifications_pending", NULL, (double)d.pending);
    for (int i = 0; i < d.ndue; i++) {
        send_one(n, d.due[i].id, d.due[i].o);
        json_decref(d.due[i].o);
    }
    if (d.next < 1e299)
        arm(n, d.next - clock_now());
}

static void on_wake(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)loop;
    (void)revents;
    pump(w->data);
}

int notify_new(struct notify **out, struct ev_loop *loop, struct store *s, struct http *h,
               const struct strlist *urls, const char *secret, double backoff, struct tikd_err *e)
{
    *out = NULL;
    struct notify *n = calloc(1, sizeof *n);
    if (!n)
        return tikd_fail(e, TIKD_ENOMEM, "notify: out of memory");
    n->loop = loop;
    n->s = s;
    n->h = h;
    n->backoff = backoff > 0 ? backoff : 5;
    n->urls.v = calloc(urls->n + 1, sizeof *n->urls.v);
    for (size_t i = 0; n->urls.v && i < urls->n; i++)
        if ((n->urls.v[i] = strdup(urls->v[i])))
            n->urls.n++;
    n->secret = secret && *secret ? strdup(secret) : NULL;
    if (!n->urls.v || n->urls.n != urls->n || (secret && *secret && !n->secret)) {
        notify_free(n);
        return tikd_fail(e, TIKD_ENOMEM, "notify: out of memory");
    }
    ev_init(&n->wake, on_wake);
    n->wake.data = n;
    if (n->urls.n && !n->secret)
        TLOG(TLOG_WARN, "notify.unsigned",
             LSTR("reason", "notify.secret is not set: receivers cannot tell a forgery"));
    arm(n, 0); /* what an earlier run left */
    *out = n;
    return 0;
}

void notify_free(struct notify *n)
{
    if (!n)
        return;
    ev_timer_stop(n->loop, &n->wake);
    for (int i = 0; i < IN_FLIGHT; i++) {
        if (n->flight[i]) {
            http_cancel(n->flight[i]->x);
            free(n->flight[i]);
        }
    }
    for (size_t i = 0; i < n->urls.n; i++)
        free(n->urls.v[i]);
    free(n->urls.v);
    if (n->secret) {
        OPENSSL_cleanse(n->secret, strlen(n->secret));
        free(n->secret);
    }
    free(n);
}
