/* test_sandbox.c - hostile rule code. Each escape attempt in
 * rules_sandbox/escape.lua must fail with a clear error, and after each one
 * the engine must still run the next rule call; rule files must not see or
 * change each other. */
#include "testutil.h"

static struct ev_loop *loop;
static struct gen *g;

static int setup(void **state)
{
    (void)state;
    tlog_setup(TLOG_ERROR, TLOG_LOGFMT, 2);
    loop = ev_loop_new(EVFLAG_AUTO);
    struct host_opts o = tu_host_opts("tests/unit/rules_sandbox", loop);
    struct gen_report rep = {0};
    struct tikd_err e = {0};
    int rc = gen_build(&o, 1, &g, &rep, &e);
    for (size_t i = 0; i < rep.nerrors; i++)
        fprintf(stderr, "%s\n", rep.errors[i]);
    gen_report_free(&rep);
    return rc;
}

static int teardown(void **state)
{
    (void)state;
    assert_int_equal(gen_live_calls(g), 0);
    gen_release(g);
    ev_loop_destroy(loop);
    return 0;
}

/* `want` may list alternatives separated by '|'. */
static void expect_fail(const char *fn, const char *want)
{
    struct tu_result r = tu_call(loop, g, "escape.lua", fn);
    if (r.ok)
        fail_msg("%s: escaped (returned %s)", fn, r.value);
    char alts[256];
    snprintf(alts, sizeof alts, "%s", want);
    int found = 0;
    for (char *save, *a = strtok_r(alts, "|", &save); a; a = strtok_r(NULL, "|", &save))
        found |= strstr(r.error, a) != NULL;
    if (!found)
        fail_msg("%s: error '%s' does not say '%s'", fn, r.error, want);
    if (!strstr(r.error, "escape.lua"))
        fail_msg("%s: error '%s' does not name the rule file", fn, r.error);
    struct tu_result next = tu_call(loop, g, "escape.lua", "alive");
    if (!next.ok || strcmp(next.value, "alive") != 0)
        fail_msg("after %s the engine did not run the next call: %s", fn, next.error);
}

