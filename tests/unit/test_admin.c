/* test_admin.c - admin API tokens: names and roles checked; a token is
 * found by what it is and nothing else; only its hash is stored; a revoked
 * token is gone at once; creating and revoking are audit records. */
#include "testutil.h"

#include "../../core/admin.h"
#include "../../core/audit.h"
#include "../../core/store.h"

struct made {
    const char *name;
    enum admin_role role;
    char token[ADMIN_TOKEN_LEN + 1];
    struct tikd_err e;
};

static int create_txn(struct store_txn *t, void *ctx)
{
    struct made *m = ctx;
    return admin_token_create(t, m->name, m->role, NULL, "tester", m->token, &m->e);
}

static int revoke_txn(struct store_txn *t, void *ctx)
{
    struct made *m = ctx;
    return admin_token_revoke(t, m->name, "tester", &m->e);
}

static int grab(struct store_val k, struct store_val v, void *ctx)
{
    (void)k;
    char *all = ctx;
    size_t n = strlen(all);
    if (n + v.n < 65536) {
        memcpy(all + n, v.p, v.n);
        all[n + v.n] = '\0';
    }
    return 0;
}

static int dump_txn(struct store_txn *t, void *ctx)
{
    return store_foreach(t, STORE_DB_ADMIN, NULL, 0, grab, ctx);
}

static int count_tok(const struct admin_token *k, void *ctx)
{
    (void)k;
    (*(int *)ctx)++;
    return 0;
}

static int list_txn(struct store_txn *t, void *ctx)
{
    return admin_token_foreach(t, count_tok, ctx);
}

struct events {
    int created, revoked;
};

static int audit_one(const struct audit_rec *r, void *ctx)
{
    struct events *e = ctx;
    e->created += strcmp(r->event, "admin.token_created") == 0 && strcmp(r->actor, "tester") == 0;
    e->revoked += strcmp(r->event, "admin.token_revoked") == 0;
    return 0;
}

static int audit_txn(struct store_txn *t, void *ctx)
{
    return audit_foreach(t, 0, audit_one, ctx);
}

static void names_and_roles(void **state)
{
    (void)state;
    assert_true(admin_name_valid("ci-bot.1"));
    assert_false(admin_name_valid(""));
    assert_false(admin_name_valid("-x"));
    assert_false(admin_name_valid(".x"));
    assert_false(admin_name_valid("a b"));
    assert_false(admin_name_valid("a/b"));
    char longname[80];
    memset(longname, 'a', 65);
    longname[65] = '\0';
    assert_false(admin_name_valid(longname));
    assert_int_equal(admin_role_parse("viewer"), ROLE_VIEWER);
    assert_int_equal(admin_role_parse("operator"), ROLE_OPERATOR);
    assert_int_equal(admin_role_parse("admin"), ROLE_ADMIN);
    assert_int_equal(admin_role_parse("Admin"), ROLE_NONE);
    assert_int_equal(admin_role_parse(NULL), ROLE_NONE);
    assert_true(ROLE_VIEWER < ROLE_OPERATOR && ROLE_OPERATOR < ROLE_ADMIN);
}

static void create_check_revoke(void **state)
{
    (void)state;
    char *dir = tu_tmpdir();
    struct store *s;
    struct store_opts o = {dir, 1 << 20, 64 << 20, false};
    struct tikd_err e = {0};
    assert_int_equal(store_open(&s, &o, &e), 0);

    struct made a = {.name = "ops", .role = ROLE_OPERATOR};
    assert_int_equal(store_write(s, create_txn, &a, &e), 0);
    assert_int_equal(strlen(a.token), ADMIN_TOKEN_LEN);
    assert_memory_equal(a.token, "tikd_", 5);
    struct made b = {.name = "view", .role = ROLE_VIEWER};
    assert_int_equal(store_write(s, create_txn, &b, &e), 0);
    assert_string_not_equal(a.token, b.token);
    struct made dup = {.name = "ops", .role = ROLE_ADMIN};
    assert_int_equal(store_write(s, create_txn, &dup, &e), TIKD_EEXIST);
    struct made bad = {.name = "a b", .role = ROLE_ADMIN};
    assert_int_equal(store_write(s, create_txn, &bad, &e), TIKD_EINVAL);
    struct made norole = {.name = "x", .role = ROLE_NONE};
    assert_int_equal(store_write(s, create_txn, &norole, &e), TIKD_EINVAL);

    struct admin_token k;
    assert_int_equal(admin_token_check(s, a.token, &k), 0);
    assert_string_equal(k.name, "ops");
    assert_int_equal(k.role, ROLE_OPERATOR);
    assert_true(k.created_at > 0 && k.last_used == 0);
    char wrong[ADMIN_TOKEN_LEN + 1];
    memcpy(wrong, a.token, sizeof wrong);
    wrong[ADMIN_TOKEN_LEN - 1] ^= 1;
    assert_int_equal(admin_token_check(s, wrong, &k), TIKD_ENOTFOUND);
    assert_int_equal(admin_token_check(s, "tikd_", &k), TIKD_ENOTFOUND);
    assert_int_equal(admin_token_check(s, NULL, &k), TIKD_ENOTFOUND);
    char longer[ADMIN_TOKEN_LEN + 2];
    snprintf(longer, sizeof longer, "%sx", a.token);
    assert_int_equal(admin_token_check(s, longer, &k), TIKD_ENOTFOUND);

    /* only hashes are stored */
    static char all[65536];
    all[0] = '\0';
    assert_int_equal(store_read(s, dump_txn, all, &e), 0);
    assert_null(strstr(all, a.token + 5));
    assert_null(strstr(all, b.token + 5));

    assert_int_equal(admin_token_check(s, b.token, &k), 0);
    assert_int_equal(admin_token_touch(s, k.hash, 1234.5, &e), 0);
    assert_int_equal(admin_token_check(s, b.token, &k), 0);
    assert_true(k.last_used == 1234.5);

    int n = 0;
    assert_int_equal(store_read(s, list_txn, &n, &e), 0);
    assert_int_equal(n, 2);
    assert_int_equal(store_write(s, revoke_txn, &a, &e), 0);
    assert_int_equal(admin_token_check(s, a.token, &k), TIKD_ENOTFOUND);
    assert_int_equal(store_write(s, revoke_txn, &a, &e), TIKD_ENOTFOUND);
    n = 0;
    assert_int_equal(store_read(s, list_txn, &n, &e), 0);
    assert_int_equal(n, 1);
    struct events ev = {0};
    assert_int_equal(store_read(s, audit_txn, &ev, &e), 0);
    assert_int_equal(ev.created, 2);
    assert_int_equal(ev.revoked, 1);
    /* the name is free again */
    assert_int_equal(store_write(s, create_txn, &a, &e), 0);
    store_close(s);
    tu_rmrf(dir);
    free(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(names_and_roles),
        cmocka_unit_test(create_check_revoke),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
