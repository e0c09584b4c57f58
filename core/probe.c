/* probe.c - running the media probe (probe/tikd-probe.c) in a process of
 * its own and reading its answer (see media.h).
 *
 * The file is opened and sniffed here, once; the child gets that very
 * descriptor as its standard input (what was sniffed is what is probed),
 * a pipe as its standard output, /dev/null for the rest, an empty
 * environment and no other descriptor. It confines itself (rlimits, no new
 * privileges); here it also has a deadline, after which it is killed. Its
 * answer is one JSON line of at most PROBE_OUT_MAX bytes. */
#include "media.h"
#include "fileio.h"
#include "tiktok.h"

#include <errno.h>
#include <ev.h>
#include <fcntl.h>
#include <jansson.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#ifndef TIKD_PROBE_PATH
#define TIKD_PROBE_PATH "/usr/local/lib/tikd/tikd-probe"
#endif

#define PROBE_OUT_MAX (64u << 10)

static char program[4096];
static double timeout = MEDIA_PROBE_SECONDS;

/* What the probe said of the files it read last, by identity (device,
 * inode, size, change times): a file posted again, or checked when planned
 * and again at its pre-flight, is read once. A changed file is a new one. */
#define CACHE_SLOTS 64

static struct cached {
    bool used;
    struct media_info mi; /* with the identity of the file it was read from */
    char refused[sizeof((struct tikd_err *)0)->msg]; /* the probe refused it: why, or "" */
} cache[CACHE_SLOTS];
static unsigned cache_next;

static struct cached *cache_find(const struct stat *st)
{
    for (unsigned i = 0; i < CACHE_SLOTS; i++)
        if (cache[i].used && media_same_file(&cache[i].mi, st))
            return &cache[i];
    return NULL;
}

/* A file read before: 1 with *mi (or its refusal in e, -1), 0 when not. */
static int cache_get(const struct stat *st, struct media_info *mi, struct tikd_err *e)
{
    struct cached *c = cache_find(st);
    if (!c)
        return 0;
    *mi = c->mi;
    if (!c->refused[0])
        return 1;
    tikd_fail(e, TIKD_EINVAL, "%s", c->refused);
    return -1;
}

/* What the probe said of a file: read (rc 0), or refused by it (TIKD_EINVAL:
 * the file's doing, so a second look would say the same). Anything else
 * (a probe that could not run or finish) is not kept. */
static void cache_put(const struct stat *st, const struct media_info *mi, int rc,
                      const struct tikd_err *e)
{
    if (rc != 0 && rc != TIKD_EINVAL)
        return;
    struct cached *c = cache_find(st);
    if (!c)
        c = &cache[cache_next++ % CACHE_SLOTS];
    *c = (struct cached){.used = true, .mi = *mi};
    if (rc != 0)
        snprintf(c->refused, sizeof c->refused, "%s", e->msg);
}

void media_set_probe_program(const char *path, double seconds)
{
    memset(cache, 0, sizeof cache); /* another probe may read otherwise */
    snprintf(program, sizeof program, "%s", path ? path : "");
    timeout = seconds > 0 ? seconds : MEDIA_PROBE_SECONDS;
}

/* Beside the running binary or a level up (the build tree: build/tikd,
 * build/tikd-probe, build/tests/...) or where `make install` puts it. */
const char *media_probe_program(void)
{
    if (program[0])
        return program;
    char exe[4096];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 16);
    char *slash = n > 0 ? (exe[n] = '\0', strrchr(exe, '/')) : NULL;
    for (int up = 0; slash && up < 2; up++) { /* build/tests/test_x: build/tikd-probe */
        strcpy(slash + 1, "tikd-probe");
        if (access(exe, X_OK) == 0) {
            snprintf(program, sizeof program, "%s", exe);
            return program;
        }
        *slash = '\0';
        slash = strrchr(exe, '/');
    }
    snprintf(program, sizeof program, "%s", TIKD_PROBE_PATH);
    return program;
}

/* The sniff alone decides: a container TikTok does not take, or a file
 * larger than any it takes, needs no probe to be refused. */
static bool needs_probe(const struct media_info *mi)
{
    return mi->mime && mi->size <= TT_VIDEO_MAX_BYTES;
}

