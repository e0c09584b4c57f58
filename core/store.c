/* store.c - LMDB environment, transactions with automatic map growth,
 * schema migrations and hot backups (see store.h).
 *
 * Growth needs no transaction alive in this process (mdb_env_set_mapsize),
 * which holds because store_write() has aborted its own before growing and
 * tikd runs every transaction on the loop thread. Another process that grew
 * the map shows up as MDB_MAP_RESIZED at txn_begin: adopt it and go on. */
#include "store.h"
#include "schema.h"

#include <errno.h>
#include <lmdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static const char *const db_names[STORE_DB__COUNT] = {
    [STORE_DB_META] = "meta",
    [STORE_DB_AUDIT] = "audit",
    [STORE_DB_KV] = "kv",
    [STORE_DB_VAULT] = "vault",
    [STORE_DB_ACCOUNTS] = "accounts",
    [STORE_DB_OAUTH] = "oauth_states",
    [STORE_DB_JOBS] = "jobs",
    [STORE_DB_DUE] = "due",
    [STORE_DB_LIMITS] = "limits",
    [STORE_DB_SERVE] = "served",
    [STORE_DB_SLOTS] = "slots",
    [STORE_DB_MEDIA] = "media",
    [STORE_DB_INDEX] = "job_index",
    [STORE_DB_SEEN] = "seen",
    [STORE_DB_ADMIN] = "admin",
    [STORE_DB_NOTIFY] = "notify",
    [STORE_DB_LIBS] = "libs",
};

struct store {
    MDB_env *env;
    MDB_dbi dbi[STORE_DB__COUNT];
    size_t map_size, map_max;
    bool readonly;
    uint64_t write_failures;  /* write transactions LMDB or the disk refused */
    uint64_t commits, writes; /* durable commits, and the writes they carried */
    bool group;               /* group commit: see store_group() */
    MDB_txn *gtxn;            /* the open group, or NULL */
    MDB_txn *cur;             /* the write running in it (a child of gtxn), or NULL */
    uint64_t gwrites;         /* writes the open group holds */
    void (*on_sync)(void *ud, int rc, const char *why);
    void *on_sync_ud;
    char dir[4096];
};

#define NO_DBI ((MDB_dbi)-1)

struct store_txn {
    struct store *s;
    MDB_txn *txn;
    int mdb_rc; /* the first LMDB failure seen inside the transaction */
};

/* A full map or disk is its own code: the callers back off and wait for
 * room (a TIKD_EFULL would read as a refused budget). */
static int mdb_fail(struct tikd_err *e, int rc, const char *what)
{
    if (rc == ENOSPC || rc == EDQUOT)
        return tikd_fail(e, TIKD_ENOSPACE, "store: %s: the disk is full (%s)", what,
                         mdb_strerror(rc));
    return tikd_fail(e, rc == MDB_MAP_FULL ? TIKD_ENOSPACE : TIKD_ESTORE, "store: %s: %s", what,
                     mdb_strerror(rc));
}

static int txn_note(struct store_txn *t, int rc)
{
    if (rc != 0 && rc != MDB_NOTFOUND && t->mdb_rc == 0)
        t->mdb_rc = rc;
    return rc;
}

static int txn_begin(struct store *s, unsigned flags, MDB_txn **txn)
{
    int rc = mdb_txn_begin(s->env, NULL, flags, txn);
    if (rc == MDB_MAP_RESIZED) {
        /* another process grew the map: adopt its size */
        rc = mdb_env_set_mapsize(s->env, 0);
        if (rc == 0) {
            MDB_envinfo info;
            mdb_env_info(s->env, &info);
            s->map_size = info.me_mapsize;
            rc = mdb_txn_begin(s->env, NULL, flags, txn);
        }
    }
    return rc;
}

static int grow(struct store *s, struct tikd_err *e)
{
    if (s->map_size >= s->map_max)
        return tikd_fail(e, TIKD_ENOSPACE,
                         "store: database is full: the map reached store.map_max (%zu bytes); "
                         "raise store.map_max in the config",
                         s->map_max);
    size_t next = s->map_size * 2 > s->map_max ? s->map_max : s->map_size * 2;
    int rc = mdb_env_set_mapsize(s->env, next);
    if (rc != 0)
        return mdb_fail(e, rc, "growing the map");
    s->map_size = next;
    return 0;
}

