/* vault.c - AES-256-GCM records and named keys (see vault.h).
 *
 * Record layout: "V1" | idlen (1 byte) | key id | nonce (12) | ciphertext |
 * tag (16). A fresh random nonce per seal (OpenSSL's RAND_bytes); GCM's
 * 96-bit nonce is safe for far more seals than a token vault will make. */
#include "vault.h"
#include "log.h"
#include "codec.h"

#include <errno.h>
#include <fcntl.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define KEY_LEN   32
#define NONCE_LEN 12
#define TAG_LEN   16
#define MAX_KEYS  64
#define MAX_ID    32

struct vkey {
    char id[MAX_ID + 1];
    unsigned char k[KEY_LEN];
};

struct vault {
    struct vkey keys[MAX_KEYS];
    int n;            /* keys[n-1] seals */
    char *path;       /* the key file, followed while tikd runs (NULL: the environment's key) */
    struct stat seen; /* the file as last read */
};

static const char CANARY_OWNER[] = "vault";
static const char CANARY_FIELD[] = "canary";
static const char CANARY_TEXT[] = "tikd vault canary";

void vault_free(struct vault *v)
{
    if (v) {
        free(v->path);
        OPENSSL_cleanse(v, sizeof *v);
        free(v);
    }
}

static int load_file(struct vault *v, const char *path, struct tikd_err *e);

static bool same_file(const struct stat *a, const struct stat *b)
{
    return a->st_dev == b->st_dev && a->st_ino == b->st_ino && a->st_size == b->st_size &&
           a->st_mtim.tv_sec == b->st_mtim.tv_sec && a->st_mtim.tv_nsec == b->st_mtim.tv_nsec;
}

/* The key file changed since it was read (`tikd vault rotate-key` while
 * tikd runs): its keys are taken, the ones already loaded kept (a record
 * sealed with one of them still opens), and its last key seals from now on.
 * A file that no longer reads (mid-edit, wrong mode) changes nothing. */
static void follow_file(struct vault *v)
{
    struct stat st;
    if (!v->path || stat(v->path, &st) != 0 || same_file(&st, &v->seen))
        return;
    struct vault *nv = calloc(1, sizeof *nv);
    struct tikd_err e = {0};
    if (!nv || load_file(nv, v->path, &e) != 0) {
        if (nv)
            TLOG(TLOG_WARN, "vault.key_file_unreadable", LSTR("error", e.msg));
        vault_free(nv);
        return;
    }
    for (int i = 0; i < nv->n; i++) {
        int at = -1;
        for (int j = 0; j < v->n; j++)
            if (strcmp(v->keys[j].id, nv->keys[i].id) == 0)
                at = j;
        if (at < 0 && v->n < MAX_KEYS)
            v->keys[at = v->n++] = nv->keys[i];
        if (at >= 0 && i == nv->n - 1) { /* the sealing key goes last */
            struct vkey k = v->keys[at];
            memmove(&v->keys[at], &v->keys[at + 1], (size_t)(v->n - at - 1) * sizeof k);
            v->keys[v->n - 1] = k;
            OPENSSL_cleanse(&k, sizeof k);
        }
    }
    v->seen = nv->seen;
    TLOG(TLOG_INFO, "vault.keys_reloaded", LSTR("path", v->path), LINT("keys", v->n),
         LSTR("sealing_key", v->keys[v->n - 1].id));
    vault_free(nv);
}

const char *vault_key_id(const struct vault *v)
{
    return v->keys[v->n - 1].id;
}

void vault_wipe_free(char *p, size_t n)
{
    if (p) {
        OPENSSL_cleanse(p, n);
        free(p);
    }
}

static int valid_id(const char *id, size_t n)
{
    if (n == 0 || n > MAX_ID)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (!((id[i] >= 'a' && id[i] <= 'z') || (id[i] >= 'A' && id[i] <= 'Z') ||
              (id[i] >= '0' && id[i] <= '9') || id[i] == '-' || id[i] == '_'))
            return 0;
    return 1;
}

