/* fileio.c - opening files to read (see fileio.h). */
#include "fileio.h"

#include <errno.h>
#include <fcntl.h>
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
