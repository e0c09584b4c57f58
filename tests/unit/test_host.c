/* test_host.c - the coroutine runner and generations: 10,000 concurrent
 * tikd.sleep calls finish in deadline order; a released generation lives
 * until its last call ends; cancellation; load errors reported per file with
 * file:line while good files load; extra files (rule tests) load after the
 * rules, and tikd.test exists in test mode only; a file's threads are
 * reused by its own calls only. */
#include "testutil.h"

#define N_SLEEPERS 10000

static struct ev_loop *loop;

static struct gen *build(const char *dir)
{
    struct host_opts o = tu_host_opts(dir, loop);
    struct gen *g;
    struct gen_report rep = {0};
    struct tikd_err e = {0};
    if (gen_build(&o, 1, &g, &rep, &e) != 0)
        fail_msg("%s: %s", dir, rep.nerrors ? rep.errors[0] : e.msg);
    gen_report_free(&rep);
    return g;
}

struct sleep_args {
    long id;
    double secs;
};

static int push_sleep(lua_State *L, void *ud)
{
    struct sleep_args *a = ud;
    lua_pushinteger(L, a->id);
    lua_pushnumber(L, a->secs);
    return 2;
}

static int push_secs(lua_State *L, void *ud)
{
    lua_pushnumber(L, *(double *)ud);
    return 1;
}

struct order {
    long *ids;
    int n, failed;
};

static void record(void *ud, const struct call_result *r)
{
    struct order *o = ud;
    if (!r->ok) {
        o->failed++;
        return;
    }
    o->ids[o->n++] = (long)lua_tointeger(r->L, 1);
}

static void ten_thousand_sleepers_in_deadline_order(void **state)
{
    (void)state;
    struct gen *g = build("tests/unit/rules_host");
    size_t rule = tu_rule(g, "sleepers.lua");
    /* deadlines are a permutation of 0.1 ms steps over one second */
    long *perm = malloc(N_SLEEPERS * sizeof *perm);
    for (long i = 0; i < N_SLEEPERS; i++)
        perm[i] = i;
    srand(42);
    for (long i = N_SLEEPERS - 1; i > 0; i--) {
        long j = rand() % (i + 1), t = perm[i];
        perm[i] = perm[j];
        perm[j] = t;
    }
    struct order o = {calloc(N_SLEEPERS, sizeof(long)), 0, 0};
    for (long i = 0; i < N_SLEEPERS; i++) {
        struct sleep_args a = {perm[i], (double)perm[i] * 0.0001};
        assert_int_equal(gen_call(g, rule, "sleeper", push_sleep, &a, record, &o), 0);
    }
    assert_int_equal(gen_live_calls(g), N_SLEEPERS);
    while (o.n + o.failed < N_SLEEPERS)
        ev_run(loop, EVRUN_ONCE);
    assert_int_equal(o.failed, 0);
    for (long i = 0; i < N_SLEEPERS; i++)
        if (o.ids[i] != i)
            fail_msg("completion %ld was sleeper %ld", i, o.ids[i]);
    assert_int_equal(gen_live_calls(g), 0);
    free(o.ids);
    free(perm);
    gen_release(g);
}

static void released_generation_finishes_its_calls(void **state)
{
    (void)state;
    struct gen *g = build("tests/unit/rules_host");
    struct order o = {calloc(4, sizeof(long)), 0, 0};
    struct sleep_args a = {7, 0.02};
    assert_int_equal(gen_call(g, tu_rule(g, "sleepers.lua"), "sleeper", push_sleep, &a, record, &o),
                     0);
    gen_release(g); /* a reload swapped it out: the call must still finish */
    while (o.n + o.failed < 1)
        ev_run(loop, EVRUN_ONCE);
    assert_int_equal(o.n, 1);
    assert_int_equal(o.ids[0], 7);
    free(o.ids);
}

