/* http.h - tikd's HTTP client: libcurl multi driven by the libev loop.
 *
 * Many requests in flight on one thread, connections reused, TLS always
 * verified. A request body comes from memory or is streamed from a byte range
 * of a file (never read whole); a response body is capped. Every attempt's
 * outcome goes through policy_classify(); RETRY and DEFER outcomes are tried
 * again here (exponential backoff with full jitter, never before a
 * Retry-After, at most max_attempts in all), the rest go back to the caller.
 * A per-host circuit breaker stops hammering a failing host: after
 * breaker_failures consecutive failures requests to it wait, one probe goes
 * after breaker_open seconds, and a healthy probe lets the rest through.
 *
 * Completion callbacks run from the loop, never from inside a libcurl
 * callback. Single-threaded. */
#ifndef TIKD_HTTP_H
#define TIKD_HTTP_H

#include "err.h"
#include "policy.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

struct ev_loop;
struct http;
struct http_xfer;

struct http_opts {
    struct ev_loop *loop;
    double connect_timeout;           /* seconds */
    double timeout;                   /* whole attempt, seconds; 0 = none (big uploads) */
    long low_speed_bytes;             /* below this many bytes/s ... */
    long low_speed_time;              /* ... for this many seconds: the attempt is stalled */
    const char *ca_file;              /* NULL: the system's CAs */
    const char *proxy;                /* NULL: none (curl still honours no env proxies) */
    size_t max_response;              /* bytes */
    int max_attempts;                 /* first try included */
    double backoff_base, backoff_cap; /* seconds */
    double max_defer;                 /* a Retry-After longer than this goes back to the caller */
    int breaker_failures;
    double breaker_open; /* seconds */
};

/* Sensible defaults: 10 s connect, 120 s total, stalled below 1 KiB/s for 30 s,
 * 8 MiB responses, 4 attempts, backoff 0.5 s doubling to 30 s, defer up to
 * 120 s, breaker after 5 failures for 30 s. */
void http_opts_default(struct http_opts *o);

int http_new(struct http **out, const struct http_opts *o, struct tikd_err *e);

/* Cancels every request in flight (their callbacks do not run) and frees. */
void http_free(struct http *h);

enum http_retry {
    HTTP_RETRY_ALL,      /* idempotent: retry whatever policy says */
    HTTP_RETRY_NOT_SENT, /* retry only when the request surely never reached the server */
    HTTP_RETRY_RATED     /* idempotent, but a 429 goes back to the caller at once: its
                          * limiter holds every request of the token until Retry-After,
                          * and the next try passes the limiter */
};

struct http_header {
    const char *name, *value;
};

struct http_req {
    const char *method; /* "GET", "POST", "PUT", ... */
    const char *url;
    const struct http_header *headers;
    size_t nheaders;
    const char *bearer; /* token for Authorization: Bearer; copied, wiped after use */
    /* body: memory (body, body_len) or a file range (body_file, body_off, body_len) */
    const void *body;
    const char *body_file;
    off_t body_off;
    size_t body_len;
    double timeout; /* overrides opts.timeout when > 0 */
    enum http_retry retry;
    int max_attempts;   /* overrides opts.max_attempts when > 0 */
    bool tiktok;        /* the answer is TikTok JSON: classify by its error codes */
    size_t head_max;    /* > 0: read only the first head_max bytes of the body (a probe) */
    const char *metric; /* what it is, for tikd_http_* metrics: "init", "upload", ... (a
                         * fixed word, never from a URL); NULL: "other" */
    /* a body going out: progress(ud, sent, total) as the bytes are handed to
     * the connection, at most every 0.25 s and once at the end (NULL: none) */
    void (*progress)(void *ud, uint64_t sent, uint64_t total);
    void *progress_ud;
    bool path_secret; /* the URL's path is a secret (a chat webhook's): logs show its host only */
    /* the account it acts for (copied), or NULL: with an admit function
     * set, every attempt asks it first (http_set_admit) */
    const char *owner;
    bool claim; /* with owner: it makes its owner one of the app's active creators (an init) */
};

struct http_resp {
    long status;      /* 0 when no response arrived */
    const char *body; /* NUL-terminated; valid during the callback */
    size_t body_len;
    const char *headers; /* raw header block of the last response */
    int attempts;
    double elapsed;         /* seconds from the first try to the outcome */
    struct pol_outcome out; /* what policy made of the last attempt */
    json_t *json;           /* a TikTok answer's body as policy read it (a JSON object),
                             * or NULL; valid during the callback */
};

typedef void (*http_done_fn)(void *ud, const struct http_resp *r);

/* Start a request; done runs exactly once from the loop (unless cancelled).
 * The request and everything it points to is copied: the caller may free it
 * at once. *xfer (may be NULL) is a handle for http_cancel(). */
int http_request(struct http *h, const struct http_req *req, http_done_fn done, void *ud,
                 struct http_xfer **xfer, struct tikd_err *e);

/* The form of a URL fit for a log line or a message: scheme, host and path;
 * user info is dropped and a query becomes "?[redacted]" (TikTok's upload
 * URL carries its upload_token there: the URL is a credential). */
void http_url_shown(const char *url, char *out, size_t n);

/* Cancel a request in flight; its callback does not run. */
void http_cancel(struct http_xfer *x);

/* Group commit (core/store): a request is an effect, so it must not leave
 * before the state change it follows is durable. While closed(ud) is true
 * every attempt that would start is held; http_gate_open() starts them
 * (rc 0: the writes before them are durable) or ends them unsent (rc != 0:
 * the database refused those writes; why says so), as a POL_DEFER outcome
 * their callers already handle. No gate: nothing is held. */
void http_set_gate(struct http *h, bool (*closed)(void *ud), void *ud);
void http_gate_open(struct http *h, int rc, const char *why);

/* A cluster (core/cluster): a request with an owner is sent only while
 * this node may act for that account. admit(ud, q) is asked as each
 * attempt is handed to libcurl, retries included, and answers the fence
 * to send in its X-Tikd-Fence header, or 0: the attempt is not sent and the
 * request ends unsent, a POL_DEFER outcome its caller already handles (code
 * "not_held"; or "app_active_users" when q->full_for says the app's cap of
 * active creators is full in the cluster for that many seconds). q->claim:
 * the request would make its owner one of the app's active creators (an
 * init). A request refused before it starts fails http_request() with
 * TIKD_ENOTHELD. HTTP_ADMIT_WAIT: not yet (the account's state is on its
 * way to Redis): the attempt waits until http_admit_retry(), or a second,
 * and asks again. No admit function: owners are ignored. */
struct http_admit {
    const char *owner;
    bool claim;
    double full_for; /* out */
};
#define HTTP_ADMIT_WAIT UINT64_MAX
void http_set_admit(struct http *h, uint64_t (*admit)(void *ud, struct http_admit *q), void *ud);
void http_admit_retry(struct http *h);

/* owner's lease was lost: its idempotent requests on the wire (chunk PUTs,
 * status polls; HTTP_RETRY_ALL) are cut now and end unsent ("not_held"), so
 * none goes on once another node may act for the account. An init
 * (HTTP_RETRY_NOT_SENT) is left to finish: cut, TikTok might have acted on it
 * unanswered. */
void http_cut_owner(struct http *h, const char *owner);

/* Requests started and not finished. */
size_t http_in_flight(const struct http *h);

/* Find header `name` (case-insensitive) in a raw header block; copies its
 * value into out and returns true if present. */
bool http_header_get(const char *headers, const char *name, char *out, size_t n);

#endif
