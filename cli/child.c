/* child.c - the daemon's child runs (see child.h). */
#include "child.h"
#include "cli.h"

#include <errno.h>
#include <ev.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <unistd.h>

#include "../core/log.h"

#define OUT_MAX (4 << 20)

extern char **environ;

struct child_run {
    struct ev_loop *loop;
    child_done_fn done;
    void *ud;
    ev_child child;
    ev_io out;
    ev_timer limit;
    double time_limit;
    pid_t pid; /* 0 once reaped */
    int fd;
    char *buf;
    size_t len;
    bool exited, drained, killed, overflow;
    int status;
    char tmp[64]; /* its private TMPDIR, removed when it is over */
};

static void run_free(struct child_run *r)
{
    if (r->tmp[0])
        cli_rmtree(r->tmp); /* what a killed `tikd plan` left there (its database copy) */
    ev_timer_stop(r->loop, &r->limit);
    ev_child_stop(r->loop, &r->child);
    if (r->fd >= 0) {
        ev_io_stop(r->loop, &r->out);
        close(r->fd);
    }
    free(r->buf);
    free(r);
}

static void maybe_done(struct child_run *r)
{
    if (!r->exited || !r->drained)
        return;
    child_done_fn done = r->done;
    void *ud = r->ud;
    int status = r->killed || r->overflow ? -1 : r->status;
    char *buf = r->buf;
    size_t len = r->len;
    r->buf = NULL;
    run_free(r);
    done(ud, status, buf ? buf : "", len);
    free(buf);
}

static void on_out(struct ev_loop *loop, ev_io *w, int revents)
{
    (void)revents;
    struct child_run *r = w->data;
    char chunk[16384];
    ssize_t n = read(r->fd, chunk, sizeof chunk);
    if (n < 0 && (errno == EINTR || errno == EAGAIN))
        return;
    if (n > 0) {
        if (r->len + (size_t)n >= OUT_MAX)
            r->overflow = true; /* an answer cut short is no answer: read on, keep nothing */
        if (!r->overflow) {
            char *g = realloc(r->buf, r->len + (size_t)n + 1);
            if (g) {
                r->buf = g;
                memcpy(r->buf + r->len, chunk, (size_t)n);
                r->len += (size_t)n;
                r->buf[r->len] = '\0';
            }
        }
        return;
    }
    ev_io_stop(loop, w);
    close(r->fd);
    r->fd = -1;
    r->drained = true;
    maybe_done(r);
}

static void on_exit_child(struct ev_loop *loop, ev_child *w, int revents)
{
    (void)revents;
    struct child_run *r = w->data;
    ev_child_stop(loop, w);
    r->status = w->rstatus;
    r->pid = 0; /* reaped: never signalled again */
    r->exited = true;
    maybe_done(r);
}

static void on_limit(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)revents;
    struct child_run *r = w->data;
    r->killed = true;
    if (r->pid > 0) {
        TLOG(TLOG_WARN, "child.killed", LINT("pid", r->pid), LDBL("after_s", r->time_limit));
        kill(r->pid, SIGKILL);
    } else if (!r->drained) { /* exited, but something it started keeps its stdout open */
        ev_io_stop(loop, &r->out);
        close(r->fd);
        r->fd = -1;
        r->drained = true;
        maybe_done(r);
    }
}

struct child_run *child_run_start(struct ev_loop *loop, const struct cli *c,
                                  const char *const *args, double time_limit, child_done_fn done,
                                  void *ud)
{
    /* this very binary, even when an upgrade replaced the file on disk */
    static char exe[] = "/proc/self/exe";
    int p[2];
    if (pipe2(p, O_CLOEXEC) != 0) {
        TLOG(TLOG_ERROR, "child.not_run", LSTR("reason", strerror(errno)));
        return NULL;
    }
    /* a TMPDIR of its own, removed when it is over however it ends */
    const char *base = getenv("TMPDIR");
    char tmp[64];
    snprintf(tmp, sizeof tmp, "%s/tikd-child-XXXXXX",
             base && *base && strlen(base) < 40 ? base : "/tmp");
    if (!mkdtemp(tmp)) {
        close(p[0]);
        close(p[1]);
        TLOG(TLOG_ERROR, "child.not_run", LSTR("reason", strerror(errno)));
        return NULL;
    }
    size_t nenv = 0;
    while (environ[nenv])
        nenv++;
    char **envp = calloc(nenv + 2, sizeof *envp);
    char tmpdir_var[80];
    snprintf(tmpdir_var, sizeof tmpdir_var, "TMPDIR=%s", tmp);
    size_t k = 0;
    for (size_t i = 0; envp && i < nenv; i++)
        if (strncmp(environ[i], "TMPDIR=", 7) != 0)
            envp[k++] = environ[i];
    if (envp)
        envp[k++] = tmpdir_var;
    char *argv[16];
    int a = 0;
    argv[a++] = "tikd";
    if (c->config_path) {
        argv[a++] = "--config";
        argv[a++] = (char *)c->config_path;
    }
    for (int i = 0; args[i] && a < 15; i++)
        argv[a++] = (char *)args[i];
    argv[a] = NULL;
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, p[1], 1);
    posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_addclosefrom_np(&fa, 3); /* no listener, lock or database fd */
    posix_spawnattr_t at;
    posix_spawnattr_init(&at);
    sigset_t none, all;
    sigemptyset(&none);
    sigfillset(&all);
    posix_spawnattr_setsigmask(&at, &none);   /* the daemon's signal state is not the child's */
    posix_spawnattr_setsigdefault(&at, &all); /* (SIGPIPE ignored, SIGUSR1/HUP watched) */
    posix_spawnattr_setflags(&at, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
    pid_t pid;
    int rc = envp ? posix_spawn(&pid, exe, &fa, &at, argv, envp) : ENOMEM;
    posix_spawn_file_actions_destroy(&fa);
    posix_spawnattr_destroy(&at);
    free(envp);
    close(p[1]);
    struct child_run *r = rc == 0 ? calloc(1, sizeof *r) : NULL;
    if (!r) {
        cli_rmtree(tmp);
        close(p[0]);
        if (rc == 0)
            kill(pid, SIGKILL); /* (the default loop reaps it) */
        TLOG(TLOG_ERROR, "child.not_run", LSTR("reason", rc ? strerror(rc) : "out of memory"));
        return NULL;
    }
    fcntl(p[0], F_SETFL, O_NONBLOCK);
    r->loop = loop;
    r->done = done;
    r->ud = ud;
    r->pid = pid;
    r->fd = p[0];
    ev_child_init(&r->child, on_exit_child, pid, 0);
    r->child.data = r;
    ev_child_start(loop, &r->child);
    ev_io_init(&r->out, on_out, r->fd, EV_READ);
    r->out.data = r;
    ev_io_start(loop, &r->out);
    snprintf(r->tmp, sizeof r->tmp, "%s", tmp);
    r->time_limit = time_limit;
    ev_timer_init(&r->limit, on_limit, time_limit, 0.);
    r->limit.data = r;
    ev_timer_start(loop, &r->limit);
    TLOG(TLOG_DEBUG, "child.started", LINT("pid", pid), LSTR("what", args[0] ? args[0] : ""));
    return r;
}

void child_run_cancel(struct child_run *r)
{
    if (!r)
        return;
    if (r->pid > 0)
        kill(r->pid, SIGKILL); /* (the default loop reaps it: no wait here) */
    run_free(r);
}