static void errors_after_waking_and_cancel(void **state)
{
    (void)state;
    struct gen *g = build("tests/unit/rules_host");
    size_t rule = tu_rule(g, "sleepers.lua");
    struct tu_result r1 = {0}, r2 = {0};
    double secs = 0.01;
    assert_int_equal(gen_call(g, rule, "sleep_then_fail", push_secs, &secs, tu_done, &r1), 0);
    struct sleep_args b = {1, 3600};
    assert_int_equal(gen_call(g, rule, "sleeper", push_sleep, &b, tu_done, &r2), 0);
    while (!r1.done)
        ev_run(loop, EVRUN_ONCE);
    assert_false(r1.ok);
    assert_non_null(strstr(r1.error, "rules_host/sleepers.lua:9: failed after waking"));
    assert_false(r2.done);
    gen_cancel_all(g, "test shutdown");
    assert_true(r2.done);
    assert_false(r2.ok);
    assert_non_null(strstr(r2.error, "cancelled: test shutdown"));
    assert_int_equal(gen_live_calls(g), 0);
    assert_int_equal(ev_run(loop, EVRUN_NOWAIT), 0); /* no timer left behind */
    gen_release(g);
}

static void load_errors_are_reported_per_file(void **state)
{
    (void)state;
    struct host_opts o = tu_host_opts("tests/unit/rules_bad", loop);
    struct gen *g = NULL;
    struct gen_report rep = {0};
    struct tikd_err e = {0};
    assert_int_equal(gen_build(&o, 1, &g, &rep, &e), TIKD_ESCRIPT);
    assert_null(g);
    assert_int_equal(rep.nfiles, 6); /* d_good_test.lua is a test, not a rule */
    assert_int_equal(rep.nerrors, 5);
    assert_non_null(strstr(rep.errors[0], "rules_bad/a_syntax.lua:3:"));
    assert_non_null(strstr(rep.errors[1], "rules_bad/b_raises.lua:2: this rule refuses to load"));
    assert_non_null(strstr(rep.errors[2], "rules_bad/c_loops.lua:1: instruction budget exceeded"));
    /* Lua's own messages without a position still name the file */
    if (!strstr(rep.errors[3], "rules_bad/e_deep.lua"))
        fail_msg("%s", rep.errors[3]);
    if (!strstr(rep.errors[4], "rules_bad/f_binary.lua: attempt to load a binary chunk"))
        fail_msg("%s", rep.errors[4]);
    assert_non_null(strstr(e.msg, "5 of 6 rule files failed"));
    gen_report_free(&rep);
    o.rules_dir = "tests/unit/no_such_dir";
    assert_int_equal(gen_build(&o, 1, &g, &rep, &e), TIKD_EIO);
    assert_int_equal(rep.nerrors, 1);
    assert_non_null(strstr(rep.errors[0], "No such file"));
    gen_report_free(&rep);
}

/* "new thread: 0x..." or "again thread: 0x...": the address part */
static const char *addr(const struct tu_result *r)
{
    const char *a = strstr(r->value, "thread: ");
    if (!a)
        fail_msg("no thread in \"%s\" (%s)", r->value, r->error);
    return a;
}

/* A call that returned leaves its thread to the next call of the same file;
 * one that failed does not; calls at once run in threads of their own; no
 * thread passes to another file, and rule code can resume none of them. */
static void threads_are_reused_within_their_file(void **state)
{
    (void)state;
    struct gen *g = build("tests/unit/rules_host");
    struct tu_result r = tu_call(loop, g, "threads_a.lua", "which");
    assert_true(r.ok);
    assert_non_null(strstr(r.value, "new "));
    char first[64];
    snprintf(first, sizeof first, "%s", addr(&r));
    r = tu_call(loop, g, "threads_a.lua", "which");
    assert_true(strncmp(r.value, "again ", 6) == 0);
    assert_string_equal(addr(&r), first);
    r = tu_call(loop, g, "threads_a.lua", "fail");
    assert_false(r.ok);
    r = tu_call(loop, g, "threads_a.lua", "which"); /* the failed call's thread is gone */
    assert_true(strncmp(r.value, "new ", 4) == 0);
    assert_string_not_equal(addr(&r), first);
    struct tu_result n1 = {0}, n2 = {0};
    double secs = 0.01;
    size_t a = tu_rule(g, "threads_a.lua");
    assert_int_equal(gen_call(g, a, "nap", push_secs, &secs, tu_done, &n1), 0);
    assert_int_equal(gen_call(g, a, "nap", push_secs, &secs, tu_done, &n2), 0);
    while (!n1.done || !n2.done)
        ev_run(loop, EVRUN_ONCE);
    assert_true(n1.ok && n2.ok);
    assert_string_not_equal(addr(&n1), addr(&n2));
    struct tu_result b = tu_call(loop, g, "threads_b.lua", "which");
    assert_true(b.ok);
    assert_string_not_equal(addr(&b), addr(&n1));
    assert_string_not_equal(addr(&b), addr(&n2));
    assert_string_not_equal(addr(&b), first);
    r = tu_call(loop, g, "threads_a.lua", "poke");
    assert_true(r.ok);
    assert_string_equal(r.value, "refused 3");
    gen_release(g);
}

