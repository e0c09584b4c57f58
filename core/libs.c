/* libs.c - shared rule libraries: bundles, signatures, installs and pins
 * (see libs.h). */
#include "libs.h"
#include "audit.h"
#include "clock.h"
#include "codec.h"
#include "fileio.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <jansson.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define FORMAT "tikd-lib/1"

/* ---- names and paths ----------------------------------------------------------------- */

static bool lib_name_valid(const char *n)
{
    static const char *const reserved[] = {"tikd", "cjson", "string",    "table", "math",
                                           "utf8", "os",    "coroutine", NULL};
    size_t l = n ? strlen(n) : 0;
    if (l < 1 || l > 64 || strspn(n, "abcdefghijklmnopqrstuvwxyz0123456789_-") != l || n[0] == '-')
        return false;
    for (const char *const *r = reserved; *r; r++)
        if (strcmp(n, *r) == 0)
            return false;
    return true;
}

/* "a.lua", "sub/b.lua": segments of [a-z0-9_-], ending in .lua. */
static bool file_path_valid(const char *p)
{
    size_t l = strlen(p);
    if (l < 5 || l > 128 || strcmp(p + l - 4, ".lua") != 0 || p[0] == '/')
        return false;
    for (const char *s = p; *s;) {
        size_t n = strspn(s, "abcdefghijklmnopqrstuvwxyz0123456789_-");
        if (n == 0)
            return false;
        s += n;
        if (*s == '/')
            s++;
        else if (strcmp(s, ".lua") == 0)
            break;
        else
            return false;
    }
    return true;
}

void lib_bundle_free(struct lib_bundle *b)
{
    if (!b)
        return;
    for (size_t i = 0; i < b->nreq; i++) {
        free(b->req_name[i]);
        free(b->req_range[i]);
    }
    free(b->req_name);
    free(b->req_range);
    for (size_t i = 0; i < b->nfiles; i++) {
        free(b->files[i].path);
        free(b->files[i].data);
    }
    free(b->files);
    memset(b, 0, sizeof *b);
}

/* ---- base64 and keys ---------------------------------------------------------------------- */

static char *b64_encode(const void *p, size_t n)
{
    char *out = malloc(4 * ((n + 2) / 3) + 1);
    if (out)
        EVP_EncodeBlock((unsigned char *)out, p, (int)n);
    return out;
}

/* Decode base64 text (with padding); NULL on junk. */
static unsigned char *b64_decode(const char *s, size_t *n)
{
    size_t l = strlen(s);
    if (l % 4 || l > 2 * LIB_BUNDLE_MAX)
        return NULL;
    unsigned char *out = malloc(l / 4 * 3 + 1);
    int w = out ? EVP_DecodeBlock(out, (const unsigned char *)s, (int)l) : -1;
    if (w < 0) {
        free(out);
        return NULL;
    }
    size_t pad = (l && s[l - 1] == '=') + (l > 1 && s[l - 2] == '=');
    *n = (size_t)w - pad;
    return out;
}

static EVP_PKEY *public_key(const char *key)
{
    if (strncmp(key, "ed25519:", 8) != 0)
        return NULL;
    size_t n;
    unsigned char *raw = b64_decode(key + 8, &n);
    EVP_PKEY *k =
        raw && n == 32 ? EVP_PKEY_new_raw_public_key(EVP_PKEY_ED25519, NULL, raw, 32) : NULL;
    free(raw);
    return k;
}

static int public_of(EVP_PKEY *k, char pub[LIB_KEY_LEN + 1])
{
    unsigned char raw[32];
    size_t n = sizeof raw;
    if (EVP_PKEY_get_raw_public_key(k, raw, &n) != 1 || n != 32)
        return TIKD_EINVAL;
    char *b = b64_encode(raw, 32);
    if (!b)
        return TIKD_ENOMEM;
    snprintf(pub, LIB_KEY_LEN + 1, "ed25519:%s", b);
    free(b);
    return 0;
}

