/* test_account.c - the accounts' expiry index: every put and delete keeps
 * it in its transaction (active accounts only, one entry per token, moved
 * when a token is renewed), the sweep's walk stops at its horizon in expiry
 * order, the schema step indexes an older database's accounts, and a read
 * always sees the record as it is now (decoded records are kept by their
 * bytes), also a record with no fields it knows. */
#include "testutil.h"

#include "../../core/account.h"
#include "../../core/store.h"

static char *dir;
static struct store *st;

static struct store *open_db(void)
{
    char path[600];
    snprintf(path, sizeof path, "%s/db", dir);
    struct store_opts o = {path, 1 << 20, 64 << 20, false};
    struct store *s;
    struct tikd_err e = {0};
    if (store_open(&s, &o, &e) != 0)
        fail_msg("store_open: %s", e.msg);
    return s;
}

static int setup(void **state)
{
    (void)state;
    dir = tu_tmpdir();
    st = open_db();
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    store_close(st);
    tu_rmrf(dir);
    free(dir);
    return 0;
}

struct acct_args {
    const char *name;
    enum acct_state state;
    double access, refresh;
    bool del;
};

static int put_txn(struct store_txn *t, void *ctx)
{
    const struct acct_args *x = ctx;
    if (x->del)
        return account_del(t, x->name);
    struct account a;
    if (account_get(t, x->name, &a) != 0)
        account_init(&a, x->name, 1000);
    a.state = x->state;
    a.access_expires_at = x->access;
    a.refresh_expires_at = x->refresh;
    return account_put(t, &a);
}

static void put(const char *name, enum acct_state s, double access, double refresh)
{
    struct acct_args x = {name, s, access, refresh, false};
    assert_int_equal(store_write(st, put_txn, &x, NULL), 0);
}

struct seen {
    char names[8][16];
    int n;
};

static int seen_one(const char *name, void *ctx)
{
    struct seen *s = ctx;
    if (s->n < 8)
        snprintf(s->names[s->n++], sizeof s->names[0], "%s", name);
    return 0;
}

struct walk {
    bool refresh;
    double until;
    struct seen *s;
};

static int walk_txn(struct store_txn *t, void *ctx)
{
    struct walk *w = ctx;
    return account_foreach_expiring(t, w->refresh, w->until, seen_one, w->s);
}

/* The names due by until, joined by commas, soonest first. */
static const char *due(bool refresh, double until)
{
    static char out[200];
    struct seen s = {0};
    struct walk w = {refresh, until, &s};
    assert_int_equal(store_read(st, walk_txn, &w, NULL), 0);
    out[0] = '\0';
    for (int i = 0; i < s.n; i++)
        snprintf(out + strlen(out), sizeof out - strlen(out), "%s%s", i ? "," : "", s.names[i]);
    return out;
}

static void the_index_follows_every_put_and_delete(void **state)
{
    (void)state;
    put("carol", ACCT_ACTIVE, 3000, 90000);
    put("alice", ACCT_ACTIVE, 2000, 80000);
    put("bob", ACCT_PENDING, 1000, 70000); /* not connected: not swept */
    assert_string_equal(due(false, 2500), "alice");
    assert_string_equal(due(false, 1e12), "alice,carol");
    assert_string_equal(due(true, 85000), "alice");
    put("alice", ACCT_ACTIVE, 5000, 80000); /* renewed: moved, not doubled */
    assert_string_equal(due(false, 1e12), "carol,alice");
    put("bob", ACCT_ACTIVE, 1000, 70000); /* connected */
    assert_string_equal(due(false, 1e12), "bob,carol,alice");
    put("carol", ACCT_NEEDS_REAUTH, 3000, 90000); /* no longer active: out */
    assert_string_equal(due(false, 1e12), "bob,alice");
    assert_string_equal(due(true, 1e12), "bob,alice");
    struct acct_args del = {"bob", ACCT_ACTIVE, 0, 0, true};
    assert_int_equal(store_write(st, put_txn, &del, NULL), 0);
    assert_string_equal(due(false, 1e12), "alice");
    assert_string_equal(due(false, 4999), "");
}

struct got {
    const char *name;
    struct account a;
};

static int get_txn(struct store_txn *t, void *ctx)
{
    struct got *g = ctx;
    return account_get(t, g->name, &g->a);
}

