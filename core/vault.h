/* vault.h - secrets at rest: AES-256-GCM, bound to their owner and field.
 *
 * A sealed record is stored in STORE_DB_VAULT under the key owner '\0'
 * field, and that same key is the cipher's AAD: a ciphertext copied to
 * another account or another field fails to open. Each record names the key
 * that sealed it, so keys can rotate: the key file lists named keys, the last
 * one seals, any listed one opens. Keys come from a file (mode 0600 enforced)
 * or the environment, never from the database; a canary record proves at
 * open time that the key matches the database, before anything is touched.
 *
 * Plaintexts handed out are in buffers the caller must release with
 * vault_wipe_free(), which wipes them first. */
#ifndef TIKD_VAULT_H
#define TIKD_VAULT_H

#include "err.h"
#include "store.h"

#include <stddef.h>

struct vault;

/* Load keys from key_file (if not NULL) or else from env_key ("ID:BASE64"
 * or "BASE64", a 32-byte key). Fails with a message that says what to do:
 * no key configured, file unreadable, mode too open, malformed line. */
int vault_load(struct vault **out, const char *key_file, const char *env_key, struct tikd_err *e);

/* Wipe and free the keys; NULL is fine. */
void vault_free(struct vault *v);

/* The id of the key that seals new records. */
const char *vault_key_id(const struct vault *v);

/* Check the canary (creating it on a fresh database): TIKD_ECORRUPT with a
 * clear message if these keys cannot open what this database holds. */
int vault_check(struct vault *v, struct store_txn *t, struct tikd_err *e);

/* Seal plaintext for (owner, field) and store it in the caller's write
 * transaction. */
int vault_put(struct vault *v, struct store_txn *t, const char *owner, const char *field,
              const void *pt, size_t n, struct tikd_err *e);

/* Open the record of (owner, field): *pt is a new NUL-terminated buffer the
 * caller releases with vault_wipe_free(). TIKD_ENOTFOUND if there is none,
 * TIKD_ECORRUPT if it does not open (moved, edited, or an unknown key). */
int vault_get(struct vault *v, struct store_txn *t, const char *owner, const char *field, char **pt,
              size_t *n, struct tikd_err *e);

/* Store a record sealed elsewhere (another node of a cluster, with the same
 * key file) as it is, once it opens here for (owner, field): TIKD_ECORRUPT,
 * with a message that names the field, when it does not (a key this node
 * lacks, or a record bound to another owner or field). */
int vault_adopt(struct vault *v, struct store_txn *t, const char *owner, const char *field,
                const void *rec, size_t n, struct tikd_err *e);

/* Delete every record of owner (all fields). */
int vault_del_owner(struct store_txn *t, const char *owner);

/* Re-seal every record under the current key, in the caller's transaction;
 * *count receives how many. */
int vault_reseal_all(struct vault *v, struct store_txn *t, size_t *count, struct tikd_err *e);

/* Wipe and free a plaintext from vault_get(); NULL is fine. */
void vault_wipe_free(char *p, size_t n);

/* Key files: create one with a first key (refuses to overwrite), or append
 * a new key (which then seals); the new key's id is written to id_out. */
int vault_keyfile_create(const char *path, char *id_out, size_t n, struct tikd_err *e);
int vault_keyfile_add(const char *path, char *id_out, size_t n, struct tikd_err *e);

#endif
