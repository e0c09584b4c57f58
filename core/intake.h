/* intake.h - media arriving in watched folders, each item known by the
 * SHA-256 of its content so a renamed or re-copied file is never reported
 * twice.
 *
 * A file is taken once its size, mtime (and ctime, inode) have stayed the
 * same for `settle` seconds, so a half-copied file is not taken; settle must
 * be longer than the longest pause of a slow writer. Its record goes to the
 * media ledger (core/ledger, which also keeps how long records live) in one
 * transaction before the callback runs, marked offered until the hand-off
 * ends (see intake_handoff): reporting is at least once, even across a
 * crash or a full store, and callers plan idempotently by hash.
 * Known content at a new path (renamed, re-copied) is not reported: it is
 * logged as intake.duplicate with both paths and its seen_count goes up.
 *
 * Next to clip.mp4 a clip.json sidecar carries metadata; its text is read
 * when the media is taken. A sidecar that appears or changes after its media
 * was taken re-triggers nothing (v1): copy the .json in first.
 *
 * Hashing runs on the loop a slice at a time (a timer), 1 MiB reads, so
 * a large file never stalls the loop or sits in memory. Single-threaded. */
#ifndef TIKD_INTAKE_H
#define TIKD_INTAKE_H

#include "err.h"
#include "store.h"

#include <stdbool.h>
#include <stdint.h>

struct ev_loop;
struct intake;

struct intake_item {
    char hash[65];      /* sha256 hex of the content */
    char path[1024];    /* absolute, where it was found */
    char folder[1024];  /* the watched folder (for intake_offer: the file's directory) */
    char name[256];     /* file name within folder */
    uint64_t size;      /* bytes */
    double mtime;       /* seconds since the epoch */
    double first_seen;  /* clock_now() when intake first saw the file */
    char sidecar[8192]; /* the JSON text of NAME.json next to it (clip.mp4 + clip.json), or "" */
};

/* The hand-off of one new item to the callback, ended by
 * intake_handoff_end() exactly once, during the callback or later (it
 * outlives intake_free). The item is taken once its hand-off ends complete
 * and no store write failed meanwhile (anything the consumer asked of the
 * store was saved); until then its record says offered, and the item is
 * offered again: at the next start after a crash, or INTAKE_RETRY seconds
 * after an incomplete end. Delivery is at least once, so a consumer plans
 * idempotently, by the item's hash (the planner refuses the same content
 * twice for an account, and tikd.upload.post{ key = item.hash } returns the
 * job planned before). */
struct intake_handoff;
#define INTAKE_RETRY 10.0

/* Called once per new item (and again for an item whose hand-off did not
 * end complete), from the loop. item is valid during the call only. The
 * callback may call anything here except intake_free. */
typedef void (*intake_fn)(void *ud, const struct intake_item *item, struct intake_handoff *h);

/* complete: the consumer has done with the item what it will (a failed
 * rule call counts, a cancelled one does not). Frees h. */
void intake_handoff_end(struct intake_handoff *h, bool complete);

/* An intake on loop recording identities in s (which must outlive it).
 * settle is in seconds (>= 0). No folder yet: add them, then intake_scan().
 * Fails with TIKD_EINVAL, TIKD_ENOMEM or TIKD_EIO (no inotify instance). */
/* Whether a watched folder with pattern (NULL: the media extensions .mp4
 * .mov .webm .jpg .jpeg .webp) takes a file called name: never dotfiles,
 * temporaries (*.part, *.tmp, *~) or .json sidecars. */
bool intake_takes(const char *name, const char *pattern);

int intake_new(struct intake **out, struct ev_loop *loop, struct store *s, double settle,
               intake_fn fn, void *ud, struct tikd_err *e);

/* Stop watching, drop files still settling or being hashed (a later scan
 * finds them again), free; NULL is fine. */
void intake_free(struct intake *in);

/* Watch dir (not its subdirectories) for media. pattern is an fnmatch glob
 * on the file name, matched ignoring case ("*.mp4"), or NULL for any of
 * .mp4 .mov .webm .jpg .jpeg .webp. Whatever the pattern, dotfiles, temporary
 * names (*.part, *.tmp, *~), .json sidecars and anything but regular files
 * are ignored. Files already there are found by the next intake_scan().
 * Fails with TIKD_ENOTFOUND (missing), TIKD_EINVAL (not a directory, empty
 * pattern), TIKD_EIO (unreadable), TIKD_EEXIST (already added), TIKD_EFULL. */
int intake_add_folder(struct intake *in, const char *dir, const char *pattern, struct tikd_err *e);

/* List every folder and start settling each file not already known; call it
 * at start. intake also runs it itself when the watcher lost events. A known
 * file whose size, times and inode still match its record is skipped without
 * being read again. Returns 0, or TIKD_EIO when a folder could not be read
 * (logged as intake.scan; the other folders are still listed). */
int intake_scan(struct intake *in);

/* The identity check for one given file, synchronously (tikd post, the admin
 * API): hash it, record it, fill *out. *fresh is true when the content was
 * new, false when it was known (then nothing else changes but the sighting
 * count). No callback runs. Fails with TIKD_ENOTFOUND, TIKD_EINVAL (not a
 * regular file, or it changed while being read: try again once complete),
 * TIKD_EIO (unreadable), TIKD_ESTORE / TIKD_ECORRUPT / TIKD_EFULL. */
int intake_offer(struct intake *in, const char *path, struct intake_item *out, bool *fresh,
                 struct tikd_err *e);

#endif