static int run_txn(struct store *s, bool write, store_fn fn, void *ctx, struct tikd_err *e)
{
    for (;;) {
        struct store_txn t = {.s = s};
        int rc = txn_begin(s, write ? 0 : MDB_RDONLY, &t.txn);
        if (rc != 0)
            return mdb_fail(e, rc, "beginning a transaction");
        tikd_err_clear(e);
        int frc = fn(&t, ctx);
        if (!write && frc == 0) {
            /* committing a read transaction is how LMDB keeps the handles
             * of databases it opened; otherwise it equals an abort */
            rc = mdb_txn_commit(t.txn);
            return rc == 0 ? 0 : mdb_fail(e, rc, "ending a read transaction");
        }
        if (!write || frc != 0 || t.mdb_rc != 0) {
            mdb_txn_abort(t.txn);
            if (write && t.mdb_rc == MDB_MAP_FULL) {
                int g = grow(s, e);
                if (g != 0)
                    return g;
                continue;
            }
            if (frc == 0 && t.mdb_rc != 0)
                return mdb_fail(e, t.mdb_rc, "write");
            if (frc != 0 && e && e->msg[0] == '\0' && t.mdb_rc != 0)
                mdb_fail(e, t.mdb_rc, "write");
            return frc;
        }
        rc = mdb_txn_commit(t.txn);
        if (rc == MDB_MAP_FULL) {
            int g = grow(s, e);
            if (g != 0)
                return g;
            continue;
        }
        if (rc == 0) {
            s->commits++;
            s->writes++;
        }
        return rc == 0 ? 0 : mdb_fail(e, rc, "commit");
    }
}

/* ---- group commit ----------------------------------------------------------- */

void store_group(struct store *s, bool on)
{
    s->group = on && !s->readonly;
}

bool store_pending(const struct store *s)
{
    return s->gtxn != NULL;
}

void store_commit_stats(const struct store *s, uint64_t *commits, uint64_t *writes)
{
    *commits = s->commits;
    *writes = s->writes;
}

/* Grow ahead of need while no transaction is alive: a full map met by a
 * group's own commit (its free list needs pages too) would lose the group. */
static void grow_ahead(struct store *s)
{
    MDB_envinfo info;
    MDB_stat ms;
    if (mdb_env_info(s->env, &info) != 0 || mdb_env_stat(s->env, &ms) != 0)
        return;
    if ((uint64_t)(info.me_last_pgno + 1) * ms.ms_psize > s->map_size / 4 * 3 &&
        s->map_size < s->map_max)
        grow(s, NULL);
}

void store_on_sync(struct store *s, void (*fn)(void *ud, int rc, const char *why), void *ud)
{
    s->on_sync = fn;
    s->on_sync_ud = ud;
}

int store_sync(struct store *s, struct tikd_err *e)
{
    if (!s->gtxn)
        return 0;
    MDB_txn *t = s->gtxn;
    uint64_t n = s->gwrites;
    s->gtxn = NULL;
    s->gwrites = 0;
    struct tikd_err mine = {0};
    if (n == 0) { /* its writes all failed: nothing to make durable, no fsync */
        mdb_txn_abort(t);
        if (s->on_sync) /* what waited on the group may go */
            s->on_sync(s->on_sync_ud, 0, "");
        return 0;
    }
    int rc = mdb_txn_commit(t);
    if (rc != 0) {
        s->write_failures++;
        /* a full map is told as a write meets it (at store.map_max), and
         * grows for the next group where it may */
        int g = rc == MDB_MAP_FULL ? grow(s, &mine) : -1;
        rc = g == TIKD_ENOSPACE ? g : mdb_fail(&mine, rc, "commit");
    } else {
        s->commits++;
        s->writes += n;
        grow_ahead(s);
    }
    if (s->on_sync)
        s->on_sync(s->on_sync_ud, rc, mine.msg);
    if (rc != 0 && e)
        *e = mine;
    return rc;
}

