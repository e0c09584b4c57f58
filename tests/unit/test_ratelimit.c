/* test_ratelimit.c - GCRA against a reference worked out by hand on a fake
 * clock (burst, then steady state), the rolling-window caps, what TikTok's
 * answers teach (rl_block), the budgets surviving a restart of the store,
 * the requests in flight that bound what TikTok counts (rl_sent, rl_move),
 * and a rule's own limiters. */
#include "testutil.h"

#include "../../core/ratelimit.h"
#include "../../core/store.h"

/* ---- the pure algorithm ------------------------------------------------------------- */

/* 6 per 60 s, burst 3: T = 10 s, tolerance 20 s. By hand:
 *   t=0: TAT 0 -> go, TAT 10     t=0: allow_at -10 -> go, TAT 20
 *   t=0: allow_at 0 -> go, TAT 30   t=0: allow_at 10 -> wait until 10
 *   t=10: go, TAT 40                t=10: allow_at 20 -> wait until 20
 *   t=35: allow_at 20 -> go, TAT 50 t=35: allow_at 30 -> go, TAT 60
 *   t=35: allow_at 40 -> wait 5 s */
static void gcra_burst_then_steady(void **state)
{
    (void)state;
    struct rl_rate r = {6, 60, 3};
    double tat = 0;
    static const struct {
        double now, allow_at, tat_after; /* tat_after < 0: refused */
    } steps[] = {
        {0, 0, 10},   {0, 0, 20},   {0, 0, 30},   {0, 10, -1},  {10, 10, 40},
        {10, 20, -1}, {35, 35, 50}, {35, 35, 60}, {35, 40, -1},
    };
    for (size_t i = 0; i < sizeof steps / sizeof steps[0]; i++) {
        double at = rl_gcra_allow_at(&r, tat, steps[i].now);
        assert_float_equal(at, steps[i].allow_at, 1e-9);
        if (steps[i].tat_after >= 0) {
            tat = rl_gcra_take(&r, tat, steps[i].now);
            assert_float_equal(tat, steps[i].tat_after, 1e-9);
        }
    }
    /* steady state: a caller that goes whenever allowed gets exactly the
     * rate, and never more than `count` in any window (burst 1) */
    struct rl_rate one = {6, 60, 1};
    tat = 0;
    double now = 1000, sent[100];
    int n = 0;
    while (n < 100) {
        now = rl_gcra_allow_at(&one, tat, now);
        tat = rl_gcra_take(&one, tat, now);
        sent[n++] = now;
    }
    assert_float_equal(sent[99] - sent[0], 99 * 10.0, 1e-6);
    for (int i = 6; i < n; i++)
        assert_true(sent[i] - sent[i - 6] >= 60 - 1e-9); /* a sliding window of 6/min holds */
    /* blocking holds every cell back until then, and never shortens a wait */
    tat = rl_gcra_block(&one, 0, 500);
    assert_float_equal(rl_gcra_allow_at(&one, tat, 100), 500, 1e-9);
    assert_float_equal(rl_gcra_block(&one, 900, 500), 900, 1e-9);
    tat = rl_gcra_block(&r, 0, 500); /* with a burst, too */
    assert_float_equal(rl_gcra_allow_at(&r, tat, 499), 500, 1e-9);
}

/* ---- the budgets in a store ----------------------------------------------------------- */

static struct store *open_store(const char *dir)
{
    struct store *s;
    struct store_opts o = {dir, 1 << 20, 64 << 20, false};
    struct tikd_err e = {0};
    if (store_open(&s, &o, &e) != 0)
        fail_msg("store_open: %s", e.msg);
    return s;
}

struct op {
    const struct rl_config *c;
    const char *account;
    enum rl_budget bs[4];
    int n;
    double now, at;
    enum rl_budget which;
    bool spend;       /* spend when allowed */
    double block_til; /* > 0: rl_block bs[0] */
};

