/* test_cron.c - core/cron: every kind of expression, good and bad with its
 * message; the day-of-month/day-of-week OR rule; Sunday as 0 and 7; macros;
 * the two daylight-saving cases (a skipped and a repeated local time) and
 * strictly increasing firings through both; gaps that are not one whole hour
 * on the hour (firings in time order, none lost); local time round trips; zone
 * validation; TZ left as it was found; a date that can never occur, and
 * cron_can_fire telling it. */
#include <math.h>
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdbool.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../../core/cron.h"

#define NY "America/New_York"

static double utc(int y, int mo, int d, int h, int mi)
{
    struct tm tm = {
        .tm_year = y - 1900, .tm_mon = mo - 1, .tm_mday = d, .tm_hour = h, .tm_min = mi};
    return (double)timegm(&tm);
}

static struct cron parse_ok(const char *expr)
{
    struct cron c;
    struct tikd_err e = {0};
    int rc = cron_parse(expr, &c, &e);
    if (rc)
        fail_msg("'%s': %s", expr, e.msg);
    return c;
}

static double next(const struct cron *c, const char *tz, double after)
{
    struct tikd_err e = {0};
    double t = -1;
    int rc = cron_next(c, tz, after, &t, &e);
    if (rc)
        fail_msg("'%s' in %s after %.0f: %s", c->expr, tz ? tz : "UTC", after, e.msg);
    return t;
}

static void parse_good(void **state)
{
    (void)state;
    struct cron c = parse_ok("*/15 * * * *");
    assert_true(c.minute == (1ULL << 0 | 1ULL << 15 | 1ULL << 30 | 1ULL << 45));
    assert_int_equal(c.hour, 0xffffff);
    assert_int_equal(c.dom, 0xfffffffe);
    assert_int_equal(c.month, 0x1ffe);
    assert_int_equal(c.dow, 0x7f);
    assert_true(c.dom_star && c.dow_star);
    assert_string_equal(c.expr, "*/15 * * * *");

    c = parse_ok("0 8-18/2 * * *");
    assert_int_equal(c.hour, 1 << 8 | 1 << 10 | 1 << 12 | 1 << 14 | 1 << 16 | 1 << 18);
    c = parse_ok("5/20 * * * *"); /* a/n = a-59/n */
    assert_true(c.minute == (1ULL << 5 | 1ULL << 25 | 1ULL << 45));
    c = parse_ok("0 0 * jan-Mar,DEC *");
    assert_int_equal(c.month, 1 << 1 | 1 << 2 | 1 << 3 | 1 << 12);
    c = parse_ok("0 0 * * mon-FRI");
    assert_int_equal(c.dow, 0x3e);
    c = parse_ok("0 0 * * 1/2"); /* 1-7/2: Mon Wed Fri and 7 = Sunday */
    assert_int_equal(c.dow, 1 << 0 | 1 << 1 | 1 << 3 | 1 << 5);
    c = parse_ok("0 0 * * */2"); /* 0-7/2 */
    assert_int_equal(c.dow, 1 << 0 | 1 << 2 | 1 << 4 | 1 << 6);
    c = parse_ok("0 0 * * 5-7");
    assert_int_equal(c.dow, 1 << 0 | 1 << 5 | 1 << 6);
    c = parse_ok("0 0 */10 * *");
    assert_int_equal(c.dom, 1u << 1 | 1u << 11 | 1u << 21 | 1u << 31);
    assert_true(c.dom_star);
    c = parse_ok("1,*/30,59 * * * *");
    assert_true(c.minute == (1ULL << 0 | 1ULL << 1 | 1ULL << 30 | 1ULL << 59));
    c = parse_ok("  05\t09  1 * *  \n");
    assert_string_equal(c.expr, "05\t09  1 * *");
    assert_true(c.minute == 1ULL << 5);
    assert_int_equal(c.hour, 1 << 9);
    assert_false(c.dom_star);
    assert_true(c.dow_star);
    c = parse_ok("0-59/100 0 1 1 *"); /* a step past the span: the first value only */
    assert_true(c.minute == 1);
}