int store_write_durable(struct store *s, store_fn fn, void *ctx, struct tikd_err *e)
{
    int rc = store_write(s, fn, ctx, e);
    return rc == 0 ? store_sync(s, e) : rc;
}

/* store_write in group mode: fn in a child of the open group. */
static int group_write(struct store *s, store_fn fn, void *ctx, struct tikd_err *e)
{
    for (;;) {
        int rc = s->gtxn ? 0 : txn_begin(s, 0, &s->gtxn);
        if (rc != 0) {
            s->gtxn = NULL;
            return mdb_fail(e, rc, "beginning a transaction");
        }
        struct store_txn t = {.s = s};
        rc = mdb_txn_begin(s->env, s->gtxn, 0, &t.txn);
        if (rc != 0)
            return mdb_fail(e, rc, "beginning a nested transaction");
        tikd_err_clear(e);
        s->cur = t.txn;
        int frc = fn(&t, ctx);
        s->cur = NULL;
        if (frc == 0 && t.mdb_rc == 0) {
            rc = mdb_txn_commit(t.txn); /* into the group: no I/O */
            if (rc == 0) {
                s->gwrites++;
                return 0;
            }
            t.mdb_rc = rc;
        } else {
            mdb_txn_abort(t.txn);
        }
        if (t.mdb_rc == MDB_TXN_FULL && s->gwrites == 0) {
            store_sync(s, NULL); /* an empty group: fn alone is too big */
            return mdb_fail(e, t.mdb_rc, "write");
        }
        if (t.mdb_rc == MDB_MAP_FULL || t.mdb_rc == MDB_TXN_FULL) {
            /* make room: what the group holds is committed, then fn runs
             * again in a new group (a bigger map, or a fresh dirty list) */
            int g = store_sync(s, e);
            if (g == 0 && t.mdb_rc == MDB_MAP_FULL)
                g = grow(s, e);
            if (g != 0)
                return g;
            continue;
        }
        if (frc == 0)
            return mdb_fail(e, t.mdb_rc, "write");
        if (e && e->msg[0] == '\0' && t.mdb_rc != 0)
            mdb_fail(e, t.mdb_rc, "write");
        return frc;
    }
}

int store_write(struct store *s, store_fn fn, void *ctx, struct tikd_err *e)
{
    if (s->readonly)
        return tikd_fail(e, TIKD_ESTORE, "store: opened read-only");
    int rc = s->group ? group_write(s, fn, ctx, e) : run_txn(s, true, fn, ctx, e);
    if (rc == TIKD_ENOSPACE || rc == TIKD_ESTORE)
        s->write_failures++;
    return rc;
}

uint64_t store_write_failures(const struct store *s)
{
    return s->write_failures;
}

int store_read(struct store *s, store_fn fn, void *ctx, struct tikd_err *e)
{
    if (!s->gtxn)
        return run_txn(s, false, fn, ctx, e);
    /* writes not yet durable: read through them (the running write's, when
     * a write function reads) */
    struct store_txn t = {.s = s, .txn = s->cur ? s->cur : s->gtxn};
    tikd_err_clear(e);
    int frc = fn(&t, ctx);
    if (frc == 0 && t.mdb_rc != 0)
        return mdb_fail(e, t.mdb_rc, "read");
    return frc;
}

int store_get(struct store_txn *t, enum store_db db, const void *key, size_t klen,
              struct store_val *v)
{
    MDB_val k = {klen, (void *)key}, d;
    if (t->s->dbi[db] == NO_DBI)
        return TIKD_ENOTFOUND;
    int rc = txn_note(t, mdb_get(t->txn, t->s->dbi[db], &k, &d));
    if (rc == MDB_NOTFOUND)
        return TIKD_ENOTFOUND;
    if (rc != 0)
        return TIKD_ESTORE;
    v->p = d.mv_data;
    v->n = d.mv_size;
    return 0;
}

int store_put(struct store_txn *t, enum store_db db, const void *key, size_t klen, const void *val,
              size_t vlen)
{
    MDB_val k = {klen, (void *)key}, d = {vlen, (void *)val};
    return txn_note(t, mdb_put(t->txn, t->s->dbi[db], &k, &d, 0)) ? TIKD_ESTORE : 0;
}

