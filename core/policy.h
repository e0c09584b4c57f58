/* policy.h - the one error policy: every outcome of a request to TikTok
 * (curl error, HTTP status, TikTok error code) maps to exactly one action.
 *
 *   RETRY  transient: try again after a backoff (full jitter, bounded)
 *   DEFER  rate limited or capped: try again no earlier than retry_after
 *   REAUTH the account's grant is bad: refresh or ask the user again
 *   FAIL   will not get better by waiting: a human message says why
 *
 * The table lives in policy.c with the spec section beside each code. A code
 * tikd does not know is FAIL with `unknown` set and the raw body kept: it is
 * reported, never guessed into a class. */
#ifndef TIKD_POLICY_H
#define TIKD_POLICY_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

enum pol_action { POL_OK, POL_RETRY, POL_DEFER, POL_REAUTH, POL_FAIL };

struct pol_outcome {
    enum pol_action action;
    char code[64];      /* TikTok's error.code / OAuth error, or "http_503", "curl_28" */
    char message[300];  /* for humans: what happened and what to do */
    char log_id[80];    /* TikTok's log_id, when the body had one */
    double retry_after; /* seconds; < 0 when there is no floor */
    bool unknown;       /* a TikTok code not in the table */
    bool unsent;        /* tikd never sent it (its token could not be renewed) */
};

/* Classify one finished attempt. curl_code is 0 when a response arrived;
 * retry_after is the server's Retry-After in seconds (< 0: none). With
 * tiktok set the body is read as TikTok JSON (its error codes decide);
 * otherwise only the transport and the HTTP status count. body may be NULL.
 * doc (may be NULL) receives the body's JSON object when it was read as
 * one, for the caller to json_decref (NULL otherwise): the answer's decoder
 * reads the same document instead of parsing the body again. Never fails. */
void policy_classify(int curl_code, const char *curl_error, long status, const char *body,
                     size_t len, double retry_after, bool tiktok, struct pol_outcome *out,
                     json_t **doc);

/* The delay before attempt `attempt` (1 = the first retry): full jitter over
 * an exponential ceiling, min(cap, base * 2^(attempt-1)) * random[0,1), and
 * never below `floor` (a Retry-After). rnd is a number in [0,1). */
double policy_backoff(int attempt, double base, double cap, double floor, double rnd);

const char *policy_action_name(enum pol_action a);

/* Whether a request that did not succeed may still have been acted on by
 * TikTok: no answer after it may have left, a 5xx, or an answer that cannot
 * be read, any of which can come after the work was done. Only a refusal
 * (a 4xx, a 429, TikTok's own error code on a 2xx) or a request that never
 * left (no connection) proves nothing happened. For a request that is not
 * idempotent (a pull init, a refresh that rotates) the difference is a
 * double post or a lost token. */
bool policy_may_have_acted(long status, const struct pol_outcome *out);

#endif
