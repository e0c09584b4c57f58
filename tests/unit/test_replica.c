/* test_replica.c - an account's state out of one node's database and into
 * another's (core/replica): the record, the sealed tokens (they open on the
 * other node with the same key, and only for the same account), the
 * account's own budgets and its open jobs under cluster keys; a job that
 * comes back to the node that planned it is the same job again; a local
 * open job Redis knows as ended ends here; a job planned here and never
 * written through stays; a bad snapshot changes nothing. */
#include "testutil.h"

#include "../../core/account.h"
#include "../../core/job.h"
#include "../../core/ratelimit.h"
#include "../../core/replica.h"
#include "../../core/store.h"
#include "../../core/vault.h"

#include <string.h>

static char *dir;
static struct store *na, *nb; /* two nodes' databases */
static struct vault *v;
static struct rl_config rl;

static struct store *open_db(const char *name)
{
    char path[600];
    snprintf(path, sizeof path, "%s/%s", dir, name);
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
    na = open_db("a");
    nb = open_db("b");
    struct tikd_err e = {0};
    if (vault_load(&v, NULL, "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=", &e) != 0)
        fail_msg("vault_load: %s", e.msg);
    rl_config_default(&rl);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    store_close(na);
    store_close(nb);
    vault_free(v);
    tu_rmrf(dir);
    free(dir);
    return 0;
}

/* ---- building a node's state ------------------------------------------------------ */

struct acct_ctx {
    const char *name, *token;
};

static int acct_txn(struct store_txn *t, void *ctx)
{
    const struct acct_ctx *x = ctx;
    struct account a;
    account_init(&a, x->name, 1000);
    a.state = ACCT_ACTIVE;
    a.access_expires_at = 5000;
    snprintf(a.open_id, sizeof a.open_id, "open-%s", x->name);
    int rc = account_put(t, &a);
    if (rc == 0)
        rc = vault_put(v, t, a.id, "access_token", x->token, strlen(x->token), NULL);
    enum rl_budget b = RL_VIDEO_INIT;
    return rc ? rc : rl_spend(t, &rl, x->name, &b, 1, 2000);
}

static void connect_acct(struct store *s, const char *name, const char *token)
{
    struct acct_ctx x = {name, token};
    assert_int_equal(store_write(s, acct_txn, &x, NULL), 0);
}

struct job_ctx {
    struct job *j;
    bool create;
};

static int job_txn(struct store_txn *t, void *ctx)
{
    struct job_ctx *x = ctx;
    return x->create ? job_create(t, x->j) : job_put(t, x->j);
}

static uint64_t plan(struct store *s, const char *account, const char *caption)
{
    struct job *j = calloc(1, sizeof *j);
    snprintf(j->account, sizeof j->account, "%s", account);
    snprintf(j->media, sizeof j->media, "/srv/media/%s.mp4", caption);
    snprintf(j->caption, sizeof j->caption, "%s", caption);
    snprintf(j->privacy, sizeof j->privacy, "SELF_ONLY");
    snprintf(j->chosen_by, sizeof j->chosen_by, "operator");
    j->due_at = 3000;
    struct job_ctx x = {j, true};
    assert_int_equal(store_write(s, job_txn, &x, NULL), 0);
    uint64_t id = j->id;
    free(j);
    return id;
}

static struct job *get(struct store *s, uint64_t id)
{
    struct job *j = calloc(1, sizeof *j);
    assert_int_equal(job_read(s, id, j), 0);
    return j;
}

static void put(struct store *s, struct job *j)
{
    struct job_ctx x = {j, false};
    assert_int_equal(store_write(s, job_txn, &x, NULL), 0);
}

/* ---- export and import --------------------------------------------------------------- */

struct ex_ctx {
    const char *node, *account;
    const uint64_t *prev;
    size_t nprev;
    struct replica_snap *s;
};

static int ex_txn(struct store_txn *t, void *ctx)
{
    struct ex_ctx *x = ctx;
    return replica_export(t, x->node, x->account, x->prev, x->nprev, x->s);
}

