/* test_runlock.c - one daemon per data directory, and telling a live process
 * from a dead one under the same (reused) pid. */
#include "testutil.h"

#include "../../core/runlock.h"

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

static void one_holder_per_data_dir(void **state)
{
    (void)state;
    char *dir = tu_tmpdir();
    struct tikd_err e = {0};
    int pid = -1;
    assert_int_equal(runlock_holder(dir, &pid, &e), 0); /* no file yet: nobody */
    struct runlock a = {-1}, b = {-1};
    assert_int_equal(runlock_take(&a, dir, &e), 0);
    assert_int_equal(runlock_holder(dir, &pid, &e), 1);
    assert_int_equal(pid, (int)getpid());
    /* open-file-description locks conflict inside one process too */
    assert_int_equal(runlock_take(&b, dir, &e), TIKD_EEXIST);
    assert_non_null(strstr(e.msg, "already running"));
    runlock_release(&a);
    assert_int_equal(runlock_holder(dir, &pid, &e), 0);
    assert_int_equal(runlock_take(&b, dir, &e), 0);
    runlock_release(&b);
    tu_rmrf(dir);
    free(dir);
}

static void a_dead_process_is_known_by_pid_and_start(void **state)
{
    (void)state;
    struct proc_id me = proc_self();
    assert_int_equal(me.pid, (int)getpid());
    assert_true(me.start > 0);
    assert_true(proc_alive(me));
    /* a pid reused by another process is not the process that had it */
    struct proc_id other = {me.pid, me.start + 1};
    assert_false(proc_alive(other));
    /* a child that ended and was reaped is gone */
    pid_t child = fork();
    if (child == 0)
        _exit(0);
    assert_true(child > 0);
    struct proc_id c = {(int)child, 0};
    int st;
    assert_int_equal(waitpid(child, &st, 0), child);
    assert_false(proc_alive(c));
    /* what cannot be told counts as alive: never take a live one's work */
    assert_true(proc_alive((struct proc_id){0, 0}));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(one_holder_per_data_dir),
        cmocka_unit_test(a_dead_process_is_known_by_pid_and_start),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
