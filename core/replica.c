/* replica.c - an account's state, out of LMDB and back (see replica.h). */
#include "replica.h"

#include "account.h"
#include "clock.h"
#include "job.h"
#include "jobrec.h"
#include "ratelimit.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int replica_add(struct replica_item **items, size_t *n, const void *key, size_t klen,
                const void *val, size_t vlen)
{
    if ((*n & (*n - 1)) == 0) { /* 0, 1, 2, 4, ...: grown to the next power of two */
        struct replica_item *t = realloc(*items, (*n ? *n * 2 : 4) * sizeof *t);
        if (!t)
            return TIKD_ENOMEM;
        *items = t;
    }
    struct replica_item *it = &(*items)[*n];
    it->key = malloc(klen + 1);
    it->val = malloc(vlen + 1);
    if (!it->key || !it->val) {
        free(it->key);
        free(it->val);
        return TIKD_ENOMEM;
    }
    memcpy(it->key, key, klen);
    it->key[klen] = '\0';
    if (vlen)
        memcpy(it->val, val, vlen);
    it->val[vlen] = '\0';
    it->klen = klen;
    it->vlen = vlen;
    (*n)++;
    return 0;
}

static void items_free(struct replica_item *items, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(items[i].key);
        if (items[i].val) /* sealed tokens pass through here: wiped all the same */
            memset(items[i].val, 0, items[i].vlen);
        free(items[i].val);
    }
    free(items);
}

void replica_snap_free(struct replica_snap *s)
{
    items_free(s->acct, s->nacct);
    items_free(s->open, s->nopen);
    items_free(s->done, s->ndone);
    items_free(s->keys, s->nkeys);
    free(s->ids);
    memset(s, 0, sizeof *s);
}

/* ---- export ------------------------------------------------------------------------ */

struct ex {
    struct replica_snap *s;
    const char *node;
    const char *vowner; /* the account's id: its vault records' owner */
    size_t volen;
    struct job *tmp;
    size_t nids;
};

/* j under its cluster key: the record without what only this node means by
 * it (its origin, when it was imported; its id here stays, as a record
 * needs one, and is never read back as an id) */
static void ckey_of(const char *node, const struct job *j, char *out, size_t n)
{
    if (j->origin[0])
        snprintf(out, n, "%s", j->origin);
    else
        snprintf(out, n, "%s:%" PRIu64, node, j->id);
}

/* A post's key as core/post keeps it: scope NUL key (its length, or 0). */
static size_t plan_key(const struct job *j, char *out, size_t n)
{
    size_t ls = strlen(j->key_scope), lk = strlen(j->key);
    if (!lk || ls + 1 + lk > n)
        return 0;
    memcpy(out, j->key_scope, ls + 1);
    memcpy(out + ls + 1, j->key, lk);
    return ls + 1 + lk;
}

static int add_job(struct ex *x, struct replica_item **items, size_t *n, const struct job *j,
                   char tag)
{
    char ckey[100];
    ckey_of(x->node, j, ckey, sizeof ckey);
    *x->tmp = *j;
    x->tmp->origin[0] = '\0';
    x->tmp->imported_at = 0;
    unsigned char *rec;
    size_t rn;
    if (jobrec_encode(x->tmp, &rec, &rn) != 0)
        return TIKD_ENOMEM;
    int rc;
    if (tag) { /* done: a mark, then the record */
        unsigned char *m = malloc(rn + 1);
        rc = m ? 0 : TIKD_ENOMEM;
        if (m) {
            m[0] = (unsigned char)tag;
            memcpy(m + 1, rec, rn);
            rc = replica_add(items, n, ckey, strlen(ckey), m, rn + 1);
            free(m);
        }
    } else {
        rc = replica_add(items, n, ckey, strlen(ckey), rec, rn);
    }
    free(rec);
    return rc;
}

static int open_one(const struct job *j, void *ctx)
{
    struct ex *x = ctx;
    int rc = add_job(x, &x->s->open, &x->s->nopen, j, 0);
    char k[400], ckey[100];
    size_t kl = plan_key(j, k, sizeof k);
    if (rc == 0 && kl) {
        ckey_of(x->node, j, ckey, sizeof ckey);
        rc = replica_add(&x->s->keys, &x->s->nkeys, k, kl, ckey, strlen(ckey));
    }
    if (rc != 0)
        return rc;
    uint64_t *ids = realloc(x->s->ids, (x->nids + 1) * sizeof *ids);
    if (!ids)
        return TIKD_ENOMEM;
    ids[x->nids++] = j->id;
    x->s->ids = ids;
    return 0;
}