static int export_from(struct store *s, const char *node, const char *account, const uint64_t *prev,
                       size_t nprev, struct replica_snap *out)
{
    struct ex_ctx x = {node, account, prev, nprev, out};
    memset(out, 0, sizeof *out);
    return store_read(s, ex_txn, &x, NULL);
}

struct im_ctx {
    const char *node, *account;
    const struct replica_snap *s;
    struct tikd_err *e;
};

static int im_txn(struct store_txn *t, void *ctx)
{
    struct im_ctx *x = ctx;
    return replica_import(t, v, x->node, x->account, x->s, x->e);
}

static int import_into(struct store *s, const char *node, const char *account,
                       const struct replica_snap *snap, struct tikd_err *e)
{
    struct im_ctx x = {node, account, snap, e};
    return store_write(s, im_txn, &x, e);
}

/* What Redis would give back: the same items (the export's own "done"
 * items are the write's; a read gives those of the keys it asked for). */
static void as_read(const struct replica_snap *w, struct replica_snap *r)
{
    memset(r, 0, sizeof *r);
    for (size_t i = 0; i < w->nacct; i++)
        replica_add(&r->acct, &r->nacct, w->acct[i].key, w->acct[i].klen, w->acct[i].val,
                    w->acct[i].vlen);
    for (size_t i = 0; i < w->nopen; i++)
        replica_add(&r->open, &r->nopen, w->open[i].key, w->open[i].klen, w->open[i].val,
                    w->open[i].vlen);
}

struct vget_ctx {
    const char *account;
    char *pt;
    size_t n;
    int rc;
};

static int vget_txn(struct store_txn *t, void *ctx)
{
    struct vget_ctx *x = ctx;
    struct account a;
    int rc = account_get(t, x->account, &a);
    x->rc = rc ? rc : vault_get(v, t, a.id, "access_token", &x->pt, &x->n, NULL);
    return 0;
}

struct key_ctx {
    const char *k;
    size_t kl;
    uint64_t id;
    int rc;
};

static int key_txn(struct store_txn *t, void *ctx)
{
    struct key_ctx *x = ctx;
    struct store_val val;
    x->rc = store_get(t, STORE_DB_META, x->k, x->kl, &val);
    if (x->rc == 0 && val.n == 8)
        x->id = store_be64_get(val.p);
    return 0;
}

struct meta_put {
    const char *k;
    size_t kl;
    const void *v;
};

static int meta_put_txn(struct store_txn *t, void *ctx)
{
    const struct meta_put *m = ctx;
    return store_put(t, STORE_DB_META, m->k, m->kl, m->v, 8);
}

struct when_ctx {
    const char *account;
    double at;
};

static int when_txn(struct store_txn *t, void *ctx)
{
    struct when_ctx *x = ctx;
    enum rl_budget b = RL_VIDEO_INIT, which;
    return rl_when(t, &rl, x->account, &b, 1, 2001, &x->at, &which);
}

