/* test_store.c - the LMDB store: commit and abort, map growth far beyond
 * the initial size, crash consistency after SIGKILL mid-write, schema
 * checks, read-only opens and hot backups; group commit (one durable commit
 * for many writes, seen by no other process before it). */
#include "testutil.h"

#include <lmdb.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include "../../core/store.h"

static struct store *open_at(const char *dir, size_t initial, size_t max)
{
    struct store *s;
    struct store_opts o = {dir, initial, max, false};
    struct tikd_err e = {0};
    int rc = store_open(&s, &o, &e);
    if (rc != 0)
        fail_msg("store_open: %s", e.msg);
    return s;
}

struct kv {
    const char *k, *v;
    int fail_after_put;
};

static int put_kv(struct store_txn *t, void *ctx)
{
    struct kv *kv = ctx;
    int rc = store_put(t, STORE_DB_KV, kv->k, strlen(kv->k), kv->v, strlen(kv->v));
    return rc ? rc : (kv->fail_after_put ? TIKD_EINVAL : 0);
}

static int get_kv(struct store_txn *t, void *ctx)
{
    struct kv *kv = ctx;
    struct store_val v;
    int rc = store_get(t, STORE_DB_KV, kv->k, strlen(kv->k), &v);
    if (rc == 0) {
        static char buf[256];
        snprintf(buf, sizeof buf, "%.*s", (int)v.n, (const char *)v.p);
        kv->v = buf;
    }
    return rc;
}

static void commit_and_abort(void **state)
{
    (void)state;
    char *dir = tu_tmpdir();
    struct store *s = open_at(dir, 1 << 20, 8 << 20);
    struct tikd_err e = {0};
    struct kv a = {"alpha", "one", 0};
    assert_int_equal(store_write(s, put_kv, &a, &e), 0);
    struct kv b = {"beta", "two", 1}; /* the function fails after its put */
    assert_int_equal(store_write(s, put_kv, &b, &e), TIKD_EINVAL);
    struct kv ra = {"alpha", NULL, 0}, rb = {"beta", NULL, 0};
    assert_int_equal(store_read(s, get_kv, &ra, &e), 0);
    assert_string_equal(ra.v, "one");
    assert_int_equal(store_read(s, get_kv, &rb, &e), TIKD_ENOTFOUND);
    store_close(s);
    /* committed data survives a reopen */
    s = open_at(dir, 1 << 20, 8 << 20);
    ra.v = NULL;
    assert_int_equal(store_read(s, get_kv, &ra, &e), 0);
    assert_string_equal(ra.v, "one");
    store_close(s);
    tu_rmrf(dir);
    free(dir);
}

struct bulk {
    int from, count;
    size_t size;
};

static int put_bulk(struct store_txn *t, void *ctx)
{
    struct bulk *b = ctx;
    char key[32];
    char *val = malloc(b->size);
    memset(val, 'x', b->size);
    int rc = 0;
    for (int i = b->from; i < b->from + b->count && rc == 0; i++) {
        int n = snprintf(key, sizeof key, "k%08d", i);
        rc = store_put(t, STORE_DB_KV, key, (size_t)n, val, b->size);
    }
    free(val);
    return rc;
}

static int count_cb(struct store_val k, struct store_val v, void *ctx)
{
    (void)k;
    (void)v;
    (*(int *)ctx)++;
    return 0;
}

static int count_all(struct store_txn *t, void *ctx)
{
    *(int *)ctx = 0;
    return store_foreach(t, STORE_DB_KV, "k", 1, count_cb, ctx);
}

static void map_grows(void **state)
{
    (void)state;
    char *dir = tu_tmpdir();
    /* 1 MiB map, then 40 MB of writes in 4 KiB values */
    struct store *s = open_at(dir, 1 << 20, 256 << 20);
    struct tikd_err e = {0};
    for (int batch = 0; batch < 100; batch++) {
        struct bulk b = {batch * 100, 100, 4096};
        int rc = store_write(s, put_bulk, &b, &e);
        if (rc != 0)
            fail_msg("batch %d: %s", batch, e.msg);
    }
    assert_true(store_map_size(s) >= (size_t)40 << 20);
    int n = 0;
    assert_int_equal(store_read(s, count_all, &n, &e), 0);
    assert_int_equal(n, 10000);
    store_close(s);
    tu_rmrf(dir);
    free(dir);
}

