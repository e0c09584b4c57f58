/* test_metrics.c - the metrics registry and its Prometheus text: every
 * family has HELP and TYPE, label values are escaped, histogram buckets are
 * cumulative with +Inf equal to the count, unknown families show nothing,
 * gauges from the scrape come out under their family. */
#include "testutil.h"

#include "../../core/metrics.h"

static void gauges(struct metrics_out *out, void *ud)
{
    (void)ud;
    metrics_gauge(out, "tikd_jobs", "state=\"scheduled\"", 3);
    metrics_gauge(out, "tikd_no_such_family", NULL, 1);
    metrics_gauge(out, "tikd_rules_generation", NULL, 7);
}

static void renders_prometheus_text(void **state)
{
    (void)state;
    metrics_reset();
    char lb[128];
    metrics_inc("tikd_http_requests_total",
                metrics_labels(lb, sizeof lb, "target", "video_init", "outcome", "ok", NULL), 1);
    metrics_inc("tikd_http_requests_total",
                metrics_labels(lb, sizeof lb, "target", "video_init", "outcome", "ok", NULL), 2);
    metrics_inc("tikd_posts_total",
                metrics_labels(lb, sizeof lb, "outcome", "failed", "reason", "a\"b\\c\nd", NULL),
                1);
    assert_string_equal(lb, "outcome=\"failed\",reason=\"a\\\"b\\\\c\\nd\"");
    metrics_inc("tikd_not_declared_total", NULL, 5);
    metrics_labels(lb, sizeof lb, "target", "upload", NULL);
    metrics_observe("tikd_http_request_duration_seconds", lb, 0.003);
    metrics_observe("tikd_http_request_duration_seconds", lb, 0.3);
    metrics_observe("tikd_http_request_duration_seconds", lb, 500);
    struct metric *m = metrics_get("tikd_upload_bytes_total", NULL);
    metrics_add(m, 1e6);
    metrics_add(m, 0.5);

    char *t = metrics_render(gauges, NULL);
    assert_non_null(t);
    assert_non_null(strstr(t, "# HELP tikd_http_requests_total "));
    assert_non_null(strstr(t, "# TYPE tikd_http_requests_total counter\n"));
    assert_non_null(
        strstr(t, "\ntikd_http_requests_total{target=\"video_init\",outcome=\"ok\"} 3\n"));
    assert_non_null(
        strstr(t, "tikd_posts_total{outcome=\"failed\",reason=\"a\\\"b\\\\c\\nd\"} 1\n"));
    assert_null(strstr(t, "tikd_not_declared_total"));
    assert_null(strstr(t, "tikd_no_such_family"));
    assert_non_null(strstr(t, "# TYPE tikd_http_request_duration_seconds histogram\n"));
    assert_non_null(
        strstr(t, "tikd_http_request_duration_seconds_bucket{target=\"upload\",le=\"0.005\"} 1\n"));
    assert_non_null(
        strstr(t, "tikd_http_request_duration_seconds_bucket{target=\"upload\",le=\"0.5\"} 2\n"));
    assert_non_null(
        strstr(t, "tikd_http_request_duration_seconds_bucket{target=\"upload\",le=\"120\"} 2\n"));
    assert_non_null(
        strstr(t, "tikd_http_request_duration_seconds_bucket{target=\"upload\",le=\"+Inf\"} 3\n"));
    assert_non_null(strstr(t, "tikd_http_request_duration_seconds_count{target=\"upload\"} 3\n"));
    assert_non_null(strstr(t, "tikd_http_request_duration_seconds_sum{target=\"upload\"} 500.303"));
    assert_non_null(strstr(t, "\ntikd_upload_bytes_total 1000000.5\n"));
    assert_non_null(strstr(t, "# TYPE tikd_jobs gauge\ntikd_jobs{state=\"scheduled\"} 3\n"));
    assert_non_null(strstr(t, "\ntikd_rules_generation 7\n"));
    /* every sample line is NAME[{...}] VALUE, every family announced before its samples */
    char seen[64][80];
    int nseen = 0;
    for (char *save, *line = strtok_r(t, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        if (strncmp(line, "# TYPE ", 7) == 0) {
            sscanf(line + 7, "%79s", seen[nseen++]);
            continue;
        }
        if (line[0] == '#')
            continue;
        char name[128];
        assert_int_equal(sscanf(line, "%127[a-zA-Z0-9_:]", name), 1);
        bool known = false;
        for (int i = 0; i < nseen; i++)
            known |= strncmp(name, seen[i], strlen(seen[i])) == 0;
        assert_true(known);
        assert_non_null(strrchr(line, ' '));
    }
    free(t);
    metrics_reset();
    t = metrics_render(NULL, NULL);
    assert_non_null(
        strstr(t, "tikd_http_requests_total{target=\"video_init\",outcome=\"ok\"} 0\n"));
    free(t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {cmocka_unit_test(renders_prometheus_text)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
