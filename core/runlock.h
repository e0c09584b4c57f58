/* runlock.h - one daemon per data directory.
 *
 * `tikd run` takes an exclusive open-file-description lock (F_OFD_SETLK) on
 * DATA_DIR/tikd.pid before it opens anything else, writes its pid into the
 * file and holds the lock for its life; the kernel drops it when the
 * process ends, however it ends (a kill -9 included). A second daemon on the
 * same data directory is refused with the first one's pid.
 *
 * Other commands ask who holds the lock without taking it (F_OFD_GETLK), so
 * asking never makes a starting daemon fail, and a pid left in the file by a
 * dead daemon is never taken for a live one: only a process proven to hold
 * the lock is ever signalled. The file is never unlinked: unlinking it would
 * let a new daemon lock a new file while an old one still holds the old. */
#ifndef TIKD_RUNLOCK_H
#define TIKD_RUNLOCK_H

#include "err.h"

#include <stdbool.h>
#include <stdint.h>

struct runlock {
    int fd; /* -1 when not held */
};

/* Take the lock for data_dir (which must exist). 0 on success; TIKD_EEXIST
 * with e saying "already running (pid N) on DATA_DIR" when another process
 * holds it; TIKD_EIO when the file cannot be opened or locked. */
int runlock_take(struct runlock *l, const char *data_dir, struct tikd_err *e);

/* Empty the pid file and release the lock (a no-op when not held). */
void runlock_release(struct runlock *l);

/* Who runs on data_dir: 1 with *pid set when a process holds the lock (*pid
 * is 0 when it has not written its pid yet), 0 when none does (a missing
 * file included), a negative TIKD_E* code when the file cannot be asked. */
int runlock_holder(const char *data_dir, int *pid, struct tikd_err *e);

/* A process named so that a reused pid is not mistaken for it: its pid and
 * its start time (clock ticks after boot, from /proc/PID/stat). Records that
 * a live process must keep (a refresh lease) carry it, so that one left by a
 * dead process is known at once instead of after a timeout. */
struct proc_id {
    int pid;
    uint64_t start; /* 0 when it cannot be read (no /proc) */
};

/* This process. */
struct proc_id proc_self(void);

/* Whether p still runs: false only when that is proven (no such pid, or
 * another process under it); when it cannot tell, true. */
bool proc_alive(struct proc_id p);

#endif
