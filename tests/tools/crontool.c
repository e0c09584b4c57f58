/* crontool.c - core/cron from the command line, so tests/integration/test_cron.py
 * can check it against an independent Python reference (zoneinfo).
 *
 *   crontool next EXPR TZ AFTER N   N successive firings after AFTER (each fed
 *                                   back as the next AFTER), Unix seconds, one a line
 *   crontool batch                  many `next` queries in one run: each stdin line
 *                                   "N<TAB>TZ<TAB>AFTER<TAB>EXPR" gives one stdout line,
 *                                   the N firings separated by spaces, or "! message"
 *                                   after the firings found before the error
 *   crontool bench EXPR TZ AFTER N [R]  time N successive cron_next calls from
 *                                   AFTER, R times over: ns per call
 *   crontool parse EXPR             "ok", or the error message and exit 1
 *   crontool local TZ T             cron_localtime: "Y M D h m s wday yday offset abbr"
 *   crontool mktime TZ Y M D h m s  cron_mktime: Unix seconds
 *
 * TZ "" or "UTC" is UTC. Errors go to stderr with exit status 1. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../../core/cron.h"

static int usage(void)
{
    fprintf(stderr, "usage: crontool next EXPR TZ AFTER N | batch | bench EXPR TZ AFTER N [R] |"
                    " parse EXPR | local TZ T | mktime TZ Y M D h m s\n");
    return 2;
}

static int fail(const struct tikd_err *e)
{
    fprintf(stderr, "%s\n", e->msg);
    return 1;
}

/* One batch line; tab-separated so the expression may hold blanks. */
static void batch_line(char *line)
{
    struct tikd_err e = {0};
    struct cron c;
    char *f[4];
    for (int i = 0; i < 4; i++) {
        f[i] = line;
        char *tab = i < 3 ? strchr(line, '\t') : NULL;
        if (i < 3 && !tab) {
            printf("! expected N<TAB>TZ<TAB>AFTER<TAB>EXPR\n");
            return;
        }
        if (tab) {
            *tab = '\0';
            line = tab + 1;
        }
    }
    f[3][strcspn(f[3], "\n")] = '\0';
    long n = strtol(f[0], NULL, 10);
    double t = strtod(f[2], NULL);
    if (cron_parse(f[3], &c, &e)) {
        printf("! %s\n", e.msg);
        return;
    }
    for (long i = 0; i < n; i++) {
        if (cron_next(&c, f[1], t, &t, &e)) {
            printf("%s! %s\n", i ? " " : "", e.msg);
            return;
        }
        printf("%s%.0f", i ? " " : "", t);
    }
    printf("\n");
}

static double now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e9 + ts.tv_nsec;
}

int main(int argc, char **argv)
{
    struct tikd_err e = {0};
    struct cron c;
    if (argc == 3 && strcmp(argv[1], "parse") == 0) {
        if (cron_parse(argv[2], &c, &e))
            return printf("%s\n", e.msg), 1;
        printf("ok\n");
        return 0;
    }
    if (argc == 6 && strcmp(argv[1], "next") == 0) {
        if (cron_parse(argv[2], &c, &e))
            return fail(&e);
        double t = strtod(argv[4], NULL);
        long n = strtol(argv[5], NULL, 10);
        for (long i = 0; i < n; i++) {
            if (cron_next(&c, argv[3], t, &t, &e))
                return fail(&e);
            printf("%.0f\n", t);
        }
        return 0;
    }
    if (argc == 2 && strcmp(argv[1], "batch") == 0) {
        char line[512];
        while (fgets(line, sizeof line, stdin))
            batch_line(line);
        return 0;
    }
    if ((argc == 6 || argc == 7) && strcmp(argv[1], "bench") == 0) {
        if (cron_parse(argv[2], &c, &e))
            return fail(&e);
        long n = strtol(argv[5], NULL, 10), r = argc == 7 ? strtol(argv[6], NULL, 10) : 1;
        double t0 = now_ns();
        for (long k = 0; k < r; k++) {
            double t = strtod(argv[4], NULL);
            for (long i = 0; i < n; i++)
                if (cron_next(&c, argv[3], t, &t, &e))
                    return fail(&e);
        }
        printf("%.0f ns per cron_next\n", n * r > 0 ? (now_ns() - t0) / (n * r) : 0.0);
        return 0;
    }
    if (argc == 4 && strcmp(argv[1], "local") == 0) {
        struct cron_local lt;
        if (cron_localtime(argv[2], strtod(argv[3], NULL), &lt, &e))
            return fail(&e);
        printf("%d %d %d %d %d %d %d %d %ld %s\n", lt.year, lt.month, lt.day, lt.hour, lt.minute,
               lt.second, lt.wday, lt.yday, lt.utc_offset, lt.abbr);
        return 0;
    }
    if (argc == 9 && strcmp(argv[1], "mktime") == 0) {
        struct cron_local lt = {.year = atoi(argv[3]),
                                .month = atoi(argv[4]),
                                .day = atoi(argv[5]),
                                .hour = atoi(argv[6]),
                                .minute = atoi(argv[7]),
                                .second = atoi(argv[8])};
        double t;
        if (cron_mktime(argv[2], &lt, &t, &e))
            return fail(&e);
        printf("%.0f\n", t);
        return 0;
    }
    return usage();
}
