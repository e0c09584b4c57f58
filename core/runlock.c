/* runlock.c - one daemon per data directory (see runlock.h). */
#include "runlock.h"

#include <errno.h>
#include <signal.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static void lock_path(const char *data_dir, char *out, size_t n)
{
    snprintf(out, n, "%s/tikd.pid", data_dir);
}

/* The pid written in the file, 0 when there is none yet. */
static int read_pid(int fd)
{
    char buf[32];
    ssize_t n = pread(fd, buf, sizeof buf - 1, 0);
    if (n <= 0)
        return 0;
    buf[n] = '\0';
    char *end;
    long pid = strtol(buf, &end, 10);
    return end != buf && pid > 1 && pid < 1L << 30 ? (int)pid : 0;
}

/* Opens only a regular file: a FIFO or a link planted under the name is
 * refused, never waited on or followed. */
static int open_lockfile(const char *path, int flags, struct tikd_err *e)
{
    int fd = open(path, flags | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK, 0600);
    if (fd < 0)
        return tikd_fail(e, errno == ENOENT ? TIKD_ENOTFOUND : TIKD_EIO, "%s: cannot open: %s",
                         path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        return tikd_fail(e, TIKD_EIO, "%s: not a regular file", path);
    }
    return fd;
}

int runlock_take(struct runlock *l, const char *data_dir, struct tikd_err *e)
{
    l->fd = -1;
    char path[4200];
    lock_path(data_dir, path, sizeof path);
    int fd = open_lockfile(path, O_RDWR | O_CREAT, e);
    if (fd < 0)
        return fd;
    struct flock fl = {.l_type = F_WRLCK, .l_whence = SEEK_SET};
    if (fcntl(fd, F_OFD_SETLK, &fl) != 0) {
        int err = errno;
        int pid = read_pid(fd);
        close(fd);
        if (err == EAGAIN || err == EACCES) {
            if (pid)
                return tikd_fail(e, TIKD_EEXIST, "already running (pid %d) on %s", pid, data_dir);
            return tikd_fail(e, TIKD_EEXIST, "already running (starting) on %s", data_dir);
        }
        return tikd_fail(e, TIKD_EIO, "%s: cannot lock: %s", path, strerror(err));
    }
    char buf[32];
    int n = snprintf(buf, sizeof buf, "%d\n", (int)getpid());
    if (ftruncate(fd, 0) != 0 || pwrite(fd, buf, (size_t)n, 0) != n) {
        int err = errno;
        close(fd);
        return tikd_fail(e, TIKD_EIO, "%s: cannot write: %s", path, strerror(err));
    }
    l->fd = fd;
    return 0;
}

void runlock_release(struct runlock *l)
{
    if (l->fd < 0)
        return;
    if (ftruncate(l->fd, 0) != 0) {
        /* a pid left behind is harmless: nobody holds the lock */
    }
    close(l->fd);
    l->fd = -1;
}

int runlock_holder(const char *data_dir, int *pid, struct tikd_err *e)
{
    *pid = 0;
    char path[4200];
    lock_path(data_dir, path, sizeof path);
    int fd = open_lockfile(path, O_RDONLY, e);
    if (fd == TIKD_ENOTFOUND) {
        tikd_err_clear(e);
        return 0;
    }
    if (fd < 0)
        return fd;
    /* asking for a write lock's conflicts on a read-only descriptor is
     * allowed: F_GETLK only reports, it never takes */
    struct flock fl = {.l_type = F_WRLCK, .l_whence = SEEK_SET};
    if (fcntl(fd, F_OFD_GETLK, &fl) != 0) {
        int err = errno;
        close(fd);
        return tikd_fail(e, TIKD_EIO, "%s: cannot ask the lock: %s", path, strerror(err));
    }
    int held = fl.l_type != F_UNLCK;
    if (held)
        *pid = read_pid(fd);
    close(fd);
    return held;
}

/* ---- process identity ------------------------------------------------------ */

/* Field 22 of /proc/PID/stat, the start time; 0 when unreadable. The name
 * (field 2) may hold spaces and parentheses: count from the last ')'. */
static uint64_t start_time(int pid)
{
    char path[64], buf[1024];
    snprintf(path, sizeof path, "/proc/%d/stat", pid);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return 0;
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (n <= 0)
        return 0;
    buf[n] = '\0';
    char *p = strrchr(buf, ')');
    for (int field = 2; p && field < 22; field++) /* p is at the end of field `field` */
        p = strchr(p + 1, ' ');
    return p ? strtoull(p + 1, NULL, 10) : 0;
}

struct proc_id proc_self(void)
{
    int pid = (int)getpid();
    return (struct proc_id){pid, start_time(pid)};
}

bool proc_alive(struct proc_id p)
{
    if (p.pid <= 0)
        return true;
    if (kill(p.pid, 0) != 0 && errno == ESRCH)
        return false;
    uint64_t now = p.start ? start_time(p.pid) : 0;
    return !now || now == p.start; /* another process under a reused pid is not it */
}
