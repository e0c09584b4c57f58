/* test_idset.c - the pipeline's id sets: what is added is found, what is
 * deleted is gone and nothing else with it (deletion shifts runs of
 * colliding ids back), across growth, against a plain array as the oracle. */
#include "testutil.h"

#include "../../core/idset.h"

#include <stdlib.h>
#include <string.h>

static void added_ids_are_found_and_deleted_ones_gone(void **state)
{
    (void)state;
    struct idset s = {0};
    assert_false(idset_has(&s, 1));
    idset_del(&s, 1); /* on an empty set: nothing */
    for (uint64_t id = 1; id <= 1000; id++)
        assert_true(idset_add(&s, id));
    assert_true(idset_add(&s, 7)); /* twice: once */
    assert_int_equal(s.n, 1000);
    for (uint64_t id = 1; id <= 1000; id++)
        assert_true(idset_has(&s, id));
    assert_false(idset_has(&s, 1001));
    for (uint64_t id = 2; id <= 1000; id += 2)
        idset_del(&s, id);
    idset_del(&s, 5000); /* not there: nothing */
    assert_int_equal(s.n, 500);
    for (uint64_t id = 1; id <= 1000; id++)
        assert_int_equal(idset_has(&s, id), id % 2 == 1);
    idset_clear(&s);
    assert_false(idset_has(&s, 1));
    assert_true(idset_add(&s, 3));
    assert_true(idset_has(&s, 3));
    idset_free(&s);
}

/* Random adds and deletes of ids from a small range (so runs of colliding
 * slots form and are cut in the middle), checked against an array. */
static void random_adds_and_deletes_agree_with_an_array(void **state)
{
    (void)state;
    enum { RANGE = 300 };
    bool in[RANGE + 1] = {0};
    size_t n = 0;
    struct idset s = {0};
    srand(11);
    for (int round = 0; round < 200000; round++) {
        /* ids far apart in value, as job ids are not */
        uint64_t k = 1 + (uint64_t)rand() % RANGE, id = k * 0x10000001ull;
        if (rand() % 3) {
            assert_true(idset_add(&s, id));
            n += !in[k];
            in[k] = true;
        } else {
            idset_del(&s, id);
            n -= in[k];
            in[k] = false;
        }
        if (round % 97 == 0)
            for (uint64_t c = 1; c <= RANGE; c++)
                assert_int_equal(idset_has(&s, c * 0x10000001ull), in[c]);
        assert_int_equal(s.n, n);
    }
    idset_free(&s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(added_ids_are_found_and_deleted_ones_gone),
        cmocka_unit_test(random_adds_and_deletes_agree_with_an_array),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
