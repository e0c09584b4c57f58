/* intake.c - watched media folders: settling and hashing (see intake.h);
 * what content is known is the media ledger's (core/ledger).
 *
 * A candidate's fingerprint (size, mtime, ctime, inode, device) is checked
 * again `settle` seconds after its last change; the settling list is in due
 * order (every wait is equally long), so one ev_timer on its head serves all.
 * The hasher checks the fingerprint again after the last byte. */
#include "intake.h"
#include "media.h"
#include "fileio.h"
#include "clock.h"
#include "ledger.h"
#include "codec.h"
#include "log.h"
#include "watch.h"

#include <dirent.h>
#include <errno.h>
#include <ev.h>
#include <fcntl.h>
#include <fnmatch.h>
#include <jansson.h>
#include <limits.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#define BUF_SIZE    (1u << 20) /* one read */
#define SLICE_READS 8          /* reads per loop turn: at most 8 MiB hashed between events */
#define MIN_RECHECK 0.001      /* seconds; settle 0 must still not spin on a growing file */

enum cstate { C_SETTLING, C_QUEUED, C_HASHING };

struct cand {
    char *path;
    uint64_t h;
    int folder;
    enum cstate st;
    struct ledger_fp fp;
    double first_seen; /* clock_now() */
    double due;        /* ev_now() based */
    struct cand *prev, *next;
};

struct clist {
    struct cand *head, *tail;
};

struct folder {
    char *path;
    char *pattern; /* NULL: the default extensions */
};

/* A hand-off in flight: its item is taken when it ends complete. */
struct intake_handoff {
    struct intake *in; /* NULL once the intake is freed */
    struct store *store;
    uint64_t failures; /* store_write_failures() when it began */
    char hash[65];
    char *path;
    struct ledger_fp fp; /* the file as it was handed over */
    struct intake_handoff *prev, *next;
};

struct intake {
    struct ev_loop *loop;
    struct store *store;
    double settle;
    intake_fn fn;
    void *ud;
    struct watch *w;
    struct folder *folders;
    int nfolders;
    struct cand **map; /* open addressing by path, linear probing */
    size_t mapcap, mapn;
    struct clist settling, queued;
    struct cand *cur;          /* being hashed */
    struct cand *probing;      /* hashed; the media probe reads it before it is taken */
    struct media_probe *probe; /* ... this one */
    char probe_hash[65];
    int fd;
    EVP_MD_CTX *md;
    ev_timer timer;
    ev_timer slice; /* hashing, a slice per loop turn (a timer: idle watchers starve
                       while anything else is pending) */
    unsigned char *buf;
    struct intake_item item;
    struct intake_handoff *handoffs; /* in flight */
    ev_timer retry;                  /* a scan for what an incomplete hand-off left */
};

static const char *const default_exts[] = {".mp4", ".mov", ".webm", ".jpg", ".jpeg", ".webp"};

static uint64_t fnv(const char *s)
{
    uint64_t h = 1469598103934665603ULL;
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211ULL;
    return h;
}

static bool ends_with(const char *s, const char *suffix)
{
    size_t a = strlen(s), b = strlen(suffix);
    return a > b && strcasecmp(s + a - b, suffix) == 0;
}

bool intake_takes(const char *name, const char *pattern)
{
    size_t n = strlen(name);
    if (n == 0 || name[0] == '.' || name[n - 1] == '~' || ends_with(name, ".part") ||
        ends_with(name, ".tmp") || ends_with(name, ".json"))
        return false;
    if (pattern)
        return fnmatch(pattern, name, FNM_CASEFOLD) == 0;
    for (size_t i = 0; i < sizeof default_exts / sizeof default_exts[0]; i++)
        if (ends_with(name, default_exts[i]))
            return true;
    return false;
}

static bool wanted(const struct folder *f, const char *name)
{
    return intake_takes(name, f->pattern);
}

static const char *base_name(const char *path)
{
    const char *s = strrchr(path, '/');
    return s ? s + 1 : path;
}

/* ---- candidates: a map by path, and two lists ------------------------- */

static size_t map_slot(const struct intake *in, const char *path, uint64_t h)
{
    size_t mask = in->mapcap - 1, i = h & mask;
    while (in->map[i] && !(in->map[i]->h == h && strcmp(in->map[i]->path, path) == 0))
        i = (i + 1) & mask;
    return i;
}

