/* watch.c - inotify on libev, debounced per path (see watch.h).
 *
 * One inotify descriptor, one ev_io on it and one ev_timer set to the
 * earliest debounce deadline. Waiting paths sit in a bounded, unordered
 * table (a storm of events on one path only moves its deadline); when it is
 * full, or the kernel says IN_Q_OVERFLOW, the affected roots are marked for
 * one WATCH_RESCAN and their waiting paths dropped, since a re-list covers
 * them. Directories are a table sorted by watch descriptor. A directory
 * moved away loses its watches; one moved in or created is walked afresh. */
#include "watch.h"
#include "log.h"

#include <dirent.h>
#include <errno.h>
#include <ev.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <unistd.h>

#define MASK                                                                                       \
    (IN_CLOSE_WRITE | IN_ATTRIB | IN_MOVED_TO | IN_MOVED_FROM | IN_CREATE | IN_DELETE |            \
     IN_DELETE_SELF | IN_MOVE_SELF | IN_ONLYDIR | IN_EXCL_UNLINK)
#define READS_PER_WAKE 64 /* then let the loop breathe; the ev_io is level-triggered */

struct wdir {
    int wd;
    int root;
    char *path;
};

struct root {
    char *path;
    bool recursive;
    bool rescan;
    double deadline; /* of the rescan, when marked */
};

struct pend {
    char *path;
    uint64_t h;
    enum watch_event ev;
    int root;
    double deadline;
};

struct watch {
    struct ev_loop *loop;
    double debounce;
    watch_fn fn;
    void *ud;
    int fd;
    ev_io io;
    ev_timer timer;
    struct wdir *dirs;
    size_t ndirs, capdirs;
    struct root *roots;
    int nroots;
    struct pend *pend;
    size_t npend, cappend;
    size_t max_dirs, max_pending;
};

static uint64_t fnv(const char *s)
{
    uint64_t h = 1469598103934665603ULL;
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211ULL;
    return h;
}

/* ---- the directory table, sorted by wd ------------------------------- */

