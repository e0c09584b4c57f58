/* libs.h - shared rule libraries: versioned, signed bundles of Lua modules.
 *
 * A library is a folder with manifest.json ({ "name", "version" (semver),
 * "description", "tikd_api", "requires": { name: range } }) and Lua modules
 * (init.lua is `require "name"`, fmt.lua is `require "name.fmt"`). `tikd lib
 * pack` makes one file of it, a bundle: the manifest, every file with its
 * SHA-256, and an Ed25519 signature (OpenSSL's EVP API) over
 *   "tikd-lib/1\n" canonical-manifest "\n" ("SHA256 PATH\n" per file)
 * whose SHA-256 is the bundle's digest, its content address. Installed
 * bundles live in LMDB (STORE_DB_LIBS: "b:" DIGEST -> the bundle, "v:" NAME
 * NUL VERSION -> its digest and signer) and are immutable: a version is
 * installed once, with one content. A tenant's pins (`libs = { captions =
 * "^1.2" }`) resolve, at each reload, to the highest installed version each
 * range allows whose signer the tenant trusts, with every `requires`
 * satisfied; every bundle is verified again as it is loaded. */
#ifndef TIKD_LIBS_H
#define TIKD_LIBS_H

#include "config.h"
#include "err.h"
#include "semver.h"
#include "store.h"

#include <stdbool.h>
#include <stddef.h>

#define LIB_API        1         /* the rule API this tikd offers libraries */
#define LIB_BUNDLE_MAX (4 << 20) /* bytes of a bundle */
#define LIB_FILES_MAX  256
#define LIB_SET_MAX    64 /* libraries one tenant's pins may bring in */
#define LIB_KEY_LEN    52 /* "ed25519:" + 44 characters of base64 */

struct lib_file {
    char *path; /* "init.lua", "fmt/emoji.lua" */
    char *data;
    size_t len;
};

struct lib_bundle {
    char name[65];
    char version[SEMVER_MAX];
    struct semver v;
    char description[256];
    int api;
    char key[LIB_KEY_LEN + 1]; /* its signer */
    char digest[65];
    char **req_name, **req_range; /* requires */
    size_t nreq;
    struct lib_file *files;
    size_t nfiles;
};

void lib_bundle_free(struct lib_bundle *b);

/* A new Ed25519 key: the private key written to path (PKCS#8 PEM, mode
 * 0600, never over an existing file), its public key into pub. */
int lib_keygen(const char *path, char pub[LIB_KEY_LEN + 1], struct tikd_err *e);

/* The bundle of the library in dir, signed with the key in key_path: *out
 * (malloc'd) of *len bytes, and what it holds in info. */
int lib_pack(const char *dir, const char *key_path, char **out, size_t *len,
             struct lib_bundle *info, struct tikd_err *e);

/* Read and verify a bundle: its form, every file's hash, the signature, and
 * that trust (NULL: any key) holds the signer. A tampered, unsigned or
 * untrusted bundle is refused with what is wrong (TIKD_EINVAL), and so is
 * one for a newer rule API than LIB_API. */
int lib_open(const char *bytes, size_t len, const struct strlist *trust, struct lib_bundle *out,
             struct tikd_err *e);

/* Install a verified bundle (from lib_open) in t, with an audit record by
 * actor. The same bundle again is no change (*again set); another content
 * for an installed name@version is refused (TIKD_EEXIST). */
int lib_install(struct store_txn *t, const char *bytes, size_t len, const struct lib_bundle *b,
                const char *actor, bool *again, struct tikd_err *e);

/* Each installed bundle, by name then version as stored, until fn returns
 * non-zero: its bytes are valid during fn. */
struct lib_entry {
    const char *name, *version, *digest, *key;
    double installed_at;
    const char *bytes;
    size_t len;
};
int lib_foreach(struct store_txn *t, int (*fn)(const struct lib_entry *l, void *ctx), void *ctx);

/* The libraries a tenant's pins resolve to (see above). */
struct lib_set {
    struct lib_bundle *v;
    size_t n;
};

/* Resolve pins ("name=range") among the installed bundles whose signer
 * trust holds: 0 and *out (NULL when there are no pins), or the reason in
 * e (TIKD_ENOTFOUND: a pin or a requirement no installed version meets). */
int lib_resolve(struct store *s, const struct strlist *pins, const struct strlist *trust,
                struct lib_set **out, struct tikd_err *e);
void lib_set_free(struct lib_set *set);

/* The library called name in set, or NULL. */
const struct lib_bundle *lib_set_find(const struct lib_set *set, const char *name);

/* The file of module `module` ("captions", "captions.fmt") in b: init.lua,
 * fmt.lua or fmt/init.lua; NULL if there is none. */
const struct lib_file *lib_module(const struct lib_bundle *b, const char *module);

#endif
