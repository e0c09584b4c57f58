/* doctor.c - the compliance check (see doctor.h). */
#include "doctor.h"
#include "account.h"
#include "audit.h"
#include "vault.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <openssl/crypto.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define WEEK (7 * 86400.0)
#define WIN  16 /* bytes of each secret the scan hashes */

const char *doctor_level_name(enum doc_level l)
{
    return l == DOC_OK ? "ok" : l == DOC_WARN ? "warn" : "FAIL";
}

static void add(struct doc_report *r, const char *check, enum doc_level level, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static void add(struct doc_report *r, const char *check, enum doc_level level, const char *fmt, ...)
{
    if (r->n == r->cap) {
        size_t nc = r->cap ? r->cap * 2 : 16;
        struct doc_finding *g = realloc(r->v, nc * sizeof *g);
        if (!g)
            return;
        r->v = g;
        r->cap = nc;
    }
    struct doc_finding *f = &r->v[r->n++];
    snprintf(f->check, sizeof f->check, "%s", check);
    f->level = level;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(f->detail, sizeof f->detail, fmt, ap);
    va_end(ap);
    r->fails += level == DOC_FAIL;
    r->warns += level == DOC_WARN;
}

/* ---- accounts and tokens ------------------------------------------------------------- */

struct acct_scan {
    double now;
    char reauth[400], revoked[400], ending[400], ended[400];
    int n;
};

static void append_name(char *list, size_t n, const char *name)
{
    size_t used = strlen(list);
    if (used + strlen(name) + 3 < n)
        snprintf(list + used, n - used, "%s%s", used ? ", " : "", name);
    else if (used + 5 < n && !strstr(list, "..."))
        snprintf(list + used, n - used, ", ...");
}

static int acct_one(const struct account *a, void *ctx)
{
    struct acct_scan *x = ctx;
    x->n++;
    if (a->state == ACCT_NEEDS_REAUTH)
        append_name(x->reauth, sizeof x->reauth, a->name);
    else if (a->state == ACCT_REVOKED)
        append_name(x->revoked, sizeof x->revoked, a->name);
    else if (a->state == ACCT_ACTIVE && a->refresh_expires_at > 0) {
        if (a->refresh_expires_at <= x->now)
            append_name(x->ended, sizeof x->ended, a->name);
        else if (a->refresh_expires_at - x->now < WEEK)
            append_name(x->ending, sizeof x->ending, a->name);
    }
    return 0;
}

static int acct_txn(struct store_txn *t, void *ctx)
{
    return account_foreach(t, acct_one, ctx);
}

static void check_accounts(const struct doc_input *in, struct doc_report *r)
{
    struct acct_scan x = {.now = in->now};
    if (store_read(in->store, acct_txn, &x, NULL) != 0) {
        add(r, "accounts.reauth", DOC_FAIL, "the accounts could not be read");
        return;
    }
    if (x.reauth[0])
        add(r, "accounts.reauth", DOC_FAIL,
            "needs reconnecting: %s (tikd account reauth NAME, or the dashboard's Reconnect)",
            x.reauth);
    else if (x.revoked[0])
        add(r, "accounts.reauth", DOC_WARN, "revoked by the creator: %s", x.revoked);
    else
        add(r, "accounts.reauth", DOC_OK, "%d account%s, none needs reconnecting", x.n,
            x.n == 1 ? "" : "s");
    if (x.ended[0])
        add(r, "tokens.expiry", DOC_FAIL, "refresh token ended: %s: reconnect them", x.ended);
    else if (x.ending[0])
        add(r, "tokens.expiry", DOC_WARN,
            "refresh token ends within a week: %s: reconnect them before it does", x.ending);
    else
        add(r, "tokens.expiry", DOC_OK, "no refresh token ends within a week");
}

static void check_audit(const struct doc_input *in, struct doc_report *r)
{
    uint64_t n = 0;
    struct tikd_err e = {0};
    if (audit_verify(in->store, &n, &e) != 0)
        add(r, "audit.chain", DOC_FAIL, "%s", e.msg);
    else
        add(r, "audit.chain", DOC_OK, "%llu records, the hash chain is intact",
            (unsigned long long)n);
}

/* ---- plaintext secrets ------------------------------------------------------------------- */

struct secret {
    char *p;
    size_t n;
    const char *kind; /* "an access token", ... */
    char owner[80];
    uint64_t h;
};

struct scan {
    struct secret *s;
    size_t n, cap;
    uint64_t *set; /* open addressing: the prefix hashes (0: empty) */
    size_t setcap;
    uint64_t pow; /* B^(WIN-1) */
    char found[600];
    int hits, unopened, unread;
    char unread_paths[400];
    const char *data_dir;
    unsigned char *buf;
};

#define B 1099511628211ull

static uint64_t hash_win(const unsigned char *p)
{
    uint64_t h = 0;
    for (int i = 0; i < WIN; i++)
        h = h * B + p[i];
    return h | 1; /* never 0, the empty mark */
}

static void keep(struct scan *x, char *p, size_t n, const char *kind, const char *owner)
{
    if (n < WIN || x->n == x->cap) { /* too short to find safely (none of tikd's are) */
        vault_wipe_free(p, n);
        return;
    }
    struct secret *s = &x->s[x->n++];
    s->p = p;
    s->n = n;
    s->kind = kind;
    snprintf(s->owner, sizeof s->owner, "%s", owner);
    s->h = hash_win((const unsigned char *)p);
}

struct gather_txn_ctx {
    struct scan *x;
    struct vault *v;
    struct account *accts;
    size_t n, cap;
};

static int list_acct(const struct account *a, void *ctx)
{
    struct gather_txn_ctx *g = ctx;
    if (g->n == g->cap) {
        size_t nc = g->cap ? g->cap * 2 : 64;
        struct account *m = realloc(g->accts, nc * sizeof *m);
        if (!m)
            return TIKD_ENOMEM;
        g->accts = m;
        g->cap = nc;
    }
    g->accts[g->n++] = *a;
    return 0;
}

static int gather_txn(struct store_txn *t, void *ctx)
{
    struct gather_txn_ctx *g = ctx;
    int rc = account_foreach(t, list_acct, g);
    if (rc != 0)
        return rc;
    static const char *const fields[][2] = {{"access_token", "an access token"},
                                            {"refresh_token", "a refresh token"}};
    for (size_t i = 0; i < g->n; i++) {
        for (size_t f = 0; f < 2; f++) {
            char *p = NULL;
            size_t n = 0;
            int got = vault_get(g->v, t, g->accts[i].id, fields[f][0], &p, &n, NULL);
            if (got == 0)
                keep(g->x, p, n, fields[f][1], g->accts[i].name);
            else if (got != TIKD_ENOTFOUND)
                g->x->unopened++;
        }
    }
    return 0;
}

static bool in_set(const struct scan *x, uint64_t h)
{
    for (size_t i = h & (x->setcap - 1);; i = (i + 1) & (x->setcap - 1)) {
        if (x->set[i] == h)
            return true;
        if (!x->set[i])
            return false;
    }
}

static void note_hit(struct scan *x, const char *path, const struct secret *s)
{
    x->hits++;
    char one[300];
    snprintf(one, sizeof one, "%s of %s in %s", s->kind, s->owner, path);
    if (!strstr(x->found, one))
        append_name(x->found, sizeof x->found, one);
}

/* A hash hit at offset off of fd: which secret, byte for byte? */
static void confirm(struct scan *x, int fd, off_t off, uint64_t h, const char *path)
{
    char cmp[4096];
    for (size_t i = 0; i < x->n; i++) {
        const struct secret *s = &x->s[i];
        if (s->h != h || s->n > sizeof cmp)
            continue;
        ssize_t got = pread(fd, cmp, s->n, off);
        if (got == (ssize_t)s->n && CRYPTO_memcmp(cmp, s->p, s->n) == 0)
            note_hit(x, path, s);
    }
    OPENSSL_cleanse(cmp, sizeof cmp);
}

#define SCAN_BUF (1u << 20)

/* One pass over the file: a rolling hash of every WIN-byte window. */
static void scan_file(struct scan *x, const char *path, bool named)
{
    /* in the data directory a link is not followed (it may point anywhere);
     * a log the operator named is read wherever it is */
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK | (named ? 0 : O_NOFOLLOW));
    struct stat st;
    if (fd < 0 || fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        if (fd >= 0)
            close(fd);
        if (named || fd < 0) {
            x->unread++;
            append_name(x->unread_paths, sizeof x->unread_paths, path);
        }
        return;
    }
    unsigned char win[WIN];
    size_t have = 0;
    uint64_t h = 0;
    off_t pos = 0; /* file offset of the byte after the window */
    for (;;) {
        ssize_t n = read(fd, x->buf, SCAN_BUF);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        for (ssize_t i = 0; i < n; i++) {
            unsigned char c = x->buf[i];
            if (have < WIN) {
                win[have++] = c;
                h = h * B + c;
            } else {
                unsigned char out = win[pos % WIN];
                win[pos % WIN] = c;
                h = (h - out * x->pow) * B + c;
            }
            pos++;
            if (have == WIN && in_set(x, h | 1))
                confirm(x, fd, pos - WIN, h | 1, path);
        }
    }
    close(fd);
}