static int vault_one(struct store_val k, struct store_val v, void *ctx)
{
    struct ex *x = ctx;
    char key[300];
    size_t fl = k.n - x->volen - 1;
    if (fl + 2 >= sizeof key)
        return TIKD_ECORRUPT;
    memcpy(key, "v:", 2);
    memcpy(key + 2, (const char *)k.p + x->volen + 1, fl);
    return replica_add(&x->s->acct, &x->s->nacct, key, fl + 2, v.p, v.n);
}

static int limit_one(void *ctx, const char *key, size_t kl, const void *v, size_t n)
{
    struct ex *x = ctx;
    char k[300];
    if (kl + 2 >= sizeof k)
        return TIKD_ECORRUPT;
    memcpy(k, "l:", 2);
    memcpy(k + 2, key, kl);
    return replica_add(&x->s->acct, &x->s->nacct, k, kl + 2, v, n);
}

static uint64_t fnv(uint64_t h, const void *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        h = (h ^ ((const unsigned char *)p)[i]) * 1099511628211ull;
    return h;
}

static uint64_t digest_of(const struct replica_snap *s)
{
    uint64_t h = 14695981039346656037ull;
    const struct replica_item *sets[2] = {s->acct, s->open};
    size_t ns[2] = {s->nacct, s->nopen};
    for (int k = 0; k < 2; k++) {
        for (size_t i = 0; i < ns[k]; i++) {
            uint64_t len[2] = {sets[k][i].klen, sets[k][i].vlen};
            h = fnv(h, len, sizeof len);
            h = fnv(h, sets[k][i].key, sets[k][i].klen);
            h = fnv(h, sets[k][i].val, sets[k][i].vlen);
        }
        h = fnv(h, "|", 1);
    }
    return h ? h : 1; /* 0 means "never written" to the caller */
}

int replica_export(struct store_txn *t, const char *node, const char *account, const uint64_t *prev,
                   size_t nprev, struct replica_snap *s)
{
    memset(s, 0, sizeof *s);
    struct store_val rec;
    int rc = store_get(t, STORE_DB_ACCOUNTS, account, strlen(account), &rec);
    if (rc != 0)
        return rc;
    struct account a;
    if ((rc = account_get(t, account, &a)) != 0)
        return rc;
    struct ex x = {.s = s, .node = node, .vowner = a.id, .volen = strlen(a.id)};
    if (!(x.tmp = malloc(sizeof *x.tmp)))
        return TIKD_ENOMEM;
    rc = replica_add(&s->acct, &s->nacct, "rec", 3, rec.p, rec.n);
    char vp[80];
    memcpy(vp, a.id, x.volen + 1); /* the prefix: owner and its NUL */
    if (rc == 0)
        rc = store_foreach(t, STORE_DB_VAULT, vp, x.volen + 1, vault_one, &x);
    if (rc == 0)
        rc = rl_account_each(t, account, limit_one, &x);
    if (rc == 0)
        rc = job_foreach_account_open(t, account, open_one, &x);
    for (size_t i = 0; rc == 0 && i < nprev; i++) { /* open then, final now */
        int got = job_get(t, prev[i], x.tmp);
        if (got == TIKD_ENOTFOUND)
            continue;
        if (got != 0)
            rc = got;
        else if (job_state_final(x.tmp->state) && strcmp(x.tmp->account, account) == 0) {
            struct job *j = malloc(sizeof *j);
            rc = j ? 0 : TIKD_ENOMEM;
            if (j) {
                *j = *x.tmp;
                rc = add_job(&x, &s->done, &s->ndone, j, 'F');
                free(j);
            }
        }
    }
    free(x.tmp);
    if (rc != 0) {
        replica_snap_free(s);
        return rc;
    }
    s->digest = digest_of(s);
    return 0;
}

static int planned_one(const struct job *j, void *ctx)
{
    struct ex *x = ctx;
    return j->origin[0] ? 0 : add_job(x, &x->s->open, &x->s->nopen, j, 0);
}

int replica_export_planned(struct store_txn *t, const char *node, const char *account,
                           struct replica_snap *s)
{
    memset(s, 0, sizeof *s);
    struct ex x = {.s = s, .node = node};
    if (!(x.tmp = malloc(sizeof *x.tmp)))
        return TIKD_ENOMEM;
    int rc = job_foreach_account_open(t, account, planned_one, &x);
    free(x.tmp);
    if (rc != 0)
        replica_snap_free(s);
    return rc;
}

/* ---- import ------------------------------------------------------------------------ */

