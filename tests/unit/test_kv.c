/* test_kv.c - tikd.kv in a real generation with a store: every value type
 * round-trips (integers exactly, floats as floats, nesting), deletes, incr
 * from nothing and in one transaction, keys by prefix and their cap, one rule
 * file never seeing another's keys, each error a user can hit, a result too
 * big for the call's memory budget, no store under `rules check`, and values
 * surviving a closed and reopened store. */
#include "testutil.h"

#include "../../core/store.h"

#define RULES "tests/unit/rules_kv"

static struct ev_loop *loop;
static char *dir;
static struct store *st;

static struct store *open_store(void)
{
    struct store *s;
    struct store_opts o = {dir, 1 << 20, 64 << 20, false};
    struct tikd_err e = {0};
    if (store_open(&s, &o, &e) != 0)
        fail_msg("store_open: %s", e.msg);
    return s;
}

static struct gen *build(struct store *s, unsigned id)
{
    struct host_opts o = tu_host_opts(RULES, loop);
    o.store = s;
    struct gen *g;
    struct gen_report rep = {0};
    struct tikd_err e = {0};
    if (gen_build(&o, id, &g, &rep, &e) != 0)
        fail_msg("%s: %s", RULES, rep.nerrors ? rep.errors[0] : e.msg);
    gen_report_free(&rep);
    return g;
}

static int setup(void **state)
{
    (void)state;
    dir = tu_tmpdir();
    st = open_store();
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    store_close(st);
    tu_rmrf(dir);
    free(dir);
    return 0;
}

static int push_str(lua_State *L, void *ud)
{
    if (!ud)
        return 0;
    lua_pushstring(L, ud);
    return 1;
}

/* fn(arg) of rule file, run to completion. */
static struct tu_result call1(struct gen *g, const char *file, const char *fn, const char *arg)
{
    struct tu_result r = {0};
    assert_int_equal(gen_call(g, tu_rule(g, file), fn, push_str, (void *)arg, tu_done, &r), 0);
    while (!r.done)
        ev_run(loop, EVRUN_ONCE);
    return r;
}

static void want_value(struct gen *g, const char *file, const char *fn, const char *arg,
                       const char *want)
{
    struct tu_result r = call1(g, file, fn, arg);
    if (!r.ok)
        fail_msg("%s %s(%s): %s", file, fn, arg ? arg : "", r.error);
    if (strcmp(r.value, want) != 0)
        fail_msg("%s %s(%s): got '%s', want '%s'", file, fn, arg ? arg : "", r.value, want);
}

/* The code's call fails with a message containing want. */
static void want_error(struct gen *g, const char *code, const char *want)
{
    struct tu_result r = call1(g, "a.lua", "eval", code);
    if (r.ok)
        fail_msg("%s: succeeded (returned %s)", code, r.value);
    if (!strstr(r.error, want))
        fail_msg("%s: error '%s' does not say '%s'", code, r.error, want);
}

struct raw {
    const char *key;
    size_t klen;
    char val[64];
};

static int raw_txn(struct store_txn *t, void *ctx)
{
    struct raw *r = ctx;
    struct store_val v;
    int rc = store_get(t, STORE_DB_KV, r->key, r->klen, &v);
    if (rc == 0)
        snprintf(r->val, sizeof r->val, "%.*s", (int)v.n, (const char *)v.p);
    return rc;
}

/* The JSON stored under rule '\0' key, read straight from LMDB. */
static const char *raw(const char *rule, const char *key)
{
    static struct raw r;
    char k[300];
    int n = snprintf(k, sizeof k, "%s%c%s", rule, 0, key);
    r.key = k;
    r.klen = (size_t)n;
    struct tikd_err e = {0};
    if (store_read(st, raw_txn, &r, &e) != 0)
        return NULL;
    return r.val;
}