static int op_txn(struct store_txn *t, void *ctx)
{
    struct op *o = ctx;
    if (o->block_til > 0)
        return rl_block(t, o->c, o->account, o->bs[0], o->block_til);
    int rc = rl_when(t, o->c, o->account, o->bs, o->n, o->now, &o->at, &o->which);
    if (rc == 0 && o->spend && o->at <= o->now)
        rc = rl_spend(t, o->c, o->account, o->bs, o->n, o->now);
    return rc;
}

/* Try to spend bs for account at now: the moment they allow it. */
static double try_spend(struct store *s, const struct rl_config *c, const char *account,
                        enum rl_budget b1, enum rl_budget b2, double now, enum rl_budget *which)
{
    struct op o = {c, account, {b1, b2}, b2 == b1 ? 1 : 2, now, 0, 0, true, 0};
    struct tikd_err e = {0};
    assert_int_equal(store_write(s, op_txn, &o, &e), 0);
    if (which)
        *which = o.which;
    return o.at;
}

static void caps_and_rates_in_the_store(void **state)
{
    (void)state;
    char *dir = tu_tmpdir();
    struct store *s = open_store(dir);
    struct rl_config c;
    rl_config_default(&c);
    c.guard = 0;
    c.l[RL_DAILY_POSTS].count = 3;
    c.l[RL_DAILY_POSTS].per = 100;
    enum rl_budget w;

    /* inits: one per 10 s per account; accounts do not share */
    assert_float_equal(try_spend(s, &c, "a", RL_VIDEO_INIT, RL_DAILY_POSTS, 0, NULL), 0, 1e-9);
    assert_float_equal(try_spend(s, &c, "a", RL_VIDEO_INIT, RL_DAILY_POSTS, 1, &w), 10, 1e-9);
    assert_int_equal(w, RL_VIDEO_INIT);
    assert_float_equal(try_spend(s, &c, "b", RL_VIDEO_INIT, RL_DAILY_POSTS, 1, NULL), 1, 1e-9);
    /* the endpoints are separate budgets unless shared */
    assert_float_equal(try_spend(s, &c, "a", RL_INBOX_INIT, RL_INBOX_INIT, 2, NULL), 2, 1e-9);
    c.shared_init = true;
    assert_float_equal(try_spend(s, &c, "a", RL_CONTENT_INIT, RL_CONTENT_INIT, 3, NULL), 3, 1e-9);
    assert_float_equal(try_spend(s, &c, "a", RL_INBOX_INIT, RL_INBOX_INIT, 4, NULL), 13, 1e-9);
    c.shared_init = false;

    /* the daily cap: 3 in any 100 s; the 4th waits for the oldest to leave */
    assert_float_equal(try_spend(s, &c, "a", RL_VIDEO_INIT, RL_DAILY_POSTS, 20, NULL), 20, 1e-9);
    assert_float_equal(try_spend(s, &c, "a", RL_VIDEO_INIT, RL_DAILY_POSTS, 30, NULL), 30, 1e-9);
    assert_float_equal(try_spend(s, &c, "a", RL_VIDEO_INIT, RL_DAILY_POSTS, 40, &w), 100, 1e-9);
    assert_int_equal(w, RL_DAILY_POSTS);
    assert_float_equal(try_spend(s, &c, "a", RL_VIDEO_INIT, RL_DAILY_POSTS, 100.5, NULL), 100.5,
                       1e-9);
    /* a margin keeps one free: 2 usable, the window holds 20 (gone), 30, 100.5 */
    c.l[RL_DAILY_POSTS].margin = 1;
    assert_float_equal(try_spend(s, &c, "a", RL_VIDEO_INIT, RL_DAILY_POSTS, 110, &w), 130, 1e-9);
    c.l[RL_DAILY_POSTS].margin = 0;

    /* TikTok says the creator's cap is full (another app posted): held until
     * then, even though tikd's own count has room */
    struct op blk = {&c, "b", {RL_DAILY_POSTS}, 1, 0, 0, 0, false, 500};
    struct tikd_err e = {0};
    assert_int_equal(store_write(s, op_txn, &blk, &e), 0);
    assert_float_equal(try_spend(s, &c, "b", RL_VIDEO_INIT, RL_DAILY_POSTS, 200, &w), 500, 1e-9);
    assert_int_equal(w, RL_DAILY_POSTS);
    /* a 429 holds a rate budget shut the same way */
    struct op blk2 = {&c, "b", {RL_STATUS}, 1, 0, 0, 0, false, 260};
    assert_int_equal(store_write(s, op_txn, &blk2, &e), 0);
    assert_float_equal(try_spend(s, &c, "b", RL_STATUS, RL_STATUS, 250, NULL), 260, 1e-9);

    /* active creators per app: 2 may post per window; a third waits, an
     * active one does not */
    c.l[RL_ACTIVE_USERS].count = 2;
    c.l[RL_ACTIVE_USERS].per = 1000;
    assert_float_equal(try_spend(s, &c, "x", RL_ACTIVE_USERS, RL_ACTIVE_USERS, 600, NULL), 600,
                       1e-9);
    assert_float_equal(try_spend(s, &c, "y", RL_ACTIVE_USERS, RL_ACTIVE_USERS, 700, NULL), 700,
                       1e-9);
    assert_float_equal(try_spend(s, &c, "z", RL_ACTIVE_USERS, RL_ACTIVE_USERS, 800, &w), 1600,
                       1e-9);
    assert_int_equal(w, RL_ACTIVE_USERS);
    assert_float_equal(try_spend(s, &c, "x", RL_ACTIVE_USERS, RL_ACTIVE_USERS, 800, NULL), 800,
                       1e-9);

    /* a restart keeps every budget: close, reopen, ask again */
    store_close(s);
    s = open_store(dir);
    assert_float_equal(try_spend(s, &c, "b", RL_STATUS, RL_STATUS, 255, NULL), 260, 1e-9);
    assert_float_equal(try_spend(s, &c, "b", RL_VIDEO_INIT, RL_DAILY_POSTS, 300, &w), 500, 1e-9);
    struct op look = {&c, "a", {RL_VIDEO_INIT, RL_DAILY_POSTS}, 2, 111, 0, 0, false, 0};
    assert_int_equal(store_read(s, op_txn, &look, &e), 0);
    assert_float_equal(look.at, 120, 1e-9); /* 20, 30 and 100.5 in the window */

    store_close(s);
    tu_rmrf(dir);
    free(dir);
}

