/* test_vault.c - sealed records: they open only for their owner and field
 * and only with the right key; key files are checked; rotation keeps every
 * record readable; nothing leaves plaintext in the database file. */
#include "testutil.h"

#include <fcntl.h>
#include <sys/stat.h>

#include "../../core/store.h"
#include "../../core/vault.h"

static char *dir;
static char keyfile[512], keyfile2[512];
static const char TOKEN[] = "act.SECRET-token-VALUE-0123456789-abcdef"; /* fake */

static struct store *open_store(void)
{
    struct store *s;
    struct store_opts o = {dir, 1 << 20, 64 << 20, false};
    struct tikd_err e = {0};
    assert_int_equal(store_open(&s, &o, &e), 0);
    return s;
}

struct op {
    struct vault *v;
    const char *owner, *field;
    char *pt;
    size_t n;
    int rc;
    struct tikd_err e;
};

static int put_txn(struct store_txn *t, void *ctx)
{
    struct op *o = ctx;
    int rc = vault_check(o->v, t, &o->e);
    return rc ? rc : vault_put(o->v, t, o->owner, o->field, TOKEN, strlen(TOKEN), &o->e);
}

static int get_txn(struct store_txn *t, void *ctx)
{
    struct op *o = ctx;
    o->rc = vault_get(o->v, t, o->owner, o->field, &o->pt, &o->n, &o->e);
    return 0;
}

static size_t vkey(char *out, const char *owner, const char *field)
{
    size_t ol = strlen(owner), fl = strlen(field);
    memcpy(out, owner, ol + 1);
    memcpy(out + ol + 1, field, fl);
    return ol + 1 + fl;
}

/* Raw copy of a record to another key: what an attacker with the file can do. */
static int move_txn(struct store_txn *t, void *ctx)
{
    const char **kk = ctx;
    char from[128], to[128];
    size_t fl = vkey(from, kk[0], kk[1]), tl = vkey(to, kk[2], kk[3]);
    struct store_val v;
    assert_int_equal(store_get(t, STORE_DB_VAULT, from, fl, &v), 0);
    char *copy = malloc(v.n);
    memcpy(copy, v.p, v.n);
    int rc = store_put(t, STORE_DB_VAULT, to, tl, copy, v.n);
    free(copy);
    return rc;
}

static struct vault *load(const char *path)
{
    struct vault *v;
    struct tikd_err e = {0};
    if (vault_load(&v, path, NULL, &e) != 0)
        fail_msg("%s", e.msg);
    return v;
}

static void seal_open_and_aad(void **state)
{
    (void)state;
    char id[64];
    struct tikd_err e = {0};
    assert_int_equal(vault_keyfile_create(keyfile, id, sizeof id, &e), 0);
    assert_int_equal(vault_keyfile_create(keyfile, id, sizeof id, &e), TIKD_EEXIST);
    struct stat st;
    stat(keyfile, &st);
    assert_int_equal(st.st_mode & 0777, 0600);
    struct vault *v = load(keyfile);
    struct store *s = open_store();
    struct op o = {.v = v, .owner = "acct-1", .field = "access_token"};
    assert_int_equal(store_write(s, put_txn, &o, &e), 0);
    o = (struct op){.v = v, .owner = "acct-1", .field = "refresh_token"};
    assert_int_equal(store_write(s, put_txn, &o, &e), 0);
    o = (struct op){.v = v, .owner = "acct-1", .field = "access_token"};
    store_read(s, get_txn, &o, &e);
    assert_int_equal(o.rc, 0);
    assert_string_equal(o.pt, TOKEN);
    vault_wipe_free(o.pt, o.n);

    /* the same ciphertext under another account, or another field */
    static const char *to_other_account[] = {"acct-1", "access_token", "acct-2", "access_token"};
    static const char *to_other_field[] = {"acct-1", "access_token", "acct-1", "pkce_verifier"};
    store_write(s, move_txn, (void *)to_other_account, &e);
    store_write(s, move_txn, (void *)to_other_field, &e);
    o = (struct op){.v = v, .owner = "acct-2", .field = "access_token"};
    store_read(s, get_txn, &o, &e);
    assert_int_equal(o.rc, TIKD_ECORRUPT);
    assert_non_null(strstr(o.e.msg, "does not authenticate"));
    o = (struct op){.v = v, .owner = "acct-1", .field = "pkce_verifier"};
    store_read(s, get_txn, &o, &e);
    assert_int_equal(o.rc, TIKD_ECORRUPT);
    store_close(s);
    vault_free(v);

    /* the plaintext is nowhere in the database file */
    char path[600];
    snprintf(path, sizeof path, "%s/data.mdb", dir);
    FILE *f = fopen(path, "rb");
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    rewind(f);
    char *buf = malloc((size_t)n);
    assert_int_equal(fread(buf, 1, (size_t)n, f), (size_t)n);
    fclose(f);
    assert_null(memmem(buf, (size_t)n, TOKEN, strlen(TOKEN)));
    assert_null(memmem(buf, (size_t)n, "SECRET-token", 12));
    free(buf);
}

