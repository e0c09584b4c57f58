/* test_policy.c - the error table: each kind of outcome maps to the one
 * action the spec calls for, log_id is kept, unknown codes are reported as
 * unknown, backoff stays within its bounds and never before a floor, and
 * the document policy read is handed on for the answer's decoder. */
#include "testutil.h"

#include <curl/curl.h>

#include "../../core/policy.h"

static struct pol_outcome classify(int cc, long status, const char *body, double ra)
{
    struct pol_outcome o;
    policy_classify(cc, NULL, status, body, body ? strlen(body) : 0, ra, true, &o, NULL);
    return o;
}

static void envelope_codes(void **state)
{
    (void)state;
    struct pol_outcome o = classify(
        0, 200, "{\"data\":{},\"error\":{\"code\":\"ok\",\"message\":\"\",\"log_id\":\"L1\"}}", -1);
    assert_int_equal(o.action, POL_OK);
    /* creator_info reports the daily cap with HTTP 200 (spec §2.1) */
    o = classify(0, 200,
                 "{\"data\":{},\"error\":{\"code\":\"spam_risk_too_many_posts\",\"message\":\"m\","
                 "\"log_id\":\"L2\"}}",
                 -1);
    assert_int_equal(o.action, POL_DEFER);
    assert_true(o.retry_after >= 24 * 3600);
    assert_string_equal(o.log_id, "L2");
    o = classify(0, 401, "{\"error\":{\"code\":\"access_token_invalid\",\"log_id\":\"L3\"}}", -1);
    assert_int_equal(o.action, POL_REAUTH);
    o = classify(0, 400,
                 "{\"error\":{\"code\":\"invalid_params\",\"message\":\"The chunk size "
                 "is invalid\",\"log_id\":\"L4\"}}",
                 -1);
    assert_int_equal(o.action, POL_FAIL);
    assert_non_null(strstr(o.message, "The chunk size is invalid"));
    o = classify(0, 400, "{\"error\":{\"code\":\"invalid_param\"}}", -1); /* the docs' spelling */
    assert_int_equal(o.action, POL_FAIL);
    assert_false(o.unknown);
    o = classify(0, 403, "{\"error\":{\"code\":\"url_ownership_unverified\"}}", -1);
    assert_int_equal(o.action, POL_FAIL);
    assert_non_null(strstr(o.message, "URL properties"));
    o = classify(0, 429, "{\"error\":{\"code\":\"rate_limit_exceeded\"}}", 7);
    assert_int_equal(o.action, POL_DEFER);
    assert_true(o.retry_after == 7);
    o = classify(0, 500, "{\"error\":{\"code\":\"internal_error\"}}", -1);
    assert_int_equal(o.action, POL_RETRY);
    o = classify(
        0, 403, "{\"error\":{\"code\":\"brand_new_code\",\"message\":\"x\",\"logid\":\"L5\"}}", -1);
    assert_int_equal(o.action, POL_FAIL);
    assert_true(o.unknown);
    assert_string_equal(o.code, "brand_new_code");
    assert_string_equal(o.log_id, "L5"); /* the field as the docs' tables spell it */
}

static void oauth_codes(void **state)
{
    (void)state;
    /* a flat OAuth error, even with HTTP 200 (spec §1.10) */
    struct pol_outcome o = classify(
        0, 200, "{\"error\":\"invalid_grant\",\"error_description\":\"d\",\"log_id\":\"L6\"}", -1);
    assert_int_equal(o.action, POL_REAUTH);
    assert_string_equal(o.log_id, "L6");
    o = classify(0, 400, "{\"error\":\"invalid_client\"}", -1);
    assert_int_equal(o.action, POL_FAIL);
    o = classify(0, 503, "{\"error\":\"temporarily_unavailable\"}", -1);
    assert_int_equal(o.action, POL_RETRY);
    o = classify(0, 200, "{\"access_token\":\"x\",\"expires_in\":86400}", -1);
    assert_int_equal(o.action, POL_OK);
}

/* Every body shape the spec and TikTok's pages show keeps its code, message
 * and log_id; an unknown shape is unknown, never ok (issue 13, item 20). */