struct view_ctx {
    const struct rl_config *c;
    struct rl_view v;
    struct rl_metrics m;
};

static int view_txn(struct store_txn *t, void *ctx)
{
    struct view_ctx *vc = ctx;
    int rc = rl_view(t, vc->c, "a", RL_DAILY_POSTS, 50, &vc->v);
    return rc ? rc : rl_metrics(t, RL_DAILY_POSTS, &vc->m);
}

static int defer_txn(struct store_txn *t, void *ctx)
{
    (void)ctx;
    return rl_note_deferred(t, RL_DAILY_POSTS, 12.5);
}

static void views_and_metrics(void **state)
{
    (void)state;
    char *dir = tu_tmpdir();
    struct store *s = open_store(dir);
    struct rl_config c;
    rl_config_default(&c);
    c.guard = 0;
    c.l[RL_DAILY_POSTS] = (struct rl_limit){2, 100, 1, 0};
    try_spend(s, &c, "a", RL_DAILY_POSTS, RL_DAILY_POSTS, 10, NULL);
    try_spend(s, &c, "a", RL_DAILY_POSTS, RL_DAILY_POSTS, 20, NULL);
    struct tikd_err e = {0};
    assert_int_equal(store_write(s, defer_txn, NULL, &e), 0);
    struct view_ctx vc = {.c = &c};
    assert_int_equal(store_read(s, view_txn, &vc, &e), 0);
    assert_true(vc.v.limited);
    assert_float_equal(vc.v.used, 2, 1e-9);
    assert_float_equal(vc.v.cap, 2, 1e-9);
    assert_float_equal(vc.v.next_at, 110, 1e-9);
    assert_int_equal(vc.m.allowed, 2);
    assert_int_equal(vc.m.deferred, 1);
    assert_float_equal(vc.m.waited, 12.5, 1e-9);
    store_close(s);
    tu_rmrf(dir);
    free(dir);
}

