/* metrics.c - counters, histograms and their exposition (see metrics.h).
 *
 * Series live in one open-addressed table keyed by family and label set;
 * a few hundred series at most (the label values come from fixed sets:
 * endpoints, outcomes, states, reasons), so a linear table is plenty. */
#include "metrics.h"

#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum mtype { M_COUNTER, M_GAUGE, M_HISTOGRAM };

static const struct family {
    const char *name;
    enum mtype type;
    const char *help;
} families[] = {
    {"tikd_http_requests_total", M_COUNTER,
     "HTTP attempts the engine made, by target (TikTok endpoint, upload, token, rule) and "
     "outcome (ok, retry, defer, reauth, fail)"},
    {"tikd_http_rate_limited_total", M_COUNTER, "answers that were 429 or rate_limit_exceeded"},
    {"tikd_http_request_duration_seconds", M_HISTOGRAM,
     "time of one HTTP attempt, from its start to its answer"},
    {"tikd_upload_bytes_total", M_COUNTER, "video bytes TikTok accepted in upload chunks"},
    {"tikd_posts_total", M_COUNTER,
     "jobs that reached a final state, by outcome and TikTok's fail_reason"},
    {"tikd_token_refreshes_total", M_COUNTER, "access token refreshes, by outcome"},
    {"tikd_rule_calls_total", M_COUNTER,
     "calls into rule files, by how they ended (ok, error, budget, cancelled)"},
    {"tikd_rule_reloads_total", M_COUNTER, "rule reloads, by result (ok, failed)"},
    {"tikd_api_requests_total", M_COUNTER, "admin API requests, by HTTP status"},
    {"tikd_jobs", M_GAUGE, "jobs in the store, by state"},
    {"tikd_accounts", M_GAUGE, "accounts, by state (needs_reauth: an operator must reconnect)"},
    {"tikd_budget_decisions_total", M_COUNTER,
     "TikTok budget decisions since the store was made, by budget and decision"},
    {"tikd_budget_wait_seconds_total", M_COUNTER,
     "seconds jobs were told to wait for a budget, summed"},
    {"tikd_rules_generation", M_GAUGE, "the live rule generation"},
    {"tikd_store_writable", M_GAUGE, "1 while the database takes writes, 0 while it is full"},
    {"tikd_store_commits_total", M_COUNTER,
     "durable LMDB commits of the daemon (each carries the writes of one or more loop turns)"},
    {"tikd_store_writes_total", M_COUNTER, "state changes those commits carried"},
    {"tikd_alerts_total", M_COUNTER, "alerts raised, by kind"},
    {"tikd_alerts_quieted_total", M_COUNTER,
     "alerts not raised again within their quiet time, by kind"},
    {"tikd_notifications_total", M_COUNTER,
     "notification webhook deliveries, by outcome (delivered, retried, gave_up, dropped)"},
    {"tikd_notifications_pending", M_GAUGE, "notifications waiting in the queue"},
    {"tikd_compliance_failures", M_GAUGE, "checks the last compliance check failed"},
    {"tikd_compliance_warnings", M_GAUGE, "checks the last compliance check warned about"},
    {"tikd_compliance_check_level", M_GAUGE,
     "each check of the last compliance check: 0 ok, 1 warning, 2 failed"},
    {"tikd_compliance_last_run_timestamp_seconds", M_GAUGE,
     "when the last compliance check ended (Unix time)"},
};
#define NFAM (sizeof families / sizeof families[0])

/* seconds: a local API call is milliseconds, an upload chunk can be minutes */
static const double bounds[] = {0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 120};
#define NB (sizeof bounds / sizeof bounds[0])

struct series {
    int fam;
    char *labels;
    double value; /* counters; histograms: the sum */
    uint64_t count, bucket[NB];
};

static struct series **tab; /* each series stays where it was made: handles stay valid */
static size_t ntab, captab;

static int family_of(const char *name)
{
    for (size_t i = 0; i < NFAM; i++)
        if (strcmp(families[i].name, name) == 0)
            return (int)i;
    return -1;
}

static struct series *get(const char *family, const char *labels)
{
    int f = family_of(family);
    if (f < 0)
        return NULL; /* (a name not in the table is a bug the tests catch: nothing shows) */
    labels = labels ? labels : "";
    for (size_t i = 0; i < ntab; i++)
        if (tab[i]->fam == f && strcmp(tab[i]->labels, labels) == 0)
            return tab[i];
    if (ntab == captab) {
        size_t nc = captab ? captab * 2 : 64;
        struct series **g = realloc(tab, nc * sizeof *g);
        if (!g)
            return NULL;
        tab = g;
        captab = nc;
    }
    struct series *n = calloc(1, sizeof *n);
    char *l = strdup(labels);
    if (!n || !l) {
        free(n);
        free(l);
        return NULL;
    }
    n->fam = f;
    n->labels = l;
    return tab[ntab++] = n;
}

struct metric *metrics_get(const char *family, const char *labels)
{
    return (struct metric *)get(family, labels);
}

void metrics_add(struct metric *m, double by)
{
    if (m)
        ((struct series *)m)->value += by;
}

void metrics_inc(const char *family, const char *labels, double by)
{
    struct series *s = get(family, labels);
    if (s)
        s->value += by;
}

void metrics_set(const char *family, const char *labels, double v)
{
    struct series *s = get(family, labels);
    if (s)
        s->value = v;
}

