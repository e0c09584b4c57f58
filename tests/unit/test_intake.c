/* test_intake.c - media intake: a slowly copied file is taken once, after
 * it stops growing; renamed and re-copied content is a duplicate, new
 * content is new; sidecars are read; patterns and ignored names; a scan at
 * start takes existing files once and a restart reports nothing known;
 * a hand-off cut short (crash, failed store write) is offered again;
 * intake_offer says fresh or not; a large file hashes in slices. Waits are
 * on outcomes (callbacks, log lines) with generous deadlines. */
#include "testutil.h"

#include <fcntl.h>
#include <jansson.h>
#include <openssl/evp.h>
#include <sys/stat.h>

#include "../../core/clock.h"
#include "../../core/intake.h"
#include "../../core/store.h"

#define MAX_ITEMS 16

enum handing { HAND_COMPLETE, HAND_HOLD, HAND_FAIL_WRITE };

struct got {
    struct intake_item items[MAX_ITEMS];
    double at[MAX_ITEMS]; /* clock_mono() at the callback */
    int n;
    enum handing mode;                      /* how the callback ends its hand-off */
    struct intake_handoff *held[MAX_ITEMS]; /* HAND_HOLD: not ended yet */
    int nheld;
    struct store *store; /* HAND_FAIL_WRITE: a write it refuses */
};

static struct ev_loop *loop;
static ev_timer tick; /* keeps EVRUN_ONCE from blocking when nothing is due */
static struct got *got;
static struct tu_logcap cap;

static void on_tick(struct ev_loop *l, ev_timer *t, int revents)
{
    (void)l;
    (void)t;
    (void)revents;
}

static int huge_txn(struct store_txn *t, void *ctx)
{
    (void)ctx;
    static char big[4 << 20];
    return store_put(t, STORE_DB_META, "huge", 4, big, sizeof big);
}

static void on_item(void *ud, const struct intake_item *it, struct intake_handoff *h)
{
    struct got *g = ud;
    if (g->n < MAX_ITEMS) {
        g->items[g->n] = *it;
        g->at[g->n] = clock_mono();
    }
    g->n++;
    if (g->mode == HAND_HOLD && g->nheld < MAX_ITEMS) {
        g->held[g->nheld++] = h;
        return;
    }
    if (g->mode == HAND_FAIL_WRITE) {
        struct tikd_err e = {0};
        assert_int_equal(store_write(g->store, huge_txn, NULL, &e), TIKD_ENOSPACE);
    }
    intake_handoff_end(h, true);
}

static void wait_items(int n)
{
    double end = clock_mono() + 10;
    while (got->n < n && clock_mono() < end)
        ev_run(loop, EVRUN_ONCE);
    if (got->n < n)
        fail_msg("%d items after 10 s, wanted %d", got->n, n);
}

static void wait_log(const char *needle)
{
    double end = clock_mono() + 10;
    while (!(cap.buf && strstr(cap.buf, needle)) && clock_mono() < end)
        ev_run(loop, EVRUN_ONCE);
    if (!(cap.buf && strstr(cap.buf, needle)))
        fail_msg("no log line with %s", needle);
}

static void run_for(double secs)
{
    double end = clock_mono() + secs;
    while (clock_mono() < end)
        ev_run(loop, EVRUN_ONCE);
}

static int setup(void **state)
{
    (void)state;
    got = calloc(1, sizeof *got);
    tu_logcap_start(&cap);
    tlog_setup(TLOG_INFO, TLOG_LOGFMT, 2);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    free(got);
    tlog_setup(TLOG_ERROR, TLOG_LOGFMT, 2);
    tu_logcap_stop(&cap);
    return 0;
}

static struct store *open_store_max(const char *dir, size_t max)
{
    struct store *s;
    struct store_opts o = {dir, 1 << 20, max, false};
    struct tikd_err e = {0};
    if (store_open(&s, &o, &e) != 0)
        fail_msg("store_open: %s", e.msg);
    return s;
}

static struct store *open_store(const char *dir)
{
    struct store *s;
    struct store_opts o = {dir, 1 << 20, 64 << 20, false};
    struct tikd_err e = {0};
    if (store_open(&s, &o, &e) != 0)
        fail_msg("store_open: %s", e.msg);
    return s;
}

