/* store.h - tikd's state in one LMDB environment.
 *
 * Every state change is one write transaction. Callers never begin, commit or
 * abort by hand: they pass a function to store_write() (or store_read()),
 * which runs it inside a transaction, commits when it returns 0, aborts
 * otherwise, and on MDB_MAP_FULL grows the map and runs it again. So a write
 * function must have no effects outside the transaction it is handed.
 *
 * One writer at a time (LMDB's lock); readers never block. Pointers returned
 * by store_get() point into the map and die with the transaction. */
#ifndef TIKD_STORE_H
#define TIKD_STORE_H

#include "err.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The named databases, opened once at store_open(). Append only: the order
 * is not persisted, the names are. */
enum store_db {
    STORE_DB_META,     /* schema version, audit head, small engine facts */
    STORE_DB_AUDIT,    /* hash-chained audit records, key = big-endian seq */
    STORE_DB_KV,       /* per-rule key/value, key = rule '\0' key */
    STORE_DB_VAULT,    /* sealed secrets, key = owner '\0' field (also their AAD) */
    STORE_DB_ACCOUNTS, /* account name -> JSON record */
    STORE_DB_OAUTH,    /* sha256(state) -> pending authorization (JSON) */
    STORE_DB_JOBS,     /* job id (be64) -> job (core/jobrec) */
    STORE_DB_DUE,      /* due (be64 ms) | job id (be64) -> "": the pipeline timer's index */
    STORE_DB_LIMITS,   /* rate and cap state (ratelimit.c) */
    STORE_DB_SERVE,    /* local images served to TikTok (mediaurl.c) */
    STORE_DB_SLOTS,    /* booked schedule slots: account, time -> job (slots.c) */
    STORE_DB_MEDIA,    /* content hash -> media record; path -> its identity (intake.c) */
    STORE_DB_INDEX,    /* jobs by account, content and publish_id (job.c) */
    STORE_DB_SEEN,     /* webhook de-duplication and its prune order (webhook.c) */
    STORE_DB_ADMIN,    /* admin API tokens, by hash and by name (admin.c) */
    STORE_DB_NOTIFY,   /* notifications waiting to be delivered (notify.c) */
    STORE_DB_LIBS,     /* installed rule library bundles, content-addressed (libs.c) */
    STORE_DB__COUNT
};

struct store;
struct store_txn;

struct store_opts {
    const char *dir;    /* data directory; created (0700) if missing */
    size_t map_initial; /* starting map size in bytes */
    size_t map_max;     /* ceiling for automatic growth */
    bool readonly;      /* open for reading only (inspection commands) */
};

/* Schema version this build writes. Opening an older database runs the
 * migrations in store.c; a newer one is refused. */
#define STORE_SCHEMA_VERSION 3

/* Open (creating if needed) the environment in o->dir. On success *out owns
 * it; free with store_close(). Fails with TIKD_EIO, TIKD_ESTORE or
 * TIKD_ECORRUPT (schema newer than this build). */
int store_open(struct store **out, const struct store_opts *o, struct tikd_err *e);

/* Close the environment; NULL is fine. No transaction may be running. */
void store_close(struct store *s);

typedef int (*store_fn)(struct store_txn *t, void *ctx);

/* Run fn in a write transaction: commit if it returns 0, abort otherwise and
 * return its code. MDB_MAP_FULL (from fn or from the commit) grows the map
 * (doubling, up to map_max) and reruns fn; past the ceiling, or when the disk
 * is full, it fails with TIKD_ENOSPACE. fn may fill e itself; otherwise LMDB's reason is given. */
int store_write(struct store *s, store_fn fn, void *ctx, struct tikd_err *e);

/* How many store_write() calls have failed for the store's own reasons (a
 * full map or disk, LMDB: TIKD_ENOSPACE, TIKD_ESTORE), not fn's: whoever
 * needs to know whether everything asked of the store in some stretch of
 * work was written compares it before and after. */
uint64_t store_write_failures(const struct store *s);

/* Run fn in a read-only transaction (nothing it does is written). In group
 * mode with writes not yet durable, fn reads through the open group (it sees
 * them). */
int store_read(struct store *s, store_fn fn, void *ctx, struct tikd_err *e);