static void map_ceiling_is_a_clear_error(void **state)
{
    (void)state;
    char *dir = tu_tmpdir();
    struct store *s = open_at(dir, 1 << 20, 2 << 20);
    struct tikd_err e = {0};
    struct bulk b = {0, 1000, 4096}; /* 4 MB in one transaction */
    assert_int_equal(store_write(s, put_bulk, &b, &e), TIKD_ENOSPACE);
    assert_non_null(strstr(e.msg, "store.map_max"));
    /* nothing of the failed transaction is visible, and the store still works */
    int n = -1;
    assert_int_equal(store_read(s, count_all, &n, &e), 0);
    assert_int_equal(n, 0);
    struct kv a = {"after", "ok", 0};
    assert_int_equal(store_write(s, put_kv, &a, &e), 0);
    store_close(s);
    tu_rmrf(dir);
    free(dir);
}

/* Each transaction writes record i and sets "count" to i+1 together. */
static int put_counted(struct store_txn *t, void *ctx)
{
    int i = *(int *)ctx;
    char key[32];
    int n = snprintf(key, sizeof key, "k%08d", i);
    char val[512];
    memset(val, 'a' + i % 26, sizeof val);
    int rc = store_put(t, STORE_DB_KV, key, (size_t)n, val, sizeof val);
    unsigned char cnt[8];
    store_be64_put(cnt, (uint64_t)i + 1);
    return rc ? rc : store_put(t, STORE_DB_META, "count", 5, cnt, 8);
}

struct check {
    uint64_t count;
    int records;
};

static int check_cb(struct store_val k, struct store_val v, void *ctx)
{
    struct check *c = ctx;
    char want[32];
    int n = snprintf(want, sizeof want, "k%08d", c->records);
    if (k.n != (size_t)n || memcmp(k.p, want, k.n) != 0 || v.n != 512)
        return TIKD_ECORRUPT;
    c->records++;
    return 0;
}

static int check_counted(struct store_txn *t, void *ctx)
{
    struct check *c = ctx;
    struct store_val v;
    c->count = 0;
    if (store_get(t, STORE_DB_META, "count", 5, &v) == 0)
        c->count = store_be64_get(v.p);
    return store_foreach(t, STORE_DB_KV, "k", 1, check_cb, c);
}

static void sigkill_mid_write_stays_consistent(void **state)
{
    (void)state;
    char *dir = tu_tmpdir();
    for (int round = 0; round < 5; round++) {
        pid_t pid = fork();
        assert_true(pid >= 0);
        if (pid == 0) {
            struct store *s = open_at(dir, 1 << 20, 1 << 30);
            struct check c = {0};
            store_read(s, check_counted, &c, NULL);
            for (int i = (int)c.count;; i++)
                if (store_write(s, put_counted, &i, NULL) != 0)
                    _exit(3);
        }
        usleep(50000 + round * 37000);
        kill(pid, SIGKILL);
        int st;
        waitpid(pid, &st, 0);
        assert_true(WIFSIGNALED(st));
        struct store *s = open_at(dir, 1 << 20, 1 << 30);
        struct check c = {0};
        struct tikd_err e = {0};
        assert_int_equal(store_read(s, check_counted, &c, &e), 0);
        assert_true(c.count > 0);
        assert_int_equal((uint64_t)c.records, c.count);
        store_close(s);
    }
    tu_rmrf(dir);
    free(dir);
}

static void newer_schema_refused(void **state)
{
    (void)state;
    char *dir = tu_tmpdir();
    store_close(open_at(dir, 1 << 20, 8 << 20));
    /* raw LMDB write: pretend a future tikd wrote the database */
    MDB_env *env;
    MDB_txn *txn;
    MDB_dbi dbi;
    assert_int_equal(mdb_env_create(&env), 0);
    mdb_env_set_maxdbs(env, 32);
    assert_int_equal(mdb_env_open(env, dir, 0, 0600), 0);
    assert_int_equal(mdb_txn_begin(env, NULL, 0, &txn), 0);
    assert_int_equal(mdb_dbi_open(txn, "meta", 0, &dbi), 0);
    unsigned char v[4] = {0, 0, 0, 99};
    MDB_val k = {14, "schema_version"}, d = {4, v};
    assert_int_equal(mdb_put(txn, dbi, &k, &d, 0), 0);
    assert_int_equal(mdb_txn_commit(txn), 0);
    mdb_env_close(env);

    struct store *s;
    struct store_opts o = {dir, 1 << 20, 8 << 20, false};
    struct tikd_err e = {0};
    assert_int_equal(store_open(&s, &o, &e), TIKD_ECORRUPT);
    assert_non_null(strstr(e.msg, "schema version 99"));
    tu_rmrf(dir);
    free(dir);
}