static struct intake *new_intake(struct store *s, double settle)
{
    struct intake *in;
    struct tikd_err e = {0};
    if (intake_new(&in, loop, s, settle, on_item, got, &e) != 0)
        fail_msg("intake_new: %s", e.msg);
    return in;
}

static void add(struct intake *in, const char *dir, const char *pattern)
{
    struct tikd_err e = {0};
    if (intake_add_folder(in, dir, pattern, &e) != 0)
        fail_msg("intake_add_folder %s: %s", dir, e.msg);
}

static void put(const char *path, const void *p, size_t n, bool append)
{
    FILE *f = fopen(path, append ? "ab" : "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(p, 1, n, f), n);
    fclose(f);
}

static void sha256_hex(const void *p, size_t n, char out[65])
{
    unsigned char d[32];
    EVP_Digest(p, n, d, NULL, EVP_sha256(), NULL);
    for (int i = 0; i < 32; i++)
        snprintf(out + 2 * i, 3, "%02x", d[i]);
}

/* A fresh directory with its real path (intake reports real paths). */
static char *tmpdir_real(void)
{
    char *d = tu_tmpdir();
    char *r = realpath(d, NULL);
    assert_non_null(r);
    free(d);
    return r;
}

static void slow_copy_is_taken_once_after_it_stops_growing(void **state)
{
    (void)state;
    char *data = tmpdir_real(), *inbox = tmpdir_real();
    struct store *s = open_store(data);
    struct intake *in = new_intake(s, 0.2);
    add(in, inbox, NULL);
    assert_int_equal(intake_scan(in), 0);

    char p[600];
    snprintf(p, sizeof p, "%s/slow.mp4", inbox);
    static unsigned char content[10 * 4096];
    for (size_t i = 0; i < sizeof content; i++)
        content[i] = (unsigned char)(i * 31 + 7);
    double last = 0;
    for (int k = 0; k < 10; k++) { /* a piece every 0.05 s for 0.5 s */
        put(p, content + k * 4096, 4096, k > 0);
        last = clock_mono();
        run_for(0.05);
    }
    assert_int_equal(got->n, 0); /* not while it grows */
    wait_items(1);
    struct intake_item *it = &got->items[0];
    assert_true(got->at[0] >= last);
    assert_int_equal(it->size, sizeof content);
    char want[65];
    sha256_hex(content, sizeof content, want);
    assert_string_equal(it->hash, want);
    assert_string_equal(it->path, p);
    assert_string_equal(it->folder, inbox);
    assert_string_equal(it->name, "slow.mp4");
    assert_string_equal(it->sidecar, "");
    assert_true(it->mtime > 0 && it->first_seen > 0);
    run_for(0.6);
    assert_int_equal(got->n, 1);
    intake_free(in);
    store_close(s);
    tu_rmrf(data);
    tu_rmrf(inbox);
    free(data);
    free(inbox);
}

/* The writer keeps the file open, so no event says it grows: the scan
 * finds it half written, and only the settle re-check holds it back. */
static void a_growing_file_found_by_a_scan_waits(void **state)
{
    (void)state;
    char *data = tmpdir_real(), *inbox = tmpdir_real();
    struct store *s = open_store(data);
    struct intake *in = new_intake(s, 0.2);
    add(in, inbox, NULL);
    char p[600];
    snprintf(p, sizeof p, "%s/open.mov", inbox);
    static unsigned char content[10 * 4096];
    for (size_t i = 0; i < sizeof content; i++)
        content[i] = (unsigned char)(i * 17 + 3);
    int fd = open(p, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    assert_true(fd >= 0);
    for (int k = 0; k < 10; k++) {
        assert_int_equal(write(fd, content + k * 4096, 4096), 4096);
        if (k == 0)
            assert_int_equal(intake_scan(in), 0);
        run_for(0.05);
    }
    assert_int_equal(got->n, 0); /* not while it grows */
    close(fd);
    wait_items(1);
    assert_int_equal(got->items[0].size, sizeof content);
    char want[65];
    sha256_hex(content, sizeof content, want);
    assert_string_equal(got->items[0].hash, want);
    run_for(0.6);
    assert_int_equal(got->n, 1);
    intake_free(in);
    store_close(s);
    tu_rmrf(data);
    tu_rmrf(inbox);
    free(data);
    free(inbox);
}

struct media_rec {
    char hash[65];
    long long seen_count;
    char path[1024], last_path[1024];
};

static int read_rec(struct store_txn *t, void *ctx)
{
    struct media_rec *r = ctx;
    struct store_val v;
    int rc = store_get(t, STORE_DB_MEDIA, r->hash, 64, &v);
    if (rc != 0)
        return rc;
    json_t *o = json_loadb(v.p, v.n, 0, NULL);
    assert_non_null(o);
    r->seen_count = json_integer_value(json_object_get(o, "seen_count"));
    snprintf(r->path, sizeof r->path, "%s", json_string_value(json_object_get(o, "path")));
    snprintf(r->last_path, sizeof r->last_path, "%s",
             json_string_value(json_object_get(o, "last_path")));
    json_decref(o);
    return 0;
}

static void renamed_and_recopied_content_is_not_taken_again(void **state)
{
    (void)state;
    char *data = tmpdir_real(), *a = tmpdir_real(), *b = tmpdir_real();
    struct store *s = open_store(data);
    struct intake *in = new_intake(s, 0.1);
    add(in, a, NULL);
    add(in, b, NULL);
    char one[600], renamed[600], copy[600], other[600], needle[1400];
    snprintf(one, sizeof one, "%s/one.mp4", a);
    snprintf(renamed, sizeof renamed, "%s/renamed.mp4", a);
    snprintf(copy, sizeof copy, "%s/copy.mov", b);
    snprintf(other, sizeof other, "%s/other.mp4", b);

    put(one, "content one", 11, false);
    wait_items(1);
    assert_string_equal(got->items[0].path, one);

    assert_int_equal(rename(one, renamed), 0);
    snprintf(needle, sizeof needle, "event=intake.duplicate hash=%s path=%s first_path=%s",
             got->items[0].hash, renamed, one);
    wait_log(needle);

    put(copy, "content one", 11, false);
    snprintf(needle, sizeof needle, "event=intake.duplicate hash=%s path=%s first_path=%s",
             got->items[0].hash, copy, one);
    wait_log(needle);

    put(other, "content two", 11, false);
    wait_items(2);
    assert_string_equal(got->items[1].path, other);
    assert_string_not_equal(got->items[1].hash, got->items[0].hash);
    run_for(0.4);
    assert_int_equal(got->n, 2);

    struct media_rec r = {0};
    memcpy(r.hash, got->items[0].hash, 65);
    struct tikd_err e = {0};
    assert_int_equal(store_read(s, read_rec, &r, &e), 0);
    assert_int_equal(r.seen_count, 3);
    assert_string_equal(r.path, one);
    assert_string_equal(r.last_path, copy);
    intake_free(in);
    store_close(s);
    tu_rmrf(data);
    tu_rmrf(a);
    tu_rmrf(b);
    free(data);
    free(a);
    free(b);
}

static void sidecars_are_read(void **state)
{
    (void)state;
    char *data = tmpdir_real(), *inbox = tmpdir_real();
    struct store *s = open_store(data);
    struct intake *in = new_intake(s, 0.1);
    add(in, inbox, NULL);
    char p[600];
    const char *json = "{\"caption\": \"hello #tikd\", \"privacy\": \"SELF_ONLY\"}";
    snprintf(p, sizeof p, "%s/clip.json", inbox);
    put(p, json, strlen(json), false);
    snprintf(p, sizeof p, "%s/clip.mp4", inbox);
    put(p, "clip", 4, false);
    wait_items(1);
    assert_string_equal(got->items[0].name, "clip.mp4");
    assert_string_equal(got->items[0].sidecar, json);

    /* a sidecar that comes after its media re-triggers nothing (v1) */
    snprintf(p, sizeof p, "%s/late.jpg", inbox);
    put(p, "late", 4, false);
    wait_items(2);
    assert_string_equal(got->items[1].sidecar, "");
    snprintf(p, sizeof p, "%s/late.json", inbox);
    put(p, "{}", 2, false);
    run_for(0.5);
    assert_int_equal(got->n, 2);
    intake_free(in);
    store_close(s);
    tu_rmrf(data);
    tu_rmrf(inbox);
    free(data);
    free(inbox);
}

static void patterns_and_ignored_names(void **state)
{
    (void)state;
    char *data = tmpdir_real(), *def = tmpdir_real(), *movs = tmpdir_real();
    struct store *s = open_store(data);
    struct intake *in = new_intake(s, 0.1);
    add(in, def, NULL);
    add(in, movs, "*.mov");
    const char *ignored[] = {".hidden.mp4", "a.mp4.part", "b.tmp",
                             "c.mp4~",      "notes.txt",  "meta.json"};
    char p[600], q[600];
    for (size_t i = 0; i < sizeof ignored / sizeof ignored[0]; i++) {
        snprintf(p, sizeof p, "%s/%s", def, ignored[i]);
        put(p, ignored[i], strlen(ignored[i]), false);
    }
    snprintf(p, sizeof p, "%s/dir.mp4", def);
    assert_int_equal(mkdir(p, 0700), 0);
    snprintf(p, sizeof p, "%s/clip.mp4", movs);
    put(p, "not a mov", 9, false);
    snprintf(p, sizeof p, "%s/x.mov.part", movs);
    put(p, "partial", 7, false);

    snprintf(p, sizeof p, "%s/GOOD.MP4", def);
    put(p, "good", 4, false);
    snprintf(p, sizeof p, "%s/Clip.MOV", movs);
    put(p, "a mov", 5, false);
    wait_items(2);
    /* written under a temporary name, then renamed: taken under the new one */
    snprintf(p, sizeof p, "%s/b.tmp", def);
    snprintf(q, sizeof q, "%s/final.webm", def);
    assert_int_equal(rename(p, q), 0);
    wait_items(3);
    run_for(0.4);
    assert_int_equal(got->n, 3);
    const char *names[3] = {got->items[0].name, got->items[1].name, got->items[2].name};
    int good = 0, mov = 0, final = 0;
    for (int i = 0; i < 3; i++) {
        good += strcmp(names[i], "GOOD.MP4") == 0;
        mov += strcmp(names[i], "Clip.MOV") == 0;
        final += strcmp(names[i], "final.webm") == 0;
    }
    assert_int_equal(good + mov + final, 3);
    assert_int_equal(intake_scan(in), 0); /* a re-list finds nothing new either */
    run_for(0.4);
    assert_int_equal(got->n, 3);
    intake_free(in);
    store_close(s);
    tu_rmrf(data);
    tu_rmrf(def);
    tu_rmrf(movs);
    free(data);
    free(def);
    free(movs);
}

static void scan_at_start_and_restart(void **state)
{
    (void)state;
    char *data = tmpdir_real(), *inbox = tmpdir_real();
    char p[600];
    const char *names[] = {"a.mp4", "b.webm", "c.jpg"};
    for (int i = 0; i < 3; i++) {
        snprintf(p, sizeof p, "%s/%s", inbox, names[i]);
        put(p, names[i], strlen(names[i]), false);
    }
    struct store *s = open_store(data);
    struct intake *in = new_intake(s, 0.1);
    add(in, inbox, NULL);
    assert_int_equal(got->n, 0); /* adding a folder does not list it */
    assert_int_equal(intake_scan(in), 0);
    wait_items(3);
    assert_int_equal(intake_scan(in), 0);
    run_for(0.4);
    assert_int_equal(got->n, 3);
    intake_free(in);
    store_close(s);

    /* down: one file arrives meanwhile; up again: only that one is new */
    snprintf(p, sizeof p, "%s/d.mov", inbox);
    put(p, "d", 1, false);
    s = open_store(data);
    in = new_intake(s, 0.1);
    add(in, inbox, NULL);
    assert_int_equal(intake_scan(in), 0);
    wait_items(4);
    assert_string_equal(got->items[3].name, "d.mov");
    run_for(0.4);
    assert_int_equal(got->n, 4);
    assert_null(strstr(cap.buf, "intake.duplicate")); /* known paths were not even re-read */
    intake_free(in);
    store_close(s);
    tu_rmrf(data);
    tu_rmrf(inbox);
    free(data);
    free(inbox);
}

/* A hand-off a crash cut short (the callback never ended it) is made again
 * at the next start; one during which a store write failed is made again
 * by the next scan; a complete one never again. */
static void an_offer_cut_short_is_made_again(void **state)
{
    (void)state;
    char *data = tmpdir_real(), *inbox = tmpdir_real();
    char p[600];
    snprintf(p, sizeof p, "%s/a.jpg", inbox);
    put(p, "a", 1, false);
    struct store *s = open_store_max(data, 2 << 20);
    got->mode = HAND_HOLD;
    struct intake *in = new_intake(s, 0.05);
    add(in, inbox, NULL);
    assert_int_equal(intake_scan(in), 0);
    wait_items(1);
    assert_int_equal(intake_scan(in), 0); /* in flight: not offered twice meanwhile */
    run_for(0.3);
    assert_int_equal(got->n, 1);
    intake_free(in); /* the crash: the rules never finished */
    store_close(s);
    intake_handoff_end(got->held[0], false); /* (frees it; the store is gone) */

    s = open_store_max(data, 2 << 20);
    got->mode = HAND_FAIL_WRITE;
    got->store = s;
    in = new_intake(s, 0.05);
    add(in, inbox, NULL);
    assert_int_equal(intake_scan(in), 0);
    wait_items(2);
    assert_string_equal(got->items[1].hash, got->items[0].hash);
    assert_non_null(strstr(cap.buf, "event=intake.offered_again"));
    assert_non_null(strstr(cap.buf, "event=intake.offer_again"));
    assert_non_null(strstr(cap.buf, "a store write failed while it was handed over"));

    got->mode = HAND_COMPLETE;
    assert_int_equal(intake_scan(in), 0); /* what the retry timer does */
    wait_items(3);
    assert_string_equal(got->items[2].hash, got->items[0].hash);
    assert_int_equal(intake_scan(in), 0);
    run_for(0.3);
    assert_int_equal(got->n, 3);
    intake_free(in);
    store_close(s);

    s = open_store_max(data, 2 << 20); /* and after a restart: taken for good */
    in = new_intake(s, 0.05);
    add(in, inbox, NULL);
    assert_int_equal(intake_scan(in), 0);
    run_for(0.3);
    assert_int_equal(got->n, 3);
    intake_free(in);
    store_close(s);
    tu_rmrf(data);
    tu_rmrf(inbox);
    free(data);
    free(inbox);
}

static void offer_says_fresh_or_known(void **state)
{
    (void)state;
    char *data = tmpdir_real(), *dir = tmpdir_real(), *inbox = tmpdir_real();
    struct store *s = open_store(data);
    struct intake *in = new_intake(s, 0.1);
    add(in, inbox, NULL);
    char x[600], y[600], z[600];
    snprintf(x, sizeof x, "%s/x.mp4", dir);
    snprintf(y, sizeof y, "%s/y.mp4", dir);
    snprintf(z, sizeof z, "%s/z.mp4", inbox);
    put(x, "offered", 7, false);
    put(y, "offered", 7, false);
    char want[65];
    sha256_hex("offered", 7, want);

    struct intake_item *it = calloc(1, sizeof *it);
    bool fresh = false;
    struct tikd_err e = {0};
    assert_int_equal(intake_offer(in, x, it, &fresh, &e), 0);
    assert_true(fresh);
    assert_string_equal(it->hash, want);
    assert_string_equal(it->path, x);
    assert_string_equal(it->folder, dir);
    assert_string_equal(it->name, "x.mp4");
    assert_int_equal(it->size, 7);
    assert_int_equal(intake_offer(in, x, it, &fresh, &e), 0);
    assert_false(fresh);
    assert_string_equal(it->hash, want);
    assert_int_equal(intake_offer(in, y, it, &fresh, &e), 0); /* a copy */
    assert_false(fresh);
    assert_string_equal(it->path, y);

    /* dropped into a watched folder later: a duplicate, not taken */
    put(z, "offered", 7, false);
    char needle[1400];
    snprintf(needle, sizeof needle, "event=intake.duplicate hash=%s path=%s", want, z);
    wait_log(needle);
    assert_int_equal(got->n, 0);

    snprintf(y, sizeof y, "%s/missing.mp4", dir);
    assert_int_equal(intake_offer(in, y, it, &fresh, &e), TIKD_ENOTFOUND);
    assert_non_null(strstr(e.msg, "no such file"));
    assert_int_equal(intake_offer(in, dir, it, &fresh, &e), TIKD_EINVAL);
    assert_non_null(strstr(e.msg, "not a regular file"));
    free(it);
    intake_free(in);
    store_close(s);
    tu_rmrf(data);
    tu_rmrf(dir);
    tu_rmrf(inbox);
    free(data);
    free(dir);
    free(inbox);
}

static void a_large_file_hashes_in_slices(void **state)
{
    (void)state;
    char *data = tmpdir_real(), *inbox = tmpdir_real();
    struct store *s = open_store(data);
    struct intake *in = new_intake(s, 0.05);
    add(in, inbox, NULL);
    size_t n = (20u << 20) + 123; /* more than one slice of the hasher */
    unsigned char *big = malloc(n);
    assert_non_null(big);
    uint32_t x = 12345;
    for (size_t i = 0; i < n; i++) {
        x = x * 1103515245 + 12345;
        big[i] = (unsigned char)(x >> 16);
    }
    char want[65], tmp[600], p[600];
    sha256_hex(big, n, want);
    snprintf(tmp, sizeof tmp, "%s/.big.mp4", inbox); /* a dotfile until complete */
    snprintf(p, sizeof p, "%s/big.mp4", inbox);
    put(tmp, big, n, false);
    free(big);
    assert_int_equal(rename(tmp, p), 0);
    wait_items(1);
    assert_string_equal(got->items[0].hash, want);
    assert_int_equal(got->items[0].size, n);
    intake_free(in);
    store_close(s);
    tu_rmrf(data);
    tu_rmrf(inbox);
    free(data);
    free(inbox);
}

static void folder_errors(void **state)
{
    (void)state;
    char *data = tmpdir_real(), *dir = tmpdir_real();
    struct store *s = open_store(data);
    struct intake *in = new_intake(s, 0.1);
    struct tikd_err e = {0};
    char p[600];
    snprintf(p, sizeof p, "%s/missing", dir);
    assert_int_equal(intake_add_folder(in, p, NULL, &e), TIKD_ENOTFOUND);
    assert_non_null(strstr(e.msg, "does not exist"));
    snprintf(p, sizeof p, "%s/file.mp4", dir);
    put(p, "f", 1, false);
    assert_int_equal(intake_add_folder(in, p, NULL, &e), TIKD_EINVAL);
    assert_non_null(strstr(e.msg, "not a directory"));
    assert_int_equal(intake_add_folder(in, dir, "", &e), TIKD_EINVAL);
    assert_int_equal(intake_add_folder(in, dir, NULL, &e), 0);
    assert_int_equal(intake_add_folder(in, dir, "*.mp4", &e), TIKD_EEXIST);
    if (geteuid() != 0) { /* root reads anything: nothing to show there */
        snprintf(p, sizeof p, "%s/locked", dir);
        assert_int_equal(mkdir(p, 0), 0);
        assert_int_equal(intake_add_folder(in, p, NULL, &e), TIKD_EIO);
        assert_non_null(strstr(e.msg, "cannot read folder"));
        chmod(p, 0700);
    }
    struct intake *bad;
    assert_int_equal(intake_new(&bad, loop, s, -1, on_item, got, &e), TIKD_EINVAL);
    intake_free(in);
    store_close(s);
    tu_rmrf(data);
    tu_rmrf(dir);
    free(data);
    free(dir);
}

int main(void)
{
    tlog_setup(TLOG_ERROR, TLOG_LOGFMT, 2);
    loop = ev_loop_new(EVFLAG_AUTO);
    ev_timer_init(&tick, on_tick, 0.02, 0.02);
    ev_timer_start(loop, &tick);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(slow_copy_is_taken_once_after_it_stops_growing, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(a_growing_file_found_by_a_scan_waits, setup, teardown),
        cmocka_unit_test_setup_teardown(renamed_and_recopied_content_is_not_taken_again, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(sidecars_are_read, setup, teardown),
        cmocka_unit_test_setup_teardown(patterns_and_ignored_names, setup, teardown),
        cmocka_unit_test_setup_teardown(scan_at_start_and_restart, setup, teardown),
        cmocka_unit_test_setup_teardown(an_offer_cut_short_is_made_again, setup, teardown),
        cmocka_unit_test_setup_teardown(offer_says_fresh_or_known, setup, teardown),
        cmocka_unit_test_setup_teardown(a_large_file_hashes_in_slices, setup, teardown),
        cmocka_unit_test_setup_teardown(folder_errors, setup, teardown),
    };
    int rc = cmocka_run_group_tests_name("intake", tests, NULL, NULL);
    ev_timer_stop(loop, &tick);
    ev_loop_destroy(loop);
    return rc;
}