static struct cand *map_get(const struct intake *in, const char *path)
{
    return in->mapcap ? in->map[map_slot(in, path, fnv(path))] : NULL;
}

static int map_put(struct intake *in, struct cand *c)
{
    if ((in->mapn + 1) * 2 > in->mapcap) {
        size_t cap = in->mapcap ? in->mapcap * 2 : 64;
        struct cand **old = in->map;
        size_t oldcap = in->mapcap;
        in->map = calloc(cap, sizeof *in->map);
        if (!in->map) {
            in->map = old;
            return TIKD_ENOMEM;
        }
        in->mapcap = cap;
        for (size_t i = 0; i < oldcap; i++)
            if (old[i])
                in->map[map_slot(in, old[i]->path, old[i]->h)] = old[i];
        free(old);
    }
    in->map[map_slot(in, c->path, c->h)] = c;
    in->mapn++;
    return 0;
}

/* Remove c, shifting later entries of its probe run back (no tombstones). */
static void map_del(struct intake *in, struct cand *c)
{
    size_t mask = in->mapcap - 1, i = map_slot(in, c->path, c->h), j = i;
    if (in->map[i] != c)
        return;
    for (;;) {
        j = (j + 1) & mask;
        if (!in->map[j])
            break;
        size_t k = in->map[j]->h & mask; /* where it wants to be */
        if (i <= j ? (i < k && k <= j) : (i < k || k <= j))
            continue;
        in->map[i] = in->map[j];
        i = j;
    }
    in->map[i] = NULL;
    in->mapn--;
}

static void list_append(struct clist *l, struct cand *c)
{
    c->next = NULL;
    c->prev = l->tail;
    if (l->tail)
        l->tail->next = c;
    else
        l->head = c;
    l->tail = c;
}

static void list_unlink(struct clist *l, struct cand *c)
{
    if (c->prev)
        c->prev->next = c->next;
    else
        l->head = c->next;
    if (c->next)
        c->next->prev = c->prev;
    else
        l->tail = c->prev;
    c->prev = c->next = NULL;
}

/* c is in no list any more: forget it. */
static void forget(struct intake *in, struct cand *c)
{
    map_del(in, c);
    free(c->path);
    free(c);
}

/* Is a hand-off of this very file (path and fingerprint: a file written
 * anew meanwhile is new) in flight? (A few at a time: a rule's calls end
 * within their budgets.) */
static bool handing(const struct intake *in, const char *path, const struct ledger_fp *fp)
{
    for (const struct intake_handoff *h = in->handoffs; h; h = h->next)
        if (strcmp(h->path, path) == 0 && ledger_fp_eq(&h->fp, fp))
            return true;
    return false;
}

/* Is content hash being handed over (from another path) right now? */
static bool handing_hash(const struct intake *in, const char *hash)
{
    for (const struct intake_handoff *h = in->handoffs; h; h = h->next)
        if (strcmp(h->hash, hash) == 0)
            return true;
    return false;
}

static void arm_timer(struct intake *in)
{
    ev_timer_stop(in->loop, &in->timer);
    if (!in->settling.head)
        return;
    double after = in->settling.head->due - ev_now(in->loop);
    ev_timer_set(&in->timer, after > 0 ? after : 0., 0.);
    ev_timer_start(in->loop, &in->timer);
}

static void settle_again(struct intake *in, struct cand *c, const struct ledger_fp *fp)
{
    c->fp = *fp;
    c->st = C_SETTLING;
    c->due = ev_now(in->loop) + (in->settle > MIN_RECHECK ? in->settle : MIN_RECHECK);
    list_append(&in->settling, c);
}

/* ---- the watched path: settle, hash, take ---------------------------- */

/* What consider() made of a path. */
enum seen { SEEN_IGNORED, SEEN_KNOWN, SEEN_PENDING };

