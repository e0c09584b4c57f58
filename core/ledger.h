/* ledger.h - the media ledger: what content tikd has seen, known by the
 * SHA-256 of its bytes, and what each path held when it was read
 * (STORE_DB_MEDIA). The intake, `tikd post` and the planner all ask it, so a
 * renamed or re-copied file is never new, a restart reads no known file
 * again, and every path agrees on what a video is.
 *
 * Retention: a record is kept LEDGER_RETENTION (90 days) after it was last
 * written or confirmed. Expired records are pruned in time order, a few each
 * time a record is written, so the ledger holds about 90 days of media
 * however long tikd runs; a record whose file is still there, unchanged, is
 * confirmed instead of pruned. Content forgotten this way is new again when
 * it reappears (the planner's content ledger in the job index still refuses
 * a second post of it to an account that has it). */
#ifndef TIKD_LEDGER_H
#define TIKD_LEDGER_H

#include "codec.h"
#include "err.h"
#include "intake.h"
#include "store.h"

#include <stdbool.h>
#include <stdint.h>
#include <sys/stat.h>

#define LEDGER_RETENTION (90 * 86400.0)

/* What says a file is unchanged since it was read. */
struct ledger_fp {
    int64_t size, mtime_ns, ctime_ns;
    uint64_t ino, dev;
};

struct ledger_fp ledger_fp_of(const struct stat *st);
bool ledger_fp_eq(const struct ledger_fp *a, const struct ledger_fp *b);

/* True when path was read before and is unchanged since (hash, which may
 * be NULL, filled). */
bool ledger_known(struct store *s, const char *path, const struct ledger_fp *fp, char hash[65]);

/* SHA-256 of the file at path, in buf (bufsize bytes) a read at a time;
 * TIKD_EINVAL when its fingerprint is no longer fp after the last byte (it
 * changed while it was read). */
int ledger_hash_file(unsigned char *buf, size_t bufsize, const char *path,
                     const struct ledger_fp *fp, char out[65], struct tikd_err *e);

/* SHA-256 of the file at path and the fingerprint it had (*fp), calling
 * progress after each read (`tikd post` shows it on a terminal); fails as
 * ledger_hash_file does. Its result goes to ledger_identify_hashed. */
int ledger_hash_path(const char *path, char out[65], struct ledger_fp *fp,
                     codec_progress_fn progress, void *ud, struct tikd_err *e);

/* Fill it for the file at path in folder with the given hash (and the text
 * of its sidecar, NAME.json next to it). */
void ledger_fill_item(struct intake_item *it, const char *path, const char *folder,
                      const struct stat *st, double first_seen, const char *hash);

/* Record it (hash and path filled; fp its fingerprint) in one transaction:
 * *fresh when its content is new; known content at a new path is a sighting
 * (logged as intake.duplicate). it->first_seen becomes when the content was
 * first seen. Expired records are pruned in the same transaction.
 * offer (the intake): new content is recorded as offered but not yet
 * handed over (ledger_handed() ends that), and content recorded so before
 * is *fresh again, so an offer a crash or a full store cut short is made
 * again; without offer such content is simply known. */
int ledger_record(struct store *s, struct intake_item *it, const struct ledger_fp *fp, bool offer,
                  bool *fresh, struct tikd_err *e);

/* The offer of the content hash is over: its consumer has it. */
int ledger_handed(struct store *s, const char *hash, struct tikd_err *e);

/* ledger_known() for the intake: the file is known unchanged and its
 * content was handed over (not only offered). */
bool ledger_taken(struct store *s, const char *path, const struct ledger_fp *fp);

/* The identity of one file, synchronously (`tikd post`, the planner): read
 * it unless the ledger knows it unchanged, record it, fill *out. Fails with
 * TIKD_ENOTFOUND, TIKD_EINVAL (not a regular file, or it changed while being
 * read), TIKD_EIO, or a store error. */
int ledger_identify(struct store *s, const char *path, struct intake_item *out, bool *fresh,
                    struct tikd_err *e);

/* ledger_identify() of a file hashed already (by ledger_hash_start): hash,
 * with the fingerprint fp it had then, is recorded without reading the file
 * again, unless it changed since (then it is read as ledger_identify does). */
int ledger_identify_hashed(struct store *s, const char *path, const char *hash,
                           const struct ledger_fp *fp, struct intake_item *out, bool *fresh,
                           struct tikd_err *e);

/* Hash the file at path on the loop, a slice at a time (at most 8 MiB
 * between events), so a large file stalls nothing: done(ud, 0, hash, fp,
 * NULL) with the fingerprint it had, or done(ud, rc, NULL, fp, why) when it
 * cannot be read or changed meanwhile. done runs from the loop, never before
 * ledger_hash_start returns. 0 and *out, or an error (done never runs). */
struct ev_loop;
struct ledger_hashing;
typedef void (*ledger_hashed_fn)(void *ud, int rc, const char *hash, const struct ledger_fp *fp,
                                 const char *why);
int ledger_hash_start(struct ev_loop *loop, const char *path, ledger_hashed_fn done, void *ud,
                      struct ledger_hashing **out, struct tikd_err *e);
/* Stop a hashing in flight; done does not run. */
void ledger_hash_cancel(struct ledger_hashing *h);

/* Index every record for the prune (the schema step that brought it). */
int ledger_index_build(struct store_txn *t);

#endif
