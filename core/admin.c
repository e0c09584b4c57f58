/* admin.c - admin API tokens (see admin.h). */
#include "admin.h"
#include "audit.h"
#include "clock.h"
#include "codec.h"

#include <jansson.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <string.h>

static const char *const role_names[] = {"none", "viewer", "operator", "admin"};

const char *admin_role_name(enum admin_role r)
{
    return (unsigned)r < sizeof role_names / sizeof role_names[0] ? role_names[r] : "none";
}

enum admin_role admin_role_parse(const char *s)
{
    for (int r = ROLE_VIEWER; r <= ROLE_ADMIN; r++)
        if (s && strcmp(s, role_names[r]) == 0)
            return (enum admin_role)r;
    return ROLE_NONE;
}

bool admin_name_valid(const char *name)
{
    size_t n = name ? strlen(name) : 0;
    if (n == 0 || n > ADMIN_NAME_MAX || name[0] == '.' || name[0] == '-')
        return false;
    return strspn(name, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._-") == n;
}

/* "t:" HASH, "n:" NAME */
static size_t key_of(char *k, size_t n, char kind, const char *s)
{
    int w = snprintf(k, n, "%c:%s", kind, s);
    return w > 0 && (size_t)w < n ? (size_t)w : 0;
}

static int decode(const struct store_val *v, const char *hash, struct admin_token *out)
{
    json_t *o = json_loadb(v->p, v->n, 0, NULL);
    const char *name = json_string_value(json_object_get(o, "name"));
    enum admin_role role = admin_role_parse(json_string_value(json_object_get(o, "role")));
    if (!name || role == ROLE_NONE) {
        json_decref(o);
        return TIKD_ECORRUPT;
    }
    memset(out, 0, sizeof *out);
    snprintf(out->name, sizeof out->name, "%s", name);
    out->role = role;
    out->created_at = json_number_value(json_object_get(o, "created_at"));
    out->last_used = json_number_value(json_object_get(o, "last_used"));
    const char *tenant = json_string_value(json_object_get(o, "tenant"));
    snprintf(out->tenant, sizeof out->tenant, "%s", tenant ? tenant : "");
    snprintf(out->hash, sizeof out->hash, "%s", hash);
    json_decref(o);
    return 0;
}

static int put_token(struct store_txn *t, const struct admin_token *k)
{
    json_t *o = json_pack("{s:s, s:s, s:f, s:f}", "name", k->name, "role", admin_role_name(k->role),
                          "created_at", k->created_at, "last_used", k->last_used);
    if (o && k->tenant[0])
        json_object_set_new(o, "tenant", json_string(k->tenant));
    char *s = o ? json_dumps(o, JSON_COMPACT | JSON_REAL_PRECISION(17)) : NULL;
    json_decref(o);
    char key[80];
    size_t kl = key_of(key, sizeof key, 't', k->hash);
    int rc = s && kl ? store_put(t, STORE_DB_ADMIN, key, kl, s, strlen(s)) : TIKD_ENOMEM;
    free(s);
    return rc;
}

int admin_token_create(struct store_txn *t, const char *name, enum admin_role role,
                       const char *tenant, const char *actor, char out[ADMIN_TOKEN_LEN + 1],
                       struct tikd_err *e)
{
    if (tenant && (strlen(tenant) == 0 || strlen(tenant) > 32))
        return tikd_fail(e, TIKD_EINVAL, "a token's tenant is a tenant's name");
    if (tenant && role == ROLE_ADMIN)
        return tikd_fail(e, TIKD_EINVAL,
                         "a tenant's token is a viewer or an operator: tokens are the whole "
                         "daemon's to manage");
    if (!admin_name_valid(name))
        return tikd_fail(e, TIKD_EINVAL,
                         "'%.80s' is not a token name: 1-64 of A-Z a-z 0-9 . _ -, not starting "
                         "with . or -",
                         name ? name : "");
    if (role == ROLE_NONE)
        return tikd_fail(e, TIKD_EINVAL, "a token's role is viewer, operator or admin");
    char nk[80];
    size_t nl = key_of(nk, sizeof nk, 'n', name);
    struct store_val v;
    if (store_get(t, STORE_DB_ADMIN, nk, nl, &v) == 0)
        return tikd_fail(e, TIKD_EEXIST,
                         "a token called %s exists: revoke it first (tikd admin token revoke %s)",
                         name, name);
    unsigned char raw[32];
    if (RAND_bytes(raw, sizeof raw) != 1)
        return tikd_fail(e, TIKD_EIO, "no randomness for a token");
    char b64[64];
    codec_b64url(raw, sizeof raw, b64);
    OPENSSL_cleanse(raw, sizeof raw);
    memcpy(out, "tikd_", 5);
    memcpy(out + 5, b64, ADMIN_TOKEN_LEN - 5); /* 43 characters for 32 bytes */
    out[ADMIN_TOKEN_LEN] = '\0';
    OPENSSL_cleanse(b64, sizeof b64);
    struct admin_token k = {.role = role, .created_at = clock_now()};
    snprintf(k.name, sizeof k.name, "%s", name);
    snprintf(k.tenant, sizeof k.tenant, "%s", tenant ? tenant : "");
    codec_sha256_hex(out, strlen(out), k.hash);
    int rc = put_token(t, &k);
    if (rc == 0)
        rc = store_put(t, STORE_DB_ADMIN, nk, nl, k.hash, 64);
    char detail[200];
    snprintf(detail, sizeof detail, "name=%s role=%s tenant=%s", name, admin_role_name(role),
             tenant ? tenant : "-");
    if (rc == 0)
        rc = audit_append(t, actor, "admin.token_created", detail);
    return rc;
}

int admin_token_revoke(struct store_txn *t, const char *name, const char *actor, struct tikd_err *e)
{
    char nk[80], tk[80], hash[65];
    size_t nl = key_of(nk, sizeof nk, 'n', name);
    struct store_val v;
    if (!nl || store_get(t, STORE_DB_ADMIN, nk, nl, &v) != 0 || v.n != 64)
        return tikd_fail(e, TIKD_ENOTFOUND, "no token called %.80s (see tikd admin token list)",
                         name);
    memcpy(hash, v.p, 64);
    hash[64] = '\0';
    size_t tl = key_of(tk, sizeof tk, 't', hash);
    int rc = store_del(t, STORE_DB_ADMIN, tk, tl);
    if (rc == 0)
        rc = store_del(t, STORE_DB_ADMIN, nk, nl);
    char detail[120];
    snprintf(detail, sizeof detail, "name=%s", name);
    if (rc == 0)
        rc = audit_append(t, actor, "admin.token_revoked", detail);
    return rc;
}

struct each {
    struct store_txn *t;
    int (*fn)(const struct admin_token *k, void *ctx);
    void *ctx;
};

static int each_name(struct store_val k, struct store_val v, void *ctx)
{
    struct each *x = ctx;
    if (v.n != 64)
        return 0;
    char hash[65], tk[80];
    memcpy(hash, v.p, 64);
    hash[64] = '\0';
    size_t tl = key_of(tk, sizeof tk, 't', hash);
    struct store_val r;
    struct admin_token tok;
    if (store_get(x->t, STORE_DB_ADMIN, tk, tl, &r) != 0 || decode(&r, hash, &tok) != 0)
        return 0; /* (a half-written pair cannot be: both go in one transaction) */
    (void)k;
    return x->fn(&tok, x->ctx);
}

int admin_token_foreach(struct store_txn *t, int (*fn)(const struct admin_token *k, void *ctx),
                        void *ctx)
{
    struct each x = {t, fn, ctx};
    return store_foreach(t, STORE_DB_ADMIN, "n:", 2, each_name, &x);
}

struct check {
    const char *hash;
    struct admin_token *out;
};

static int check_txn(struct store_txn *t, void *ctx)
{
    struct check *c = ctx;
    char tk[80];
    size_t tl = key_of(tk, sizeof tk, 't', c->hash);
    struct store_val v;
    int rc = store_get(t, STORE_DB_ADMIN, tk, tl, &v);
    return rc != 0 ? rc : decode(&v, c->hash, c->out);
}

int admin_token_check(struct store *s, const char *token, struct admin_token *out)
{
    if (!token || strncmp(token, "tikd_", 5) != 0 || strlen(token) != ADMIN_TOKEN_LEN)
        return TIKD_ENOTFOUND;
    char hash[65];
    codec_sha256_hex(token, strlen(token), hash);
    struct check c = {hash, out};
    return store_read(s, check_txn, &c, NULL) == 0 ? 0 : TIKD_ENOTFOUND;
}

int admin_token_check_hash(struct store *s, const char *hash, struct admin_token *out)
{
    if (!hash || strlen(hash) != 64)
        return TIKD_ENOTFOUND;
    struct check c = {hash, out};
    return store_read(s, check_txn, &c, NULL) == 0 ? 0 : TIKD_ENOTFOUND;
}

struct touch {
    const char *hash;
    double now;
};

static int touch_txn(struct store_txn *t, void *ctx)
{
    struct touch *x = ctx;
    char tk[80];
    size_t tl = key_of(tk, sizeof tk, 't', x->hash);
    struct store_val v;
    struct admin_token k;
    if (store_get(t, STORE_DB_ADMIN, tk, tl, &v) != 0 || decode(&v, x->hash, &k) != 0)
        return 0; /* revoked meanwhile */
    k.last_used = x->now;
    return put_token(t, &k);
}

int admin_token_touch(struct store *s, const char *hash, double now, struct tikd_err *e)
{
    struct touch x = {hash, now};
    return store_write(s, touch_txn, &x, e);
}