static void values_round_trip(void **state)
{
    (void)state;
    struct gen *g = build(st, 1);
    want_value(g, "a.lua", "set_all", NULL, "ok");
    want_value(g, "a.lua", "check_all", NULL, "ok");
    want_value(g, "a.lua", "deep16", NULL, "bottom");
    /* stored as JSON, integers as JSON integers, floats keep their point */
    assert_string_equal(raw("rules_kv/a.lua", "big"), "9007199254740993");
    assert_string_equal(raw("rules_kv/a.lua", "min"), "-9223372036854775808");
    assert_string_equal(raw("rules_kv/a.lua", "whole_float"), "2.0");
    assert_string_equal(raw("rules_kv/a.lua", "list"), "[1,2.5,\"three\",true,false]");
    want_value(g, "a.lua", "eval", "return tostring(tikd.kv.get('big') == (1 << 53) + 1)", "true");
    want_value(g, "a.lua", "eval", "return math.type(tikd.kv.get('whole_float'))", "float");
    want_value(g, "a.lua", "eval", "return tostring(tikd.kv.get('no_such_key'))", "nil");
    gen_release(g);
}

static void delete_and_incr(void **state)
{
    (void)state;
    struct gen *g = build(st, 1);
    want_value(g, "a.lua", "deletes", NULL, "ok");
    want_value(g, "a.lua", "counts", NULL, "1,2,12,-8,-8,max");
    assert_string_equal(raw("rules_kv/a.lua", "n"), "-8");
    /* two generations (a reload with a call of the old one still going)
     * count into the same key */
    struct gen *g2 = build(st, 2);
    for (int i = 0; i < 50; i++) {
        struct tu_result r = call1(i % 2 ? g : g2, "a.lua", "eval", "return tikd.kv.incr('both')");
        if (!r.ok || atoi(r.value) != i + 1)
            fail_msg("incr %d: %s%s", i, r.value, r.error);
    }
    gen_release(g);
    want_value(g2, "a.lua", "eval", "return tikd.kv.get('both')", "50");
    gen_release(g2);
}

static void keys_by_prefix(void **state)
{
    (void)state;
    struct gen *g = build(st, 1);
    want_value(g, "a.lua", "eval",
               "for _, k in ipairs{'p:b', 'p:a', 'p:c', 'q', 'p'} do tikd.kv.set(k, 1) end "
               "return 'ok'",
               "ok");
    want_value(g, "a.lua", "list_keys", "p:", "p:a,p:b,p:c");
    want_value(g, "a.lua", "list_keys", "p", "p,p:a,p:b,p:c");
    want_value(g, "a.lua", "list_keys", "zzz", "");
    want_value(g, "a.lua", "eval", "return #tikd.kv.keys()", "5");
    gen_release(g);
}

static void one_file_never_sees_another(void **state)
{
    (void)state;
    struct gen *g = build(st, 1);
    want_value(g, "a.lua", "shared_write", NULL, "1");
    want_value(g, "b.lua", "shared_read", NULL, "shared=nil counter=1 keys=counter,only_b");
    want_value(g, "a.lua", "shared_write", NULL, "2");
    want_value(g, "a.lua", "list_keys", NULL, "counter,shared");
    want_value(g, "a.lua", "eval", "return tostring(tikd.kv.get('only_b'))", "nil");
    assert_string_equal(raw("rules_kv/a.lua", "counter"), "2");
    assert_string_equal(raw("rules_kv/b.lua", "counter"), "1");
    assert_string_equal(raw("rules_kv/a.lua", "shared"), "\"from a\"");
    assert_null(raw("rules_kv/b.lua", "shared"));
    gen_release(g);
}

