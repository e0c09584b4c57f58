/* test_slots.c - the next free slot of a schedule: cron slots in a time
 * zone, minimum spacing, blackout windows (recurring and absolute), the
 * daily maximum per local day, reproducible jitter, and a ledger that never
 * books a slot twice, also after the store is closed and opened again. */
#include "testutil.h"

#include "../../core/clock.h"
#include "../../core/slots.h"
#include "../../core/store.h"

/* 2026-12-01 00:00:00 UTC, a Tuesday */
#define DEC1 1796083200.0

static struct store *open_store(const char *dir)
{
    struct store *s;
    struct store_opts o = {dir, 1 << 20, 64 << 20, false};
    struct tikd_err e = {0};
    if (store_open(&s, &o, &e) != 0)
        fail_msg("store_open: %s", e.msg);
    return s;
}

static void sched_init(struct schedule *s, const char *tz, const char *const *crons, int n)
{
    memset(s, 0, sizeof *s);
    snprintf(s->name, sizeof s->name, "daily");
    snprintf(s->account, sizeof s->account, "acme");
    snprintf(s->tz, sizeof s->tz, "%s", tz);
    struct tikd_err e = {0};
    for (int i = 0; i < n; i++)
        assert_int_equal(cron_parse(crons[i], &s->slots[s->nslots++], &e), 0);
}

struct book {
    const struct schedule *s;
    double after, slot, due;
    uint64_t job;
    bool take;
    struct tikd_err e;
};

static int book_txn(struct store_txn *t, void *ctx)
{
    struct book *b = ctx;
    int rc = slots_next_free(t, b->s, b->after, &b->slot, &b->due, &b->e);
    if (rc == 0 && b->take)
        rc = slots_take(t, b->s, b->slot, b->job, &b->e);
    return rc;
}

/* Book the next free slot after `after`: its time (0 when none). */
static double book(struct store *st, const struct schedule *s, double after, double *due)
{
    static uint64_t job = 1;
    struct book b = {s, after, 0, 0, job++, true, {0}};
    struct tikd_err e = {0};
    if (store_write(st, book_txn, &b, &e) != 0)
        return 0;
    if (due)
        *due = b.due;
    return b.slot;
}

static void three_daily_slots_in_a_time_zone(void **state)
{
    (void)state;
    char *dir = tu_tmpdir();
    struct store *st = open_store(dir);
    /* 09:00, 13:00 and 18:30 in Berlin (UTC+1 in December) */
    static const char *const crons[] = {"0 9 * * *", "0 13 * * *", "30 18 * * *"};
    struct schedule s;
    sched_init(&s, "Europe/Berlin", crons, 3);
    double want[] = {DEC1 + 8 * 3600, DEC1 + 12 * 3600, DEC1 + 17.5 * 3600,
                     DEC1 + 86400 + 8 * 3600};
    for (int i = 0; i < 4; i++)
        assert_float_equal(book(st, &s, DEC1, NULL), want[i], 0.001);
    /* a restart books on from where the ledger is, never the same slot */
    store_close(st);
    st = open_store(dir);
    assert_float_equal(book(st, &s, DEC1, NULL), DEC1 + 86400 + 12 * 3600, 0.001);
    /* a booking days later never forgets earlier ones still to come */
    double later = book(st, &s, DEC1 + 10 * 86400, NULL);
    assert_true(later >= DEC1 + 10 * 86400);
    assert_float_equal(book(st, &s, DEC1, NULL), DEC1 + 86400 + 17.5 * 3600, 0.001);
    /* another schedule of the same account cannot take a booked slot */
    struct schedule other;
    static const char *const at13[] = {"0 13 * * *"};
    sched_init(&other, "Europe/Berlin", at13, 1);
    snprintf(other.name, sizeof other.name, "other");
    assert_float_equal(book(st, &other, DEC1, NULL), DEC1 + 2 * 86400 + 12 * 3600, 0.001);
    store_close(st);
    tu_rmrf(dir);
    free(dir);
}