static struct scan *walking; /* nftw has no user pointer */

static int walk_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)ftw;
    if (flag == FTW_F && S_ISREG(st->st_mode)) {
        scan_file(walking, path, false);
    } else if (flag == FTW_DNR || flag == FTW_NS) { /* not read: said, never passed over */
        walking->unread++;
        append_name(walking->unread_paths, sizeof walking->unread_paths, path);
    }
    return 0;
}

static void check_secrets(const struct doc_input *in, struct doc_report *r)
{
    struct scan x = {.cap = 0};
    struct gather_txn_ctx g = {.x = &x, .v = in->vault};
    x.buf = malloc(SCAN_BUF);
    if (!x.buf) {
        add(r, "secrets.plaintext", DOC_FAIL, "out of memory");
        return;
    }
    /* the secrets: every account's tokens, and the client secret */
    struct acct_scan count = {.now = in->now};
    store_read(in->store, acct_txn, &count, NULL);
    x.cap = 2 * (size_t)count.n + 2;
    x.s = calloc(x.cap, sizeof *x.s);
    if (!x.s) {
        free(x.buf);
        add(r, "secrets.plaintext", DOC_FAIL, "out of memory");
        return;
    }
    if (in->vault)
        store_read(in->store, gather_txn, &g, NULL);
    free(g.accts);
    if (in->cfg->client_secret && *in->cfg->client_secret) {
        size_t n = strlen(in->cfg->client_secret);
        char *p = malloc(n + 1);
        if (p) {
            memcpy(p, in->cfg->client_secret, n + 1);
            keep(&x, p, n, "the client secret", "the app");
        }
    }
    x.pow = 1;
    for (int i = 0; i < WIN - 1; i++)
        x.pow *= B;
    for (x.setcap = 16; x.setcap < 2 * x.n + 2; x.setcap *= 2)
        ;
    x.set = calloc(x.setcap, sizeof *x.set);
    for (size_t i = 0; x.set && i < x.n; i++) {
        size_t j = x.s[i].h & (x.setcap - 1);
        while (x.set[j] && x.set[j] != x.s[i].h)
            j = (j + 1) & (x.setcap - 1);
        x.set[j] = x.s[i].h;
    }
    size_t nsecrets = x.n;
    if (x.set && x.n) {
        walking = &x;
        char dd[PATH_MAX];
        nftw(realpath(in->cfg->data_dir, dd) ? dd : in->cfg->data_dir, walk_one, 16, FTW_PHYS);
        for (size_t i = 0; i < in->nlogs; i++)
            scan_file(&x, in->logs[i], true);
        walking = NULL;
    }
    for (size_t i = 0; i < x.n; i++)
        vault_wipe_free(x.s[i].p, x.s[i].n);
    free(x.s);
    free(x.set);
    OPENSSL_cleanse(x.buf, SCAN_BUF); /* it held the files' bytes: a secret, maybe */
    free(x.buf);
    if (x.hits)
        add(r, "secrets.plaintext", DOC_FAIL, "in plain text: %s", x.found);
    else if (!in->vault)
        add(r, "secrets.plaintext", DOC_WARN,
            "the vault key could not be loaded: tokens not looked for (only the client secret)");
    else if (x.unopened)
        add(r, "secrets.plaintext", DOC_WARN,
            "%d sealed tokens do not open with this key: not looked for", x.unopened);
    else if (x.unread)
        add(r, "secrets.plaintext", DOC_WARN,
            "%d files could not be read and were not looked through: %s", x.unread, x.unread_paths);
    else
        add(r, "secrets.plaintext", DOC_OK,
            "none of %zu secrets in plain text in the data directory%s", nsecrets,
            in->nlogs ? " or the logs" : "");
}