static size_t dir_lower(const struct watch *w, int wd)
{
    size_t lo = 0, hi = w->ndirs;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (w->dirs[mid].wd < wd)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

static struct wdir *dir_find(struct watch *w, int wd)
{
    size_t i = dir_lower(w, wd);
    return i < w->ndirs && w->dirs[i].wd == wd ? &w->dirs[i] : NULL;
}

/* 1 inserted, 0 the wd was known (its path is replaced when update is set),
 * TIKD_ENOMEM. */
static int dir_insert(struct watch *w, int wd, int root, const char *path, bool update)
{
    size_t i = dir_lower(w, wd);
    if (i < w->ndirs && w->dirs[i].wd == wd) {
        if (update) {
            char *p = strdup(path);
            if (!p)
                return TIKD_ENOMEM;
            free(w->dirs[i].path);
            w->dirs[i].path = p;
            w->dirs[i].root = root;
        }
        return 0;
    }
    if (w->ndirs == w->capdirs) {
        size_t cap = w->capdirs ? w->capdirs * 2 : 16;
        struct wdir *d = realloc(w->dirs, cap * sizeof *d);
        if (!d)
            return TIKD_ENOMEM;
        w->dirs = d;
        w->capdirs = cap;
    }
    char *p = strdup(path);
    if (!p)
        return TIKD_ENOMEM;
    memmove(&w->dirs[i + 1], &w->dirs[i], (w->ndirs - i) * sizeof *w->dirs);
    w->dirs[i] = (struct wdir){wd, root, p};
    w->ndirs++;
    return 1;
}

static void dir_remove_at(struct watch *w, size_t i)
{
    free(w->dirs[i].path);
    memmove(&w->dirs[i], &w->dirs[i + 1], (w->ndirs - i - 1) * sizeof *w->dirs);
    w->ndirs--;
}

static void dir_remove(struct watch *w, int wd)
{
    size_t i = dir_lower(w, wd);
    if (i < w->ndirs && w->dirs[i].wd == wd)
        dir_remove_at(w, i);
}

/* A directory moved away: its watches (and those below it) stop. The kernel
 * confirms each with IN_IGNORED later, for a wd we no longer know. */
static void dir_drop_subtree(struct watch *w, const char *path)
{
    size_t n = strlen(path);
    for (size_t i = w->ndirs; i-- > 0;) {
        const char *p = w->dirs[i].path;
        if (strncmp(p, path, n) == 0 && (p[n] == '\0' || p[n] == '/')) {
            inotify_rm_watch(w->fd, w->dirs[i].wd);
            dir_remove_at(w, i);
        }
    }
}

/* ---- pending paths and rescans --------------------------------------- */

static void mark_rescan(struct watch *w, int root)
{
    struct root *r = &w->roots[root];
    if (!r->rescan) {
        r->rescan = true;
        r->deadline = ev_now(w->loop) + w->debounce;
    }
    for (size_t i = w->npend; i-- > 0;) {
        if (w->pend[i].root == root) {
            free(w->pend[i].path);
            w->pend[i] = w->pend[--w->npend];
        }
    }
}

static void queue(struct watch *w, int root, const char *path, enum watch_event ev)
{
    if (w->roots[root].rescan)
        return; /* the re-list, which comes later, will see this change */
    double deadline = ev_now(w->loop) + w->debounce;
    uint64_t h = fnv(path);
    for (size_t i = 0; i < w->npend; i++) {
        struct pend *p = &w->pend[i];
        if (p->h == h && strcmp(p->path, path) == 0) {
            p->ev = ev;
            p->deadline = deadline;
            return;
        }
    }
    if (w->npend >= w->max_pending) {
        TLOG(TLOG_WARN, "watch.pending_full", LSTR("root", w->roots[root].path),
             LINT("max_pending", w->max_pending));
        mark_rescan(w, root);
        return;
    }
    if (w->npend == w->cappend) {
        size_t cap = w->cappend ? w->cappend * 2 : 16;
        struct pend *p = realloc(w->pend, cap * sizeof *p);
        if (!p) {
            mark_rescan(w, root);
            return;
        }
        w->pend = p;
        w->cappend = cap;
    }
    char *copy = strdup(path);
    if (!copy) {
        mark_rescan(w, root);
        return;
    }
    w->pend[w->npend++] = (struct pend){copy, h, ev, root, deadline};
}

static void arm(struct watch *w)
{
    double next = -1;
    for (int i = 0; i < w->nroots; i++)
        if (w->roots[i].rescan && (next < 0 || w->roots[i].deadline < next))
            next = w->roots[i].deadline;
    for (size_t i = 0; i < w->npend; i++)
        if (next < 0 || w->pend[i].deadline < next)
            next = w->pend[i].deadline;
    ev_timer_stop(w->loop, &w->timer);
    if (next < 0)
        return;
    double after = next - ev_now(w->loop);
    ev_timer_set(&w->timer, after > 0 ? after : 0., 0.);
    ev_timer_start(w->loop, &w->timer);
}

struct due {
    char *path; /* owned; NULL for a rescan */
    int root;
    enum watch_event ev;
    double deadline;
};

static int due_cmp(const void *a, const void *b)
{
    const struct due *x = a, *y = b;
    return (x->deadline > y->deadline) - (x->deadline < y->deadline);
}

static void on_timer(struct ev_loop *loop, ev_timer *t, int revents)
{
    struct watch *w = (struct watch *)((char *)t - offsetof(struct watch, timer));
    double now = ev_now(loop) + 1e-9;
    size_t n = 0;
    for (int i = 0; i < w->nroots; i++)
        n += w->roots[i].rescan && w->roots[i].deadline <= now;
    for (size_t i = 0; i < w->npend; i++)
        n += w->pend[i].deadline <= now;
    struct due *due = n ? malloc(n * sizeof *due) : NULL;
    size_t k = 0;
    if (due) {
        /* take them out of the tables first: a callback may add watches */
        for (int i = 0; i < w->nroots; i++) {
            if (w->roots[i].rescan && w->roots[i].deadline <= now) {
                w->roots[i].rescan = false;
                due[k++] = (struct due){NULL, i, WATCH_RESCAN, w->roots[i].deadline};
            }
        }
        for (size_t i = w->npend; i-- > 0;) {
            if (w->pend[i].deadline <= now) {
                struct pend *p = &w->pend[i];
                due[k++] = (struct due){p->path, p->root, p->ev, p->deadline};
                w->pend[i] = w->pend[--w->npend];
            }
        }
        qsort(due, k, sizeof *due, due_cmp);
    }
    for (size_t i = 0; i < k; i++) {
        w->fn(w->ud, due[i].path ? due[i].path : w->roots[due[i].root].path, due[i].ev);
        free(due[i].path);
    }
    free(due);
    arm(w); /* out of memory above leaves everything pending: the timer retries */
}

/* ---- adding directories ---------------------------------------------- */

static int add_error(struct tikd_err *e, int err, const char *path)
{
    switch (err) {
    case ENOENT:
        return tikd_fail(e, TIKD_ENOTFOUND, "watch: %s: no such directory", path);
    case ENOTDIR:
        return tikd_fail(e, TIKD_EINVAL, "watch: %s is not a directory", path);
    case ENOSPC:
        return tikd_fail(e, TIKD_EFULL,
                         "watch: cannot watch %s: the kernel's limit on inotify watches is "
                         "reached (raise fs.inotify.max_user_watches)",
                         path);
    case ENOMEM:
        return tikd_fail(e, TIKD_ENOMEM, "watch: out of memory watching %s", path);
    default:
        return tikd_fail(e, TIKD_EIO, "watch: cannot watch %s: %s", path, strerror(err));
    }
}

struct strvec {
    char **v;
    size_t n, cap;
};

static int strvec_push(struct strvec *s, char *p)
{
    if (!p)
        return TIKD_ENOMEM;
    if (s->n == s->cap) {
        size_t cap = s->cap ? s->cap * 2 : 16;
        char **v = realloc(s->v, cap * sizeof *v);
        if (!v) {
            free(p);
            return TIKD_ENOMEM;
        }
        s->v = v;
        s->cap = cap;
    }
    s->v[s->n++] = p;
    return 0;
}

static char *join(const char *dir, const char *name)
{
    size_t a = strlen(dir), b = strlen(name);
    if (a + 1 + b >= PATH_MAX)
        return NULL;
    char *p = malloc(a + b + 2);
    if (p) {
        memcpy(p, dir, a);
        p[a] = '/';
        memcpy(p + a + 1, name, b + 1);
    }
    return p;
}

struct intvec {
    int *v;
    size_t n, cap;
};

static int intvec_push(struct intvec *s, int x)
{
    if (s->n == s->cap) {
        size_t cap = s->cap ? s->cap * 2 : 16;
        int *v = realloc(s->v, cap * sizeof *v);
        if (!v)
            return TIKD_ENOMEM;
        s->v = v;
        s->cap = cap;
    }
    s->v[s->n++] = x;
    return 0;
}

/* Watch path and, for a recursive root, every directory below it (an
 * explicit stack: no recursion depth to worry about). report: queue what is
 * found as WATCH_ARRIVED (a directory that just appeared may already hold
 * things whose events came before its watch). strict: the first failure is
 * the answer (watch_add); otherwise vanished or unreadable subdirectories
 * are skipped (events). added collects new wds, for rollback. */
static int add_tree(struct watch *w, int root, const char *path, bool top, bool report, bool strict,
                    struct intvec *added, struct tikd_err *e)
{
    struct strvec todo = {0};
    int rc = strvec_push(&todo, strdup(path));
    bool first = true;
    while (rc == 0 && todo.n > 0) {
        char *dir = todo.v[--todo.n];
        bool is_top = first && top;
        first = false;
        int wd = inotify_add_watch(w->fd, dir, MASK | (is_top ? 0 : IN_DONT_FOLLOW));
        if (wd < 0) {
            int err = errno;
            if (strict && (is_top || (err != ENOENT && err != ENOTDIR)))
                rc = add_error(e, err, dir);
            else if (err != ENOENT && err != ENOTDIR)
                TLOG(TLOG_WARN, "watch.skipped", LSTR("dir", dir), LSTR("reason", strerror(err)));
            free(dir);
            continue;
        }
        if (!dir_find(w, wd) && w->ndirs >= w->max_dirs) {
            inotify_rm_watch(w->fd, wd);
            if (strict)
                rc = tikd_fail(e, TIKD_EFULL,
                               "watch: more than %zu directories to watch under %s; watch "
                               "fewer directories or raise the limit",
                               w->max_dirs, w->roots[root].path);
            else
                TLOG(TLOG_WARN, "watch.full", LSTR("dir", dir), LINT("max_dirs", w->max_dirs));
            free(dir);
            continue;
        }
        int ins = dir_insert(w, wd, root, dir, !strict);
        if (ins == 1 && added && intvec_push(added, wd) != 0) {
            dir_remove(w, wd);
            ins = TIKD_ENOMEM;
        }
        if (ins < 0) {
            inotify_rm_watch(w->fd, wd);
            rc = tikd_fail(e, TIKD_ENOMEM, "watch: out of memory");
            free(dir);
            continue;
        }
        if (!w->roots[root].recursive) {
            free(dir);
            continue;
        }
        DIR *d = opendir(dir);
        if (!d) {
            int err = errno;
            if (strict && (is_top || err != ENOENT))
                rc = add_error(e, err, dir);
            free(dir);
            continue;
        }
        struct dirent *de;
        while (rc == 0 && (de = readdir(d)) != NULL) {
            if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
                continue;
            char *child = join(dir, de->d_name);
            if (!child)
                continue; /* longer than PATH_MAX: nothing can open it anyway */
            bool isdir = de->d_type == DT_DIR;
            if (de->d_type == DT_UNKNOWN) {
                struct stat st;
                isdir = lstat(child, &st) == 0 && S_ISDIR(st.st_mode);
            }
            if (report)
                queue(w, root, child, WATCH_ARRIVED);
            if (isdir)
                rc = strvec_push(&todo, child);
            else
                free(child);
            if (rc != 0)
                tikd_fail(e, rc, "watch: out of memory");
        }
        closedir(d);
        free(dir);
    }
    for (size_t i = 0; i < todo.n; i++)
        free(todo.v[i]);
    free(todo.v);
    return rc;
}

int watch_add(struct watch *w, const char *dir, bool recursive, struct tikd_err *e)
{
    size_t n = strlen(dir);
    while (n > 1 && dir[n - 1] == '/')
        n--;
    if (n == 0)
        return tikd_fail(e, TIKD_EINVAL, "watch: empty directory name");
    char *path = strndup(dir, n);
    if (!path)
        return tikd_fail(e, TIKD_ENOMEM, "watch: out of memory");
    for (int i = 0; i < w->nroots; i++) {
        if (strcmp(w->roots[i].path, path) == 0) {
            free(path);
            return tikd_fail(e, TIKD_EEXIST, "watch: %s is already watched", dir);
        }
    }
    struct stat st;
    int err = stat(path, &st) != 0 ? errno : !S_ISDIR(st.st_mode) ? ENOTDIR : 0;
    if (err != 0) {
        int rc = add_error(e, err, path);
        free(path);
        return rc;
    }
    struct root *r = realloc(w->roots, (size_t)(w->nroots + 1) * sizeof *r);
    if (!r) {
        free(path);
        return tikd_fail(e, TIKD_ENOMEM, "watch: out of memory");
    }
    w->roots = r;
    int root = w->nroots;
    w->roots[root] = (struct root){path, recursive, false, 0};
    w->nroots++;
    struct intvec added = {0};
    int rc = add_tree(w, root, path, true, false, true, &added, e);
    if (rc != 0) {
        for (size_t i = 0; i < added.n; i++) {
            inotify_rm_watch(w->fd, added.v[i]);
            dir_remove(w, added.v[i]);
        }
        w->nroots--;
        free(path);
    }
    free(added.v);
    return rc;
}

/* ---- reading events -------------------------------------------------- */

static void handle(struct watch *w, const struct inotify_event *ev)
{
    if (ev->mask & IN_Q_OVERFLOW) {
        TLOG(TLOG_WARN, "watch.overflow", LINT("roots", w->nroots));
        for (int i = 0; i < w->nroots; i++)
            mark_rescan(w, i);
        return;
    }
    struct wdir *d = dir_find(w, ev->wd);
    if (!d)
        return; /* a watch we dropped; its last events may still come */
    int root = d->root;
    if (ev->mask & IN_IGNORED) {
        dir_remove(w, ev->wd);
        return;
    }
    if (ev->mask & (IN_DELETE_SELF | IN_MOVE_SELF | IN_UNMOUNT)) {
        /* below the root the parent's IN_DELETE / IN_MOVED_FROM says it */
        if (strcmp(d->path, w->roots[root].path) == 0)
            mark_rescan(w, root);
        return;
    }
    if (ev->len == 0 || ev->name[0] == '\0')
        return; /* the directory itself (its attributes) */
    char *path = join(d->path, ev->name);
    if (!path) {
        mark_rescan(w, root); /* too long to name, or out of memory */
        return;
    }
    bool isdir = ev->mask & IN_ISDIR;
    if ((ev->mask & IN_MOVED_FROM) && isdir)
        dir_drop_subtree(w, path);
    bool report_new = isdir && (ev->mask & (IN_CREATE | IN_MOVED_TO));
    if (report_new && w->roots[root].recursive)
        add_tree(w, root, path, false, true, false, NULL, NULL);
    if (ev->mask & (IN_DELETE | IN_MOVED_FROM))
        queue(w, root, path, WATCH_REMOVED);
    else if (ev->mask & IN_MOVED_TO || report_new)
        queue(w, root, path, WATCH_ARRIVED);
    else if (ev->mask & (IN_CLOSE_WRITE | IN_ATTRIB))
        queue(w, root, path, WATCH_WRITTEN);
    free(path);
}

static void on_io(struct ev_loop *loop, ev_io *io, int revents)
{
    struct watch *w = (struct watch *)((char *)io - offsetof(struct watch, io));
    _Alignas(struct inotify_event) char buf[64 * 1024];
    for (int reads = 0; reads < READS_PER_WAKE; reads++) {
        ssize_t n = read(w->fd, buf, sizeof buf);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            if (n < 0 && errno != EAGAIN)
                TLOG(TLOG_ERROR, "watch.read", LSTR("reason", strerror(errno)));
            break;
        }
        for (char *p = buf; p < buf + n;) {
            const struct inotify_event *ev = (const struct inotify_event *)p;
            handle(w, ev);
            p += sizeof *ev + ev->len;
        }
    }
    arm(w);
}