static void parse_bad(void **state)
{
    (void)state;
    char longexpr[200];
    memset(longexpr, '1', sizeof longexpr - 1);
    longexpr[sizeof longexpr - 1] = '\0';
    const struct {
        const char *expr, *msg;
    } cases[] = {
        {"", "cron: empty expression"},
        {" \t ", "cron: empty expression"},
        {"* * * *", "cron: expected 5 fields, got 4"},
        {"* * * * * *", "cron: expected 5 fields, got 6"},
        {"0 0 * * * echo hi", "cron: expected 5 fields, got 7"},
        {"61 * * * *", "cron: minute field: 61 is out of range 0-59"},
        {"99999999999 * * * *", "cron: minute field: 99999999999 is out of range 0-59"},
        {"* 24 * * *", "cron: hour field: 24 is out of range 0-23"},
        {"* * 0 * *", "cron: day of month field: 0 is out of range 1-31"},
        {"* * 32 * *", "cron: day of month field: 32 is out of range 1-31"},
        {"* * * 0 *", "cron: month field: 0 is out of range 1-12"},
        {"* * * 13 *", "cron: month field: 13 is out of range 1-12"},
        {"* * * * 8", "cron: day of week field: 8 is out of range 0-7"},
        {"* * * * */0", "cron: day of week field: step 0 in '*/0'"},
        {"1-5/0 * * * *", "cron: minute field: step 0 in '1-5/0'"},
        {"*/x * * * *", "cron: minute field: step 'x' is not a number in '*/x'"},
        {"5/ * * * *", "cron: minute field: step '' is not a number in '5/'"},
        {"*/-2 * * * *", "cron: minute field: step '-2' is not a number in '*/-2'"},
        {"/5 * * * *", "cron: minute field: '/5' has no value before the step"},
        {"x * * * *", "cron: minute field: 'x' is not a number"},
        {"5x * * * *", "cron: minute field: '5x' is not a number"},
        {"*x * * * *", "cron: minute field: '*x' is not a number"},
        {"MON * * * *", "cron: minute field: 'MON' is not a number"},
        {"* * * FOO *", "cron: month field: 'FOO' is not a month (1-12 or JAN-DEC)"},
        {"* * * January *", "cron: month field: 'January' is not a month (1-12 or JAN-DEC)"},
        {"* * * * MONDAY",
         "cron: day of week field: 'MONDAY' is not a day of the week (0-7 or SUN-SAT)"},
        {"* * * * JAN", "cron: day of week field: 'JAN' is not a day of the week (0-7 or SUN-SAT)"},
        {"* 5-2 * * *", "cron: hour field: range 5-2 runs backwards"},
        {"* * * * FRI-SUN", "cron: day of week field: range FRI-SUN runs backwards (Sunday is 7 "
                            "at the end of a range)"},
        {"* * 1-32 * *", "cron: day of month field: 32 is out of range 1-31"},
        {"1,,2 * * * *", "cron: minute field: empty list element in '1,,2'"},
        {"1, * * * *", "cron: minute field: empty list element in '1,'"},
        {",1 * * * *", "cron: minute field: empty list element in ',1'"},
        {"-5 * * * *", "cron: minute field: '-5' is not a valid range"},
        {"5- * * * *", "cron: minute field: '5-' is not a valid range"},
        {"1-2-3 * * * *", "cron: minute field: '1-2-3' is not a valid range"},
        {"*-5 * * * *", "cron: minute field: '*-5' is not a valid range"},
        {"?  * * * *", "cron: minute field: '?' is not a number"},
        {"@reboot", "cron: @reboot is not supported: tikd schedules run by time only"},
        {"@often", "cron: unknown macro '@often' (use @yearly, @annually, @monthly, @weekly, "
                   "@daily, @midnight or @hourly)"},
        {"@daily 5", "cron: @daily takes no fields"},
        {longexpr, "cron: expression longer than 127 characters"},
        {NULL, "cron: no expression"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct cron c;
        struct tikd_err e = {0};
        int rc = cron_parse(cases[i].expr, &c, &e);
        if (rc != TIKD_EINVAL || e.code != TIKD_EINVAL || strcmp(e.msg, cases[i].msg) != 0)
            fail_msg("'%s': rc %d, message '%s', want '%s'", cases[i].expr ? cases[i].expr : "NULL",
                     rc, e.msg, cases[i].msg);
    }
}

/* Both day fields restricted: either matches. One starting with '*': both. */
static void day_or_rule(void **state)
{
    (void)state;
    struct cron c = parse_ok("0 12 1,15 * MON"); /* 2026-01-01 is a Thursday */
    static const int want[][2] = {{1, 1},  {1, 5},  {1, 12}, {1, 15},
                                  {1, 19}, {1, 26}, {2, 1},  {2, 2}};
    double t = utc(2025, 12, 31, 0, 0);
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        t = next(&c, NULL, t);
        assert_true(t == utc(2026, want[i][0], want[i][1], 12, 0));
    }
    /* cronie: a step on '*' counts as '*': odd days that are Mondays */
    c = parse_ok("0 12 */2 * MON");
    t = next(&c, "UTC", utc(2026, 1, 1, 0, 0));
    assert_true(t == utc(2026, 1, 5, 12, 0));
    t = next(&c, "UTC", t);
    assert_true(t == utc(2026, 1, 19, 12, 0));
    t = next(&c, "UTC", t);
    assert_true(t == utc(2026, 2, 9, 12, 0));
    c = parse_ok("0 12 15 * *");
    assert_true(next(&c, "", utc(2026, 1, 1, 0, 0)) == utc(2026, 1, 15, 12, 0));
    c = parse_ok("0 12 * * MON");
    assert_true(next(&c, "", utc(2026, 1, 1, 0, 0)) == utc(2026, 1, 5, 12, 0));
}