static void spacing_blackouts_and_daily_max(void **state)
{
    (void)state;
    char *dir = tu_tmpdir();
    struct store *st = open_store(dir);
    static const char *const every15[] = {"*/15 * * * *"};
    struct schedule s;
    sched_init(&s, "UTC", every15, 1);
    s.spacing = 3600;                                          /* an hour between two posts */
    assert_float_equal(book(st, &s, DEC1, NULL), DEC1, 0.001); /* a slot at `after` counts */
    assert_float_equal(book(st, &s, DEC1, NULL), DEC1 + 3600, 0.001);
    assert_float_equal(book(st, &s, DEC1, NULL), DEC1 + 7200, 0.001);
    /* nights are blacked out: 22:00 for 9 hours; Christmas absolutely */
    struct schedule n;
    sched_init(&n, "UTC", every15, 1);
    snprintf(n.account, sizeof n.account, "night");
    struct tikd_err e = {0};
    n.blackout[0].recurring = true;
    assert_int_equal(cron_parse("0 22 * * *", &n.blackout[0].start, &e), 0);
    n.blackout[0].length = 9 * 3600;
    n.blackout[1].from = DEC1 + 23 * 86400; /* Dec 24 .. Dec 27 */
    n.blackout[1].to = DEC1 + 26 * 86400;
    n.nblackout = 2;
    double until;
    assert_true(slots_blacked_out(&n, DEC1 + 23 * 3600, &until));
    assert_float_equal(until, DEC1 + 86400 + 7 * 3600, 0.001);
    assert_false(slots_blacked_out(&n, DEC1 + 12 * 3600, NULL));
    assert_float_equal(book(st, &n, DEC1 + 21.9 * 3600, NULL), DEC1 + 86400 + 7 * 3600, 0.001);
    assert_float_equal(book(st, &n, DEC1 + 23 * 86400 - 60, NULL), DEC1 + 26 * 86400 + 7 * 3600,
                       0.001);
    /* at most 2 a day in the schedule's zone: the third goes to tomorrow */
    struct schedule m;
    sched_init(&m, "America/New_York", every15, 1);
    snprintf(m.account, sizeof m.account, "max");
    m.daily_max = 2;
    double t0 = DEC1 + 15 * 3600; /* 10:00 in New York */
    assert_float_equal(book(st, &m, t0, NULL), t0, 0.001);
    assert_float_equal(book(st, &m, t0, NULL), t0 + 900, 0.001);
    assert_float_equal(book(st, &m, t0, NULL), DEC1 + 86400 + 5 * 3600, 0.001); /* 00:00 NY */
    store_close(st);
    tu_rmrf(dir);
    free(dir);
}

static void jitter_is_in_the_slot_and_reproducible(void **state)
{
    (void)state;
    char *dir = tu_tmpdir();
    struct store *st = open_store(dir);
    static const char *const hourly[] = {"0 * * * *"};
    struct schedule s;
    sched_init(&s, "UTC", hourly, 1);
    s.jitter = 600;
    double due1, due2;
    struct book b = {&s, DEC1 + 1, 0, 0, 0, false, {0}};
    struct tikd_err e = {0};
    assert_int_equal(store_read(st, book_txn, &b, &e), 0);
    double slot = book(st, &s, DEC1 + 1, &due1);
    assert_float_equal(slot, b.slot, 0.001);
    assert_float_equal(due1, b.due, 1e-6); /* what a dry run shows is what is booked */
    assert_true(due1 >= slot && due1 < slot + 600);
    double slot2 = book(st, &s, DEC1 + 1, &due2);
    assert_float_equal(slot2, slot + 3600, 0.001);
    assert_true(due2 >= slot2 && due2 < slot2 + 600 && due2 - slot2 != due1 - slot);
    /* an impossible schedule says so */
    static const char *const never[] = {"0 0 30 2 *"};
    struct schedule z;
    sched_init(&z, "UTC", never, 1);
    struct book bz = {&z, DEC1, 0, 0, 0, false, {0}};
    assert_int_equal(store_read(st, book_txn, &bz, &e), TIKD_ENOTFOUND);
    assert_non_null(strstr(bz.e.msg, "no free slot"));
    store_close(st);
    tu_rmrf(dir);
    free(dir);
}

static void spring_forward_slot(void **state)
{
    (void)state;
    char *dir = tu_tmpdir();
    struct store *st = open_store(dir);
    static const char *const at0230[] = {"30 2 * * *"};
    struct schedule s;
    sched_init(&s, "America/New_York", at0230, 1);
    /* 2026-03-08: 02:30 does not exist in New York; it posts at 03:30 EDT */
    double mar8 = 1772928000.0; /* 2026-03-08 00:00 UTC */
    assert_float_equal(book(st, &s, mar8, NULL), mar8 + 7.5 * 3600, 0.001);
    store_close(st);
    tu_rmrf(dir);
    free(dir);
}

static void old_bookings_are_pruned_against_the_clock(void **state)
{
    (void)state;
    char *dir = tu_tmpdir();
    struct store *st = open_store(dir);
    static const char *const hourly[] = {"0 * * * *"};
    struct schedule s;
    sched_init(&s, "UTC", hourly, 1);
    assert_float_equal(book(st, &s, DEC1, NULL), DEC1, 0.001);
    assert_float_equal(book(st, &s, DEC1, NULL), DEC1 + 3600, 0.001);
    /* a day later both are still booked ... */
    clock_set_virtual(DEC1 + 86400);
    assert_float_equal(book(st, &s, DEC1, NULL), DEC1 + 7200, 0.001);
    /* ... three days later the next booking prunes them (two days back) */
    clock_set_virtual(DEC1 + 3 * 86400);
    assert_float_equal(book(st, &s, DEC1 + 3 * 86400, NULL), DEC1 + 3 * 86400, 0.001);
    assert_float_equal(book(st, &s, DEC1, NULL), DEC1, 0.001);
    clock_set_virtual(DEC1);
    store_close(st);
    tu_rmrf(dir);
    free(dir);
}

int main(void)
{
    /* old bookings are pruned against the clock: pin it, so the tests do
     * not depend on the day they run */
    clock_set_virtual(DEC1);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(three_daily_slots_in_a_time_zone),
        cmocka_unit_test(spacing_blackouts_and_daily_max),
        cmocka_unit_test(jitter_is_in_the_slot_and_reproducible),
        cmocka_unit_test(spring_forward_slot),
        cmocka_unit_test(old_bookings_are_pruned_against_the_clock),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
