/* alert.h - what an operator must hear of, raised by the part that sees it,
 * told to whoever the daemon put in place (the rules' on_alert, the
 * notification webhooks, the metrics).
 *
 * Kinds: "account.reauth" (subject: the account), "failures" (the account, or
 * "endpoint:NAME": notify.failures failed jobs, or requests to TikTok's
 * endpoint that failed for good, within notify.failure_window), "reload" (the
 * generation that did not load), "breaker" (the host whose circuit
 * breaker opened), "daily_cap" (the account whose daily post cap is full),
 * "compliance" (the check that failed). The same kind and subject stays
 * quiet for `quiet` seconds after it was raised, so a flapping breaker or a
 * cap hit by every job is one alert, not hundreds. Process-wide, like the
 * logger; single-threaded. */
#ifndef TIKD_ALERT_H
#define TIKD_ALERT_H

typedef void (*alert_sink_fn)(void *ud, const char *kind, const char *subject, const char *detail);

/* Where alerts go from now on (NULL: nowhere, only counted), and the
 * quiet time and failure threshold. */
void alert_set_sink(alert_sink_fn fn, void *ud, double quiet, int failures, double window);

void alert_raise(const char *kind, const char *subject, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* One failure of subject (an account's job, "endpoint:init"): a "failures"
 * alert when the threshold is reached within the window. */
void alert_failure(const char *subject, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Forget the quiet times and failure counts (tests). */
void alert_reset(void);

#endif