int lib_keygen(const char *path, char pub[LIB_KEY_LEN + 1], struct tikd_err *e)
{
    EVP_PKEY *k = NULL;
    EVP_PKEY_CTX *c = EVP_PKEY_CTX_new_id(EVP_PKEY_ED25519, NULL);
    if (!c || EVP_PKEY_keygen_init(c) != 1 || EVP_PKEY_keygen(c, &k) != 1) {
        EVP_PKEY_CTX_free(c);
        return tikd_fail(e, TIKD_EIO, "cannot make an Ed25519 key");
    }
    EVP_PKEY_CTX_free(c);
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    FILE *f = fd >= 0 ? fdopen(fd, "w") : NULL;
    if (!f) {
        int err = errno;
        if (fd >= 0)
            close(fd);
        EVP_PKEY_free(k);
        return tikd_fail(e, TIKD_EIO, "%s: %s%s", path, strerror(err),
                         err == EEXIST ? " (a key is never written over)" : "");
    }
    bool ok = PEM_write_PrivateKey(f, k, NULL, NULL, 0, NULL, NULL) == 1;
    ok = fclose(f) == 0 && ok;
    int rc = ok ? public_of(k, pub) : TIKD_EIO;
    EVP_PKEY_free(k);
    if (rc != 0) {
        unlink(path);
        return tikd_fail(e, rc, "%s: cannot write the key", path);
    }
    return 0;
}

/* ---- the signed text ------------------------------------------------------------------------ */

static int cmp_files(const void *a, const void *b)
{
    return strcmp(((const struct lib_file *)a)->path, ((const struct lib_file *)b)->path);
}

/* "tikd-lib/1\n" MANIFEST "\n" then "SHA256 PATH\n" per file (sorted). */
static char *signed_text(json_t *manifest, const struct lib_file *f, size_t n, const char **hashes,
                         size_t *len)
{
    char *m = json_dumps(manifest, JSON_COMPACT | JSON_SORT_KEYS);
    size_t cap = (m ? strlen(m) : 0) + 16;
    for (size_t i = 0; i < n; i++)
        cap += strlen(f[i].path) + 67;
    char *out = m ? malloc(cap) : NULL;
    if (out) {
        size_t off = (size_t)snprintf(out, cap, "%s\n%s\n", FORMAT, m);
        for (size_t i = 0; i < n; i++)
            off += (size_t)snprintf(out + off, cap - off, "%s %s\n", hashes[i], f[i].path);
        *len = off;
    }
    free(m);
    return out;
}

/* The manifest's fields into b; NULL or what is wrong. */
static const char *read_manifest(json_t *m, struct lib_bundle *b)
{
    if (!json_is_object(m))
        return "manifest.json is not a JSON object";
    const char *name = json_string_value(json_object_get(m, "name"));
    const char *ver = json_string_value(json_object_get(m, "version"));
    const char *desc = json_string_value(json_object_get(m, "description"));
    json_t *api = json_object_get(m, "tikd_api"), *req = json_object_get(m, "requires");
    if (!lib_name_valid(name))
        return "the manifest's name is 1-64 of a-z, 0-9, _ and - (not a name tikd or Lua "
               "uses)";
    if (!ver || !semver_parse(ver, &b->v))
        return "the manifest's version is a semantic version, e.g. \"1.2.0\"";
    if (desc && strlen(desc) >= sizeof b->description)
        return "the manifest's description is longer than 255 bytes";
    if (!json_is_integer(api) || json_integer_value(api) < 1)
        return "the manifest's tikd_api is the rule API it targets (1)";
    if (json_integer_value(api) > LIB_API)
        return "the library targets a newer tikd rule API than this tikd offers (1): "
               "upgrade tikd";
    if (req && !json_is_object(req))
        return "the manifest's requires is an object: { \"name\": \"^1.0\" }";
    snprintf(b->name, sizeof b->name, "%s", name);
    snprintf(b->version, sizeof b->version, "%s", ver);
    snprintf(b->description, sizeof b->description, "%s", desc ? desc : "");
    b->api = (int)json_integer_value(api);
    size_t n = json_object_size(req);
    if (n > 32)
        return "a library requires at most 32 others";
    b->req_name = calloc(n + 1, sizeof *b->req_name);
    b->req_range = calloc(n + 1, sizeof *b->req_range);
    if (!b->req_name || !b->req_range)
        return "out of memory";
    const char *k;
    json_t *v;
    json_object_foreach(req, k, v)
    {
        const char *r = json_string_value(v);
        if (!lib_name_valid(k) || !r || semver_range_problem(r))
            return "the manifest's requires maps library names to version ranges";
        if (strcmp(k, b->name) == 0)
            return "a library cannot require itself";
        b->req_name[b->nreq] = strdup(k);
        b->req_range[b->nreq] = strdup(r);
        if (!b->req_name[b->nreq] || !b->req_range[b->nreq])
            return "out of memory";
        b->nreq++;
    }
    return NULL;
}

