/* test_creators.c - the creator_info answers the pipeline keeps for five
 * minutes (core/tiktok): each account's own, fresh ones only, forgotten on
 * TikTok's word, and stale ones dropped as the table grows (at agency scale
 * it holds thousands, and a lookup must not walk them). */
#include "testutil.h"

#include "../../core/tiktok.h"

#include <stdio.h>
#include <string.h>

static struct tt_creator answer(int i)
{
    struct tt_creator c = {.max_duration = i};
    snprintf(c.username, sizeof c.username, "user%d", i);
    snprintf(c.options, sizeof c.options, "SELF_ONLY");
    return c;
}

static void each_account_has_its_own_fresh_answer(void **state)
{
    (void)state;
    struct tt_creators *cs = tt_creators_new();
    assert_non_null(cs);
    assert_null(tt_creators_get(cs, "nobody", 100));
    char name[32];
    for (int i = 0; i < 10000; i++) {
        snprintf(name, sizeof name, "client%06d", i);
        struct tt_creator c = answer(i);
        assert_int_equal(tt_creators_put(cs, name, &c, 100 + i * 0.01), 0);
    }
    for (int i = 0; i < 10000; i++) {
        snprintf(name, sizeof name, "client%06d", i);
        const struct tt_creator *c = tt_creators_get(cs, name, 200);
        assert_non_null(c);
        assert_int_equal(c->max_duration, i);
    }
    /* a newer answer replaces the account's */
    struct tt_creator c = answer(-1);
    assert_int_equal(tt_creators_put(cs, "client000007", &c, 250), 0);
    assert_int_equal(tt_creators_get(cs, "client000007", 251)->max_duration, -1);
    /* five minutes after it, an answer is not fresh */
    assert_null(tt_creators_get(cs, "client000008", 100 + 0.08 + TT_CREATOR_INFO_TTL));
    assert_non_null(tt_creators_get(cs, "client000009", 100 + 0.08 + TT_CREATOR_INFO_TTL));
    tt_creators_forget(cs, "client000009");
    assert_null(tt_creators_get(cs, "client000009", 201));
    tt_creators_forget(cs, "nobody"); /* nothing to forget: nothing happens */
    c = answer(9);
    assert_int_equal(tt_creators_put(cs, "client000009", &c, 202), 0);
    assert_int_equal(tt_creators_get(cs, "client000009", 203)->max_duration, 9);
    tt_creators_free(cs);
}

static void stale_answers_leave_as_new_ones_come(void **state)
{
    (void)state;
    struct tt_creators *cs = tt_creators_new();
    char name[32];
    /* a day of accounts, a few at a time: the fresh ones are always there */
    for (int i = 0; i < 50000; i++) {
        snprintf(name, sizeof name, "acct%d", i);
        struct tt_creator c = answer(i);
        double now = i * 2.0; /* 150 answers within any five minutes */
        assert_int_equal(tt_creators_put(cs, name, &c, now), 0);
        snprintf(name, sizeof name, "acct%d", i - 100);
        if (i >= 100)
            assert_int_equal(tt_creators_get(cs, name, now)->max_duration, i - 100);
        snprintf(name, sizeof name, "acct%d", i - 200);
        if (i >= 200)
            assert_null(tt_creators_get(cs, name, now));
    }
    tt_creators_free(cs);
    tt_creators_free(NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(each_account_has_its_own_fresh_answer),
        cmocka_unit_test(stale_answers_leave_as_new_ones_come),
    };
    return cmocka_run_group_tests_name("creators", tests, NULL, NULL);
}
