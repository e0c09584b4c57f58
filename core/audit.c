/* audit.c - the hash-chained audit log (see audit.h).
 *
 * Record value: prev_hash[32] | time_ms (be64) | actor NUL event NUL detail.
 * Key: seq as big-endian u64, starting at 1. Head (meta "audit_head"):
 * seq (be64) | sha256(last record value). */
#include "audit.h"
#include "clock.h"
#include "codec.h"
#include "log.h"

#include <openssl/crypto.h>
#include <stdlib.h>
#include <string.h>

#define HASH_LEN 32
static const char HEAD_KEY[] = "audit_head";

static int read_head(struct store_txn *t, uint64_t *seq, unsigned char hash[HASH_LEN])
{
    struct store_val v;
    int rc = store_get(t, STORE_DB_META, HEAD_KEY, sizeof HEAD_KEY - 1, &v);
    if (rc == TIKD_ENOTFOUND) {
        *seq = 0;
        memset(hash, 0, HASH_LEN);
        return 0;
    }
    if (rc != 0)
        return rc;
    if (v.n != 8 + HASH_LEN)
        return TIKD_ECORRUPT;
    *seq = store_be64_get(v.p);
    memcpy(hash, (const unsigned char *)v.p + 8, HASH_LEN);
    return 0;
}

int audit_append(struct store_txn *t, const char *actor, const char *event, const char *detail)
{
    uint64_t seq;
    unsigned char prev[HASH_LEN];
    int rc = read_head(t, &seq, prev);
    if (rc != 0)
        return rc;
    if (!detail)
        detail = "";
    size_t dlen;
    char *clean = tlog_redact(detail, strlen(detail), &dlen);
    if (!clean)
        return TIKD_ENOMEM;
    size_t alen = strlen(actor), elen = strlen(event);
    size_t n = HASH_LEN + 8 + alen + 1 + elen + 1 + dlen;
    unsigned char *rec = malloc(n);
    if (!rec) {
        free(clean);
        return TIKD_ENOMEM;
    }
    unsigned char *p = rec;
    memcpy(p, prev, HASH_LEN);
    p += HASH_LEN;
    store_be64_put(p, (uint64_t)(clock_now() * 1000.0));
    p += 8;
    memcpy(p, actor, alen + 1);
    p += alen + 1;
    memcpy(p, event, elen + 1);
    p += elen + 1;
    memcpy(p, clean, dlen);
    free(clean);

    unsigned char key[8], head[8 + HASH_LEN];
    store_be64_put(key, seq + 1);
    store_be64_put(head, seq + 1);
    codec_sha256(rec, n, head + 8);
    rc = store_put(t, STORE_DB_AUDIT, key, sizeof key, rec, n);
    if (rc == 0)
        rc = store_put(t, STORE_DB_META, HEAD_KEY, sizeof HEAD_KEY - 1, head, sizeof head);
    free(rec);
    return rc;
}

/* Split a stored value into its fields; returns -1 if it is malformed. */
static int decode(struct store_val key, struct store_val val, struct audit_rec *r)
{
    const unsigned char *p = val.p;
    if (key.n != 8 || val.n < HASH_LEN + 8 + 2)
        return -1;
    r->seq = store_be64_get(key.p);
    r->time = (double)store_be64_get(p + HASH_LEN) / 1000.0;
    const char *s = (const char *)p + HASH_LEN + 8, *end = (const char *)p + val.n;
    const char *z1 = memchr(s, '\0', (size_t)(end - s));
    const char *z2 = z1 ? memchr(z1 + 1, '\0', (size_t)(end - z1 - 1)) : NULL;
    if (!z2)
        return -1;
    r->actor = s;
    r->event = z1 + 1;
    r->detail = z2 + 1; /* not NUL-terminated in the map: see audit_foreach */
    return 0;
}

struct each_ctx {
    uint64_t from;
    int (*fn)(const struct audit_rec *, void *);
    void *ctx;
};