static bool has_init(const struct lib_bundle *b)
{
    for (size_t i = 0; i < b->nfiles; i++)
        if (strcmp(b->files[i].path, "init.lua") == 0)
            return true;
    return false;
}

/* ---- pack ------------------------------------------------------------------------------------ */

static struct {
    const char *root;
    struct lib_file *v;
    size_t n, bytes;
    const char *why;
    struct tikd_err *e;
} walk; /* nftw has no context pointer; lib_pack is not reentrant */

static int pack_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    const char *rel = path + strlen(walk.root) + 1;
    const char *base = path + ftw->base;
    if (ftw->level == 0)
        return 0;
    if (base[0] == '.')
        return 0; /* hidden files and folders (their contents are still walked: skipped below) */
    if (rel[0] == '.' || strstr(rel, "/.") || flag == FTW_D || flag == FTW_DP)
        return 0;
    size_t bl = strlen(base);
    if (bl < 4 || strcmp(base + bl - 4, ".lua") != 0 ||
        (bl > 9 && strcmp(base + bl - 9, "_test.lua") == 0))
        return 0; /* the manifest, tests, notes: not modules */
    if (flag != FTW_F || !file_path_valid(rel)) {
        walk.why = "module paths are folders and files of a-z, 0-9, _ and -, ending in .lua";
        tikd_fail(walk.e, TIKD_EINVAL, "%s: %s", rel, walk.why);
        return 1;
    }
    if (walk.n == LIB_FILES_MAX) {
        tikd_fail(walk.e, TIKD_EFULL, "more than %d modules in one library", LIB_FILES_MAX);
        return 1;
    }
    struct lib_file *f = &walk.v[walk.n];
    if (fileio_read_all(path, LIB_BUNDLE_MAX, &f->data, &f->len, walk.e) != 0)
        return 1;
    walk.bytes += f->len;
    if (walk.bytes > LIB_BUNDLE_MAX / 2 || memchr(f->data, '\0', f->len)) {
        free(f->data);
        tikd_fail(walk.e, TIKD_EINVAL, "%s: %s", rel,
                  walk.bytes > LIB_BUNDLE_MAX / 2 ? "the library is larger than 2 MiB"
                                                  : "not Lua text (a NUL byte)");
        return 1;
    }
    if (!(f->path = strdup(rel))) {
        free(f->data);
        tikd_fail(walk.e, TIKD_ENOMEM, "out of memory");
        return 1;
    }
    walk.n++;
    return 0;
}

static EVP_PKEY *private_key(const char *path, struct tikd_err *e)
{
    char *pem;
    size_t n;
    if (fileio_read_all(path, 64 << 10, &pem, &n, e) != 0)
        return NULL;
    BIO *bio = BIO_new_mem_buf(pem, (int)n);
    EVP_PKEY *k = bio ? PEM_read_bio_PrivateKey(bio, NULL, NULL, NULL) : NULL;
    BIO_free(bio);
    OPENSSL_cleanse(pem, n);
    free(pem);
    if (!k || EVP_PKEY_id(k) != EVP_PKEY_ED25519) {
        EVP_PKEY_free(k);
        tikd_fail(e, TIKD_EINVAL, "%s: not an Ed25519 private key (tikd lib keygen makes one)",
                  path);
        return NULL;
    }
    return k;
}