int store_del(struct store_txn *t, enum store_db db, const void *key, size_t klen)
{
    MDB_val k = {klen, (void *)key};
    int rc = txn_note(t, mdb_del(t->txn, t->s->dbi[db], &k, NULL));
    return rc == 0 || rc == MDB_NOTFOUND ? 0 : TIKD_ESTORE;
}

/* From the first key >= start (slen 0: the first), while keys start with
 * prefix (plen 0: to the end). */
static int walk(struct store_txn *t, enum store_db db, const void *start, size_t slen,
                const void *prefix, size_t plen, store_each_fn fn, void *ctx)
{
    MDB_cursor *c;
    if (t->s->dbi[db] == NO_DBI)
        return 0;
    if (txn_note(t, mdb_cursor_open(t->txn, t->s->dbi[db], &c)))
        return TIKD_ESTORE;
    MDB_val k = {slen, (void *)start}, d;
    int rc = mdb_cursor_get(c, &k, &d, slen ? MDB_SET_RANGE : MDB_FIRST);
    int out = 0;
    while (rc == 0) {
        if (plen && (k.mv_size < plen || memcmp(k.mv_data, prefix, plen) != 0))
            break;
        out = fn((struct store_val){k.mv_data, k.mv_size}, (struct store_val){d.mv_data, d.mv_size},
                 ctx);
        if (out != 0)
            break;
        rc = mdb_cursor_get(c, &k, &d, MDB_NEXT);
    }
    mdb_cursor_close(c);
    if (out == 0 && rc != 0 && rc != MDB_NOTFOUND)
        out = txn_note(t, rc) ? TIKD_ESTORE : 0;
    return out;
}

int store_foreach(struct store_txn *t, enum store_db db, const void *prefix, size_t plen,
                  store_each_fn fn, void *ctx)
{
    return walk(t, db, prefix, plen, prefix, plen, fn, ctx);
}

int store_foreach_from(struct store_txn *t, enum store_db db, const void *start, size_t slen,
                       store_each_fn fn, void *ctx)
{
    return walk(t, db, start, slen, NULL, 0, fn, ctx);
}

int store_last(struct store_txn *t, enum store_db db, struct store_val *key, struct store_val *val)
{
    MDB_cursor *c;
    if (t->s->dbi[db] == NO_DBI)
        return TIKD_ENOTFOUND;
    if (txn_note(t, mdb_cursor_open(t->txn, t->s->dbi[db], &c)))
        return TIKD_ESTORE;
    MDB_val k, d;
    int rc = mdb_cursor_get(c, &k, &d, MDB_LAST);
    mdb_cursor_close(c);
    if (rc == MDB_NOTFOUND)
        return TIKD_ENOTFOUND;
    if (txn_note(t, rc))
        return TIKD_ESTORE;
    if (key)
        *key = (struct store_val){k.mv_data, k.mv_size};
    if (val)
        *val = (struct store_val){d.mv_data, d.mv_size};
    return 0;
}

struct store *store_txn_store(struct store_txn *t)
{
    return t->s;
}

void store_be64_put(unsigned char out[8], uint64_t v)
{
    for (int i = 7; i >= 0; i--, v >>= 8)
        out[i] = (unsigned char)(v & 0xff);
}

uint64_t store_be64_get(const unsigned char in[8])
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v = v << 8 | in[i];
    return v;
}

/* ---- opening: named databases and the schema ------------------------- */

static const char SCHEMA_KEY[] = "schema_version";

/* ctx non-NULL: create missing databases (a write transaction). Without it
 * a missing one is TIKD_ENOTFOUND, or an empty stand-in when read-only. */
static int open_dbs(struct store_txn *t, void *ctx)
{
    bool create = ctx != NULL;
    unsigned flags = create ? MDB_CREATE : 0;
    for (int i = 0; i < STORE_DB__COUNT; i++) {
        int rc = mdb_dbi_open(t->txn, db_names[i], flags, &t->s->dbi[i]);
        if (rc == MDB_NOTFOUND && !create) {
            if (i == STORE_DB_META || !t->s->readonly)
                return TIKD_ENOTFOUND; /* fresh, or to be created */
            t->s->dbi[i] = NO_DBI;     /* written by a tikd without it: empty */
            continue;
        }
        if (txn_note(t, rc))
            return TIKD_ESTORE;
    }
    return 0;
}