struct fnlist {
    char names[4][32];
    int lines[4], n;
};

static void add_fn(void *ud, const char *name, int line)
{
    struct fnlist *l = ud;
    if (l->n < 4) {
        snprintf(l->names[l->n], sizeof l->names[0], "%s", name);
        l->lines[l->n++] = line;
    }
}

static void extra_files_load_last_and_tikd_test_is_for_tests_only(void **state)
{
    (void)state;
    char *dir = tu_tmpdir();
    char path[300];
    snprintf(path, sizeof path, "%s/x_test.lua", dir);
    const char *extra[] = {path};
    tu_write(dir, "x_test.lua", "function test_b() end\nfunction test_a() end\nfunction f() end\n");
    struct host_opts o = tu_host_opts("tests/unit/rules_host", loop);
    o.extra_files = extra;
    o.nextra = 1;
    struct gen *g;
    struct gen_report rep = {0};
    struct tikd_err e = {0};
    assert_int_equal(gen_build(&o, 1, &g, &rep, &e), 0);
    size_t n = gen_rule_count(g);
    assert_int_equal(rep.nfiles, n);
    assert_non_null(strstr(gen_rule_name(g, n - 1), "/x_test.lua"));
    struct fnlist l = {0};
    gen_rule_functions(g, n - 1, "test_", add_fn, &l);
    assert_int_equal(l.n, 2);
    int b = strcmp(l.names[0], "test_b") == 0 ? 0 : 1;
    assert_string_equal(l.names[b], "test_b");
    assert_int_equal(l.lines[b], 1);
    assert_string_equal(l.names[1 - b], "test_a");
    assert_int_equal(l.lines[1 - b], 2);
    gen_release(g);
    gen_report_free(&rep);
    /* require "tikd.test" fails outside test mode, at the require's line */
    tu_write(dir, "x_test.lua", "\nlocal T = require 'tikd.test'\n");
    assert_int_equal(gen_build(&o, 1, &g, &rep, &e), TIKD_ESCRIPT);
    assert_int_equal(rep.nerrors, 1);
    assert_non_null(
        strstr(rep.errors[0], "x_test.lua:2: tikd.test is only available in `tikd rules test`"));
    gen_report_free(&rep);
    o.test = true;
    assert_int_equal(gen_build(&o, 1, &g, &rep, &e), 0);
    gen_release(g);
    gen_report_free(&rep);
    tu_rmrf(dir);
    free(dir);
}

int main(void)
{
    tlog_setup(TLOG_ERROR, TLOG_LOGFMT, 2);
    loop = ev_loop_new(EVFLAG_AUTO);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(ten_thousand_sleepers_in_deadline_order),
        cmocka_unit_test(released_generation_finishes_its_calls),
        cmocka_unit_test(errors_after_waking_and_cancel),
        cmocka_unit_test(load_errors_are_reported_per_file),
        cmocka_unit_test(extra_files_load_last_and_tikd_test_is_for_tests_only),
        cmocka_unit_test(threads_are_reused_within_their_file),
    };
    int rc = cmocka_run_group_tests_name("host", tests, NULL, NULL);
    ev_loop_destroy(loop);
    return rc;
}