int lib_pack(const char *dir, const char *key_path, char **out, size_t *len,
             struct lib_bundle *info, struct tikd_err *e)
{
    *out = NULL;
    memset(info, 0, sizeof *info);
    char mpath[4200];
    snprintf(mpath, sizeof mpath, "%s/manifest.json", dir);
    char *mtext;
    size_t mlen;
    if (fileio_read_all(mpath, 64 << 10, &mtext, &mlen, e) != 0)
        return e ? e->code : TIKD_EIO;
    json_error_t je;
    json_t *m = json_loadb(mtext, mlen, JSON_REJECT_DUPLICATES, &je);
    free(mtext);
    const char *why = m ? read_manifest(m, info) : je.text;
    if (why) {
        json_decref(m);
        lib_bundle_free(info);
        return tikd_fail(e, TIKD_EINVAL, "%s: %s", mpath, why);
    }
    walk.root = dir;
    walk.v = calloc(LIB_FILES_MAX, sizeof *walk.v);
    walk.n = walk.bytes = 0;
    walk.e = e;
    int rc = walk.v ? (nftw(dir, pack_one, 16, FTW_PHYS) == 0 ? 0 : TIKD_EINVAL) : TIKD_ENOMEM;
    info->files = walk.v;
    info->nfiles = walk.n;
    if (rc == 0 && !has_init(info))
        rc = tikd_fail(e, TIKD_EINVAL, "%s: a library needs init.lua (what require \"%s\" loads)",
                       dir, info->name);
    EVP_PKEY *k = rc == 0 ? private_key(key_path, e) : NULL;
    if (rc == 0 && !k)
        rc = TIKD_EINVAL;
    if (rc != 0) {
        EVP_PKEY_free(k);
        json_decref(m);
        lib_bundle_free(info);
        return rc;
    }
    qsort(info->files, info->nfiles, sizeof *info->files, cmp_files);
    const char **hashes = calloc(info->nfiles + 1, sizeof *hashes);
    char(*hx)[65] = calloc(info->nfiles + 1, sizeof *hx);
    json_t *files = json_array();
    for (size_t i = 0; hashes && hx && i < info->nfiles; i++) {
        codec_sha256_hex(info->files[i].data, info->files[i].len, hx[i]);
        hashes[i] = hx[i];
        char *b = b64_encode(info->files[i].data, info->files[i].len);
        json_array_append_new(files, json_pack("{s:s, s:s, s:s?}", "path", info->files[i].path,
                                               "sha256", hx[i], "data", b));
        free(b);
    }
    size_t tl = 0;
    char *text = hashes && hx ? signed_text(m, info->files, info->nfiles, hashes, &tl) : NULL;
    unsigned char sig[64];
    size_t sl = sizeof sig;
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    bool signed_ok = text && md && EVP_DigestSignInit(md, NULL, NULL, NULL, k) == 1 &&
                     EVP_DigestSign(md, sig, &sl, (unsigned char *)text, tl) == 1;
    EVP_MD_CTX_free(md);
    char *sb = signed_ok ? b64_encode(sig, sl) : NULL;
    rc = sb && public_of(k, info->key) == 0 ? 0 : TIKD_EIO;
    if (rc == 0)
        codec_sha256_hex(text, tl, info->digest);
    json_t *doc = rc == 0 ? json_pack("{s:s, s:O, s:o, s:{s:s, s:s}}", "format", FORMAT, "manifest",
                                      m, "files", files, "signature", "key", info->key, "sig", sb)
                          : NULL;
    if (!doc && rc == 0)
        rc = TIKD_ENOMEM;
    if (!doc)
        json_decref(files);
    char *bytes = doc ? json_dumps(doc, JSON_INDENT(1) | JSON_SORT_KEYS) : NULL;
    json_decref(doc);
    json_decref(m);
    EVP_PKEY_free(k);
    free(sb);
    free(text);
    free(hashes);
    free(hx);
    if (rc == 0 && !bytes)
        rc = TIKD_ENOMEM;
    if (rc == 0 && strlen(bytes) > LIB_BUNDLE_MAX) {
        free(bytes);
        rc = tikd_fail(e, TIKD_EFULL, "the bundle is larger than %d bytes", LIB_BUNDLE_MAX);
    }
    if (rc != 0) {
        lib_bundle_free(info);
        return e && e->code == rc ? rc : tikd_fail(e, rc, "cannot sign the bundle");
    }
    *out = bytes;
    *len = strlen(bytes);
    return 0;
}