static int spawn(int fd, pid_t *pid, int *out, struct tikd_err *e)
{
    int p[2];
    if (pipe2(p, O_CLOEXEC) != 0)
        return tikd_fail(e, TIKD_EIO, "cannot start the media probe: pipe: %s", strerror(errno));
    posix_spawn_file_actions_t fa;
    posix_spawnattr_t at;
    posix_spawn_file_actions_init(&fa);
    posix_spawnattr_init(&at);
    posix_spawn_file_actions_adddup2(&fa, fd, 0);
    posix_spawn_file_actions_adddup2(&fa, p[1], 1);
    posix_spawn_file_actions_addopen(&fa, 2, "/dev/null", O_WRONLY, 0);
    posix_spawn_file_actions_addclosefrom_np(&fa, 3);
    sigset_t none, all;
    sigemptyset(&none);
    sigfillset(&all);
    posix_spawnattr_setsigmask(&at, &none);
    posix_spawnattr_setsigdefault(&at, &all);
    /* a group of its own: whatever it might start is killed with it */
    posix_spawnattr_setpgroup(&at, 0);
    posix_spawnattr_setflags(&at, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF |
                                      POSIX_SPAWN_SETPGROUP);
    const char *prog = media_probe_program();
    char *argv[] = {(char *)"tikd-probe", NULL}, *envp[] = {NULL};
    int rc = posix_spawn(pid, prog, &fa, &at, argv, envp);
    posix_spawn_file_actions_destroy(&fa);
    posix_spawnattr_destroy(&at);
    close(p[1]);
    if (rc != 0) {
        close(p[0]);
        return tikd_fail(e, TIKD_EIO, "cannot run the media probe %s: %s", prog, strerror(rc));
    }
    *out = p[0];
    return 0;
}

static void copy(char *dst, size_t n, json_t *o, const char *k)
{
    const char *s = json_string_value(json_object_get(o, k));
    snprintf(dst, n, "%s", s ? s : "");
}

static double num(json_t *o, const char *k)
{
    json_t *v = json_object_get(o, k);
    return json_is_number(v) ? json_number_value(v) : 0;
}

static int clamp(double v, double lo, double hi)
{
    return v != v ? 0 : v < lo ? (int)lo : v > hi ? (int)hi : (int)v;
}

int media_parse_probe(const char *text, size_t len, struct media_info *mi, struct tikd_err *e)
{
    json_error_t je;
    json_t *o = json_loadb(text, len, JSON_REJECT_DUPLICATES, &je);
    int rc = 0;
    if (!json_is_object(o)) {
        rc = tikd_fail(e, TIKD_EIO, "the media probe gave no answer tikd can read");
        goto out;
    }
    if (!json_is_true(json_object_get(o, "ok"))) {
        const char *why = json_string_value(json_object_get(o, "error"));
        rc = tikd_fail(e, TIKD_EINVAL, "%.300s", why ? why : "the media probe cannot read it");
        goto out;
    }
    mi->probed = true;
    copy(mi->demuxer, sizeof mi->demuxer, o, "demuxer");
    double d = num(o, "duration");
    mi->duration = d > 0 && d < 1e9 ? d : 0;
    mi->bit_rate = (int64_t)clamp(num(o, "bit_rate"), 0, 2e9);
    json_t *v = json_object_get(o, "video"), *a = json_object_get(o, "audio");
    if ((mi->has_video = json_is_object(v))) {
        copy(mi->codec, sizeof mi->codec, v, "codec");
        copy(mi->profile, sizeof mi->profile, v, "profile");
        copy(mi->tag, sizeof mi->tag, v, "tag");
        copy(mi->pix_fmt, sizeof mi->pix_fmt, v, "pix_fmt");
        mi->width = clamp(num(v, "width"), 0, 1 << 20);
        mi->height = clamp(num(v, "height"), 0, 1 << 20);
        mi->rotation = clamp(num(v, "rotation") + (num(v, "rotation") < 0 ? -0.5 : 0.5), -180, 180);
        bool turned = mi->rotation == 90 || mi->rotation == -90;
        mi->display_width = turned ? mi->height : mi->width;
        mi->display_height = turned ? mi->width : mi->height;
        double fps = num(v, "fps");
        mi->fps = fps > 0 && fps < 1e6 ? fps : 0;
        double vd = num(v, "duration");
        if (mi->duration <= 0 && vd > 0 && vd < 1e9)
            mi->duration = vd;
        mi->video_bit_rate = (int64_t)clamp(num(v, "bit_rate"), 0, 2e9);
    }
    if ((mi->has_audio = json_is_object(a))) {
        copy(mi->audio_codec, sizeof mi->audio_codec, a, "codec");
        mi->audio_rate = clamp(num(a, "sample_rate"), 0, 1e7);
        mi->audio_channels = clamp(num(a, "channels"), 0, 1024);
    }
out:
    json_decref(o);
    return rc;
}