static enum seen consider(struct intake *in, int folder, const char *path)
{
    if (!wanted(&in->folders[folder], base_name(path)))
        return SEEN_IGNORED;
    if (strlen(path) >= sizeof in->item.path) {
        TLOG(TLOG_WARN, "intake.skipped", LSTR("path", path), LSTR("reason", "path too long"));
        return SEEN_IGNORED;
    }
    struct cand *c = map_get(in, path);
    struct stat st;
    if (stat(path, &st) != 0 || !S_ISREG(st.st_mode)) {
        if (c && c->st == C_SETTLING) {
            list_unlink(&in->settling, c);
            forget(in, c);
            arm_timer(in);
        }
        return SEEN_IGNORED;
    }
    struct ledger_fp fp = ledger_fp_of(&st);
    if (c) {
        /* still settling and changed: wait again; queued or being hashed:
         * the hasher's own check after the last byte sees any change */
        if (c->st == C_SETTLING && !ledger_fp_eq(&c->fp, &fp)) {
            list_unlink(&in->settling, c);
            settle_again(in, c, &fp);
            arm_timer(in);
        }
        return SEEN_PENDING;
    }
    if (ledger_taken(in->store, path, &fp) || handing(in, path, &fp))
        return SEEN_KNOWN;
    c = calloc(1, sizeof *c);
    char *copy = strdup(path);
    if (c) {
        c->path = copy;
        c->h = fnv(path);
    }
    if (!c || !copy || map_put(in, c) != 0) {
        free(copy);
        free(c);
        TLOG(TLOG_ERROR, "intake.skipped", LSTR("path", path), LSTR("reason", "out of memory"));
        return SEEN_IGNORED;
    }
    c->folder = folder;
    c->first_seen = clock_now();
    c->fp = fp;
    c->st = C_SETTLING;
    c->due = ev_now(in->loop) + in->settle;
    list_append(&in->settling, c);
    arm_timer(in);
    TLOG(TLOG_DEBUG, "intake.settling", LSTR("path", path), LDBL("due_in", in->settle));
    return SEEN_PENDING;
}

static void on_timer(struct ev_loop *loop, ev_timer *t, int revents)
{
    struct intake *in = (struct intake *)((char *)t - offsetof(struct intake, timer));
    double now = ev_now(loop) + 1e-9;
    struct cand *c;
    while ((c = in->settling.head) && c->due <= now) {
        list_unlink(&in->settling, c);
        struct stat st;
        if (stat(c->path, &st) != 0 || !S_ISREG(st.st_mode)) {
            forget(in, c);
            continue;
        }
        struct ledger_fp fp = ledger_fp_of(&st);
        if (!ledger_fp_eq(&fp, &c->fp)) {
            settle_again(in, c, &fp); /* still growing */
            continue;
        }
        if (ledger_taken(in->store, c->path, &fp) || handing(in, c->path, &fp)) {
            forget(in, c);
            continue;
        }
        c->st = C_QUEUED;
        list_append(&in->queued, c);
    }
    if (in->queued.head && !ev_is_active(&in->slice)) {
        ev_timer_set(&in->slice, 0., 0.);
        ev_timer_start(loop, &in->slice);
    }
    arm_timer(in);
}

static void arm_retry(struct intake *in)
{
    if (!ev_is_active(&in->retry)) {
        ev_timer_set(&in->retry, INTAKE_RETRY, 0.);
        ev_timer_start(in->loop, &in->retry);
    }
}

static void on_retry(struct ev_loop *loop, ev_timer *t, int revents)
{
    (void)loop;
    (void)revents;
    intake_scan((struct intake *)((char *)t - offsetof(struct intake, retry)));
}

void intake_handoff_end(struct intake_handoff *h, bool complete)
{
    struct tikd_err e = {0};
    if (complete && store_write_failures(h->store) != h->failures) {
        complete = false;
        snprintf(e.msg, sizeof e.msg, "a store write failed while it was handed over");
    }
    if (complete && ledger_handed(h->store, h->hash, &e) != 0)
        complete = false;
    if (!complete) {
        TLOG(TLOG_WARN, "intake.offer_again", LSTR("path", h->path), LSTR("hash", h->hash),
             LSTR("reason", e.msg[0] ? e.msg : "the hand-off was cut short"),
             LDBL("in", h->in ? INTAKE_RETRY : 0));
        if (h->in)
            arm_retry(h->in);
    }
    if (h->in) {
        if (h->prev)
            h->prev->next = h->next;
        else
            h->in->handoffs = h->next;
        if (h->next)
            h->next->prev = h->prev;
    }
    free(h->path);
    free(h);
}

