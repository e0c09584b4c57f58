/* watch.h - directories watched with inotify on the caller's libev loop,
 * events debounced per path.
 *
 * Two users: hot reload of rules (any change under the rules or library
 * directories -> one reload once things are quiet) and media intake (a file
 * arrived in an inbox). A burst of events on one path is reported once,
 * `debounce` seconds after the last of them; the kind reported is the last
 * one's (a file written then deleted is reported WATCH_REMOVED), so a caller
 * that must know whether a path exists looks at it.
 *
 * When events were lost (the kernel's queue overflowed, or more paths were
 * waiting than the pending table holds) the watched root is reported with
 * WATCH_RESCAN instead: re-list everything under it. Callbacks run from the
 * loop; single-threaded. */
#ifndef TIKD_WATCH_H
#define TIKD_WATCH_H

#include "err.h"

#include <stdbool.h>
#include <stddef.h>

struct ev_loop;
struct watch;

enum watch_event {
    WATCH_WRITTEN, /* a file was closed after writing, or its attributes changed */
    WATCH_ARRIVED, /* moved in, a directory created, or found in a directory that just appeared */
    WATCH_REMOVED, /* deleted or moved away */
    WATCH_RESCAN,  /* events were lost or the root itself went: path is the root; re-list */
};

/* Called once per path after `debounce` seconds without events on it. path
 * is the watched root joined with the names below it; valid during the call
 * only. The callback may call watch_add, not watch_free. */
typedef void (*watch_fn)(void *ud, const char *path, enum watch_event ev);

#define WATCH_MAX_DIRS_DEFAULT    8192 /* inotify watches, one per directory */
#define WATCH_MAX_PENDING_DEFAULT 1024 /* distinct paths waiting for their debounce */

/* A watcher with one inotify descriptor (non-blocking, close-on-exec) and
 * one ev_io plus one ev_timer on loop. debounce is in seconds (>= 0). On
 * success *out owns it; free with watch_free(). Fails with TIKD_EIO when the
 * kernel refuses an inotify instance (fs.inotify.max_user_instances). */
int watch_new(struct watch **out, struct ev_loop *loop, double debounce, watch_fn fn, void *ud,
              struct tikd_err *e);

/* Stop the watchers, close the descriptor and free; NULL is fine. Pending
 * (not yet reported) events are dropped. */
void watch_free(struct watch *w);

/* Watch dir (a trailing '/' is dropped; the root may be a symlink, nothing
 * below it is followed). recursive: every directory below it too, including
 * ones created or moved in later. Existing files are not reported: list them
 * yourself after adding. Fails with TIKD_ENOTFOUND (missing), TIKD_EINVAL
 * (not a directory), TIKD_EIO (unreadable), TIKD_EFULL (more directories
 * than the watch limit, or the kernel's fs.inotify.max_user_watches); a
 * failed call leaves no watch of its own behind. Roots should not overlap.
 * A directory that appears later beyond the limit is reported (it arrived)
 * but not watched, and logged as watch.full. */
int watch_add(struct watch *w, const char *dir, bool recursive, struct tikd_err *e);

/* Change the ceilings (defaults above; 0 keeps a value). max_dirs counts
 * inotify watches over all roots; max_pending bounds the table of paths
 * waiting for their debounce, beyond which the root is reported with
 * WATCH_RESCAN instead. Lowering max_dirs does not drop existing watches. */
void watch_set_limits(struct watch *w, size_t max_dirs, size_t max_pending);

/* How many directories are watched now. */
size_t watch_dir_count(const struct watch *w);

#endif