struct named_ctx {
    const char *owner, *name;
    struct rl_rate r;
    double now, at;
    bool take, ok;
};

static int named_txn(struct store_txn *t, void *ctx)
{
    struct named_ctx *n = ctx;
    return rl_named(t, n->owner, n->name, &n->r, n->now, n->take, &n->ok, &n->at);
}

static void rule_limiters_are_per_rule_file(void **state)
{
    (void)state;
    char *dir = tu_tmpdir();
    struct store *s = open_store(dir);
    struct tikd_err e = {0};
    struct named_ctx n = {"client.lua", "hourly", {3, 3600, 3}, 0, 0, true, false};
    for (int i = 0; i < 3; i++) {
        assert_int_equal(store_write(s, named_txn, &n, &e), 0);
        assert_true(n.ok);
    }
    assert_int_equal(store_write(s, named_txn, &n, &e), 0);
    assert_false(n.ok);
    assert_float_equal(n.at, 1200, 1e-9);
    /* asking does not take */
    n.take = false;
    n.now = 1200;
    assert_int_equal(store_write(s, named_txn, &n, &e), 0);
    assert_true(n.ok);
    assert_int_equal(store_write(s, named_txn, &n, &e), 0);
    assert_true(n.ok);
    /* another rule file's limiter of the same name is its own */
    struct named_ctx o = {"other.lua", "hourly", {3, 3600, 1}, 0, 0, true, false};
    assert_int_equal(store_write(s, named_txn, &o, &e), 0);
    assert_true(o.ok);
    store_close(s);
    tu_rmrf(dir);
    free(dir);
}

/* ---- requests in flight ---------------------------------------------------------------- */

struct sent_op {
    enum {
        S_SENT,
        S_ANSWERED,
        S_SETTLE,
        S_SETTLE_OWN,
        S_SENT_WHEN,
        S_WHEN,
        S_RESERVE,
        S_RELEASE,
        S_MOVE
    } kind;
    const struct rl_config *c;
    double now, at;
    enum rl_budget which;
    int n; /* budgets: the init's rate, and with 2 the daily cap */
};

static int sent_txn(struct store_txn *t, void *ctx)
{
    struct sent_op *o = ctx;
    static const enum rl_budget bs[] = {RL_VIDEO_INIT, RL_DAILY_POSTS};
    int n = o->n ? o->n : 1;
    switch (o->kind) {
    case S_SENT:
        return rl_sent(t, o->c, "a", bs, n, o->now);
    case S_ANSWERED:
        return rl_answered(t, o->c, "a", bs, n, o->now);
    case S_SETTLE:
        return rl_settle(t, o->now, o->c->boot + 1); /* as a later process */
    case S_SETTLE_OWN:
        return rl_settle(t, o->now, o->c->boot);
    case S_SENT_WHEN:
        return rl_sent_when(t, o->c, "a", bs, n, o->now, &o->at, &o->which);
    case S_WHEN:
        return rl_when(t, o->c, "a", bs, n, o->now, &o->at, &o->which);
    case S_RESERVE:
        return rl_reserve(t, o->c, "a", bs, n, o->now, &o->at, &o->which);
    case S_RELEASE:
        return rl_release(t, o->c, "a", bs, n, o->at, o->now);
    case S_MOVE:
        return rl_move(t, o->c, "a", bs, n, o->now, &o->at, &o->which);
    }
    return TIKD_EINVAL;
}