/* The child's answer, or what went wrong with it. */
static int finish(const char *path, const char *out, size_t len, int status, bool timed_out,
                  struct media_info *mi, struct tikd_err *e)
{
    struct tikd_err pe = {0};
    if (timed_out)
        return tikd_fail(e, TIKD_EIO, "%s: the media probe took longer than %g s and was stopped",
                         path, timeout);
    if (len >= PROBE_OUT_MAX)
        return tikd_fail(e, TIKD_EIO,
                         "%s: the media probe said more than %u KiB: no answer tikd can read", path,
                         PROBE_OUT_MAX >> 10);
    if (len > 0 && media_parse_probe(out, len, mi, &pe) == 0) {
        bool iso = strcmp(mi->container, "mp4") == 0 || strcmp(mi->container, "mov") == 0 ||
                   strcmp(mi->container, "3gp") == 0;
        bool mkv = strcmp(mi->container, "webm") == 0 || strcmp(mi->container, "matroska") == 0;
        if ((iso && strncmp(mi->demuxer, "mov,", 4) != 0) ||
            (mkv && strncmp(mi->demuxer, "matroska", 8) != 0))
            return tikd_fail(e, TIKD_EINVAL,
                             "%s: its header says %s but libavformat reads it as '%s'", path,
                             mi->container, mi->demuxer);
        return 0;
    }
    if (pe.code == TIKD_EINVAL) /* the probe read the file and says why it is no video */
        return tikd_fail(e, TIKD_EINVAL, "%s: %s", path, pe.msg);
    if (WIFSIGNALED(status)) {
        int sig = WTERMSIG(status);
        /* its own wall-clock alarm, or a kill tikd did not send (the OOM
         * killer, an operator): the machine's trouble, not the file's */
        if (sig == SIGALRM || sig == SIGKILL)
            return tikd_fail(e, TIKD_EIO,
                             "%s: the media probe was stopped (signal %d) before "
                             "it answered",
                             path, sig);
        return tikd_fail(e, TIKD_EINVAL, "%s: the media probe %s on this file (signal %d)", path,
                         sig == SIGXCPU ? "used up its CPU time" : "crashed", sig);
    }
    if (len > 0)
        return tikd_fail(e, TIKD_EIO, "%s: %s", path, pe.msg);
    return tikd_fail(e, TIKD_EIO, "%s: the media probe %s failed (exit %d) with no answer", path,
                     media_probe_program(), WIFEXITED(status) ? WEXITSTATUS(status) : -1);
}