static int add_key(struct vault *v, const char *id, size_t idlen, const char *b64,
                   const char *where, struct tikd_err *e)
{
    if (!valid_id(id, idlen))
        return tikd_fail(e, TIKD_EINVAL,
                         "vault: %s: a key id must be 1-32 letters, digits, '-' or '_'", where);
    if (v->n == MAX_KEYS)
        return tikd_fail(e, TIKD_EINVAL, "vault: %s: more than %d keys", where, MAX_KEYS);
    for (int i = 0; i < v->n; i++)
        if (strlen(v->keys[i].id) == idlen && memcmp(v->keys[i].id, id, idlen) == 0)
            return tikd_fail(e, TIKD_EINVAL, "vault: %s: key id '%.*s' appears twice", where,
                             (int)idlen, id);
    struct vkey *k = &v->keys[v->n];
    memcpy(k->id, id, idlen);
    k->id[idlen] = '\0';
    if (codec_b64_exact(b64, k->k, KEY_LEN) != 0)
        return tikd_fail(e, TIKD_EINVAL,
                         "vault: %s: key '%s' is not 32 bytes of base64 (make one with `tikd "
                         "vault init`)",
                         where, k->id);
    v->n++;
    return 0;
}

static int load_file(struct vault *v, const char *path, struct tikd_err *e)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) != 0) {
        int err = errno;
        if (fd >= 0)
            close(fd);
        return tikd_fail(e, TIKD_EIO, "vault: cannot read the key file %s: %s%s", path,
                         strerror(err),
                         err == ENOENT ? " (create one with `tikd vault init`)" : "");
    }
    if (!S_ISREG(st.st_mode)) {
        close(fd);
        return tikd_fail(e, TIKD_EINVAL, "vault: the key file %s is not a regular file", path);
    }
    if (st.st_mode & 077) {
        close(fd);
        return tikd_fail(e, TIKD_EINVAL,
                         "vault: the key file %s has mode %04o: others can read it; it must be "
                         "0600 (chmod 600 %s)",
                         path, (unsigned)(st.st_mode & 07777), path);
    }
    FILE *f = fdopen(fd, "r");
    char line[512];
    int lineno = 0, rc = 0;
    while (rc == 0 && fgets(line, sizeof line, f)) {
        lineno++;
        char *p = line;
        while (*p == ' ' || *p == '\t')
            p++;
        if (*p == '#' || *p == '\n' || *p == '\0')
            continue;
        char *sp = strpbrk(p, " \t");
        char where[300];
        snprintf(where, sizeof where, "%s:%d", path, lineno);
        if (!sp) {
            rc = tikd_fail(e, TIKD_EINVAL, "vault: %s: expected \"KEY_ID BASE64_KEY\"", where);
            break;
        }
        char *b64 = sp;
        while (*b64 == ' ' || *b64 == '\t')
            b64++;
        b64[strcspn(b64, " \t\r\n")] = '\0';
        rc = add_key(v, p, (size_t)(sp - p), b64, where, e);
    }
    OPENSSL_cleanse(line, sizeof line);
    fclose(f);
    if (rc == 0 && v->n == 0)
        rc = tikd_fail(e, TIKD_EINVAL, "vault: the key file %s holds no key", path);
    if (rc == 0)
        v->seen = st;
    return rc;
}