static double sent_do(struct store *s, const struct rl_config *c, int kind, double now, int n)
{
    struct sent_op o = {kind, c, now, now, RL__COUNT, n};
    struct tikd_err e = {0};
    assert_int_equal(store_write(s, sent_txn, &o, &e), 0);
    return o.at;
}

/* 6 inits a minute, guard 0.5 s: the requests sent count until their answer
 * plus 60.25 s, those in flight until they are answered. */
static void requests_in_flight_bound_what_tiktok_counts(void **state)
{
    (void)state;
    char *dir = tu_tmpdir();
    struct store *s = open_store(dir);
    struct rl_config c;
    rl_config_default(&c);
    /* six leave on their moments; the first stalls and is answered at 20,
     * after the second and third: answers come in any order */
    for (int i = 0; i < 6; i++)
        sent_do(s, &c, S_SENT, 10.0 * i, 0);
    assert_float_equal(sent_do(s, &c, S_SENT_WHEN, 50.1, 0), 60.1, 1e-9); /* 6 in flight */
    sent_do(s, &c, S_ANSWERED, 10.1, 0);
    sent_do(s, &c, S_ANSWERED, 20, 0); /* the stalled one (any may be settled first) */
    for (int i = 2; i < 6; i++)
        sent_do(s, &c, S_ANSWERED, 10.0 * i + 0.1, 0);
    /* the 7th waits for the earliest answer to leave TikTok's window, not
     * for the moment the first one was planned */
    assert_float_equal(sent_do(s, &c, S_SENT_WHEN, 60, 0), 10.1 + 60.25, 1e-9);
    assert_float_equal(sent_do(s, &c, S_SENT_WHEN, 71, 0), 71, 1e-9);
    /* rl_when includes it: GCRA alone (nothing reserved here) would allow 60 */
    assert_float_equal(sent_do(s, &c, S_WHEN, 60, 0), 70.35, 1e-9);
    /* an answer with nothing in flight changes nothing */
    sent_do(s, &c, S_ANSWERED, 72, 0);
    assert_float_equal(sent_do(s, &c, S_SENT_WHEN, 71, 0), 71, 1e-9);

    /* a restart settles what an earlier process left in flight at its start */
    c.l[RL_VIDEO_INIT].count = 1;
    sent_do(s, &c, S_SENT, 1000, 0);
    assert_float_equal(sent_do(s, &c, S_SENT_WHEN, 1001, 0), 1001 + 60, 1e-9);
    sent_do(s, &c, S_SETTLE, 1005, 0);
    assert_float_equal(sent_do(s, &c, S_SENT_WHEN, 1006, 0), 1005 + 60.25, 1e-9);
    store_close(s);
    s = open_store(dir); /* and the store keeps them */
    assert_float_equal(sent_do(s, &c, S_SENT_WHEN, 1006, 0), 1005 + 60.25, 1e-9);
    /* a settle tried again by the process that sent leaves its own in
     * flight (one that did not commit may be retried at any time) */
    sent_do(s, &c, S_SENT, 2000, 0);
    sent_do(s, &c, S_SETTLE_OWN, 2005, 0);
    assert_float_equal(sent_do(s, &c, S_SENT_WHEN, 2006, 0), 2006 + 60, 1e-9);
    sent_do(s, &c, S_SETTLE, 2010, 0);
    assert_float_equal(sent_do(s, &c, S_SENT_WHEN, 2011, 0), 2010 + 60.25, 1e-9);
    /* an answer settles the answering process's own request, not one an
     * earlier process left (that one waits for the settle): 7's, settled
     * by 8 at 3010, holds the one cell until 3070.25 */
    c.boot = 7;
    sent_do(s, &c, S_SENT, 3000, 0);
    c.boot = 8;
    sent_do(s, &c, S_SENT, 3001, 0);
    sent_do(s, &c, S_ANSWERED, 3002, 0);
    sent_do(s, &c, S_SETTLE_OWN, 3010, 0);
    assert_float_equal(sent_do(s, &c, S_SENT_WHEN, 3063, 0), 3010 + 60.25, 1e-9);
    store_close(s);
    tu_rmrf(dir);
    free(dir);
}

