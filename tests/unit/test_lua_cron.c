/* test_lua_cron.c - tikd.cron, core/cron's Lua face, in a real generation:
 * parse errors surface with core's message and the caller's file:line,
 * schedules fire across a spring-forward night in New York as core/cron.h
 * says (02:30 that does not exist fires at 03:30 EDT), localtime and time
 * round-trip and agree with os.date, and unknown zones raise (or, for
 * zone_ok, answer false with the reason). */
#include "testutil.h"

#define RULES "tests/unit/rules_cron"

static struct ev_loop *loop;
static struct gen *g;

static int setup(void **state)
{
    (void)state;
    tlog_setup(TLOG_ERROR, TLOG_LOGFMT, 2);
    loop = ev_loop_new(EVFLAG_AUTO);
    struct host_opts o = tu_host_opts(RULES, loop);
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
    gen_release(g);
    ev_loop_destroy(loop);
    return 0;
}

static int push_str(lua_State *L, void *ud)
{
    lua_pushstring(L, ud);
    return 1;
}

static struct tu_result eval(const char *code)
{
    struct tu_result r = {0};
    assert_int_equal(
        gen_call(g, tu_rule(g, "cron.lua"), "eval", push_str, (void *)code, tu_done, &r), 0);
    while (!r.done)
        ev_run(loop, EVRUN_ONCE);
    return r;
}

static void want(const char *fn, const char *value)
{
    struct tu_result r = tu_call(loop, g, "cron.lua", fn);
    if (!r.ok)
        fail_msg("%s: %s", fn, r.error);
    if (strcmp(r.value, value) != 0)
        fail_msg("%s: got '%s', want '%s'", fn, r.value, value);
}

static void want_eval(const char *code, const char *value)
{
    struct tu_result r = eval(code);
    if (!r.ok)
        fail_msg("%s: %s", code, r.error);
    if (strcmp(r.value, value) != 0)
        fail_msg("%s: got '%s', want '%s'", code, r.value, value);
}

static void want_error(const char *code, const char *msg)
{
    struct tu_result r = eval(code);
    if (r.ok)
        fail_msg("%s: succeeded (returned %s)", code, r.value);
    if (!strstr(r.error, msg))
        fail_msg("%s: error '%s' does not say '%s'", code, r.error, msg);
}

static void parse_errors_and_tostring(void **state)
{
    (void)state;
    want_error("tikd.cron.parse('61 * * * *')",
               "(load):1: cron: minute field: 61 is out of range 0-59");
    want_error("tikd.cron.parse('* * * *')", "cron: expected 5 fields, got 4");
    want_error("tikd.cron.parse('@reboot')", "@reboot");
    want_error("tikd.cron.parse()", "bad argument #1 to 'parse' (string expected, got no value)");
    want_eval("return select(2, pcall(tikd.cron.parse, '0 25 * * *'))",
              "cron: hour field: 25 is out of range 0-23");
    want_eval("return tostring(tikd.cron.parse('  30 2 * * *  '))", "tikd.cron(30 2 * * *)");
    want_eval("return getmetatable(tikd.cron.parse('@daily'))", "locked");
    want_error("local s = tikd.cron.parse('@daily') return s.next({}, 0)",
               "bad argument #1 to 'next' (tikd.cron expected, got table)");
}

static void fires_across_spring_forward(void **state)
{
    (void)state;
    want("spring_forward", "1772955000");
    want("utc_default", "ok");
    want_eval("return math.type(tikd.cron.parse('* * * * *'):next(0.5))", "integer");
}

static void localtime_and_time(void **state)
{
    (void)state;
    want("local_fields", "ok");
    want("round_trips", "488");
}

static void unknown_zones(void **state)
{
    (void)state;
    want_error("tikd.cron.parse('@daily'):next(0, 'Mars/Olympus_Mons')",
               "(load):1: unknown time zone 'Mars/Olympus_Mons'");
    want_error("tikd.cron.localtime(0, 'Nowhere')", "unknown time zone 'Nowhere'");
    want_error("tikd.cron.time{ year = 2026, month = 1, day = 1, tz = 'Nowhere' }",
               "unknown time zone 'Nowhere'");
    want_error("tikd.cron.localtime(0, 'Europe/Berlin\\0')", "has no NUL byte");
    want("zones", "ok");
}

static void bad_times_and_never(void **state)
{
    (void)state;
    want_error("tikd.cron.time{ year = 2026, month = 2, day = 30 }",
               "cron: no such local time 2026-02-30 00:00:00");
    want_error("tikd.cron.time{ year = 2026, day = 1 }",
               "tikd.cron.time: field 'month' is missing");
    want_error("tikd.cron.time{ year = 2026, month = 1, day = 1.5 }",
               "tikd.cron.time: field 'day' must be an integer");
    want_error("tikd.cron.time{ year = 2026, month = '1', day = 1 }",
               "tikd.cron.time: field 'month' must be an integer");
    want_error("tikd.cron.time{ year = 2026, month = 1, day = 1, tz = 5 }",
               "tikd.cron.time: field 'tz' must be a string");
    want_error("tikd.cron.time{ year = 1e12, month = 1, day = 1 }", "field 'year' is out of range");
    want_error("tikd.cron.localtime(0/0)", "cron: time");
    want_error("tikd.cron.parse('@daily'):next(1e300)", "out of range (years 1-9999)");
    want("never", "cron: '0 0 30 2 *' does not fire within 5 years after 1970-01-01T00:00:00Z");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(parse_errors_and_tostring), cmocka_unit_test(fires_across_spring_forward),
        cmocka_unit_test(localtime_and_time),        cmocka_unit_test(unknown_zones),
        cmocka_unit_test(bad_times_and_never),
    };
    return cmocka_run_group_tests_name("lua_cron", tests, setup, teardown);
}