static void readonly_and_backup(void **state)
{
    (void)state;
    char *dir = tu_tmpdir();
    struct store *s;
    struct store_opts ro = {dir, 1 << 20, 8 << 20, true};
    struct tikd_err e = {0};
    assert_int_equal(store_open(&s, &ro, &e), TIKD_ENOTFOUND); /* nothing there yet */

    struct store *w = open_at(dir, 1 << 20, 8 << 20);
    struct kv a = {"alpha", "one", 0};
    assert_int_equal(store_write(w, put_kv, &a, &e), 0);
    /* a reader and a backup while the writer is open */
    assert_int_equal(store_open(&s, &ro, &e), 0);
    struct kv ra = {"alpha", NULL, 0};
    assert_int_equal(store_read(s, get_kv, &ra, &e), 0);
    assert_string_equal(ra.v, "one");
    assert_int_not_equal(store_write(s, put_kv, &a, &e), 0);
    char dest[600];
    snprintf(dest, sizeof dest, "%s/backup", dir);
    assert_int_equal(store_backup(s, dest, &e), 0);
    assert_int_equal(store_backup(s, dest, &e), TIKD_EEXIST);
    store_close(s);
    store_close(w);
    w = open_at(dest, 1 << 20, 8 << 20);
    ra.v = NULL;
    assert_int_equal(store_read(w, get_kv, &ra, &e), 0);
    assert_string_equal(ra.v, "one");
    store_close(w);
    tu_rmrf(dir);
    free(dir);
}

/* What another process sees: a fork opening the store read-only (the
 * parent holds the open group's writer lock; readers never wait on it). */
static bool seen_elsewhere(const char *dir, const char *key)
{
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        struct store *s;
        struct store_opts o = {dir, 1 << 20, 8 << 20, true};
        struct tikd_err e = {0};
        if (store_open(&s, &o, &e) != 0)
            _exit(2);
        struct kv k = {key, NULL, 0};
        _exit(store_read(s, get_kv, &k, NULL) == 0 ? 0 : 1);
    }
    int st;
    waitpid(pid, &st, 0);
    assert_true(WIFEXITED(st) && WEXITSTATUS(st) < 2);
    return WEXITSTATUS(st) == 0;
}

struct synced {
    int calls, rc;
};

static void on_synced(void *ud, int rc, const char *why)
{
    (void)why;
    struct synced *y = ud;
    y->calls++;
    y->rc = rc;
}

static int copy_alpha(struct store_txn *t, void *ctx)
{
    (void)ctx;
    struct kv a = {"alpha", NULL, 0};
    int rc = get_kv(t, &a); /* a write of the same group, not durable yet */
    struct kv c = {"copy", a.v, 0};
    return rc ? rc : put_kv(t, &c);
}