static void other_body_shapes(void **state)
{
    (void)state;
    /* a bare OAuth-style body carrying an API code, with a 401 */
    struct pol_outcome o = classify(0, 401,
                                    "{\"error\":\"access_token_invalid\",\"error_description\":"
                                    "\"The access token is invalid.\",\"log_id\":\"L9\"}",
                                    -1);
    assert_int_equal(o.action, POL_REAUTH);
    assert_string_equal(o.code, "access_token_invalid");
    assert_string_equal(o.log_id, "L9");
    assert_non_null(strstr(o.message, "The access token is invalid."));
    assert_false(o.unknown);
    /* the same with "message" instead of error_description */
    o = classify(0, 429, "{\"error\":\"rate_limit_exceeded\",\"message\":\"slow down\"}", 3);
    assert_int_equal(o.action, POL_DEFER);
    assert_non_null(strstr(o.message, "slow down"));
    /* a numeric code, even on HTTP 200 and even 0, is never success */
    o = classify(
        0, 200, "{\"data\":{},\"error\":{\"code\":10001,\"message\":\"x\",\"log_id\":\"L1\"}}", -1);
    assert_int_not_equal(o.action, POL_OK);
    assert_string_equal(o.code, "code_10001");
    assert_true(o.unknown);
    assert_string_equal(o.log_id, "L1");
    o = classify(0, 200, "{\"error\":{\"code\":0}}", -1);
    assert_int_not_equal(o.action, POL_OK);
    /* an error object without a code, or an error of another type */
    o = classify(0, 200, "{\"data\":{\"publish_id\":\"p\"},\"error\":{\"message\":\"\"}}", -1);
    assert_int_not_equal(o.action, POL_OK);
    assert_true(o.unknown);
    o = classify(0, 200, "{\"error\":[1]}", -1);
    assert_int_not_equal(o.action, POL_OK);
    o = classify(0, 200, "{\"error\":{\"code\":true}}", -1);
    assert_int_not_equal(o.action, POL_OK);
    /* the log_id beside the error object */
    o = classify(0, 400, "{\"error\":{\"code\":\"invalid_params\"},\"log_id\":\"L7\"}", -1);
    assert_string_equal(o.log_id, "L7");
    /* the normal success shapes stay ok */
    o = classify(0, 200, "{\"data\":{},\"error\":{\"code\":\"ok\",\"message\":\"\"}}", -1);
    assert_int_equal(o.action, POL_OK);
    o = classify(0, 200, "{\"access_token\":\"x\",\"expires_in\":86400,\"error\":null}", -1);
    assert_int_equal(o.action, POL_OK);
}

static void statuses_and_transport(void **state)
{
    (void)state;
    struct pol_outcome o = classify(0, 503, "<html>bad gateway</html>", -1);
    assert_int_equal(o.action, POL_RETRY);
    o = classify(0, 429, NULL, -1);
    assert_int_equal(o.action, POL_DEFER);
    assert_true(o.retry_after == 60); /* no header: the end of the minute window */
    o = classify(0, 200, "{\"data\":{\"publish_id\":", -1);
    assert_int_equal(o.action, POL_RETRY);
    assert_string_equal(o.code, "malformed_json");
    o = classify(CURLE_OPERATION_TIMEDOUT, 0, NULL, -1);
    assert_int_equal(o.action, POL_RETRY);
    o = classify(CURLE_PEER_FAILED_VERIFICATION, 0, NULL, -1);
    assert_int_equal(o.action, POL_FAIL);
    assert_non_null(strstr(o.message, "http.ca_file"));
    o = classify(CURLE_COULDNT_CONNECT, 0, NULL, -1);
    assert_int_equal(o.action, POL_RETRY);
    /* not TikTok: the body does not matter */
    policy_classify(0, NULL, 200, "not json", 8, -1, false, &o, NULL);
    assert_int_equal(o.action, POL_OK);
}

/* What may have been acted on decides both whether a pull is sent again and
 * whether an init counts against the caps. */
