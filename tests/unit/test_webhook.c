/* test_webhook.c - webhook de-duplication: an event is new once and a
 * duplicate after; keys older than WEBHOOK_SEEN_FOR are pruned a few per new
 * event, in time order (on a virtual clock), so the set stays a week of
 * events; and keys a tikd before schema 2 kept in META move to their own
 * database when it is opened. */
#include "testutil.h"

#include "../../core/clock.h"
#include "../../core/store.h"
#include "../../core/webhook.h"

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
    clock_set_virtual(1800000000);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    clock_set_source(NULL);
    store_close(st);
    tu_rmrf(dir);
    free(dir);
    return 0;
}

struct seen {
    struct webhook_event ev;
    int rc;
};

static int seen_txn(struct store_txn *t, void *ctx)
{
    struct seen *s = ctx;
    s->rc = webhook_seen(t, &s->ev, clock_now());
    return s->rc < 0 ? s->rc : 0;
}

/* 1 when event number i was seen before, 0 when new. */
static int seen(int i)
{
    struct seen s = {0};
    char body[200];
    int n =
        snprintf(body, sizeof body,
                 "{\"client_key\":\"ck\",\"event\":\"post.publish.complete\",\"create_time\":%d,"
                 "\"user_openid\":\"u\",\"content\":\"{\\\"publish_id\\\":\\\"p%d\\\"}\"}",
                 1800000000 + i, i);
    char why[200];
    assert_int_equal(webhook_parse(body, (size_t)n, &s.ev, why, sizeof why), 0);
    assert_int_equal(store_write(st, seen_txn, &s, NULL), 0);
    return s.rc;
}

static int count_one(struct store_val k, struct store_val v, void *ctx)
{
    (void)k;
    (void)v;
    (*(int *)ctx)++;
    return 0;
}

static int count_txn(struct store_txn *t, void *ctx)
{
    return store_foreach(t, STORE_DB_SEEN, "k", 1, count_one, ctx);
}

static int keys(void)
{
    int n = 0;
    assert_int_equal(store_read(st, count_txn, &n, NULL), 0);
    return n;
}

static void an_event_is_new_once(void **state)
{
    (void)state;
    assert_int_equal(seen(1), 0);
    assert_int_equal(seen(1), 1); /* at-least-once delivery: the second is a duplicate */
    assert_int_equal(seen(2), 0);
    assert_int_equal(keys(), 2);
}

static void old_keys_are_pruned_as_new_events_come(void **state)
{
    (void)state;
    for (int i = 0; i < 40; i++)
        assert_int_equal(seen(i), 0);
    clock_set_virtual(clock_now() + WEBHOOK_SEEN_FOR - 60);
    assert_int_equal(seen(100), 0);
    assert_int_equal(keys(), 41); /* none is a week old yet */
    clock_set_virtual(clock_now() + 120);
    assert_int_equal(seen(101), 0);
    assert_int_equal(keys(), 42 - 16); /* a batch per event */
    for (int i = 102; i < 105; i++)
        seen(i);
    assert_int_equal(keys(), 5); /* the 40 are gone; the new ones stay */
    assert_int_equal(seen(101), 1);
}

static int old_layout_txn(struct store_txn *t, void *ctx)
{
    (void)ctx;
    unsigned char k[35] = {'w', 'h', ':'}, when[8];
    for (int i = 0; i < 3; i++) {
        memset(k + 3, 'a' + i, 32);
        store_be64_put(when, 1800000000);
        int rc = store_put(t, STORE_DB_META, k, sizeof k, when, sizeof when);
        if (rc != 0)
            return rc;
    }
    unsigned char v1[4] = {0, 0, 0, 1};
    return store_put(t, STORE_DB_META, "schema_version", 14, v1, 4);
}

static int meta_wh(struct store_txn *t, void *ctx)
{
    return store_foreach(t, STORE_DB_META, "wh:", 3, count_one, ctx);
}

static void keys_of_an_older_tikd_move(void **state)
{
    (void)state;
    assert_int_equal(store_write(st, old_layout_txn, NULL, NULL), 0);
    store_close(st);
    st = open_db();
    int left = 0;
    assert_int_equal(store_read(st, meta_wh, &left, NULL), 0);
    assert_int_equal(left, 0);
    assert_int_equal(keys(), 3);
    clock_set_virtual(clock_now() + WEBHOOK_SEEN_FOR + 1);
    seen(1);
    assert_int_equal(keys(), 1); /* they expire like any other */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(an_event_is_new_once, setup, teardown),
        cmocka_unit_test_setup_teardown(old_keys_are_pruned_as_new_events_come, setup, teardown),
        cmocka_unit_test_setup_teardown(keys_of_an_older_tikd_move, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