/* ---- open and verify ------------------------------------------------------------------------ */

static bool trusted(const struct strlist *trust, const char *key)
{
    for (size_t i = 0; trust && i < trust->n; i++)
        if (strcmp(trust->v[i], key) == 0)
            return true;
    return !trust;
}

int lib_open(const char *bytes, size_t len, const struct strlist *trust, struct lib_bundle *out,
             struct tikd_err *e)
{
    memset(out, 0, sizeof *out);
    if (len > LIB_BUNDLE_MAX)
        return tikd_fail(e, TIKD_EFULL, "not a library bundle: larger than %d bytes",
                         LIB_BUNDLE_MAX);
    json_error_t je;
    json_t *doc = json_loadb(bytes, len, JSON_REJECT_DUPLICATES, &je);
    const char *why = NULL;
    json_t *m = json_object_get(doc, "manifest"), *files = json_object_get(doc, "files");
    json_t *sig = json_object_get(doc, "signature");
    const char *fmt = json_string_value(json_object_get(doc, "format"));
    if (!json_is_object(doc) || !fmt || strcmp(fmt, FORMAT) != 0)
        why = "not a tikd library bundle (tikd lib pack makes them)";
    else if (!json_is_object(sig) || !json_string_value(json_object_get(sig, "key")) ||
             !json_string_value(json_object_get(sig, "sig")))
        why = "the bundle is not signed";
    else if (!json_is_array(files) || json_array_size(files) == 0 ||
             json_array_size(files) > LIB_FILES_MAX)
        why = "the bundle's file list is malformed";
    else
        why = read_manifest(m, out);
    size_t n = why ? 0 : json_array_size(files);
    const char **hashes = why ? NULL : calloc(n + 1, sizeof *hashes);
    if (!why && (!hashes || !(out->files = calloc(n, sizeof *out->files))))
        why = "out of memory";
    for (size_t i = 0; !why && i < n; i++) {
        json_t *f = json_array_get(files, i);
        const char *path = json_string_value(json_object_get(f, "path"));
        const char *hash = json_string_value(json_object_get(f, "sha256"));
        const char *data = json_string_value(json_object_get(f, "data"));
        struct lib_file *lf = &out->files[out->nfiles];
        if (!path || !file_path_valid(path) || !hash || strlen(hash) != 64 || !data ||
            (i && strcmp(path, out->files[i - 1].path) <= 0)) {
            why = "the bundle's file list is malformed";
            break;
        }
        if (!(lf->data = (char *)b64_decode(data, &lf->len)) || !(lf->path = strdup(path))) {
            free(lf->data);
            why = "a file of the bundle is not base64";
            break;
        }
        lf->data[lf->len] = '\0';
        out->nfiles++;
        char have[65];
        codec_sha256_hex(lf->data, lf->len, have);
        if (strcmp(have, hash) != 0 || memchr(lf->data, '\0', lf->len)) {
            snprintf(out->description, sizeof out->description, "%s", path);
            why = "a file does not match its SHA-256: the bundle was changed after it was "
                  "signed";
            break;
        }
        hashes[i] = hash;
    }
    if (!why && !has_init(out))
        why = "the bundle has no init.lua";
    size_t tl = 0;
    char *text = why ? NULL : signed_text(m, out->files, out->nfiles, hashes, &tl);
    const char *key = json_string_value(json_object_get(sig, "key"));
    if (!why && !text)
        why = "out of memory";
    if (!why) {
        size_t sl = 0;
        unsigned char *raw = b64_decode(json_string_value(json_object_get(sig, "sig")), &sl);
        EVP_PKEY *pk = public_key(key);
        EVP_MD_CTX *md = EVP_MD_CTX_new();
        bool ok = raw && pk && md && EVP_DigestVerifyInit(md, NULL, NULL, NULL, pk) == 1 &&
                  EVP_DigestVerify(md, raw, sl, (unsigned char *)text, tl) == 1;
        EVP_MD_CTX_free(md);
        EVP_PKEY_free(pk);
        free(raw);
        if (!ok)
            why = pk ? "the signature does not verify: the bundle was changed after it was "
                       "signed, or signed by another key than it says"
                     : "the bundle's signing key is not an Ed25519 public key";
        else if (!trusted(trust, key))
            why = "it is signed by a key that is not trusted here (add it to trust, or to the "
                  "tenant's trust)";
    }
    if (!why) {
        snprintf(out->key, sizeof out->key, "%s", key);
        codec_sha256_hex(text, tl, out->digest);
    }
    free(text);
    free(hashes);
    json_decref(doc);
    if (why) {
        char name[160] = "";
        if (out->name[0])
            snprintf(name, sizeof name, "%s@%s: ", out->name, out->version);
        tikd_fail(e, TIKD_EINVAL, "%s%s%s%s", name, why, strstr(why, "SHA-256") ? ": " : "",
                  strstr(why, "SHA-256") ? out->description : "");
        lib_bundle_free(out);
        return TIKD_EINVAL;
    }
    return 0;
}