int vault_load(struct vault **out, const char *key_file, const char *env_key, struct tikd_err *e)
{
    *out = NULL;
    struct vault *v = calloc(1, sizeof *v);
    if (!v)
        return tikd_fail(e, TIKD_ENOMEM, "vault: out of memory");
    int rc;
    if (key_file) {
        rc = load_file(v, key_file, e);
        if (rc == 0 && !(v->path = strdup(key_file)))
            rc = tikd_fail(e, TIKD_ENOMEM, "vault: out of memory");
    } else if (env_key && *env_key) {
        const char *colon = strchr(env_key, ':');
        rc = colon ? add_key(v, env_key, (size_t)(colon - env_key), colon + 1, "TIKD_VAULT_KEY", e)
                   : add_key(v, "env", 3, env_key, "TIKD_VAULT_KEY", e);
    } else {
        rc = tikd_fail(e, TIKD_EINVAL,
                       "vault: no key: set vault.key_file (or TIKD_VAULT_KEY_FILE, or "
                       "TIKD_VAULT_KEY); `tikd vault init FILE` creates a key file");
    }
    if (rc != 0) {
        vault_free(v);
        return rc;
    }
    *out = v;
    return 0;
}

/* ---- sealing ------------------------------------------------------------ */

static size_t make_aad(const char *owner, const char *field, char *out, size_t n)
{
    size_t ol = strlen(owner), fl = strlen(field);
    if (ol + fl + 1 > n)
        return 0;
    memcpy(out, owner, ol);
    out[ol] = '\0';
    memcpy(out + ol + 1, field, fl);
    return ol + 1 + fl;
}

static int seal(const struct vkey *k, const unsigned char *aad, size_t aadlen,
                const unsigned char *pt, size_t n, unsigned char **out, size_t *outlen)
{
    size_t idl = strlen(k->id);
    size_t total = 3 + idl + NONCE_LEN + n + TAG_LEN;
    unsigned char *r = malloc(total);
    if (!r)
        return TIKD_ENOMEM;
    r[0] = 'V';
    r[1] = '1';
    r[2] = (unsigned char)idl;
    memcpy(r + 3, k->id, idl);
    unsigned char *nonce = r + 3 + idl, *ct = nonce + NONCE_LEN, *tag = ct + n;
    int ok = RAND_bytes(nonce, NONCE_LEN) == 1;
    EVP_CIPHER_CTX *c = EVP_CIPHER_CTX_new();
    int len = 0;
    ok = ok && c && EVP_EncryptInit_ex(c, EVP_aes_256_gcm(), NULL, NULL, NULL) == 1 &&
         EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_SET_IVLEN, NONCE_LEN, NULL) == 1 &&
         EVP_EncryptInit_ex(c, NULL, NULL, k->k, nonce) == 1 &&
         EVP_EncryptUpdate(c, NULL, &len, aad, (int)aadlen) == 1 &&
         EVP_EncryptUpdate(c, ct, &len, pt, (int)n) == 1 &&
         EVP_EncryptFinal_ex(c, ct + len, &len) == 1 &&
         EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_GET_TAG, TAG_LEN, tag) == 1;
    EVP_CIPHER_CTX_free(c);
    if (!ok) {
        free(r);
        return TIKD_EIO;
    }
    *out = r;
    *outlen = total;
    return 0;
}