/* The local job of account that cluster key ckey names: its id, or 0 for
 * none. A key of this node's names the job by its id here, if that job is
 * still the one (the same account and, when created_at >= 0, planned at
 * that moment); else it may have come back here under its key (the origin
 * index). */
static int local_of(struct store_txn *t, const char *node, const char *account, const char *ckey,
                    double created_at, struct job *tmp, uint64_t *id)
{
    *id = 0;
    size_t nl = strlen(node);
    if (strncmp(ckey, node, nl) == 0 && ckey[nl] == ':') {
        char *end;
        uint64_t n = strtoull(ckey + nl + 1, &end, 10);
        int rc = n && !*end ? job_get(t, n, tmp) : TIKD_ENOTFOUND;
        if (rc != 0 && rc != TIKD_ENOTFOUND)
            return rc;
        if (rc == 0 && strcmp(tmp->account, account) == 0 &&
            (created_at < 0 || tmp->created_at == created_at)) {
            *id = n;
            return 0;
        }
    }
    int rc = job_find_origin(t, ckey, id);
    return rc == TIKD_ENOTFOUND ? 0 : rc;
}

static int import_job(struct store_txn *t, const char *node, const char *account,
                      const struct replica_item *it, const unsigned char *rec, size_t n,
                      struct job *j, struct job *tmp, struct tikd_err *e)
{
    if (jobrec_decode(rec, n, j) != 0 || strcmp(j->account, account) != 0)
        return tikd_fail(e, TIKD_ECORRUPT, "cluster: job %s of %s from Redis is not one of its",
                         it->key, account);
    uint64_t id;
    int rc = local_of(t, node, j->account, it->key, j->created_at, tmp, &id);
    if (rc != 0)
        return rc;
    size_t nl = strlen(node);
    bool mine = strncmp(it->key, node, nl) == 0 && it->key[nl] == ':' && id;
    snprintf(j->origin, sizeof j->origin, "%s", mine ? "" : it->key);
    return job_import(t, j, id);
}

/* META's key for the post key of j (scope NUL key), or 0 without one. */
static size_t meta_key(const struct job *j, char *out, size_t n)
{
    if (n < 8)
        return 0;
    memcpy(out, "jobkey:", 7);
    size_t kl = plan_key(j, out + 7, n - 7);
    return kl ? kl + 7 : 0;
}

int replica_import_jobs(struct store_txn *t, const char *node, const char *account,
                        const struct replica_item *items, size_t n, struct tikd_err *e)
{
    struct job *j = malloc(sizeof *j), *tmp = malloc(sizeof *tmp);
    int rc = j && tmp ? 0 : TIKD_ENOMEM;
    for (size_t i = 0; rc == 0 && i < n; i++) {
        const struct replica_item *it = &items[i];
        if (jobrec_decode(it->val, it->vlen, j) != 0 || strcmp(j->account, account) != 0) {
            rc = tikd_fail(e, TIKD_ECORRUPT, "cluster: job %s offered for %s is not one of its",
                           it->key, account);
            break;
        }
        uint64_t id;
        if ((rc = local_of(t, node, account, it->key, j->created_at, tmp, &id)) != 0)
            break;
        if (id && (rc = job_get(t, id, tmp)) == 0 && job_state_final(tmp->state))
            continue; /* taken before, and ended here: never brought back */
        if (rc != 0)
            break;
        char mk[600];
        size_t ml = meta_key(j, mk, sizeof mk);
        struct store_val have;
        if (!id && ml && store_get(t, STORE_DB_META, mk, ml, &have) == 0)
            continue; /* its key is planned here already: that post is the one */
        if ((rc = import_job(t, node, account, it, it->val, it->vlen, j, tmp, e)) != 0)
            break;
        if (ml) { /* its key is planned here now */
            unsigned char be[8];
            store_be64_put(be, j->id);
            rc = store_put(t, STORE_DB_META, mk, ml, be, 8);
        }
    }
    free(j);
    free(tmp);
    return rc;
}

struct local_open {
    uint64_t *ids;
    size_t n;
};

static int local_one(const struct job *j, void *ctx)
{
    struct local_open *l = ctx;
    uint64_t *ids = realloc(l->ids, (l->n + 1) * sizeof *ids);
    if (!ids)
        return TIKD_ENOMEM;
    ids[l->n++] = j->id;
    l->ids = ids;
    return 0;
}

static const struct replica_item *item(const struct replica_item *items, size_t n, const char *key)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(items[i].key, key) == 0)
            return &items[i];
    return NULL;
}