/* ---- the installed ones --------------------------------------------------------------------- */

static size_t vkey(char *k, size_t n, const char *name, const char *version)
{
    int l = snprintf(k, n, "v:%s%c%s", name, '\0', version);
    return l > 0 && (size_t)l < n ? (size_t)l : 0;
}

int lib_install(struct store_txn *t, const char *bytes, size_t len, const struct lib_bundle *b,
                const char *actor, bool *again, struct tikd_err *e)
{
    *again = false;
    char k[160], bk[80];
    size_t kl = vkey(k, sizeof k, b->name, b->version);
    struct store_val v;
    int rc = store_get(t, STORE_DB_LIBS, k, kl, &v);
    if (rc == 0) {
        json_t *o = json_loadb(v.p, v.n, 0, NULL);
        const char *had = json_string_value(json_object_get(o, "digest"));
        bool same = had && strcmp(had, b->digest) == 0;
        json_decref(o);
        if (same) {
            *again = true;
            return 0;
        }
        return tikd_fail(e, TIKD_EEXIST,
                         "%s@%s is installed with another content: an installed version never "
                         "changes (give the new one a new version)",
                         b->name, b->version);
    }
    if (rc != TIKD_ENOTFOUND)
        return rc;
    json_t *o = json_pack("{s:s, s:s, s:f}", "digest", b->digest, "key", b->key, "installed_at",
                          clock_now());
    char *js = o ? json_dumps(o, JSON_COMPACT | JSON_REAL_PRECISION(17)) : NULL;
    json_decref(o);
    if (!js)
        return TIKD_ENOMEM;
    int bl = snprintf(bk, sizeof bk, "b:%s", b->digest);
    rc = store_put(t, STORE_DB_LIBS, k, kl, js, strlen(js));
    free(js);
    if (rc == 0)
        rc = store_put(t, STORE_DB_LIBS, bk, (size_t)bl, bytes, len);
    char detail[400];
    snprintf(detail, sizeof detail, "lib=%s@%s digest=%s key=%s", b->name, b->version, b->digest,
             b->key);
    return rc ? rc : audit_append(t, actor, "lib.installed", detail);
}

struct each_ctx {
    struct store_txn *t;
    int (*fn)(const struct lib_entry *l, void *ctx);
    void *ctx;
};

