/* ledger.c - the media ledger (see ledger.h).
 *
 * STORE_DB_MEDIA keys:
 *   64 hex digits (a content hash) -> its record: first path and time, how
 *       often and where it was last seen, and `at`, when it was last written
 *       or confirmed
 *   an absolute path ('/' first)  -> the hash and fingerprint it had, and `at`
 *   '@' at (be64 ms) and one of the keys above -> "": the prune order
 * Every record write moves its '@' entry with it, in the same transaction. */
#include "ledger.h"
#include "clock.h"
#include "codec.h"
#include "fileio.h"
#include "log.h"

#include <errno.h>
#include <fcntl.h>
#include <ev.h>
#include <jansson.h>
#include <openssl/evp.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define BUF_SIZE    (1u << 20)
#define PRUNE_BATCH 16 /* expired records pruned per record written */

struct ledger_fp ledger_fp_of(const struct stat *st)
{
    return (struct ledger_fp){
        .size = st->st_size,
        .mtime_ns = (int64_t)st->st_mtim.tv_sec * 1000000000 + st->st_mtim.tv_nsec,
        .ctime_ns = (int64_t)st->st_ctim.tv_sec * 1000000000 + st->st_ctim.tv_nsec,
        .ino = st->st_ino,
        .dev = st->st_dev,
    };
}

bool ledger_fp_eq(const struct ledger_fp *a, const struct ledger_fp *b)
{
    return a->size == b->size && a->mtime_ns == b->mtime_ns && a->ctime_ns == b->ctime_ns &&
           a->ino == b->ino && a->dev == b->dev;
}

static const char *base_name(const char *path)
{
    const char *s = strrchr(path, '/');
    return s ? s + 1 : path;
}

/* ---- records and their prune order --------------------------------------------- */

/* The '@' key of record key written at `at` (ms); its length. */
static size_t order_key(unsigned char *k, size_t n, const char *key, size_t kl, uint64_t at)
{
    if (n < 9 || kl > n - 9)
        return 0;
    k[0] = '@';
    store_be64_put(k + 1, at);
    memcpy(k + 9, key, kl);
    return 9 + kl;
}

/* When rec was last written or confirmed (ms; 0 for a record older than
 * the prune order). */
static uint64_t at_of(json_t *rec)
{
    json_int_t v = json_integer_value(json_object_get(rec, "at_ms"));
    return v > 0 ? (uint64_t)v : 0;
}

static uint64_t ms_of(double t)
{
    return (uint64_t)(t * 1000);
}

/* Write rec (taken) under key, at `now` (ms), moving its prune entry from
 * old_at (0: it had none). */
static int put_rec(struct store_txn *t, const char *key, size_t klen, json_t *rec, uint64_t old_at,
                   uint64_t now)
{
    unsigned char ok[1200];
    size_t ol;
    int rc = 0;
    if (rec)
        json_object_set_new(rec, "at_ms", json_integer((json_int_t)now));
    char *s = rec ? json_dumps(rec, JSON_COMPACT | JSON_REAL_PRECISION(17)) : NULL;
    json_decref(rec);
    if (!s)
        return TIKD_ENOMEM;
    if (old_at > 0 && (ol = order_key(ok, sizeof ok, key, klen, old_at)))
        rc = store_del(t, STORE_DB_MEDIA, ok, ol);
    if (rc == 0)
        rc = store_put(t, STORE_DB_MEDIA, key, klen, s, strlen(s));
    free(s);
    if (rc == 0 && (ol = order_key(ok, sizeof ok, key, klen, now)))
        rc = store_put(t, STORE_DB_MEDIA, ok, ol, "", 0);
    return rc;
}

static json_t *get_rec(struct store_txn *t, const char *key, size_t klen)
{
    struct store_val v;
    if (store_get(t, STORE_DB_MEDIA, key, klen, &v) != 0)
        return NULL;
    json_t *o = json_loadb(v.p, v.n, 0, NULL);
    if (json_is_object(o))
        return o;
    json_decref(o);
    return NULL;
}

static bool path_rec_matches(json_t *o, const struct ledger_fp *fp, char hash[65])
{
    const char *h = json_string_value(json_object_get(o, "hash"));
    bool ok = h && strlen(h) == 64 && json_integer_value(json_object_get(o, "size")) == fp->size &&
              json_integer_value(json_object_get(o, "mtime_ns")) == fp->mtime_ns &&
              json_integer_value(json_object_get(o, "ctime_ns")) == fp->ctime_ns &&
              (uint64_t)json_integer_value(json_object_get(o, "ino")) == fp->ino &&
              (uint64_t)json_integer_value(json_object_get(o, "dev")) == fp->dev;
    if (ok && hash)
        memcpy(hash, h, 65);
    return ok;
}

