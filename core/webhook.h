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

#include <stdbool.h>
#include <stddef.h>

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
};

/* 0 if header signs body with secret and t is within tolerance of now;
 * otherwise -1 and why says what is wrong. */
int webhook_verify(const char *secret, const char *header, const char *body, size_t n, double now,
                   double tolerance, char *why, size_t wn);

/* Decode a verified body; -1 and why for a malformed one. */
int webhook_parse(const char *body, size_t n, struct webhook_event *ev, char *why, size_t wn);

#endif
