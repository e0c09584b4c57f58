/* test_ledger.c - the media ledger: identity by content (a copy is known, a
 * changed file is read again), retention (a record past LEDGER_RETENTION is
 * pruned when its file is gone and confirmed when it is still there, a few
 * per write, on a virtual clock), and the schema step that indexes a
 * ledger written before the prune order existed. */
#include "testutil.h"

#include <sys/stat.h>

#include "../../core/clock.h"
#include "../../core/codec.h"
#include "../../core/ledger.h"
#include "../../core/store.h"

static char *dir;
static struct store *st;
static struct tu_logcap cap; /* the intake.new lines, kept off the terminal */

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
    tu_logcap_start(&cap);
    st = open_db();
    clock_set_virtual(1800000000); /* 2027-01-15 */
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    clock_set_source(NULL);
    tu_logcap_stop(&cap);
    store_close(st);
    tu_rmrf(dir);
    free(dir);
    return 0;
}

static const char *file(const char *name, const char *content)
{
    static char path[8][600];
    static int n;
    char *p = path[n++ % 8];
    snprintf(p, 600, "%s/%s", dir, name);
    tu_write(dir, name, content);
    return p;
}

/* Offer path: 1 fresh, 0 known. */
static int offer(const char *path)
{
    struct intake_item *it = malloc(sizeof *it);
    bool fresh = false;
    struct tikd_err e = {0};
    if (ledger_identify(st, path, it, &fresh, &e) != 0)
        fail_msg("ledger_identify %s: %s", path, e.msg);
    free(it);
    return fresh;
}

struct count {
    int content, paths, order;
};

static int count_one(struct store_val k, struct store_val v, void *ctx)
{
    (void)v;
    struct count *c = ctx;
    char first = ((const char *)k.p)[0];
    if (first == '@')
        c->order++;
    else if (first == '/')
        c->paths++;
    else
        c->content++;
    return 0;
}

static int count_txn(struct store_txn *t, void *ctx)
{
    return store_foreach(t, STORE_DB_MEDIA, NULL, 0, count_one, ctx);
}

static struct count counts(void)
{
    struct count c = {0};
    assert_int_equal(store_read(st, count_txn, &c, NULL), 0);
    return c;
}

static void identity_by_content(void **state)
{
    (void)state;
    const char *a = file("a.mp4", "content A"), *copy = file("copy.mp4", "content A");
    assert_int_equal(offer(a), 1);
    assert_int_equal(offer(a), 0);    /* known, unchanged: not read again */
    assert_int_equal(offer(copy), 0); /* the same content at a new path */
    file("a.mp4", "content B");       /* changed in place: new content */
    assert_int_equal(offer(a), 1);
    struct count c = counts();
    assert_int_equal(c.content, 2);
    assert_int_equal(c.paths, 2);
    assert_int_equal(c.order, c.content + c.paths); /* every record in the prune order */
}

static void records_expire_unless_their_file_is_there(void **state)
{
    (void)state;
    const char *gone = file("gone.mp4", "soon deleted"), *kept = file("kept.mp4", "stays");
    assert_int_equal(offer(gone), 1);
    assert_int_equal(offer(kept), 1);
    unlink(gone);
    /* within the retention nothing is pruned */
    clock_set_virtual(clock_now() + LEDGER_RETENTION - 60);
    assert_int_equal(offer(file("x.mp4", "x")), 1);
    assert_int_equal(counts().content, 3);
    /* past it, the next write prunes what is gone and confirms what is there */
    clock_set_virtual(clock_now() + 120);
    assert_int_equal(offer(file("y.mp4", "y")), 1);
    struct count c = counts();
    assert_int_equal(c.content, 4 - 1);
    assert_int_equal(c.paths, 4 - 1);
    assert_int_equal(c.order, c.content + c.paths);
    /* forgotten content is new again; confirmed content is still known */
    assert_int_equal(offer(file("again.mp4", "soon deleted")), 1);
    assert_int_equal(offer(file("kept-copy.mp4", "stays")), 0);
}

static void many_expired_records_go_a_few_per_write(void **state)
{
    (void)state;
    char name[32];
    for (int i = 0; i < 40; i++) {
        snprintf(name, sizeof name, "m%02d.mp4", i);
        const char *p = file(name, name);
        assert_int_equal(offer(p), 1);
        unlink(p);
    }
    assert_int_equal(counts().content, 40);
    clock_set_virtual(clock_now() + LEDGER_RETENTION + 1);
    assert_int_equal(offer(file("n1.mp4", "n1")), 1);
    /* one write prunes one batch: 16 of the 80 expired records */
    struct count c = counts();
    assert_int_equal(c.content + c.paths, 80 + 2 - 16);
    for (int i = 2; i < 12; i++) {
        snprintf(name, sizeof name, "n%d.mp4", i);
        offer(file(name, name));
    }
    c = counts();
    assert_int_equal(c.content, 11); /* the 40 are gone, the 11 new ones stay */
    assert_int_equal(c.order, c.content + c.paths);
}