/* Is the file at path there, unchanged since the path record p? */
static bool file_matches(const char *path, json_t *p)
{
    struct stat st;
    if (!p || stat(path, &st) != 0)
        return false;
    struct ledger_fp fp = ledger_fp_of(&st);
    return path_rec_matches(p, &fp, NULL);
}

/* Is the record under key still true? A path: its file is there,
 * unchanged. A content hash: the file it was last seen at still is, and
 * still holds it. */
static bool still_there(struct store_txn *t, const char *key, size_t kl, json_t *rec)
{
    char path[PATH_MAX];
    if (key[0] == '/') {
        snprintf(path, sizeof path, "%.*s", (int)kl, key);
        return file_matches(path, rec);
    }
    const char *last = json_string_value(json_object_get(rec, "last_path"));
    json_t *p = last ? get_rec(t, last, strlen(last)) : NULL;
    const char *h = json_string_value(json_object_get(p, "hash"));
    bool same = h && strlen(h) == kl && memcmp(h, key, kl) == 0 && file_matches(last, p);
    json_decref(p);
    return same;
}

struct expired {
    unsigned char k[PRUNE_BATCH][1100];
    size_t n[PRUNE_BATCH];
    int count;
    uint64_t before;
};

static int expired_one(struct store_val k, struct store_val v, void *ctx)
{
    (void)v;
    struct expired *x = ctx;
    if (k.n < 10 || k.n > sizeof x->k[0] ||
        store_be64_get((const unsigned char *)k.p + 1) >= x->before || x->count == PRUNE_BATCH)
        return 1; /* in time order: the rest are younger */
    memcpy(x->k[x->count], k.p, k.n);
    x->n[x->count++] = k.n;
    return 0;
}

/* Up to PRUNE_BATCH records past the retention: confirmed when still true,
 * else deleted with their prune entries. */
static int prune(struct store_txn *t, double now)
{
    struct expired *x = malloc(sizeof *x);
    if (!x)
        return TIKD_ENOMEM;
    x->count = 0;
    x->before = (uint64_t)((now - LEDGER_RETENTION) * 1000);
    int rc = store_foreach(t, STORE_DB_MEDIA, "@", 1, expired_one, x);
    rc = rc < 0 ? rc : 0;
    for (int i = 0; rc == 0 && i < x->count; i++) {
        const char *key = (const char *)x->k[i] + 9;
        size_t kl = x->n[i] - 9;
        json_t *rec = get_rec(t, key, kl);
        uint64_t at = store_be64_get(x->k[i] + 1);
        if (rec && still_there(t, key, kl, rec)) {
            rc = put_rec(t, key, kl, rec, at, ms_of(now));
            continue;
        }
        json_decref(rec);
        rc = store_del(t, STORE_DB_MEDIA, x->k[i], x->n[i]);
        if (rc == 0)
            rc = store_del(t, STORE_DB_MEDIA, key, kl);
        if (rc == 0)
            TLOG(TLOG_DEBUG, "ledger.pruned", LSTR("key", key[0] == '/' ? key : "(content)"));
    }
    free(x);
    return rc;
}

/* Content offered to the intake's consumer and not yet handed over. */
static bool unhanded(json_t *rec)
{
    return json_is_false(json_object_get(rec, "handed"));
}

struct known_ctx {
    const char *path;
    const struct ledger_fp *fp;
    bool taken;    /* in: its content must also have been handed over */
    char hash[65]; /* out, when the fingerprint matches */
    bool match;
};

static int known_txn(struct store_txn *t, void *ctx)
{
    struct known_ctx *k = ctx;
    json_t *o = get_rec(t, k->path, strlen(k->path));
    k->match = o && path_rec_matches(o, k->fp, k->hash);
    json_decref(o);
    if (k->match && k->taken) {
        json_t *rec = get_rec(t, k->hash, 64);
        k->match = !unhanded(rec);
        json_decref(rec);
    }
    return 0;
}

bool ledger_taken(struct store *s, const char *path, const struct ledger_fp *fp)
{
    struct known_ctx k = {.path = path, .fp = fp, .taken = true};
    return store_read(s, known_txn, &k, NULL) == 0 && k.match;
}

