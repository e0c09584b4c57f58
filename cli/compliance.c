/* compliance.c - the daemon's compliance check (see compliance.h): `tikd
 * doctor --json` as a child run (cli/child.c) on a timer. */
#include "compliance.h"
#include "child.h"
#include "cli.h"

#include <ev.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../core/log.h"
#include "../core/metrics.h"

#define FIRST_AFTER 5.0   /* seconds after start (at most the interval) */
#define CHILD_TIME  600.0 /* a check that takes longer is killed */

struct compliance {
    struct ev_loop *loop;
    const struct cli *cli;
    compliance_alert_fn alert;
    void *ud;
    ev_timer every;
    struct child_run *run; /* the check in flight */
};

static void checked(void *ud, int status, const char *out, size_t len)
{
    (void)len;
    struct compliance *k = ud;
    k->run = NULL;
    json_t *doc = json_loads(out, 0, NULL);
    json_t *checks = json_object_get(doc, "checks");
    if (!json_is_array(checks)) {
        TLOG(TLOG_ERROR, "compliance.not_run", LINT("status", status),
             LSTR("reason", "tikd doctor gave no report"));
        if (k->alert)
            k->alert(k->ud, "compliance", "the compliance check could not run");
    } else {
        int fails = (int)json_integer_value(json_object_get(doc, "fails"));
        int warns = (int)json_integer_value(json_object_get(doc, "warns"));
        metrics_set("tikd_compliance_failures", NULL, fails);
        metrics_set("tikd_compliance_warnings", NULL, warns);
        size_t i;
        json_t *c;
        json_array_foreach(checks, i, c)
        {
            const char *name = json_string_value(json_object_get(c, "check"));
            const char *level = json_string_value(json_object_get(c, "level"));
            const char *detail = json_string_value(json_object_get(c, "detail"));
            if (!name || !level)
                continue;
            char lb[80];
            int lv = strcmp(level, "ok") == 0 ? 0 : strcmp(level, "warn") == 0 ? 1 : 2;
            metrics_set("tikd_compliance_check_level",
                        metrics_labels(lb, sizeof lb, "check", name, NULL), lv);
            if (lv == 2) {
                TLOG(TLOG_ERROR, "compliance.failed", LSTR("check", name),
                     LSTR("detail", detail ? detail : ""));
                if (k->alert)
                    k->alert(k->ud, name, detail ? detail : "");
            } else if (lv == 1) {
                TLOG(TLOG_WARN, "compliance.warning", LSTR("check", name),
                     LSTR("detail", detail ? detail : ""));
            }
        }
        TLOG(fails ? TLOG_ERROR : TLOG_INFO, "compliance.checked", LINT("fails", fails),
             LINT("warns", warns), LINT("checks", (long long)json_array_size(checks)));
    }
    metrics_set("tikd_compliance_last_run_timestamp_seconds", NULL, ev_now(k->loop));
    json_decref(doc);
}

static void on_every(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)revents;
    struct compliance *k = w->data;
    if (k->run)
        return; /* the last one still runs */
    static const char *const args[] = {"doctor", "--json", NULL};
    k->run = child_run_start(loop, k->cli, args, CHILD_TIME, checked, k);
}

struct compliance *compliance_start(struct ev_loop *loop, const struct cli *c,
                                    compliance_alert_fn alert, void *ud)
{
    double every = c->cfg.compliance_interval;
    if (!(every > 0))
        return NULL;
    struct compliance *k = calloc(1, sizeof *k);
    if (!k)
        return NULL;
    k->loop = loop;
    k->cli = c;
    k->alert = alert;
    k->ud = ud;
    ev_timer_init(&k->every, on_every, every < FIRST_AFTER ? every : FIRST_AFTER, every);
    k->every.data = k;
    ev_timer_start(loop, &k->every);
    ev_unref(loop); /* the timer alone does not keep the daemon up */
    return k;
}

void compliance_free(struct compliance *k)
{
    if (!k)
        return;
    ev_ref(k->loop);
    ev_timer_stop(k->loop, &k->every);
    child_run_cancel(k->run);
    free(k);
}
