/* compliance.c - the daemon's compliance check (see compliance.h). */
#include "compliance.h"
#include "cli.h"

#include <errno.h>
#include <ev.h>
#include <fcntl.h>
#include <jansson.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../core/log.h"
#include "../core/metrics.h"

#define FIRST_AFTER 5.0       /* seconds after start (at most the interval) */
#define OUT_MAX     (1 << 20) /* bytes of the child's JSON */
#define CHILD_TIME  600.0     /* a check that takes longer is killed */

extern char **environ;

struct compliance {
    struct ev_loop *loop;
    const struct cli *cli;
    compliance_alert_fn alert;
    void *ud;
    ev_timer every, limit;
    ev_child child;
    ev_io out;
    pid_t pid;
    int fd;
    char *buf;
    size_t len;
    bool exited, drained;
    int status;
};

static void finish(struct compliance *k)
{
    ev_timer_stop(k->loop, &k->limit);
    json_t *doc = k->buf ? json_loads(k->buf, 0, NULL) : NULL;
    json_t *checks = json_object_get(doc, "checks");
    if (!json_is_array(checks)) {
        TLOG(TLOG_ERROR, "compliance.not_run", LINT("status", k->status),
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
    free(k->buf);
    k->buf = NULL;
    k->len = 0;
    k->pid = 0;
    k->exited = k->drained = false;
}

/* Both the exit and the end of its output: then the report is whole. */
static void maybe_finish(struct compliance *k)
{
    if (k->exited && k->drained)
        finish(k);
}

static void on_out(struct ev_loop *loop, ev_io *w, int revents)
{
    (void)revents;
    struct compliance *k = w->data;
    char chunk[8192];
    ssize_t n = read(k->fd, chunk, sizeof chunk);
    if (n < 0 && (errno == EINTR || errno == EAGAIN))
        return;
    if (n > 0 && k->len + (size_t)n < OUT_MAX) {
        char *g = realloc(k->buf, k->len + (size_t)n + 1);
        if (g) {
            k->buf = g;
            memcpy(k->buf + k->len, chunk, (size_t)n);
            k->len += (size_t)n;
            k->buf[k->len] = '\0';
        }
        return;
    }
    if (n > 0)
        return; /* past the bound: read and dropped */
    ev_io_stop(loop, w);
    close(k->fd);
    k->fd = -1;
    k->drained = true;
    maybe_finish(k);
}

static void on_exit_child(struct ev_loop *loop, ev_child *w, int revents)
{
    (void)revents;
    struct compliance *k = w->data;
    ev_child_stop(loop, w);
    k->status = w->rstatus;
    k->exited = true;
    k->pid = -1; /* reaped: the pid may be another process's from now on (still "running"
                  * until its output is read) */
    maybe_finish(k);
}

static void on_limit(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)loop;
    (void)revents;
    struct compliance *k = w->data;
    if (k->pid > 0) {
        TLOG(TLOG_WARN, "compliance.killed", LDBL("after_s", CHILD_TIME));
        kill(k->pid, SIGKILL);
    }
}

static void on_every(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)revents;
    struct compliance *k = w->data;
    if (k->pid != 0)
        return; /* the last one still runs (or its output is still being read) */
    char exe[4096];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    int p[2];
    if (n <= 0 || pipe2(p, O_CLOEXEC) != 0) {
        TLOG(TLOG_ERROR, "compliance.not_run", LSTR("reason", strerror(errno)));
        return;
    }
    exe[n] = '\0';
    char *argv[6];
    int a = 0;
    argv[a++] = exe;
    if (k->cli->config_path) {
        argv[a++] = "--config";
        argv[a++] = (char *)k->cli->config_path;
    }
    argv[a++] = "doctor";
    argv[a++] = "--json";
    argv[a] = NULL;
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, p[1], 1);
    posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_addclosefrom_np(&fa, 3); /* no listener, lock or database fd */
    pid_t pid;
    int rc = posix_spawn(&pid, exe, &fa, NULL, argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    close(p[1]);
    if (rc != 0) {
        close(p[0]);
        TLOG(TLOG_ERROR, "compliance.not_run", LSTR("reason", strerror(rc)));
        return;
    }
    fcntl(p[0], F_SETFL, O_NONBLOCK);
    k->pid = pid;
    k->fd = p[0];
    k->exited = k->drained = false;
    ev_child_init(&k->child, on_exit_child, pid, 0);
    k->child.data = k;
    ev_child_start(loop, &k->child);
    ev_io_init(&k->out, on_out, k->fd, EV_READ);
    k->out.data = k;
    ev_io_start(loop, &k->out);
    ev_timer_set(&k->limit, CHILD_TIME, 0.);
    ev_timer_start(loop, &k->limit);
    TLOG(TLOG_DEBUG, "compliance.started", LINT("pid", pid));
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
    k->fd = -1;
    ev_timer_init(&k->every, on_every, every < FIRST_AFTER ? every : FIRST_AFTER, every);
    k->every.data = k;
    ev_timer_start(loop, &k->every);
    ev_unref(loop); /* the timer alone does not keep the daemon up */
    ev_init(&k->limit, on_limit);
    k->limit.data = k;
    return k;
}

void compliance_free(struct compliance *k)
{
    if (!k)
        return;
    ev_ref(k->loop);
    ev_timer_stop(k->loop, &k->every);
    ev_timer_stop(k->loop, &k->limit);
    if (k->pid > 0) { /* (the default loop reaps it: no wait here) */
        kill(k->pid, SIGKILL);
        ev_child_stop(k->loop, &k->child);
    }
    if (k->fd >= 0) {
        ev_io_stop(k->loop, &k->out);
        close(k->fd);
    }
    free(k->buf);
    free(k);
}
