/* test_watch.c - directory watching: create, write, rename and delete are
 * reported per path after the debounce; a subdirectory made after watch_add
 * is watched; a burst on one path is one callback; a real kernel queue
 * overflow and a full pending table become one WATCH_RESCAN; the watch
 * limit fails cleanly. Waits are on outcomes, with generous deadlines. */
#include "testutil.h"

#include <fcntl.h>
#include <sys/stat.h>

#include "../../core/clock.h"
#include "../../core/watch.h"

#define MAX_EVENTS 256

struct rec {
    char path[1024];
    enum watch_event ev;
    double at; /* clock_mono() at the callback */
};

struct seen {
    struct rec r[MAX_EVENTS];
    int n;
};

static struct ev_loop *loop;
static ev_timer tick; /* keeps EVRUN_ONCE from blocking when nothing is due */

static void on_tick(struct ev_loop *l, ev_timer *t, int revents)
{
    (void)l;
    (void)t;
    (void)revents;
}

static void record(void *ud, const char *path, enum watch_event ev)
{
    struct seen *s = ud;
    if (s->n < MAX_EVENTS) {
        snprintf(s->r[s->n].path, sizeof s->r[s->n].path, "%s", path);
        s->r[s->n].ev = ev;
        s->r[s->n].at = clock_mono();
    }
    s->n++;
}

/* Index of the first event for path at or after from, or -1. */
static int find(const struct seen *s, int from, const char *path)
{
    for (int i = from; i < s->n && i < MAX_EVENTS; i++)
        if (strcmp(s->r[i].path, path) == 0)
            return i;
    return -1;
}

/* Run the loop until path has an event (at index >= from) or 10 s pass. */
static int wait_for(struct seen *s, int from, const char *path)
{
    double end = clock_mono() + 10;
    int i;
    while ((i = find(s, from, path)) < 0 && clock_mono() < end)
        ev_run(loop, EVRUN_ONCE);
    if (i < 0)
        fail_msg("no event for %s", path);
    return i;
}

/* Run the loop for secs (to show that nothing more comes). */
static void run_for(double secs)
{
    double end = clock_mono() + secs;
    while (clock_mono() < end)
        ev_run(loop, EVRUN_ONCE);
}