/* A ledger written before the prune order existed: schema 1, no '@' keys. */
struct first_key {
    unsigned char k[2048];
    size_t n;
    bool found;
};

static int first_order_key(struct store_val k, struct store_val v, void *ctx)
{
    (void)v;
    struct first_key *f = ctx;
    memcpy(f->k, k.p, k.n);
    f->n = k.n;
    f->found = true;
    return 1;
}

static int drop_order_txn(struct store_txn *t, void *ctx)
{
    (void)ctx;
    for (;;) {
        struct first_key f = {.found = false};
        int rc = store_foreach(t, STORE_DB_MEDIA, "@", 1, first_order_key, &f);
        if (rc < 0)
            return rc;
        if (!f.found)
            break;
        if ((rc = store_del(t, STORE_DB_MEDIA, f.k, f.n)) != 0)
            return rc;
    }
    unsigned char v1[4] = {0, 0, 0, 1};
    return store_put(t, STORE_DB_META, "schema_version", 14, v1, 4);
}

static void the_schema_step_indexes_an_old_ledger(void **state)
{
    (void)state;
    assert_int_equal(offer(file("old.mp4", "old content")), 1);
    unlink(file("old.mp4", "old content"));
    assert_int_equal(store_write(st, drop_order_txn, NULL, NULL), 0);
    assert_int_equal(counts().order, 0);
    store_close(st);
    st = open_db(); /* schema 1 -> 2: the ledger's prune order is built */
    struct count c = counts();
    assert_int_equal(c.order, c.content + c.paths);
    clock_set_virtual(clock_now() + LEDGER_RETENTION + 1);
    offer(file("new.mp4", "new"));
    assert_int_equal(counts().content, 1); /* the old record could expire */
}

/* ---- hashing on the loop ---- */

struct hashed {
    int done, rc;
    char hash[65];
    long turns; /* loop iterations while it ran */
};

static void on_hashed(void *ud, int rc, const char *hash, const struct ledger_fp *fp,
                      const char *why)
{
    (void)fp;
    (void)why;
    struct hashed *h = ud;
    h->done = 1;
    h->rc = rc;
    if (hash)
        snprintf(h->hash, sizeof h->hash, "%s", hash);
}

static void on_prep(struct ev_loop *l, ev_prepare *w, int revents)
{
    (void)l;
    (void)revents;
    ((struct hashed *)w->data)->turns++;
}

static void a_large_file_hashes_a_slice_at_a_time(void **state)
{
    (void)state;
    char path[600];
    snprintf(path, sizeof path, "%s/big.mp4", dir);
    FILE *f = fopen(path, "wb");
    static unsigned char block[1 << 20];
    for (size_t i = 0; i < sizeof block; i++)
        block[i] = (unsigned char)(i * 7);
    for (int i = 0; i < 40; i++) /* 40 MiB: five slices at least */
        fwrite(block, 1, sizeof block, f);
    fclose(f);
    struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
    struct hashed h = {0};
    ev_prepare prep;
    ev_prepare_init(&prep, on_prep);
    prep.data = &h;
    ev_prepare_start(loop, &prep);
    struct ledger_hashing *lh;
    struct tikd_err e = {0};
    assert_int_equal(ledger_hash_start(loop, path, on_hashed, &h, &lh, &e), 0);
    assert_int_equal(h.done, 0); /* never before it returns */
    while (!h.done)
        ev_run(loop, EVRUN_ONCE);
    assert_int_equal(h.rc, 0);
    assert_true(h.turns >= 5); /* the loop ran between slices */
    char want[65];
    assert_int_equal(codec_sha256_file(path, want, &e), 0);
    assert_string_equal(h.hash, want);
    /* a FIFO is refused at once; a cancelled hashing never calls back */
    snprintf(path, sizeof path, "%s/fifo.mp4", dir);
    assert_int_equal(mkfifo(path, 0600), 0);
    assert_int_equal(ledger_hash_start(loop, path, on_hashed, &h, &lh, &e), TIKD_EINVAL);
    snprintf(path, sizeof path, "%s/big.mp4", dir);
    h.done = 0;
    assert_int_equal(ledger_hash_start(loop, path, on_hashed, &h, &lh, &e), 0);
    ev_run(loop, EVRUN_ONCE);
    ledger_hash_cancel(lh);
    ev_run(loop, EVRUN_NOWAIT);
    assert_int_equal(h.done, 0);
    ev_prepare_stop(loop, &prep);
    ev_loop_destroy(loop);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(identity_by_content, setup, teardown),
        cmocka_unit_test_setup_teardown(records_expire_unless_their_file_is_there, setup, teardown),
        cmocka_unit_test_setup_teardown(many_expired_records_go_a_few_per_write, setup, teardown),
        cmocka_unit_test_setup_teardown(the_schema_step_indexes_an_old_ledger, setup, teardown),
        cmocka_unit_test_setup_teardown(a_large_file_hashes_a_slice_at_a_time, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