static void the_account_and_its_open_jobs_move_to_another_node(void **state)
{
    (void)state;
    connect_acct(na, "k0", "act.secret-of-k0");
    uint64_t j1 = plan(na, "k0", "first"), j2 = plan(na, "k0", "second");
    struct job *keyed = get(na, j1); /* planned under a rule's key */
    snprintf(keyed->key_scope, sizeof keyed->key_scope, "rules/x.lua");
    snprintf(keyed->key, sizeof keyed->key, "once");
    put(na, keyed);
    free(keyed);
    struct job *done = get(na, j2);
    done->state = JOB_PUBLISHED;
    put(na, done);
    free(done);

    struct replica_snap w;
    assert_int_equal(export_from(na, "a", "k0", NULL, 0, &w), 0);
    assert_int_equal(w.nopen, 1); /* the open one only */
    assert_string_equal(w.open[0].key, "a:1");
    assert_int_equal(w.ids[0], j1);
    for (size_t i = 0; i < w.nacct; i++) /* the token is in it sealed only */
        assert_null(memmem(w.acct[i].val, w.acct[i].vlen, "secret-of-k0", 12));
    struct replica_snap again;
    assert_int_equal(export_from(na, "a", "k0", NULL, 0, &again), 0);
    assert_true(again.digest == w.digest); /* the same state, the same digest */
    replica_snap_free(&again);

    /* b has a job of its own first: ids differ between nodes */
    connect_acct(nb, "other", "act.other");
    plan(nb, "other", "b's own");
    struct replica_snap r;
    as_read(&w, &r);
    assert_int_equal(w.nkeys, 1);
    assert_int_equal(w.keys[0].klen, strlen("rules/x.lua") + 1 + strlen("once"));
    assert_string_equal((const char *)w.keys[0].val, "a:1");
    replica_add(&r.keys, &r.nkeys, w.keys[0].key, w.keys[0].klen, w.keys[0].val, w.keys[0].vlen);
    replica_add(&r.keys, &r.nkeys, "rules/x.lua\0gone", 16, "c:5", 3); /* ended elsewhere */
    struct tikd_err e = {0};
    assert_int_equal(import_into(nb, "b", "k0", &r, &e), 0);
    /* the keys: planned once in the cluster */
    struct key_ctx kc = {"jobkey:rules/x.lua\0once", 7 + 16, 99, 0};
    assert_int_equal(store_read(nb, key_txn, &kc, NULL), 0);
    assert_int_equal(kc.rc, 0);
    assert_int_equal(kc.id, 2); /* b's id of the job it imported */
    struct key_ctx kg = {"jobkey:rules/x.lua\0gone", 7 + 16, 99, 0};
    assert_int_equal(store_read(nb, key_txn, &kg, NULL), 0);
    assert_int_equal(kg.rc, 0);
    assert_int_equal(kg.id, 0); /* planned on a node whose job is not here */
    struct vget_ctx g = {"k0", NULL, 0, 0};
    assert_int_equal(store_read(nb, vget_txn, &g, NULL), 0);
    assert_int_equal(g.rc, 0);
    assert_string_equal(g.pt, "act.secret-of-k0");
    vault_wipe_free(g.pt, g.n);
    struct job *moved = get(nb, 2);
    assert_string_equal(moved->account, "k0");
    assert_string_equal(moved->caption, "first");
    assert_string_equal(moved->origin, "a:1");
    assert_true(moved->imported_at > 0);
    /* the account's budgets came along: the init a spent is spent on b too */
    struct when_ctx w2 = {"k0", 0};
    assert_int_equal(store_read(nb, when_txn, &w2, NULL), 0);
    assert_true(w2.at > 2001);
    w2.account = "other"; /* and b's own account's budget is its own */
    assert_int_equal(store_read(nb, when_txn, &w2, NULL), 0);
    assert_true(w2.at > 2001);
    struct when_ctx w3 = {"nobody", 0};
    assert_int_equal(store_read(nb, when_txn, &w3, NULL), 0);
    assert_true(w3.at <= 2001);
    struct replica_snap wb;
    assert_int_equal(export_from(nb, "b", "k0", NULL, 0, &wb), 0);
    assert_int_equal(wb.nopen, 1);
    assert_string_equal(wb.open[0].key, "a:1"); /* the same cluster key on every node */

    /* b works it a step and writes it through; it comes back to a as the
     * same job (a:1 is a's job 1), with b's progress */
    moved->state = JOB_UPLOADING;
    moved->chunks_done = 3;
    put(nb, moved);
    free(moved);
    replica_snap_free(&wb);
    assert_int_equal(export_from(nb, "b", "k0", NULL, 0, &wb), 0);
    struct replica_snap rb;
    as_read(&wb, &rb);
    assert_int_equal(import_into(na, "a", "k0", &rb, &e), 0);
    struct job *back = get(na, j1);
    assert_int_equal(back->state, JOB_UPLOADING);
    assert_int_equal(back->chunks_done, 3);
    assert_string_equal(back->origin, "");
    free(back);

    replica_snap_free(&w);
    replica_snap_free(&r);
    replica_snap_free(&wb);
    replica_snap_free(&rb);
}

