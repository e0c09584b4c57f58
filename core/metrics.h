/* metrics.h - the engine's counters and histograms, in memory, for
 * GET /metrics (Prometheus' text format, version 0.0.4).
 *
 * The parts count what happens as it happens (an HTTP attempt and how long
 * it took, a rule call and how it ended, a post's outcome); what the store
 * already holds (jobs and accounts by state, the budgets' decisions) is
 * read when scraped, by the caller, and written with metrics_gauge().
 * Every family is declared once in metrics.c's table with its type and
 * help; names follow Prometheus' conventions (tikd_..._total, _seconds,
 * base units). Counters start at 0 with each process, as Prometheus
 * expects (its rate() handles restarts). Single-threaded. */
#ifndef TIKD_METRICS_H
#define TIKD_METRICS_H

#include <stddef.h>

/* Label sets are written as Prometheus does: key="value",key="value"
 * (metrics_labels escapes the values). NULL or "" is no labels. */
void metrics_inc(const char *family, const char *labels, double by);
void metrics_observe(const char *family, const char *labels, double value);
/* A gauge the process keeps itself (the last compliance check's results). */
void metrics_set(const char *family, const char *labels, double v);

/* A series to add to often without looking it up (a rule call's end):
 * valid for the life of the process; NULL when out of memory (adding to it
 * then does nothing). */
struct metric;
struct metric *metrics_get(const char *family, const char *labels);
void metrics_add(struct metric *m, double by);

/* labels from pairs: metrics_labels(buf, n, "endpoint", "init", "outcome", "ok", NULL) */
const char *metrics_labels(char *buf, size_t n, ...) __attribute__((sentinel));

/* The text of every family: the counters and histograms, then the gauges
 * gauges(ud) adds with metrics_gauge while it runs. Returns a malloc'd
 * string, or NULL when out of memory. */
struct metrics_out;
char *metrics_render(void (*gauges)(struct metrics_out *out, void *ud), void *ud);
void metrics_gauge(struct metrics_out *out, const char *family, const char *labels, double v);

/* Every value back to 0 (tests). */
void metrics_reset(void);

#endif