bool ledger_known(struct store *s, const char *path, const struct ledger_fp *fp, char hash[65])
{
    struct known_ctx k = {.path = path, .fp = fp};
    if (store_read(s, known_txn, &k, NULL) != 0)
        return false; /* read it again; recording will say what is wrong */
    if (k.match && hash)
        memcpy(hash, k.hash, 65);
    return k.match;
}

struct rec_ctx {
    const struct intake_item *it;
    const struct ledger_fp *fp;
    bool offer;
    double now;
    struct tikd_err *e;
    bool fresh, sighting;  /* out: new content; seen at a new path */
    bool again;            /* out: fresh, as an offer never handed over */
    char first_path[1024]; /* out */
    double first_seen;     /* out */
    long long seen_count;  /* out */
};

static int record_txn(struct store_txn *t, void *ctx)
{
    struct rec_ctx *x = ctx;
    const struct intake_item *it = x->it;
    x->fresh = x->sighting = x->again = false;
    x->first_path[0] = '\0';
    x->first_seen = it->first_seen;
    x->seen_count = 1;
    json_t *prec = get_rec(t, it->path, strlen(it->path));
    const char *ph = json_string_value(json_object_get(prec, "hash"));
    bool same_path = ph && strcmp(ph, it->hash) == 0;
    bool path_current = same_path && path_rec_matches(prec, x->fp, NULL);
    uint64_t path_at = at_of(prec);
    json_decref(prec);
    json_t *rec = get_rec(t, it->hash, 64);
    uint64_t rec_at = at_of(rec);
    int rc = 0;
    if (!rec) {
        x->fresh = x->sighting = true;
        snprintf(x->first_path, sizeof x->first_path, "%s", it->path);
        rec = json_pack("{s:s, s:I, s:f, s:I, s:s, s:f}", "path", it->path, "size",
                        (json_int_t)it->size, "first_seen", it->first_seen, "seen_count",
                        (json_int_t)1, "last_path", it->path, "last_seen", x->now);
        if (!rec)
            return TIKD_ENOMEM;
        if (x->offer)
            json_object_set_new(rec, "handed", json_false());
    } else {
        x->fresh = x->again = x->offer && unhanded(rec); /* offered, never handed over */
        const char *first = json_string_value(json_object_get(rec, "path"));
        if (!first) {
            json_decref(rec);
            return tikd_fail(x->e, TIKD_ECORRUPT, "intake: the media record of %s is damaged",
                             it->hash);
        }
        snprintf(x->first_path, sizeof x->first_path, "%s", first);
        x->first_seen = json_number_value(json_object_get(rec, "first_seen"));
        x->seen_count = json_integer_value(json_object_get(rec, "seen_count"));
        if (same_path) {
            json_decref(rec); /* seen here before: not a new sighting */
            rec = NULL;
        } else {
            x->sighting = true;
            x->seen_count++;
            json_object_set_new(rec, "seen_count", json_integer(x->seen_count));
            json_object_set_new(rec, "last_path", json_string(it->path));
            json_object_set_new(rec, "last_seen", json_real(x->now));
        }
    }
    if (rec && (rc = put_rec(t, it->hash, 64, rec, rec_at, ms_of(x->now))) != 0)
        return rc;
    if (!path_current) {
        json_t *p = json_pack("{s:s, s:I, s:I, s:I, s:I, s:I}", "hash", it->hash, "size",
                              (json_int_t)x->fp->size, "mtime_ns", (json_int_t)x->fp->mtime_ns,
                              "ctime_ns", (json_int_t)x->fp->ctime_ns, "ino",
                              (json_int_t)x->fp->ino, "dev", (json_int_t)x->fp->dev);
        if ((rc = put_rec(t, it->path, strlen(it->path), p, path_at, ms_of(x->now))) != 0)
            return rc;
    }
    return prune(t, x->now);
}

