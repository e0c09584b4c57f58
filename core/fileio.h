/* fileio.h - opening a file tikd only reads (media, images, a file to
 * hash): O_NONBLOCK, so a FIFO or device named by mistake never hangs the
 * open (reads of a regular file never block anyway), close-on-exec, and its
 * stat from the descriptor, so what is checked is what is read. */
#ifndef TIKD_FILEIO_H
#define TIKD_FILEIO_H

#include "err.h"

#include <sys/stat.h>

/* Open path for reading: the descriptor (>= 0, the caller closes it) with
 * *st filled, or a negative TIKD_E* code with e saying "PATH: cannot read:
 * why" (TIKD_ENOTFOUND when it does not exist, else TIKD_EIO). Whether it
 * is a regular file is the caller's to check. */
int fileio_open_read(const char *path, struct stat *st, struct tikd_err *e);

#endif
