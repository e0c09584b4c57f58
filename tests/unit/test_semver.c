/* test_semver.c - versions and ranges of shared rule libraries: caret,
 * tilde, comparators and partial versions as npm reads them, prereleases
 * only where a range names one, and malformed ranges refused. */
#include "testutil.h"

#include "../../core/semver.h"

static bool sat(const char *v, const char *range)
{
    struct semver s;
    assert_true(semver_parse(v, &s));
    return semver_satisfies(&s, range);
}

static void ranges_match_as_npm_reads_them(void **state)
{
    (void)state;
    assert_true(sat("1.2.0", "^1.2"));
    assert_true(sat("1.9.3", "^1.2"));
    assert_false(sat("2.0.0", "^1.2"));
    assert_false(sat("1.1.9", "^1.2"));
    assert_true(sat("0.3.9", "^0.3"));
    assert_false(sat("0.4.0", "^0.3"));
    assert_false(sat("0.0.4", "^0.0.3"));
    assert_true(sat("1.2.9", "~1.2"));
    assert_false(sat("1.3.0", "~1.2"));
    assert_true(sat("1.2.3", "1.2.3"));
    assert_false(sat("1.2.4", "1.2.3"));
    assert_true(sat("1.2.4", "1.2"));
    assert_true(sat("1.5.0", ">=1.0 <2"));
    assert_false(sat("2.0.0", ">=1.0 <2"));
    assert_true(sat("7.0.0", "*"));
}

static void prereleases_only_where_named(void **state)
{
    (void)state;
    assert_false(sat("2.0.0-beta", "^1.2"));
    assert_false(sat("2.0.0-beta", "*"));
    assert_true(sat("1.2.3-rc.1", "^1.2.3-rc.0"));
    struct semver a, b;
    assert_true(semver_parse("1.0.0-alpha", &a) && semver_parse("1.0.0-alpha.1", &b));
    assert_int_equal(semver_cmp(&a, &b), -1);
    assert_true(semver_parse("1.0.0-beta.11", &a) && semver_parse("1.0.0-beta.2", &b));
    assert_int_equal(semver_cmp(&a, &b), 1);
    assert_true(semver_parse("1.0.0", &a) && semver_parse("1.0.0-rc.9", &b));
    assert_int_equal(semver_cmp(&a, &b), 1);
}

static void malformed_is_refused(void **state)
{
    (void)state;
    const char *bad[] = {"", "^", "1.2.3.4", "abc", "^1.x", ">>1", "01.2", "1.2.3+build"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        assert_non_null(semver_range_problem(bad[i]));
    struct semver v;
    assert_false(semver_parse("1.2", &v));
    assert_false(semver_parse("1.2.3+meta", &v));
    assert_false(semver_parse("v1.2.3", &v));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(ranges_match_as_npm_reads_them),
        cmocka_unit_test(prereleases_only_where_named),
        cmocka_unit_test(malformed_is_refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