static void take(struct intake *in, struct cand *c, const char *hash, const struct stat *st)
{
    struct intake_item *it = &in->item;
    struct ledger_fp fp = c->fp;
    ledger_fill_item(it, c->path, in->folders[c->folder].path, st, c->first_seen, hash);
    forget(in, c); /* before the callback, which may scan */
    struct tikd_err e = {0};
    bool fresh = false;
    struct intake_handoff *h = calloc(1, sizeof *h);
    if (!h || !(h->path = strdup(it->path))) {
        free(h);
        TLOG(TLOG_ERROR, "intake.skipped", LSTR("path", it->path), LSTR("reason", "out of memory"));
        arm_retry(in);
        return;
    }
    int rc = ledger_record(in->store, it, &fp, true, &fresh, &e);
    /* the record is durable before the rules hear of the drop: a stop from
     * here on finds it recorded and not handed, and offers it again */
    if (rc == 0 && fresh)
        rc = store_sync(in->store, &e);
    if (rc != 0) {
        TLOG(TLOG_ERROR, "intake.store", LSTR("path", it->path), LSTR("reason", e.msg));
        arm_retry(in);
    }
    if (rc == 0 && fresh && handing_hash(in, it->hash)) {
        /* a copy of content whose offer is under way: that one offer is
         * enough (if it ends incomplete, a scan finds this copy too) */
        TLOG(TLOG_INFO, "intake.duplicate", LSTR("hash", it->hash), LSTR("path", it->path),
             LSTR("first_path", "(being handed over)"));
        fresh = false;
    }
    if (rc != 0 || !fresh) {
        free(h->path);
        free(h);
        return;
    }
    h->in = in;
    h->store = in->store;
    h->fp = fp;
    h->failures = store_write_failures(in->store);
    memcpy(h->hash, it->hash, sizeof h->hash);
    h->next = in->handoffs;
    if (in->handoffs)
        in->handoffs->prev = h;
    in->handoffs = h;
    in->fn(in->ud, it, h);
}

static void arm_slice(struct intake *in);

/* The probe has read the video (its answer waits in the probe's cache for
 * the rules' tikd.upload.post, so planning it needs no wait between this
 * record and the plan); the file is taken if it is still what was hashed. */
static void probed(void *ud, const struct media_info *mi, const struct tikd_err *pe)
{
    (void)mi;
    (void)pe; /* a refusal is the planner's to say, with the rule */
    struct intake *in = ud;
    struct cand *c = in->probing;
    in->probe = NULL;
    in->probing = NULL;
    struct stat b;
    if (stat(c->path, &b) != 0 || !S_ISREG(b.st_mode)) {
        forget(in, c);
    } else {
        struct ledger_fp fp = ledger_fp_of(&b);
        if (!ledger_fp_eq(&fp, &c->fp)) {
            TLOG(TLOG_DEBUG, "intake.changed", LSTR("path", c->path));
            settle_again(in, c, &fp);
            arm_timer(in);
        } else {
            take(in, c, in->probe_hash, &b);
        }
    }
    arm_slice(in);
}

static bool is_video_name(const char *name)
{
    return ends_with(name, ".mp4") || ends_with(name, ".mov") || ends_with(name, ".webm") ||
           ends_with(name, ".m4v");
}

static void hash_done(struct intake *in)
{
    struct cand *c = in->cur;
    struct stat a, b;
    int fa = fstat(in->fd, &a);
    close(in->fd);
    in->fd = -1;
    in->cur = NULL;
    unsigned char d[32];
    unsigned int dl = 0;
    int ok = EVP_DigestFinal_ex(in->md, d, &dl) == 1 && dl == 32;
    if (stat(c->path, &b) != 0 || !S_ISREG(b.st_mode)) {
        forget(in, c);
        return;
    }
    struct ledger_fp fa_fp = ledger_fp_of(&a), fb_fp = ledger_fp_of(&b);
    if (fa != 0 || !ok || !ledger_fp_eq(&fa_fp, &c->fp) || !ledger_fp_eq(&fb_fp, &c->fp)) {
        TLOG(TLOG_DEBUG, "intake.changed", LSTR("path", c->path));
        settle_again(in, c, &fb_fp);
        arm_timer(in);
        return;
    }
    char h[65];
    codec_hex(d, 32, h);
    struct tikd_err e = {0};
    if (is_video_name(c->path) &&
        (in->probe = media_probe_start(in->loop, c->path, probed, in, &e))) {
        in->probing = c; /* still C_HASHING: no event forgets it meanwhile */
        memcpy(in->probe_hash, h, sizeof in->probe_hash);
        return;
    }
    take(in, c, h, &b);
}

