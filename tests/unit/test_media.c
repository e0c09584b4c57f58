/* test_media.c - the container probe and TikTok's video rules, on files
 * written by tests/fixtures/mkmp4.py: good MP4/MOV files of several codecs,
 * sizes, rates and durations, and broken ones (truncated, a lying box size,
 * empty, audio only). */
#include "testutil.h"

#include "../../core/media.h"

#include <sys/stat.h>

static char *dir;

/* Generate a fixture with mkmp4.py arguments; returns its path (static). */
static const char *gen(const char *name, const char *args)
{
    static char path[600];
    char cmd[1200];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    snprintf(cmd, sizeof cmd, "/usr/bin/python3 tests/fixtures/mkmp4.py '%s' %s", path, args);
    assert_int_equal(system(cmd), 0);
    return path;
}

static void good_files(void **state)
{
    (void)state;
    struct media_info mi;
    struct tikd_err e = {0};
    const char *p = gen("h264.mp4", "--codec avc1 --size 1080x1920 --fps 30 --duration 12.5");
    assert_int_equal(media_probe(p, &mi, &e), 0);
    assert_string_equal(mi.container, "mp4");
    assert_string_equal(mi.mime, "video/mp4");
    assert_string_equal(mi.codec, "avc1");
    assert_string_equal(mi.codec_name, "H.264");
    assert_int_equal(mi.width, 1080);
    assert_int_equal(mi.height, 1920);
    assert_true(mi.fps > 29.9 && mi.fps < 30.1);
    assert_true(mi.duration > 12.4 && mi.duration < 12.6);
    char why[300];
    assert_int_equal(media_check_video(&mi, 300, why, sizeof why), 0);

    p = gen("h265.mov", "--codec hvc1 --brand qt --size 720x1280 --fps 59.94 --duration 3 "
                        "--largesize");
    assert_int_equal(media_probe(p, &mi, &e), 0);
    assert_string_equal(mi.container, "mov");
    assert_string_equal(mi.mime, "video/quicktime");
    assert_string_equal(mi.codec_name, "H.265");
    assert_true(mi.fps > 59.8 && mi.fps < 60.1);
    assert_int_equal(media_check_video(&mi, 0, why, sizeof why), 0);
}

static void rules_name_what_is_wrong(void **state)
{
    (void)state;
    struct media_info mi;
    struct tikd_err e = {0};
    char why[300];
    static const struct {
        const char *name, *args, *says;
        int max;
    } cases[] = {
        {"mpeg4.mp4", "--codec mp4v", "TikTok accepts H.264 (recommended), H.265, VP8 or VP9", 0},
        {"small.mp4", "--size 320x240", "the picture is 320x240; TikTok accepts 360 to 4096", 0},
        {"huge.mp4", "--size 4096x8192", "4096x8192", 0},
        {"slow.mp4", "--fps 15", "the frame rate is 15.00 fps; TikTok accepts 23 to 60", 0},
        {"fast.mp4", "--fps 120", "120.00 fps", 0},
        {"long.mp4", "--duration 200", "lasts 200.0 s; this creator may post up to 180 s", 180},
        {"toolong.mp4", "--duration 700", "up to 600 s", 0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const char *p = gen(cases[i].name, cases[i].args);
        assert_int_equal(media_probe(p, &mi, &e), 0);
        assert_int_equal(media_check_video(&mi, cases[i].max, why, sizeof why), -1);
        if (!strstr(why, cases[i].says))
            fail_msg("%s: '%s' does not say '%s'", cases[i].name, why, cases[i].says);
    }
}

static void broken_files(void **state)
{
    (void)state;
    struct media_info mi;
    struct tikd_err e = {0};
    static const struct {
        const char *name, *args, *says;
    } cases[] = {
        {"trunc.mp4", "--break truncated", "truncated"},
        {"lying.mp4", "--break lying", "lies about its size"},
        {"inner.mp4", "--break lying-inner", "lies about its size"},
        {"zero.mp4", "--break zero", "the file is empty"},
        {"audio.mp4", "--break audio-only", "no video track"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const char *p = gen(cases[i].name, cases[i].args);
        assert_int_equal(media_probe(p, &mi, &e), TIKD_EINVAL);
        if (!strstr(e.msg, cases[i].says))
            fail_msg("%s: '%s' does not say '%s'", cases[i].name, e.msg, cases[i].says);
    }
    char p[600];
    snprintf(p, sizeof p, "%s/text.mp4", dir);
    FILE *f = fopen(p, "w");
    fputs("this is not a video at all, just some text in a file", f);
    fclose(f);
    assert_int_equal(media_probe(p, &mi, &e), TIKD_EINVAL);
    assert_non_null(strstr(e.msg, "not an MP4, MOV or WebM"));
    assert_int_equal(media_probe("/nonexistent/x.mp4", &mi, &e), TIKD_ENOTFOUND);
    /* a FIFO named as media is refused at once: nothing writes to it, so a
     * blocking open would never return */
    snprintf(p, sizeof p, "%s/fifo.mp4", dir);
    assert_int_equal(mkfifo(p, 0600), 0);
    assert_int_equal(media_probe(p, &mi, &e), TIKD_EINVAL);
    assert_non_null(strstr(e.msg, "not a regular file"));
}

/* Random garbage and random corruptions of a good file never crash the
 * reader (ASan would say) and never pass as something they are not. */
static void fuzzed_files_fail_cleanly(void **state)
{
    (void)state;
    const char *p = gen("seed.mp4", "--mdat-bytes 2000");
    FILE *f = fopen(p, "rb");
    unsigned char orig[8192];
    size_t n = fread(orig, 1, sizeof orig, f);
    fclose(f);
    char q[600];
    snprintf(q, sizeof q, "%s/fuzz.mp4", dir);
    srand(7);
    for (int round = 0; round < 2000; round++) {
        unsigned char buf[8192];
        memcpy(buf, orig, n);
        for (int k = 0; k < 1 + round % 8; k++)
            buf[rand() % (int)n] = (unsigned char)rand();
        size_t len = round % 5 == 0 ? (size_t)rand() % n : n;
        f = fopen(q, "wb");
        fwrite(buf, 1, len, f);
        fclose(f);
        struct media_info mi;
        struct tikd_err e = {0};
        int rc = media_probe(q, &mi, &e);
        assert_true(rc == 0 || rc == TIKD_EINVAL || rc == TIKD_EIO);
        if (rc == 0)
            assert_true(mi.container[0] != '\0');
    }
}

int main(void)
{
    dir = tu_tmpdir();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(good_files),
        cmocka_unit_test(rules_name_what_is_wrong),
        cmocka_unit_test(broken_files),
        cmocka_unit_test(fuzzed_files_fail_cleanly),
    };
    int rc = cmocka_run_group_tests_name("media", tests, NULL, NULL);
    tu_rmrf(dir);
    free(dir);
    return rc;
}