int replica_import(struct store_txn *t, struct vault *v, const char *node, const char *account,
                   const struct replica_snap *s, struct tikd_err *e)
{
    struct account here, a;
    int had = account_get(t, account, &here);
    if (had != 0 && had != TIKD_ENOTFOUND)
        return had;
    const struct replica_item *rec = item(s->acct, s->nacct, "rec");
    if (!rec) /* nothing written through yet: this node's copy stands */
        return had;
    if (account_decode(rec->val, rec->vlen, &a) != 0 || strcmp(a.name, account) != 0)
        return tikd_fail(e, TIKD_ECORRUPT, "cluster: the record of %s in Redis is not one",
                         account);
    int rc = 0;
    if (had == 0 && strcmp(here.id, a.id) != 0)
        rc = vault_del_owner(t, here.id); /* connected here on its own, once */
    if (rc == 0)
        rc = vault_del_owner(t, a.id);
    if (rc == 0)
        rc = rl_account_drop(t, account);
    if (rc == 0)
        rc = account_put(t, &a);
    for (size_t i = 0; rc == 0 && i < s->nacct; i++) {
        const struct replica_item *it = &s->acct[i];
        if (strncmp(it->key, "v:", 2) == 0)
            rc = vault_adopt(v, t, a.id, it->key + 2, it->val, it->vlen, e);
        else if (strncmp(it->key, "l:", 2) == 0 &&
                 rl_account_put(t, account, it->key + 2, it->klen - 2, it->val, it->vlen) != 0)
            rc = tikd_fail(e, TIKD_ECORRUPT, "cluster: budget record %s of %s is not one",
                           it->key + 2, account);
    }
    struct job *j = malloc(sizeof *j), *tmp = malloc(sizeof *tmp);
    struct local_open lo = {0};
    if (!j || !tmp)
        rc = rc ? rc : TIKD_ENOMEM;
    /* the local open jobs, before any is written over */
    if (rc == 0)
        rc = job_foreach_account_open(t, account, local_one, &lo);
    for (size_t i = 0; rc == 0 && i < s->nopen; i++)
        rc = import_job(t, node, account, &s->open[i], s->open[i].val, s->open[i].vlen, j, tmp, e);
    /* a local open job Redis has as ended: ended here too */
    for (size_t i = 0; rc == 0 && i < lo.n; i++) {
        if ((rc = job_get(t, lo.ids[i], tmp)) != 0)
            break;
        char ckey[100];
        ckey_of(node, tmp, ckey, sizeof ckey);
        if (job_state_final(tmp->state) || item(s->open, s->nopen, ckey))
            continue; /* ended, or written over just now */
        const struct replica_item *d = item(s->done, s->ndone, ckey);
        if (!d || d->vlen < 2)
            continue; /* never written through: planned here, it stays */
        if (d->val[0] == 'F') {
            rc = import_job(t, node, account, d, d->val + 1, d->vlen - 1, j, tmp, e);
            continue;
        }
        /* 'L': it ended on a node that could not write how; its last known
         * state was acted on since, so it is never resumed from */
        tmp->state = JOB_FAILED;
        snprintf(tmp->fail_reason, sizeof tmp->fail_reason, "cluster_lost");
        snprintf(tmp->reason, sizeof tmp->reason,
                 "it ended on another node of the cluster, which could not record how: it may "
                 "have been posted (look at the account's posts before posting it again)");
        tmp->imported_at = clock_now();
        rc = job_put(t, tmp);
    }
    /* the keys posts were planned under anywhere: planned once in the cluster. A key
     * whose job is not here names job 0 (planned on another node) */
    for (size_t i = 0; rc == 0 && i < s->nkeys; i++) {
        const struct replica_item *k = &s->keys[i];
        char mk[600];
        if (k->klen + 7 > sizeof mk || !memchr(k->key, '\0', k->klen)) {
            rc = tikd_fail(e, TIKD_ECORRUPT, "cluster: a post key of %s in Redis is not one",
                           account);
            break;
        }
        memcpy(mk, "jobkey:", 7);
        memcpy(mk + 7, k->key, k->klen);
        struct store_val have;
        int got = store_get(t, STORE_DB_META, mk, k->klen + 7, &have);
        if (got == 0 && (have.n != 8 || store_be64_get(have.p) != 0))
            continue; /* known here, with its job */
        uint64_t id = 0;
        if ((rc = local_of(t, node, account, (const char *)k->val, -1, tmp, &id)) != 0)
            break;
        if (got == 0 && !id)
            continue;
        unsigned char be[8];
        store_be64_put(be, id);
        rc = store_put(t, STORE_DB_META, mk, k->klen + 7, be, 8);
    }
    free(lo.ids);
    free(j);
    free(tmp);
    return rc;
}
