/* test_mediaurl.c - tokens for local images served to TikTok: a token finds
 * its image while it lives, and not after it expires, is pulled, or its job
 * ends; only the token's hash is stored. */
#include "testutil.h"

#include "../../core/mediaurl.h"
#include "../../core/store.h"

struct op {
    const char *token;
    struct media_url u;
    int what; /* 0 put, 1 get, 2 del, 3 del_job */
    double now;
};

static int op_txn(struct store_txn *t, void *ctx)
{
    struct op *o = ctx;
    switch (o->what) {
    case 0:
        return mediaurl_put(t, o->token, &o->u);
    case 1:
        return mediaurl_get(t, o->token, o->now, &o->u);
    case 2:
        return mediaurl_del(t, o->token);
    default:
        return mediaurl_del_job(t, o->u.job);
    }
}

static int run(struct store *s, int what, const char *token, uint64_t job, int index, double t)
{
    struct op o = {token, {.job = job, .index = index, .expires_at = 1000}, what, t};
    snprintf(o.u.path, sizeof o.u.path, "/srv/img/%d.jpg", index);
    snprintf(o.u.mime, sizeof o.u.mime, "image/jpeg");
    struct tikd_err e = {0};
    int rc = what == 1 ? store_read(s, op_txn, &o, &e) : store_write(s, op_txn, &o, &e);
    if (rc == 0 && what == 1) {
        assert_int_equal(o.u.job, job);
        assert_int_equal(o.u.index, index);
        assert_string_equal(o.u.mime, "image/jpeg");
    }
    return rc;
}

static void tokens_live_and_die(void **state)
{
    (void)state;
    char *dir = tu_tmpdir();
    struct store *s;
    struct store_opts so = {dir, 1 << 20, 8 << 20, false};
    struct tikd_err e = {0};
    assert_int_equal(store_open(&s, &so, &e), 0);
    char t[4][MEDIAURL_TOKEN_LEN + 1];
    for (int i = 0; i < 4; i++) {
        assert_int_equal(mediaurl_token(t[i], &e), 0);
        assert_int_equal(strlen(t[i]), MEDIAURL_TOKEN_LEN);
    }
    assert_string_not_equal(t[0], t[1]);
    /* job 7 has three images, job 8 one */
    for (int i = 0; i < 3; i++)
        assert_int_equal(run(s, 0, t[i], 7, i, 0), 0);
    assert_int_equal(run(s, 0, t[3], 8, 0, 0), 0);
    assert_int_equal(run(s, 1, t[1], 7, 1, 10), 0);
    assert_int_equal(run(s, 1, t[1], 7, 1, 1000), TIKD_ENOTFOUND); /* expired */
    assert_int_equal(run(s, 1, "nope", 7, 1, 10), TIKD_ENOTFOUND);
    /* pulled: that one goes */
    assert_int_equal(run(s, 2, t[0], 7, 0, 10), 0);
    assert_int_equal(run(s, 1, t[0], 7, 0, 10), TIKD_ENOTFOUND);
    assert_int_equal(run(s, 1, t[2], 7, 2, 10), 0);
    /* the job ends: all of its go, the other job's stay */
    assert_int_equal(run(s, 3, NULL, 7, 0, 10), 0);
    assert_int_equal(run(s, 1, t[1], 7, 1, 10), TIKD_ENOTFOUND);
    assert_int_equal(run(s, 1, t[2], 7, 2, 10), TIKD_ENOTFOUND);
    assert_int_equal(run(s, 1, t[3], 8, 0, 10), 0);
    store_close(s);
    /* the database holds no token */
    char path[600];
    snprintf(path, sizeof path, "%s/data.mdb", dir);
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    static char buf[1 << 20];
    size_t n = fread(buf, 1, sizeof buf, f);
    fclose(f);
    for (int i = 0; i < 4; i++)
        assert_null(memmem(buf, n, t[i], MEDIAURL_TOKEN_LEN));
    tu_rmrf(dir);
    free(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {cmocka_unit_test(tokens_live_and_die)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