static int check_txn(struct store_txn *t, void *ctx)
{
    struct op *o = ctx;
    return vault_check(o->v, t, &o->e);
}

static void wrong_key_and_bad_files(void **state)
{
    (void)state;
    char id[64];
    struct tikd_err e = {0};
    assert_int_equal(vault_keyfile_create(keyfile2, id, sizeof id, &e), 0);
    struct vault *other = load(keyfile2);
    struct store *s = open_store();
    struct op o = {.v = other};
    assert_int_equal(store_read(s, check_txn, &o, &e), TIKD_ECORRUPT);
    assert_non_null(strstr(o.e.msg, "do not open this database"));
    o = (struct op){.v = other, .owner = "acct-1", .field = "access_token"};
    store_read(s, get_txn, &o, &e);
    assert_int_equal(o.rc, TIKD_ECORRUPT);
    assert_non_null(strstr(o.e.msg, "not in the key file"));
    store_close(s);
    vault_free(other);

    struct vault *v;
    chmod(keyfile2, 0640);
    assert_int_equal(vault_load(&v, keyfile2, NULL, &e), TIKD_EINVAL);
    assert_non_null(strstr(e.msg, "mode 0640"));
    assert_int_equal(vault_load(&v, NULL, NULL, &e), TIKD_EINVAL);
    assert_non_null(strstr(e.msg, "no key"));
    char bad[600];
    snprintf(bad, sizeof bad, "%s/bad.keys", dir);
    int fd = open(bad, O_WRONLY | O_CREAT, 0600);
    assert_int_equal(write(fd, "k1 notbase64\n", 13), 13);
    close(fd);
    assert_int_equal(vault_load(&v, bad, NULL, &e), TIKD_EINVAL);
    assert_non_null(strstr(e.msg, "bad.keys:1"));
    assert_int_equal(vault_load(&v, NULL, "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=", &e), 0);
    assert_string_equal(vault_key_id(v), "env");
    vault_free(v);
}

static int reseal_txn(struct store_txn *t, void *ctx)
{
    struct op *o = ctx;
    return vault_reseal_all(o->v, t, &o->n, &o->e);
}

static int drop_forged_txn(struct store_txn *t, void *ctx)
{
    (void)ctx;
    int rc = store_del(t, STORE_DB_VAULT, "acct-2\0access_token", 19);
    return rc ? rc : store_del(t, STORE_DB_VAULT, "acct-1\0pkce_verifier", 20);
}

static void rotation_keeps_records_readable(void **state)
{
    (void)state;
    struct tikd_err e = {0};
    char id[64];
    assert_int_equal(vault_keyfile_add(keyfile, id, sizeof id, &e), 0);
    struct vault *v = load(keyfile);
    assert_string_equal(vault_key_id(v), id);
    struct store *s = open_store();
    struct op o = {.v = v};
    /* the records forged by the AAD test do not open: re-sealing refuses
     * as a whole, nothing is half done */
    assert_int_equal(store_write(s, reseal_txn, &o, &e), TIKD_ECORRUPT);
    assert_non_null(strstr(o.e.msg, "nothing was re-sealed"));
    assert_int_equal(store_write(s, drop_forged_txn, NULL, &e), 0);
    o = (struct op){.v = v};
    assert_int_equal(store_write(s, reseal_txn, &o, &e), 0);
    assert_int_equal(o.n, 3); /* canary, access and refresh token */

    /* remove the old key from the file: everything still opens */
    FILE *f = fopen(keyfile, "r");
    char line[300], keep[300] = "";
    while (fgets(line, sizeof line, f))
        if (strncmp(line, id, strlen(id)) == 0)
            snprintf(keep, sizeof keep, "%s", line);
    fclose(f);
    f = fopen(keyfile, "w");
    fputs(keep, f);
    fclose(f);
    vault_free(v);
    v = load(keyfile);
    o = (struct op){.v = v};
    assert_int_equal(store_read(s, check_txn, &o, &e), 0);
    o = (struct op){.v = v, .owner = "acct-1", .field = "refresh_token"};
    store_read(s, get_txn, &o, &e);
    assert_int_equal(o.rc, 0);
    assert_string_equal(o.pt, TOKEN);
    vault_wipe_free(o.pt, o.n);
    store_close(s);
    vault_free(v);
}

int main(void)
{
    dir = tu_tmpdir();
    snprintf(keyfile, sizeof keyfile, "%s/vault.keys", dir);
    snprintf(keyfile2, sizeof keyfile2, "%s/other.keys", dir);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(seal_open_and_aad),
        cmocka_unit_test(wrong_key_and_bad_files),
        cmocka_unit_test(rotation_keeps_records_readable),
    };
    int rc = cmocka_run_group_tests_name("vault", tests, NULL, NULL);
    tu_rmrf(dir);
    free(dir);
    return rc;
}