static void sunday_0_and_7(void **state)
{
    (void)state;
    struct cron a = parse_ok("0 0 * * 0"), b = parse_ok("0 0 * * 7"), s = parse_ok("0 0 * * sun");
    assert_int_equal(a.dow, 1);
    assert_int_equal(b.dow, 1);
    assert_int_equal(s.dow, 1);
    double t = utc(2026, 1, 1, 0, 0);
    assert_true(next(&b, "Europe/Berlin", t) == utc(2026, 1, 3, 23, 0)); /* Sun 4 Jan 00:00 CET */
    assert_true(next(&a, "Europe/Berlin", t) == next(&b, "Europe/Berlin", t));
    struct cron r = parse_ok("0 0 * * 6-7");
    assert_int_equal(r.dow, 1 << 0 | 1 << 6);
}

static void macros(void **state)
{
    (void)state;
    static const char *const pairs[][2] = {
        {"@yearly", "0 0 1 1 *"}, {"@annually", "0 0 1 1 *"}, {"@monthly", "0 0 1 * *"},
        {"@weekly", "0 0 * * 0"}, {"@daily", "0 0 * * *"},    {"@midnight", "0 0 * * *"},
        {"@hourly", "0 * * * *"}, {"@DAILY", "0 0 * * *"},
    };
    for (size_t i = 0; i < sizeof pairs / sizeof pairs[0]; i++) {
        struct cron m = parse_ok(pairs[i][0]), x = parse_ok(pairs[i][1]);
        assert_string_equal(m.expr, pairs[i][0]);
        assert_true(m.minute == x.minute && m.hour == x.hour && m.dom == x.dom &&
                    m.month == x.month && m.dow == x.dow && m.dom_star == x.dom_star &&
                    m.dow_star == x.dow_star);
    }
    struct cron w = parse_ok("@weekly");
    assert_true(next(&w, NULL, utc(2026, 1, 1, 0, 0)) == utc(2026, 1, 4, 0, 0));
    struct cron y = parse_ok("@yearly");
    assert_true(next(&y, "Asia/Kolkata", utc(2026, 1, 1, 0, 0)) == utc(2026, 12, 31, 18, 30));
}

/* 02:30 does not exist on 2026-03-08 in New York: read with EST, it is
 * 07:30Z = 03:30 EDT. 01:30 happens twice on 2026-11-01: fire once, at the
 * first (EDT, 05:30Z), and the next firing is the next day's. */