static void ended_elsewhere_ends_here_and_a_local_plan_stays(void **state)
{
    (void)state;
    connect_acct(na, "k0", "act.k0");
    uint64_t j1 = plan(na, "k0", "one"), j2 = plan(na, "k0", "two"), j3 = plan(na, "k0", "three");
    /* what the holder (b) wrote: j1 published there, j2 lost unrecorded */
    struct replica_snap w;
    assert_int_equal(export_from(na, "a", "k0", NULL, 0, &w), 0);
    struct replica_snap r;
    memset(&r, 0, sizeof r);
    for (size_t i = 0; i < w.nacct; i++)
        replica_add(&r.acct, &r.nacct, w.acct[i].key, w.acct[i].klen, w.acct[i].val,
                    w.acct[i].vlen);
    struct job *j = get(na, j1);
    j->state = JOB_PUBLISHED;
    snprintf(j->post_ids, sizeof j->post_ids, "7001");
    struct replica_snap one;
    put(na, j);
    assert_int_equal(export_from(na, "a", "k0", &j1, 1, &one), 0);
    assert_int_equal(one.ndone, 1); /* open in the last write, final now */
    assert_string_equal(one.done[0].key, "a:1");
    assert_int_equal(one.done[0].val[0], 'F');
    replica_add(&r.done, &r.ndone, one.done[0].key, one.done[0].klen, one.done[0].val,
                one.done[0].vlen);
    replica_add(&r.done, &r.ndone, "a:2", 3, "Lrecord", 7);
    /* ... and here a still has j1 open, as before b took over */
    j->state = JOB_SCHEDULED;
    j->post_ids[0] = '\0';
    put(na, j);
    free(j);

    struct tikd_err e = {0};
    assert_int_equal(import_into(na, "a", "k0", &r, &e), 0);
    struct job *g1 = get(na, j1), *g2 = get(na, j2), *g3 = get(na, j3);
    assert_int_equal(g1->state, JOB_PUBLISHED);
    assert_string_equal(g1->post_ids, "7001");
    assert_int_equal(g2->state, JOB_FAILED); /* never resumed from a stale state */
    assert_string_equal(g2->fail_reason, "cluster_lost");
    assert_int_equal(g3->state, JOB_SCHEDULED); /* planned here, never written through */
    free(g1);
    free(g2);
    free(g3);
    replica_snap_free(&w);
    replica_snap_free(&r);
    replica_snap_free(&one);
}

static void a_bad_snapshot_changes_nothing(void **state)
{
    (void)state;
    connect_acct(na, "k0", "act.k0");
    struct replica_snap w;
    assert_int_equal(export_from(na, "a", "k0", NULL, 0, &w), 0);
    struct tikd_err e = {0};
    /* an empty snapshot: nothing written through yet, the node's copy stands */
    struct replica_snap none = {0};
    assert_int_equal(import_into(na, "a", "k0", &none, &e), 0);
    assert_int_equal(import_into(nb, "b", "k0", &none, &e), TIKD_ENOTFOUND);

    /* a sealed token moved to another account does not open: refused */
    connect_acct(nb, "k1", "act.k1");
    struct replica_snap bad;
    assert_int_equal(export_from(nb, "b", "k1", NULL, 0, &bad), 0);
    struct replica_snap mixed;
    memset(&mixed, 0, sizeof mixed);
    for (size_t i = 0; i < w.nacct; i++) {
        const struct replica_item *it = &w.acct[i];
        const struct replica_item *from = it;
        if (strncmp(it->key, "v:", 2) == 0)
            for (size_t k = 0; k < bad.nacct; k++)
                if (strcmp(bad.acct[k].key, it->key) == 0)
                    from = &bad.acct[k];
        replica_add(&mixed.acct, &mixed.nacct, it->key, it->klen, from->val, from->vlen);
    }
    assert_int_equal(import_into(nb, "b", "k0", &mixed, &e), TIKD_ECORRUPT);
    assert_non_null(strstr(e.msg, "does not open here"));
    struct vget_ctx g = {"k0", NULL, 0, 0};
    assert_int_equal(store_read(nb, vget_txn, &g, NULL), 0);
    assert_int_equal(g.rc, TIKD_ENOTFOUND); /* nothing of k0 was written */

    /* a job record of another account: refused, nothing written */
    struct replica_snap wrong;
    memset(&wrong, 0, sizeof wrong);
    for (size_t i = 0; i < w.nacct; i++)
        replica_add(&wrong.acct, &wrong.nacct, w.acct[i].key, w.acct[i].klen, w.acct[i].val,
                    w.acct[i].vlen);
    plan(nb, "k1", "k1's");
    struct replica_snap k1;
    assert_int_equal(export_from(nb, "b", "k1", NULL, 0, &k1), 0);
    replica_add(&wrong.open, &wrong.nopen, "c:9", 3, k1.open[0].val, k1.open[0].vlen);
    e.msg[0] = '\0';
    assert_int_equal(import_into(nb, "b", "k0", &wrong, &e), TIKD_ECORRUPT);
    g.rc = 0;
    assert_int_equal(store_read(nb, vget_txn, &g, NULL), 0);
    assert_int_equal(g.rc, TIKD_ENOTFOUND);

    replica_snap_free(&w);
    replica_snap_free(&bad);
    replica_snap_free(&mixed);
    replica_snap_free(&wrong);
    replica_snap_free(&k1);
}