int ledger_record(struct store *s, struct intake_item *it, const struct ledger_fp *fp, bool offer,
                  bool *fresh, struct tikd_err *e)
{
    struct rec_ctx x = {.it = it, .fp = fp, .offer = offer, .now = clock_now(), .e = e};
    int rc = store_write(s, record_txn, &x, e);
    if (rc != 0)
        return rc;
    *fresh = x.fresh;
    if (x.again) {
        it->first_seen = x.first_seen;
        TLOG(TLOG_INFO, "intake.offered_again", LSTR("hash", it->hash), LSTR("path", it->path),
             LSTR("first_path", x.first_path));
    } else if (x.fresh) {
        TLOG(TLOG_INFO, "intake.new", LSTR("hash", it->hash), LSTR("path", it->path),
             LINT("size", it->size));
    } else {
        it->first_seen = x.first_seen;
        if (x.sighting)
            TLOG(TLOG_INFO, "intake.duplicate", LSTR("hash", it->hash), LSTR("path", it->path),
                 LSTR("first_path", x.first_path), LINT("seen_count", x.seen_count));
        else
            TLOG(TLOG_DEBUG, "intake.known", LSTR("hash", it->hash), LSTR("path", it->path));
    }
    return 0;
}

struct handed_ctx {
    const char *hash;
    double now;
};

static int handed_txn(struct store_txn *t, void *ctx)
{
    struct handed_ctx *x = ctx;
    json_t *rec = get_rec(t, x->hash, 64);
    if (!unhanded(rec)) {
        json_decref(rec); /* pruned meanwhile, or handed already */
        return 0;
    }
    uint64_t at = at_of(rec);
    json_object_del(rec, "handed");
    return put_rec(t, x->hash, 64, rec, at, ms_of(x->now));
}

int ledger_handed(struct store *s, const char *hash, struct tikd_err *e)
{
    if (strlen(hash) != 64)
        return tikd_fail(e, TIKD_EINVAL, "ledger: not a content hash");
    struct handed_ctx x = {.hash = hash, .now = clock_now()};
    return store_write(s, handed_txn, &x, e);
}

/* ---- the schema step ----------------------------------------------------------------- */

struct keys {
    char **v;
    size_t *n, count, cap;
};

static int collect_key(struct store_val k, struct store_val v, void *ctx)
{
    (void)v;
    struct keys *ks = ctx;
    if (k.n == 0 || ((const char *)k.p)[0] == '@')
        return 0;
    if (ks->count == ks->cap) {
        size_t nc = ks->cap ? ks->cap * 2 : 256;
        char **g = realloc(ks->v, nc * sizeof *g);
        size_t *gn = g ? realloc(ks->n, nc * sizeof *gn) : NULL;
        if (g)
            ks->v = g;
        if (!g || !gn)
            return TIKD_ENOMEM;
        ks->n = gn;
        ks->cap = nc;
    }
    if (!(ks->v[ks->count] = malloc(k.n)))
        return TIKD_ENOMEM;
    memcpy(ks->v[ks->count], k.p, k.n);
    ks->n[ks->count++] = k.n;
    return 0;
}

int ledger_index_build(struct store_txn *t)
{
    struct keys ks = {0};
    int rc = store_foreach(t, STORE_DB_MEDIA, NULL, 0, collect_key, &ks);
    uint64_t now = ms_of(clock_now());
    for (size_t i = 0; rc == 0 && i < ks.count; i++) {
        json_t *rec = get_rec(t, ks.v[i], ks.n[i]);
        rc = rec ? put_rec(t, ks.v[i], ks.n[i], rec, 0, now) : 0;
    }
    for (size_t i = 0; i < ks.count; i++)
        free(ks.v[i]);
    free(ks.v);
    free(ks.n);
    return rc;
}

/* ---- one file ------------------------------------------------------------------- */

static void read_sidecar(struct intake_item *it)
{
    it->sidecar[0] = '\0';
    char p[PATH_MAX + 8];
    const char *name = base_name(it->path), *dot = strrchr(name, '.');
    int stem = (int)(dot && dot != name ? (size_t)(dot - name) : strlen(name));
    snprintf(p, sizeof p, "%.*s%.*s.json", (int)(name - it->path), it->path, stem, name);
    struct stat st;
    int fd = fileio_open_regular(p, &st, NULL);
    if (fd < 0)
        return;
    if ((uint64_t)st.st_size >= sizeof it->sidecar) {
        TLOG(TLOG_WARN, "intake.sidecar", LSTR("path", p), LSTR("reason", "too large, ignored"),
             LINT("size", st.st_size), LINT("max", sizeof it->sidecar - 1));
        close(fd);
        return;
    }
    size_t n = 0;
    for (;;) {
        ssize_t r = read(fd, it->sidecar + n, sizeof it->sidecar - 1 - n);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            TLOG(TLOG_WARN, "intake.sidecar", LSTR("path", p), LSTR("reason", strerror(errno)));
            n = 0;
            break;
        }
        if (r == 0 || (n += (size_t)r) == sizeof it->sidecar - 1)
            break;
    }
    it->sidecar[n] = '\0';
    close(fd);
}