static void dst_gap_and_fold(void **state)
{
    (void)state;
    struct cron c = parse_ok("30 2 * * *");
    double t = next(&c, NY, utc(2026, 3, 7, 12, 0));
    assert_true(t == utc(2026, 3, 8, 7, 30));
    assert_true(next(&c, NY, t) == utc(2026, 3, 9, 6, 30)); /* 02:30 EDT */

    c = parse_ok("30 1 * * *");
    t = next(&c, NY, utc(2026, 10, 31, 12, 0));
    assert_true(t == utc(2026, 11, 1, 5, 30));
    t = next(&c, NY, t);
    assert_true(t == utc(2026, 11, 2, 6, 30)); /* not 06:30Z on the 1st */
    /* asked during the repeated hour, it is already past */
    assert_true(next(&c, NY, utc(2026, 11, 1, 6, 0)) == utc(2026, 11, 2, 6, 30));
    assert_true(next(&c, NY, utc(2026, 11, 1, 5, 29)) == utc(2026, 11, 1, 5, 30));
}

/* Every 15 minutes through both change days: instants strictly increase,
 * one firing per distinct wall-clock minute that maps forward: 92 on the
 * 23-hour day, 96 on the 25-hour day (01:00-01:45 once). */
static void dst_strictly_increasing(void **state)
{
    (void)state;
    static const struct {
        const char *tz;
        int y, m, d;
        double from, to; /* local midnight to midnight, UTC */
        int count;
    } days[] = {
        {NY, 2026, 3, 8, 0, 0, 92},
        {NY, 2026, 11, 1, 0, 0, 96},
        {"Australia/Lord_Howe", 2026, 4, 5, 0, 0, 96},  /* 01:30-01:59 twice */
        {"Australia/Lord_Howe", 2026, 10, 4, 0, 0, 94}, /* 02:00-02:29 skipped */
        {"Pacific/Chatham", 2026, 9, 27, 0, 0, 92},     /* 02:45 -> 03:45 */
    };
    struct cron c = parse_ok("*/15 * * * *");
    for (size_t i = 0; i < sizeof days / sizeof days[0]; i++) {
        struct cron_local lt = {.year = days[i].y, .month = days[i].m, .day = days[i].d};
        struct tikd_err e = {0};
        double from, to;
        assert_int_equal(cron_mktime(days[i].tz, &lt, &from, &e), 0);
        lt.day++;
        assert_int_equal(cron_mktime(days[i].tz, &lt, &to, &e), 0);
        int n = 0;
        for (double t = from - 1, prev = t; (t = next(&c, days[i].tz, t)) < to; prev = t, n++)
            assert_true(t > prev && fmod(t, 60) == 0);
        if (n != days[i].count)
            fail_msg("%s %d-%d: %d firings, want %d", days[i].tz, days[i].m, days[i].d, n,
                     days[i].count);
    }
}

/* Where a gap is not one whole hour on the hour, a skipped minute read with
 * the old offset lands after real minutes that follow the gap: the firings
 * come in time order, not wall-clock order, and none is lost. */
static void dst_odd_gaps(void **state)
{
    (void)state;
    static const struct {
        const char *expr, *tz;
        double after, want[4];
    } cases[] = {
        /* 02:00 +10:30 -> 02:30 +11: 02:00 15:30Z, the real 02:40 15:40Z, 02:20 15:50Z */
        {"*/20 2 * * *",
         "Australia/Lord_Howe",
         1791028800 /* 2026-10-03T12:00Z */,
         {1791041400, 1791042000, 1791042600, 1791126000}},
        /* 01:00 +00 -> 03:00 +02: the real 03:30 01:30Z, then 02:30 read as 02:30Z */
        {"30 2,3 * * *",
         "Antarctica/Troll",
         1774699200 /* 2026-03-28T12:00Z */,
         {1774747800, 1774751400, 1774830600, 1774834200}},
        /* 02:45 +12:45 -> 03:45 +13:45: the real 03:45 14:00Z, then 03:00 read as 14:15Z */
        {"*/45 3 * * *",
         "Pacific/Chatham",
         1790380800 /* 2026-09-26T00:00Z */,
         {1790431200, 1790432100, 1790514900, 1790517600}},
    };
    /* twice, the second time with the zones taking turns: what one zone's
     * transitions are must not carry over to another */
    for (int round = 0; round < 2; round++) {
        double t[3];
        for (size_t i = 0; i < 3; i++)
            t[i] = cases[i].after;
        for (int step = 0; step < 12; step++) {
            size_t i = round == 0 ? (size_t)step / 4 : (size_t)step % 3;
            int k = round == 0 ? step % 4 : step / 3;
            struct cron c = parse_ok(cases[i].expr);
            t[i] = next(&c, cases[i].tz, t[i]);
            if (t[i] != cases[i].want[k])
                fail_msg("%s in %s, firing %d: %.0f, want %.0f", cases[i].expr, cases[i].tz, k,
                         t[i], cases[i].want[k]);
        }
    }
}