static int each_cb(struct store_val key, struct store_val val, void *vctx)
{
    struct each_ctx *c = vctx;
    struct audit_rec r;
    if (decode(key, val, &r) != 0)
        return TIKD_ECORRUPT;
    if (r.seq < c->from)
        return 0;
    size_t dlen = (size_t)((const char *)val.p + val.n - r.detail);
    char *detail = malloc(dlen + 1);
    if (!detail)
        return TIKD_ENOMEM;
    memcpy(detail, r.detail, dlen);
    detail[dlen] = '\0';
    r.detail = detail;
    int rc = c->fn(&r, c->ctx);
    free(detail);
    return rc;
}

int audit_foreach(struct store_txn *t, uint64_t from, int (*fn)(const struct audit_rec *, void *),
                  void *ctx)
{
    struct each_ctx c = {from, fn, ctx};
    unsigned char k[8];
    store_be64_put(k, from);
    return store_foreach_from(t, STORE_DB_AUDIT, k, from ? sizeof k : 0, each_cb, &c);
}

int audit_last(struct store_txn *t, uint64_t *seq)
{
    unsigned char hash[HASH_LEN];
    return read_head(t, seq, hash);
}

struct verify_ctx {
    uint64_t expect_seq;
    unsigned char prev[HASH_LEN];
    struct tikd_err *e;
};

static int verify_cb(struct store_val key, struct store_val val, void *vctx)
{
    struct verify_ctx *v = vctx;
    struct audit_rec r;
    if (decode(key, val, &r) != 0)
        return tikd_fail(v->e, TIKD_ECORRUPT, "audit: record %llu is malformed",
                         (unsigned long long)(key.n == 8 ? store_be64_get(key.p) : 0));
    if (r.seq != v->expect_seq)
        return tikd_fail(v->e, TIKD_ECORRUPT,
                         "audit: record %llu is missing (found %llu next): records were removed",
                         (unsigned long long)v->expect_seq, (unsigned long long)r.seq);
    if (CRYPTO_memcmp(val.p, v->prev, HASH_LEN) != 0)
        return tikd_fail(v->e, TIKD_ECORRUPT,
                         "audit: chain broken at record %llu: it does not follow record %llu "
                         "(one of them was edited, or records were removed)",
                         (unsigned long long)r.seq, (unsigned long long)r.seq - 1);
    codec_sha256(val.p, val.n, v->prev);
    v->expect_seq++;
    return 0;
}

struct verify_run {
    uint64_t count;
    struct tikd_err *e;
};

static int verify_txn(struct store_txn *t, void *ctx)
{
    struct verify_run *run = ctx;
    struct verify_ctx v = {.expect_seq = 1, .e = run->e};
    memset(v.prev, 0, HASH_LEN);
    int rc = store_foreach(t, STORE_DB_AUDIT, NULL, 0, verify_cb, &v);
    if (rc != 0)
        return rc;
    uint64_t head_seq;
    unsigned char head_hash[HASH_LEN];
    rc = read_head(t, &head_seq, head_hash);
    if (rc != 0)
        return tikd_fail(run->e, TIKD_ECORRUPT, "audit: the head record is malformed");
    if (head_seq != v.expect_seq - 1 || CRYPTO_memcmp(head_hash, v.prev, HASH_LEN) != 0)
        return tikd_fail(run->e, TIKD_ECORRUPT,
                         "audit: the chain ends at record %llu but the head says %llu: the last "
                         "records were removed or edited",
                         (unsigned long long)(v.expect_seq - 1), (unsigned long long)head_seq);
    run->count = v.expect_seq - 1;
    return 0;
}

int audit_verify(struct store *s, uint64_t *count, struct tikd_err *e)
{
    struct verify_run run = {.e = e};
    int rc = store_read(s, verify_txn, &run, e);
    if (rc == 0 && count)
        *count = run.count;
    return rc;
}