/* ---- files and modes --------------------------------------------------------------------- */

struct modes {
    char bad[500];
    uid_t uid;
};

static struct modes *checking;

static int mode_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)ftw;
    if (flag != FTW_F && flag != FTW_D && flag != FTW_SL)
        return 0;
    char one[300];
    one[0] = '\0';
    if (st->st_uid != checking->uid)
        snprintf(one, sizeof one, "%s is owned by uid %u", path, (unsigned)st->st_uid);
    else if ((st->st_mode & 077) && !S_ISLNK(st->st_mode))
        snprintf(one, sizeof one, "%s is mode %03o", path, (unsigned)(st->st_mode & 0777));
    if (one[0])
        append_name(checking->bad, sizeof checking->bad, one);
    return 0;
}

static void check_modes(const struct doc_input *in, struct doc_report *r)
{
    struct modes m = {.uid = geteuid()};
    checking = &m;
    if (nftw(in->cfg->data_dir, mode_one, 16, FTW_PHYS) != 0)
        append_name(m.bad, sizeof m.bad, "the data directory cannot be read");
    checking = NULL;
    const char *kf = in->cfg->vault_key_file;
    struct stat st;
    if (kf && stat(kf, &st) == 0) {
        char one[300] = "";
        if (st.st_uid != m.uid || (st.st_mode & 077))
            snprintf(one, sizeof one, "the vault key file %s is mode %03o, uid %u", kf,
                     (unsigned)(st.st_mode & 0777), (unsigned)st.st_uid);
        char rk[PATH_MAX], rd[PATH_MAX];
        size_t dl;
        if (!one[0] && realpath(kf, rk) && realpath(in->cfg->data_dir, rd) &&
            strncmp(rk, rd, dl = strlen(rd)) == 0 && rk[dl] == '/')
            snprintf(one, sizeof one,
                     "the vault key file is inside the data directory: a copy of one carries "
                     "the other");
        if (one[0])
            append_name(m.bad, sizeof m.bad, one);
    }
    if (m.bad[0])
        add(r, "files.modes", DOC_FAIL, "%s", m.bad);
    else
        add(r, "files.modes", DOC_OK,
            "the data directory and its files are this user's only; so is the key file");
}