static void slice_work(struct intake *in)
{
    if (in->probing)
        return; /* one file at a time: the next after the probe's answer */
    if (!in->cur) {
        struct cand *c = in->queued.head;
        if (!c)
            return;
        list_unlink(&in->queued, c);
        c->st = C_HASHING;
        struct stat st;
        struct tikd_err e = {0};
        int fd = fileio_open_regular(c->path, &st, &e); /* a FIFO swapped in never hangs */
        if (fd < 0 || EVP_DigestInit_ex(in->md, EVP_sha256(), NULL) != 1) {
            if (fd < 0 && fd != TIKD_ENOTFOUND)
                TLOG(TLOG_WARN, "intake.unreadable", LSTR("path", c->path), LSTR("reason", e.msg));
            if (fd >= 0)
                close(fd);
            forget(in, c);
            return;
        }
        in->cur = c;
        in->fd = fd;
    }
    for (int i = 0; i < SLICE_READS;) {
        ssize_t n = read(in->fd, in->buf, BUF_SIZE);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            TLOG(TLOG_WARN, "intake.unreadable", LSTR("path", in->cur->path),
                 LSTR("reason", strerror(errno)));
            close(in->fd);
            in->fd = -1;
            forget(in, in->cur);
            in->cur = NULL;
            return;
        }
        if (n == 0) {
            hash_done(in);
            return;
        }
        EVP_DigestUpdate(in->md, in->buf, (size_t)n);
        i++;
    }
}

static void on_slice(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)revents;
    struct intake *in = (struct intake *)((char *)w - offsetof(struct intake, slice));
    slice_work(in);
    arm_slice(in);
}

/* More to read: the next loop turn (not while the probe reads a file: its
 * answer arms this again). */
static void arm_slice(struct intake *in)
{
    if (!in->probing && (in->cur || in->queued.head) && !ev_is_active(&in->slice)) {
        ev_timer_set(&in->slice, 0., 0.);
        ev_timer_start(in->loop, &in->slice);
    }
}

static int folder_of(struct intake *in, const char *path)
{
    const char *slash = strrchr(path, '/');
    size_t n = slash ? (size_t)(slash - path) : 0;
    for (int i = 0; i < in->nfolders; i++)
        if (strlen(in->folders[i].path) == n && memcmp(in->folders[i].path, path, n) == 0)
            return i;
    return -1;
}

static void on_watch(void *ud, const char *path, enum watch_event ev)
{
    struct intake *in = ud;
    TLOG(TLOG_DEBUG, "intake.event", LSTR("path", path), LINT("ev", ev));
    if (ev == WATCH_RESCAN) {
        intake_scan(in);
        return;
    }
    int f = folder_of(in, path);
    if (f >= 0)
        consider(in, f, path);
}

int intake_scan(struct intake *in)
{
    int rc = 0;
    long counts[3] = {0};
    ev_now_update(in->loop); /* at start the loop's time may be stale: settle from now */
    for (int f = 0; f < in->nfolders; f++) {
        const char *dir = in->folders[f].path;
        DIR *d = opendir(dir);
        if (!d) {
            TLOG(TLOG_WARN, "intake.scan", LSTR("folder", dir), LSTR("reason", strerror(errno)));
            rc = TIKD_EIO;
            continue;
        }
        struct dirent *de;
        char p[PATH_MAX];
        while ((de = readdir(d)) != NULL) {
            if (de->d_type == DT_DIR || de->d_name[0] == '.')
                continue;
            if (snprintf(p, sizeof p, "%s/%s", dir, de->d_name) < (int)sizeof p)
                counts[consider(in, f, p)]++;
        }
        closedir(d);
    }
    /* known files are skipped unread; pending ones settle, then are taken */
    TLOG(TLOG_INFO, "intake.scanned", LINT("folders", in->nfolders),
         LINT("known", counts[SEEN_KNOWN]), LINT("pending", counts[SEEN_PENDING]));
    return rc;
}

int intake_offer(struct intake *in, const char *path, struct intake_item *out, bool *fresh,
                 struct tikd_err *e)
{
    return ledger_identify(in->store, path, out, fresh, e);
}

/* ---- life cycle ------------------------------------------------------- */