static int each_version(struct store_val key, struct store_val val, void *ctx)
{
    struct each_ctx *x = ctx;
    const char *name = (const char *)key.p + 2;
    size_t nl = strnlen(name, key.n - 2);
    if (nl + 3 > key.n)
        return 0;
    char nm[80], ver[SEMVER_MAX + 1];
    snprintf(nm, sizeof nm, "%.*s", (int)nl, name);
    snprintf(ver, sizeof ver, "%.*s", (int)(key.n - 3 - nl), name + nl + 1);
    json_t *o = json_loadb(val.p, val.n, 0, NULL);
    const char *digest = json_string_value(json_object_get(o, "digest"));
    char bk[80];
    int bl = snprintf(bk, sizeof bk, "b:%s", digest ? digest : "");
    struct store_val b = {0};
    int rc = digest ? store_get(x->t, STORE_DB_LIBS, bk, (size_t)bl, &b) : TIKD_ECORRUPT;
    struct lib_entry l = {nm,
                          ver,
                          digest ? digest : "",
                          json_string_value(json_object_get(o, "key")),
                          json_number_value(json_object_get(o, "installed_at")),
                          rc == 0 ? b.p : NULL,
                          rc == 0 ? b.n : 0};
    if (!l.key)
        l.key = "";
    rc = x->fn(&l, x->ctx);
    json_decref(o);
    return rc;
}

int lib_foreach(struct store_txn *t, int (*fn)(const struct lib_entry *l, void *ctx), void *ctx)
{
    struct each_ctx x = {t, fn, ctx};
    return store_foreach(t, STORE_DB_LIBS, "v:", 2, each_version, &x);
}

/* ---- pins ------------------------------------------------------------------------------------ */

const struct lib_bundle *lib_set_find(const struct lib_set *set, const char *name)
{
    for (size_t i = 0; set && i < set->n; i++)
        if (strcmp(set->v[i].name, name) == 0)
            return &set->v[i];
    return NULL;
}

const struct lib_file *lib_module(const struct lib_bundle *b, const char *module)
{
    size_t nl = strlen(b->name);
    if (strncmp(module, b->name, nl) != 0 || (module[nl] && module[nl] != '.'))
        return NULL;
    char want[2][200];
    if (!module[nl]) {
        snprintf(want[0], sizeof want[0], "init.lua");
        want[1][0] = '\0';
    } else {
        char rel[160];
        snprintf(rel, sizeof rel, "%s", module + nl + 1);
        for (char *p = rel; *p; p++)
            if (*p == '.')
                *p = '/';
        snprintf(want[0], sizeof want[0], "%s.lua", rel);
        snprintf(want[1], sizeof want[1], "%s/init.lua", rel);
    }
    for (int k = 0; k < 2; k++)
        for (size_t i = 0; want[k][0] && i < b->nfiles; i++)
            if (strcmp(b->files[i].path, want[k]) == 0)
                return &b->files[i];
    return NULL;
}

void lib_set_free(struct lib_set *set)
{
    if (!set)
        return;
    for (size_t i = 0; i < set->n; i++)
        lib_bundle_free(&set->v[i]);
    free(set->v);
    free(set);
}

struct pick_ctx {
    const char *name, *range, *pin; /* pin: the tenant's own range for name, if any */
    const struct strlist *trust;
    struct lib_bundle best;
    bool have;
    char seen[300];    /* versions installed, for the message */
    char refused[300]; /* ... and why some could not be taken */
};

static int pick_one(const struct lib_entry *l, void *ctx)
{
    struct pick_ctx *p = ctx;
    if (strcmp(l->name, p->name) != 0)
        return 0;
    size_t sn = strlen(p->seen);
    snprintf(p->seen + sn, sizeof p->seen - sn, "%s%s", sn ? ", " : "", l->version);
    struct semver v;
    if (!semver_parse(l->version, &v) || !semver_satisfies(&v, p->range) ||
        (p->pin && !semver_satisfies(&v, p->pin)) || (p->have && semver_cmp(&v, &p->best.v) <= 0))
        return 0;
    struct lib_bundle b = {0};
    struct tikd_err e = {0};
    if (!l->bytes || lib_open(l->bytes, l->len, p->trust, &b, &e) != 0 ||
        strcmp(b.digest, l->digest) != 0 || strcmp(b.version, l->version) != 0) {
        if (l->bytes && !e.msg[0])
            snprintf(e.msg, sizeof e.msg, "its stored content changed");
        size_t rn = strlen(p->refused);
        snprintf(p->refused + rn, sizeof p->refused - rn, "%s%s: %.200s", rn ? "; " : "",
                 l->version, l->bytes ? e.msg : "its bundle is missing");
        lib_bundle_free(&b); /* (lib_open left it empty when it refused) */
        return 0;
    }
    if (p->have)
        lib_bundle_free(&p->best);
    p->best = b;
    p->have = true;
    return 0;
}

