/* fuzz.h - what the libFuzzer targets share: an input as a file without
 * a fresh file each time, for the readers that take a path. */
#ifndef TIKD_FUZZ_H
#define TIKD_FUZZ_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* The input as a regular file at *path (one per process, rewritten for
 * each input, in /dev/shm when there is one): readers that take a path, and
 * resolve it (the config's realpath), see an ordinary file. The descriptor
 * stays open between inputs; -1 if no file could be made. */
static char fuzz_name[64];

static inline void fuzz_file_remove(void)
{
    unlink(fuzz_name);
}

static inline int fuzz_file(const uint8_t *data, size_t size, char *path, size_t n)
{
    static int fd = -1;
    if (fd < 0) {
        snprintf(fuzz_name, sizeof fuzz_name, "%s/tikd-fuzz-XXXXXX",
                 access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp");
        fd = mkstemp(fuzz_name);
        if (fd < 0)
            return -1;
        atexit(fuzz_file_remove);
    }
    if (ftruncate(fd, 0) != 0)
        return -1;
    size_t off = 0;
    while (off < size) {
        ssize_t w = pwrite(fd, data + off, size - off, (off_t)off);
        if (w <= 0)
            return -1;
        off += (size_t)w;
    }
    snprintf(path, n, "%s", fuzz_name);
    return fd;
}

#endif
