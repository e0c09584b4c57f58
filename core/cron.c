/* cron.c - cron expressions (see cron.h) and the wall-clock arithmetic under
 * them, with the C library's tz code. TZ is process-global and tikd is
 * single-threaded: a zone is loaded by setting TZ to its file and calling
 * tzset(), then the caller's TZ is put back at once; libc keeps the zone loaded
 * (localtime_r does not re-read TZ), so that is the cache, re-checked with three
 * probe instants in case other code called tzset(). No mktime (it re-reads TZ and
 * leaves skipped/repeated times unspecified): local time -> instant applies
 * zoneinfo's fold=0 rule to transitions found with localtime_r (and kept for a
 * few days around). That reading does not keep wall-clock order across a gap,
 * so cron_next takes the earliest instant, not the first local minute. */
#include "cron.h"
#include "fileio.h"

#include <fcntl.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define ZONEINFO     "/usr/share/zoneinfo"
#define TZ_NAME_MAX  200
#define HORIZON_DAYS (5 * 366)        /* cron_next gives up after this many local days */
#define T_MIN        (-62135596800.0) /* 0001-01-01T00:00:00Z */
#define T_MAX        253402300799.0   /* 9999-12-31T23:59:59Z */
#define DAY          86400

/* ---- the proleptic Gregorian calendar on day numbers (0 = 1970-01-01) ---- */

static int64_t floor_div(int64_t a, int64_t b)
{
    int64_t q = a / b;
    return (a % b != 0 && (a < 0) != (b < 0)) ? q - 1 : q;
}

