/* clock.c - real and replaceable clocks (see clock.h). Not thread-safe to
 * swap while another thread reads; tikd swaps only in tests, before use. */
#include "clock.h"

#include <math.h>
#include <stdio.h>
#include <time.h>

static double (*source)(void);
static double virtual_now;

static double read_clock(clockid_t id)
{
    struct timespec ts;
    clock_gettime(id, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

double clock_now(void)
{
    return source ? source() : read_clock(CLOCK_REALTIME);
}

double clock_mono(void)
{
    return read_clock(CLOCK_MONOTONIC);
}

double clock_boot(void)
{
    return read_clock(CLOCK_BOOTTIME);
}

void clock_set_source(double (*fn)(void))
{
    source = fn;
}

static double read_virtual(void)
{
    return virtual_now;
}

void clock_set_virtual(double t)
{
    virtual_now = t;
    source = read_virtual;
}

int clock_parse_utc(const char *s, double *t)
{
    struct tm tm = {0};
    const char *end = s ? strptime(s, "%Y-%m-%dT%H:%M:%SZ", &tm) : NULL;
    if (!end || *end)
        return -1;
    *t = (double)timegm(&tm);
    return 0;
}

void clock_fmt_utc(double t, char *out, size_t n)
{
    time_t s = (time_t)ceil(t);
    struct tm tm;
    if (t >= 1e17 || !gmtime_r(&s, &tm) || !strftime(out, n, "%Y-%m-%d %H:%M:%S UTC", &tm))
        snprintf(out, n, "later");
}
