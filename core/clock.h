/* clock.h - the one clock every module reads.
 *
 * Schedules, limits and token expiry must be testable on a virtual clock, so
 * no module calls time() or clock_gettime() for wall time directly: they call
 * clock_now(), which tests can redirect with clock_set_source(). */
#ifndef TIKD_CLOCK_H
#define TIKD_CLOCK_H

#include <stddef.h>

/* Wall-clock time in seconds since the Unix epoch, with sub-second precision. */
double clock_now(void);

/* Monotonic seconds (never jumps), for measuring intervals. */
double clock_mono(void);

/* Monotonic seconds that also run while the machine sleeps: for deadlines
 * another machine counts too (a cluster lease). */
double clock_boot(void);

/* Replace the wall clock with `fn` (NULL restores the real one). */
void clock_set_source(double (*fn)(void));

/* Put the process on a virtual clock that reads `t` until it is set again
 * (`tikd plan`, `tikd rules test`); clock_set_source(NULL) ends it. */
void clock_set_virtual(double t);

/* t (seconds since the epoch, rounded up) as "2026-12-03 08:00:00 UTC" into
 * out; "later" when t is past any date (>= 1e17), as budgets say "never". */
void clock_fmt_utc(double t, char *out, size_t n);

/* "2026-12-01T10:00:00Z" (RFC 3339 in UTC, whole seconds) into *t: 0, or
 * -1 when s is anything else. */
int clock_parse_utc(const char *s, double *t);

#endif
