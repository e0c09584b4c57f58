/* notify.h - alerts to the operator's own endpoints: each alert becomes one
 * JSON POST per notify.webhooks URL, kept in LMDB until it is delivered, so
 * neither a restart nor a receiver that is down loses one.
 *
 *   POST URL
 *   Content-Type: application/json
 *   X-Tikd-Delivery: 42                 (the same on every retry: deduplicate by it)
 *   X-Tikd-Event: account.reauth
 *   X-Tikd-Signature: t=1796412726,v1=HEX
 *   {"id": 42, "kind": "account.reauth", "subject": "client-acme",
 *    "detail": "...", "at": "2026-12-04T10:00:00Z"}
 *
 * v1 is HMAC-SHA256(notify.secret, t "." body) in hex: the receiver checks
 * it and that t is recent. Delivery is at least once: a 2xx answer ends it;
 * anything else is retried with backoff (notify.backoff, 5 s, doubling to an hour, 12
 * attempts), then given up (logged). The queue holds at most NOTIFY_MAX
 * deliveries; past that the oldest is dropped (logged, counted). */
#ifndef TIKD_NOTIFY_H
#define TIKD_NOTIFY_H

#include "config.h"
#include "err.h"
#include "store.h"

struct ev_loop;
struct http;
struct notify;

#define NOTIFY_MAX 1000

/* A sender on loop for urls (may be empty: then nothing is queued), signing
 * with secret (NULL or "": unsigned, and said so at start). Deliveries a
 * previous run left are sent. */
int notify_new(struct notify **out, struct ev_loop *loop, struct store *s, struct http *h,
               const struct strlist *urls, const char *secret, double backoff, struct tikd_err *e);
/* Queue one delivery per URL, durably (one transaction). */
int notify_enqueue(struct notify *n, const char *kind, const char *subject, const char *detail);
/* Stop sending (what is queued stays queued); NULL is fine. */
void notify_free(struct notify *n);

#endif