struct schema_ctx {
    unsigned found;
    struct tikd_err *e;
};

static int read_schema(struct store_txn *t, struct schema_ctx *sc)
{
    struct store_val v;
    int rc = store_get(t, STORE_DB_META, SCHEMA_KEY, sizeof SCHEMA_KEY - 1, &v);
    if (rc == TIKD_ENOTFOUND) {
        sc->found = 0;
        return 0;
    }
    if (rc != 0)
        return rc;
    if (v.n != 4)
        return tikd_fail(sc->e, TIKD_ECORRUPT, "store: schema version record is %zu bytes, not 4",
                         v.n);
    const unsigned char *b = v.p;
    sc->found = (unsigned)b[0] << 24 | (unsigned)b[1] << 16 | (unsigned)b[2] << 8 | b[3];
    return 0;
}

static int migrate(struct store_txn *t, void *ctx)
{
    struct schema_ctx *sc = ctx;
    int rc = read_schema(t, sc);
    if (rc != 0)
        return rc;
    if (sc->found > STORE_SCHEMA_VERSION)
        return tikd_fail(sc->e, TIKD_ECORRUPT,
                         "store: the database has schema version %u, newer than this tikd "
                         "understands (%u); run the tikd that wrote it",
                         sc->found, STORE_SCHEMA_VERSION);
    if (sc->found != 0 && (rc = schema_upgrade(t, sc->found, STORE_SCHEMA_VERSION)) != 0)
        return rc; /* core/schema: what each version adds */
    unsigned char v[4] = {STORE_SCHEMA_VERSION >> 24 & 0xff, STORE_SCHEMA_VERSION >> 16 & 0xff,
                          STORE_SCHEMA_VERSION >> 8 & 0xff, STORE_SCHEMA_VERSION & 0xff};
    return store_put(t, STORE_DB_META, SCHEMA_KEY, sizeof SCHEMA_KEY - 1, v, sizeof v);
}

static int check_schema(struct store_txn *t, void *ctx)
{
    struct schema_ctx *sc = ctx;
    int rc = read_schema(t, sc);
    if (rc == 0 && sc->found > STORE_SCHEMA_VERSION)
        return tikd_fail(sc->e, TIKD_ECORRUPT,
                         "store: the database has schema version %u, newer than this tikd (%u)",
                         sc->found, STORE_SCHEMA_VERSION);
    return rc;
}