void ledger_fill_item(struct intake_item *it, const char *path, const char *folder,
                      const struct stat *st, double first_seen, const char *hash)
{
    snprintf(it->hash, sizeof it->hash, "%s", hash);
    snprintf(it->path, sizeof it->path, "%s", path);
    snprintf(it->folder, sizeof it->folder, "%s", folder);
    snprintf(it->name, sizeof it->name, "%s", base_name(path));
    it->size = (uint64_t)st->st_size;
    it->mtime = (double)st->st_mtim.tv_sec + (double)st->st_mtim.tv_nsec / 1e9;
    it->first_seen = first_seen;
    read_sidecar(it);
}

int ledger_hash_file(unsigned char *buf, size_t bufsize, const char *path,
                     const struct ledger_fp *fp, char out[65], struct tikd_err *e)
{
    struct stat st;
    int fd = fileio_open_read(path, &st, e);
    if (fd < 0)
        return fd;
    int rc = codec_sha256_fd(fd, path, buf, bufsize, out, e);
    struct ledger_fp now;
    if (rc == 0 && (fstat(fd, &st) != 0 || (now = ledger_fp_of(&st), !ledger_fp_eq(&now, fp))))
        rc = tikd_fail(e, TIKD_EINVAL,
                       "intake: %s changed while it was read; offer it again once it is complete",
                       path);
    close(fd);
    return rc;
}

int ledger_hash_path(const char *path, char out[65], struct ledger_fp *fp,
                     codec_progress_fn progress, void *ud, struct tikd_err *e)
{
    struct stat st;
    int fd = fileio_open_regular(path, &st, e);
    if (fd < 0)
        return fd;
    *fp = ledger_fp_of(&st);
    unsigned char *buf = malloc(BUF_SIZE);
    int rc = buf ? codec_sha256_fd_progress(fd, path, buf, BUF_SIZE, out, progress, ud, e)
                 : tikd_fail(e, TIKD_ENOMEM, "out of memory");
    struct ledger_fp now;
    if (rc == 0 && (fstat(fd, &st) != 0 || (now = ledger_fp_of(&st), !ledger_fp_eq(&now, fp))))
        rc = tikd_fail(e, TIKD_EINVAL, "%s changed while it was read; post it once it is complete",
                       path);
    free(buf);
    close(fd);
    return rc;
}

/* ledger_identify(), with what is known of the file already: its hash and
 * the fingerprint it had when hashed (NULL: nothing). */
static int identify(struct store *store, const char *path, const char *known,
                    const struct ledger_fp *known_fp, struct intake_item *out, bool *fresh,
                    struct tikd_err *e)
{
    char abs[PATH_MAX];
    *fresh = false;
    if (!realpath(path, abs))
        return tikd_fail(e, errno == ENOENT ? TIKD_ENOTFOUND : TIKD_EIO, "intake: %s: %s", path,
                         errno == ENOENT ? "no such file" : strerror(errno));
    if (strlen(abs) >= sizeof out->path)
        return tikd_fail(e, TIKD_EINVAL, "intake: %s: path too long", abs);
    struct stat sb;
    if (stat(abs, &sb) != 0)
        return tikd_fail(e, TIKD_EIO, "intake: %s: %s", abs, strerror(errno));
    if (!S_ISREG(sb.st_mode))
        return tikd_fail(e, TIKD_EINVAL, "intake: %s is not a regular file", abs);
    struct ledger_fp fp = ledger_fp_of(&sb);
    char hash[65];
    if (known && known_fp && ledger_fp_eq(known_fp, &fp)) {
        snprintf(hash, sizeof hash, "%s", known);
    } else if (!ledger_known(store, abs, &fp, hash)) {
        unsigned char *buf = malloc(BUF_SIZE);
        int rc = buf ? ledger_hash_file(buf, BUF_SIZE, abs, &fp, hash, e)
                     : tikd_fail(e, TIKD_ENOMEM, "out of memory");
        free(buf);
        if (rc != 0)
            return rc;
    }
    char folder[PATH_MAX];
    snprintf(folder, sizeof folder, "%.*s", (int)(base_name(abs) - abs - 1), abs);
    ledger_fill_item(out, abs, folder[0] ? folder : "/", &sb, clock_now(), hash);
    return ledger_record(store, out, &fp, false, fresh, e);
}

