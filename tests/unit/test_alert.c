/* test_alert.c - alerts: each kind and subject once within its quiet time,
 * others independent; failures counted in a window raise one "failures"
 * alert at the threshold; no sink: logged and counted only. */
#include "testutil.h"

#include "../../core/alert.h"

struct got {
    int n;
    char kind[32], subject[64], detail[600];
};

static void sink(void *ud, const char *kind, const char *subject, const char *detail)
{
    struct got *g = ud;
    g->n++;
    snprintf(g->kind, sizeof g->kind, "%s", kind);
    snprintf(g->subject, sizeof g->subject, "%s", subject);
    snprintf(g->detail, sizeof g->detail, "%s", detail);
}

static void quiet_and_thresholds(void **state)
{
    (void)state;
    struct got g = {0};
    alert_reset();
    alert_set_sink(sink, &g, 600, 3, 3600);
    alert_raise("daily_cap", "alice", "full until %s", "tomorrow");
    assert_int_equal(g.n, 1);
    assert_string_equal(g.detail, "full until tomorrow");
    alert_raise("daily_cap", "alice", "again");
    assert_int_equal(g.n, 1); /* quiet */
    alert_raise("daily_cap", "bob", "bob's");
    alert_raise("breaker", "alice", "another kind");
    assert_int_equal(g.n, 3);
    alert_failure("carol", "job %d", 1);
    alert_failure("carol", "job %d", 2);
    assert_int_equal(g.n, 3);
    alert_failure("carol", "job %d", 3);
    assert_int_equal(g.n, 4);
    assert_string_equal(g.kind, "failures");
    assert_string_equal(g.subject, "carol");
    assert_non_null(strstr(g.detail, "3 failures within 3600 s; the last: job 3"));
    alert_failure("carol", "job %d", 4);
    assert_int_equal(g.n, 4); /* quiet */
    /* a quiet time of 0: every one */
    alert_set_sink(sink, &g, 0, 1, 3600);
    alert_raise("reload", "gen=2", "x");
    alert_raise("reload", "gen=2", "x");
    assert_int_equal(g.n, 6);
    /* many subjects: the table keeps going (the oldest is forgotten) */
    char name[32];
    for (int i = 0; i < 1000; i++) {
        snprintf(name, sizeof name, "acct%d", i);
        alert_raise("account.reauth", name, "reconnect");
    }
    assert_int_equal(g.n, 1006);
    alert_set_sink(NULL, NULL, 600, 3, 3600);
    alert_raise("breaker", "nobody-listens", "logged only");
    assert_int_equal(g.n, 1006);
}

int main(void)
{
    tlog_setup(TLOG_ERROR, TLOG_LOGFMT, 2);
    const struct CMUnitTest tests[] = {cmocka_unit_test(quiet_and_thresholds)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