static void a_group_is_one_commit_seen_by_no_one_before_it(void **state)
{
    (void)state;
    char *dir = tu_tmpdir();
    struct store *s = open_at(dir, 1 << 20, 8 << 20);
    struct synced y = {0};
    uint64_t commits0, writes0, commits, writes;
    store_commit_stats(s, &commits0, &writes0); /* the open's own */
    store_on_sync(s, on_synced, &y);
    store_group(s, true);
    struct tikd_err e = {0};
    struct kv a = {"alpha", "one", 0}, b = {"beta", "two", 1}, g = {"gamma", "three", 0};
    assert_int_equal(store_write(s, put_kv, &a, &e), 0);
    assert_int_equal(store_write(s, put_kv, &b, &e), TIKD_EINVAL); /* its put is undone */
    assert_int_equal(store_write(s, put_kv, &g, &e), 0);
    assert_int_equal(store_write(s, copy_alpha, NULL, &e), 0);
    assert_true(store_pending(s));
    store_commit_stats(s, &commits, &writes);
    assert_int_equal(commits, commits0);
    assert_int_equal(y.calls, 0);
    /* this process reads through the group; no other process sees it */
    struct kv ra = {"alpha", NULL, 0}, rb = {"beta", NULL, 0}, rc = {"copy", NULL, 0};
    assert_int_equal(store_read(s, get_kv, &ra, &e), 0);
    assert_string_equal(ra.v, "one");
    assert_int_equal(store_read(s, get_kv, &rb, &e), TIKD_ENOTFOUND);
    assert_int_equal(store_read(s, get_kv, &rc, &e), 0);
    assert_string_equal(rc.v, "one");
    assert_false(seen_elsewhere(dir, "alpha"));

    assert_int_equal(store_sync(s, &e), 0);
    assert_false(store_pending(s));
    store_commit_stats(s, &commits, &writes);
    assert_int_equal(commits - commits0, 1);
    assert_int_equal(writes - writes0, 3); /* alpha, gamma, copy: the failed one is none */
    assert_int_equal(y.calls, 1);
    assert_int_equal(y.rc, 0);
    assert_true(seen_elsewhere(dir, "alpha"));
    assert_true(seen_elsewhere(dir, "copy"));
    assert_false(seen_elsewhere(dir, "beta"));
    assert_int_equal(store_sync(s, &e), 0); /* nothing pending: no commit, no hook */
    assert_int_equal(y.calls, 1);

    /* a group whose only write failed is let go: no commit, the hook told */
    struct kv f = {"phi", "x", 1};
    assert_int_equal(store_write(s, put_kv, &f, &e), TIKD_EINVAL);
    store_commit_stats(s, &commits0, &writes0);
    assert_int_equal(store_sync(s, &e), 0);
    assert_false(store_pending(s));
    store_commit_stats(s, &commits, &writes);
    assert_int_equal(commits, commits0);
    assert_int_equal(y.calls, 2);
    assert_int_equal(y.rc, 0);

    struct kv d = {"delta", "four", 0};
    assert_int_equal(store_write_durable(s, put_kv, &d, &e), 0);
    assert_false(store_pending(s));
    assert_true(seen_elsewhere(dir, "delta"));
    store_close(s);
    tu_rmrf(dir);
    free(dir);
}

static void a_pending_group_dies_with_its_process(void **state)
{
    (void)state;
    char *dir = tu_tmpdir();
    store_close(open_at(dir, 1 << 20, 8 << 20));
    int fds[2];
    assert_int_equal(pipe(fds), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        struct store *s = open_at(dir, 1 << 20, 8 << 20);
        store_group(s, true);
        struct kv a = {"durable", "yes", 0}, b = {"pending", "no", 0};
        if (store_write(s, put_kv, &a, NULL) != 0 || store_sync(s, NULL) != 0 ||
            store_write(s, put_kv, &b, NULL) != 0 || write(fds[1], "x", 1) != 1)
            _exit(3);
        pause();
        _exit(0);
    }
    char c;
    assert_int_equal(read(fds[0], &c, 1), 1);
    kill(pid, SIGKILL);
    int st;
    waitpid(pid, &st, 0);
    assert_true(WIFSIGNALED(st));
    close(fds[0]);
    close(fds[1]);
    struct store *s = open_at(dir, 1 << 20, 8 << 20);
    struct kv d = {"durable", NULL, 0}, p = {"pending", NULL, 0};
    assert_int_equal(store_read(s, get_kv, &d, NULL), 0);
    assert_int_equal(store_read(s, get_kv, &p, NULL), TIKD_ENOTFOUND);
    store_close(s);
    tu_rmrf(dir);
    free(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(commit_and_abort),
        cmocka_unit_test(map_grows),
        cmocka_unit_test(map_ceiling_is_a_clear_error),
        cmocka_unit_test(sigkill_mid_write_stays_consistent),
        cmocka_unit_test(newer_schema_refused),
        cmocka_unit_test(readonly_and_backup),
        cmocka_unit_test(a_group_is_one_commit_seen_by_no_one_before_it),
        cmocka_unit_test(a_pending_group_dies_with_its_process),
    };
    return cmocka_run_group_tests_name("store", tests, NULL, NULL);
}
