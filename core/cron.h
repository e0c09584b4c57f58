// cron.h - schedules: standard 5-field cron expressions evaluated in the
// wall-clock time of an IANA time zone.
//
// Expression syntax (cronie's semantics):
//
//   minute  hour  day-of-month  month  day-of-week
//   0-59    0-23  1-31          1-12   0-7 (0 and 7 are both Sunday)
//                               JAN-DEC SUN-SAT (names: 3 letters, any case)
//
//   *        every value of the field
//   a        one value
//   a-b      a range (a <= b; names work too: MON-FRI)
//   */n      every n-th value from the field's first: */15 = 0,15,30,45
//   a-b/n    every n-th value from a to b: 8-18/2 = 8,10,12,14,16,18
//   a/n      a to the field's last value, every n-th (cronie): 5/20 = 5,25,45
//   x,y,...  any mix of the above
//
// Whitespace separates the fields. For day of week the
// field's last value is 7, so * and a/n count up to 7 (Sunday): in that
// field 1/2 = Mon, Wed, Fri, Sun. A range may end with 7 (FRI-7) but SUN as
// an end is 0, so FRI-SUN runs backwards and is an error.
//
// Day of month and day of week: when both fields are restricted a day
// matches if EITHER matches (`0 12 1,15 * MON` fires on the 1st, the 15th and
// every Monday). As in cronie, a field counts as unrestricted when it starts
// with *, including */n: then a day must match both fields
// (`0 0 */2 * MON` fires on Mondays that fall on an odd day of the month).
//
// Macros: @yearly = @annually = "0 0 1 1 *", @monthly = "0 0 1 * *",
// @weekly = "0 0 * * 0", @daily = @midnight = "0 0 * * *", @hourly =
// "0 * * * *" (any case). @reboot and other macros are errors: tikd runs
// schedules by time only.
//
// An expression that can never fire (`0 0 30 2 *`) parses; cron_can_fire
// tells it (rule declarations refuse it), and cron_next reports
// TIKD_ENOTFOUND because it finds no firing within 5 years. (So does
// `0 0 29 2 *` asked from February 29, 2096 to February 2099: 2100 is not a
// leap year, so the next February 29 is in 2104.)
//
// Time zones: an IANA name ("Europe/Berlin") from the system tz database
// (/usr/share/zoneinfo, Debian's tzdata); NULL, "" and "UTC" mean UTC.
//
// Daylight saving time: each local wall-clock minute that matches stands for
// one instant, and a schedule fires at those instants in time order, once
// each:
//  - a local time the clocks skip (02:30 on a spring-forward night) is read
//    with the UTC offset in force before the gap, as Python's zoneinfo does
//    with fold=0 and RFC 5545 prescribes: it fires at 03:30 the new time;
//  - a local time that happens twice (01:30 on a fall-back night) fires once,
//    at its first occurrence;
//  - minutes that stand for one instant fire once: on a spring-forward night
//    */15 fires at 02:00 02:15 02:30 02:45 (read as 03:00 .. 03:45 new time);
//    03:00 .. 03:45 are those instants again; then 04:00;
//  - time order is not wall-clock order where a gap is not one whole hour on
//    the hour: on Lord Howe Island (02:00 +10:30 -> 02:30 +11) `*/20 2 * * *`
//    fires at 02:00 (read as 02:30), the real 02:40, then 02:20 (read as
//    02:50); at Troll (01:00 +00 -> 03:00 +02) `30 2,3 * * *` fires at 03:30,
//    then 02:30 (read as 04:30).
// cron_next gives the earliest such instant after the one it is given, so
// feeding each result back walks them all.
//
// tikd is single-threaded; these functions switch the process's tz state
// (see cron.c) and must not be called from two threads.
#ifndef TIKD_CRON_H
#define TIKD_CRON_H

#include <stdbool.h>
#include <stdint.h>

#include "err.h"

/* A parsed expression: one bit per allowed value. dow bit 0 is Sunday (7 is
 * folded into 0); dom bits 1-31; month bits 1-12. dom_star/dow_star: the
 * field started with `*` (see the day rule above). expr: the text as given,
 * without surrounding blanks. */
struct cron {
    uint64_t minute;
    uint32_t hour, dom;
    uint16_t month;
    uint8_t dow;
    bool dom_star, dow_star;
    char expr[128];
};

/* Parse `expr` into *c. TIKD_EINVAL with one message naming the field and the
 * bad token ("cron: minute field: 61 is out of range 0-59", "cron: expected 5
 * fields, got 4") when it is not a valid expression. */
int cron_parse(const char *expr, struct cron *c, struct tikd_err *e);

/* The first firing strictly after `after` (Unix seconds, may be fractional) in
 * zone tz: the earliest instant later than `after` of all the matching local
 * minutes, read by the rules above; 0 and *next (whole seconds). TIKD_EINVAL
 * for a bad zone or an `after` outside years 1-9999, TIKD_ENOTFOUND if none
 * within 5 years. Feeding the result back as `after` gives the next firing,
 * and so on. */
int cron_next(const struct cron *c, const char *tz, double after, double *next, struct tikd_err *e);

/* Whether *c can ever fire. When both day fields are restricted (the day rule
 * above) it can: each weekday it allows comes in every month. Otherwise a day
 * must match both fields, so it can when some month it allows has a day of the
 * month it allows (February 29 counts): every date that exists falls on each
 * weekday in some year. False for `0 0 30 2 *` and `0 0 31 4,6,9,11 *`, true
 * for `0 0 30 2 MON` (every Monday in February) and `0 0 29 2 *`. It says
 * nothing of how soon: `0 0 29 2 *` fires in leap years only. */
bool cron_can_fire(const struct cron *c);

/* Local wall-clock fields of an instant, for captions and plans. */
struct cron_local {
    int year, month, day; /* month 1-12, day 1-31 */
    int hour, minute, second;
    int wday;        /* 0-6, Sunday 0 */
    int yday;        /* day of the year, 1-366 */
    long utc_offset; /* seconds east of UTC (+3600 for CET) */
    char abbr[16];   /* the zone's abbreviation: "CET", "EDT", "UTC", "+0530" */
};

/* The local wall-clock fields of instant t (Unix seconds; the fraction is
 * dropped) in zone tz. TIKD_EINVAL for a bad zone or t outside years 1-9999. */
int cron_localtime(const char *tz, double t, struct cron_local *out, struct tikd_err *e);

/* The instant (Unix seconds) of the local wall time year/month/day
 * hour:minute:second of *lt in zone tz, with the rules above: a skipped time
 * is read with the offset before the gap, a repeated time is its first
 * occurrence. The other fields of *lt are ignored. TIKD_EINVAL for a bad zone
 * or a field out of range (February 30 included). */
int cron_mktime(const char *tz, const struct cron_local *lt, double *t, struct tikd_err *e);

/* 0 when tz names a zone of the system tz database (or UTC: NULL, "",
 * "UTC"), else TIKD_EINVAL "unknown time zone 'X'". Only [A-Za-z0-9_+-/]
 * names that are not absolute and have no "..", whose file under
 * /usr/share/zoneinfo is a TZif file, are zones; the right/ (leap second)
 * variants are refused. */
int cron_tz_check(const char *tz, struct tikd_err *e);

#endif