static void writef(const char *path, const char *text, bool append)
{
    FILE *f = fopen(path, append ? "a" : "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

static struct watch *new_watch(struct seen *s, double debounce)
{
    struct watch *w;
    struct tikd_err e = {0};
    memset(s, 0, sizeof *s);
    if (watch_new(&w, loop, debounce, record, s, &e) != 0)
        fail_msg("watch_new: %s", e.msg);
    return w;
}

static void create_write_rename_delete(void **state)
{
    (void)state;
    char *d = tu_tmpdir();
    struct seen s;
    struct watch *w = new_watch(&s, 0.05);
    struct tikd_err e = {0};
    assert_int_equal(watch_add(w, d, false, &e), 0);
    char a[600], b[600];
    snprintf(a, sizeof a, "%s/a.txt", d);
    snprintf(b, sizeof b, "%s/b.txt", d);

    writef(a, "hello", false);
    int i = wait_for(&s, 0, a);
    assert_int_equal(s.r[i].ev, WATCH_WRITTEN);

    writef(a, " again", true);
    i = wait_for(&s, i + 1, a);
    assert_int_equal(s.r[i].ev, WATCH_WRITTEN);

    int from = s.n;
    assert_int_equal(rename(a, b), 0);
    i = wait_for(&s, from, a);
    assert_int_equal(s.r[i].ev, WATCH_REMOVED);
    i = wait_for(&s, from, b);
    assert_int_equal(s.r[i].ev, WATCH_ARRIVED);

    from = s.n;
    assert_int_equal(unlink(b), 0);
    i = wait_for(&s, from, b);
    assert_int_equal(s.r[i].ev, WATCH_REMOVED);

    /* the root itself goes: one rescan of it */
    from = s.n;
    tu_rmrf(d);
    i = wait_for(&s, from, d);
    assert_int_equal(s.r[i].ev, WATCH_RESCAN);
    watch_free(w);
    free(d);
}

static void subdirectories_made_later(void **state)
{
    (void)state;
    char *d = tu_tmpdir();
    char *flat = tu_tmpdir();
    struct seen s;
    struct watch *w = new_watch(&s, 0.05);
    struct tikd_err e = {0};
    assert_int_equal(watch_add(w, d, true, &e), 0);
    assert_int_equal(watch_add(w, flat, false, &e), 0);
    assert_int_equal(watch_dir_count(w), 2);

    char sub[600], file[700];
    snprintf(sub, sizeof sub, "%s/sub", d);
    assert_int_equal(mkdir(sub, 0700), 0);
    int i = wait_for(&s, 0, sub);
    assert_int_equal(s.r[i].ev, WATCH_ARRIVED);
    assert_int_equal(watch_dir_count(w), 3);
    snprintf(file, sizeof file, "%s/x.txt", sub);
    writef(file, "x", false);
    i = wait_for(&s, 0, file);
    assert_int_equal(s.r[i].ev, WATCH_WRITTEN);

    /* a tree made in one go, with a file written before its watch can exist */
    char deep[700], inner[800], cmd[2000];
    snprintf(deep, sizeof deep, "%s/p/q", d);
    snprintf(inner, sizeof inner, "%s/r.txt", deep);
    snprintf(cmd, sizeof cmd, "mkdir -p '%s' && echo r > '%s'", deep, inner);
    assert_int_equal(system(cmd), 0);
    wait_for(&s, 0, inner);
    assert_int_equal(watch_dir_count(w), 5);

    /* a directory renamed inside the tree is watched under its new name */
    char moved[700], mfile[800];
    snprintf(moved, sizeof moved, "%s/sub2", d);
    assert_int_equal(rename(sub, moved), 0);
    i = wait_for(&s, 0, moved);
    assert_int_equal(s.r[i].ev, WATCH_ARRIVED);
    snprintf(mfile, sizeof mfile, "%s/y.txt", moved);
    writef(mfile, "y", false);
    i = wait_for(&s, 0, mfile);
    assert_int_equal(s.r[i].ev, WATCH_WRITTEN);
    assert_int_equal(watch_dir_count(w), 5);

    /* not recursive: a subdirectory is reported, what happens in it is not */
    char fsub[600], ffile[700], fmark[700];
    snprintf(fsub, sizeof fsub, "%s/sub", flat);
    assert_int_equal(mkdir(fsub, 0700), 0);
    wait_for(&s, 0, fsub);
    snprintf(ffile, sizeof ffile, "%s/z.txt", fsub);
    writef(ffile, "z", false);
    snprintf(fmark, sizeof fmark, "%s/mark.txt", flat);
    writef(fmark, "m", false);
    wait_for(&s, 0, fmark);
    assert_int_equal(find(&s, 0, ffile), -1);

    watch_free(w);
    tu_rmrf(d);
    tu_rmrf(flat);
    free(d);
    free(flat);
}

static void a_burst_is_one_callback_after_the_debounce(void **state)
{
    (void)state;
    char *d = tu_tmpdir();
    struct seen s;
    double debounce = 0.3;
    struct watch *w = new_watch(&s, debounce);
    struct tikd_err e = {0};
    assert_int_equal(watch_add(w, d, false, &e), 0);
    char p[600];
    snprintf(p, sizeof p, "%s/burst.bin", d);
    double last = 0;
    for (int k = 0; k < 100; k++) {
        writef(p, "0123456789", true);
        last = clock_mono();
        ev_run(loop, EVRUN_NOWAIT); /* the events are read as they come */
    }
    assert_int_equal(s.n, 0); /* nothing before the debounce */
    int i = wait_for(&s, 0, p);
    assert_int_equal(s.r[i].ev, WATCH_WRITTEN);
    assert_true(s.r[i].at - last >= debounce - 0.001);
    run_for(3 * debounce);
    assert_int_equal(s.n, 1);
    watch_free(w);
    tu_rmrf(d);
    free(d);
}

static long read_long(const char *path)
{
    FILE *f = fopen(path, "r");
    long v = -1;
    if (f) {
        if (fscanf(f, "%ld", &v) != 1)
            v = -1;
        fclose(f);
    }
    return v;
}

static void kernel_queue_overflow_is_one_rescan(void **state)
{
    (void)state;
    long max = read_long("/proc/sys/fs/inotify/max_queued_events");
    if (max <= 0 || max > 200000) {
        print_message("skipped: max_queued_events is %ld\n", max);
        skip();
    }
    char *d = tu_tmpdir();
    struct seen s;
    struct watch *w = new_watch(&s, 0.1);
    watch_set_limits(w, 0, (size_t)max * 4); /* the table must not be the cause */
    struct tu_logcap cap;
    tu_logcap_start(&cap);
    tlog_setup(TLOG_WARN, TLOG_LOGFMT, 2);
    struct tikd_err e = {0};
    assert_int_equal(watch_add(w, d, false, &e), 0);
    /* each new file queues IN_CREATE and IN_CLOSE_WRITE; the loop does not
     * run meanwhile, so the kernel's queue overflows */
    for (long k = 0; k < max / 2 + 1000; k++) {
        char p[600];
        snprintf(p, sizeof p, "%s/f%ld", d, k);
        int fd = open(p, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
        assert_true(fd >= 0);
        close(fd);
    }
    int i = wait_for(&s, 0, d);
    assert_int_equal(s.r[i].ev, WATCH_RESCAN);
    run_for(0.3);
    assert_int_equal(s.n, 1); /* the file events were dropped: the re-list covers them */
    assert_non_null(cap.buf);
    assert_non_null(strstr(cap.buf, "watch.overflow"));
    tlog_setup(TLOG_ERROR, TLOG_LOGFMT, 2);
    tu_logcap_stop(&cap);
    /* and watching goes on */
    char p[600];
    snprintf(p, sizeof p, "%s/after", d);
    writef(p, "a", false);
    i = wait_for(&s, 1, p);
    assert_int_equal(s.r[i].ev, WATCH_WRITTEN);
    watch_free(w);
    tu_rmrf(d);
    free(d);
}

static void a_full_pending_table_is_one_rescan(void **state)
{
    (void)state;
    char *d = tu_tmpdir();
    struct seen s;
    struct watch *w = new_watch(&s, 0.1);
    watch_set_limits(w, 0, 8);
    struct tu_logcap cap;
    tu_logcap_start(&cap);
    tlog_setup(TLOG_WARN, TLOG_LOGFMT, 2);
    struct tikd_err e = {0};
    assert_int_equal(watch_add(w, d, false, &e), 0);
    for (int k = 0; k < 20; k++) {
        char p[600];
        snprintf(p, sizeof p, "%s/f%d", d, k);
        writef(p, "x", false);
    }
    int i = wait_for(&s, 0, d);
    assert_int_equal(s.r[i].ev, WATCH_RESCAN);
    run_for(0.3);
    assert_int_equal(s.n, 1);
    assert_non_null(cap.buf);
    assert_non_null(strstr(cap.buf, "watch.pending_full"));
    tlog_setup(TLOG_ERROR, TLOG_LOGFMT, 2);
    tu_logcap_stop(&cap);
    watch_free(w);
    tu_rmrf(d);
    free(d);
}

static void limits_and_errors(void **state)
{
    (void)state;
    char *d = tu_tmpdir();
    struct seen s;
    struct watch *w = new_watch(&s, 0.05);
    struct tikd_err e = {0};
    char cmd[700], p[700];
    snprintf(cmd, sizeof cmd, "mkdir -p '%s/big/a/b' '%s/big/c' '%s/small/a'", d, d, d);
    assert_int_equal(system(cmd), 0);

    watch_set_limits(w, 3, 0);
    snprintf(p, sizeof p, "%s/big", d);
    assert_int_equal(watch_add(w, p, true, &e), TIKD_EFULL);
    assert_non_null(strstr(e.msg, "more than 3 directories"));
    assert_int_equal(watch_dir_count(w), 0); /* rolled back */

    snprintf(p, sizeof p, "%s/small/", d); /* the trailing slash is dropped */
    assert_int_equal(watch_add(w, p, true, &e), 0);
    assert_int_equal(watch_dir_count(w), 2);
    assert_int_equal(watch_add(w, p, true, &e), TIKD_EEXIST);

    /* beyond the limit later: the directory is reported but not watched */
    char extra[700], inner[800];
    snprintf(extra, sizeof extra, "%s/small/b", d);
    snprintf(inner, sizeof inner, "%s/small/c", d);
    assert_int_equal(mkdir(extra, 0700), 0);
    wait_for(&s, 0, extra);
    assert_int_equal(watch_dir_count(w), 3);
    struct tu_logcap cap;
    tu_logcap_start(&cap);
    tlog_setup(TLOG_WARN, TLOG_LOGFMT, 2);
    assert_int_equal(mkdir(inner, 0700), 0);
    wait_for(&s, 0, inner);
    assert_int_equal(watch_dir_count(w), 3);
    assert_non_null(cap.buf);
    assert_non_null(strstr(cap.buf, "watch.full"));
    tlog_setup(TLOG_ERROR, TLOG_LOGFMT, 2);
    tu_logcap_stop(&cap);

    snprintf(p, sizeof p, "%s/missing", d);
    assert_int_equal(watch_add(w, p, false, &e), TIKD_ENOTFOUND);
    assert_non_null(strstr(e.msg, "no such directory"));
    snprintf(p, sizeof p, "%s/file", d);
    writef(p, "x", false);
    assert_int_equal(watch_add(w, p, false, &e), TIKD_EINVAL);
    assert_non_null(strstr(e.msg, "not a directory"));
    watch_free(w);
    tu_rmrf(d);
    free(d);
}

int main(void)
{
    tlog_setup(TLOG_ERROR, TLOG_LOGFMT, 2);
    loop = ev_loop_new(EVFLAG_AUTO);
    ev_timer_init(&tick, on_tick, 0.02, 0.02);
    ev_timer_start(loop, &tick);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(create_write_rename_delete),
        cmocka_unit_test(subdirectories_made_later),
        cmocka_unit_test(a_burst_is_one_callback_after_the_debounce),
        cmocka_unit_test(kernel_queue_overflow_is_one_rescan),
        cmocka_unit_test(a_full_pending_table_is_one_rescan),
        cmocka_unit_test(limits_and_errors),
    };
    int rc = cmocka_run_group_tests_name("watch", tests, NULL, NULL);
    ev_timer_stop(loop, &tick);
    ev_loop_destroy(loop);
    return rc;
}