int store_open(struct store **out, const struct store_opts *o, struct tikd_err *e)
{
    *out = NULL;
    if (!o->dir || !*o->dir)
        return tikd_fail(e, TIKD_EINVAL, "store: no data directory configured");
    if (o->map_initial == 0 || o->map_max < o->map_initial)
        return tikd_fail(e, TIKD_EINVAL, "store: map size %zu and ceiling %zu are inconsistent",
                         o->map_initial, o->map_max);
    if (!o->readonly && mkdir(o->dir, 0700) != 0 && errno != EEXIST)
        return tikd_fail(e, TIKD_EIO, "store: cannot create data directory %s: %s", o->dir,
                         strerror(errno));
    if (o->readonly) {
        char path[4200];
        struct stat st;
        snprintf(path, sizeof path, "%s/data.mdb", o->dir);
        if (stat(path, &st) != 0)
            return tikd_fail(e, TIKD_ENOTFOUND, "store: %s holds no tikd database yet", o->dir);
    }
    struct store *s = calloc(1, sizeof *s);
    if (!s)
        return tikd_fail(e, TIKD_ENOMEM, "store: out of memory");
    snprintf(s->dir, sizeof s->dir, "%s", o->dir);
    s->readonly = o->readonly;
    s->map_max = o->map_max;
    int rc = mdb_env_create(&s->env);
    if (rc == 0)
        rc = mdb_env_set_maxdbs(s->env, 32);
    if (rc == 0)
        rc = mdb_env_set_mapsize(s->env, o->map_initial);
    if (rc != 0) {
        mdb_fail(e, rc, "creating the environment");
        goto fail;
    }
    rc = mdb_env_open(s->env, o->dir, MDB_NOTLS | (o->readonly ? MDB_RDONLY : 0), 0600);
    if (rc != 0) {
        tikd_fail(e, TIKD_ESTORE, "store: cannot open %s: %s", o->dir, mdb_strerror(rc));
        goto fail;
    }
    MDB_envinfo info;
    mdb_env_info(s->env, &info);
    /* pages past the end of a truncated file are mapped but not backed:
     * touching one is a SIGBUS, so the size is checked before any read */
    MDB_stat ms;
    char path[4200];
    struct stat st;
    snprintf(path, sizeof path, "%s/data.mdb", o->dir);
    if (mdb_env_stat(s->env, &ms) == 0 && stat(path, &st) == 0 &&
        (uint64_t)(info.me_last_pgno + 1) * ms.ms_psize > (uint64_t)st.st_size) {
        tikd_fail(e, TIKD_ECORRUPT,
                  "store: %s is truncated (%lld bytes, its pages need %llu): restore it from a "
                  "copy made by `tikd backup`",
                  path, (long long)st.st_size,
                  (unsigned long long)(info.me_last_pgno + 1) * ms.ms_psize);
        goto fail;
    }
    s->map_size = info.me_mapsize; /* an existing file may be larger than asked */
    if (s->map_size > s->map_max)
        s->map_max = s->map_size;

    struct schema_ctx sc = {.e = e};
    if (o->readonly) {
        rc = store_read(s, open_dbs, NULL, e);
        if (rc == TIKD_ENOTFOUND) {
            tikd_fail(e, TIKD_ENOTFOUND, "store: %s holds no tikd database yet", o->dir);
            goto fail;
        }
        if (rc == 0)
            rc = store_read(s, check_schema, &sc, e);
    } else {
        /* write only when something must change: opening an up-to-date
         * database leaves its file untouched */
        rc = store_read(s, open_dbs, NULL, e);
        if (rc == TIKD_ENOTFOUND)
            rc = store_write(s, open_dbs, s, e);
        if (rc == 0)
            rc = store_read(s, check_schema, &sc, e);
        if (rc == 0 && sc.found != STORE_SCHEMA_VERSION)
            rc = store_write(s, migrate, &sc, e);
    }
    if (rc != 0)
        goto fail;
    *out = s;
    return 0;
fail:
    if (e && e->code == 0)
        e->code = TIKD_ESTORE;
    mdb_env_close(s->env);
    free(s);
    return e ? e->code : TIKD_ESTORE;
}

void store_close(struct store *s)
{
    if (!s)
        return;
    struct tikd_err e = {0};
    if (store_sync(s, &e) != 0)
        fprintf(stderr, "tikd: %s\n", e.msg);
    mdb_env_close(s->env);
    free(s);
}

size_t store_map_size(struct store *s)
{
    return s->map_size;
}

int store_reader_check(struct store *s)
{
    int dead = 0;
    return mdb_reader_check(s->env, &dead) == 0 ? dead : 0;
}

int store_backup(struct store *s, const char *dest, struct tikd_err *e)
{
    if (store_sync(s, e) != 0)
        return e ? e->code : TIKD_ESTORE;
    if (mkdir(dest, 0700) != 0 && errno != EEXIST)
        return tikd_fail(e, TIKD_EIO, "backup: cannot create %s: %s", dest, strerror(errno));
    char path[4200];
    snprintf(path, sizeof path, "%s/data.mdb", dest);
    struct stat st;
    if (stat(path, &st) == 0)
        return tikd_fail(e, TIKD_EEXIST,
                         "backup: %s already holds a database; pick an empty "
                         "directory",
                         dest);
    int rc = mdb_env_copy2(s->env, dest, MDB_CP_COMPACT);
    if (rc != 0)
        return tikd_fail(e, TIKD_ESTORE, "backup: copying to %s failed: %s", dest,
                         mdb_strerror(rc));
    return 0;
}
