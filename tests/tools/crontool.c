/* crontool.c - core/cron from the command line, so tests/integration/test_cron.py
 * can check it against an independent Python reference (zoneinfo).
 *
 *   crontool next EXPR TZ AFTER N   N successive firings after AFTER (each fed
 *                                   back as the next AFTER), Unix seconds, one a line
 *   crontool parse EXPR             "ok", or the error message and exit 1
 *   crontool local TZ T             cron_localtime: "Y M D h m s wday yday offset abbr"
 *   crontool mktime TZ Y M D h m s  cron_mktime: Unix seconds
 *
 * TZ "" or "UTC" is UTC. Errors go to stderr with exit status 1. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../core/cron.h"

static int usage(void)
{
    fprintf(stderr, "usage: crontool next EXPR TZ AFTER N | parse EXPR | local TZ T |"
                    " mktime TZ Y M D h m s\n");
    return 2;
}

static int fail(const struct tikd_err *e)
{
    fprintf(stderr, "%s\n", e->msg);
    return 1;
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