/* Opens record r; *pt gets n+1 bytes (NUL-terminated). */
static int unseal(const struct vault *v, const unsigned char *aad, size_t aadlen,
                  const unsigned char *r, size_t rl, char **pt, size_t *n, const char **why)
{
    if (rl < 3 || r[0] != 'V' || r[1] != '1' || rl < 3 + (size_t)r[2] + NONCE_LEN + TAG_LEN) {
        *why = "not a vault record";
        return TIKD_ECORRUPT;
    }
    size_t idl = r[2];
    const struct vkey *k = NULL;
    for (int i = 0; i < v->n; i++)
        if (strlen(v->keys[i].id) == idl && memcmp(v->keys[i].id, r + 3, idl) == 0)
            k = &v->keys[i];
    if (!k) {
        *why = "sealed with a key that is not in the key file";
        return TIKD_ECORRUPT;
    }
    const unsigned char *nonce = r + 3 + idl, *ct = nonce + NONCE_LEN;
    size_t ctl = rl - 3 - idl - NONCE_LEN - TAG_LEN;
    unsigned char tag[TAG_LEN];
    memcpy(tag, ct + ctl, TAG_LEN);
    char *p = malloc(ctl + 1);
    if (!p)
        return TIKD_ENOMEM;
    EVP_CIPHER_CTX *c = EVP_CIPHER_CTX_new();
    int len = 0;
    int ok = c && EVP_DecryptInit_ex(c, EVP_aes_256_gcm(), NULL, NULL, NULL) == 1 &&
             EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_SET_IVLEN, NONCE_LEN, NULL) == 1 &&
             EVP_DecryptInit_ex(c, NULL, NULL, k->k, nonce) == 1 &&
             EVP_DecryptUpdate(c, NULL, &len, aad, (int)aadlen) == 1 &&
             EVP_DecryptUpdate(c, (unsigned char *)p, &len, ct, (int)ctl) == 1 &&
             EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_SET_TAG, TAG_LEN, tag) == 1 &&
             EVP_DecryptFinal_ex(c, (unsigned char *)p + len, &len) == 1;
    EVP_CIPHER_CTX_free(c);
    if (!ok) {
        vault_wipe_free(p, ctl + 1);
        *why = "it does not authenticate (edited, moved to another account or field, or the "
               "key is wrong)";
        return TIKD_ECORRUPT;
    }
    p[ctl] = '\0';
    *pt = p;
    *n = ctl;
    return 0;
}

int vault_put(struct vault *v, struct store_txn *t, const char *owner, const char *field,
              const void *pt, size_t n, struct tikd_err *e)
{
    char aad[512];
    size_t al = make_aad(owner, field, aad, sizeof aad);
    if (!al)
        return tikd_fail(e, TIKD_EINVAL, "vault: owner and field names too long");
    unsigned char *rec;
    size_t rl;
    follow_file(v); /* a key added meanwhile seals from now on */
    int rc = seal(&v->keys[v->n - 1], (unsigned char *)aad, al, pt, n, &rec, &rl);
    if (rc != 0)
        return tikd_fail(e, rc, "vault: sealing failed");
    rc = store_put(t, STORE_DB_VAULT, aad, al, rec, rl);
    free(rec);
    return rc ? tikd_fail(e, rc, "vault: storing a record failed") : 0;
}

int vault_get(struct vault *v, struct store_txn *t, const char *owner, const char *field, char **pt,
              size_t *n, struct tikd_err *e)
{
    char aad[512];
    size_t al = make_aad(owner, field, aad, sizeof aad);
    if (!al)
        return tikd_fail(e, TIKD_EINVAL, "vault: owner and field names too long");
    struct store_val val;
    int rc = store_get(t, STORE_DB_VAULT, aad, al, &val);
    if (rc != 0)
        return rc == TIKD_ENOTFOUND ? rc : tikd_fail(e, rc, "vault: reading a record failed");
    const char *why = NULL;
    rc = unseal(v, (unsigned char *)aad, al, val.p, val.n, pt, n, &why);
    if (rc == TIKD_ECORRUPT && v->path) { /* sealed by a key added since? */
        follow_file(v);
        rc = unseal(v, (unsigned char *)aad, al, val.p, val.n, pt, n, &why);
    }
    if (rc == TIKD_ECORRUPT)
        return tikd_fail(e, rc, "vault: the %s of %s does not open: %s", field, owner, why);
    return rc;
}