static void fractional_after(void **state)
{
    (void)state;
    struct cron c = parse_ok("* * * * *");
    assert_true(next(&c, NULL, 60.0) == 120);
    assert_true(next(&c, NULL, 60.5) == 120);
    assert_true(next(&c, NULL, 59.999) == 60);
    assert_true(next(&c, NY, -0.5) == 0);
    struct tikd_err e = {0};
    double t;
    assert_int_equal(cron_next(&c, NULL, NAN, &t, &e), TIKD_EINVAL);
    assert_int_equal(cron_next(&c, NULL, INFINITY, &t, &e), TIKD_EINVAL);
    assert_int_equal(cron_next(&c, NULL, 1e12, &t, &e), TIKD_EINVAL);
    assert_non_null(strstr(e.msg, "out of range"));
}

static void localtime_fields(void **state)
{
    (void)state;
    struct cron_local lt;
    struct tikd_err e = {0};
    assert_int_equal(cron_localtime("Europe/Berlin", utc(2026, 7, 1, 10, 0) + 5.9, &lt, &e), 0);
    assert_int_equal(lt.year, 2026);
    assert_int_equal(lt.month, 7);
    assert_int_equal(lt.day, 1);
    assert_int_equal(lt.hour, 12);
    assert_int_equal(lt.minute, 0);
    assert_int_equal(lt.second, 5);
    assert_int_equal(lt.wday, 3);
    assert_int_equal(lt.yday, 182);
    assert_int_equal(lt.utc_offset, 7200);
    assert_string_equal(lt.abbr, "CEST");
    assert_int_equal(cron_localtime("Asia/Kolkata", utc(2026, 1, 1, 0, 0), &lt, &e), 0);
    assert_int_equal(lt.hour * 60 + lt.minute, 5 * 60 + 30);
    assert_int_equal(lt.utc_offset, 19800);
    assert_string_equal(lt.abbr, "IST");
    assert_int_equal(cron_localtime(NULL, utc(2024, 12, 31, 23, 59), &lt, &e), 0);
    assert_int_equal(lt.yday, 366);
    assert_int_equal(lt.wday, 2);
    assert_string_equal(lt.abbr, "UTC");
    assert_int_equal(lt.utc_offset, 0);
    assert_int_equal(cron_localtime("Pacific/Chatham", utc(2026, 1, 15, 0, 0), &lt, &e), 0);
    assert_int_equal(lt.utc_offset, 13 * 3600 + 45 * 60);
}

/* localtime -> mktime gives the instant back, except in a repeated hour's
 * second pass, where it gives the first pass (same wall clock, earlier). */