struct take_ctx {
    const char *node, *account;
    const struct replica_snap *s;
    struct tikd_err *e;
};

static int take_txn(struct store_txn *t, void *ctx)
{
    struct take_ctx *x = ctx;
    return replica_import_jobs(t, x->node, x->account, x->s->open, x->s->nopen, x->e);
}

struct planned_ctx {
    const char *node, *account;
    struct replica_snap *s;
};

static int planned_txn(struct store_txn *t, void *ctx)
{
    struct planned_ctx *x = ctx;
    return replica_export_planned(t, x->node, x->account, x->s);
}

static void offered_jobs_are_taken_once(void **state)
{
    (void)state;
    connect_acct(na, "k0", "act.k0"); /* a plans, b holds */
    connect_acct(nb, "k0", "act.k0");
    uint64_t j1 = plan(na, "k0", "offered"), j2 = plan(na, "k0", "keyed");
    struct job *k = get(na, j2);
    snprintf(k->key_scope, sizeof k->key_scope, "rules/x.lua");
    snprintf(k->key, sizeof k->key, "once");
    put(na, k);
    free(k);
    struct replica_snap offer;
    struct planned_ctx pc = {"a", "k0", &offer};
    assert_int_equal(store_read(na, planned_txn, &pc, NULL), 0);
    assert_int_equal(offer.nopen, 2);
    (void)j1;

    /* b planned the same key itself already: that post is the one */
    uint64_t mine = plan(nb, "k0", "b's keyed");
    struct key_ctx kc = {"jobkey:rules/x.lua\0once", 7 + 16, 0, 0};
    struct tikd_err e = {0};
    unsigned char be[8];
    store_be64_put(be, mine);
    struct meta_put mp = {kc.k, kc.kl, be};
    assert_int_equal(store_write(nb, meta_put_txn, &mp, NULL), 0);

    struct take_ctx tc = {"b", "k0", &offer, &e};
    assert_int_equal(store_write(nb, take_txn, &tc, &e), 0);
    struct job *taken = get(nb, mine + 1);
    assert_string_equal(taken->caption, "offered");
    assert_string_equal(taken->origin, "a:1");
    struct job none;
    assert_int_equal(job_read(nb, mine + 2, &none), TIKD_ENOTFOUND); /* the keyed one: not */

    /* taken, then ended here: a second take never brings it back */
    taken->state = JOB_CANCELLED;
    put(nb, taken);
    free(taken);
    assert_int_equal(store_write(nb, take_txn, &tc, &e), 0);
    struct job *again = get(nb, mine + 1);
    assert_int_equal(again->state, JOB_CANCELLED);
    free(again);
    assert_int_equal(job_read(nb, mine + 2, &none), TIKD_ENOTFOUND);
    replica_snap_free(&offer);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(the_account_and_its_open_jobs_move_to_another_node, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(ended_elsewhere_ends_here_and_a_local_plan_stays, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(a_bad_snapshot_changes_nothing, setup, teardown),
        cmocka_unit_test_setup_teardown(offered_jobs_are_taken_once, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