static int64_t days_from_civil(int64_t y, int m, int d)
{
    y -= m <= 2;
    int64_t era = floor_div(y, 400);
    int64_t yoe = y - era * 400;
    int64_t doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

static void civil_from_days(int64_t z, int64_t *y, int *m, int *d)
{
    z += 719468;
    int64_t era = floor_div(z, 146097);
    int64_t doe = z - era * 146097;
    int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    int64_t mp = (5 * doy + 2) / 153;
    *d = (int)(doy - (153 * mp + 2) / 5 + 1);
    *m = (int)(mp < 10 ? mp + 3 : mp - 9);
    *y = yoe + era * 400 + (*m <= 2);
}

static int days_in_month(int64_t y, int m)
{
    static const int n[13] = {0, 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    return m == 2 && leap ? 29 : n[m];
}

static int weekday(int64_t days)
{
    return (int)((days % 7 + 11) % 7); /* 1970-01-01 was a Thursday */
}

/* ---- parsing ---- */

static const char *const month_names[] = {"JAN", "FEB", "MAR", "APR", "MAY", "JUN",
                                          "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"};
static const char *const dow_names[] = {"SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"};

struct field {
    const char *name;
    int lo, hi;
    const char *const *names; /* names[i] is value lo + i */
    int nnames;
    const char *what; /* for "'x' is not ..." */
};

static const struct field fields[5] = {
    {"minute", 0, 59, NULL, 0, "a number"},
    {"hour", 0, 23, NULL, 0, "a number"},
    {"day of month", 1, 31, NULL, 0, "a number"},
    {"month", 1, 12, month_names, 12, "a month (1-12 or JAN-DEC)"},
    {"day of week", 0, 7, dow_names, 7, "a day of the week (0-7 or SUN-SAT)"},
};

static const struct {
    const char *name, *expansion;
} macros[] = {
    {"@yearly", "0 0 1 1 *"}, {"@annually", "0 0 1 1 *"}, {"@monthly", "0 0 1 * *"},
    {"@weekly", "0 0 * * 0"}, {"@daily", "0 0 * * *"},    {"@midnight", "0 0 * * *"},
    {"@hourly", "0 * * * *"},
};

static int field_fail(struct tikd_err *e, const struct field *f, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int field_fail(struct tikd_err *e, const struct field *f, const char *fmt, ...)
{
    char msg[400];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return tikd_fail(e, TIKD_EINVAL, "cron: %s field: %s", f->name, msg);
}

static bool all_digits(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (s[i] < '0' || s[i] > '9')
            return false;
    return n > 0;
}

/* One value: digits, or a name where the field has names. */
static int parse_value(const struct field *f, const char *s, size_t n, int *v, struct tikd_err *e)
{
    if (all_digits(s, n)) {
        long x = 0;
        for (size_t i = 0; i < n && x <= 1000000; i++)
            x = x * 10 + (s[i] - '0');
        if (x < f->lo || x > f->hi)
            return field_fail(e, f, "%.*s is out of range %d-%d", (int)n, s, f->lo, f->hi);
        *v = (int)x;
        return 0;
    }
    if (n == 3)
        for (int i = 0; i < f->nnames; i++)
            if (strncasecmp(s, f->names[i], 3) == 0) {
                *v = f->lo + i;
                return 0;
            }
    return field_fail(e, f, "'%.*s' is not %s", (int)n, s, f->what);
}

/* One list element: *, a, a-b, each optionally /step; sets its bits. */
static int parse_element(const struct field *f, const char *s, size_t n, uint64_t *bits,
                         struct tikd_err *e)
{
    const char *slash = memchr(s, '/', n);
    size_t bn = slash ? (size_t)(slash - s) : n;
    int lo, hi, step = 1, rc;
    if (bn == 0)
        return field_fail(e, f, "'%.*s' has no value before the step", (int)n, s);
    if (bn == 1 && s[0] == '*') {
        lo = f->lo;
        hi = f->hi;
    } else {
        const char *dash = memchr(s, '-', bn);
        if (!dash) {
            if ((rc = parse_value(f, s, bn, &lo, e)))
                return rc;
            hi = slash ? f->hi : lo; /* a/n means a-last/n, as cronie reads it */
        } else {
            size_t an = (size_t)(dash - s), zn = bn - an - 1;
            if (an == 0 || zn == 0 || memchr(dash + 1, '-', zn) || memchr(s, '*', bn))
                return field_fail(e, f, "'%.*s' is not a valid range", (int)bn, s);
            if ((rc = parse_value(f, s, an, &lo, e)) || (rc = parse_value(f, dash + 1, zn, &hi, e)))
                return rc;
            if (lo > hi)
                return field_fail(e, f, "range %.*s runs backwards%s", (int)bn, s,
                                  f->hi == 7 ? " (Sunday is 7 at the end of a range)" : "");
        }
    }
    if (slash) {
        const char *p = slash + 1;
        size_t pn = n - bn - 1;
        if (!all_digits(p, pn))
            return field_fail(e, f, "step '%.*s' is not a number in '%.*s'", (int)pn, p, (int)n, s);
        long x = 0;
        for (size_t i = 0; i < pn && x <= 1000000; i++)
            x = x * 10 + (p[i] - '0');
        if (x == 0)
            return field_fail(e, f, "step 0 in '%.*s'", (int)n, s);
        step = x > 1000 ? 1000 : (int)x; /* any step past the field's span is the same */
    }
    for (int i = lo; i <= hi; i += step)
        *bits |= (uint64_t)1 << i;
    return 0;
}

static int parse_field(const struct field *f, const char *s, size_t n, uint64_t *bits,
                       struct tikd_err *e)
{
    *bits = 0;
    for (size_t i = 0; i <= n;) {
        const char *comma = memchr(s + i, ',', n - i);
        size_t len = comma ? (size_t)(comma - (s + i)) : n - i;
        if (len == 0)
            return field_fail(e, f, "empty list element in '%.*s'", (int)n, s);
        int rc = parse_element(f, s + i, len, bits, e);
        if (rc)
            return rc;
        i += len + 1;
    }
    return 0;
}

static bool blank(char ch)
{
    return ch == ' ' || ch == '\t' || ch == '\n' || ch == '\r' || ch == '\f' || ch == '\v';
}

int cron_parse(const char *expr, struct cron *c, struct tikd_err *e)
{
    if (!expr || !c)
        return tikd_fail(e, TIKD_EINVAL, "cron: no expression");
    while (blank(*expr))
        expr++;
    size_t n = strlen(expr);
    while (n > 0 && blank(expr[n - 1]))
        n--;
    if (n == 0)
        return tikd_fail(e, TIKD_EINVAL, "cron: empty expression");
    if (n >= sizeof c->expr)
        return tikd_fail(e, TIKD_EINVAL, "cron: expression longer than %zu characters",
                         sizeof c->expr - 1);
    struct cron out = {0};
    memcpy(out.expr, expr, n);
    const char *text = out.expr;
    if (text[0] == '@') {
        size_t wn = 0;
        while (wn < n && !blank(text[wn]))
            wn++;
        const char *exp = NULL;
        for (size_t i = 0; i < sizeof macros / sizeof macros[0] && !exp; i++)
            if (wn == strlen(macros[i].name) && strncasecmp(text, macros[i].name, wn) == 0)
                exp = macros[i].expansion;
        if (!exp && wn == 7 && strncasecmp(text, "@reboot", 7) == 0)
            return tikd_fail(e, TIKD_EINVAL,
                             "cron: @reboot is not supported: tikd schedules run by time only");
        if (!exp)
            return tikd_fail(e, TIKD_EINVAL,
                             "cron: unknown macro '%.*s' (use @yearly, @annually, @monthly, "
                             "@weekly, @daily, @midnight or @hourly)",
                             (int)wn, text);
        if (wn != n)
            return tikd_fail(e, TIKD_EINVAL, "cron: %.*s takes no fields", (int)wn, text);
        text = exp;
    }
    const char *tok[6];
    size_t len[6];
    int count = 0;
    for (const char *p = text; *p;) {
        while (blank(*p))
            p++;
        if (!*p)
            break;
        const char *start = p;
        while (*p && !blank(*p))
            p++;
        if (count < 6) {
            tok[count] = start;
            len[count] = (size_t)(p - start);
        }
        count++;
    }
    if (count != 5)
        return tikd_fail(e, TIKD_EINVAL, "cron: expected 5 fields, got %d", count);
    uint64_t bits[5];
    for (int i = 0; i < 5; i++) {
        int rc = parse_field(&fields[i], tok[i], len[i], &bits[i], e);
        if (rc)
            return rc;
    }
    out.minute = bits[0];
    out.hour = (uint32_t)bits[1];
    out.dom = (uint32_t)bits[2];
    out.month = (uint16_t)bits[3];
    out.dow = (uint8_t)((bits[4] | bits[4] >> 7) & 0x7f); /* 7 is Sunday too */
    out.dom_star = tok[2][0] == '*';                      /* cronie: the field starts with * */
    out.dow_star = tok[4][0] == '*';
    *c = out;
    return 0;
}

bool cron_can_fire(const struct cron *c)
{
    /* the longest each month can be: February 29 exists, now and then */
    static const int longest[13] = {0, 31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    if (!c || !(c->minute & 0x0fffffffffffffffULL) || !(c->hour & 0xffffff) ||
        !(c->month & 0x1ffe) || !(c->dow & 0x7f))
        return false;
    if (!c->dom_star && !c->dow_star)
        return true; /* either field matching is enough, and the weekdays always come */
    for (int m = 1; m <= 12; m++)
        if (((c->month >> m) & 1) && (c->dom & (((uint64_t)2 << longest[m]) - 2)))
            return true;
    return false;
}

/* ---- time zones ---- */

static bool is_utc(const char *tz)
{
    return !tz || !*tz || strcmp(tz, "UTC") == 0;
}

/* The transitions of the loaded zone over a few days, found once: around a
 * transition every local minute needs them (a quarter-hourly schedule asks for the
 * same ones some 200 times), and finding them takes some 50 localtime_r
 * calls. zone_use forgets them when it loads a zone. */
#define SPAN_MAX 64
static struct {
    bool ok;
    int64_t lo, hi; /* the instants covered, both ends included */
    long first;     /* the offset at lo */
    int n;
    int64_t at[SPAN_MAX]; /* the first instant of each new offset, ascending */
    long off[SPAN_MAX];
} span;

/* Probe instants that tell one loaded zone from another: 1950-01-01,
 * 2025-01-01, 2025-07-01. */
static const time_t probes[3] = {-631152000, 1735689600, 1751328000};

static struct {
    bool loaded;
    char name[TZ_NAME_MAX + 1];
    long off[3];
    char abbr[3][16];
} zone;

static void probe(int i, long *off, char abbr[16])
{
    struct tm tm;
    memset(&tm, 0, sizeof tm);
    localtime_r(&probes[i], &tm);
    *off = tm.tm_gmtoff;
    snprintf(abbr, 16, "%s", tm.tm_zone ? tm.tm_zone : "");
}

static bool zone_still_loaded(void)
{
    for (int i = 0; i < 3; i++) {
        long off;
        char abbr[16];
        probe(i, &off, abbr);
        if (off != zone.off[i] || strcmp(abbr, zone.abbr[i]) != 0)
            return false;
    }
    return true;
}

/* A name safe to print: at most 64 characters, non-printables as '?'. */
static const char *printable(const char *s, char out[80])
{
    size_t i = 0;
    for (; s[i] && i < 64; i++)
        out[i] = s[i] >= 0x20 && s[i] < 0x7f ? s[i] : '?';
    snprintf(out + i, 80 - i, "%s", s[i] ? "..." : "");
    return out;
}

int cron_tz_check(const char *tz, struct tikd_err *e)
{
    if (is_utc(tz))
        return 0;
    char shown[80];
    size_t n = strlen(tz);
    bool ok =
        n <= TZ_NAME_MAX && tz[0] != '/' && !strstr(tz, "..") && strncmp(tz, "right/", 6) != 0;
    for (size_t i = 0; ok && i < n; i++) {
        char ch = tz[i];
        ok = (ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') ||
             ch == '_' || ch == '+' || ch == '-' || ch == '/';
    }
    if (ok) {
        char path[sizeof ZONEINFO + TZ_NAME_MAX + 1];
        snprintf(path, sizeof path, "%s/%s", ZONEINFO, tz);
        struct stat st;
        char magic[4] = {0};
        int fd = fileio_open_regular(path, &st, NULL);
        ok = fd >= 0 && read(fd, magic, 4) == 4 && memcmp(magic, "TZif", 4) == 0;
        if (fd >= 0)
            close(fd);
    }
    if (!ok)
        return tikd_fail(e, TIKD_EINVAL, "unknown time zone '%s'", printable(tz, shown));
    return 0;
}

/* Make tz the zone localtime_r computes in (*utc: no zone needed at all). */
static int zone_use(const char *tz, bool *utc, struct tikd_err *e)
{
    *utc = is_utc(tz);
    if (*utc || (zone.loaded && strcmp(zone.name, tz) == 0 && zone_still_loaded()))
        return 0;
    int rc = cron_tz_check(tz, e);
    if (rc)
        return rc;
    const char *old = getenv("TZ");
    char *saved = old ? strdup(old) : NULL;
    char spec[sizeof ZONEINFO + TZ_NAME_MAX + 2];
    snprintf(spec, sizeof spec, ":%s/%s", ZONEINFO, tz);
    if ((old && !saved) || setenv("TZ", spec, 1) != 0) {
        free(saved);
        return tikd_fail(e, TIKD_ENOMEM, "cron: out of memory setting TZ");
    }
    tzset();
    if (saved)
        setenv("TZ", saved, 1);
    else
        unsetenv("TZ");
    free(saved);
    zone.loaded = true;
    span.ok = false;
    snprintf(zone.name, sizeof zone.name, "%s", tz);
    for (int i = 0; i < 3; i++)
        probe(i, &zone.off[i], zone.abbr[i]);
    return 0;
}

/* The UTC offset (seconds east) in force at instant t in the loaded zone. */
static long off_at(int64_t t)
{
    if (span.ok && t >= span.lo && t <= span.hi) {
        long o = span.first;
        for (int i = 0; i < span.n && t >= span.at[i]; i++)
            o = span.off[i];
        return o;
    }
    time_t tt = (time_t)t;
    struct tm tm;
    if (!localtime_r(&tt, &tm))
        return 0;
    return tm.tm_gmtoff;
}

/* Find the transitions in [lo, hi] (hi - lo a multiple of 6 hours) by
 * bisecting each 6-hour segment whose ends differ: this assumes no offset
 * comes and goes again within 6 hours. */
static void span_find(int64_t lo, int64_t hi)
{
    const int64_t seg = 6 * 3600;
    span.ok = false;
    span.lo = lo;
    span.hi = hi;
    span.n = 0;
    long o_lo = span.first = off_at(lo);
    for (int64_t s = lo; s < hi; s += seg) {
        long o_hi = off_at(s + seg);
        int64_t from = s;
        while (o_lo != o_hi) { /* bisect to the first second with another offset */
            int64_t l = from, h = s + seg;
            while (h - l > 1) {
                int64_t mid = l + (h - l) / 2;
                if (off_at(mid) == o_lo)
                    l = mid;
                else
                    h = mid;
            }
            long o_new = off_at(h);
            if (span.n < SPAN_MAX) { /* no zone changes 64 times in 4 days */
                span.at[span.n] = h;
                span.off[span.n++] = o_new;
            }
            from = h;
            o_lo = o_new;
        }
    }
    span.ok = true;
}

/* The instant of local wall time `lam` (seconds of local time since
 * 1970-01-01 00:00 local), by zoneinfo's fold=0 rule: the offset after a
 * transition T (from offset b to offset a) applies from local time T +
 * max(b, a) on. So a skipped time keeps the offset before the gap and a
 * repeated one the earlier (larger) offset. Every offset is under 16 hours,
 * so only transitions within a day of `lam` matter. *real (if not NULL):
 * false when the clocks skip `lam`, so the instant shows another wall time. */
static int64_t local_to_utc(int64_t lam, bool *real)
{
    if (real)
        *real = true;
    if (!span.ok || lam - DAY < span.lo || lam + DAY > span.hi) {
        long p = off_at(lam - DAY), q = off_at(lam + DAY);
        if (p == q && off_at(lam - p) == p)
            return lam - p; /* the common case: no transition near */
        span_find(lam - 2 * DAY, lam + 2 * DAY);
    }
    long use = span.first, before = span.first;
    for (int i = 0; i < span.n; i++) {
        if (lam >= span.at[i] + (before > span.off[i] ? before : span.off[i]))
            use = span.off[i];
        before = span.off[i];
    }
    if (real)
        *real = off_at(lam - use) == use;
    return lam - use;
}

/* ---- cron_next ---- */

static int next_bit(uint64_t set, int from, int max)
{
    if (from > max || from > 63)
        return -1;
    uint64_t s = set >> from;
    if (!s)
        return -1;
    int b = from + __builtin_ctzll(s);
    return b <= max ? b : -1;
}

static bool day_matches(const struct cron *c, int d, int wday)
{
    bool dm = (c->dom >> d) & 1, wm = (c->dow >> wday) & 1;
    return (c->dom_star || c->dow_star) ? dm && wm : dm || wm;
}

/* The first matching local minute at or after *lam (minute-aligned), skipping
 * whole months, days and hours that cannot match; false past `limit`. */
static bool next_local(const struct cron *c, int64_t *lam, int64_t limit)
{
    int64_t days = floor_div(*lam, DAY), y;
    int sec = (int)(*lam - days * DAY), h = sec / 3600, mi = sec % 3600 / 60, m, d;
    civil_from_days(days, &y, &m, &d);
    while (days * DAY <= limit) {
        if (!((c->month >> m) & 1)) {
            do {
                if (++m > 12) {
                    m = 1;
                    y++;
                }
            } while (!((c->month >> m) & 1));
            d = 1;
            days = days_from_civil(y, m, 1);
            h = mi = 0;
            continue;
        }
        int hh = day_matches(c, d, weekday(days)) ? next_bit(c->hour, h, 23) : -1;
        if (hh >= 0) {
            if (hh != h)
                mi = 0;
            h = hh;
            int mm = next_bit(c->minute, mi, 59);
            if (mm >= 0) {
                *lam = days * DAY + h * 3600 + mm * 60;
                return *lam <= limit;
            }
            if (++h < 24) {
                mi = 0;
                continue;
            }
        }
        days++; /* the next day */
        h = mi = 0;
        if (++d > days_in_month(y, m)) {
            d = 1;
            if (++m > 12) {
                m = 1;
                y++;
            }
        }
    }
    return false;
}

static int check_time(double t, struct tikd_err *e)
{
    if (!(t >= T_MIN && t <= T_MAX))
        return tikd_fail(e, TIKD_EINVAL, "cron: time %g is out of range (years 1-9999)", t);
    return 0;
}

int cron_next(const struct cron *c, const char *tz, double after, double *next, struct tikd_err *e)
{
    bool utc;
    int rc;
    if (!c || !next)
        return tikd_fail(e, TIKD_EINVAL, "cron: no schedule");
    if (!(c->minute & 0x0fffffffffffffffULL) || !(c->hour & 0xffffff) || !(c->dom & 0xfffffffe) ||
        !(c->month & 0x1ffe) || !(c->dow & 0x7f))
        return tikd_fail(e, TIKD_EINVAL, "cron: empty schedule (not from cron_parse?)");
    if ((rc = check_time(after, e)) || (rc = zone_use(tz, &utc, e)))
        return rc;
    int64_t a = (int64_t)floor(after), lam = a;
    if (!utc) {
        long o_a = off_at(a), o_prev = off_at(a - DAY);
        lam = a + o_a;
        /* Just after clocks skipped g seconds, local times in the gap (before
         * lam) read with the old offset land after `a`: start there. */
        if (o_prev < o_a && off_at(a - (o_a - o_prev)) != o_a)
            lam = a + o_prev;
    }
    lam = floor_div(lam, 60) * 60;
    int64_t limit = lam + (int64_t)HORIZON_DAYS * DAY, best = 0;
    bool found = false;
    /* The earliest instant after `a` wins, which is not always the first
     * matching local minute: a minute the clocks skip, read with the offset
     * before the gap, lands after the gap, and so after the real minutes
     * that follow the gap on the wall clock until the old offset catches up
     * (Lord_Howe, 02:00 +10:30 -> 02:30 +11: a skipped 02:20 is 15:50Z, after
     * the real 02:40 = 15:40Z). A real minute bounds the search: each later
     * local minute is either in the same stretch of one offset, so later, or
     * in a later stretch, which starts after the real minute's instant. So
     * scan up to the first real match after `a`, keeping the earliest
     * instant. Matches not after `a` (a repeated hour that already fired,
     * skipped times whose instant passed) are passed over. */
    while (next_local(c, &lam, limit)) {
        bool real = true;
        int64_t t = utc ? lam : local_to_utc(lam, &real);
        if (t > a && (!found || t < best)) {
            best = t;
            found = true;
        }
        if (t > a && real)
            break;
        lam += 60;
        if (found && !real && t == best) {
            /* The rest of this gap lands later still, and the real minutes
             * after it land after `a` only from a + (the new offset) on. */
            int64_t skip = floor_div(a + off_at(t), 60) * 60 + 60;
            lam = skip > lam ? skip : lam;
        }
    }
    if (found) {
        *next = (double)best;
        return 0;
    }
    time_t at = (time_t)a;
    struct tm tm;
    char when[40] = "?";
    if (gmtime_r(&at, &tm))
        strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", &tm);
    return tikd_fail(e, TIKD_ENOTFOUND, "cron: '%s' does not fire within 5 years after %s", c->expr,
                     when);
}

/* ---- local time ---- */

int cron_localtime(const char *tz, double t, struct cron_local *out, struct tikd_err *e)
{
    bool utc;
    int rc;
    if (!out)
        return tikd_fail(e, TIKD_EINVAL, "cron: no result buffer");
    if ((rc = check_time(t, e)) || (rc = zone_use(tz, &utc, e)))
        return rc;
    time_t s = (time_t)floor(t);
    struct tm tm;
    if (!(utc ? gmtime_r(&s, &tm) : localtime_r(&s, &tm)))
        return tikd_fail(e, TIKD_EINVAL, "cron: time %g cannot be converted", t);
    out->year = tm.tm_year + 1900;
    out->month = tm.tm_mon + 1;
    out->day = tm.tm_mday;
    out->hour = tm.tm_hour;
    out->minute = tm.tm_min;
    out->second = tm.tm_sec;
    out->wday = tm.tm_wday;
    out->yday = tm.tm_yday + 1;
    out->utc_offset = utc ? 0 : tm.tm_gmtoff;
    snprintf(out->abbr, sizeof out->abbr, "%s", utc ? "UTC" : tm.tm_zone ? tm.tm_zone : "");
    return 0;
}

int cron_mktime(const char *tz, const struct cron_local *lt, double *t, struct tikd_err *e)
{
    bool utc;
    int rc;
    if (!lt || !t)
        return tikd_fail(e, TIKD_EINVAL, "cron: no local time");
    if (lt->year < 1 || lt->year > 9999 || lt->month < 1 || lt->month > 12 || lt->day < 1 ||
        lt->day > days_in_month(lt->year, lt->month) || lt->hour < 0 || lt->hour > 23 ||
        lt->minute < 0 || lt->minute > 59 || lt->second < 0 || lt->second > 59)
        return tikd_fail(e, TIKD_EINVAL, "cron: no such local time %04d-%02d-%02d %02d:%02d:%02d",
                         lt->year, lt->month, lt->day, lt->hour, lt->minute, lt->second);
    if ((rc = zone_use(tz, &utc, e)))
        return rc;
    int64_t lam = days_from_civil(lt->year, lt->month, lt->day) * DAY + lt->hour * 3600 +
                  lt->minute * 60 + lt->second;
    *t = (double)(utc ? lam : local_to_utc(lam, NULL));
    return 0;
}