static void round_trips(void **state)
{
    (void)state;
    static const char *const zones[] = {
        NY, "Europe/Berlin", "Australia/Lord_Howe", "Asia/Kolkata", "Pacific/Chatham", "UTC"};
    int folds = 0;
    for (size_t z = 0; z < sizeof zones / sizeof zones[0]; z++) {
        /* every ~6 hours through 2026, and every 97 s through a day when the
         * offset changed in it */
        long prev_off = 0;
        for (double day = utc(2025, 12, 20, 0, 0); day < utc(2027, 1, 10, 0, 0); day += 86400) {
            struct cron_local lt, back;
            struct tikd_err e = {0};
            assert_int_equal(cron_localtime(zones[z], day + 86400, &lt, &e), 0);
            bool dense = lt.utc_offset != prev_off;
            prev_off = lt.utc_offset;
            for (double t = day + 7; t < day + 86400; t += dense ? 97 : 21613) {
                double u;
                assert_int_equal(cron_localtime(zones[z], t, &lt, &e), 0);
                assert_int_equal(cron_mktime(zones[z], &lt, &u, &e), 0);
                if (u == t)
                    continue;
                assert_true(u < t && t - u <= 3600);
                assert_int_equal(cron_localtime(zones[z], u, &back, &e), 0);
                assert_true(back.year == lt.year && back.month == lt.month && back.day == lt.day &&
                            back.hour == lt.hour && back.minute == lt.minute &&
                            back.second == lt.second && back.utc_offset > lt.utc_offset);
                folds++;
            }
        }
    }
    assert_true(folds > 0);
    /* the two DST cases through cron_mktime directly */
    struct cron_local gap = {.year = 2026, .month = 3, .day = 8, .hour = 2, .minute = 30};
    struct cron_local fold = {.year = 2026, .month = 11, .day = 1, .hour = 1, .minute = 30};
    double t;
    struct tikd_err e = {0};
    assert_int_equal(cron_mktime(NY, &gap, &t, &e), 0);
    assert_true(t == utc(2026, 3, 8, 7, 30));
    assert_int_equal(cron_mktime(NY, &fold, &t, &e), 0);
    assert_true(t == utc(2026, 11, 1, 5, 30));
    struct cron_local leap = {.year = 2028, .month = 2, .day = 29, .hour = 12};
    assert_int_equal(cron_mktime("Europe/Berlin", &leap, &t, &e), 0);
    assert_true(t == utc(2028, 2, 29, 11, 0));
    leap.year = 2026;
    assert_int_equal(cron_mktime("Europe/Berlin", &leap, &t, &e), TIKD_EINVAL);
    assert_string_equal(e.msg, "cron: no such local time 2026-02-29 12:00:00");
    struct cron_local bad = {.year = 2026, .month = 13, .day = 1};
    assert_int_equal(cron_mktime(NULL, &bad, &t, &e), TIKD_EINVAL);
}

static void impossible_date(void **state)
{
    (void)state;
    struct cron c = parse_ok("0 0 30 2 *");
    struct tikd_err e = {0};
    double t = 0;
    assert_int_equal(cron_next(&c, NY, utc(2026, 1, 1, 0, 0), &t, &e), TIKD_ENOTFOUND);
    assert_int_equal(e.code, TIKD_ENOTFOUND);
    assert_string_equal(
        e.msg, "cron: '0 0 30 2 *' does not fire within 5 years after 2026-01-01T00:00:00Z");
    c = parse_ok("0 0 31 4,6,9,11 *");
    assert_int_equal(cron_next(&c, NULL, 0, &t, &e), TIKD_ENOTFOUND);
    struct cron zero = {0}; /* not from cron_parse: refused, not looped on */
    assert_int_equal(cron_next(&zero, NULL, 0, &t, &e), TIKD_EINVAL);
    c = parse_ok("15 10 29 2 *"); /* rare, not impossible */
    assert_true(next(&c, "Europe/Berlin", utc(2026, 1, 1, 0, 0)) == utc(2028, 2, 29, 9, 15));
}

static void can_fire(void **state)
{
    (void)state;
    static const struct {
        const char *expr;
        bool fires;
    } cases[] = {
        {"0 0 30 2 *", false},
        {"0 0 31 4,6,9,11 *", false},
        {"0 0 30,31 2 *", false},
        {"0 0 31 2,4 */2", false},     /* day of week starts with *: both */
        {"0 0 31 FEB-APR/2 *", false}, /* Feb, Apr */
        {"0 0 29 2 *", true},          /* leap years */
        {"0 0 30 2 MON", true},        /* both restricted: every Monday in February */
        {"0 0 31 4 1-5", true},
        {"0 0 31 2,3 *", true}, /* March 31 */
        {"0 0 30 1-2 *", true},
        {"0 0 */30 2 *", true}, /* days 1 and 31: February 1 */
        {"* * * * *", true},
        {"@yearly", true},
        {"0 0 31 * *", true},
        {"0 0 1-31 2 *", true},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct cron c = parse_ok(cases[i].expr);
        if (cron_can_fire(&c) != cases[i].fires)
            fail_msg("cron_can_fire('%s') is %d", cases[i].expr, !cases[i].fires);
        /* it agrees with cron_next: what can fire fires within 5 years of 2026 */
        struct tikd_err e = {0};
        double t;
        int rc = cron_next(&c, "Europe/Berlin", utc(2026, 1, 1, 0, 0), &t, &e);
        assert_int_equal(rc, cases[i].fires ? 0 : TIKD_ENOTFOUND);
    }
    struct cron zero = {0};
    assert_false(cron_can_fire(&zero));
    assert_false(cron_can_fire(NULL));
}