int vault_adopt(struct vault *v, struct store_txn *t, const char *owner, const char *field,
                const void *rec, size_t n, struct tikd_err *e)
{
    char aad[512];
    size_t al = make_aad(owner, field, aad, sizeof aad);
    if (!al)
        return tikd_fail(e, TIKD_EINVAL, "vault: owner and field names too long");
    const char *why = NULL;
    char *pt = NULL;
    size_t pn = 0;
    int rc = unseal(v, (unsigned char *)aad, al, rec, n, &pt, &pn, &why);
    if (rc == TIKD_ECORRUPT && v->path) { /* sealed by a key added since? */
        follow_file(v);
        rc = unseal(v, (unsigned char *)aad, al, rec, n, &pt, &pn, &why);
    }
    vault_wipe_free(pt, pn);
    if (rc == TIKD_ECORRUPT)
        return tikd_fail(e, rc,
                         "vault: the %s of %s from the cluster does not open here: %s (every "
                         "node needs the same key file)",
                         field, owner, why);
    return rc ? rc : store_put(t, STORE_DB_VAULT, aad, al, rec, n);
}

int vault_check(struct vault *v, struct store_txn *t, struct tikd_err *e)
{
    char *pt;
    size_t n;
    int rc = vault_get(v, t, CANARY_OWNER, CANARY_FIELD, &pt, &n, e);
    if (rc == TIKD_ENOTFOUND)
        return vault_put(v, t, CANARY_OWNER, CANARY_FIELD, CANARY_TEXT, sizeof CANARY_TEXT - 1, e);
    if (rc != 0)
        return tikd_fail(e, TIKD_ECORRUPT,
                         "vault: these keys do not open this database's secrets (wrong key file, "
                         "or a key was removed too early); nothing was changed");
    int same = n == sizeof CANARY_TEXT - 1 && memcmp(pt, CANARY_TEXT, n) == 0;
    vault_wipe_free(pt, n);
    return same ? 0 : tikd_fail(e, TIKD_ECORRUPT, "vault: the canary record is wrong");
}

struct keylist {
    char **k;
    size_t *l;
    size_t n, cap;
    const char *prefix;
    size_t plen;
};

static int collect(struct store_val k, struct store_val val, void *ctx)
{
    (void)val;
    struct keylist *kl = ctx;
    if (kl->n == kl->cap) {
        size_t nc = kl->cap ? kl->cap * 2 : 64;
        char **nk = realloc(kl->k, nc * sizeof *nk);
        if (!nk)
            return TIKD_ENOMEM;
        kl->k = nk;
        size_t *nl = realloc(kl->l, nc * sizeof *nl);
        if (!nl)
            return TIKD_ENOMEM;
        kl->l = nl;
        kl->cap = nc;
    }
    kl->k[kl->n] = malloc(k.n + 1);
    if (!kl->k[kl->n])
        return TIKD_ENOMEM;
    memcpy(kl->k[kl->n], k.p, k.n);
    kl->k[kl->n][k.n] = '\0';
    kl->l[kl->n++] = k.n;
    return 0;
}

static void keylist_free(struct keylist *kl)
{
    for (size_t i = 0; i < kl->n; i++)
        free(kl->k[i]);
    free(kl->k);
    free(kl->l);
}

int vault_del_owner(struct store_txn *t, const char *owner)
{
    struct keylist kl = {0};
    size_t ol = strlen(owner) + 1; /* owner '\0' */
    int rc = store_foreach(t, STORE_DB_VAULT, owner, ol, collect, &kl);
    for (size_t i = 0; rc == 0 && i < kl.n; i++)
        rc = store_del(t, STORE_DB_VAULT, kl.k[i], kl.l[i]);
    keylist_free(&kl);
    return rc;
}

