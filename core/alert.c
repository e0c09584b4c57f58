/* alert.c - alerts and their quiet times (see alert.h). */
#include "alert.h"
#include "clock.h"
#include "log.h"
#include "metrics.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define TRACK 256 /* (kind, subject) pairs remembered; the oldest goes first */
#define FAILS 32  /* failure times kept per subject */

struct seen {
    char kind[24], subject[96];
    double at;           /* last raised */
    double touched;      /* last raised or counted: the table forgets the oldest */
    double fails[FAILS]; /* times of recent failures (a ring) */
    int nfail;
};

static struct {
    alert_sink_fn fn;
    void *ud;
    double quiet, window;
    int failures;
    struct seen seen[TRACK];
    int n;
} A = {.quiet = 600, .window = 3600, .failures = 3};

void alert_set_sink(alert_sink_fn fn, void *ud, double quiet, int failures, double window)
{
    A.fn = fn;
    A.ud = ud;
    A.quiet = quiet;
    A.failures = failures > 0 ? failures : 1;
    A.window = window;
}

void alert_reset(void)
{
    A.n = 0;
}

static struct seen *find(const char *kind, const char *subject)
{
    for (int i = 0; i < A.n; i++)
        if (strcmp(A.seen[i].kind, kind) == 0 && strcmp(A.seen[i].subject, subject) == 0)
            return &A.seen[i];
    int slot = A.n < TRACK ? A.n++ : 0;
    if (slot == 0 && A.n == TRACK) { /* full: the one touched longest ago goes */
        for (int i = 1; i < TRACK; i++)
            if (A.seen[i].touched < A.seen[slot].touched)
                slot = i;
    }
    struct seen *s = &A.seen[slot];
    memset(s, 0, sizeof *s);
    snprintf(s->kind, sizeof s->kind, "%s", kind);
    snprintf(s->subject, sizeof s->subject, "%s", subject);
    s->at = -1e18;
    return s;
}

static void raise_v(const char *kind, const char *subject, const char *fmt, va_list ap)
{
    struct seen *s = find(kind, subject);
    double now = clock_now();
    s->touched = now;
    char lb[64];
    if (now - s->at < A.quiet) {
        metrics_inc("tikd_alerts_quieted_total", metrics_labels(lb, sizeof lb, "kind", kind, NULL),
                    1);
        return;
    }
    s->at = now;
    char detail[600];
    vsnprintf(detail, sizeof detail, fmt, ap);
    metrics_inc("tikd_alerts_total", metrics_labels(lb, sizeof lb, "kind", kind, NULL), 1);
    TLOG(TLOG_WARN, "alert", LSTR("kind", kind), LSTR("subject", subject), LSTR("detail", detail));
    if (A.fn)
        A.fn(A.ud, kind, subject, detail);
}

void alert_raise(const char *kind, const char *subject, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    raise_v(kind, subject, fmt, ap);
    va_end(ap);
}

void alert_failure(const char *subject, const char *fmt, ...)
{
    struct seen *s = find("failures.count", subject);
    double now = clock_now();
    s->touched = now;
    s->fails[s->nfail++ % FAILS] = now;
    int recent = 0;
    for (int i = 0; i < FAILS && i < s->nfail; i++)
        recent += now - s->fails[i] <= A.window;
    if (recent < A.failures)
        return;
    char detail[500];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(detail, sizeof detail, fmt, ap);
    va_end(ap);
    alert_raise("failures", subject, "%d failures within %.0f s; the last: %s", recent, A.window,
                detail);
}