/* ---- group commit (the daemon) ---------------------------------------------
 *
 * One durable commit costs two fsyncs, far more than the work of a write; in
 * group mode the writes of one loop turn share one. store_write() then runs
 * fn in a nested transaction of the open group (opening one at the first
 * write): a failing fn leaves the group untouched, and its caller learns its
 * result at once, as before. Nothing a write records may be acted on until
 * store_sync() has made it durable: the daemon holds back every request
 * (core/http's gate) and every answer (core/server's gate) while
 * store_pending(), and syncs once per loop turn before it waits. The open
 * group holds LMDB's writer lock, so other processes' writes wait at most
 * that turn. A full map inside a write syncs what the group holds, grows the
 * map and runs fn again, as without groups. */
void store_group(struct store *s, bool on);

/* Writes taken since the last store_sync() (not durable yet). */
bool store_pending(const struct store *s);

/* Make the open group durable: one commit. 0 when nothing was pending. On
 * failure (a full disk) every write of the group is lost, as if the process
 * had stopped before them: counted in store_write_failures(). */
int store_sync(struct store *s, struct tikd_err *e);

/* store_write(), then, in group mode, store_sync(): for a write whose loss
 * after its caller went on could not be repaired by running the step again
 * (tokens TikTok has rotated). Its result is the sync's too. */
int store_write_durable(struct store *s, store_fn fn, void *ctx, struct tikd_err *e);

/* fn(ud, rc, why) after each store_sync() that had a group open, by
 * whoever called it (rc != 0: its writes were lost, why says how; a group
 * whose writes all failed is let go, rc 0, with no commit counted): the
 * daemon opens core/http's gate there. One hook; NULL removes it. */
void store_on_sync(struct store *s, void (*fn)(void *ud, int rc, const char *why), void *ud);

/* Durable commits made and writes they carried, since store_open(). */
void store_commit_stats(const struct store *s, uint64_t *commits, uint64_t *writes);

/* A value inside a transaction; valid until the transaction ends. */
struct store_val {
    const void *p;
    size_t n;
};

/* Look up key in db. Returns 0 and fills *v, TIKD_ENOTFOUND, or TIKD_ESTORE. */
int store_get(struct store_txn *t, enum store_db db, const void *key, size_t klen,
              struct store_val *v);

/* Insert or replace key in db (write transactions only). */
int store_put(struct store_txn *t, enum store_db db, const void *key, size_t klen, const void *val,
              size_t vlen);

/* Delete key from db; deleting a missing key is not an error. */
int store_del(struct store_txn *t, enum store_db db, const void *key, size_t klen);

/* Call fn for every record of db whose key starts with prefix (all records
 * when plen is 0), in key order, until fn returns non-zero (which is then
 * returned). Keys and values are valid during the callback only. */
typedef int (*store_each_fn)(struct store_val key, struct store_val val, void *ctx);
int store_foreach(struct store_txn *t, enum store_db db, const void *prefix, size_t plen,
                  store_each_fn fn, void *ctx);

/* Call fn for every record of db from the first key >= start on (slen 0:
 * from the first), in key order, until fn returns non-zero. */
int store_foreach_from(struct store_txn *t, enum store_db db, const void *start, size_t slen,
                       store_each_fn fn, void *ctx);

/* The last record of db (highest key); TIKD_ENOTFOUND when db is empty. */
int store_last(struct store_txn *t, enum store_db db, struct store_val *key, struct store_val *val);

/* The store a transaction belongs to. */
struct store *store_txn_store(struct store_txn *t);

/* Write a compacted hot copy of the environment into directory dest (created
 * if missing, must hold no data.mdb). Safe while tikd runs: it is one long
 * read transaction. */
int store_backup(struct store *s, const char *dest, struct tikd_err *e);

/* Clear the reader slots of processes that died inside a read transaction
 * (a child run killed at its time limit): their old snapshot would keep
 * freed pages from being reused. Returns how many were cleared. */
int store_reader_check(struct store *s);

/* Current map size in bytes (grows on MDB_MAP_FULL). */
size_t store_map_size(struct store *s);

/* Big-endian u64 helpers for keys that must sort numerically. */
void store_be64_put(unsigned char out[8], uint64_t v);
uint64_t store_be64_get(const unsigned char in[8]);

#endif