void metrics_observe(const char *family, const char *labels, double value)
{
    struct series *s = get(family, labels);
    if (!s)
        return;
    s->value += value;
    s->count++;
    for (size_t i = 0; i < NB; i++)
        if (value <= bounds[i])
            s->bucket[i]++;
}

const char *metrics_labels(char *buf, size_t n, ...)
{
    va_list ap;
    va_start(ap, n);
    size_t w = 0;
    buf[0] = '\0';
    for (const char *k; (k = va_arg(ap, const char *));) {
        const char *v = va_arg(ap, const char *);
        if (!v)
            break;
        int m = snprintf(buf + w, n - w, "%s%s=\"", w ? "," : "", k);
        if (m < 0 || (size_t)m >= n - w)
            break;
        w += (size_t)m;
        for (; *v && w + 3 < n; v++) {
            if (*v == '\\' || *v == '"') {
                buf[w++] = '\\';
                buf[w++] = *v;
            } else if (*v == '\n') {
                buf[w++] = '\\';
                buf[w++] = 'n';
            } else {
                buf[w++] = *v;
            }
        }
        if (w + 2 > n)
            break;
        buf[w++] = '"';
        buf[w] = '\0';
    }
    va_end(ap);
    return buf;
}

struct metrics_out {
    char *p;
    size_t n, cap;
    bool oom;
    struct gauge {
        int fam;
        char *labels;
        double v;
    } * g;
    size_t ng, capg;
};

static void put(struct metrics_out *o, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void put(struct metrics_out *o, const char *fmt, ...)
{
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        int m = vsnprintf(o->p ? o->p + o->n : NULL, o->p ? o->cap - o->n : 0, fmt, ap);
        va_end(ap);
        if (m < 0) {
            o->oom = true;
            return;
        }
        if (o->p && (size_t)m < o->cap - o->n) {
            o->n += (size_t)m;
            return;
        }
        size_t nc = (o->cap ? o->cap : 4096) * 2 + (size_t)m;
        char *g = realloc(o->p, nc);
        if (!g) {
            o->oom = true;
            return;
        }
        o->p = g;
        o->cap = nc;
    }
}

void metrics_gauge(struct metrics_out *o, const char *family, const char *labels, double v)
{
    int f = family_of(family);
    if (f < 0)
        return;
    if (o->ng == o->capg) {
        size_t nc = o->capg ? o->capg * 2 : 32;
        struct gauge *g = realloc(o->g, nc * sizeof *g);
        if (!g) {
            o->oom = true;
            return;
        }
        o->g = g;
        o->capg = nc;
    }
    char *l = strdup(labels ? labels : "");
    if (!l) {
        o->oom = true;
        return;
    }
    o->g[o->ng++] = (struct gauge){f, l, v};
}

static void num(struct metrics_out *o, double v)
{
    if (v == (double)(long long)v && v < 1e15 && v > -1e15)
        put(o, "%lld\n", (long long)v);
    else
        put(o, "%.17g\n", v);
}

static void sample(struct metrics_out *o, const char *name, const char *suffix, const char *labels,
                   const char *extra, double v)
{
    bool any = labels && *labels, more = extra && *extra;
    put(o, "%s%s%s%s%s%s%s ", name, suffix, any || more ? "{" : "", any ? labels : "",
        any && more ? "," : "", more ? extra : "", any || more ? "}" : "");
    num(o, v);
}

char *metrics_render(void (*gauges)(struct metrics_out *out, void *ud), void *ud)
{
    struct metrics_out o = {0};
    if (gauges)
        gauges(&o, ud);
    for (size_t f = 0; f < NFAM; f++) {
        const struct family *fam = &families[f];
        static const char *const types[] = {"counter", "gauge", "histogram"};
        put(&o, "# HELP %s %s\n# TYPE %s %s\n", fam->name, fam->help, fam->name, types[fam->type]);
        for (size_t i = 0; i < ntab; i++) {
            const struct series *s = tab[i];
            if (s->fam != (int)f)
                continue;
            if (fam->type != M_HISTOGRAM) {
                sample(&o, fam->name, "", s->labels, NULL, s->value);
                continue;
            }
            for (size_t b = 0; b < NB; b++) {
                char le[32];
                snprintf(le, sizeof le, "le=\"%g\"", bounds[b]);
                sample(&o, fam->name, "_bucket", s->labels, le, (double)s->bucket[b]);
            }
            sample(&o, fam->name, "_bucket", s->labels, "le=\"+Inf\"", (double)s->count);
            sample(&o, fam->name, "_sum", s->labels, NULL, s->value);
            sample(&o, fam->name, "_count", s->labels, NULL, (double)s->count);
        }
        for (size_t i = 0; i < o.ng; i++)
            if (o.g[i].fam == (int)f)
                sample(&o, fam->name, "", o.g[i].labels, NULL, o.g[i].v);
    }
    for (size_t i = 0; i < o.ng; i++)
        free(o.g[i].labels);
    free(o.g);
    if (o.oom) {
        free(o.p);
        return NULL;
    }
    return o.p ? o.p : strdup("");
}

void metrics_reset(void)
{
    for (size_t i = 0; i < ntab; i++) { /* zeroed, not freed: handles stay valid */
        tab[i]->value = 0;
        tab[i]->count = 0;
        memset(tab[i]->bucket, 0, sizeof tab[i]->bucket);
    }
}