static void zones(void **state)
{
    (void)state;
    static const char *const good[] = {
        NULL, "", "UTC", "Europe/Berlin", "Etc/GMT+5", "America/Argentina/Buenos_Aires"};
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++)
        assert_int_equal(cron_tz_check(good[i], NULL), 0);
    char longname[300];
    memset(longname, 'A', sizeof longname - 1);
    longname[sizeof longname - 1] = '\0';
    static const char *const bad[] = {"Mars/Olympus",   "../../etc/passwd", "/etc/localtime",
                                      "Europe",         "zone.tab",         "right/UTC",
                                      "Europe/Berlin ", "Europe//Berlin/",  "utc"};
    struct cron c = parse_ok("@daily");
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        struct tikd_err e = {0};
        char want[300];
        snprintf(want, sizeof want, "unknown time zone '%s'", bad[i]);
        assert_int_equal(cron_tz_check(bad[i], &e), TIKD_EINVAL);
        assert_string_equal(e.msg, want);
        double t;
        struct cron_local lt = {.year = 2026, .month = 1, .day = 1};
        assert_int_equal(cron_next(&c, bad[i], 0, &t, &e), TIKD_EINVAL);
        assert_string_equal(e.msg, want);
        assert_int_equal(cron_localtime(bad[i], 0, &lt, &e), TIKD_EINVAL);
        assert_int_equal(cron_mktime(bad[i], &lt, &t, &e), TIKD_EINVAL);
    }
    struct tikd_err e = {0};
    assert_int_equal(cron_tz_check(longname, &e), TIKD_EINVAL);
    assert_non_null(strstr(e.msg, "AAA...'"));
    assert_int_equal(cron_tz_check("Europe/Berlin\n", &e), TIKD_EINVAL);
    assert_string_equal(e.msg, "unknown time zone 'Europe/Berlin?'");
}

/* The caller's TZ is left as it was, and a zone still computes right after
 * other code made libc load another one. */
static void tz_left_alone(void **state)
{
    (void)state;
    struct cron_local lt;
    struct tikd_err e = {0};
    unsetenv("TZ");
    assert_int_equal(cron_localtime("Europe/Berlin", utc(2026, 7, 1, 0, 0), &lt, &e), 0);
    assert_null(getenv("TZ"));
    setenv("TZ", "Asia/Tokyo", 1);
    assert_int_equal(cron_localtime(NY, utc(2026, 7, 1, 0, 0), &lt, &e), 0);
    assert_string_equal(getenv("TZ"), "Asia/Tokyo");
    assert_string_equal(lt.abbr, "EDT");
    tzset(); /* someone else loads Tokyo */
    assert_int_equal(cron_localtime(NY, utc(2026, 7, 1, 0, 0), &lt, &e), 0);
    assert_string_equal(lt.abbr, "EDT");
    assert_int_equal(lt.utc_offset, -4 * 3600);
    struct cron c = parse_ok("0 9 * * *");
    tzset();
    assert_true(next(&c, NY, utc(2026, 7, 1, 0, 0)) == utc(2026, 7, 1, 13, 0));
    assert_string_equal(getenv("TZ"), "Asia/Tokyo");
    unsetenv("TZ");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(parse_good),
        cmocka_unit_test(parse_bad),
        cmocka_unit_test(day_or_rule),
        cmocka_unit_test(sunday_0_and_7),
        cmocka_unit_test(macros),
        cmocka_unit_test(dst_gap_and_fold),
        cmocka_unit_test(dst_strictly_increasing),
        cmocka_unit_test(dst_odd_gaps),
        cmocka_unit_test(fractional_after),
        cmocka_unit_test(localtime_fields),
        cmocka_unit_test(round_trips),
        cmocka_unit_test(impossible_date),
        cmocka_unit_test(can_fire),
        cmocka_unit_test(zones),
        cmocka_unit_test(tz_left_alone),
    };
    return cmocka_run_group_tests_name("cron", tests, NULL, NULL);
}