static struct account got(const char *name)
{
    struct got g = {.name = name};
    assert_int_equal(store_read(st, get_txn, &g, NULL), 0);
    return g.a;
}

static int raw_txn(struct store_txn *t, void *ctx)
{
    const char *rec = ctx;
    return store_put(t, STORE_DB_ACCOUNTS, "dave", 4, rec, strlen(rec));
}

static void every_read_sees_the_record_as_it_is(void **state)
{
    (void)state;
    /* many accounts, read in turns: each reads as its own, through every change */
    char name[16];
    for (int round = 0; round < 3; round++)
        for (int i = 0; i < 200; i++) {
            snprintf(name, sizeof name, "acct%d", i);
            put(name, ACCT_ACTIVE, 1000 + i + round * 10000, 90000);
            struct account a = got(name);
            assert_string_equal(a.name, name);
            assert_true(a.access_expires_at == 1000 + i + round * 10000);
        }
    for (int i = 0; i < 200; i++) {
        snprintf(name, sizeof name, "acct%d", i);
        assert_true(got(name).access_expires_at == 1000 + i + 20000);
    }
    /* the same bytes under two names read as what they say */
    const char *rec = "{\"id\":\"0123456789abcdef0123456789abcdef\",\"name\":\"dave\","
                      "\"state\":\"revoked\",\"reason\":\"by the user\"}";
    assert_int_equal(store_write(st, raw_txn, (void *)rec, NULL), 0);
    struct account d = got("dave");
    assert_int_equal(d.state, ACCT_REVOKED);
    assert_string_equal(d.reason, "by the user");
    d = got("dave"); /* again, now from what was kept */
    assert_int_equal(d.state, ACCT_REVOKED);
    assert_string_equal(d.reason, "by the user");
    assert_string_equal(d.id, "0123456789abcdef0123456789abcdef");
    /* a damaged record is refused every time, never served from before */
    const char *bad = "{\"name\":\"dave\"}";
    assert_int_equal(store_write(st, raw_txn, (void *)bad, NULL), 0);
    struct got g = {.name = "dave"};
    assert_int_equal(store_read(st, get_txn, &g, NULL), TIKD_ECORRUPT);
    assert_int_equal(store_read(st, get_txn, &g, NULL), TIKD_ECORRUPT);
}

/* An empty record, read while the kept decodes' slots are still empty (this
 * test runs first): an empty slot is no match for it. */
static void an_empty_record_is_refused(void **state)
{
    (void)state;
    assert_int_equal(store_write(st, raw_txn, (void *)"", NULL), 0);
    struct got g = {.name = "dave"};
    assert_int_equal(store_read(st, get_txn, &g, NULL), TIKD_ECORRUPT);
    assert_int_equal(store_read(st, get_txn, &g, NULL), TIKD_ECORRUPT);
}

static int unindex_txn(struct store_txn *t, void *ctx)
{
    (void)ctx; /* what a schema 2 database holds: accounts, no expiry keys */
    unsigned char k[9 + 5];
    for (int tag = 0; tag < 2; tag++) {
        k[0] = tag ? 'r' : 't';
        store_be64_put(k + 1, tag ? 80000000 : 5000000);
        memcpy(k + 9, "alice", 5);
        int rc = store_del(t, STORE_DB_INDEX, k, sizeof k);
        if (rc != 0)
            return rc;
    }
    unsigned char v2[4] = {0, 0, 0, 2};
    return store_put(t, STORE_DB_META, "schema_version", 14, v2, 4);
}

static void the_schema_step_indexes_old_accounts(void **state)
{
    (void)state;
    put("alice", ACCT_ACTIVE, 5000, 80000);
    assert_int_equal(store_write(st, unindex_txn, NULL, NULL), 0);
    assert_string_equal(due(false, 1e12), "");
    store_close(st);
    st = open_db(); /* schema 2 -> 3 */
    assert_string_equal(due(false, 1e12), "alice");
    assert_string_equal(due(true, 1e12), "alice");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(an_empty_record_is_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(the_index_follows_every_put_and_delete, setup, teardown),
        cmocka_unit_test_setup_teardown(the_schema_step_indexes_old_accounts, setup, teardown),
        cmocka_unit_test_setup_teardown(every_read_sees_the_record_as_it_is, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
