/* fileio.h - opening a file tikd only reads (media, images, a file to
 * hash): O_NONBLOCK, so a FIFO or device named by mistake never hangs the
 * open (reads of a regular file never block anyway), close-on-exec, and its
 * stat from the descriptor, so what is checked is what is read. */
#ifndef TIKD_FILEIO_H
#define TIKD_FILEIO_H

#include "err.h"

#include <stddef.h>
#include <sys/stat.h>

/* Open path for reading: the descriptor (>= 0, the caller closes it) with
 * *st filled, or a negative TIKD_E* code with e saying "PATH: cannot read:
 * why" (TIKD_ENOTFOUND when it does not exist, else TIKD_EIO). Whether it
 * is a regular file is the caller's to check. */
int fileio_open_read(const char *path, struct stat *st, struct tikd_err *e);

/* Open path for reading as fileio_open_read does, and refuse anything that
 * is not a regular file ("PATH: not a regular file", TIKD_EINVAL). */
int fileio_open_regular(const char *path, struct stat *st, struct tikd_err *e);

/* Read all of a regular file of at most max bytes: *out is malloc'd and
 * NUL-terminated (the caller frees it), *len its length. A larger file
 * (or one that grows past max while read) is refused with TIKD_EFULL,
 * "PATH: larger than N bytes", before more than max + 1 bytes are read. */
int fileio_read_all(const char *path, size_t max, char **out, size_t *len, struct tikd_err *e);

#endif
