/* test_budget.c - budgets that belong to a rule file or to the clock: a
 * rule file that keeps memory call after call is stopped at its own
 * budget (lua.rule_memory) while another file still gets its memory; a call
 * whose C work is slow per VM instruction is stopped by the wall clock
 * (lua.call_time), which the instruction count alone would not do for
 * minutes; a dropped generation gives its memory back. */
#include "testutil.h"

#define MIB (1024u * 1024u)

static struct ev_loop *loop;

static struct gen *build(struct host_opts *o)
{
    struct gen *g;
    struct gen_report rep = {0};
    struct tikd_err e = {0};
    if (gen_build(o, 1, &g, &rep, &e) != 0)
        fail_msg("%s", rep.nerrors ? rep.errors[0] : e.msg);
    gen_report_free(&rep);
    return g;
}

static int push_int(lua_State *L, void *ud)
{
    lua_pushinteger(L, *(int *)ud);
    return 1;
}

static struct tu_result call_n(struct gen *g, const char *file, const char *fn, int n)
{
    struct tu_result r = {0};
    assert_int_equal(gen_call(g, tu_rule(g, file), fn, push_int, &n, tu_done, &r), 0);
    while (!r.done)
        ev_run(loop, EVRUN_ONCE);
    return r;
}

static void a_rule_file_has_its_own_memory(void **state)
{
    (void)state;
    struct host_opts o = tu_host_opts("tests/unit/rules_budget", loop);
    o.call_memory = 8 * MIB;
    o.rule_memory = 24 * MIB;
    o.state_memory = 64 * MIB;
    struct gen *g = build(&o);
    /* 6 MiB a call, kept: the fifth call goes past 24 MiB held */
    struct tu_result r = {0};
    int calls = 0;
    for (; calls < 10; calls++) {
        r = call_n(g, "hog.lua", "grab", 6);
        if (!r.ok)
            break;
    }
    assert_false(r.ok);
    assert_true(calls >= 3);
    if (!strstr(r.error, "bytes per rule file: lua.rule_memory"))
        fail_msg("the message names another budget: %s", r.error);
    assert_true(r.budget);
    /* the other file still has its whole call budget */
    r = call_n(g, "calm.lua", "work", 6);
    if (!r.ok)
        fail_msg("calm.lua was starved: %s", r.error);
    /* and the hog gets its memory back when it lets go */
    r = call_n(g, "hog.lua", "release", 0);
    assert_true(r.ok);
    r = call_n(g, "hog.lua", "grab", 6);
    if (!r.ok)
        fail_msg("after release: %s", r.error);
    gen_release(g);
}

static void the_generation_budget_is_named(void **state)
{
    (void)state;
    struct host_opts o = tu_host_opts("tests/unit/rules_budget", loop);
    o.call_memory = 8 * MIB;
    o.rule_memory = 64 * MIB;
    o.state_memory = 20 * MIB;
    struct gen *g = build(&o);
    struct tu_result r = {0};
    for (int i = 0; i < 10 && (r = call_n(g, "hog.lua", "grab", 6)).ok; i++)
        ;
    assert_false(r.ok);
    if (!strstr(r.error, "for all rule files: lua.state_memory"))
        fail_msg("the message names another budget: %s", r.error);
    gen_release(g);
}

static void the_clock_stops_slow_c_work(void **state)
{
    (void)state;
    struct host_opts o = tu_host_opts("tests/unit/rules_budget", loop);
    o.instructions = 1000000000000LL; /* the count alone would take hours */
    o.call_memory = 32 * MIB;
    o.call_time = 0.3;
    struct gen *g = build(&o);
    struct tu_result r = call_n(g, "hog.lua", "slow_concat", 0);
    assert_false(r.ok);
    assert_true(r.budget);
    if (!strstr(r.error, "rules_budget/hog.lua:19: time budget exceeded (0.3 s per call"))
        fail_msg("%s", r.error);
    r = call_n(g, "hog.lua", "spin", 0);
    if (!strstr(r.error, "time budget exceeded"))
        fail_msg("%s", r.error);
    /* the next call has its own time */
    r = call_n(g, "calm.lua", "work", 1);
    assert_true(r.ok);
    gen_release(g);
}

static void a_dropped_generation_returns_its_memory(void **state)
{
    (void)state;
    struct host_opts o = tu_host_opts("tests/unit/rules_budget", loop);
    o.call_memory = 64 * MIB;
    struct gen *g = build(&o);
    size_t before = gen_memory(g);
    struct tu_result r = call_n(g, "hog.lua", "grab", 40);
    assert_true(r.ok);
    assert_true(gen_memory(g) >= before + 40 * MIB);
    r = call_n(g, "hog.lua", "release", 0);
    assert_true(r.ok);
    gen_release(g); /* every byte goes back to the allocator (ASan and valgrind check) */
}

int main(void)
{
    loop = ev_loop_new(EVFLAG_AUTO);
    tlog_setup(TLOG_ERROR, TLOG_LOGFMT, 2);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(a_rule_file_has_its_own_memory),
        cmocka_unit_test(the_generation_budget_is_named),
        cmocka_unit_test(the_clock_stops_slow_c_work),
        cmocka_unit_test(a_dropped_generation_returns_its_memory),
    };
    int rc = cmocka_run_group_tests_name("budget", tests, NULL, NULL);
    ev_loop_destroy(loop);
    return rc;
}