/* A slot held back by the requests before it moves, keeping its rate cell;
 * the cap's entry moves with it. */
static void a_held_back_slot_moves_and_keeps_its_cell(void **state)
{
    (void)state;
    char *dir = tu_tmpdir();
    struct store *s = open_store(dir);
    struct rl_config c;
    rl_config_default(&c);
    c.guard = 0;
    c.l[RL_DAILY_POSTS] = (struct rl_limit){2, 1000, 1, 0};
    assert_float_equal(sent_do(s, &c, S_RESERVE, 0, 2), 0, 1e-9);
    assert_float_equal(sent_do(s, &c, S_RESERVE, 0, 2), 10, 1e-9);
    /* the first leaves at 0 and is answered at 3; the second's slot (10)
     * came, and 6 a minute let it go then: the move keeps it at 10 */
    sent_do(s, &c, S_SENT, 0, 0);
    sent_do(s, &c, S_ANSWERED, 3, 0);
    struct sent_op rel = {S_RELEASE, &c, 10, 10, RL__COUNT, 2};
    struct tikd_err e = {0};
    assert_int_equal(store_write(s, sent_txn, &rel, &e), 0);
    assert_float_equal(sent_do(s, &c, S_MOVE, 10, 2), 10, 1e-9);
    /* no new cell was spent: the next slot is still the third, at 20, and
     * the cap holds 0 and 10 */
    assert_float_equal(sent_do(s, &c, S_WHEN, 11, 1), 20, 1e-9);
    assert_float_equal(sent_do(s, &c, S_WHEN, 11, 2), 1000, 1e-9);
    /* one cell a minute: the move waits for the answer plus the window */
    c.l[RL_VIDEO_INIT].count = 1;
    assert_int_equal(store_write(s, sent_txn, &rel, &e), 0);
    assert_float_equal(sent_do(s, &c, S_MOVE, 10, 2), 63, 1e-9);
    assert_float_equal(sent_do(s, &c, S_WHEN, 11, 2), 1000, 1e-9); /* 0 and 63 */

    /* how late a slot may be used: one cell of the init's rate */
    enum rl_budget bs[] = {RL_VIDEO_INIT, RL_DAILY_POSTS};
    assert_float_equal(rl_slot_late(&c, bs, 2), 60, 1e-9);
    c.l[RL_VIDEO_INIT].count = 6;
    assert_float_equal(rl_slot_late(&c, bs, 2), 10, 1e-9);
    c.l[RL_VIDEO_INIT].count = 1000; /* not kept: half the guard, as before */
    c.guard = 0.5;
    assert_float_equal(rl_slot_late(&c, bs, 2), 0.25, 1e-9);
    store_close(s);
    tu_rmrf(dir);
    free(dir);
}

static void names(void **state)
{
    (void)state;
    for (int b = 0; b < RL__COUNT; b++)
        assert_int_equal(rl_budget_parse(rl_budget_name((enum rl_budget)b)), b);
    assert_int_equal(rl_budget_parse("nope"), -1);
    assert_int_equal(rl_init_budget(false, false), RL_VIDEO_INIT);
    assert_int_equal(rl_init_budget(true, false), RL_INBOX_INIT);
    assert_int_equal(rl_init_budget(true, true), RL_CONTENT_INIT);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(gcra_burst_then_steady),
        cmocka_unit_test(caps_and_rates_in_the_store),
        cmocka_unit_test(views_and_metrics),
        cmocka_unit_test(rule_limiters_are_per_rule_file),
        cmocka_unit_test(requests_in_flight_bound_what_tiktok_counts),
        cmocka_unit_test(a_held_back_slot_moves_and_keeps_its_cell),
        cmocka_unit_test(names),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