/* ---- addresses -------------------------------------------------------------------------- */

static bool loopback_host(const char *h, size_t n)
{
    return (n == 9 && strncmp(h, "localhost", 9) == 0) || (n >= 4 && strncmp(h, "127.", 4) == 0) ||
           (n == 5 && strncmp(h, "[::1]", 5) == 0);
}

static void check_url(struct doc_report *r, const char *check, const char *url, const char *what,
                      bool needed)
{
    if (!url || !*url) {
        add(r, check, needed ? DOC_WARN : DOC_OK, "%s is not set%s", what,
            needed ? "" : " (not used)");
        return;
    }
    if (strncmp(url, "https://", 8) == 0) {
        add(r, check, DOC_OK, "%s is HTTPS", what);
        return;
    }
    const char *h = strncmp(url, "http://", 7) == 0 ? url + 7 : NULL;
    size_t hn = h ? strcspn(h, ":/") : 0;
    if (h && h[0] == '[')
        hn = strcspn(h, "]") + 1;
    if (h && loopback_host(h, hn))
        add(r, check, DOC_WARN, "%s is plain HTTP on loopback: fine for testing, not for TikTok",
            what);
    else
        add(r, check, DOC_FAIL, "%s is not HTTPS: %.200s", what, url);
}

static void check_addresses(const struct doc_input *in, struct doc_report *r)
{
    const struct tikd_config *c = in->cfg;
    check_url(r, "tiktok.redirect_uri", c->redirect_uri, "the redirect URI", true);
    check_url(r, "tiktok.webhook_url", c->webhook_url, "the webhook URL registered with TikTok",
              false);
    check_url(r, "media.public_url", c->media_public_url, "media.public_url", false);
    char open[300] = "";
    for (size_t i = 0; i < c->admin_listen.n; i++) {
        const char *a = c->admin_listen.v[i];
        size_t hn = a[0] == '[' ? strcspn(a, "]") + 1 : strcspn(a, ":");
        if (strncmp(a, "unix:", 5) != 0 && !loopback_host(a, hn))
            append_name(open, sizeof open, a);
    }
    if (open[0])
        add(r, "admin.listen", DOC_WARN,
            "the admin API listens beyond loopback (%s): bearer tokens cross that network in "
            "plain HTTP unless a TLS proxy is in front",
            open);
    else
        add(r, "admin.listen", DOC_OK, "the admin API is on loopback and its socket only");
}