struct resolve_ctx {
    const struct strlist *pins, *trust;
    struct lib_set *set;
    struct tikd_err *e;
};

static const char *pin_of(const struct strlist *pins, const char *name)
{
    size_t nl = strlen(name);
    for (size_t i = 0; i < pins->n; i++)
        if (strncmp(pins->v[i], name, nl) == 0 && pins->v[i][nl] == '=')
            return pins->v[i] + nl + 1;
    return NULL;
}

/* Take name in range (for whom, in messages) into the set. */
static int take(struct store_txn *t, struct resolve_ctx *r, const char *name, const char *range,
                const char *by)
{
    const struct lib_bundle *have = lib_set_find(r->set, name);
    if (have) {
        if (semver_satisfies(&have->v, range))
            return 0;
        return tikd_fail(r->e, TIKD_ENOTFOUND, "library %s: %s@%s was chosen, but %s requires %s",
                         name, name, have->version, by, range);
    }
    if (r->set->n == LIB_SET_MAX)
        return tikd_fail(r->e, TIKD_EFULL, "more than %d libraries", LIB_SET_MAX);
    const char *pin = pin_of(r->pins, name);
    struct pick_ctx p = {.name = name,
                         .range = range,
                         .pin = pin && strcmp(pin, range) ? pin : NULL,
                         .trust = r->trust};
    int rc = lib_foreach(t, pick_one, &p);
    if (rc != 0) {
        if (p.have)
            lib_bundle_free(&p.best);
        return rc;
    }
    if (!p.have)
        return tikd_fail(r->e, TIKD_ENOTFOUND,
                         "library %s: no installed version meets %s (%s)%s%s%s", name, range, by,
                         p.seen[0] ? "installed: " : "none is installed: tikd lib install", p.seen,
                         p.refused[0] ? "; refused: " : "");
    struct lib_bundle *nv = realloc(r->set->v, (r->set->n + 1) * sizeof *nv);
    if (!nv) {
        lib_bundle_free(&p.best);
        return TIKD_ENOMEM;
    }
    r->set->v = nv;
    nv[r->set->n++] = p.best;
    return 0;
}

static int resolve_txn(struct store_txn *t, void *ctx)
{
    struct resolve_ctx *r = ctx;
    int rc = 0;
    for (size_t i = 0; rc == 0 && i < r->pins->n; i++) {
        char name[80];
        const char *eq = strchr(r->pins->v[i], '=');
        snprintf(name, sizeof name, "%.*s", eq ? (int)(eq - r->pins->v[i]) : 0, r->pins->v[i]);
        rc = eq ? take(t, r, name, eq + 1, "the config's pin") : TIKD_EINVAL;
    }
    /* what the chosen ones require, breadth first (the set grows as it is walked) */
    for (size_t i = 0; rc == 0 && i < r->set->n; i++)
        for (size_t k = 0; rc == 0 && k < r->set->v[i].nreq; k++) {
            char by[160];
            snprintf(by, sizeof by, "%s@%s", r->set->v[i].name, r->set->v[i].version);
            rc = take(t, r, r->set->v[i].req_name[k], r->set->v[i].req_range[k], by);
        }
    return rc;
}

int lib_resolve(struct store *s, const struct strlist *pins, const struct strlist *trust,
                struct lib_set **out, struct tikd_err *e)
{
    *out = NULL;
    if (!pins || !pins->n)
        return 0;
    if (!s)
        return tikd_fail(e, TIKD_ENOTFOUND,
                         "libraries are pinned (libs = { ... }) but there is no database to "
                         "load them from");
    struct resolve_ctx r = {pins, trust, calloc(1, sizeof *r.set), e};
    if (!r.set)
        return tikd_fail(e, TIKD_ENOMEM, "out of memory");
    int rc = store_read(s, resolve_txn, &r, e);
    if (rc != 0) {
        lib_set_free(r.set);
        return rc;
    }
    *out = r.set;
    return 0;
}