static double mono(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

int media_probe_now(const char *path, struct media_info *mi, struct tikd_err *e)
{
    struct stat st;
    int fd = fileio_open_read(path, &st, e);
    if (fd < 0) {
        memset(mi, 0, sizeof *mi);
        return fd;
    }
    int rc = media_sniff_fd(fd, &st, path, mi, e);
    close(fd);
    if (rc != 0 || !needs_probe(mi))
        return rc;
    int known = cache_get(&st, mi, e);
    return known > 0 ? 0 : known < 0 ? TIKD_EINVAL : 1;
}

int media_probe(const char *path, struct media_info *mi, struct tikd_err *e)
{
    struct stat st;
    int fd = fileio_open_read(path, &st, e);
    if (fd < 0) {
        memset(mi, 0, sizeof *mi);
        return fd;
    }
    int rc = media_sniff_fd(fd, &st, path, mi, e), out = -1;
    pid_t pid = 0;
    int known = rc == 0 && needs_probe(mi) ? cache_get(&st, mi, e) : 0;
    if (known)
        rc = known > 0 ? 0 : TIKD_EINVAL;
    if (rc != 0 || known || !needs_probe(mi) || (rc = spawn(fd, &pid, &out, e)) != 0) {
        close(fd);
        return rc;
    }
    close(fd);
    char *buf = malloc(PROBE_OUT_MAX);
    size_t len = 0;
    bool timed_out = false;
    double deadline = mono() + timeout;
    while (buf) {
        int wait_ms = (int)((deadline - mono()) * 1000);
        struct pollfd pfd = {out, POLLIN, 0};
        if (wait_ms <= 0) {
            timed_out = true;
            break;
        }
        int pr = poll(&pfd, 1, wait_ms);
        if (pr < 0 && errno == EINTR)
            continue;
        if (pr <= 0)
            continue; /* the deadline is checked above */
        ssize_t got = read(out, buf + len, PROBE_OUT_MAX - len);
        if (got < 0 && errno == EINTR)
            continue;
        if (got <= 0 || (len += (size_t)got) == PROBE_OUT_MAX)
            break;
    }
    close(out);
    /* Its end, without reaping it yet (so that its group, anything it
     * started, can be killed safely), at most until the deadline. */
    bool stop = timed_out || !buf || len == PROBE_OUT_MAX;
    siginfo_t si;
    for (;;) {
        if (stop)
            kill(-pid, SIGKILL);
        memset(&si, 0, sizeof si);
        int w = waitid(P_PID, (id_t)pid, &si, WEXITED | WNOWAIT | (stop ? 0 : WNOHANG));
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0 || si.si_pid == pid)
            break;
        if (mono() >= deadline)
            timed_out = stop = true;
        else
            nanosleep(&(struct timespec){0, 2000000}, NULL);
    }
    kill(-pid, SIGKILL); /* what it may have left running */
    int status = 0;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
        ;
    rc = buf ? finish(path, buf, len, status, timed_out, mi, e)
             : tikd_fail(e, TIKD_ENOMEM, "out of memory");
    cache_put(&st, mi, rc, e);
    free(buf);
    return rc;
}

/* ---- without waiting: the daemon's loop ---- */

struct media_probe {
    struct ev_loop *loop;
    ev_io io;
    ev_child child; /* the default loop reaps every child: it tells us of ours */
    ev_timer reap;  /* another loop (a dry run's): its end is polled for */
    ev_timer timer;
    int out;
    pid_t pid;
    bool eof, exited, timed_out;
    int status;
    char *buf;
    size_t len;
    char *path;
    struct stat st; /* the file probed, for the cache */
    struct media_info mi;
    struct tikd_err err; /* a failure before the child (delivered from the loop) */
    media_probe_done done;
    void *arg;
};

static void probe_free(struct media_probe *p)
{
    ev_io_stop(p->loop, &p->io);
    ev_child_stop(p->loop, &p->child);
    ev_timer_stop(p->loop, &p->reap);
    ev_timer_stop(p->loop, &p->timer);
    if (p->out >= 0)
        close(p->out);
    free(p->buf);
    free(p->path);
    free(p);
}

static void deliver(struct media_probe *p)
{
    struct tikd_err e = p->err;
    if (p->pid)
        cache_put(&p->st, &p->mi,
                  finish(p->path, p->buf, p->len, p->status, p->timed_out, &p->mi, &e), &e);
    struct media_info mi = p->mi;
    media_probe_done done = p->done;
    void *arg = p->arg;
    probe_free(p);
    done(arg, &mi, &e);
}

static void maybe_done(struct media_probe *p)
{
    if (p->eof && p->exited)
        deliver(p);
}

/* Read what the pipe holds; at its end (or past any sane answer) stop. */
static void drain(struct media_probe *p)
{
    while (!p->eof) {
        ssize_t got = read(p->out, p->buf + p->len, PROBE_OUT_MAX - p->len);
        if (got < 0 && errno == EINTR)
            continue;
        if (got < 0 && errno == EAGAIN)
            return;
        if (got > 0 && (p->len += (size_t)got) < PROBE_OUT_MAX)
            continue;
        if (got > 0) /* more than any answer: not an answer */
            kill(-p->pid, SIGKILL);
        ev_io_stop(p->loop, &p->io);
        p->eof = true;
    }
}

