/* admin.h - who may use the admin API: bearer tokens and their roles.
 *
 * A token is "tikd_" and 43 characters of base64url (32 random bytes). It is
 * shown once, when created; the store keeps only its SHA-256, under which it
 * is looked up, with its name, role, creation and last use (STORE_DB_ADMIN:
 * "t:" HASH -> record, "n:" NAME -> HASH). Roles are ordered: a viewer
 * reads; an operator also approves, rejects, cancels, retries, posts and
 * starts connecting accounts; an admin also manages tokens. Creating and revoking a
 * token are audit records. */
#ifndef TIKD_ADMIN_H
#define TIKD_ADMIN_H

#include "err.h"
#include "store.h"

#include <stdbool.h>

enum admin_role { ROLE_NONE, ROLE_VIEWER, ROLE_OPERATOR, ROLE_ADMIN };

#define ADMIN_NAME_MAX  64
#define ADMIN_TOKEN_LEN 48 /* "tikd_" + 43 */

struct admin_token {
    char name[ADMIN_NAME_MAX + 1];
    enum admin_role role;
    double created_at, last_used; /* last_used: 0 never */
    char hash[65];                /* SHA-256 of the token, hex */
    char tenant[33]; /* a tenant's token reaches only its accounts and jobs ("": all) */
};

const char *admin_role_name(enum admin_role r);
/* ROLE_NONE for anything but "viewer", "operator", "admin". */
enum admin_role admin_role_parse(const char *s);
/* Token names: 1-64 of [A-Za-z0-9._-], not starting with '.' or '-'. */
bool admin_name_valid(const char *name);

/* Create a token called name with role (for tenant, or NULL: every one), in
 * t, with an audit record by
 * actor; the token itself into out (ADMIN_TOKEN_LEN + 1 bytes), never
 * stored. TIKD_EEXIST when the name is taken, TIKD_EINVAL for a bad name
 * or role. */
int admin_token_create(struct store_txn *t, const char *name, enum admin_role role,
                       const char *tenant, const char *actor, char out[ADMIN_TOKEN_LEN + 1],
                       struct tikd_err *e);

/* Revoke the token called name, in t (audit record by actor);
 * TIKD_ENOTFOUND when there is none. */
int admin_token_revoke(struct store_txn *t, const char *name, const char *actor,
                       struct tikd_err *e);

/* Each token, in name order, until fn returns non-zero. */
int admin_token_foreach(struct store_txn *t, int (*fn)(const struct admin_token *k, void *ctx),
                        void *ctx);

/* The token a request presented (the bearer string, any length): 0 and *out
 * when it is a live token, TIKD_ENOTFOUND otherwise. The lookup is by its
 * hash, so no comparison of secrets depends on their bytes. */
int admin_token_check(struct store *s, const char *token, struct admin_token *out);

/* The same, by the token's hash (a stream checks its token again). */
int admin_token_check_hash(struct store *s, const char *hash, struct admin_token *out);

/* Record that the token with this hash was used at now (the API does it at
 * most once a minute per token). */
int admin_token_touch(struct store *s, const char *hash, double now, struct tikd_err *e);

#endif