static void check_audited(const struct doc_input *in, struct doc_report *r)
{
    const struct tikd_config *c = in->cfg;
    int cap = c->limits.l[RL_ACTIVE_USERS].count;
    if (c->tiktok_audited) {
        add(r, "tiktok.audited", DOC_OK, "the app is audited (tiktok.audited = true)");
        return;
    }
    if (cap == 0 || cap > 5)
        add(r, "tiktok.audited", DOC_WARN,
            "the app is not audited, yet limits.active_users is %d: TikTok lets an unaudited "
            "app's posts reach at most 5 creators a day (set it to 5)",
            cap);
    else
        add(r, "tiktok.audited", DOC_WARN,
            "the app is not audited (tiktok.audited = false): TikTok accepts only SELF_ONLY "
            "posts, to private accounts, from at most 5 creators a day; rules that ask for more "
            "are refused at the init");
}

int doctor_run(const struct doc_input *in, struct doc_report *out, struct tikd_err *e)
{
    memset(out, 0, sizeof *out);
    if (!in->store || !in->cfg)
        return tikd_fail(e, TIKD_EINVAL, "doctor: a store and a config are needed");
    out->at = in->now;
    check_accounts(in, out);
    check_audit(in, out);
    check_secrets(in, out);
    check_modes(in, out);
    check_addresses(in, out);
    check_audited(in, out);
    return 0;
}

void doctor_report_free(struct doc_report *r)
{
    free(r->v);
    memset(r, 0, sizeof *r);
}

struct record_ctx {
    const struct doc_report *r;
    const char *actor;
};

/* "a,b" of the checks at level */
static void names_at(const struct doc_report *r, enum doc_level level, char *out, size_t n)
{
    size_t w = 0;
    out[0] = '\0';
    for (size_t i = 0; i < r->n && w + 1 < n; i++)
        if (r->v[i].level == level)
            w += (size_t)snprintf(out + w, n - w, "%s%s", w ? "," : "", r->v[i].check);
    if (!out[0])
        snprintf(out, n, "-");
}

static int record_txn(struct store_txn *t, void *ctx)
{
    struct record_ctx *x = ctx;
    char failed[300], warned[300], detail[700];
    names_at(x->r, DOC_FAIL, failed, sizeof failed);
    names_at(x->r, DOC_WARN, warned, sizeof warned);
    snprintf(detail, sizeof detail, "fails=%d warns=%d failed=%s warned=%s", x->r->fails,
             x->r->warns, failed, warned);
    return audit_append(t, x->actor, "compliance.check", detail);
}

int doctor_record(struct store *s, const struct doc_report *r, const char *actor,
                  struct tikd_err *e)
{
    struct record_ctx x = {r, actor};
    return store_write(s, record_txn, &x, e);
}