static void on_out(struct ev_loop *loop, ev_io *w, int revents)
{
    struct media_probe *p = w->data;
    drain(p);
    maybe_done(p);
}

static void exited(struct media_probe *p, int status)
{
    p->status = status;
    p->exited = true;
    drain(p);
    if (!p->eof) { /* something it started holds the pipe open: the answer is what came */
        ev_io_stop(p->loop, &p->io);
        p->eof = true;
    }
    maybe_done(p);
}

static void on_exit_(struct ev_loop *loop, ev_child *w, int revents)
{
    struct media_probe *p = w->data;
    ev_child_stop(loop, w);
    /* reaped already (libev's SIGCHLD watcher): its group is not killed now,
     * its number may be another's; tikd-probe starts no process of its own */
    exited(p, w->rstatus);
}

static void on_reap(struct ev_loop *loop, ev_timer *w, int revents)
{
    struct media_probe *p = w->data;
    siginfo_t si = {0};
    if (waitid(P_PID, (id_t)p->pid, &si, WEXITED | WNOWAIT | WNOHANG) != 0 || si.si_pid == 0)
        return;
    kill(-p->pid, SIGKILL);
    int status = 0;
    while (waitpid(p->pid, &status, 0) < 0 && errno == EINTR)
        ;
    ev_timer_stop(loop, w);
    exited(p, status);
}

static void on_timer(struct ev_loop *loop, ev_timer *w, int revents)
{
    struct media_probe *p = w->data;
    if (!p->pid) { /* no child: the sniff's answer, delivered from the loop */
        deliver(p);
        return;
    }
    p->timed_out = true;
    kill(-p->pid, SIGKILL); /* on_exit_ follows */
}

struct media_probe *media_probe_start(struct ev_loop *loop, const char *path, media_probe_done done,
                                      void *arg, struct tikd_err *e)
{
    struct media_probe *p = calloc(1, sizeof *p);
    if (!p || !(p->path = strdup(path)) || !(p->buf = malloc(PROBE_OUT_MAX))) {
        if (p)
            free(p->path);
        free(p);
        tikd_fail(e, TIKD_ENOMEM, "out of memory");
        return NULL;
    }
    p->loop = loop;
    p->out = -1;
    p->done = done;
    p->arg = arg;
    ev_io_init(&p->io, on_out, 0, EV_READ);
    ev_timer_init(&p->timer, on_timer, 0, 0);
    ev_child_init(&p->child, on_exit_, 0, 0);
    ev_timer_init(&p->reap, on_reap, 0.005, 0.005);
    p->io.data = p->timer.data = p->child.data = p->reap.data = p;
    int fd = fileio_open_read(path, &p->st, &p->err);
    int rc = fd < 0 ? fd : media_sniff_fd(fd, &p->st, path, &p->mi, &p->err);
    int known = rc == 0 && needs_probe(&p->mi) ? cache_get(&p->st, &p->mi, &p->err) : 0;
    if (rc == 0 && needs_probe(&p->mi) && !known) {
        rc = spawn(fd, &p->pid, &p->out, e);
        close(fd);
        if (rc != 0) {
            probe_free(p);
            return NULL;
        }
        fcntl(p->out, F_SETFL, fcntl(p->out, F_GETFL) | O_NONBLOCK);
        ev_io_set(&p->io, p->out, EV_READ);
        ev_io_start(loop, &p->io);
        if (ev_is_default_loop(loop)) {
            ev_child_set(&p->child, p->pid, 0);
            ev_child_start(loop, &p->child);
        } else {
            ev_timer_start(loop, &p->reap);
        }
        ev_timer_set(&p->timer, timeout, 0);
    } else if (fd >= 0) {
        close(fd);
    }
    ev_timer_start(loop, &p->timer);
    return p;
}

void media_probe_cancel(struct media_probe *p)
{
    if (!p)
        return;
    if (p->pid && !p->exited) {
        kill(-p->pid, SIGKILL);
        /* the default loop (the daemon's) reaps it: libev reaps every child,
         * so a process stuck in the kernel never stalls the loop. Another
         * loop (a dry run's, in a short-lived command) reaps it here. */
        int status;
        if (!ev_is_default_loop(p->loop))
            while (waitpid(p->pid, &status, 0) < 0 && errno == EINTR)
                ;
    }
    probe_free(p);
}
