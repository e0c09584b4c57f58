/* account.h - the account registry: one record per connected TikTok account.
 *
 * Records hold what an operator may see (name, open_id, granted scopes,
 * token expiries, state); the tokens themselves live sealed in the vault
 * under the account's id, which is random and never reused, so a removed and
 * re-added name can never open the old account's ciphertexts. */
#ifndef TIKD_ACCOUNT_H
#define TIKD_ACCOUNT_H

#include "err.h"
#include "store.h"

#include <stdbool.h>

enum acct_state { ACCT_PENDING, ACCT_ACTIVE, ACCT_NEEDS_REAUTH, ACCT_REVOKED };

#define ACCT_NAME_MAX 64

struct account {
    char id[33]; /* 32 hex characters */
    char name[ACCT_NAME_MAX + 1];
    char open_id[160];
    char scopes[256]; /* granted, comma-separated as TikTok sends them */
    enum acct_state state;
    double access_expires_at, refresh_expires_at; /* 0: no token */
    double access_lifetime;                       /* seconds, as the last grant said */
    double created_at, updated_at;
    char reason[256];  /* why the state is what it is */
    int max_video_s;   /* creator_info's max_video_post_duration_sec when last asked, or 0 */
    double creator_at; /* ... when that was */
    char tenant[33];   /* the tenant whose rules may act on it ("": none, or no tenants) */
};

/* May rules (or an admin token) of tenant `tenant` see account a? NULL
 * tenant: the implicit one (no tenants configured) or the operator, who see
 * every account. */
bool account_in_tenant(const struct account *a, const char *tenant);

/* Names: 1-64 of [A-Za-z0-9._-], not starting with '.' or '-'. */
bool account_name_valid(const char *name);

const char *account_state_name(enum acct_state s);

/* A new pending account with a fresh random id. */
void account_init(struct account *a, const char *name, double now);

/* Read, write, delete one record inside a transaction. get returns
 * TIKD_ENOTFOUND for an unknown name, TIKD_ECORRUPT for a bad record. */
int account_get(struct store_txn *t, const char *name, struct account *out);
int account_put(struct store_txn *t, const struct account *a);
int account_del(struct store_txn *t, const char *name);

/* A record as account_get() reads it (one from another node of a cluster):
 * 0, or TIKD_ECORRUPT. */
int account_decode(const void *p, size_t n, struct account *a);

/* Every account, in name order, until fn returns non-zero. */
int account_foreach(struct store_txn *t, int (*fn)(const struct account *a, void *ctx), void *ctx);

/* The active accounts whose access token (refresh false) or refresh token
 * (refresh true) expires at or before `until`, soonest first, by the expiry
 * index account_put() keeps: fn(name, ctx) until it returns non-zero. The
 * token sweep reads what is due, not every account. */
int account_foreach_expiring(struct store_txn *t, bool refresh, double until,
                             int (*fn)(const char *name, void *ctx), void *ctx);

/* Index every stored account's tokens (the schema step that brought it). */
int account_index_build(struct store_txn *t);

/* Remember what creator_info said of the creator's longest video (a write
 * only when it changed), for `tikd media check --account`. */
int account_note_creator(struct store *s, const char *name, int max_video_s, double now,
                         struct tikd_err *e);

/* True if the comma-separated list `have` holds every scope in `need`. */
bool account_has_scopes(const char *have, const char *need);

#endif
