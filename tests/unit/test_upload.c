/* test_upload.c - the chunk plan: the spec's worked examples (§2.5), and for
 * sizes across the whole range, every rule the strict fake checks at init
 * and at PUT. */
#include "testutil.h"

#include "../../core/tiktok.h"
#include "../../core/upload.h"

static void worked_examples(void **state)
{
    (void)state;
    struct chunk_plan p;
    char why[200];
    uint64_t first, len;
    /* 4,194,304 bytes: one request, bytes 0-4194303/4194304 */
    assert_int_equal(upload_plan(4194304, &p, why, sizeof why), 0);
    assert_int_equal(p.count, 1);
    assert_int_equal(p.chunk_size, 4194304);
    upload_chunk(&p, 0, &first, &len);
    assert_int_equal(first, 0);
    assert_int_equal(len, 4194304);
    /* 100,000,000 bytes must not be one 64 MB chunk (count would be 1) */
    assert_int_equal(upload_plan(100000000, &p, why, sizeof why), 0);
    assert_true(p.count >= 2);
    /* 50,000,123 bytes fit one request here (the spec's 5 x 10,000,000 plan is
     * also valid; tikd keeps files up to 64,000,000 whole) */
    assert_int_equal(upload_plan(50000123, &p, why, sizeof why), 0);
    assert_int_equal(p.count, 1);
    /* 164,000,123: 16 chunks of 10,000,000, the last takes the remainder */
    assert_int_equal(upload_plan(164000123, &p, why, sizeof why), 0);
    assert_int_equal(p.count, 16);
    upload_chunk(&p, 15, &first, &len);
    assert_int_equal(first, 150000000);
    assert_int_equal(len, 14000123);
    assert_int_equal(upload_plan(0, &p, why, sizeof why), -1);
    assert_int_equal(upload_plan(4000000001ull, &p, why, sizeof why), -1);
    assert_non_null(strstr(why, "4 GB"));
}

/* What tests/fake checks at init and PUT, for every plan. */
static void every_plan_is_valid(void **state)
{
    (void)state;
    uint64_t sizes[4000];
    int n = 0;
    for (uint64_t s = 1; s < TT_VIDEO_MAX_BYTES && n < 3000; s = s * 1.013 + 7)
        sizes[n++] = s;
    uint64_t edges[] = {5242879,  5242880,   5242881,   63999999,  64000000,      64000001,
                        67108864, 127999999, 128000000, 999999999, 3999999999ull, 4000000000ull};
    for (size_t i = 0; i < sizeof edges / sizeof edges[0]; i++)
        sizes[n++] = edges[i];
    for (int k = 0; k < n; k++) {
        struct chunk_plan p;
        char why[200];
        uint64_t s = sizes[k];
        assert_int_equal(upload_plan(s, &p, why, sizeof why), 0);
        assert_int_equal(p.count, s / p.chunk_size);
        assert_true(p.count >= 1 && p.count <= TT_CHUNKS_MAX);
        if (s < TT_CHUNK_MIN)
            assert_true(p.chunk_size == s);
        else
            assert_true(p.chunk_size >= TT_CHUNK_MIN && p.chunk_size <= TT_CHUNK_MAX);
        if (s > TT_CHUNK_MAX)
            assert_true(p.count >= 2);
        uint64_t next = 0;
        for (uint32_t i = 0; i < p.count; i++) {
            uint64_t first, len;
            upload_chunk(&p, i, &first, &len);
            assert_int_equal(first, next); /* in order, no gap, no overlap */
            if (i + 1 < p.count)
                assert_int_equal(len, p.chunk_size);
            else
                assert_true(len <= TT_LAST_CHUNK_MAX);
            next = first + len;
        }
        assert_int_equal(next, s);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(worked_examples),
        cmocka_unit_test(every_plan_is_valid),
    };
    return cmocka_run_group_tests_name("upload", tests, NULL, NULL);
}