/* ---- life cycle ------------------------------------------------------ */

int watch_new(struct watch **out, struct ev_loop *loop, double debounce, watch_fn fn, void *ud,
              struct tikd_err *e)
{
    *out = NULL;
    if (!loop || !fn || !(debounce >= 0))
        return tikd_fail(e, TIKD_EINVAL, "watch: a loop, a callback and a debounce >= 0 needed");
    struct watch *w = calloc(1, sizeof *w);
    if (!w)
        return tikd_fail(e, TIKD_ENOMEM, "watch: out of memory");
    w->fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
    if (w->fd < 0) {
        int err = errno;
        free(w);
        return tikd_fail(e, TIKD_EIO, "watch: no inotify instance: %s%s", strerror(err),
                         err == EMFILE ? " (raise fs.inotify.max_user_instances)" : "");
    }
    w->loop = loop;
    w->debounce = debounce;
    w->fn = fn;
    w->ud = ud;
    w->max_dirs = WATCH_MAX_DIRS_DEFAULT;
    w->max_pending = WATCH_MAX_PENDING_DEFAULT;
    ev_io_init(&w->io, on_io, w->fd, EV_READ);
    ev_io_start(loop, &w->io);
    ev_init(&w->timer, on_timer);
    *out = w;
    return 0;
}

void watch_free(struct watch *w)
{
    if (!w)
        return;
    ev_io_stop(w->loop, &w->io);
    ev_timer_stop(w->loop, &w->timer);
    close(w->fd);
    for (size_t i = 0; i < w->ndirs; i++)
        free(w->dirs[i].path);
    for (int i = 0; i < w->nroots; i++)
        free(w->roots[i].path);
    for (size_t i = 0; i < w->npend; i++)
        free(w->pend[i].path);
    free(w->dirs);
    free(w->roots);
    free(w->pend);
    free(w);
}

void watch_set_limits(struct watch *w, size_t max_dirs, size_t max_pending)
{
    if (max_dirs)
        w->max_dirs = max_dirs;
    if (max_pending)
        w->max_pending = max_pending;
}

size_t watch_dir_count(const struct watch *w)
{
    return w->ndirs;
}
