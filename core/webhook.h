/* webhook.h - TikTok's webhook deliveries (spec §5): signature, freshness
 * and the event inside.
 *
 * TikTok signs `t + "." + raw body` with HMAC-SHA256 keyed by the app's
 * client secret and sends `TikTok-Signature: t=<unix>,s=<hex>`. The check is
 * on the exact bytes received, in constant time, with a freshness tolerance
 * (TikTok gives none; 300 s is common practice). `content` is JSON inside a
 * JSON string and is decoded a second time. */
#ifndef TIKD_WEBHOOK_H
#define TIKD_WEBHOOK_H

#include "store.h"

#include <stdbool.h>
#include <stddef.h>

/* De-duplication keys are kept this long: longer than TikTok's 72 hours of
 * retries (§5.1). An event created before that is acknowledged and ignored
 * (stale), so a pruned key can never let a replay through. */
#define WEBHOOK_SEEN_FOR (7 * 86400.0)

struct webhook_event {
    char event[64];
    char client_key[128];
    char user_openid[160];
    long long create_time;
    /* from content */
    char publish_id[80];
    char reason[64];       /* post.publish.failed: reason (or fail_reason) */
    long long reason_code; /* authorization.removed: reason (an int) */
    char publish_type[32];
    char post_id[40]; /* a string in webhooks */
    /* TikTok sends no event id (§5.1): SHA-256 of event, content and
     * create_time stands for one */
    unsigned char key[32];
};

/* 0 if header signs body with secret and t is within tolerance of now;
 * otherwise -1 and why says what is wrong. */
int webhook_verify(const char *secret, const char *header, const char *body, size_t n, double now,
                   double tolerance, char *why, size_t wn);

/* Decode a verified body; -1 and why for a malformed one. */
int webhook_parse(const char *body, size_t n, struct webhook_event *ev, char *why, size_t wn);

/* Record ev as seen in t: 1 when it was seen before (a duplicate delivery),
 * 0 when new, or a store error. Keys are pruned in time order as new ones
 * come, a few per event, so they stay a week of events however long tikd
 * runs. */
int webhook_seen(struct store_txn *t, const struct webhook_event *ev, double now);

/* Move the keys a tikd before schema 2 kept in META (the schema step). */
int webhook_seen_migrate(struct store_txn *t);

struct oauth;
struct srv_req;

/* What POST /webhooks/tiktok needs. */
struct webhook_cfg {
    const char *client_secret; /* the signing key */
    const char *client_key;    /* events for another app are refused (NULL: not checked) */
    double tolerance;          /* seconds of clock skew allowed on the signature's t */
    struct store *store;
    struct oauth *oauth;    /* authorization.removed marks the account revoked */
    void (*kick)(void *ud); /* a job was woken: look at the due index again */
    void *kick_ud;
};

/* Answer one delivery: 401 bad signature, 400 malformed or another app's,
 * 503 when it could not be recorded (TikTok retries), else 200 once it is
 * recorded. A post.publish.* event makes its job (found by publish_id in the
 * job index) due now: its status fetch confirms what the event says, so a
 * stale event costs one request. */
void webhook_serve(const struct webhook_cfg *c, struct srv_req *r);

#endif