int vault_reseal_all(struct vault *v, struct store_txn *t, size_t *count, struct tikd_err *e)
{
    struct keylist kl = {0};
    int rc = store_foreach(t, STORE_DB_VAULT, NULL, 0, collect, &kl);
    size_t done = 0;
    for (size_t i = 0; rc == 0 && i < kl.n; i++) {
        struct store_val val;
        rc = store_get(t, STORE_DB_VAULT, kl.k[i], kl.l[i], &val);
        if (rc != 0)
            break;
        char *pt;
        size_t n;
        const char *why;
        rc = unseal(v, (unsigned char *)kl.k[i], kl.l[i], val.p, val.n, &pt, &n, &why);
        if (rc != 0) {
            rc = tikd_fail(e, rc, "vault: record %s/%s does not open (%s); nothing was re-sealed",
                           kl.k[i], kl.k[i] + strlen(kl.k[i]) + 1, why);
            break;
        }
        unsigned char *rec;
        size_t rl;
        rc = seal(&v->keys[v->n - 1], (unsigned char *)kl.k[i], kl.l[i], (unsigned char *)pt, n,
                  &rec, &rl);
        vault_wipe_free(pt, n + 1);
        if (rc == 0) {
            rc = store_put(t, STORE_DB_VAULT, kl.k[i], kl.l[i], rec, rl);
            free(rec);
        }
        done++;
    }
    keylist_free(&kl);
    if (count)
        *count = done;
    return rc;
}

/* ---- key files ------------------------------------------------------------ */

static int new_key_line(char *id, size_t idn, char *line, size_t n)
{
    unsigned char k[KEY_LEN];
    if (RAND_bytes(k, KEY_LEN) != 1)
        return -1;
    char b64[64];
    EVP_EncodeBlock((unsigned char *)b64, k, KEY_LEN);
    OPENSSL_cleanse(k, KEY_LEN);
    time_t now = time(NULL);
    struct tm tm;
    gmtime_r(&now, &tm);
    unsigned char r[3];
    RAND_bytes(r, sizeof r);
    snprintf(id, idn, "k%04d%02d%02d-%02x%02x%02x", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday,
             r[0], r[1], r[2]);
    snprintf(line, n, "%s %s\n", id, b64);
    OPENSSL_cleanse(b64, sizeof b64);
    return 0;
}

static int write_all(int fd, const char *p, size_t n)
{
    while (n) {
        ssize_t w = write(fd, p, n);
        if (w <= 0)
            return -1;
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

int vault_keyfile_create(const char *path, char *id_out, size_t n, struct tikd_err *e)
{
    char line[200];
    if (new_key_line(id_out, n, line, sizeof line) != 0)
        return tikd_fail(e, TIKD_EIO, "vault: no randomness");
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0) {
        OPENSSL_cleanse(line, sizeof line);
        return tikd_fail(e, errno == EEXIST ? TIKD_EEXIST : TIKD_EIO,
                         "vault: cannot create %s: %s%s", path, strerror(errno),
                         errno == EEXIST ? " (refusing to overwrite keys)" : "");
    }
    static const char hdr[] = "# tikd vault keys: KEY_ID BASE64_KEY, one per line; the last one "
                              "seals new records.\n# Keep a copy somewhere safe: without it the "
                              "stored tokens cannot be read.\n";
    int bad =
        write_all(fd, hdr, sizeof hdr - 1) || write_all(fd, line, strlen(line)) || fsync(fd) != 0;
    OPENSSL_cleanse(line, sizeof line);
    close(fd);
    return bad ? tikd_fail(e, TIKD_EIO, "vault: writing %s failed", path) : 0;
}

int vault_keyfile_add(const char *path, char *id_out, size_t n, struct tikd_err *e)
{
    struct vault *check;
    int rc = vault_load(&check, path, NULL, e); /* refuse to append to a bad file */
    if (rc != 0)
        return rc;
    vault_free(check);
    char line[200];
    if (new_key_line(id_out, n, line, sizeof line) != 0)
        return tikd_fail(e, TIKD_EIO, "vault: no randomness");
    int fd = open(path, O_WRONLY | O_APPEND | O_CLOEXEC);
    int bad = fd < 0 || write_all(fd, line, strlen(line)) || fsync(fd) != 0;
    OPENSSL_cleanse(line, sizeof line);
    if (fd >= 0)
        close(fd);
    return bad ? tikd_fail(e, TIKD_EIO, "vault: appending to %s failed: %s", path, strerror(errno))
               : 0;
}
