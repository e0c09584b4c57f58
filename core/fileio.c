/* fileio.c - opening files to read (see fileio.h). */
#include "fileio.h"

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int fileio_open_read(const char *path, struct stat *st, struct tikd_err *e)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
    if (fd >= 0 && fstat(fd, st) == 0)
        return fd;
    int err = errno;
    if (fd >= 0)
        close(fd);
    return tikd_fail(e, err == ENOENT ? TIKD_ENOTFOUND : TIKD_EIO, "%s: cannot read: %s", path,
                     strerror(err));
}

int fileio_open_regular(const char *path, struct stat *st, struct tikd_err *e)
{
    int fd = fileio_open_read(path, st, e);
    if (fd >= 0 && !S_ISREG(st->st_mode)) {
        close(fd);
        return tikd_fail(e, TIKD_EINVAL, "%s: not a regular file", path);
    }
    return fd;
}

int fileio_read_all(const char *path, size_t max, char **out, size_t *len, struct tikd_err *e)
{
    *out = NULL;
    *len = 0;
    struct stat st;
    int fd = fileio_open_regular(path, &st, e);
    if (fd < 0)
        return fd;
    if ((uint64_t)st.st_size > max) {
        close(fd);
        return tikd_fail(e, TIKD_EFULL, "%s: larger than %zu bytes", path, max);
    }
    size_t cap = (size_t)st.st_size + 1, n = 0;
    char *buf = malloc(cap + 1);
    while (buf) {
        if (n == cap) { /* it grew while read */
            if (n > max)
                break;
            char *more = realloc(buf, (cap = cap * 2 > max + 1 ? max + 1 : cap * 2) + 1);
            if (!more) {
                free(buf);
                buf = NULL;
                break;
            }
            buf = more;
        }
        ssize_t r = read(fd, buf + n, cap - n);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            int err = errno;
            close(fd);
            free(buf);
            return tikd_fail(e, TIKD_EIO, "%s: cannot read: %s", path, strerror(err));
        }
        if (r == 0)
            break;
        n += (size_t)r;
    }
    close(fd);
    if (!buf)
        return tikd_fail(e, TIKD_ENOMEM, "%s: out of memory", path);
    if (n > max) {
        free(buf);
        return tikd_fail(e, TIKD_EFULL, "%s: larger than %zu bytes", path, max);
    }
    buf[n] = '\0';
    *out = buf;
    *len = n;
    return 0;
}
