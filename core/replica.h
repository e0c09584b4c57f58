/* replica.h - an account's state as the nodes of a cluster hand it on
 * (docs/cluster.md).
 *
 * The node that holds an account's lease writes the account through to
 * Redis before each of its requests to TikTok leaves (core/cluster: the
 * admit check): its record, its sealed tokens (vault ciphertext, never
 * plaintext), its own budgets and its open jobs. A node granted the lease
 * reads that back into its LMDB before it acts, and so resumes exactly
 * where the last holder's last request left off, as a restart resumes
 * from LMDB: what the holder wrote after its last request was never acted
 * on, so losing it loses nothing.
 *
 * This module is the LMDB side: a snapshot of one account, and applying
 * one. It knows nothing of Redis. A job travels under a cluster key,
 * "NODE:ID" (NODE: the node that planned it, as the caller names it, which
 * the daemon makes "name~database"; ID: its id there), since every
 * node numbers its jobs itself. */
#ifndef TIKD_REPLICA_H
#define TIKD_REPLICA_H

#include "err.h"
#include "store.h"
#include "vault.h"

#include <stddef.h>
#include <stdint.h>

struct replica_item {
    char *key;
    unsigned char *val;
    size_t klen, vlen;
};

struct replica_snap {
    /* the account: "rec" (its record), "v:FIELD" (sealed), "l:KEY" (budgets) */
    struct replica_item *acct;
    size_t nacct;
    struct replica_item *open; /* cluster key -> job record (ids are the holder's own) */
    size_t nopen;
    struct replica_item *done; /* export: jobs final since the last snapshot; import: what
                                * Redis knows of local open jobs missing from open ('F' and
                                * a final record, or 'L' and the last open one) */
    size_t ndone;
    struct replica_item *keys; /* the keys posts were planned under: scope NUL key -> cluster
                                * key (export: the open jobs'; import: every one Redis has) */
    size_t nkeys;
    uint64_t *ids;   /* export: the local ids of the open jobs, in open's order */
    uint64_t digest; /* of acct and open (export): the same digest, the same state */
};

/* The snapshot of account (name) here. prev: the local ids of the jobs open
 * in the last snapshot written (those final now go into done). 0, or
 * TIKD_ENOTFOUND (no such account here), TIKD_ENOMEM, a store error. */
int replica_export(struct store_txn *t, const char *node, const char *account, const uint64_t *prev,
                   size_t nprev, struct replica_snap *s);

/* Make account here what s says (a snapshot read back from Redis): its
 * record, sealed tokens and budgets replaced, its jobs written over the
 * local copies by cluster key or added; a local open job s has as final
 * becomes final. Local jobs s does not know (planned here, never written
 * through) stay. An empty s (Redis has nothing) changes nothing: 0 when
 * the account is here, TIKD_ENOTFOUND when not. TIKD_ECORRUPT (e says
 * which record) changes nothing either. */
int replica_import(struct store_txn *t, struct vault *v, const char *node, const char *account,
                   const struct replica_snap *s, struct tikd_err *e);

/* The open jobs planned here for account, under their cluster keys, in
 * s->open (nothing else): what a node that does not hold the account
 * offers its holder. 0 (none is fine), or a store error. */
int replica_export_planned(struct store_txn *t, const char *node, const char *account,
                           struct replica_snap *s);

/* The jobs of items (cluster key -> record, as replica_export_planned gave
 * them) written here, over the local copies by cluster key or added: the
 * holder takes what another node offered. TIKD_ECORRUPT changes nothing. */
int replica_import_jobs(struct store_txn *t, const char *node, const char *account,
                        const struct replica_item *items, size_t n, struct tikd_err *e);

/* Add an item (copies key and value): 0 or TIKD_ENOMEM. */
int replica_add(struct replica_item **items, size_t *n, const void *key, size_t klen,
                const void *val, size_t vlen);

void replica_snap_free(struct replica_snap *s);

#endif