static void escapes_fail(void **state)
{
    (void)state;
    static const struct {
        const char *fn, *want;
    } cases[] = {
        {"use_io", "global 'io'"},
        {"use_os_execute", "field 'execute'"},
        {"use_os_exit", "field 'exit'"},
        {"use_os_remove", "field 'remove'"},
        {"use_os_getenv", "field 'getenv'"},
        {"use_debug", "global 'debug'"},
        {"use_dofile", "global 'dofile'"},
        {"use_loadfile", "global 'loadfile'"},
        {"use_package", "global 'package'"},
        {"use_string_dump", "field 'dump'"},
        {"use_method_dump", "field 'dump'"},
        {"load_bytecode", "only text chunks"},
        {"load_bytecode_default_mode", "attempt to load a binary chunk"},
        {"require_io", "module 'io' not found"},
        {"require_path", "invalid module name"},
        {"require_c_module", "module 'lfs' not found"},
        {"gc_stop", "only \"count\" is allowed"},
        {"string_metatable", "attempt to index a boolean value"},
        {"string_write", "read-only library table 'string'"},
        {"string_rawset", "table expected, got"},
        {"string_view_metatable", "attempt to index a boolean value"},
        {"pairs_leak", "read-only library table 'string'"},
        {"gc_metamethod", "__gc metamethods are not allowed"},
        {"infinite_loop", "instruction budget exceeded"},
        {"swallow_budget", "instruction budget exceeded"},
        {"loop_in_coroutine", "instruction budget exceeded"},
        {"loop_in_load", "instruction budget exceeded"},
        {"loop_in_tostring", "instruction budget exceeded"},
        {"memory_bomb", "memory budget exceeded"},
        {"string_bomb", "memory budget exceeded|string too large|instruction budget exceeded"},
        {"concat_bomb", "budget exceeded"},
        {"deep_recursion", "stack overflow|memory budget exceeded"},
        {"pathological_pattern", "pattern too complex"},
        {"bare_yield", "yielded to tikd without waiting"},
        {"sleep_in_sort", "tikd.sleep cannot wait here"},
        {"sleep_in_wrap", "rule call's own coroutine"},
        {"other_rules_globals", "other_secret is not visible"},
        {"hostile_close", "boom"},
        /* issue 12 */
        {"xpcall_handler_loops", "instruction budget exceeded"},
        {"xpcall_handler_loops_in_sort", "instruction budget exceeded"},
        {"close_after_budget", "instruction budget exceeded"},
        {"close_after_budget_in_sort", "instruction budget exceeded"},
        {"close_after_budget_in_wrap", "instruction budget exceeded"},
        {"close_after_budget_coroutine_close", "instruction budget exceeded"},
        {"call_chain_after_setmetatable", "attempt to call a table value"},
        {"call_not_a_function", "__call must be a function"},
        {"many_patterns", "pattern too complex: more than 1000000 matching steps in one call"},
        {"insert_front", "instruction budget exceeded"},
        {"remove_front", "instruction budget exceeded"},
        {"unpack_big", "instruction budget exceeded"},
        {"hostile_len_insert", "instruction budget exceeded"},
        {"sort_hostile_len", "__len metamethod cannot be sorted"},
        {"json_blowup", "instruction budget exceeded|memory budget exceeded"},
        {"json_deep", "nested more than 128 deep"},
        {"c_stack_overflow", "stack overflow"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        expect_fail(cases[i].fn, cases[i].want);
    assert_true(sizeof cases / sizeof cases[0] >= 20);
}

/* Finalizers added to a metatable after setmetatable never run. */
static void late_finalizer_is_ignored(void **state)
{
    (void)state;
    struct tu_result r = tu_call(loop, g, "escape.lua", "gc_added_later");
    assert_true(r.ok);
    assert_string_equal(r.value, "no finalizer");
}

static int count(const char *hay, const char *needle)
{
    int n = 0;
    for (const char *p = hay; (p = strstr(p, needle)); p += strlen(needle))
        n++;
    return n;
}

/* print and tikd.log: 200 lines a call, the rest counted in one line; long
 * values cut. */
static void output_is_capped(void **state)
{
    (void)state;
    struct tu_logcap cap;
    tlog_setup(TLOG_INFO, TLOG_LOGFMT, 2);
    tu_logcap_start(&cap);
    struct tu_result r = tu_call(loop, g, "escape.lua", "print_flood");
    if (!r.ok)
        fail_msg("print_flood: %s", r.error);
    assert_non_null(cap.buf);
    assert_int_equal(count(cap.buf, "event=rule.print "), 200);
    assert_int_equal(count(cap.buf, "event=rule.output_suppressed"), 1);
    assert_non_null(strstr(cap.buf, "lines=9800"));
    tu_logcap_stop(&cap);

    tu_logcap_start(&cap);
    r = tu_call(loop, g, "escape.lua", "log_flood");
    if (!r.ok)
        fail_msg("log_flood: %s", r.error);
    /* the rule file's minute allows 1200 lines: 200 printed above, so this
     * call gets its own 200, each value cut */
    assert_non_null(cap.buf);
    assert_int_equal(count(cap.buf, "event=rule.log "), 200);
    assert_true(cap.n < 200 * 2 * 2200);
    assert_non_null(strstr(cap.buf, "cut at 2048 bytes"));
    tu_logcap_stop(&cap);
    tlog_setup(TLOG_ERROR, TLOG_LOGFMT, 2);
}

static void budget_is_reported_as_such(void **state)
{
    (void)state;
    struct tu_result r = tu_call(loop, g, "escape.lua", "swallow_budget");
    assert_false(r.ok);
    assert_true(r.budget);
    r = tu_call(loop, g, "escape.lua", "use_io");
    assert_false(r.budget);
}

static void rules_are_isolated(void **state)
{
    (void)state;
    struct tu_result r = tu_call(loop, g, "other.lua", "upper_still_works");
    assert_true(r.ok);
    assert_string_equal(r.value, "OKX");
    r = tu_call(loop, g, "other.lua", "cannot_see_escape");
    assert_true(r.ok);
    assert_string_equal(r.value, "nil");
    /* a rule may wreck its own environment, nobody else's */
    r = tu_call(loop, g, "escape.lua", "set_env_metatable");
    assert_true(r.ok);
    r = tu_call(loop, g, "other.lua", "upper_still_works");
    assert_true(r.ok);
}

static void errors_name_file_and_line(void **state)
{
    (void)state;
    struct tu_result r = tu_call(loop, g, "other.lua", "runtime_error");
    assert_false(r.ok);
    assert_non_null(strstr(r.error, "rules_sandbox/other.lua:13: attempt to index a nil value"));
    r = tu_call(loop, g, "other.lua", "error_table");
    assert_false(r.ok);
    assert_non_null(strstr(r.error, "error object is a table value"));
}

static void library_works(void **state)
{
    (void)state;
    struct tu_result r = tu_call(loop, g, "other.lua", "json_roundtrip");
    assert_true(r.ok);
    assert_string_equal(r.value, "{\"a\":[1,2,3]}");
    r = tu_call(loop, g, "other.lua", "pcall_with_sleep");
    if (!r.ok)
        fail_msg("%s", r.error);
    assert_string_equal(r.value, "inside pcall");
    r = tu_call(loop, g, "other.lua", "json_cases");
    if (!r.ok)
        fail_msg("%s", r.error);
    r = tu_call(loop, g, "other.lua", "utf16");
    assert_string_equal(r.value, "4");
    assert_int_equal(
        gen_call(g, tu_rule(g, "other.lua"), "no_such_function", NULL, NULL, NULL, NULL),
        TIKD_ENOTFOUND);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(escapes_fail),       cmocka_unit_test(budget_is_reported_as_such),
        cmocka_unit_test(rules_are_isolated), cmocka_unit_test(errors_name_file_and_line),
        cmocka_unit_test(library_works),      cmocka_unit_test(late_finalizer_is_ignored),
        cmocka_unit_test(output_is_capped),
    };
    return cmocka_run_group_tests_name("sandbox", tests, setup, teardown);
}