int ledger_identify(struct store *store, const char *path, struct intake_item *out, bool *fresh,
                    struct tikd_err *e)
{
    return identify(store, path, NULL, NULL, out, fresh, e);
}

int ledger_identify_hashed(struct store *s, const char *path, const char *hash,
                           const struct ledger_fp *fp, struct intake_item *out, bool *fresh,
                           struct tikd_err *e)
{
    return identify(s, path, hash, fp, out, fresh, e);
}

/* ---- hashing on the loop ------------------------------------------------------------ */

#define SLICE_READS 8 /* reads per loop turn: at most 8 MiB between events */

struct ledger_hashing {
    struct ev_loop *loop;
    ev_timer slice;
    int fd;
    char path[PATH_MAX];
    struct ledger_fp fp;
    EVP_MD_CTX *md;
    unsigned char *buf;
    ledger_hashed_fn done;
    void *ud;
};

static void hashing_free(struct ledger_hashing *h)
{
    ev_timer_stop(h->loop, &h->slice);
    if (h->fd >= 0)
        close(h->fd);
    EVP_MD_CTX_free(h->md);
    free(h->buf);
    free(h);
}

static void hashing_end(struct ledger_hashing *h, int rc, const char *hash, const char *why)
{
    ledger_hashed_fn done = h->done;
    void *ud = h->ud;
    struct ledger_fp fp = h->fp;
    hashing_free(h);
    done(ud, rc, hash, &fp, why);
}

static void on_slice(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)loop;
    (void)revents;
    struct ledger_hashing *h = w->data;
    char why[PATH_MAX + 200];
    for (int i = 0; i < SLICE_READS; i++) {
        ssize_t n = read(h->fd, h->buf, BUF_SIZE);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            snprintf(why, sizeof why, "%s: cannot read: %s", h->path, strerror(errno));
            hashing_end(h, TIKD_EIO, NULL, why);
            return;
        }
        if (n > 0) {
            EVP_DigestUpdate(h->md, h->buf, (size_t)n);
            continue;
        }
        struct stat st;
        struct ledger_fp now;
        unsigned char d[32];
        unsigned int dl = 0;
        char hash[65];
        if (fstat(h->fd, &st) != 0 || (now = ledger_fp_of(&st), !ledger_fp_eq(&now, &h->fp))) {
            snprintf(why, sizeof why, "%s changed while it was read; post it once it is complete",
                     h->path);
            hashing_end(h, TIKD_EINVAL, NULL, why);
            return;
        }
        if (EVP_DigestFinal_ex(h->md, d, &dl) != 1 || dl != sizeof d) {
            hashing_end(h, TIKD_EIO, NULL, "SHA-256 failed");
            return;
        }
        codec_hex(d, sizeof d, hash);
        hashing_end(h, 0, hash, NULL);
        return;
    }
}

int ledger_hash_start(struct ev_loop *loop, const char *path, ledger_hashed_fn done, void *ud,
                      struct ledger_hashing **out, struct tikd_err *e)
{
    *out = NULL;
    struct ledger_hashing *h = calloc(1, sizeof *h);
    if (!h)
        return tikd_fail(e, TIKD_ENOMEM, "out of memory");
    h->loop = loop;
    h->done = done;
    h->ud = ud;
    snprintf(h->path, sizeof h->path, "%s", path);
    struct stat st;
    h->fd = fileio_open_read(path, &st, e);
    if (h->fd < 0) {
        int rc = h->fd;
        free(h);
        return rc;
    }
    h->fp = ledger_fp_of(&st);
    h->buf = malloc(BUF_SIZE);
    h->md = EVP_MD_CTX_new();
    if (!S_ISREG(st.st_mode) || !h->buf || !h->md ||
        EVP_DigestInit_ex(h->md, EVP_sha256(), NULL) != 1) {
        int rc = !S_ISREG(st.st_mode) ? tikd_fail(e, TIKD_EINVAL, "%s is not a regular file", path)
                                      : tikd_fail(e, TIKD_ENOMEM, "out of memory hashing %s", path);
        hashing_free(h);
        return rc;
    }
    ev_timer_init(&h->slice, on_slice, 0., 0.001);
    h->slice.data = h;
    ev_timer_start(loop, &h->slice);
    *out = h;
    return 0;
}

void ledger_hash_cancel(struct ledger_hashing *h)
{
    if (h)
        hashing_free(h);
}