static void what_may_have_been_acted_on(void **state)
{
    (void)state;
    static const struct {
        int cc;
        long status;
        const char *body;
        bool acted;
    } cases[] = {
        {0, 200, "{\"data\":{\"publish_id\":\"p\"},\"error\":{\"code\":\"ok\"}}", true},
        {0, 502, "", true},                        /* a 5xx may come after the work */
        {0, 200, "{\"data\":", true},              /* garbled */
        {CURLE_OPERATION_TIMEDOUT, 0, NULL, true}, /* no answer */
        {CURLE_RECV_ERROR, 0, NULL, true},
        {0, 429, "{\"error\":{\"code\":\"rate_limit_exceeded\"}}", false},
        {0, 403, "{\"error\":{\"code\":\"spam_risk_too_many_posts\"}}", false},
        {0, 200, "{\"error\":{\"code\":\"spam_risk_too_many_posts\"}}", false},
        {CURLE_COULDNT_CONNECT, 0, NULL, false},
        {CURLE_COULDNT_RESOLVE_HOST, 0, NULL, false},
        {CURLE_COULDNT_RESOLVE_PROXY, 0, NULL, false},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct pol_outcome o = classify(cases[i].cc, cases[i].status, cases[i].body, -1);
        if (policy_may_have_acted(cases[i].status, &o) != cases[i].acted)
            fail_msg("case %zu (%s): acted should be %d", i, o.code, cases[i].acted);
    }
    /* a request whose token could not be renewed never left */
    struct pol_outcome o = {.action = POL_REAUTH, .code = "access_token_invalid"};
    assert_false(policy_may_have_acted(0, &o));
}

/* The answer's decoder reads the document policy read: one parse an answer.
 * Only a TikTok answer's JSON object is handed on. */
static void the_document_read_is_handed_on(void **state)
{
    (void)state;
    struct pol_outcome o;
    json_t *doc = (json_t *)&o; /* overwritten every time */
    const char *ok = "{\"data\":{\"publish_id\":\"p1\"},\"error\":{\"code\":\"ok\"}}";
    policy_classify(0, NULL, 200, ok, strlen(ok), -1, true, &o, &doc);
    assert_int_equal(o.action, POL_OK);
    assert_non_null(doc);
    assert_string_equal(
        json_string_value(json_object_get(json_object_get(doc, "data"), "publish_id")), "p1");
    json_decref(doc);
    const char *refused = "{\"error\":{\"code\":\"spam_risk_too_many_posts\"}}";
    policy_classify(0, NULL, 403, refused, strlen(refused), -1, true, &o, &doc);
    assert_int_equal(o.action, POL_DEFER);
    assert_non_null(doc); /* a refusal's body too: its log_id, its message */
    json_decref(doc);
    static const char *none[] = {"{\"data\":", "[1,2]", "\"text\"", ""};
    for (size_t i = 0; i < sizeof none / sizeof none[0]; i++) {
        doc = (json_t *)&o;
        policy_classify(0, NULL, 200, none[i], strlen(none[i]), -1, true, &o, &doc);
        assert_null(doc);
    }
    doc = (json_t *)&o; /* not TikTok: not read */
    policy_classify(0, NULL, 200, ok, strlen(ok), -1, false, &o, &doc);
    assert_null(doc);
    doc = (json_t *)&o; /* no answer */
    policy_classify(CURLE_OPERATION_TIMEDOUT, NULL, 0, NULL, 0, -1, true, &o, &doc);
    assert_null(doc);
}

static void backoff_bounds(void **state)
{
    (void)state;
    for (int a = 1; a <= 10; a++) {
        double ceiling = 0.5 * (1 << (a - 1));
        if (ceiling > 30)
            ceiling = 30;
        assert_true(policy_backoff(a, 0.5, 30, 0, 0.0) == 0);
        assert_true(policy_backoff(a, 0.5, 30, 0, 0.999999) <= ceiling);
        assert_true(policy_backoff(a, 0.5, 30, 0, 0.999999) > ceiling * 0.99);
        assert_true(policy_backoff(a, 0.5, 30, 12, 0.1) >= 12); /* Retry-After floor */
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(envelope_codes),
        cmocka_unit_test(oauth_codes),
        cmocka_unit_test(other_body_shapes),
        cmocka_unit_test(statuses_and_transport),
        cmocka_unit_test(backoff_bounds),
        cmocka_unit_test(what_may_have_been_acted_on),
        cmocka_unit_test(the_document_read_is_handed_on),
    };
    return cmocka_run_group_tests_name("policy", tests, NULL, NULL);
}