static void errors_are_clear(void **state)
{
    (void)state;
    struct gen *g = build(st, 1);
    static const struct {
        const char *code, *want;
    } cases[] = {
        {"tikd.kv.set('k', print)", "tikd.kv.set: cannot store a function (only strings"},
        {"tikd.kv.set('k', { a = { b = { coroutine.create(print) } } })",
         "cannot store a thread (only strings, numbers, booleans and tables of them) (at "
         "value.a.b[1])"},
        {"tikd.kv.set('k', tikd.cron.parse('@daily'))", "cannot store a userdata"},
        {"local t = {} t.me = t tikd.kv.set('k', t)", "contains a cycle (a table inside itself)"},
        {"local t = { x = {} } t.x.up = t tikd.kv.set('k', t)", "contains a cycle"},
        {"local t = {} for _ = 1, 16 do t = { t } end tikd.kv.set('k', t)",
         "tables are nested more than 16 deep"},
        {"tikd.kv.set('k', 0/0)", "numbers must be finite"},
        {"tikd.kv.set('k', { 1, math.huge })", "numbers must be finite (not NaN or infinity) (at "
                                               "value[2])"},
        {"tikd.kv.set('k', { 1, 2, x = 3 })", "mixes array items (1..n) and string keys"},
        {"tikd.kv.set('k', { [1] = 1, [3] = 3 })", "an array has holes"},
        {"tikd.kv.set('k', { [1.5] = 1 })", "table keys must be strings, or 1..n"},
        {"tikd.kv.set('k', { [true] = 1 })", "table keys must be strings, or 1..n"},
        {"tikd.kv.set('k', { [0] = 1 })", "table keys must be strings, or 1..n"},
        {"tikd.kv.set('k', { ['a\\0b'] = 1 })", "a table key contains a NUL byte"},
        {"tikd.kv.set('k', '\\xff\\xfe')", "strings must be valid UTF-8"},
        {"tikd.kv.set('k', { ['\\xff'] = 1 })", "a table key is not valid UTF-8"},
        {"tikd.kv.set('k', ('x'):rep(65535))", "larger than 65536 bytes as JSON"},
        {"tikd.kv.set('k', { ('x'):rep(40000), ('y'):rep(40000) })", "larger than 65536 bytes"},
        {"local t = {} for i = 1, 20000 do t[i] = 1.5 end tikd.kv.set('k', t)",
         "larger than 65536 bytes"},
        {"tikd.kv.set('k')", "bad argument #2 to 'set' (value expected)"},
        {"tikd.kv.set(('k'):rep(257), 1)", "bad argument #1 to 'set' (a key of 1 to 256 bytes)"},
        {"tikd.kv.get('')", "bad argument #1 to 'get' (a key of 1 to 256 bytes)"},
        {"tikd.kv.get({})", "bad argument #1 to 'get' (string expected, got table)"},
        {"tikd.kv.keys(('k'):rep(257))", "a prefix of at most 256 bytes"},
        {"tikd.kv.set('s', 'text') tikd.kv.incr('s')",
         "tikd.kv.incr: the key holds a string, not an integer"},
        {"tikd.kv.set('f', 1.0) tikd.kv.incr('f')", "the key holds a float, not an integer"},
        {"tikd.kv.set('t', {}) tikd.kv.incr('t')", "the key holds a table, not an integer"},
        {"tikd.kv.incr('n', 0.5)", "number has no integer representation"},
        {"tikd.kv.set('m', math.maxinteger) tikd.kv.incr('m')",
         "9223372036854775807 +1 overflows a Lua integer"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        want_error(g, cases[i].code, cases[i].want);
    /* an error names the rule file and line of the call */
    struct tu_result r = tu_call(loop, g, "a.lua", "bad_set");
    assert_false(r.ok);
    assert_non_null(strstr(r.error, "rules_kv/a.lua:114: tikd.kv.set: cannot store a function"));
    /* the boundaries themselves are fine, and a failed set changed nothing */
    want_value(g, "a.lua", "eval",
               "tikd.kv.set(('k'):rep(256), ('x'):rep(65534)) "
               "return #tikd.kv.get(('k'):rep(256))",
               "65534");
    want_value(g, "a.lua", "eval", "return tikd.kv.get('s')", "text");
    want_value(g, "a.lua", "eval", "return tostring(tikd.kv.get('k'))", "nil");
    want_value(g, "a.lua", "eval", "return tikd.kv.get('m')", "9223372036854775807");
    gen_release(g);
}

static int many_txn(struct store_txn *t, void *ctx)
{
    int n = *(int *)ctx;
    for (int i = 0; i < n; i++) {
        char k[64];
        int kl = snprintf(k, sizeof k, "rules_kv/a.lua%cmany:%05d", 0, i);
        int rc = store_put(t, STORE_DB_KV, k, (size_t)kl, "1", 1);
        if (rc)
            return rc;
    }
    return 0;
}

static void keys_are_capped(void **state)
{
    (void)state;
    struct gen *g = build(st, 1);
    int n = 10000;
    struct tikd_err e = {0};
    assert_int_equal(store_write(st, many_txn, &n, &e), 0);
    want_value(g, "a.lua", "eval", "return #tikd.kv.keys('many:')", "10000");
    n = 10001;
    assert_int_equal(store_write(st, many_txn, &n, &e), 0);
    want_error(g, "return tikd.kv.keys('many:')",
               "tikd.kv.keys: more than 10000 keys match; ask for a narrower prefix");
    want_value(g, "a.lua", "eval", "return #tikd.kv.keys('many:0')", "10000");
    gen_release(g);
}

/* Building the result runs out of the call's memory budget: the call fails
 * with the budget's message and nothing C holds leaks (ASan and valgrind). */
static void out_of_budget_while_pushing(void **state)
{
    (void)state;
    struct gen *g = build(st, 1);
    int n = 5000;
    struct tikd_err e = {0};
    assert_int_equal(store_write(st, many_txn, &n, &e), 0);
    want_value(g, "a.lua", "eval",
               "local t = {} for i = 1, 10000 do t[i] = i end tikd.kv.set('big', t) "
               "return #tikd.kv.get('big')",
               "10000");
    gen_release(g);
    struct host_opts o = tu_host_opts(RULES, loop);
    o.store = st;
    o.call_memory = 128 << 10;
    struct gen_report rep = {0};
    if (gen_build(&o, 2, &g, &rep, &e) != 0)
        fail_msg("%s", rep.nerrors ? rep.errors[0] : e.msg);
    gen_report_free(&rep);
    struct tu_result r = call1(g, "a.lua", "eval", "return tikd.kv.get('big')");
    assert_false(r.ok);
    assert_true(r.budget);
    assert_non_null(strstr(r.error, "memory budget exceeded"));
    r = call1(g, "a.lua", "eval", "return tikd.kv.keys()");
    assert_false(r.ok);
    assert_true(r.budget);
    want_value(g, "a.lua", "eval", "return #tikd.kv.keys('many:000')", "100");
    gen_release(g);
}

static void no_store_when_only_checking(void **state)
{
    (void)state;
    struct gen *g = build(NULL, 1);
    static const char *calls[] = {"tikd.kv.get('k')", "tikd.kv.set('k', 1)", "tikd.kv.incr('k')",
                                  "tikd.kv.keys()"};
    for (size_t i = 0; i < 4; i++)
        want_error(g, calls[i],
                   "tikd.kv is not available here (no database: rules are only being checked)");
    gen_release(g);
}

static void values_survive_a_reopened_store(void **state)
{
    (void)state;
    struct gen *g = build(st, 1);
    want_value(g, "a.lua", "set_all", NULL, "ok");
    want_value(g, "a.lua", "eval", "return tikd.kv.incr('restarts')", "1");
    gen_release(g);
    store_close(st);
    st = open_store();
    g = build(st, 2);
    want_value(g, "a.lua", "check_all", NULL, "ok");
    want_value(g, "a.lua", "eval", "return tikd.kv.incr('restarts')", "2");
    gen_release(g);
}

int main(void)
{
    tlog_setup(TLOG_ERROR, TLOG_LOGFMT, 2);
    loop = ev_loop_new(EVFLAG_AUTO);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(values_round_trip, setup, teardown),
        cmocka_unit_test_setup_teardown(delete_and_incr, setup, teardown),
        cmocka_unit_test_setup_teardown(keys_by_prefix, setup, teardown),
        cmocka_unit_test_setup_teardown(one_file_never_sees_another, setup, teardown),
        cmocka_unit_test_setup_teardown(errors_are_clear, setup, teardown),
        cmocka_unit_test_setup_teardown(keys_are_capped, setup, teardown),
        cmocka_unit_test_setup_teardown(out_of_budget_while_pushing, setup, teardown),
        cmocka_unit_test_setup_teardown(no_store_when_only_checking, setup, teardown),
        cmocka_unit_test_setup_teardown(values_survive_a_reopened_store, setup, teardown),
    };
    int rc = cmocka_run_group_tests_name("kv", tests, NULL, NULL);
    ev_loop_destroy(loop);
    return rc;
}