int intake_add_folder(struct intake *in, const char *dir, const char *pattern, struct tikd_err *e)
{
    char abs[PATH_MAX];
    if (!realpath(dir, abs)) {
        if (errno == ENOENT)
            return tikd_fail(e, TIKD_ENOTFOUND, "intake: folder %s does not exist", dir);
        if (errno == ENOTDIR)
            return tikd_fail(e, TIKD_EINVAL, "intake: %s is not a directory", dir);
        return tikd_fail(e, TIKD_EIO, "intake: cannot read folder %s: %s", dir, strerror(errno));
    }
    struct stat st;
    if (stat(abs, &st) != 0)
        return tikd_fail(e, TIKD_EIO, "intake: cannot read folder %s: %s", dir, strerror(errno));
    if (!S_ISDIR(st.st_mode))
        return tikd_fail(e, TIKD_EINVAL, "intake: %s is not a directory", dir);
    DIR *d = opendir(abs);
    if (!d)
        return tikd_fail(e, TIKD_EIO, "intake: cannot read folder %s: %s", dir, strerror(errno));
    closedir(d);
    if (strlen(abs) >= sizeof in->item.folder)
        return tikd_fail(e, TIKD_EINVAL, "intake: folder %s: path too long", dir);
    if (pattern && !*pattern)
        return tikd_fail(e, TIKD_EINVAL, "intake: folder %s: empty pattern", dir);
    for (int i = 0; i < in->nfolders; i++)
        if (strcmp(in->folders[i].path, abs) == 0)
            return tikd_fail(e, TIKD_EEXIST, "intake: folder %s is already watched", abs);
    struct folder *fs = realloc(in->folders, (size_t)(in->nfolders + 1) * sizeof *fs);
    if (!fs)
        return tikd_fail(e, TIKD_ENOMEM, "intake: out of memory");
    in->folders = fs;
    struct folder f = {strdup(abs), pattern ? strdup(pattern) : NULL};
    if (!f.path || (pattern && !f.pattern)) {
        free(f.path);
        free(f.pattern);
        return tikd_fail(e, TIKD_ENOMEM, "intake: out of memory");
    }
    int rc = watch_add(in->w, abs, false, e);
    if (rc != 0) {
        free(f.path);
        free(f.pattern);
        return rc;
    }
    in->folders[in->nfolders++] = f;
    return 0;
}

int intake_new(struct intake **out, struct ev_loop *loop, struct store *s, double settle,
               intake_fn fn, void *ud, struct tikd_err *e)
{
    *out = NULL;
    if (!loop || !s || !fn || !(settle >= 0))
        return tikd_fail(e, TIKD_EINVAL,
                         "intake: a loop, a store, a callback and settle >= 0 needed");
    struct intake *in = calloc(1, sizeof *in);
    if (!in)
        return tikd_fail(e, TIKD_ENOMEM, "intake: out of memory");
    in->loop = loop;
    in->store = s;
    in->settle = settle;
    in->fn = fn;
    in->ud = ud;
    in->fd = -1;
    in->buf = malloc(BUF_SIZE);
    in->md = EVP_MD_CTX_new();
    if (!in->buf || !in->md) {
        intake_free(in);
        return tikd_fail(e, TIKD_ENOMEM, "intake: out of memory");
    }
    /* the watcher only coalesces bursts; settling is intake's own check */
    double debounce = settle / 4 < 0.01 ? 0.01 : settle / 4 > 0.5 ? 0.5 : settle / 4;
    int rc = watch_new(&in->w, loop, debounce, on_watch, in, e);
    if (rc != 0) {
        intake_free(in);
        return rc;
    }
    ev_init(&in->timer, on_timer);
    ev_init(&in->slice, on_slice);
    ev_init(&in->retry, on_retry);
    *out = in;
    return 0;
}

void intake_free(struct intake *in)
{
    if (!in)
        return;
    watch_free(in->w);
    media_probe_cancel(in->probe);
    if (in->loop) {
        ev_timer_stop(in->loop, &in->timer);
        ev_timer_stop(in->loop, &in->slice);
        ev_timer_stop(in->loop, &in->retry);
    }
    for (struct intake_handoff *h = in->handoffs; h; h = h->next)
        h->in = NULL; /* ending later, offered again at the next start if incomplete */
    if (in->fd >= 0)
        close(in->fd);
    for (size_t i = 0; i < in->mapcap; i++) {
        if (in->map[i]) {
            free(in->map[i]->path);
            free(in->map[i]);
        }
    }
    free(in->map);
    for (int i = 0; i < in->nfolders; i++) {
        free(in->folders[i].path);
        free(in->folders[i].pattern);
    }
    free(in->folders);
    EVP_MD_CTX_free(in->md);
    free(in->buf);
    free(in);
}
